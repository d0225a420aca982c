//! Settings from the environment, each with a default that works on a fresh
//! machine: SQLite in `./data`, a generated JWT secret kept next to it.
//! Each setting is declared once, in [`settings`]; parsing here reads only
//! through those declarations and touches no files.

mod context;
pub mod files;
mod guests;
mod net;
mod secret;
pub mod settings;
mod tickets;

use std::fmt;
use std::path::PathBuf;

use crate::matching::RoutingMode;
pub use context::ContextSettings;
pub use guests::GuestSettings;
pub(crate) use net::redact_url;
pub use net::{database_connect_url, own_origins, IpNet};
pub use secret::{ensure_private_dir, JwtSecret, JwtSecretSource, LoadedSecret};
use settings::*;
pub use tickets::TicketSettings;

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
    /// Largest uploaded file (multipart requests: this and MAX_BODY_BYTES).
    pub max_upload_bytes: usize,
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
    /// Client addresses and ranges refused everywhere (FORBIDDEN).
    pub blocked_clients: Vec<IpNet>,
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
pub struct Secret(pub(crate) String);

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

#[derive(Clone, Debug)]
pub struct Settings {
    pub database_url: String,
    pub listen_addr: String,
    /// Where clients reach the server (`https://chat.example.com`), when
    /// it is behind a proxy; its origin is the server's own.
    pub public_url: Option<String>,
    /// Longest lifetime (exp − iat) a token may claim.
    pub max_token_ttl_secs: i64,
    /// JWT_SECRET, or the file in DATA_DIR that `load` reads or makes.
    pub jwt_secret: JwtSecretSource,
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
    pub skill_wait_secs: i64,
    pub resume_grace_secs: i64,
    /// How long an AVAILABLE agent may be without a connection before AWAY.
    pub agent_away_secs: i64,
    /// How long an agent may be without a connection before their chats
    /// go back to the queue; at least `agent_away_secs`.
    pub agent_abandon_secs: i64,
    pub message_rate_per_sec: f64,
    pub message_burst: u32,
    /// New sessions one client address may start per minute, and the burst.
    pub ip_session_rate_per_min: f64,
    pub ip_session_burst: u32,
    /// How long after its end a chat may be rated.
    pub rating_window_days: i64,
    /// The ticket system; None when TICKET_URL is unset.
    pub tickets: Option<TicketSettings>,
    pub guests: GuestSettings,
    /// How long a stopping server waits for requests and WebSockets to finish.
    pub shutdown_grace_secs: u64,
    pub event_bus: EventBusKind,
    /// The NATS subject of this deployment's events; by default one derived
    /// from the deployment id stored in the database.
    pub nats_subject: Option<String>,
    pub limits: Limits,
    pub webhooks: WebhookSettings,
    pub files: files::FileSettings,
    /// The customer context provider (CONTEXT_*).
    pub context: ContextSettings,
    pub data_dir: PathBuf,
    pub log_json: bool,
}

/// Outbound webhooks (WEBHOOK_*).
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    pub timeout_ms: u64,
    /// As given; [`WebhookSettings::schedule`] is the parsed form.
    pub retry_schedule: String,
    pub schedule: Vec<std::time::Duration>,
    pub disable_after_secs: i64,
    pub allow_private: bool,
}

