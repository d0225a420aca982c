//! Who is calling: JWT verification and issuing, and the [`Viewer`] that
//! every resolver and service call is made on behalf of.

pub mod guest;
mod jwt;

pub use jwt::{Claims, JwtKeys};

use crate::clock::Clock;
use crate::error::AppError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Role {
    Customer,
    Agent,
    Admin,
}

impl Role {
    pub fn as_claim(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Agent => "agent",
            Role::Admin => "admin",
        }
    }

    pub fn from_claim(s: &str) -> Option<Role> {
        match s {
            "customer" => Some(Role::Customer),
            "agent" => Some(Role::Agent),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A verified caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Viewer {
    /// The token's `sub`: the customer's opaque id, or the agent's id.
    pub id: String,
    pub role: Role,
    pub name: Option<String>,
    /// Unix seconds at which the token stops being valid.
    pub expires_at: i64,
    /// A customer's priority from the token's signed `priority` claim.
    pub priority: Option<crate::domain::Priority>,
}

impl Viewer {
    /// Who this is, as one key: the role and the `sub`. Two tokens with one
    /// `sub` and different roles are two people (a shop's customer ids and
    /// its staff ids are separate namespaces), so no limit, presence or
    /// lookup keys by the `sub` alone.
    pub fn key(&self) -> String {
        format!("{}:{}", self.role.as_claim(), self.id)
    }

    pub fn require_agent(&self) -> Result<&str, AppError> {
        match self.role {
            Role::Agent => Ok(&self.id),
            _ => Err(AppError::Forbidden("only agents may do this".into())),
        }
    }

    pub fn require_customer(&self) -> Result<&str, AppError> {
        match self.role {
            Role::Customer => Ok(&self.id),
            _ => Err(AppError::Forbidden("only customers may do this".into())),
        }
    }

    pub fn require_admin(&self) -> Result<(), AppError> {
        match self.role {
            Role::Admin => Ok(()),
            _ => Err(AppError::Forbidden("only admins may do this".into())),
        }
    }

    pub fn require_staff(&self) -> Result<(), AppError> {
        match self.role {
            Role::Agent | Role::Admin => Ok(()),
            Role::Customer => Err(AppError::Forbidden(
                "only agents and admins may do this".into(),
            )),
        }
    }
}

/// What the transport learned about the caller, kept per request or per
/// WebSocket connection. Failing late, in the resolver, lets the error carry
/// `extensions.code` and lets anonymous introspection work.
#[derive(Clone, Debug)]
pub enum Caller {
    Anonymous,
    Rejected(String),
    Verified(Viewer),
}

impl Caller {
    /// The verified caller, if its token is still valid by `clock`.
    pub fn viewer(&self, clock: &Clock) -> Result<&Viewer, AppError> {
        match self {
            // A WebSocket keeps the caller of its connection_init; the token
            // may run out while the socket stays open.
            Caller::Verified(v) if v.expires_at < clock.now().timestamp() => Err(
                AppError::Unauthenticated("token expired; reconnect with a fresh one".into()),
            ),
            Caller::Verified(v) => Ok(v),
            Caller::Anonymous => Err(AppError::Unauthenticated(
                "missing token: send Authorization: Bearer <token>".into(),
            )),
            Caller::Rejected(reason) => Err(AppError::Unauthenticated(reason.clone())),
        }
    }
}

/// Extracts the token from an `Authorization` header value (`Bearer <token>`).
pub fn bearer_token(header: &str) -> Option<&str> {
    let header = header.trim();
    let (scheme, token) = header.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}
