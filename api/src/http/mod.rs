//! HTTP and WebSocket wiring: GraphQL over POST, subscriptions over
//! WebSocket (graphql-transport-ws and the legacy protocol), GraphiQL and
//! health probes. Authentication is read here and checked in resolvers.

pub mod client_ip;
pub mod ws;

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::http::{GraphiQLSource, ALL_WEBSOCKET_PROTOCOLS};
use async_graphql::{Data, Executor};
use std::time::Duration;

use async_graphql::http::WebSocketProtocols;
use async_graphql_axum::GraphQLResponse;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::Request;
use axum::extract::{DefaultBodyLimit, Extension, Query, State, WebSocketUpgrade};
use axum::http::header::CONTENT_TYPE;
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, AUTHORIZATION, HOST, ORIGIN, VARY,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::auth::{bearer_token, Caller, JwtKeys};
use tracing::Instrument;

const X_REQUEST_ID: &str = "x-request-id";
use crate::config::Limits;
use crate::error::ErrorCode;
use crate::graphql::{Gateway, SubscriptionBudget};
use crate::metrics::GaugeGuard;
use crate::service::ChatService;
use crate::shutdown::Shutdown;
use client_ip::{ClientIp, ConnectionCounts};

#[derive(Clone)]
pub struct AppState {
    /// The GraphQL schema, behind its request checks.
    pub gateway: Gateway,
    pub service: ChatService,
    pub keys: JwtKeys,
    pub limits: Limits,
    /// Tells open WebSockets that the server is stopping.
    pub shutdown: Shutdown,
    pub connections: ConnectionCounts,
}

pub fn router(state: AppState) -> Router {
    // Shared, not cloned per request: a WebSocket keeps what its handler
    // captured for as long as it is open, and the state is ~600 bytes.
    let state = Arc::new(state);
    let body_limit = state.limits.max_body_bytes;
    Router::new()
        .route("/", get(graphiql))
        .route("/graphql", get(graphql_ws).post(graphql_http))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            state.limits.trusted_proxy_hops,
            client_ip::record,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), guard_origin))
        .layer(middleware::from_fn(with_request_id))
        .with_state(state)
}

/// Gives every request an id: a tracing span carries it onto every log line
/// the request causes (a WebSocket's whole life included), and the response
/// returns it as `x-request-id` so a client can quote it. A well-formed id
/// sent by a proxy is kept.
async fn with_request_id(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let span = tracing::info_span!(
        "request",
        id = %id,
        method = %request.method(),
        path = %request.uri().path(),
        operation = tracing::field::Empty,
    );
    let mut response = next.run(request).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }
    response
}

/// Whether a browser page from `origin` may use the API: the server's own
/// origin (the one the request was addressed to), or one configured in
/// ALLOWED_ORIGINS. Requests without an Origin (not from a browser page)
/// are not affected.
pub fn origin_allowed(origin: &str, host: Option<&str>, allowed: &[String]) -> bool {
    let origin = origin.trim_end_matches('/');
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    if authority.is_some() && authority == host {
        return true;
    }
    allowed.iter().any(|a| a == "*" || a == origin)
}

