//! BLOCKED_CLIENTS: addresses and ranges refused everything but the health
//! probes, over plain HTTP and at the WebSocket handshake alike.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;

use super::client_ip::ClientIp;
use super::refuse;
use crate::config::IpNet;
use crate::error::ErrorCode;

/// Probes come from the platform, not from clients: a blocked range that
/// holds the load balancer must not take the server out of rotation.
const PROBES: [&str; 2] = ["/healthz", "/readyz"];

/// Middleware (inside `client_ip::record`): FORBIDDEN for blocked clients.
pub async fn refuse_blocked(
    State(blocked): State<Arc<Vec<IpNet>>>,
    request: Request,
    next: Next,
) -> Response {
    if blocked.is_empty() || PROBES.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let client = request.extensions().get::<ClientIp>().map(|c| c.0);
    if client.is_some_and(|ip| blocked.iter().any(|net| net.contains(ip))) {
        return refuse(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "requests from your address are not accepted".into(),
        );
    }
    next.run(request).await
}
