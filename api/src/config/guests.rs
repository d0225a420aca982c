//! Guest visitors: their tokens' life, how many one address may get, and
//! the optional proof-of-work challenge before one.

use super::settings::{
    GUEST_CHALLENGE_BITS, GUEST_TOKEN_TTL_SECS, IP_GUEST_BURST, IP_GUEST_RATE_PER_MIN,
    MAX_TOKEN_TTL_SECS,
};
use super::{invalid, ConfigError, Env};

#[derive(Clone, Debug, PartialEq)]
pub struct GuestSettings {
    pub token_ttl_secs: i64,
    pub ip_rate_per_min: f64,
    pub ip_burst: u32,
    /// Leading zero bits a challenge's solution must give; 0: no challenge.
    pub challenge_bits: u32,
}

pub(super) fn parse<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    max_token_ttl_secs: i64,
) -> Result<GuestSettings, ConfigError> {
    let mut token_ttl_secs: i64 = env.int(&GUEST_TOKEN_TTL_SECS)?;
    let chosen = env.text(&GUEST_TOKEN_TTL_SECS).is_some();
    if token_ttl_secs > max_token_ttl_secs && !chosen {
        // The default gives way to a shorter MAX_TOKEN_TTL_SECS.
        token_ttl_secs = max_token_ttl_secs;
    } else if token_ttl_secs > max_token_ttl_secs {
        // The server would refuse the tokens it hands out.
        return Err(invalid(
            &GUEST_TOKEN_TTL_SECS,
            format!(
                "must be at most {} ({max_token_ttl_secs})",
                MAX_TOKEN_TTL_SECS.name
            ),
        ));
    }
    Ok(GuestSettings {
        token_ttl_secs,
        ip_rate_per_min: env.float(&IP_GUEST_RATE_PER_MIN)?,
        ip_burst: env.int(&IP_GUEST_BURST)?,
        challenge_bits: env.int(&GUEST_CHALLENGE_BITS)?,
    })
}
