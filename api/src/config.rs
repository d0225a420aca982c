//! Settings from the environment, each with a default that works on a fresh
//! machine: SQLite in `./data`, a generated JWT secret kept next to it.

use std::fmt;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::matching::RoutingMode;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("data folder {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The secret that signs tokens. Debug and Display never show it.
#[derive(Clone)]
pub struct JwtSecret(Vec<u8>);

impl JwtSecret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        JwtSecret(bytes.into())
    }
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtSecret(..)")
    }
}

/// How events reach subscribers connected to other processes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventBusKind {
    /// One process: events stay in it.
    InProcess,
    /// Several processes on one Postgres: LISTEN/NOTIFY, no extra infrastructure.
    Postgres,
    /// Several processes meeting on a NATS server (`nats://host:port`).
    Nats { url: String },
}

impl fmt::Display for EventBusKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventBusKind::InProcess => f.write_str("in-process"),
            EventBusKind::Postgres => f.write_str("postgres"),
            EventBusKind::Nats { url } => f.write_str(&redact_url(url)),
        }
    }
}

/// Bounds on what one client may ask of the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest HTTP request body.
    pub max_body_bytes: usize,
    pub max_query_depth: usize,
    pub max_query_complexity: usize,
    /// Most aliases one document may use.
    pub max_aliases: usize,
    /// Introspection on (integrators use it); off also hides field suggestions.
    pub introspection: bool,
    /// Largest WebSocket message and frame.
    pub ws_max_message_bytes: usize,
    /// Seconds between server pings on graphql-transport-ws connections.
    pub ws_keepalive_secs: u64,
    /// Most subscriptions one WebSocket connection may hold at once.
    pub ws_max_subscriptions: usize,
    /// Seconds a new WebSocket may take to send connection_init (then 4408).
    pub ws_init_timeout_secs: u64,
    /// Seconds one write to a WebSocket may block before the peer counts as
    /// not reading and is disconnected (it resumes by seq).
    pub ws_send_timeout_secs: u64,
    /// Per-connection read buffer. tungstenite's default of 128 KiB per
    /// socket would dominate the memory of idle connections; clients send
    /// little, and a larger message is still read, in several reads.
    pub ws_read_buffer_bytes: usize,
    /// Bytes gathered before a write reaches the socket.
    pub ws_write_buffer_bytes: usize,
    /// Most WebSocket connections open at once from one client address.
    pub ip_max_connections: usize,
    /// How many proxies in front of the server append to X-Forwarded-For;
    /// 0 trusts no header and uses the peer address.
    pub trusted_proxy_hops: usize,
    /// Browser origins besides the server's own that may use the API
    /// (exact, like `https://shop.example.com`; `*` for any).
    pub allowed_origins: Vec<String>,
    /// The server's own origins: PUBLIC_URL's, or, without it, the listen
    /// address's (and its loopback names). Never taken from a request's
    /// Host, which a DNS-rebinding page controls.
    pub own_origins: Vec<String>,
    /// Proxies (addresses or CIDR ranges) whose X-Forwarded-For is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Largest JSON answer to a query or mutation.
    pub max_response_bytes: usize,
    /// Seconds a connection may take to send a whole request head: a new
    /// one, and a keep-alive one between requests (its idle timeout).
    pub http_header_timeout_secs: u64,
    /// When set, /metrics wants `Authorization: Bearer <this>`.
    pub metrics_token: Option<Secret>,
    /// Where the GraphiQL page loads its scripts from (pinned, with SRI).
    pub graphiql_cdn: String,
}

/// A configured secret other than the JWT's: Debug never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// An address range: an IP and how many leading bits must match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        fn matches(a: &[u8], b: &[u8], prefix: u8) -> bool {
            let (bytes, bits) = ((prefix / 8) as usize, prefix % 8);
            a[..bytes] == b[..bytes] && (bits == 0 || (a[bytes] ^ b[bytes]) >> (8 - bits) == 0)
        }
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => matches(&net.octets(), &ip.octets(), self.prefix),
            (IpAddr::V6(net), IpAddr::V6(ip)) => matches(&net.octets(), &ip.octets(), self.prefix),
            _ => false,
        }
    }
}

