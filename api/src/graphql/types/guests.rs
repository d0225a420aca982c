//! Guest visitors: their token, and the challenge that may come before it.

use async_graphql::{SimpleObject, ID};
use chrono::{DateTime, Utc};

use crate::service;

#[derive(SimpleObject)]
#[graphql(name = "GuestToken")]
pub struct GuestTokenGql {
    /// A customer token for an anonymous visitor: an opaque random sub, no personal data.
    pub token: String,
    pub customer_id: ID,
    pub expires_at: DateTime<Utc>,
}

impl From<service::GuestToken> for GuestTokenGql {
    fn from(g: service::GuestToken) -> Self {
        GuestTokenGql {
            token: g.token,
            customer_id: ID(g.customer_id),
            expires_at: g.expires_at,
        }
    }
}

/// A proof-of-work puzzle to solve before createGuest: find a string `solution` (counting up from 0 works) such that SHA-256 of the UTF-8 text challenge + solution starts with `difficulty` zero bits.
#[derive(SimpleObject)]
#[graphql(name = "GuestChallenge")]
pub struct GuestChallengeGql {
    pub challenge: String,
    /// Leading zero bits the hash must have.
    pub difficulty: i32,
    pub expires_at: DateTime<Utc>,
}

impl From<service::GuestChallenge> for GuestChallengeGql {
    fn from(c: service::GuestChallenge) -> Self {
        GuestChallengeGql {
            challenge: c.challenge,
            difficulty: i32::try_from(c.difficulty).unwrap_or(i32::MAX),
            expires_at: c.expires_at,
        }
    }
}
