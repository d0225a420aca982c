//! Guest visitors: anonymous customer tokens, and the self-hosted
//! proof-of-work challenge that may be asked before one.
//!
//! A guest token is a customer token whose `sub` is random and opaque,
//! with `guest: true` and no claim about the person. Nothing is stored
//! about the guest; they are whoever holds the token.
//!
//! A challenge is `v1.<nonce>.<expires>.<bits>.<mac>`: signed by a key
//! derived from the token secret, so every process can check any other's
//! without storing them until they are spent. Its solution is a string
//! (a counter, in practice) for which SHA-256 of challenge ‖ solution
//! starts with `bits` zero bits: about 2^bits hashes to find, one to check.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{JwtKeys, Role};
use crate::config::JwtSecret;

/// Prefix of guests' `sub`, so that logs tell them apart from a shop's customers.
pub const GUEST_SUB_PREFIX: &str = "guest_";
const SUB_RANDOM_BYTES: usize = 16;
const NONCE_BYTES: usize = 16;
/// Longest solution accepted: a counter needs a dozen digits at most.
const MAX_SOLUTION_LEN: usize = 64;
const VERSION: &str = "v1";

/// The claims of a guest token: a customer, by a random `sub`, nothing else.
#[derive(Serialize)]
struct GuestClaims<'a> {
    sub: &'a str,
    role: &'static str,
    exp: i64,
    iat: i64,
    guest: bool,
}

/// A fresh opaque customer id for a guest.
pub fn new_guest_sub() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; SUB_RANDOM_BYTES];
    getrandom::fill(&mut bytes)?;
    Ok(format!(
        "{GUEST_SUB_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// A customer token for guest `sub`, issued at `now` (Unix seconds) and
/// living `ttl_secs`.
pub fn guest_token(
    keys: &JwtKeys,
    sub: &str,
    now: i64,
    ttl_secs: i64,
) -> Result<String, jsonwebtoken::errors::Error> {
    keys.sign(&GuestClaims {
        sub,
        role: Role::Customer.as_claim(),
        exp: now + ttl_secs,
        iat: now,
        guest: true,
    })
}

/// Signs and checks challenges.
#[derive(Clone)]
pub struct ChallengeKey([u8; 32]);

impl std::fmt::Debug for ChallengeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChallengeKey(…)")
    }
}

/// Why a solution was not taken.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("the challenge is malformed or was not issued by this server")]
    Invalid,
    #[error("the challenge has expired; ask guestChallenge for a new one")]
    Expired,
    #[error("the challenge is easier than this server now asks; ask guestChallenge for a new one")]
    TooEasy,
    #[error("the solution does not solve the challenge")]
    Unsolved,
}

/// A challenge whose solution checked out: its nonce, to spend once.
#[derive(Debug, PartialEq, Eq)]
pub struct Solved {
    pub nonce: String,
    pub expires_at: i64,
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        unreachable!("HMAC takes a key of any length")
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

impl ChallengeKey {
    /// A key of its own, derived from the token secret: a challenge can
    /// never pass for a token signature, nor the other way round.
    pub fn derive(secret: &JwtSecret) -> Self {
        ChallengeKey(hmac(secret.expose(), &[b"switchboard guest challenge v1"]))
    }

    /// A fresh challenge of `bits` expiring at `expires_at` (Unix seconds).
    pub fn issue(&self, expires_at: i64, bits: u32) -> Result<String, getrandom::Error> {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce)?;
        Ok(self.issue_with_nonce(&URL_SAFE_NO_PAD.encode(nonce), expires_at, bits))
    }

    fn issue_with_nonce(&self, nonce: &str, expires_at: i64, bits: u32) -> String {
        let body = format!("{VERSION}.{nonce}.{expires_at}.{bits}");
        let mac = URL_SAFE_NO_PAD.encode(hmac(&self.0, &[body.as_bytes()]));
        format!("{body}.{mac}")
    }

    /// Checks `solution` against `challenge` at `now`, wanting at least
    /// `min_bits`. The caller still has to spend the nonce.
    pub fn check(
        &self,
        challenge: &str,
        solution: &str,
        now: i64,
        min_bits: u32,
    ) -> Result<Solved, ChallengeError> {
        let parts: Vec<&str> = challenge.split('.').collect();
        let [version, nonce, expires, bits, mac] = parts[..] else {
            return Err(ChallengeError::Invalid);
        };
        if version != VERSION {
            return Err(ChallengeError::Invalid);
        }
        let body = &challenge[..challenge.len() - mac.len() - 1];
        let given = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| ChallengeError::Invalid)?;
        let expected = hmac(&self.0, &[body.as_bytes()]);
        // Constant time: the MAC must not be found byte by byte.
        let differs = given.len() != expected.len()
            || given
                .iter()
                .zip(expected)
                .fold(0u8, |d, (a, b)| d | (a ^ b))
                != 0;
        if differs {
            return Err(ChallengeError::Invalid);
        }
        let expires_at: i64 = expires.parse().map_err(|_| ChallengeError::Invalid)?;
        let bits: u32 = bits.parse().map_err(|_| ChallengeError::Invalid)?;
        if expires_at < now {
            return Err(ChallengeError::Expired);
        }
        if bits < min_bits {
            return Err(ChallengeError::TooEasy);
        }
        if solution.is_empty()
            || solution.len() > MAX_SOLUTION_LEN
            || !solution.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(ChallengeError::Unsolved);
        }
        if leading_zero_bits(&solution_hash(challenge, solution)) < bits {
            return Err(ChallengeError::Unsolved);
        }
        Ok(Solved {
            nonce: nonce.to_owned(),
            expires_at,
        })
    }
}

