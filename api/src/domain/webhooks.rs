//! Webhook rules that need no I/O: the event types and their payloads,
//! which endpoint URLs and addresses are allowed, the retry schedule and
//! what happens after each attempt.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::{ChatSession, Message, UnknownName};
use crate::auth::Role;

/// What an integrator can subscribe to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WebhookEventType {
    SessionStarted,
    SessionAssigned,
    SessionTransferred,
    SessionEnded,
    MessageCreated,
    SessionRated,
    TicketRequested,
}

super::named_enum!(WebhookEventType, "webhook event type", {
    SessionStarted => "SESSION_STARTED",
    SessionAssigned => "SESSION_ASSIGNED",
    SessionTransferred => "SESSION_TRANSFERRED",
    SessionEnded => "SESSION_ENDED",
    MessageCreated => "MESSAGE_CREATED",
    SessionRated => "SESSION_RATED",
    TicketRequested => "TICKET_REQUESTED",
});

impl WebhookEventType {
    pub const ALL: [WebhookEventType; 7] = [
        WebhookEventType::SessionStarted,
        WebhookEventType::SessionAssigned,
        WebhookEventType::SessionTransferred,
        WebhookEventType::SessionEnded,
        WebhookEventType::MessageCreated,
        WebhookEventType::SessionRated,
        WebhookEventType::TicketRequested,
    ];

    /// The payload's `type`: the enum name in lower case, a dot for the
    /// first underscore (`session.started`, `ticket.requested`).
    pub fn wire_name(self) -> String {
        self.as_str().to_ascii_lowercase().replacen('_', ".", 1)
    }

