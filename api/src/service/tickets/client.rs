//! The call to the ticket system: one signed POST per attempt, each
//! bounded by TICKET_TIMEOUT_MS, retried while the failure may pass.

use std::fmt;

use crate::clock::Clock;
use crate::config::TicketSettings;
use crate::domain::{backoff, read_ticket_answer, worth_retrying};
use crate::signing;

/// Largest answer read from the ticket system: an id and a URL need little.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Why no ticket came back.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Every attempt timed out or could not connect.
    Unreachable { attempts: u32, last: String },
    /// The system refused the transcript (a final status, or the last of
    /// the retried ones).
    Refused { status: u16 },
    /// It answered 2xx with something that is not a ticket.
    BadAnswer(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Unreachable { attempts, last } => {
                write!(f, "no answer after {attempts} attempt(s): {last}")
            }
            Failure::Refused { status } => write!(f, "answered HTTP {status}"),
            Failure::BadAnswer(why) => write!(f, "answered with no ticket: {why}"),
        }
    }
}

impl Failure {
    /// What the agent is told: which way it failed, none of the details.
    pub(crate) fn for_client(&self) -> String {
        let what = match self {
            Failure::Unreachable { .. } => "the ticket system did not answer in time".to_owned(),
            Failure::Refused { status } => {
                format!("the ticket system refused the chat (HTTP {status})")
            }
            Failure::BadAnswer(_) => "the ticket system's answer named no ticket".to_owned(),
        };
        format!("{what}; no ticket was stored, so trying again is safe")
    }
}

/// Posts `body` signed as message `message_id` (the same on every attempt,
/// so the ticket system can tell a retry from a new chat); the ticket's id
/// and URL.
pub(crate) async fn post(
    settings: &TicketSettings,
    clock: &Clock,
    message_id: &str,
    body: Vec<u8>,
) -> Result<(String, Option<String>), Failure> {
    let client = reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        // The operator named this endpoint; a redirect elsewhere is not it.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Failure::Unreachable {
            attempts: 0,
            last: format!("no HTTP client: {e}"),
        })?;
    let mut last = String::new();
    for attempt in 1..=settings.attempts {
        if attempt > 1 {
            // Real time: this spaces out I/O, no rule depends on it.
            tokio::time::sleep(backoff(attempt - 1)).await;
        }
        let timestamp = clock.now().timestamp();
        let mut request = settings
            .url
            .parse::<reqwest::Url>()
            .map(|url| client.post(url))
            .map_err(|e| Failure::Unreachable {
                attempts: 0,
                last: e.to_string(),
            })?
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::USER_AGENT, "switchboard-tickets");
        for (name, value) in signing::headers(&settings.secret, message_id, timestamp, &body) {
            request = request.header(name, value);
        }
        let response = match request.body(body.clone()).send().await {
            Ok(r) => r,
            Err(e) => {
                last = if e.is_timeout() {
                    "timed out".to_owned()
                } else {
                    format!("{e}")
                };
                tracing::warn!(attempt, error = %last, "ticket system unreachable");
                continue;
            }
        };
        let status = response.status().as_u16();
        if !response.status().is_success() {
            tracing::warn!(attempt, status, "ticket system refused");
            if worth_retrying(status) && attempt < settings.attempts {
                last = format!("HTTP {status}");
                continue;
            }
            return Err(Failure::Refused { status });
        }
        let answer = match read_capped(response).await {
            Ok(answer) => answer,
            Err(Cut::TooLarge) => {
                return Err(Failure::BadAnswer(format!(
                    "larger than {MAX_ANSWER_BYTES} bytes"
                )))
            }
            Err(Cut::Transport(e)) => {
                // The ticket may exist now: the same message id on the next
                // attempt lets the system answer with it again.
                last = e;
                tracing::warn!(attempt, error = %last, "ticket answer cut off");
                continue;
            }
        };
        return read_ticket_answer(&answer).map_err(Failure::BadAnswer);
    }
    Err(Failure::Unreachable {
        attempts: settings.attempts,
        last,
    })
}

enum Cut {
    TooLarge,
    Transport(String),
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, Cut> {
    let mut out = Vec::new();
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => return Ok(out),
            Err(e) if e.is_timeout() => return Err(Cut::Transport("timed out".into())),
            Err(e) => return Err(Cut::Transport(e.to_string())),
        };
        if out.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(Cut::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
}