impl WebhookSettings {
    fn read<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let retry_schedule = env.word(&WEBHOOK_RETRY_SCHEDULE);
        let schedule = crate::domain::webhooks::parse_retry_schedule(&retry_schedule)
            .map_err(|reason| invalid(&WEBHOOK_RETRY_SCHEDULE, reason))?;
        Ok(WebhookSettings {
            timeout_ms: env.int(&WEBHOOK_TIMEOUT_MS)?,
            retry_schedule,
            schedule,
            disable_after_secs: env.int(&WEBHOOK_DISABLE_AFTER_SECS)?,
            allow_private: env.switch(&WEBHOOK_ALLOW_PRIVATE)?,
        })
    }
}

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

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can pass their own values.
    /// Touches no files: the data folder and a generated secret are made
    /// later, by [`JwtSecretSource::load`] and the server's start.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(lookup);
        let data_dir = PathBuf::from(env.word(&DATA_DIR));
        let database_url = match env.text(&DATABASE_URL).filter(|v| !v.is_empty()) {
            Some(url) => url,
            None => format!("sqlite://{}?mode=rwc", data_dir.join(SQLITE_FILE).display()),
        };
        let jwt_secret = match env.text(&JWT_SECRET).filter(|v| !v.is_empty()) {
            Some(secret) if secret.len() < 16 => {
                return Err(invalid(&JWT_SECRET, "must be at least 16 characters"))
            }
            Some(secret) => JwtSecretSource::Env(JwtSecret::new(secret.into_bytes())),
            None => JwtSecretSource::DataDir(data_dir.clone()),
        };
        let routing_mode = env
            .word(&ROUTING_MODE)
            .parse()
            .map_err(|reason: String| invalid(&ROUTING_MODE, reason))?;
        let event_bus = parse_event_bus(env.text(&EVENT_BUS), &database_url)?;
        let nats_subject = match env.text(&NATS_SUBJECT).as_deref().map(str::trim) {
            None | Some("") => None,
            Some(subject) => {
                if !matches!(event_bus, EventBusKind::Nats { .. }) {
                    return Err(invalid(&NATS_SUBJECT, "needs EVENT_BUS=nats://host:port"));
                }
                validate_subject(subject)?;
                Some(subject.to_owned())
            }
        };
        let listen_addr = env.word(&LISTEN_ADDR);
        let public_url = match env
            .text(&PUBLIC_URL)
            .map(|u| u.trim().trim_end_matches('/').to_owned())
        {
            None => None,
            Some(u) if u.is_empty() => None,
            Some(u) => Some(parse_public_url(&u)?),
        };
        let limits = Limits {
            max_body_bytes: env.int(&MAX_BODY_BYTES)?,
            max_upload_bytes: env.int(&MAX_UPLOAD_BYTES)?,
            max_query_depth: env.int(&MAX_QUERY_DEPTH)?,
            // Fields of the answer, lists counted by their page size: a full
            // page of 500 messages with every field is 8,500.
            max_query_complexity: env.int(&MAX_QUERY_COMPLEXITY)?,
            max_aliases: env.int(&MAX_ALIASES)?,
            introspection: env.switch(&INTROSPECTION)?,
            ws_max_message_bytes: env.int(&WS_MAX_MESSAGE_BYTES)?,
            ws_keepalive_secs: env.int(&WS_KEEPALIVE_SECS)?,
            ws_max_subscriptions: env.int(&WS_MAX_SUBSCRIPTIONS)?,
            ws_init_timeout_secs: env.int(&WS_INIT_TIMEOUT_SECS)?,
            ws_send_timeout_secs: env.int(&WS_SEND_TIMEOUT_SECS)?,
            ws_read_buffer_bytes: env.int(&WS_READ_BUFFER_BYTES)?,
            ws_write_buffer_bytes: env.int(&WS_WRITE_BUFFER_BYTES)?,
            ip_max_connections: env.int(&IP_MAX_CONNECTIONS)?,
            blocked_clients: env
                .list(&BLOCKED_CLIENTS)
                .iter()
                .map(|p| {
                    p.parse()
                        .map_err(|reason| invalid(&BLOCKED_CLIENTS, reason))
                })
                .collect::<Result<_, _>>()?,
            trusted_proxy_hops: env.int(&TRUSTED_PROXY_HOPS)?,
            allowed_origins: env
                .list(&ALLOWED_ORIGINS)
                .into_iter()
                .map(|o| o.trim_end_matches('/').to_owned())
                .filter(|o| !o.is_empty())
                .collect(),
            own_origins: own_origins(public_url.as_deref(), &listen_addr),
            trusted_proxies: env
                .list(&TRUSTED_PROXIES)
                .iter()
                .map(|p| {
                    p.parse()
                        .map_err(|reason| invalid(&TRUSTED_PROXIES, reason))
                })
                .collect::<Result<_, _>>()?,
            max_response_bytes: env.int(&MAX_RESPONSE_BYTES)?,
            http_header_timeout_secs: env.int(&HTTP_HEADER_TIMEOUT_SECS)?,
            metrics_token: match env.text(&METRICS_TOKEN).map(|t| t.trim().to_owned()) {
                None => None,
                Some(t) if t.is_empty() => None,
                Some(t) if t.len() < 16 => {
                    return Err(invalid(&METRICS_TOKEN, "must be at least 16 characters"))
                }
                Some(t) => Some(Secret(t)),
            },
            graphiql_cdn: {
                let cdn = env.word(&GRAPHIQL_CDN);
                let cdn = cdn.trim().trim_end_matches('/');
                if !(cdn.starts_with("https://")
                    || cdn.starts_with("http://")
                    || cdn.starts_with('/'))
                {
                    return Err(invalid(
                        &GRAPHIQL_CDN,
                        format!("{cdn:?} must be an http(s) URL or a path on this server"),
                    ));
                }
                cdn.to_owned()
            },
        };
        let agent_away_secs = env.int(&AGENT_AWAY_SECS)?;
        let agent_abandon_secs: i64 = env.int(&AGENT_ABANDON_SECS)?;
        if agent_abandon_secs < agent_away_secs {
            // An agent whose chats were sent back while still AVAILABLE
            // would be given new ones at once.
            return Err(invalid(
                &AGENT_ABANDON_SECS,
                format!("must be at least AGENT_AWAY_SECS ({agent_away_secs})"),
            ));
        }
        Ok(Settings {
            webhooks: WebhookSettings::read(&env)?,
            files: files::FileSettings::parse(&env)?,
            context: context::parse(&env)?,
            limits,
            event_bus,
            nats_subject,
            database_url,
            listen_addr,
            public_url,
            max_token_ttl_secs: env.int(&MAX_TOKEN_TTL_SECS)?,
            rating_window_days: env.int(&RATING_WINDOW_DAYS)?,
            tickets: tickets::parse(&env)?,
            guests: guests::parse(&env, env.int(&MAX_TOKEN_TTL_SECS)?)?,
            jwt_secret,
            routing_mode,
            agent_capacity: env.int(&AGENT_CAPACITY)?,
            history_days: env.int(&HISTORY_DAYS)?,
            retention_days: env.int(&RETENTION_DAYS)?,
            max_message_chars: env.int(&MAX_MESSAGE_CHARS)?,
            db_pool_size: env.int(&DB_POOL_SIZE)?,
            db_acquire_timeout_secs: env.int(&DB_ACQUIRE_TIMEOUT_SECS)?,
            offer_timeout_secs: env.int(&OFFER_TIMEOUT_SECS)?,
            skill_wait_secs: env.int(&SKILL_WAIT_SECS)?,
            resume_grace_secs: env.int(&RESUME_GRACE_SECS)?,
            agent_away_secs,
            agent_abandon_secs,
            message_rate_per_sec: env.float(&MESSAGE_RATE_PER_SEC)?,
            message_burst: env.int(&MESSAGE_BURST)?,
            ip_session_rate_per_min: env.float(&IP_SESSION_RATE_PER_MIN)?,
            ip_session_burst: env.int(&IP_SESSION_BURST)?,
            shutdown_grace_secs: env.int(&SHUTDOWN_GRACE_SECS)?,
            data_dir,
            log_json: env.word(&LOG_FORMAT).eq_ignore_ascii_case("json"),
        })
    }

    /// The lines printed at start: every setting and its value, secrets masked.
    pub fn banner(&self) -> Vec<String> {
        settings::ALL.iter().map(|s| s.banner_line(self)).collect()
    }
}