    /// A bit of its own, for sets of types.
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of event types, small enough to copy and test without a lock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventTypes(u8);

impl EventTypes {
    pub fn contains(self, t: WebhookEventType) -> bool {
        self.0 & t.bit() != 0
    }
    pub fn insert(&mut self, t: WebhookEventType) {
        self.0 |= t.bit();
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl FromIterator<WebhookEventType> for EventTypes {
    fn from_iter<I: IntoIterator<Item = WebhookEventType>>(iter: I) -> Self {
        let mut set = EventTypes::default();
        for t in iter {
            set.insert(t);
        }
        set
    }
}

/// Subscribed types as stored: ",SESSION_ENDED,MESSAGE_CREATED," (each
/// between commas, so that a LIKE '%,NAME,%' finds one), sorted, once each.
pub fn store_event_types(types: &[WebhookEventType]) -> String {
    let mut sorted = types.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let names: Vec<&str> = sorted.iter().map(|t| t.as_str()).collect();
    format!(",{},", names.join(","))
}

/// [`store_event_types`] read back.
pub fn read_event_types(stored: &str) -> Result<Vec<WebhookEventType>, UnknownName> {
    stored
        .split(',')
        .filter(|n| !n.is_empty())
        .map(str::parse)
        .collect()
}

/// Something an integrator hears of, with what its payload carries.
/// Services record these in the transaction of the change (see
/// `service::webhooks::outbox::record`).
#[derive(Clone, Debug)]
pub enum WebhookEvent {
    SessionStarted(ChatSession),
    SessionAssigned(ChatSession),
    SessionTransferred(ChatSession),
    SessionEnded(ChatSession),
    MessageCreated(Message),
    /// `rating` is the rating's GraphQL fields (`data.session.rating`).
    SessionRated {
        session: ChatSession,
        rating: Value,
    },
    /// `ticket` is what was asked of the ticket system (`data.ticket`).
    TicketRequested {
        session: ChatSession,
        ticket: Value,
    },
}

impl WebhookEvent {
    pub fn event_type(&self) -> WebhookEventType {
        match self {
            WebhookEvent::SessionStarted(_) => WebhookEventType::SessionStarted,
            WebhookEvent::SessionAssigned(_) => WebhookEventType::SessionAssigned,
            WebhookEvent::SessionTransferred(_) => WebhookEventType::SessionTransferred,
            WebhookEvent::SessionEnded(_) => WebhookEventType::SessionEnded,
            WebhookEvent::MessageCreated(_) => WebhookEventType::MessageCreated,
            WebhookEvent::SessionRated { .. } => WebhookEventType::SessionRated,
            WebhookEvent::TicketRequested { .. } => WebhookEventType::TicketRequested,
        }
    }

    /// The session it belongs to: deliveries of one session reach each
    /// endpoint in order.
    pub fn session_id(&self) -> uuid::Uuid {
        match self {
            WebhookEvent::SessionStarted(s)
            | WebhookEvent::SessionAssigned(s)
            | WebhookEvent::SessionTransferred(s)
            | WebhookEvent::SessionEnded(s)
            | WebhookEvent::SessionRated { session: s, .. }
            | WebhookEvent::TicketRequested { session: s, .. } => s.id,
            WebhookEvent::MessageCreated(m) => m.session_id,
        }
    }

    /// The JSON body: `{"type", "timestamp", "data"}`, with `data` in the
    /// GraphQL objects' field names.
    pub fn body(&self, at: DateTime<Utc>) -> String {
        let data = match self {
            WebhookEvent::SessionStarted(s)
            | WebhookEvent::SessionAssigned(s)
            | WebhookEvent::SessionTransferred(s)
            | WebhookEvent::SessionEnded(s) => json!({ "session": session_data(s) }),
            WebhookEvent::MessageCreated(m) => json!({ "message": message_data(m) }),
            WebhookEvent::SessionRated { session, rating } => {
                let mut s = session_data(session);
                s.insert("rating".into(), rating.clone());
                json!({ "session": s })
            }
            WebhookEvent::TicketRequested { session, ticket } => {
                json!({ "session": session_data(session), "ticket": ticket })
            }
        };
        json!({
            "type": self.event_type().wire_name(),
            "timestamp": time(at),
            "data": data,
        })
        .to_string()
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Customer => "CUSTOMER",
        Role::Agent => "AGENT",
        Role::Admin => "ADMIN",
    }
}

/// A ChatSession's scalar fields, as the API names them.
fn session_data(s: &ChatSession) -> Map<String, Value> {
    let value = json!({
        "id": s.id,
        "status": s.status.as_str(),
        "subject": s.subject,
        "customerId": s.customer_id,
        "agentId": s.agent_id,
        "createdAt": time(s.created_at),
        "queuedAt": time(s.queued_at),
        "assignedAt": s.assigned_at.map(time),
        "endedAt": s.ended_at.map(time),
        "endedBy": s.ended_by.map(role_name),
        "endReason": s.end_reason.map(|r| r.as_str()),
        "priority": s.priority.as_str(),
        "requiredSkills": s.required_skills.names(),
        "lastSeq": s.last_seq,
    });
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// A Message's fields, as the API names them.
fn message_data(m: &Message) -> Value {
    json!({
        "id": m.id,
        "sessionId": m.session_id,
        "seq": m.seq,
        "sender": m.sender.as_str(),
        "senderId": m.sender_id,
        "body": m.body,
        "clientMessageId": m.client_message_id,
        "createdAt": time(m.created_at),
    })
}

/// An endpoint URL as given: only http(s), with a host, no credentials.
/// Returns the host and port to check.
pub fn check_url(url: &str) -> Result<(String, u16), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let port = match parsed.scheme() {
        "https" => 443,
        "http" => 80,
        other => {
            return Err(format!(
                "only http and https URLs are allowed, not {other}:"
            ))
        }
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("the URL must not carry credentials".into());
    }
    let host = match parsed.host_str() {
        // An IPv6 literal comes in brackets.
        Some(h) if !h.is_empty() => h.trim_start_matches('[').trim_end_matches(']').to_owned(),
        _ => return Err("the URL needs a host".into()),
    };
    Ok((host, parsed.port().unwrap_or(port)))
}

/// Addresses an endpoint may not reach unless the operator allows it:
/// this host, its link and private networks, and what is not a host at all.
pub fn is_internal_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal_v4(v4);
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || is_nat64_internal(v6)
        }
    }
}

fn is_internal_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || a >= 240
}

/// 64:ff9b::a.b.c.d reaches a.b.c.d through a NAT64 gateway.
fn is_nat64_internal(v6: Ipv6Addr) -> bool {
    let s = v6.segments();
    if s[..6] != [0x64, 0xff9b, 0, 0, 0, 0] {
        return false;
    }
    let [a, b] = s[6].to_be_bytes();
    let [c, d] = s[7].to_be_bytes();
    is_internal_v4(Ipv4Addr::new(a, b, c, d))
}

/// `5s,5m,30m,2h`: the waits between attempts (so one more attempt than
/// waits). Units ms, s, m, h, d.
pub fn parse_retry_schedule(text: &str) -> Result<Vec<Duration>, String> {
    let waits = text
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(parse_wait)
        .collect::<Result<Vec<_>, _>>()?;
    if waits.len() > 20 {
        return Err("at most 20 retries".into());
    }
    Ok(waits)
}

fn parse_wait(w: &str) -> Result<Duration, String> {
    let split = w
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{w:?} needs a unit (ms, s, m, h or d)"))?;
    let (n, unit) = w.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("{w:?} is not a wait"))?;
    let ms = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{w:?}: unit must be ms, s, m, h or d")),
    };
    let ms = n
        .checked_mul(ms)
        .filter(|&ms| ms <= 7 * 86_400_000)
        .ok_or_else(|| format!("{w:?} is longer than a week"))?;
    Ok(Duration::from_millis(ms))
}

