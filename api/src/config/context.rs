//! The customer context provider's settings (CONTEXT_*): where the shop's
//! endpoint is, what signs the calls, how long to wait and to keep answers.

use std::time::Duration;

use super::settings::{CONTEXT_CACHE_SECS, CONTEXT_SECRET, CONTEXT_TIMEOUT_MS, CONTEXT_URL};
use super::{invalid, ConfigError, Env, Secret};

#[derive(Clone, Debug)]
pub struct ContextSettings {
    /// `CONTEXT_URL`; none: customer context answers NOT_CONFIGURED.
    pub url: Option<String>,
    /// Signs the calls; JWT_SECRET when unset.
    pub secret: Option<Secret>,
    pub timeout: Duration,
    pub cache_for: Duration,
}

impl Default for ContextSettings {
    fn default() -> Self {
        ContextSettings {
            url: None,
            secret: None,
            timeout: Duration::from_millis(800),
            cache_for: Duration::from_secs(60),
        }
    }
}

pub(super) fn parse<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<ContextSettings, ConfigError> {
    let url = match env.text(&CONTEXT_URL).map(|u| u.trim().to_owned()) {
        None => None,
        Some(u) if u.is_empty() => None,
        Some(u) if u.starts_with("http://") || u.starts_with("https://") => Some(u),
        Some(u) => {
            return Err(invalid(
                &CONTEXT_URL,
                format!("{u:?} must be an http(s) URL"),
            ))
        }
    };
    let secret = match env.text(&CONTEXT_SECRET).map(|s| s.trim().to_owned()) {
        None => None,
        Some(s) if s.is_empty() => None,
        Some(s) if s.len() < 16 => {
            return Err(invalid(&CONTEXT_SECRET, "must be at least 16 characters"))
        }
        Some(s) => Some(Secret(s)),
    };
    Ok(ContextSettings {
        url,
        secret,
        timeout: Duration::from_millis(env.int(&CONTEXT_TIMEOUT_MS)?),
        cache_for: Duration::from_secs(env.int(&CONTEXT_CACHE_SECS)?),
    })
}
