//! Tokens as an identity service would issue them, signed with the secret
//! every test server is started with.

use std::sync::OnceLock;

use switchboard::auth::{Claims, JwtKeys, Role};
use switchboard::clock::Clock;
use switchboard::config::JwtSecret;

/// JWT_SECRET of every server the kit starts.
pub const SECRET: &str = "integration-test-secret-0123456789";

/// Lifetime of the tokens below: longer than any test.
const TTL_SECS: i64 = 3600;

/// The keys the servers verify with.
pub fn keys() -> &'static JwtKeys {
    static KEYS: OnceLock<JwtKeys> = OnceLock::new();
    KEYS.get_or_init(|| JwtKeys::new(&JwtSecret::new(SECRET.as_bytes().to_vec())))
}

/// A token for `sub` in `role`, named "`sub` (name)", valid for `ttl_secs`.
pub fn with_ttl(role: Role, sub: &str, ttl_secs: i64) -> String {
    issue(keys(), role, sub, ttl_secs)
}

fn issue(keys: &JwtKeys, role: Role, sub: &str, ttl_secs: i64) -> String {
    keys.issue(role, sub, Some(&format!("{sub} (name)")), ttl_secs)
        .expect("token")
}

/// Tokens issued at `clock`'s time, for a server on a driven clock: one
/// whose date was moved days ahead finds tokens of the real time expired.
pub fn issued_by(clock: &Clock) -> Issuer {
    Issuer {
        keys: keys().clone().with_clock(clock.clone()),
    }
}

/// Issues tokens by one clock; see [`issued_by`].
pub struct Issuer {
    keys: JwtKeys,
}

impl Issuer {
    pub fn with_ttl(&self, role: Role, sub: &str, ttl_secs: i64) -> String {
        issue(&self.keys, role, sub, ttl_secs)
    }

    pub fn customer(&self, sub: &str) -> String {
        self.with_ttl(Role::Customer, sub, TTL_SECS)
    }

    pub fn agent(&self, sub: &str) -> String {
        self.with_ttl(Role::Agent, sub, TTL_SECS)
    }

    pub fn admin(&self) -> String {
        self.with_ttl(Role::Admin, "root", TTL_SECS)
    }
}

/// A token for `sub` in `role`, valid for an hour.
pub fn token(role: Role, sub: &str) -> String {
    with_ttl(role, sub, TTL_SECS)
}

pub fn customer(sub: &str) -> String {
    token(Role::Customer, sub)
}

pub fn agent(sub: &str) -> String {
    token(Role::Agent, sub)
}

/// A customer whose shop signed a `priority` claim (LOW, NORMAL, HIGH,
/// URGENT; anything else to see it refused).
pub fn customer_with_priority(sub: &str, priority: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    keys()
        .sign(&Claims {
            sub: sub.to_owned(),
            role: "customer".into(),
            name: Some(format!("{sub} (name)")),
            exp: now + TTL_SECS,
            iat: now,
            nbf: None,
            priority: Some(priority.to_owned()),
        })
        .expect("token")
}

/// The admin every test shares, `root`.
pub fn admin() -> String {
    token(Role::Admin, "root")
}