fn invalid(setting: &Setting, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name: setting.name,
        reason: reason.into(),
    }
}

/// The environment, read only through the declarations in [`settings`]:
/// a setting cannot be read without being declared, and its default and
/// bounds come from the declaration.
struct Env<F>(F);

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// The value as set, if it is.
    fn text(&self, setting: &Setting) -> Option<String> {
        (self.0)(setting.name)
    }

    /// The value as set, or the declared default.
    fn word(&self, setting: &Setting) -> String {
        let Kind::Word { default } = setting.kind else {
            panic!("{} is not declared as a Word", setting.name)
        };
        self.text(setting).unwrap_or_else(|| default.to_owned())
    }

    /// The comma-separated values, trimmed, empty ones left out.
    fn list(&self, setting: &Setting) -> Vec<String> {
        self.text(setting)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn int<T: TryFrom<i64>>(&self, setting: &Setting) -> Result<T, ConfigError> {
        let Kind::Int { default, min, max } = setting.kind else {
            panic!("{} is not declared as an Int", setting.name)
        };
        let value = self.number(setting, default, min, max)?;
        // In bounds, which every declaration keeps within its field's type.
        T::try_from(value).map_err(|_| invalid(setting, format!("{value} is out of range")))
    }

    fn float(&self, setting: &Setting) -> Result<f64, ConfigError> {
        let Kind::Float { default, min, max } = setting.kind else {
            panic!("{} is not declared as a Float", setting.name)
        };
        self.number(setting, default, min, max)
    }

    fn number<T>(&self, setting: &Setting, default: T, min: T, max: T) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
    {
        let Some(raw) = self.text(setting) else {
            return Ok(default);
        };
        match raw.trim().parse::<T>() {
            Ok(v) if v >= min && v <= max => Ok(v),
            _ => Err(invalid(
                setting,
                format!("expected a number from {min} to {max}, got {raw:?}"),
            )),
        }
    }

    fn switch(&self, setting: &Setting) -> Result<bool, ConfigError> {
        let Kind::Switch { default } = setting.kind else {
            panic!("{} is not declared as a Switch", setting.name)
        };
        match self.text(setting).as_deref().map(str::trim) {
            None | Some("") => Ok(default),
            Some("on") | Some("true") | Some("1") => Ok(true),
            Some("off") | Some("false") | Some("0") => Ok(false),
            Some(other) => Err(invalid(setting, format!("use on or off, not {other:?}"))),
        }
    }
}