/// Refuses cross-origin use by pages not allowed (WebSocket handshakes
/// included: browsers do not apply CORS to them), and adds CORS headers and
/// preflight answers for allowed ones.
async fn guard_origin(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(origin) = request
        .headers()
        .get(ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_owned)
    else {
        return next.run(request).await;
    };
    let host = request.headers().get(HOST).and_then(|h| h.to_str().ok());
    if !origin_allowed(&origin, host, &state.limits.allowed_origins) {
        return refuse(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            format!("origin {origin} may not use this API; see ALLOWED_ORIGINS"),
        );
    }
    let preflight = request.method() == Method::OPTIONS;
    let mut response = if preflight {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&origin) {
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    headers.insert(VARY, HeaderValue::from_static("Origin"));
    if preflight {
        headers.insert(
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST, GET, OPTIONS"),
        );
        headers.insert(
            ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type"),
        );
        headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    }
    response
}

/// A GraphQL-shaped refusal, for requests that never reach the executor.
fn refuse(status: StatusCode, code: ErrorCode, message: String) -> Response {
    let body = serde_json::json!({ "errors": [{ "message": message, "extensions": { "code": code.as_str() } }] });
    (status, axum::Json(body)).into_response()
}

impl AppState {
    /// Verifies the token and creates the agent on first sight.
    async fn caller(&self, token: Option<&str>) -> Caller {
        let caller = self.keys.caller(token);
        if let Caller::Verified(viewer) = &caller {
            // If this fails the database is down; the resolver will say so.
            if let Err(e) = self.service.ensure_agent(viewer).await {
                tracing::warn!(error = %e, "could not record agent");
            }
        }
        caller
    }
}

/// POST /graphql. The body is read through axum's `Bytes` extractor, which
/// honours the body limit (async-graphql's own extractor would read any size),
/// and must be one JSON operation: batches are refused.
async fn graphql_http(
    State(state): State<Arc<AppState>>,
    Extension(client): Extension<ClientIp>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::BadUserInput,
                format!(
                    "request body is larger than {} bytes",
                    state.limits.max_body_bytes
                ),
            )
        }
        Err(rejection) => {
            return refuse(
                rejection.status(),
                ErrorCode::BadUserInput,
                rejection.body_text(),
            )
        }
    };
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            let message = if body.first() == Some(&b'[') {
                "batched requests are not accepted; send one operation per request".to_owned()
            } else {
                format!("request body is not a GraphQL request: {e}")
            };
            return refuse(StatusCode::BAD_REQUEST, ErrorCode::BadUserInput, message);
        }
    };
    if let Some(name) = &request.operation_name {
        tracing::Span::current().record("operation", name.as_str());
    }
    let caller = match headers.get(AUTHORIZATION) {
        None => Caller::Anonymous,
        Some(value) => match value.to_str().ok().and_then(bearer_token) {
            Some(token) => state.caller(Some(token)).await,
            None => Caller::Rejected("Authorization header must be `Bearer <token>`".into()),
        },
    };
    GraphQLResponse::from(
        state
            .gateway
            .execute(request.data(caller).data(client))
            .await,
    )
    .into_response()
}

/// Reads the token from the connection_init payload:
/// `{"authorization": "Bearer <token>"}` (a bare token is accepted too).
fn token_from_init(payload: &serde_json::Value) -> Option<String> {
    let value = payload
        .get("authorization")
        .or_else(|| payload.get("Authorization"))?
        .as_str()?;
    Some(bearer_token(value).unwrap_or(value).trim().to_owned()).filter(|t| !t.is_empty())
}