fn solution_hash(challenge: &str, solution: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(challenge.as_bytes());
    hash.update(solution.as_bytes());
    hash.finalize().into()
}

/// How many bits at the start of `hash` are zero.
pub fn leading_zero_bits(hash: &[u8]) -> u32 {
    let mut bits = 0;
    for byte in hash {
        if *byte == 0 {
            bits += 8;
        } else {
            return bits + byte.leading_zeros();
        }
    }
    bits
}

/// Finds a solution the way a widget does: counting from 0. For tests,
/// tools and the README's example; servers only check.
pub fn solve(challenge: &str) -> Option<String> {
    let bits: u32 = challenge.split('.').nth(3)?.parse().ok()?;
    (0u64..)
        .map(|n| n.to_string())
        .find(|s| leading_zero_bits(&solution_hash(challenge, s)) >= bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ChallengeKey {
        ChallengeKey::derive(&JwtSecret::new(b"test-secret-of-enough-length".to_vec()))
    }

    #[test]
    fn leading_zeros() {
        assert_eq!(leading_zero_bits(&[0x80]), 0);
        assert_eq!(leading_zero_bits(&[0x01]), 7);
        assert_eq!(leading_zero_bits(&[0x00, 0x00, 0x20]), 18);
        assert_eq!(leading_zero_bits(&[0x00, 0x00]), 16);
    }

    #[test]
    fn a_solved_challenge_checks_out_once_signed_and_in_time() {
        let k = key();
        let now = 1_000;
        let challenge = k.issue(now + 300, 10).unwrap();
        let solution = solve(&challenge).unwrap();
        let solved = k.check(&challenge, &solution, now, 10).unwrap();
        assert_eq!(solved.expires_at, now + 300);
        assert_eq!(solved.nonce, challenge.split('.').nth(1).unwrap());
        assert_eq!(
            k.check(&challenge, &solution, now + 301, 10),
            Err(ChallengeError::Expired)
        );
        assert_eq!(
            k.check(&challenge, &solution, now, 11),
            Err(ChallengeError::TooEasy)
        );
        // A solution of fewer bits than asked (found by trying) is refused.
        let wrong = (0u64..)
            .map(|n| n.to_string())
            .find(|s| leading_zero_bits(&solution_hash(&challenge, s)) < 10)
            .unwrap();
        assert_eq!(
            k.check(&challenge, &wrong, now, 10),
            Err(ChallengeError::Unsolved)
        );
        assert_eq!(
            k.check(&challenge, "", now, 10),
            Err(ChallengeError::Unsolved)
        );
    }

    #[test]
    fn a_tampered_or_foreign_challenge_is_invalid() {
        let k = key();
        let challenge = k.issue(2_000, 4).unwrap();
        let solution = solve(&challenge).unwrap();
        // Easier bits, a later expiry, another nonce: the MAC no longer fits.
        let mut parts: Vec<String> = challenge.split('.').map(str::to_owned).collect();
        parts[3] = "0".into();
        assert_eq!(
            k.check(&parts.join("."), "0", 1_000, 0),
            Err(ChallengeError::Invalid)
        );
        parts[3] = "4".into();
        parts[2] = "9999999999".into();
        assert_eq!(
            k.check(&parts.join("."), &solution, 1_000, 0),
            Err(ChallengeError::Invalid)
        );
        let other =
            ChallengeKey::derive(&JwtSecret::new(b"another-secret-of-some-length".to_vec()));
        assert_eq!(
            other.check(&challenge, &solution, 1_000, 0),
            Err(ChallengeError::Invalid)
        );
        for junk in ["", "v1", "v1.a.b.c.d", "v2.x.1.1.y", "a.b.c.d.e.f"] {
            assert_eq!(
                k.check(junk, "1", 0, 0),
                Err(ChallengeError::Invalid),
                "{junk}"
            );
        }
    }

    #[test]
    fn guest_tokens_are_customers_with_an_opaque_sub_and_no_name() {
        let keys = JwtKeys::new(&JwtSecret::new(b"test-secret-of-enough-length".to_vec()));
        let sub = new_guest_sub().unwrap();
        assert!(sub.starts_with(GUEST_SUB_PREFIX));
        assert_ne!(sub, new_guest_sub().unwrap());
        let now = chrono::Utc::now().timestamp();
        let token = guest_token(&keys, &sub, now, 600).unwrap();
        let viewer = keys.verify(&token).unwrap();
        assert_eq!(viewer.id, sub);
        assert_eq!(viewer.role, Role::Customer);
        assert_eq!(viewer.name, None);
        assert_eq!(viewer.expires_at, now + 600);
        let claims = token.split('.').nth(1).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
        let mut names: Vec<&str> = claims
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["exp", "guest", "iat", "role", "sub"]);
        assert_eq!(claims["guest"], true);
    }
}