impl std::str::FromStr for IpNet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an address or CIDR range"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(IpNet { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub database_url: String,
    pub listen_addr: String,
    /// Where clients reach the server (`https://chat.example.com`), when
    /// it is behind a proxy; its origin is the server's own.
    pub public_url: Option<String>,
    /// Longest lifetime (exp − iat) a token may claim.
    pub max_token_ttl_secs: i64,
    pub jwt_secret: JwtSecret,
    /// Where the secret came from, for the start-up banner.
    pub jwt_secret_source: String,
    /// Whether it was generated by this start (then the server says so).
    pub jwt_secret_generated: bool,
    pub routing_mode: RoutingMode,
    pub agent_capacity: i32,
    pub history_days: i64,
    pub retention_days: i64,
    pub max_message_chars: usize,
    pub db_pool_size: u32,
    /// How long a request waits for a database connection before it fails
    /// (retryable). Long enough to ride out a burst that holds every pooled
    /// connection, and a short database restart (sqlx keeps retrying a
    /// refused connection until then); a longer outage makes every request
    /// wait this long before it fails.
    pub db_acquire_timeout_secs: u64,
    pub offer_timeout_secs: i64,
    pub resume_grace_secs: i64,
    pub message_rate_per_sec: f64,
    pub message_burst: u32,
    /// New sessions one client address may start per minute, and the burst.
    pub ip_session_rate_per_min: f64,
    pub ip_session_burst: u32,
    /// How long a stopping server waits for requests and WebSockets to finish.
    pub shutdown_grace_secs: u64,
    pub event_bus: EventBusKind,
    /// The NATS subject of this deployment's events; by default one derived
    /// from the deployment id stored in the database.
    pub nats_subject: Option<String>,
    pub limits: Limits,
    pub data_dir: PathBuf,
    pub log_json: bool,
}

const SECRET_FILE: &str = "jwt_secret";
/// The embedded database's file in DATA_DIR.
pub const SQLITE_FILE: &str = "switchboard.db";

/// Pinned with SRI hashes in the page; self-hosters mirror these paths.
pub const DEFAULT_GRAPHIQL_CDN: &str = "https://unpkg.com";

/// `scheme://host[:port]` of a PUBLIC_URL, checked.
fn parse_public_url(url: &str) -> Result<String, ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid {
        name: "PUBLIC_URL",
        reason: format!("{url:?}: {reason}"),
    };
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| invalid("must start with https:// or http://"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || authority.contains(['@', '?', '#', ' ']) {
        return Err(invalid("needs a host and no credentials"));
    }
    Ok(url.to_owned())
}