async fn graphql_ws(
    State(state): State<Arc<AppState>>,
    Extension(client): Extension<ClientIp>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(protocol) = ws_protocol(&headers) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadUserInput,
            "Sec-WebSocket-Protocol must offer graphql-transport-ws (or the legacy graphql-ws)"
                .into(),
        );
    };
    let limits = &state.limits;
    let Some(slot) = state
        .connections
        .try_open(client.0, limits.ip_max_connections)
    else {
        state
            .service
            .metrics()
            .refused_by_ip_limit
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            format!(
                "at most {} WebSocket connections per client address",
                limits.ip_max_connections
            ),
        );
    };
    let max = limits.ws_max_message_bytes;
    let settings = ws::Settings {
        protocol,
        keepalive: Duration::from_secs(limits.ws_keepalive_secs),
        init_timeout: Duration::from_secs(limits.ws_init_timeout_secs),
        send_timeout: Duration::from_secs(limits.ws_send_timeout_secs),
    };
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(limits.ws_read_buffer_bytes)
        // No cap on the write buffer: it only grows past its target while
        // a write fails, the send timeout deals with a peer that stopped
        // reading, and a cap would refuse any single result larger than it.
        .write_buffer_size(limits.ws_write_buffer_bytes)
        .on_upgrade(move |socket| {
            // The connection outlives the upgrade request: keep its span.
            let span = tracing::Span::current();
            let metrics = state.service.metrics();
            let connected = GaugeGuard::new(metrics.clone(), |m| &m.websocket_connections);
            let shutdown = state.shutdown.watch();
            let gateway = state.gateway.clone();
            let on_init = move |payload: serde_json::Value| async move {
                let token = token_from_init(&payload);
                let caller = state.caller(token.as_deref()).await;
                let expires_at = match &caller {
                    Caller::Verified(viewer) => Some(viewer.expires_at),
                    _ => None,
                };
                let mut data = Data::default();
                data.insert(caller);
                data.insert(client);
                data.insert(SubscriptionBudget::new(state.limits.ws_max_subscriptions));
                ws::Init { data, expires_at }
            };
            // Built here, not in an async block: see `ws::drive`.
            ws::drive(
                socket,
                gateway,
                settings,
                on_init,
                shutdown,
                metrics,
                (slot, connected),
            )
            .instrument(span)
        })
}

/// The first GraphQL protocol the client offers.
fn ws_protocol(headers: &HeaderMap) -> Option<WebSocketProtocols> {
    headers
        .get(axum::http::header::SEC_WEBSOCKET_PROTOCOL)?
        .to_str()
        .ok()?
        .split(',')
        .find_map(|p| p.trim().parse().ok())
}

/// GraphiQL. `/?token=<jwt>` pre-fills the Authorization header and the
/// WebSocket connection_init payload, so subscriptions work in the page.
async fn graphiql(Query(params): Query<HashMap<String, String>>) -> Html<String> {
    let token = params.get("token").filter(|t| {
        t.len() < 4096
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    });
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut page = GraphiQLSource::build()
        .endpoint("/graphql")
        .subscription_endpoint("/graphql")
        .title("Switchboard");
    if let Some(b) = bearer.as_deref() {
        page = page
            .header("Authorization", b)
            .ws_connection_param("authorization", b);
    }
    Html(page.finish())
}

/// Prometheus metrics. Serve this port's /metrics to your monitoring only
/// (at the proxy): it tells queue sizes, though nothing about any chat.
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    match state.service.metrics_text().await {
        Ok(text) => ([(CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "metrics unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "metrics unavailable").into_response()
        }
    }
}

async fn readyz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    if state.service.ping().await {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn origins() {
        let none: Vec<String> = vec![];
        assert!(
            origin_allowed("http://127.0.0.1:8080", Some("127.0.0.1:8080"), &none),
            "own origin"
        );
        assert!(origin_allowed(
            "https://chat.example.com",
            Some("chat.example.com"),
            &none
        ));
        assert!(!origin_allowed(
            "https://evil.example",
            Some("127.0.0.1:8080"),
            &none
        ));
        assert!(!origin_allowed("null", Some("127.0.0.1:8080"), &none));
        let shop = vec!["https://shop.example.com".to_owned()];
        assert!(origin_allowed(
            "https://shop.example.com",
            Some("api.example.com"),
            &shop
        ));
        assert!(!origin_allowed(
            "https://shop.example.com.evil",
            Some("api.example.com"),
            &shop
        ));
        assert!(origin_allowed("https://anything", None, &["*".to_owned()]));
    }

    #[test]
    fn init_payload_tokens() {
        assert_eq!(
            token_from_init(&json!({"authorization": "Bearer abc"})).as_deref(),
            Some("abc")
        );
        assert_eq!(
            token_from_init(&json!({"Authorization": "abc"})).as_deref(),
            Some("abc")
        );
        assert_eq!(token_from_init(&json!({})), None);
        assert_eq!(token_from_init(&json!({"authorization": 5})), None);
    }
}
