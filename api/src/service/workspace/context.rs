//! The customer's context from the shop's own systems: `GET
//! CONTEXT_URL?customerId=<id>` with a short-lived JWT the shop can check
//! (HS256, aud "context", sub the customer id, 60 s), kept per customer
//! for CONTEXT_CACHE_SECS. Concurrent asks for one customer share one call.
//! A failure never fails the query: the context says why it has no data.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tokio::sync::OnceCell;

use super::Workspace;
use crate::auth::Viewer;
use crate::config::{ContextSettings, JwtSecret};
use crate::domain::{access, ChatSession};
use crate::error::{AppError, AppResult};

/// Largest answer taken from the provider.
pub const MAX_CONTEXT_BYTES: usize = 64 * 1024;
/// Lifetime of the token on each call.
const TOKEN_TTL_SECS: i64 = 60;
/// Cache entries above this many make the next store drop expired ones.
const PRUNE_ABOVE: usize = 1024;

/// Why a context has no data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContextError {
    /// No CONTEXT_URL.
    NotConfigured,
    /// The provider did not answer within CONTEXT_TIMEOUT_MS.
    Timeout,
    /// It could not be reached, or answered with an error status.
    Unavailable,
    /// It answered something other than a JSON object of at most 64 KiB.
    BadResponse,
}

impl ContextError {
    pub fn as_str(self) -> &'static str {
        match self {
            ContextError::NotConfigured => "NOT_CONFIGURED",
            ContextError::Timeout => "TIMEOUT",
            ContextError::Unavailable => "UNAVAILABLE",
            ContextError::BadResponse => "BAD_RESPONSE",
        }
    }
}

/// What the provider said about a customer, or why it said nothing.
#[derive(Clone, Debug, PartialEq)]
pub struct CustomerContext {
    pub data: Option<Map<String, Value>>,
    pub fetched_at: Option<DateTime<Utc>>,
    pub error: Option<ContextError>,
}

impl CustomerContext {
    fn failed(error: ContextError) -> Self {
        CustomerContext {
            data: None,
            fetched_at: None,
            error: Some(error),
        }
    }
}

/// The provider's settings with the secret that signs the calls resolved
/// (CONTEXT_SECRET, else JWT_SECRET).
#[derive(Clone, Debug)]
pub struct ContextPolicy {
    pub url: Option<String>,
    pub secret: JwtSecret,
    pub timeout: Duration,
    pub cache_for: Duration,
}

impl ContextPolicy {
    pub fn new(settings: &ContextSettings, jwt_secret: &JwtSecret) -> Self {
        ContextPolicy {
            url: settings.url.clone(),
            secret: match &settings.secret {
                Some(s) => JwtSecret::new(s.expose().as_bytes().to_vec()),
                None => jwt_secret.clone(),
            },
            timeout: settings.timeout,
            cache_for: settings.cache_for,
        }
    }
}

/// One customer's answer: being fetched (asks wait on the cell), or there.
struct Slot {
    cell: OnceCell<CustomerContext>,
}

/// The client and its cache; one per process, in [`crate::service::Core`].
pub struct ContextProvider {
    policy: ContextPolicy,
    http: reqwest::Client,
    /// A std Mutex: held only to look up or replace a slot, never across
    /// an await.
    cache: Mutex<HashMap<String, Arc<Slot>>>,
}

#[derive(serde::Serialize)]
struct CallClaims<'a> {
    sub: &'a str,
    aud: &'static str,
    iat: i64,
    exp: i64,
}

