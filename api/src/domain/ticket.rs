//! Tickets: what a chat became in the ticket system, how that system's
//! answers are read, and which failures are worth another attempt.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The ticket a chat was handed over as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ticket {
    /// The ticket system's own id.
    pub external_id: String,
    pub url: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Longest id and URL taken from the ticket system.
const MAX_ID_CHARS: usize = 200;
const MAX_URL_CHARS: usize = 2_000;

/// Reads the ticket system's answer: a JSON object with `id` (a string or
/// a number) and, optionally, `url` (an http(s) URL).
pub fn read_ticket_answer(body: &[u8]) -> Result<(String, Option<String>), String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| "the answer is not JSON".to_owned())?;
    let id = match value.get("id") {
        Some(serde_json::Value::String(s)) => s.trim().to_owned(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => return Err("the answer has no id (a string or a number)".into()),
    };
    if id.is_empty() || id.chars().count() > MAX_ID_CHARS || id.chars().any(char::is_control) {
        return Err(format!(
            "the answer's id must be 1 to {MAX_ID_CHARS} printable characters"
        ));
    }
    let url = match value.get("url") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(u)) => {
            let u = u.trim();
            // Shown to agents as a link: nothing but http(s) may run.
            let scheme_ok = u.starts_with("https://") || u.starts_with("http://");
            if !scheme_ok || u.len() > MAX_URL_CHARS || u.chars().any(char::is_control) {
                return Err("the answer's url must be an http(s) URL".into());
            }
            Some(u.to_owned())
        }
        Some(_) => return Err("the answer's url must be a string".into()),
    };
    Ok((id, url))
}

/// Whether an answer with this status may succeed if sent again: the
/// system was busy or failed (429, 5xx). Other refusals stay refusals.
pub fn worth_retrying(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

/// How long to wait before attempt `n` (1 is the first retry): 0.2 s,
/// then twice as long each time, at most 5 s.
pub fn backoff(n: u32) -> Duration {
    let ms = 200u64.saturating_mul(1u64 << n.saturating_sub(1).min(16));
    Duration::from_millis(ms.min(5_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The id and url read, or a piece of the refusal's message.
    type Expected<'a> = Result<(&'a str, Option<&'a str>), &'a str>;

    #[test]
    fn answers() {
        #[rustfmt::skip]
        let table: [(&str, Expected); 10] = [
            (r#"{"id": "T-1", "url": "https://desk.example/T-1"}"#, Ok(("T-1", Some("https://desk.example/T-1")))),
            (r#"{"id": 4711}"#, Ok(("4711", None))),
            (r#"{"id": "9", "url": null, "extra": 1}"#, Ok(("9", None))),
            (r#"{"url": "https://x"}"#, Err("no id")),
            (r#"{"id": ""}"#, Err("1 to 200")),
            (r#"{"id": true}"#, Err("no id")),
            (r#"{"id": "1", "url": "javascript:alert(1)"}"#, Err("http(s)")),
            (r#"{"id": "1", "url": 5}"#, Err("string")),
            ("<html>", Err("not JSON")),
            (r#"["id"]"#, Err("no id")),
        ];
        for (body, expected) in table {
            let got = read_ticket_answer(body.as_bytes());
            match (got, expected) {
                (Ok((id, url)), Ok((want_id, want_url))) => {
                    assert_eq!((id.as_str(), url.as_deref()), (want_id, want_url), "{body}")
                }
                (Err(e), Err(want)) => assert!(e.contains(want), "{body}: {e}"),
                (got, want) => panic!("{body}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn retries_and_their_spacing() {
        assert!(worth_retrying(500) && worth_retrying(503) && worth_retrying(429));
        assert!(!worth_retrying(400) && !worth_retrying(401) && !worth_retrying(404));
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(2), Duration::from_millis(400));
        assert_eq!(backoff(3), Duration::from_millis(800));
        assert_eq!(backoff(30), Duration::from_secs(5));
    }
}