/// The origins a browser shows for pages this server serves itself.
pub fn own_origins(public_url: Option<&str>, listen_addr: &str) -> Vec<String> {
    if let Some(url) = public_url {
        let scheme_end = url.find("://").map_or(0, |i| i + 3);
        let end = url[scheme_end..]
            .find('/')
            .map_or(url.len(), |i| scheme_end + i);
        return vec![url[..end].to_ascii_lowercase()];
    }
    let Ok(addr) = listen_addr.parse::<std::net::SocketAddr>() else {
        return vec![format!("http://{listen_addr}")];
    };
    let port = addr.port();
    let mut origins = vec![format!("http://{addr}")];
    if addr.ip().is_loopback() || addr.ip().is_unspecified() {
        // Names of this machine that no other site can claim.
        for host in ["localhost", "127.0.0.1", "[::1]"] {
            let origin = format!("http://{host}:{port}");
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
    }
    origins
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can pass their own values.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let data_dir = PathBuf::from(lookup("DATA_DIR").unwrap_or_else(|| "data".to_owned()));
        // The folder itself is made (and locked) when the server starts,
        // not here: `switchboard token` with JWT_SECRET set needs none.
        let database_url = match lookup("DATABASE_URL").filter(|v| !v.is_empty()) {
            Some(url) => url,
            None => format!("sqlite://{}?mode=rwc", data_dir.join(SQLITE_FILE).display()),
        };
        let (jwt_secret, jwt_secret_source, jwt_secret_generated) =
            match lookup("JWT_SECRET").filter(|v| !v.is_empty()) {
                Some(secret) if secret.len() < 16 => {
                    return Err(ConfigError::Invalid {
                        name: "JWT_SECRET",
                        reason: "must be at least 16 characters".into(),
                    })
                }
                Some(secret) => (
                    JwtSecret::new(secret.into_bytes()),
                    "JWT_SECRET".to_owned(),
                    false,
                ),
                None => {
                    let (secret, made) = load_or_create_secret(&data_dir)?;
                    let path = data_dir.join(SECRET_FILE).display().to_string();
                    (secret, path, matches!(made, Made::Now))
                }
            };
        let routing_mode = match lookup("ROUTING_MODE") {
            Some(v) => v.parse().map_err(|reason| ConfigError::Invalid {
                name: "ROUTING_MODE",
                reason,
            })?,
            None => RoutingMode::default(),
        };
        let on_postgres =
            database_url.starts_with("postgres://") || database_url.starts_with("postgresql://");
        let event_bus = match lookup("EVENT_BUS").as_deref().map(str::trim) {
            None | Some("") => {
                if on_postgres {
                    EventBusKind::Postgres
                } else {
                    EventBusKind::InProcess
                }
            }
            Some("in-process") | Some("local") => EventBusKind::InProcess,
            Some("postgres") if on_postgres => EventBusKind::Postgres,
            Some("postgres") => {
                return Err(ConfigError::Invalid {
                    name: "EVENT_BUS",
                    reason: "postgres needs a postgres:// DATABASE_URL".into(),
                })
            }
            Some(url) if url.starts_with("nats://") => {
                match url.parse::<async_nats::ServerAddr>() {
                    Ok(addr) if !addr.host().is_empty() => {}
                    Ok(_) => {
                        return Err(ConfigError::Invalid {
                            name: "EVENT_BUS",
                            reason: "a NATS URL needs a host: nats://host:port".into(),
                        })
                    }
                    Err(e) => {
                        return Err(ConfigError::Invalid {
                            name: "EVENT_BUS",
                            reason: e.to_string(),
                        })
                    }
                }
                EventBusKind::Nats {
                    url: url.to_owned(),
                }
            }
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "EVENT_BUS",
                    reason: format!(
                        "{:?} is not supported; use in-process, postgres or nats://host:port",
                        redact_url(other)
                    ),
                })
            }
        };
        let nats_subject = match lookup("NATS_SUBJECT").as_deref().map(str::trim) {
            None | Some("") => None,
            Some(subject) => {
                if !matches!(event_bus, EventBusKind::Nats { .. }) {
                    return Err(ConfigError::Invalid {
                        name: "NATS_SUBJECT",
                        reason: "needs EVENT_BUS=nats://host:port".into(),
                    });
                }
                validate_subject(subject)?;
                Some(subject.to_owned())
            }
        };
        let listen_addr = lookup("LISTEN_ADDR").unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let public_url =
            match lookup("PUBLIC_URL").map(|u| u.trim().trim_end_matches('/').to_owned()) {
                None => None,
                Some(u) if u.is_empty() => None,
                Some(u) => Some(parse_public_url(&u)?),
            };
        let limits = Limits {
            max_body_bytes: parse_num(
                &lookup,
                "MAX_BODY_BYTES",
                64 * 1024,
                1024,
                16 * 1024 * 1024,
            )?,
            max_query_depth: parse_num(&lookup, "MAX_QUERY_DEPTH", 16, 2, 100)?,
            // Fields of the answer, lists counted by their page size: a full
            // page of 500 messages with every field is 8,500.
            max_query_complexity: parse_num(
                &lookup,
                "MAX_QUERY_COMPLEXITY",
                10_000,
                10,
                1_000_000,
            )?,
            max_aliases: parse_num(&lookup, "MAX_ALIASES", 30, 0, 10_000)?,
            introspection: match lookup("INTROSPECTION").as_deref().map(str::trim) {
                None | Some("") | Some("on") | Some("true") | Some("1") => true,
                Some("off") | Some("false") | Some("0") => false,
                Some(other) => {
                    return Err(ConfigError::Invalid {
                        name: "INTROSPECTION",
                        reason: format!("use on or off, not {other:?}"),
                    })
                }
            },
            ws_max_message_bytes: parse_num(
                &lookup,
                "WS_MAX_MESSAGE_BYTES",
                64 * 1024,
                1024,
                16 * 1024 * 1024,
            )?,
            ws_keepalive_secs: parse_num(&lookup, "WS_KEEPALIVE_SECS", 30, 1, 3600)?,
            ws_max_subscriptions: parse_num(&lookup, "WS_MAX_SUBSCRIPTIONS", 50, 1, 10_000)?,
            ws_init_timeout_secs: parse_num(&lookup, "WS_INIT_TIMEOUT_SECS", 10, 1, 3600)?,
            ws_send_timeout_secs: parse_num(&lookup, "WS_SEND_TIMEOUT_SECS", 10, 1, 3600)?,
            ws_read_buffer_bytes: parse_num(
                &lookup,
                "WS_READ_BUFFER_BYTES",
                1024,
                256,
                16 * 1024 * 1024,
            )?,
            ws_write_buffer_bytes: parse_num(
                &lookup,
                "WS_WRITE_BUFFER_BYTES",
                8 * 1024,
                0,
                16 * 1024 * 1024,
            )?,
            ip_max_connections: parse_num(&lookup, "IP_MAX_CONNECTIONS", 256, 1, 10_000_000)?,
            trusted_proxy_hops: parse_num(&lookup, "TRUSTED_PROXY_HOPS", 0, 0, 16)?,
            allowed_origins: lookup("ALLOWED_ORIGINS")
                .unwrap_or_default()
                .split(',')
                .map(|o| o.trim().trim_end_matches('/').to_owned())
                .filter(|o| !o.is_empty())
                .collect(),
            own_origins: own_origins(public_url.as_deref(), &listen_addr),
            trusted_proxies: lookup("TRUSTED_PROXIES")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| {
                    p.parse().map_err(|reason| ConfigError::Invalid {
                        name: "TRUSTED_PROXIES",
                        reason,
                    })
                })
                .collect::<Result<_, _>>()?,
            max_response_bytes: parse_num(
                &lookup,
                "MAX_RESPONSE_BYTES",
                4 * 1024 * 1024,
                1024,
                1024 * 1024 * 1024,
            )?,
            http_header_timeout_secs: parse_num(&lookup, "HTTP_HEADER_TIMEOUT_SECS", 10, 1, 3600)?,
            metrics_token: match lookup("METRICS_TOKEN").map(|t| t.trim().to_owned()) {
                None => None,
                Some(t) if t.is_empty() => None,
                Some(t) if t.len() < 16 => {
                    return Err(ConfigError::Invalid {
                        name: "METRICS_TOKEN",
                        reason: "must be at least 16 characters".into(),
                    })
                }
                Some(t) => Some(Secret(t)),
            },
            graphiql_cdn: match lookup("GRAPHIQL_CDN")
                .map(|c| c.trim().trim_end_matches('/').to_owned())
            {
                None => DEFAULT_GRAPHIQL_CDN.to_owned(),
                Some(c)
                    if c.starts_with("https://")
                        || c.starts_with("http://")
                        || c.starts_with('/') =>
                {
                    c
                }
                Some(c) => {
                    return Err(ConfigError::Invalid {
                        name: "GRAPHIQL_CDN",
                        reason: format!("{c:?} must be an http(s) URL or a path on this server"),
                    })
                }
            },
        };
        Ok(Settings {
            limits,
            event_bus,
            nats_subject,
            database_url,
            listen_addr,
            public_url,
            max_token_ttl_secs: parse_num(
                &lookup,
                "MAX_TOKEN_TTL_SECS",
                7 * 24 * 3600,
                60,
                366 * 24 * 3600,
            )?,
            jwt_secret,
            jwt_secret_source,
            jwt_secret_generated,
            routing_mode,
            agent_capacity: parse_num(&lookup, "AGENT_CAPACITY", 2, 1, 1000)?,
            history_days: parse_num(&lookup, "HISTORY_DAYS", 14, 1, 3650)?,
            retention_days: parse_num(&lookup, "RETENTION_DAYS", 90, 1, 3650)?,
            max_message_chars: parse_num(&lookup, "MAX_MESSAGE_CHARS", 4000, 1, 100_000)?,
            db_pool_size: parse_num(&lookup, "DB_POOL_SIZE", 16, 1, 1000)?,
            db_acquire_timeout_secs: parse_num(&lookup, "DB_ACQUIRE_TIMEOUT_SECS", 10, 1, 300)?,
            offer_timeout_secs: parse_num(&lookup, "OFFER_TIMEOUT_SECS", 30, 1, 3600)?,
            resume_grace_secs: parse_num(&lookup, "RESUME_GRACE_SECS", 600, 1, 7 * 24 * 3600)?,
            message_rate_per_sec: parse_num(&lookup, "MESSAGE_RATE_PER_SEC", 5.0, 0.01, 100_000.0)?,
            message_burst: parse_num(&lookup, "MESSAGE_BURST", 10, 1, 100_000)?,
            ip_session_rate_per_min: parse_num(
                &lookup,
                "IP_SESSION_RATE_PER_MIN",
                60.0,
                0.01,
                10_000_000.0,
            )?,
            ip_session_burst: parse_num(&lookup, "IP_SESSION_BURST", 30, 1, 10_000_000)?,
            shutdown_grace_secs: parse_num(&lookup, "SHUTDOWN_GRACE_SECS", 10, 0, 3600)?,
            data_dir,
            log_json: lookup("LOG_FORMAT").is_some_and(|v| v.eq_ignore_ascii_case("json")),
        })
    }

    /// The lines printed at start: every setting and its value, secrets masked.
    pub fn banner(&self) -> Vec<String> {
        vec![
            format!("DATABASE_URL={}", redact_url(&self.database_url)),
            format!("LISTEN_ADDR={}", self.listen_addr),
            format!("JWT_SECRET=<from {}>", self.jwt_secret_source),
            format!("ROUTING_MODE={}", self.routing_mode),
            format!("AGENT_CAPACITY={}", self.agent_capacity),
            format!("HISTORY_DAYS={}", self.history_days),
            format!("RETENTION_DAYS={}", self.retention_days),
            format!("MAX_MESSAGE_CHARS={}", self.max_message_chars),
            format!("DB_POOL_SIZE={}", self.db_pool_size),
            format!("DB_ACQUIRE_TIMEOUT_SECS={}", self.db_acquire_timeout_secs),
            format!("OFFER_TIMEOUT_SECS={}", self.offer_timeout_secs),
            format!("EVENT_BUS={}", self.event_bus),
            format!(
                "NATS_SUBJECT={}",
                self.nats_subject
                    .as_deref()
                    .unwrap_or("<from the deployment id>")
            ),
            format!("RESUME_GRACE_SECS={}", self.resume_grace_secs),
            format!("MESSAGE_RATE_PER_SEC={}", self.message_rate_per_sec),
            format!("MESSAGE_BURST={}", self.message_burst),
            format!("IP_SESSION_RATE_PER_MIN={}", self.ip_session_rate_per_min),
            format!("IP_SESSION_BURST={}", self.ip_session_burst),
            format!("SHUTDOWN_GRACE_SECS={}", self.shutdown_grace_secs),
            format!("MAX_BODY_BYTES={}", self.limits.max_body_bytes),
            format!("MAX_QUERY_DEPTH={}", self.limits.max_query_depth),
            format!("MAX_QUERY_COMPLEXITY={}", self.limits.max_query_complexity),
            format!("MAX_ALIASES={}", self.limits.max_aliases),
            format!(
                "INTROSPECTION={}",
                if self.limits.introspection {
                    "on"
                } else {
                    "off"
                }
            ),
            format!("WS_MAX_MESSAGE_BYTES={}", self.limits.ws_max_message_bytes),
            format!("WS_KEEPALIVE_SECS={}", self.limits.ws_keepalive_secs),
            format!("WS_MAX_SUBSCRIPTIONS={}", self.limits.ws_max_subscriptions),
            format!("WS_INIT_TIMEOUT_SECS={}", self.limits.ws_init_timeout_secs),
            format!("WS_SEND_TIMEOUT_SECS={}", self.limits.ws_send_timeout_secs),
            format!("WS_READ_BUFFER_BYTES={}", self.limits.ws_read_buffer_bytes),
            format!(
                "WS_WRITE_BUFFER_BYTES={}",
                self.limits.ws_write_buffer_bytes
            ),
            format!("IP_MAX_CONNECTIONS={}", self.limits.ip_max_connections),
            format!("TRUSTED_PROXY_HOPS={}", self.limits.trusted_proxy_hops),
            format!("ALLOWED_ORIGINS={}", self.limits.allowed_origins.join(",")),
            format!(
                "PUBLIC_URL={}",
                self.public_url
                    .as_deref()
                    .unwrap_or("<none: the listen address>")
            ),
            format!(
                "TRUSTED_PROXIES={}",
                self.limits
                    .trusted_proxies
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            format!("MAX_RESPONSE_BYTES={}", self.limits.max_response_bytes),
            format!(
                "HTTP_HEADER_TIMEOUT_SECS={}",
                self.limits.http_header_timeout_secs
            ),
            format!("MAX_TOKEN_TTL_SECS={}", self.max_token_ttl_secs),
            format!(
                "METRICS_TOKEN={}",
                if self.limits.metrics_token.is_some() {
                    "<set>"
                } else {
                    "<none: /metrics is open>"
                }
            ),
            format!("GRAPHIQL_CDN={}", self.limits.graphiql_cdn),
            format!("DATA_DIR={}", self.data_dir.display()),
            format!("LOG_FORMAT={}", if self.log_json { "json" } else { "text" }),
        ]
    }
}

