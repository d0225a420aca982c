//! Guest visitors: tokens for people who are not signed in, limited per
//! client address and, when configured, bought with a solved challenge.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};

use super::core::Core;
use crate::auth::guest::{self, ChallengeKey};
use crate::auth::JwtKeys;
use crate::config::{GuestSettings, JwtSecret};
use crate::error::{AppError, AppResult};
use crate::repo;

/// How long a challenge may take to solve and send back.
const CHALLENGE_TTL_SECS: i64 = 300;

/// What issuing guest tokens needs: the settings and the keys.
#[derive(Clone)]
pub struct GuestPolicy {
    pub settings: GuestSettings,
    keys: JwtKeys,
    challenge_key: ChallengeKey,
}

impl GuestPolicy {
    /// `keys` sign the tokens (by the server's clock, as it verifies them).
    pub fn new(settings: GuestSettings, keys: JwtKeys, secret: &JwtSecret) -> Self {
        GuestPolicy {
            settings,
            keys,
            challenge_key: ChallengeKey::derive(secret),
        }
    }
}

impl fmt::Debug for GuestPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuestPolicy")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A guest's token and who it makes them.
pub struct GuestToken {
    pub token: String,
    pub customer_id: String,
    pub expires_at: DateTime<Utc>,
}

/// A challenge to solve before `createGuest`.
pub struct GuestChallenge {
    pub challenge: String,
    pub difficulty: u32,
    pub expires_at: DateTime<Utc>,
}

/// A solved challenge as the visitor sends it back.
pub struct Answer<'a> {
    pub challenge: &'a str,
    pub solution: &'a str,
}

pub struct Guests<'a> {
    pub(super) core: &'a Arc<Core>,
}

fn at(secs: i64) -> AppResult<DateTime<Utc>> {
    Utc.timestamp_opt(secs, 0)
        .single()
        .ok_or_else(|| AppError::Internal(format!("time {secs} out of range")))
}

impl Guests<'_> {
    fn policy(&self) -> &GuestPolicy {
        &self.core.policy.guests
    }

    /// A fresh challenge, or None when the server asks none.
    pub fn challenge(&self) -> AppResult<Option<GuestChallenge>> {
        let bits = self.policy().settings.challenge_bits;
        if bits == 0 {
            return Ok(None);
        }
        let expires = self.core.now().timestamp() + CHALLENGE_TTL_SECS;
        let challenge = self
            .policy()
            .challenge_key
            .issue(expires, bits)
            .map_err(|e| AppError::Internal(format!("no randomness for a challenge: {e}")))?;
        Ok(Some(GuestChallenge {
            challenge,
            difficulty: bits,
            expires_at: at(expires)?,
        }))
    }

    /// A token for a new guest from `from`: limited per address, and
    /// wanting a solved challenge when the server asks for one.
    pub async fn create_guest(
        &self,
        from: Option<IpAddr>,
        answer: Option<Answer<'_>>,
    ) -> AppResult<GuestToken> {
        let policy = self.policy();
        if let Some(ip) = from {
            if !self.core.admit_address(&self.core.guest_limiter, ip) {
                return Err(AppError::RateLimited(format!(
                    "too many guest tokens for your address: at most {} a minute, bursts of {}",
                    policy.settings.ip_rate_per_min, policy.settings.ip_burst
                )));
            }
        }
        let now = self.core.now();
        let bits = policy.settings.challenge_bits;
        if bits > 0 {
            let Some(answer) = answer else {
                return Err(AppError::BadUserInput(
                    "this server asks guests to solve a challenge first: query guestChallenge, \
                     then send createGuest(challenge:, solution:)"
                        .into(),
                ));
            };
            let solved = policy
                .challenge_key
                .check(answer.challenge, answer.solution, now.timestamp(), bits)
                .map_err(|e| AppError::BadUserInput(e.to_string()))?;
            let expires = at(solved.expires_at)?;
            if !repo::guests::spend_challenge(&self.core.db, &solved.nonce, expires, now).await? {
                return Err(AppError::BadUserInput(
                    "this challenge was used already; ask guestChallenge for a new one".into(),
                ));
            }
        }
        let sub = guest::new_guest_sub()
            .map_err(|e| AppError::Internal(format!("no randomness for a guest id: {e}")))?;
        let ttl = policy.settings.token_ttl_secs;
        let token = guest::guest_token(&policy.keys, &sub, now.timestamp(), ttl)
            .map_err(|e| AppError::Internal(format!("could not sign a guest token: {e}")))?;
        Ok(GuestToken {
            token,
            customer_id: sub,
            expires_at: at(now.timestamp() + ttl)?,
        })
    }
}