impl ContextProvider {
    pub fn new(policy: ContextPolicy) -> Self {
        ContextProvider {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            policy,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Slot>>> {
        // Every operation under the lock is one insert, get or retain.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a settled answer may still be used at `now`. Failures are
    /// not kept: the next ask tries again.
    fn fresh(&self, c: &CustomerContext, now: DateTime<Utc>) -> bool {
        match c.fetched_at {
            Some(at) if c.error.is_none() => {
                let age = (now - at).to_std().unwrap_or_default();
                age < self.policy.cache_for
            }
            _ => false,
        }
    }

    /// The customer's context: from the cache, from a call in flight, or
    /// from a new call.
    pub async fn get(&self, customer_id: &str, now: DateTime<Utc>) -> CustomerContext {
        let Some(url) = self.policy.url.as_deref() else {
            return CustomerContext::failed(ContextError::NotConfigured);
        };
        let slot = {
            let mut cache = self.lock();
            let reusable = cache.get(customer_id).filter(|slot| match slot.cell.get() {
                None => true, // in flight: share it
                Some(c) => self.fresh(c, now),
            });
            match reusable {
                Some(slot) => Arc::clone(slot),
                None => {
                    if cache.len() >= PRUNE_ABOVE {
                        cache.retain(|_, s| s.cell.get().is_none_or(|c| self.fresh(c, now)));
                    }
                    let slot = Arc::new(Slot {
                        cell: OnceCell::new(),
                    });
                    cache.insert(customer_id.to_owned(), Arc::clone(&slot));
                    slot
                }
            }
        };
        slot.cell
            .get_or_init(|| self.fetch(url, customer_id, now))
            .await
            .clone()
    }

    async fn fetch(&self, url: &str, customer_id: &str, now: DateTime<Utc>) -> CustomerContext {
        match self.call(url, customer_id, now).await {
            Ok(data) => CustomerContext {
                data: Some(data),
                fetched_at: Some(now),
                error: None,
            },
            Err(error) => CustomerContext::failed(error),
        }
    }

    fn token(&self, customer_id: &str, now: DateTime<Utc>) -> Result<String, ContextError> {
        let iat = now.timestamp();
        let claims = CallClaims {
            sub: customer_id,
            aud: "context",
            iat,
            exp: iat + TOKEN_TTL_SECS,
        };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(self.policy.secret.expose()),
        )
        .map_err(|e| {
            tracing::error!(error = %e, "cannot sign a context call");
            ContextError::Unavailable
        })
    }

    async fn call(
        &self,
        url: &str,
        customer_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Map<String, Value>, ContextError> {
        let token = self.token(customer_id, now)?;
        let request = async {
            let mut response = self
                .http
                .get(url)
                .query(&[("customerId", customer_id)])
                .bearer_auth(token)
                .header(reqwest::header::ACCEPT, "application/json")
                .send()
                .await
                .map_err(|e| {
                    tracing::warn!(error = %e, "context provider unreachable");
                    ContextError::Unavailable
                })?;
            if !response.status().is_success() {
                tracing::warn!(status = %response.status(), "context provider refused");
                return Err(ContextError::Unavailable);
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| {
                tracing::warn!(error = %e, "context provider's answer broke off");
                ContextError::Unavailable
            })? {
                if body.len() + chunk.len() > MAX_CONTEXT_BYTES {
                    return Err(ContextError::BadResponse);
                }
                body.extend_from_slice(&chunk);
            }
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(map)) => Ok(map),
                _ => Err(ContextError::BadResponse),
            }
        };
        // The whole exchange, body included, within the timeout (tokio's
        // time: the provider is a real server, whatever clock drives ours).
        tokio::time::timeout(self.policy.timeout, request)
            .await
            .unwrap_or(Err(ContextError::Timeout))
    }
}

impl Workspace<'_> {
    /// The customer's context for the session's agent or an admin; None
    /// for everyone else (customers, other agents).
    pub async fn customer_context(
        &self,
        viewer: &Viewer,
        s: &ChatSession,
    ) -> AppResult<Option<CustomerContext>> {
        if access::may_assist(viewer, s).is_err() {
            return Ok(None);
        }
        Ok(Some(self.context_of(&s.customer_id).await))
    }

    pub(super) async fn context_of(&self, customer_id: &str) -> CustomerContext {
        self.core.context.get(customer_id, self.core.now()).await
    }
}

/// What a call's JWT claims, for providers written in Rust (the demo, tests).
#[derive(Debug, serde::Deserialize)]
pub struct ContextCallClaims {
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
}

/// Checks a call's bearer token as a provider should: HS256 with the shared
/// secret, audience "context", not expired. Returns the customer id.
pub fn verify_call(token: &str, secret: &[u8]) -> Result<ContextCallClaims, AppError> {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&["context"]);
    validation.set_required_spec_claims(&["exp", "aud", "sub"]);
    jsonwebtoken::decode::<ContextCallClaims>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(secret),
        &validation,
    )
    .map(|d| d.claims)
    .map_err(|e| AppError::Unauthenticated(format!("bad context token: {e}")))
}