/// How one attempt went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptResult {
    /// The endpoint answered with this status.
    Status {
        code: u16,
        /// Its Retry-After, read (only used with 429).
        retry_after: Option<Duration>,
    },
    /// No answer: timeout, refused connection, an address not allowed…
    NoAnswer { retryable: bool },
}

/// What follows an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextStep {
    Delivered,
    RetryAfter(Duration),
    Failed,
}

/// Longest wait a Retry-After may ask for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// After attempt number `attempts` (1-based) of a delivery: 2xx is done;
/// 5xx, 408, 429, timeouts and connection errors are retried on the
/// schedule (429 after its Retry-After when it gives one) until the
/// schedule runs out; every other status is final. `jitter` is in
/// [0, 1): the wait is stretched by up to a fifth, so that endpoints that
/// failed together are not retried in lockstep.
pub fn next_step(
    result: &AttemptResult,
    attempts: i32,
    schedule: &[Duration],
    jitter: f64,
) -> NextStep {
    let retryable = match result {
        AttemptResult::Status { code, .. } if (200..300).contains(code) => {
            return NextStep::Delivered
        }
        AttemptResult::Status { code, .. } => *code >= 500 || *code == 408 || *code == 429,
        AttemptResult::NoAnswer { retryable } => *retryable,
    };
    let index = usize::try_from(attempts.max(1) - 1).unwrap_or(usize::MAX);
    let Some(wait) = schedule.get(index).copied().filter(|_| retryable) else {
        return NextStep::Failed;
    };
    if let AttemptResult::Status {
        code: 429,
        retry_after: Some(asked),
    } = result
    {
        return NextStep::RetryAfter((*asked).min(MAX_RETRY_AFTER));
    }
    NextStep::RetryAfter(wait.mul_f64(1.0 + jitter.clamp(0.0, 1.0) / 5.0))
}

/// A Retry-After header: seconds, or an HTTP date (then the wait until it).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some((at.with_timezone(&Utc) - now).to_std().unwrap_or_default())
}

/// Whether an endpoint that has been failing since `since` should be
/// switched off now.
pub fn should_disable(
    failing_since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    after: chrono::Duration,
) -> bool {
    failing_since.is_some_and(|since| now - since >= after)
}

