//! Every setting, declared once: its name, default, bounds, how the banner
//! shows it and what it means. The parser reads values only through these
//! declarations; the start-up banner, `switchboard --help` and the README's
//! configuration table are rendered from them.

use super::{redact_url, Settings, DEFAULT_GRAPHIQL_CDN};
use crate::domain::MAX_CAPACITY;

/// One environment variable.
pub struct Setting {
    pub name: &'static str,
    pub kind: Kind,
    pub mask: Mask,
    /// The value in effect, as the banner shows it (before `mask`).
    pub show: fn(&Settings) -> String,
    /// What it means, in Markdown (the README's "Meaning" column).
    pub help: &'static str,
}

/// What a setting holds, with its default.
pub enum Kind {
    /// A whole number from `min` to `max`.
    Int { default: i64, min: i64, max: i64 },
    /// A number from `min` to `max`.
    Float { default: f64, min: f64, max: f64 },
    /// `on` or `off` (also `true`/`false`, `1`/`0`).
    Switch { default: bool },
    /// Text whose default is this literal value.
    Word { default: &'static str },
    /// Text whose default depends on other settings, or is none: `default`
    /// describes it to humans, in Markdown.
    Text { default: &'static str },
    /// Comma-separated values; none by default.
    List,
}

/// How much of a value the start-up banner may show.
pub enum Mask {
    Plain,
    /// A URL that may carry a password or token: those parts are masked.
    Credentials,
    /// Never shown: `show` says only where it came from, or whether it is set.
    Whole,
}

impl Setting {
    /// The default, as the README and `--help` show it (Markdown).
    pub fn default_shown(&self) -> String {
        match self.kind {
            Kind::Int { default, .. } => format!("`{default}`"),
            Kind::Float { default, .. } => format!("`{default}`"),
            Kind::Switch { default } => format!("`{}`", on_off(default)),
            Kind::Word { default } => format!("`{default}`"),
            Kind::Text { default } => default.to_owned(),
            Kind::List => "none".to_owned(),
        }
    }

    /// `NAME=value` for the start-up banner, secrets masked.
    pub fn banner_line(&self, settings: &Settings) -> String {
        let value = (self.show)(settings);
        let value = match self.mask {
            Mask::Plain | Mask::Whole => value,
            Mask::Credentials => redact_url(&value),
        };
        format!("{}={value}", self.name)
    }
}

fn on_off(on: bool) -> String {
    if on { "on" } else { "off" }.to_owned()
}

fn join(values: &[impl ToString]) -> String {
    values
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// An AWS_* setting for the banner: its value, `<set>` for secrets, or where it comes from.
fn aws(s: &Settings, name: &str, secret: bool) -> String {
    match s.files.aws.0.iter().find(|(n, _)| *n == name) {
        Some(_) if secret => "<set>".into(),
        Some((_, v)) => v.expose().to_owned(),
        None => "<from the environment>".into(),
    }
}

const KIB: i64 = 1024;
const MIB: i64 = 1024 * KIB;
const DAY: i64 = 24 * 3600;

/// Declares each setting as a constant named after its variable, and
/// [`ALL`] listing them in this order.
macro_rules! settings {
    ($($name:ident { $($field:ident: $value:expr),* $(,)? })*) => {
        $(pub const $name: Setting = Setting { name: stringify!($name), $($field: $value),* };)*
        /// Every setting, in the order of the README and the banner.
        pub const ALL: &[Setting] = &[$($name),*];
    };
}

use Kind::*;
use Mask::*;

settings! {
    DATABASE_URL {
        kind: Text { default: "SQLite file `DATA_DIR/switchboard.db`" },
        mask: Credentials,
        show: |s| s.database_url.clone(),
        help: "`postgres://…` for production; a server on loopback is reached without TLS unless the URL sets `sslmode`",
    }
    LISTEN_ADDR {
        kind: Word { default: "127.0.0.1:8080" },
        mask: Plain,
        show: |s| s.listen_addr.clone(),
        help: "HTTP and WebSocket address",
    }
    JWT_SECRET {
        kind: Text { default: "generated once into `DATA_DIR/jwt_secret`" },
        mask: Whole,
        show: |s| format!("<from {}>", s.jwt_secret.origin()),
        help: "HS256 signing secret, at least 16 characters",
    }
    ROUTING_MODE {
        kind: Word { default: "fair" },
        mask: Plain,
        show: |s| s.routing_mode.to_string(),
        help: "`fair`, `auto` or `manual`; see Routing",
    }
    OFFER_TIMEOUT_SECS {
        kind: Int { default: 30, min: 1, max: 3600 },
        mask: Plain,
        show: |s| s.offer_timeout_secs.to_string(),
        help: "How long an agent has to accept an offer",
    }
    SKILL_WAIT_SECS {
        kind: Int { default: 60, min: 0, max: 7 * DAY },
        mask: Plain,
        show: |s| s.skill_wait_secs.to_string(),
        help: "How long a session's skills are required; after that any agent may take it",
    }
    RESUME_GRACE_SECS {
        kind: Int { default: 600, min: 1, max: 7 * DAY },
        mask: Plain,
        show: |s| s.resume_grace_secs.to_string(),
        help: "How long a customer may stay away; then a queued chat ends \
            CANCELLED, an accepted one ABANDONED",
    }
    AGENT_AWAY_SECS {
        kind: Int { default: 60, min: 1, max: DAY },
        mask: Plain,
        show: |s| s.agent_away_secs.to_string(),
        help: "How long an AVAILABLE agent may be without a WebSocket (on any \
            process) before they turn `AWAY`: no new sessions, open offers go \
            to the next agent; `AVAILABLE` again when they reconnect",
    }
    AGENT_ABANDON_SECS {
        kind: Int { default: 300, min: 1, max: 7 * DAY },
        mask: Plain,
        show: |s| s.agent_abandon_secs.to_string(),
        help: "How long an agent may be without a WebSocket before their \
            accepted chats go back to the queue, in their places. At least \
            `AGENT_AWAY_SECS`",
    }
    EVENT_BUS {
        kind: Text { default: "`postgres` on Postgres, `in-process` on SQLite" },
        mask: Credentials,
        show: |s| s.event_bus.to_string(),
        help: "How events reach subscribers on other processes: `in-process` (one \
            process), `postgres` (LISTEN/NOTIFY) or a NATS URL \
            `nats://host:port` (`nats://user:pass@host:port` with \
            credentials); see Deploying",
    }
    NATS_SUBJECT {
        kind: Text { default: "`switchboard.<deployment id>.events`" },
        mask: Plain,
        show: |s| s.nats_subject.clone().unwrap_or_else(|| "<from the deployment id>".into()),
        help: "With a NATS bus: the subject this deployment's processes share. \
            The default is scoped by a random id stored in the database, so \
            deployments on one NATS server never mix; set it only when NATS \
            permissions must name subjects ahead, and never to another \
            deployment's",
    }
    AGENT_CAPACITY {
        kind: Int { default: 2, min: 1, max: MAX_CAPACITY as i64 },
        mask: Plain,
        show: |s| s.agent_capacity.to_string(),
        help: "Sessions an agent holds at once",
    }
    HISTORY_DAYS {
        kind: Int { default: 14, min: 1, max: 3650 },
        mask: Plain,
        show: |s| s.history_days.to_string(),
        help: "How far back customers list their chats",
    }
    RETENTION_DAYS {
        kind: Int { default: 90, min: 1, max: 3650 },
        mask: Plain,
        show: |s| s.retention_days.to_string(),
        help: "How long data is kept",
    }
    MAX_MESSAGE_CHARS {
        kind: Int { default: 4000, min: 1, max: 100_000 },
        mask: Plain,
        show: |s| s.max_message_chars.to_string(),
        help: "Longest message body, in characters",
    }
    DB_POOL_SIZE {
        kind: Int { default: 16, min: 1, max: 1000 },
        mask: Plain,
        show: |s| s.db_pool_size.to_string(),
        help: "Database connections per process",
    }
    DB_ACQUIRE_TIMEOUT_SECS {
        kind: Int { default: 10, min: 1, max: 300 },
        mask: Plain,
        show: |s| s.db_acquire_timeout_secs.to_string(),
        help: "Longest a request waits for a database connection: it rides out \
            bursts and short database restarts; during a longer outage every \
            request fails after this long (`retryable`). Lower it to fail \
            faster, at the price of refusing requests in bursts. Also bounds \
            the first connection at start",
    }
    MESSAGE_RATE_PER_SEC {
        kind: Float { default: 5.0, min: 0.01, max: 100_000.0 },
        mask: Plain,
        show: |s| s.message_rate_per_sec.to_string(),
        help: "Messages one sender may post per second (`RATE_LIMITED` beyond), \
            per process",
    }
    MESSAGE_BURST {
        kind: Int { default: 10, min: 1, max: 100_000 },
        mask: Plain,
        show: |s| s.message_burst.to_string(),
        help: "Burst allowed above that rate",
    }
    MAX_BODY_BYTES {
        kind: Int { default: 64 * KIB, min: KIB, max: 16 * MIB },
        mask: Plain,
        show: |s| s.limits.max_body_bytes.to_string(),
        help: "Largest HTTP request body (413 + `BAD_USER_INPUT` beyond)",
    }
    MAX_UPLOAD_BYTES {
        kind: Int { default: 10 * MIB, min: KIB, max: 1024 * MIB },
        mask: Plain,
        show: |s| s.limits.max_upload_bytes.to_string(),
        help: "Largest file `sendFile` takes. A multipart request may be this \
            plus `MAX_BODY_BYTES` (its `operations` and `map`); a larger one is \
            refused from its `Content-Length` before the body is read, or once \
            that much has streamed in (413 + `BAD_USER_INPUT`)",
    }
    UPLOAD_CONTENT_TYPES {
        kind: Text { default: "PNG, JPEG, GIF, WebP, PDF, plain text" },
        mask: Plain,
        show: |s| join(&s.files.content_types),
        help: "Content types uploads may have, as sniffed from their bytes (never \
            as the client claims), comma-separated: by default `image/png`, \
            `image/jpeg`, `image/gif`, `image/webp`, `application/pdf`, \
            `text/plain`; `image/*` names a family. HTML, SVG and XML are told \
            apart from plain text",
    }
    STORAGE_URL {
        kind: Text { default: "the folder `DATA_DIR/files`" },
        mask: Credentials,
        show: |s| s.files.storage_url.clone().unwrap_or_else(|| "<DATA_DIR/files>".into()),
        help: "Where uploaded files are kept: `s3://bucket/prefix` for any \
            S3-compatible store (with the `AWS_*` settings below, or the \
            platform's credentials), or a folder",
    }
    AWS_ENDPOINT_URL {
        kind: Text { default: "AWS S3" },
        mask: Credentials,
        show: |s| aws(s, "AWS_ENDPOINT_URL", false),
        help: "With an `s3://` `STORAGE_URL`: another S3-compatible endpoint \
            (MinIO, Ceph, R2); `http://` is allowed for it",
    }
    AWS_REGION {
        kind: Text { default: "from the environment" },
        mask: Plain,
        show: |s| aws(s, "AWS_REGION", false),
        help: "The bucket's region",
    }
    AWS_ACCESS_KEY_ID {
        kind: Text { default: "the platform's credentials" },
        mask: Whole,
        show: |s| aws(s, "AWS_ACCESS_KEY_ID", true),
        help: "Access key for the store",
    }
    AWS_SECRET_ACCESS_KEY {
        kind: Text { default: "the platform's credentials" },
        mask: Whole,
        show: |s| aws(s, "AWS_SECRET_ACCESS_KEY", true),
        help: "Its secret",
    }
    AWS_SESSION_TOKEN {
        kind: Text { default: "none" },
        mask: Whole,
        show: |s| aws(s, "AWS_SESSION_TOKEN", true),
        help: "A session token, with temporary credentials",
    }
    DOWNLOAD_LINK_TTL_SECS {
        kind: Int { default: 300, min: 10, max: 7 * DAY },
        mask: Plain,
        show: |s| s.files.download_link_ttl_secs.to_string(),
        help: "How long an `Attachment.url` download link works",
    }
    ARTICLE_ORIGINS {
        kind: List,
        mask: Plain,
        show: |s| join(&s.files.article_origins),
        help: "Origins agents may share help-centre articles from \
            (comma-separated, `https://help.example.com`); none turns \
            `shareArticle` off",
    }
    MAX_QUERY_DEPTH {
        kind: Int { default: 16, min: 2, max: 100 },
        mask: Plain,
        show: |s| s.limits.max_query_depth.to_string(),
        help: "Deepest selection set",
    }
    MAX_QUERY_COMPLEXITY {
        kind: Int { default: 10_000, min: 10, max: 1_000_000 },
        mask: Plain,
        show: |s| s.limits.max_query_complexity.to_string(),
        help: "Most fields one operation's answer may hold, lists counted by \
            their page size and a message body as 10 (see \"What one operation \
            may cost\")",
    }
    MAX_RESPONSE_BYTES {
        kind: Int { default: 4 * MIB, min: KIB, max: 1024 * MIB },
        mask: Plain,
        show: |s| s.limits.max_response_bytes.to_string(),
        help: "Largest answer to a query or mutation, in bytes of JSON; a larger \
            one is replaced by a `BAD_USER_INPUT` error",
    }
    MAX_ALIASES {
        kind: Int { default: 30, min: 0, max: 10_000 },
        mask: Plain,
        show: |s| s.limits.max_aliases.to_string(),
        help: "Most aliases one document may use",
    }
    INTROSPECTION {
        kind: Switch { default: true },
        mask: Plain,
        show: |s| on_off(s.limits.introspection),
        help: "`off` hides the schema and field suggestions",
    }
    WS_MAX_MESSAGE_BYTES {
        kind: Int { default: 64 * KIB, min: KIB, max: 16 * MIB },
        mask: Plain,
        show: |s| s.limits.ws_max_message_bytes.to_string(),
        help: "Largest WebSocket message or frame; larger ones close the socket",
    }
    WS_MAX_SUBSCRIPTIONS {
        kind: Int { default: 50, min: 1, max: 10_000 },
        mask: Plain,
        show: |s| s.limits.ws_max_subscriptions.to_string(),
        help: "Subscriptions one WebSocket connection may hold (`RATE_LIMITED` \
            beyond)",
    }
    WS_KEEPALIVE_SECS {
        kind: Int { default: 30, min: 1, max: 3600 },
        mask: Plain,
        show: |s| s.limits.ws_keepalive_secs.to_string(),
        help: "Seconds between server pings (WebSocket ping frames); a peer \
            silent for two periods is closed (1001)",
    }
    WS_INIT_TIMEOUT_SECS {
        kind: Int { default: 10, min: 1, max: 3600 },
        mask: Plain,
        show: |s| s.limits.ws_init_timeout_secs.to_string(),
        help: "Time a new WebSocket has to send `connection_init` (then closed \
            with 4408)",
    }
    WS_SEND_TIMEOUT_SECS {
        kind: Int { default: 10, min: 1, max: 3600 },
        mask: Plain,
        show: |s| s.limits.ws_send_timeout_secs.to_string(),
        help: "Longest a write to a WebSocket may block; a peer that does not \
            read is disconnected (1013) and resumes by seq",
    }
    WS_READ_BUFFER_BYTES {
        kind: Int { default: KIB, min: 256, max: 16 * MIB },
        mask: Plain,
        show: |s| s.limits.ws_read_buffer_bytes.to_string(),
        help: "Read buffer per WebSocket (tungstenite's default of 128 KiB would \
            dominate the memory of idle connections; larger messages still \
            arrive, in several reads)",
    }
    WS_WRITE_BUFFER_BYTES {
        kind: Int { default: 8 * KIB, min: 0, max: 16 * MIB },
        mask: Plain,
        show: |s| s.limits.ws_write_buffer_bytes.to_string(),
        help: "Bytes gathered before a write to a WebSocket",
    }
    IP_MAX_CONNECTIONS {
        kind: Int { default: 256, min: 1, max: 10_000_000 },
        mask: Plain,
        show: |s| s.limits.ip_max_connections.to_string(),
        help: "Connections one client address may hold open, plain HTTP and \
            WebSocket together (429 + `RATE_LIMITED` beyond), per process. \
            Proxies in `TRUSTED_PROXIES` are not counted; their clients' \
            WebSockets are, by forwarded address",
    }
    HTTP_HEADER_TIMEOUT_SECS {
        kind: Int { default: 10, min: 1, max: 3600 },
        mask: Plain,
        show: |s| s.limits.http_header_timeout_secs.to_string(),
        help: "Time a connection has to send a whole request head: a new \
            connection, and an idle keep-alive one between requests (so also \
            the keep-alive timeout). Then it is closed",
    }
    IP_SESSION_RATE_PER_MIN {
        kind: Float { default: 60.0, min: 0.01, max: 10_000_000.0 },
        mask: Plain,
        show: |s| s.ip_session_rate_per_min.to_string(),
        help: "New chats one client address may start per minute (`RATE_LIMITED` \
            beyond), per process",
    }
    IP_SESSION_BURST {
        kind: Int { default: 30, min: 1, max: 10_000_000 },
        mask: Plain,
        show: |s| s.ip_session_burst.to_string(),
        help: "Burst allowed above that rate",
    }
    TRUSTED_PROXIES {
        kind: List,
        mask: Plain,
        show: |s| join(&s.limits.trusted_proxies),
        help: "Proxies in front of the server, by address or CIDR range \
            (comma-separated: `10.0.0.0/8,192.0.2.7`). Only a peer among them \
            is believed; the client address is the last `X-Forwarded-For` \
            entry no trusted proxy has, so a client that reaches the server \
            directly cannot forge its address",
    }
    TRUSTED_PROXY_HOPS {
        kind: Int { default: 0, min: 0, max: 16 },
        mask: Plain,
        show: |s| s.limits.trusted_proxy_hops.to_string(),
        help: "Without `TRUSTED_PROXIES`: proxies that append to \
            `X-Forwarded-For`, the client being the entry the outermost of \
            them wrote. Any peer is believed, so use it only where no client \
            can reach the server directly. 0 uses the peer address",
    }
    PUBLIC_URL {
        kind: Text { default: "none" },
        mask: Plain,
        show: |s| s.public_url.clone().unwrap_or_else(|| "<none: the listen address>".into()),
        help: "Where clients reach the server (`https://chat.example.com`). Its \
            origin is the server's own for the browser-origin check. Without \
            it, the server's own origins are its listen address's \
            (`http://127.0.0.1:8080`, and `localhost` when it listens on \
            loopback), never the request's `Host` (a DNS-rebinding page \
            controls that)",
    }
    SHUTDOWN_GRACE_SECS {
        kind: Int { default: 10, min: 0, max: 3600 },
        mask: Plain,
        show: |s| s.shutdown_grace_secs.to_string(),
        help: "How long a stopping server waits for WebSockets to close",
    }
    WEBHOOK_TIMEOUT_MS {
        kind: Int { default: 5000, min: 100, max: 60_000 },
        mask: Plain,
        show: |s| s.webhooks.timeout_ms.to_string(),
        help: "How long a webhook endpoint has to answer before the attempt counts as failed",
    }
    WEBHOOK_RETRY_SCHEDULE {
        kind: Word { default: "5s,5m,30m,2h,5h,10h,10h" },
        mask: Plain,
        show: |s| s.webhooks.retry_schedule.clone(),
        help: "Waits between a webhook delivery's attempts (`ms`, `s`, `m`, `h`, `d`), \
            stretched by up to a fifth at random; after the last one it is FAILED",
    }
    WEBHOOK_DISABLE_AFTER_SECS {
        kind: Int { default: 5 * DAY, min: 1, max: 365 * DAY },
        mask: Plain,
        show: |s| s.webhooks.disable_after_secs.to_string(),
        help: "A webhook endpoint whose attempts have all failed for this long is disabled \
            (and a WARN logged)",
    }
    WEBHOOK_ALLOW_PRIVATE {
        kind: Switch { default: false },
        mask: Plain,
        show: |s| on_off(s.webhooks.allow_private),
        help: "Let webhook endpoints reach loopback, link-local and private addresses \
            (off: refused when created and when delivered)",
    }
    ALLOWED_ORIGINS {
        kind: List,
        mask: Plain,
        show: |s| join(&s.limits.allowed_origins),
        help: "Browser origins besides the server's own that may use the API \
            (comma-separated; `*` for any). Others get 403 on POST and on the \
            WebSocket handshake",
    }
    MAX_TOKEN_TTL_SECS {
        kind: Int { default: 7 * DAY, min: 60, max: 366 * DAY },
        mask: Plain,
        show: |s| s.max_token_ttl_secs.to_string(),
        help: "Longest lifetime a token may claim (`exp` − `iat`, or `exp` − now \
            without `iat`); longer ones are refused. Tokens with an `nbf` in \
            the future or a `crit` header are refused too",
    }
    RATING_WINDOW_DAYS {
        kind: Int { default: 7, min: 1, max: 365 },
        mask: Plain,
        show: |s| s.rating_window_days.to_string(),
        help: "How long after a chat ends its customer may rate it (`rateSession`; \
            `CONFLICT` after)",
    }
    TICKET_URL {
        kind: Text { default: "none (`convertToTicket` is off)" },
        mask: Credentials,
        show: |s| s.tickets.as_ref().map_or_else(|| "<none>".into(), |t| t.url.clone()),
        help: "The ticket system's endpoint: `convertToTicket` POSTs the transcript \
            there, signed per Standard Webhooks, and stores the `{id, url}` it \
            answers. Set by the operator, so private addresses are fine",
    }
    TICKET_SECRET {
        kind: Text { default: "none; needed with `TICKET_URL`" },
        mask: Whole,
        show: |s| if s.tickets.is_some() { "<set>" } else { "<none>" }.into(),
        help: "The `whsec_…` key the ticket requests are signed with \
            (`webhook-id`, `webhook-timestamp`, `webhook-signature`)",
    }
    TICKET_TIMEOUT_MS {
        kind: Int { default: 5000, min: 100, max: 120_000 },
        mask: Plain,
        show: |s| s.tickets.as_ref().map_or(5000, |t| t.timeout.as_millis()).to_string(),
        help: "Longest one request to the ticket system may take",
    }
    TICKET_ATTEMPTS {
        kind: Int { default: 3, min: 1, max: 10 },
        mask: Plain,
        show: |s| s.tickets.as_ref().map_or(3, |t| t.attempts).to_string(),
        help: "Requests per conversion: timeouts, transport errors, 429 and 5xx \
            answers are tried again (after 0.2 s, then twice as long each time)",
    }
    GUEST_TOKEN_TTL_SECS {
        kind: Int { default: DAY, min: 60, max: 366 * DAY },
        mask: Plain,
        show: |s| s.guests.token_ttl_secs.to_string(),
        help: "Life of a visitor's token from `createGuest`; at most \
            `MAX_TOKEN_TTL_SECS` (the default shrinks to it)",
    }
    IP_GUEST_RATE_PER_MIN {
        kind: Float { default: 10.0, min: 0.01, max: 10_000_000.0 },
        mask: Plain,
        show: |s| s.guests.ip_rate_per_min.to_string(),
        help: "Guest tokens one client address may get per minute (`RATE_LIMITED` \
            beyond), per process",
    }
    IP_GUEST_BURST {
        kind: Int { default: 5, min: 1, max: 10_000_000 },
        mask: Plain,
        show: |s| s.guests.ip_burst.to_string(),
        help: "Burst allowed above that rate",
    }
    GUEST_CHALLENGE_BITS {
        kind: Int { default: 0, min: 0, max: 32 },
        mask: Plain,
        show: |s| s.guests.challenge_bits.to_string(),
        help: "When above 0, `createGuest` wants a solved `guestChallenge`: a \
            counter whose SHA-256 with the challenge starts with this many zero \
            bits: 2^bits hashes on average, each bit doubling it (see Guest \
            visitors for timings)",
    }
    BLOCKED_CLIENTS {
        kind: List,
        mask: Plain,
        show: |s| join(&s.limits.blocked_clients),
        help: "Client addresses and CIDR ranges refused everywhere (403 + \
            `FORBIDDEN` on HTTP and on the WebSocket handshake; the health \
            probes excepted), judged by the address `TRUSTED_PROXIES` yields",
    }
    METRICS_TOKEN {
        kind: Text { default: "none" },
        mask: Whole,
        show: |s| match s.limits.metrics_token {
            Some(_) => "<set>".into(),
            None => "<none: /metrics is open>".into(),
        },
        help: "When set (16+ characters), `/metrics` wants `Authorization: Bearer \
            <METRICS_TOKEN>` (401 otherwise)",
    }
    GRAPHIQL_CDN {
        kind: Word { default: DEFAULT_GRAPHIQL_CDN },
        mask: Plain,
        show: |s| s.limits.graphiql_cdn.clone(),
        help: "Where the GraphiQL page at `/` loads its pinned, hash-checked \
            files from, as `<GRAPHIQL_CDN>/<package>@<version>/<path>`: a CDN \
            or mirror URL, or a path on this server's own origin such as \
            `/static` served by your proxy. A mirror on another origin must \
            send `Access-Control-Allow-Origin`",
    }
    CONTEXT_URL {
        kind: Text { default: "none" },
        mask: Credentials,
        show: |s| s.context.url.clone().unwrap_or_else(|| "<none>".into()),
        help: "The shop's customer context endpoint: Switchboard calls `GET \
            <CONTEXT_URL>?customerId=<id>` with a bearer JWT (aud `context`, \
            sub the customer id, 60 s) and shows the JSON object it answers to \
            the agent; see The agent's workspace",
    }
    CONTEXT_SECRET {
        kind: Text { default: "`JWT_SECRET`" },
        mask: Whole,
        show: |s| match s.context.secret {
            Some(_) => "<set>".into(),
            None => "<JWT_SECRET>".into(),
        },
        help: "HS256 secret (16+ characters) signing the calls to `CONTEXT_URL`",
    }
    CONTEXT_TIMEOUT_MS {
        kind: Int { default: 800, min: 1, max: 60_000 },
        mask: Plain,
        show: |s| s.context.timeout.as_millis().to_string(),
        help: "How long a call to `CONTEXT_URL` may take; then the context says `TIMEOUT`",
    }
    CONTEXT_CACHE_SECS {
        kind: Int { default: 60, min: 0, max: DAY },
        mask: Plain,
        show: |s| s.context.cache_for.as_secs().to_string(),
        help: "How long a customer's context is kept before it is fetched again",
    }
    DATA_DIR {
        kind: Word { default: "data" },
        mask: Plain,
        show: |s| s.data_dir.display().to_string(),
        help: "Folder for the SQLite file and generated secret, made 0700 (the \
            database file 0600). On SQLite one process holds it: a second one \
            on the same folder is refused at start",
    }
    LOG_FORMAT {
        kind: Word { default: "text" },
        mask: Plain,
        show: |s| if s.log_json { "json" } else { "text" }.into(),
        help: "`json` for structured logs; `RUST_LOG` filters",
    }
}

/// The README's configuration table.
pub fn markdown_table() -> String {
    let mut out = String::from("| Variable | Default | Meaning |\n|---|---|---|\n");
    for s in ALL {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            s.name,
            s.default_shown(),
            s.help
        ));
    }
    out
}

/// The settings part of `switchboard --help`: plain text, wrapped.
pub fn help_text() -> String {
    let plain = |markdown: &str| markdown.replace('`', "");
    let mut out = String::from("settings, from environment variables (all optional):\n");
    for s in ALL {
        let bounds = match s.kind {
            Kind::Int { min, max, .. } => format!("; {min} to {max}"),
            Kind::Float { min, max, .. } => format!("; {min} to {max}"),
            _ => String::new(),
        };
        let default = plain(&s.default_shown());
        out.push_str(&format!("  {} (default: {default}{bounds})\n", s.name));
        out.push_str(&wrap(&plain(s.help), "      ", 78));
    }
    out
}

/// `text` in lines of at most `width` characters, each after `indent`.
fn wrap(text: &str, indent: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent.len() + line.len() + 1 + word.chars().count() > width {
            out.push_str(&format!("{indent}{line}\n"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(&format!("{indent}{line}\n"));
    }
    out
}
