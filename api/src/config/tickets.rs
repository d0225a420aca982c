//! The ticket system chats are handed over to (`TICKET_URL`,
//! `TICKET_SECRET`, `TICKET_TIMEOUT_MS`, `TICKET_ATTEMPTS`).

use std::time::Duration;

use super::settings::{TICKET_ATTEMPTS, TICKET_SECRET, TICKET_TIMEOUT_MS, TICKET_URL};
use super::{invalid, ConfigError, Env};
use crate::signing::WebhookSecret;

/// Where and how `convertToTicket` posts a transcript.
#[derive(Clone, Debug)]
pub struct TicketSettings {
    /// An http(s) URL the operator chose; private addresses are fine.
    pub url: String,
    /// Signs each request per the Standard Webhooks scheme.
    pub secret: WebhookSecret,
    /// Longest one attempt may take, connecting included.
    pub timeout: Duration,
    /// Attempts per conversion: transport errors, timeouts, 429 and 5xx
    /// answers are tried again, other answers are final.
    pub attempts: u32,
}

/// None when TICKET_URL is unset: the feature is off.
pub(super) fn parse<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<Option<TicketSettings>, ConfigError> {
    let url = env
        .text(&TICKET_URL)
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty());
    let secret = env
        .text(&TICKET_SECRET)
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let timeout = Duration::from_millis(env.int(&TICKET_TIMEOUT_MS)?);
    let attempts = env.int(&TICKET_ATTEMPTS)?;
    let Some(url) = url else {
        if secret.is_some() {
            return Err(invalid(&TICKET_SECRET, "is set but TICKET_URL is not"));
        }
        return Ok(None);
    };
    match reqwest::Url::parse(&url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        _ => {
            return Err(invalid(
                &TICKET_URL,
                format!(
                    "{:?} must be an http:// or https:// URL with a host",
                    super::redact_url(&url)
                ),
            ))
        }
    }
    let secret = secret.ok_or_else(|| {
        invalid(
            &TICKET_SECRET,
            "is needed with TICKET_URL: a whsec_… key the ticket system verifies with",
        )
    })?;
    let secret =
        WebhookSecret::parse(&secret).map_err(|e| invalid(&TICKET_SECRET, e.to_string()))?;
    Ok(Some(TicketSettings {
        url,
        secret,
        timeout,
        attempts,
    }))
}