/// A registered endpoint (its secret stays in storage).
#[derive(Clone, Debug)]
pub struct WebhookEndpoint {
    pub id: uuid::Uuid,
    pub url: String,
    pub events: Vec<WebhookEventType>,
    pub description: Option<String>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

super::named_enum!(DeliveryStatus, "delivery status", {
    Pending => "PENDING", Delivered => "DELIVERED", Failed => "FAILED",
});

/// One event for one endpoint; `id` is its `webhook-id`.
#[derive(Clone, Debug)]
pub struct WebhookDelivery {
    pub id: uuid::Uuid,
    pub endpoint_id: uuid::Uuid,
    pub event: WebhookEventType,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// The `webhook-id` of an event's delivery to an endpoint: derived from
/// the pair, not drawn at random, so that a first attempt whose process
/// died before recording it is sent again by another under the same id,
/// and receivers can drop the duplicate. (A v8 UUID of the pair's SHA-256.)
pub fn delivery_id(event_seq: i64, endpoint_id: uuid::Uuid) -> uuid::Uuid {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(b"switchboard webhook delivery\0");
    hash.update(endpoint_id.as_bytes());
    hash.update(event_seq.to_be_bytes());
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_ids_are_stable_and_distinct_per_event_and_endpoint() {
        let a = uuid::Uuid::from_u128(0x1234);
        let b = uuid::Uuid::from_u128(0x1235);
        assert_eq!(delivery_id(7, a), delivery_id(7, a));
        let ids: std::collections::HashSet<uuid::Uuid> = (0..1000)
            .flat_map(|seq| [delivery_id(seq, a), delivery_id(seq, b)])
            .collect();
        assert_eq!(ids.len(), 2000);
        assert_eq!(delivery_id(7, a).get_version_num(), 8);
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn wire_names() {
        let names: Vec<String> = WebhookEventType::ALL
            .iter()
            .map(|t| t.wire_name())
            .collect();
        assert_eq!(
            names,
            [
                "session.started",
                "session.assigned",
                "session.transferred",
                "session.ended",
                "message.created",
                "session.rated",
                "ticket.requested"
            ]
        );
    }

    #[test]
    fn stored_types_round_trip() {
        use WebhookEventType::*;
        let stored = store_event_types(&[MessageCreated, SessionEnded, MessageCreated]);
        assert_eq!(stored, ",SESSION_ENDED,MESSAGE_CREATED,");
        assert_eq!(
            read_event_types(&stored).unwrap(),
            [SessionEnded, MessageCreated]
        );
        assert!(read_event_types(",NOPE,").is_err());
        let set: EventTypes = [SessionEnded].into_iter().collect();
        assert!(set.contains(SessionEnded) && !set.contains(MessageCreated));
    }

    /// A URL and what it parses to: (host, port), or refused.
    type UrlCase<'a> = (&'a str, Result<(&'a str, u16), ()>);

    #[test]
    fn urls() {
        let cases: &[UrlCase] = &[
            ("https://example.com/hook", Ok(("example.com", 443))),
            ("http://example.com:8080/x", Ok(("example.com", 8080))),
            ("http://[::1]:9/", Ok(("::1", 9))),
            ("ftp://example.com/", Err(())),
            ("file:///etc/passwd", Err(())),
            ("https://user:pw@example.com/", Err(())),
            ("not a url", Err(())),
            ("gopher://127.0.0.1:25/", Err(())),
        ];
        for (url, expected) in cases {
            let got = check_url(url);
            match expected {
                Ok((host, port)) => assert_eq!(got, Ok(((*host).to_owned(), *port)), "{url}"),
                Err(()) => assert!(got.is_err(), "{url}: {got:?}"),
            }
        }
    }

    #[test]
    fn internal_addresses() {
        let cases = [
            ("127.0.0.1", true),
            ("10.1.2.3", true),
            ("172.16.0.1", true),
            ("172.32.0.1", false),
            ("192.168.1.1", true),
            ("169.254.169.254", true),
            ("0.0.0.0", true),
            ("100.64.0.1", true),
            ("255.255.255.255", true),
            ("93.184.216.34", false),
            ("8.8.8.8", false),
            ("::1", true),
            ("::", true),
            ("fe80::1", true),
            ("fd00::1", true),
            ("::ffff:127.0.0.1", true),
            ("::ffff:8.8.8.8", false),
            ("64:ff9b::10.0.0.1", true),
            ("2606:4700::1111", false),
        ];
        for (ip, internal) in cases {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(is_internal_address(ip), internal, "{ip}");
        }
    }

    #[test]
    fn schedules() {
        assert_eq!(
            parse_retry_schedule("5s,5m, 30m,2h,1d,10ms").unwrap(),
            [
                5 * S,
                300 * S,
                1800 * S,
                7200 * S,
                86400 * S,
                Duration::from_millis(10)
            ]
        );
        assert!(parse_retry_schedule("").unwrap().is_empty());
        for bad in ["5", "5x", "s", "-1s", "8d"] {
            assert!(parse_retry_schedule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn steps_after_an_attempt() {
        let schedule = [S, 2 * S, 4 * S];
        let status = |code| AttemptResult::Status {
            code,
            retry_after: None,
        };
        let cases: Vec<(AttemptResult, i32, NextStep)> = vec![
            (status(200), 1, NextStep::Delivered),
            (status(204), 4, NextStep::Delivered),
            (status(500), 1, NextStep::RetryAfter(S)),
            (status(503), 3, NextStep::RetryAfter(4 * S)),
            (status(500), 4, NextStep::Failed),
            (status(404), 1, NextStep::Failed),
            (status(400), 1, NextStep::Failed),
            (status(301), 1, NextStep::Failed),
            (status(408), 2, NextStep::RetryAfter(2 * S)),
            (status(429), 1, NextStep::RetryAfter(S)),
            (
                AttemptResult::Status {
                    code: 429,
                    retry_after: Some(7 * S),
                },
                1,
                NextStep::RetryAfter(7 * S),
            ),
            (
                AttemptResult::Status {
                    code: 429,
                    retry_after: Some(7 * S),
                },
                4,
                NextStep::Failed,
            ),
            (
                AttemptResult::NoAnswer { retryable: true },
                2,
                NextStep::RetryAfter(2 * S),
            ),
            (
                AttemptResult::NoAnswer { retryable: false },
                1,
                NextStep::Failed,
            ),
        ];
        for (result, attempts, expected) in cases {
            assert_eq!(
                next_step(&result, attempts, &schedule, 0.0),
                expected,
                "{result:?} #{attempts}"
            );
        }
        assert_eq!(
            next_step(&status(500), 1, &schedule, 0.5),
            NextStep::RetryAfter(S.mul_f64(1.1))
        );
    }

    #[test]
    fn retry_after_values() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_retry_after("120", now), Some(120 * S));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(30 * S)
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn disabling() {
        let now = Utc::now();
        let day = chrono::Duration::days(1);
        assert!(!should_disable(None, now, day));
        assert!(!should_disable(Some(now - day / 2), now, day));
        assert!(should_disable(Some(now - day), now, day));
    }
}