/// EVENT_BUS: by default LISTEN/NOTIFY on Postgres, in-process on SQLite.
fn parse_event_bus(value: Option<String>, database_url: &str) -> Result<EventBusKind, ConfigError> {
    let on_postgres =
        database_url.starts_with("postgres://") || database_url.starts_with("postgresql://");
    match value.as_deref().map(str::trim) {
        None | Some("") if on_postgres => Ok(EventBusKind::Postgres),
        None | Some("") => Ok(EventBusKind::InProcess),
        Some("in-process") | Some("local") => Ok(EventBusKind::InProcess),
        Some("postgres") if on_postgres => Ok(EventBusKind::Postgres),
        Some("postgres") => Err(invalid(
            &EVENT_BUS,
            "postgres needs a postgres:// DATABASE_URL",
        )),
        Some(url) if url.starts_with("nats://") => match url.parse::<async_nats::ServerAddr>() {
            Ok(addr) if !addr.host().is_empty() => Ok(EventBusKind::Nats {
                url: url.to_owned(),
            }),
            Ok(_) => Err(invalid(
                &EVENT_BUS,
                "a NATS URL needs a host: nats://host:port",
            )),
            Err(e) => Err(invalid(&EVENT_BUS, e.to_string())),
        },
        Some(other) => Err(invalid(
            &EVENT_BUS,
            format!(
                "{:?} is not supported; use in-process, postgres or nats://host:port",
                redact_url(other)
            ),
        )),
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

#[cfg(test)]
mod tests;
