//! `switchboard context-demo`: a stand-in for a shop's customer context
//! endpoint, to try `ChatSession.customerContext` without one. It checks
//! each call's token as a real provider should (HS256 with CONTEXT_SECRET,
//! else JWT_SECRET; audience "context"; not expired; `sub` equal to the
//! `customerId` asked for) and answers a made-up profile and orders that
//! are the same every time for one customer id.

use axum::extract::{Query, State};
use axum::http::{header::AUTHORIZATION, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::service::verify_call;

#[derive(serde::Deserialize)]
pub struct Ask {
    #[serde(rename = "customerId")]
    customer_id: String,
}

/// A number from the customer id, so a customer's made-up data stays put.
fn seed(id: &str) -> u64 {
    id.bytes().fold(1469598103934665603u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(1099511628211)
    })
}

/// The made-up answer for one customer: a profile, recent orders, and
/// top-level keys a canned response can name (`{{customer.tier}}`).
pub fn fake_context(customer_id: &str) -> Value {
    let n = seed(customer_id);
    let tiers = ["bronze", "silver", "gold"];
    let orders: Vec<Value> = (0..(n % 3 + 1))
        .map(|i| {
            let k = n.rotate_left(i as u32 * 7);
            let status = ["shipped", "delivered", "processing"][(k % 3) as usize];
            json!({
                "id": format!("ORD-{:05}", k % 100_000),
                "status": status,
                "total": format!("{}.{:02} EUR", 10 + k % 190, k % 100),
            })
        })
        .collect();
    json!({
        "customerId": customer_id,
        "tier": tiers[(n % 3) as usize],
        "memberSince": format!("{}-{:02}-01", 2015 + n % 10, 1 + n % 12),
        "lastOrder": orders.first().and_then(|o| o.get("id")).cloned(),
        "profile": { "email": format!("{customer_id}@example.com"), "language": "en" },
        "orders": orders,
    })
}

async fn answer(
    State(secret): State<std::sync::Arc<Vec<u8>>>,
    headers: HeaderMap,
    Query(ask): Query<Ask>,
) -> Response {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = token else {
        return (StatusCode::UNAUTHORIZED, "a bearer token is required").into_response();
    };
    match verify_call(token, &secret) {
        Ok(claims) if claims.sub == ask.customer_id => {
            Json(fake_context(&ask.customer_id)).into_response()
        }
        Ok(_) => (StatusCode::FORBIDDEN, "the token is for another customer").into_response(),
        Err(e) => (StatusCode::UNAUTHORIZED, e.to_string()).into_response(),
    }
}

/// The demo's routes: `GET /?customerId=…` (any path answers alike).
pub fn router(secret: Vec<u8>) -> Router {
    Router::new()
        .route("/", get(answer))
        .fallback(get(answer))
        .with_state(std::sync::Arc::new(secret))
}

/// Serves the demo on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, secret: Vec<u8>) -> std::io::Result<()> {
    axum::serve(listener, router(secret)).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_same_customer_gets_the_same_made_up_data() {
        let a = super::fake_context("alice");
        assert_eq!(a, super::fake_context("alice"));
        assert_eq!(a["customerId"], "alice");
        assert!(a["orders"].as_array().is_some_and(|o| !o.is_empty()));
        assert!(a["tier"].is_string());
    }
}