fn parse_num<T>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    let Some(raw) = lookup(name) else {
        return Ok(default);
    };
    match raw.trim().parse::<T>() {
        Ok(v) if v >= min && v <= max => Ok(v),
        _ => Err(ConfigError::Invalid {
            name,
            reason: format!("expected a number from {min} to {max}, got {raw:?}"),
        }),
    }
}

/// A NATS subject to publish on: dot-separated tokens, no wildcards.
fn validate_subject(subject: &str) -> Result<(), ConfigError> {
    let valid = subject
        .split('.')
        .all(|t| !t.is_empty() && !t.contains(|c: char| c.is_whitespace() || c == '*' || c == '>'));
    if valid {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            name: "NATS_SUBJECT",
            reason: format!("{subject:?} is not a NATS subject without wildcards"),
        })
    }
}

/// Creates the data folder if missing, readable by this user only: it
/// holds the signing secret and, by default, every chat.
pub fn ensure_private_dir(dir: &Path) -> Result<(), ConfigError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| ConfigError::DataDir {
        path: dir.to_owned(),
        source,
    })
}

enum Made {
    Now,
    Before,
}

/// Reuses the secret in the data folder, or creates it once with mode 0600.
/// The secret is written whole to a private temporary file, then linked
/// into place: a second process starting at the same moment finds either
/// no secret (and its link fails, so it reads ours) or the whole one,
/// never half of it.
fn load_or_create_secret(dir: &Path) -> Result<(JwtSecret, Made), ConfigError> {
    ensure_private_dir(dir)?;
    let path = dir.join(SECRET_FILE);
    let io_err = |source| ConfigError::DataDir {
        path: path.clone(),
        source,
    };
    if let Some(secret) = read_secret(&path)? {
        return Ok((secret, Made::Before));
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| io_err(std::io::Error::other(e.to_string())))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let temporary = dir.join(format!(".{SECRET_FILE}.{}", uuid::Uuid::new_v4().simple()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&temporary).and_then(|mut file| {
        file.write_all(hex.as_bytes())?;
        file.sync_all()
    });
    let linked = written.and_then(|()| std::fs::hard_link(&temporary, &path));
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => Ok((JwtSecret::new(hex.into_bytes()), Made::Now)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Another process got there first: use its secret.
            let secret = read_secret(&path)?.ok_or_else(|| io_err(e))?;
            Ok((secret, Made::Before))
        }
        Err(e) => Err(io_err(e)),
    }
}

fn read_secret(path: &Path) -> Result<Option<JwtSecret>, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ConfigError::DataDir {
                path: path.to_owned(),
                source,
            })
        }
    };
    let text = text.trim();
    if text.len() < 32 {
        return Err(ConfigError::Invalid {
            name: "JWT_SECRET",
            reason: format!(
                "{} is too short; delete it to make a new one",
                path.display()
            ),
        });
    }
    Ok(Some(JwtSecret::new(text.as_bytes().to_vec())))
}

/// A connection URL for logs: the password of `scheme://user:password@host`,
/// a bare token in the user part (`nats://TOKEN@host`: NATS reads it as a
/// token; database URLs put only the user name there), and the values of
/// query parameters that carry credentials (`?password=…`) masked.
pub(crate) fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let scheme = &base[..scheme_end];
            let creds = &base[scheme_end + 3..at];
            let masked = match creds.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None if matches!(scheme, "postgres" | "postgresql") => creds.to_owned(),
                None => "***".to_owned(),
            };
            format!("{scheme}://{masked}{}", &base[at..])
        }
        _ => base.to_owned(),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if is_credential(key) => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

fn is_credential(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["pass", "token", "secret", "auth", "key", "credential"]
        .iter()
        .any(|word| key.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    fn temp_dir() -> PathBuf {
        std::env::temp_dir().join(format!("switchboard-config-{}", uuid::Uuid::new_v4()))
    }

    #[test]
    fn defaults_use_sqlite_and_a_generated_secret_that_is_reused() {
        let dir = temp_dir();
        let d = dir.to_str().unwrap();
        let first = settings(&[("DATA_DIR", d)]).unwrap();
        assert!(first.database_url.starts_with("sqlite://"));
        assert_eq!(first.listen_addr, "127.0.0.1:8080");
        assert_eq!(first.agent_capacity, 2);
        assert_eq!(first.history_days, 14);
        assert_eq!(first.retention_days, 90);
        assert_eq!(first.event_bus, EventBusKind::InProcess);
        let second = settings(&[("DATA_DIR", d)]).unwrap();
        assert_eq!(first.jwt_secret.expose(), second.jwt_secret.expose());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(SECRET_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_numbers_and_short_secrets_are_refused() {
        let dir = temp_dir();
        let d = dir.to_str().unwrap();
        assert!(settings(&[("DATA_DIR", d), ("AGENT_CAPACITY", "zero")]).is_err());
        assert!(settings(&[("DATA_DIR", d), ("AGENT_CAPACITY", "0")]).is_err());
        assert!(settings(&[("DATA_DIR", d), ("JWT_SECRET", "short")]).is_err());
        assert!(settings(&[("DATA_DIR", d), ("ROUTING_MODE", "random")]).is_err());
        assert!(
            settings(&[("DATA_DIR", d), ("EVENT_BUS", "postgres")]).is_err(),
            "postgres bus on SQLite"
        );
        assert!(settings(&[("DATA_DIR", d), ("EVENT_BUS", "carrier-pigeon")]).is_err());
        assert!(settings(&[("DATA_DIR", d), ("EVENT_BUS", "nats://")]).is_err());
        assert!(
            settings(&[("DATA_DIR", d), ("NATS_SUBJECT", "a.b")]).is_err(),
            "a subject without NATS"
        );
        for bad in ["a.*", "a.>", "a..b", "a b"] {
            assert!(
                settings(&[
                    ("DATA_DIR", d),
                    ("EVENT_BUS", "nats://127.0.0.1:4222"),
                    ("NATS_SUBJECT", bad)
                ])
                .is_err(),
                "{bad}"
            );
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_nats_url_selects_the_nats_bus_and_its_password_is_masked() {
        let dir = temp_dir();
        let d = dir.to_str().unwrap();
        let s = settings(&[
            ("DATA_DIR", d),
            ("EVENT_BUS", "nats://relay:s3cret@127.0.0.1:4222"),
        ])
        .unwrap();
        assert_eq!(
            s.event_bus,
            EventBusKind::Nats {
                url: "nats://relay:s3cret@127.0.0.1:4222".into()
            }
        );
        assert_eq!(s.nats_subject, None);
        let banner = s.banner().join("\n");
        assert!(banner.contains("EVENT_BUS=nats://relay:***@127.0.0.1:4222"));
        assert!(!banner.contains("s3cret"));
        let s = settings(&[
            ("DATA_DIR", d),
            ("EVENT_BUS", "nats://127.0.0.1:4222"),
            ("NATS_SUBJECT", "tenant-a.switchboard"),
        ])
        .unwrap();
        assert_eq!(s.nats_subject.as_deref(), Some("tenant-a.switchboard"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn credentials_in_query_parameters_and_nats_tokens_are_masked() {
        assert_eq!(
            redact_url("postgres://db/chat?user=app&password=s3cret&sslmode=require"),
            "postgres://db/chat?user=app&password=***&sslmode=require"
        );
        assert_eq!(
            redact_url("nats://s3cr3t-token@127.0.0.1:4222"),
            "nats://***@127.0.0.1:4222"
        );
        let dir = temp_dir();
        let s = settings(&[
            ("DATA_DIR", dir.to_str().unwrap()),
            ("DATABASE_URL", "postgres://db/chat?password=hunter22"),
            ("EVENT_BUS", "nats://tok3n@127.0.0.1:4222"),
            ("METRICS_TOKEN", "metrics-token-0123456789"),
        ])
        .unwrap();
        let banner = s.banner().join("\n");
        for secret in ["hunter22", "tok3n", "metrics-token-0123456789"] {
            assert!(!banner.contains(secret), "{secret} in {banner}");
        }
        assert!(!format!("{s:?}").contains("metrics-token-0123456789"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_secret_made_by_one_of_two_processes_starting_together_is_shared() {
        for _ in 0..20 {
            let dir = temp_dir();
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let dir = dir.clone();
                    std::thread::spawn(move || load_or_create_secret(&dir).map(|(s, _)| s))
                })
                .collect();
            let secrets: Vec<Vec<u8>> = threads
                .into_iter()
                .map(|t| {
                    t.join()
                        .unwrap()
                        .expect("no half-written secret")
                        .expose()
                        .to_vec()
                })
                .collect();
            assert!(secrets.windows(2).all(|w| w[0] == w[1]));
            let leftovers = std::fs::read_dir(&dir).unwrap().count();
            assert_eq!(leftovers, 1, "only the secret remains");
            std::fs::remove_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn the_data_folder_is_private_and_made_only_when_needed() {
        let dir = temp_dir();
        let d = dir.to_str().unwrap();
        settings(&[("DATA_DIR", d), ("JWT_SECRET", "0123456789abcdef0123")]).unwrap();
        assert!(!dir.exists(), "parsing settings made the data folder");
        settings(&[("DATA_DIR", d)]).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn own_origins_come_from_public_url_or_the_listen_address() {
        assert_eq!(
            own_origins(Some("https://Chat.example.com/support"), "0.0.0.0:8080"),
            vec!["https://chat.example.com"]
        );
        let local = own_origins(None, "127.0.0.1:8080");
        assert!(local.contains(&"http://127.0.0.1:8080".to_owned()));
        assert!(local.contains(&"http://localhost:8080".to_owned()));
        assert_eq!(own_origins(None, "10.0.0.5:80"), vec!["http://10.0.0.5:80"]);
        let dir = temp_dir();
        let d = dir.to_str().unwrap();
        assert!(settings(&[("DATA_DIR", d), ("PUBLIC_URL", "ftp://x")]).is_err());
        assert!(settings(&[("DATA_DIR", d), ("PUBLIC_URL", "https://u:p@x")]).is_err());
        assert!(settings(&[("DATA_DIR", d), ("TRUSTED_PROXIES", "10.0.0.0/33")]).is_err());
        let s = settings(&[("DATA_DIR", d), ("TRUSTED_PROXIES", "10.0.0.0/8, ::1")]).unwrap();
        assert_eq!(s.limits.trusted_proxies.len(), 2);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn passwords_are_masked_in_the_banner() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/chat"),
            "postgres://app:***@db:5432/chat"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/x"),
            "postgres://postgres@127.0.0.1/x"
        );
    }
}
