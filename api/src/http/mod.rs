//! HTTP and WebSocket wiring: GraphQL over POST, subscriptions over
//! WebSocket (graphql-transport-ws and the legacy protocol), GraphiQL, the
//! built-in widget and console (`assets`) and health probes.
//! Authentication is read here and checked in resolvers.

mod assets;
mod blocked;
pub mod client_ip;
pub mod context_demo;
mod files;
mod graphiql;
mod graphql_http;
pub mod serve;
pub mod ws;

use std::sync::Arc;

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql::Data;
use std::time::Duration;

use async_graphql::http::WebSocketProtocols;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::Request;
use axum::extract::{DefaultBodyLimit, Extension, State, WebSocketUpgrade};
use axum::http::header::CONTENT_TYPE;
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, AUTHORIZATION, ORIGIN, VARY,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::auth::{bearer_token, Caller, JwtKeys};
use tracing::Instrument;

const X_REQUEST_ID: &str = "x-request-id";
use crate::config::Limits;
use crate::error::ErrorCode;
use crate::graphql::{Gateway, SubscriptionBudget};
use crate::metrics::GaugeGuard;
use crate::service::{AgentConnection, Services};
use crate::shutdown::Shutdown;
use client_ip::{ClientIp, ConnectionCounts};

#[derive(Clone)]
pub struct AppState {
    /// The GraphQL schema, behind its request checks.
    pub gateway: Gateway,
    pub service: Services,
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
    let routes = Router::new()
        .route("/", get(graphiql::page))
        .route(
            "/graphql",
            get(graphql_get)
                .post(files::post)
                .fallback(graphql_http::other_method),
        )
        .route("/files/{message}/{attachment}", get(files::download))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(assets::routes())
        .layer(DefaultBodyLimit::max(body_limit));
    // Only when some are blocked: every request would pay for the layer.
    let routes = if state.limits.blocked_clients.is_empty() {
        routes
    } else {
        routes.layer(middleware::from_fn_with_state(
            Arc::new(state.limits.blocked_clients.clone()),
            blocked::refuse_blocked,
        ))
    };
    routes
        .layer(middleware::from_fn_with_state(
            Arc::new(client_ip::ProxyTrust {
                proxies: state.limits.trusted_proxies.clone(),
                hops: state.limits.trusted_proxy_hops,
            }),
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
/// origin (from PUBLIC_URL or the listen address, never from the request's
/// Host, which a DNS-rebinding page controls), or one configured in
/// ALLOWED_ORIGINS. Requests without an Origin (not from a browser page)
/// are not affected.
pub fn origin_allowed(origin: &str, own: &[String], allowed: &[String]) -> bool {
    let origin = origin.trim_end_matches('/');
    own.iter().any(|o| o.eq_ignore_ascii_case(origin))
        || allowed.iter().any(|a| a == "*" || a == origin)
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
    let limits = &state.limits;
    if !origin_allowed(&origin, &limits.own_origins, &limits.allowed_origins) {
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
pub(super) fn refuse(status: StatusCode, code: ErrorCode, message: String) -> Response {
    let body = serde_json::json!({ "errors": [{ "message": message, "extensions": { "code": code.as_str() } }] });
    (status, axum::Json(body)).into_response()
}

impl AppState {
    /// The caller named by an `Authorization` header, if any.
    async fn caller_of(&self, headers: &HeaderMap) -> Caller {
        match headers.get(AUTHORIZATION) {
            None => Caller::Anonymous,
            Some(value) => match value.to_str().ok().and_then(bearer_token) {
                Some(token) => self.caller(Some(token)).await,
                None => Caller::Rejected("Authorization header must be `Bearer <token>`".into()),
            },
        }
    }

    /// Verifies the token and creates the agent on first sight.
    async fn caller(&self, token: Option<&str>) -> Caller {
        let caller = self.keys.caller(token);
        if let Caller::Verified(viewer) = &caller {
            // If this fails the database is down; the resolver will say so.
            if let Err(e) = self.service.agents().ensure_agent(viewer).await {
                tracing::warn!(error = %e, "could not record agent");
            }
        }
        caller
    }
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

/// GET /graphql: a WebSocket upgrade for subscriptions, else a query per
/// the GraphQL-over-HTTP specification (urql, for one, sends its queries
/// this way by default).
async fn graphql_get(
    state: State<Arc<AppState>>,
    client: Extension<ClientIp>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    query: axum::extract::RawQuery,
) -> Response {
    match upgrade {
        Ok(upgrade) => graphql_ws(state, client, headers, upgrade).await,
        Err(_) => graphql_http::get(state, client, headers, query).await,
    }
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
        clock: state.service.clock().clone(),
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
            // An agent's connection counts for their presence from its
            // connection_init until the connection ends (this slot is
            // dropped with the connection's other guards).
            let presence: Arc<std::sync::Mutex<Option<AgentConnection>>> = Default::default();
            let presence_at_init = presence.clone();
            let on_init = move |payload: serde_json::Value| async move {
                let token = token_from_init(&payload);
                let caller = state.caller(token.as_deref()).await;
                let expires_at = match &caller {
                    Caller::Verified(viewer) => {
                        let connection = state.service.presence().agent_connected(viewer).await;
                        *presence_at_init.lock().unwrap_or_else(|p| p.into_inner()) = connection;
                        Some(viewer.expires_at)
                    }
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
                (slot, connected, presence),
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

/// Prometheus metrics. Serve this port's /metrics to your monitoring only
/// (at the proxy): it tells queue sizes, though nothing about any chat.
async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(expected) = &state.limits.metrics_token {
        let given = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .unwrap_or_default();
        if !constant_time_eq(given.as_bytes(), expected.expose().as_bytes()) {
            let mut response = refuse(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthenticated,
                "/metrics needs `Authorization: Bearer <METRICS_TOKEN>`".into(),
            );
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
            return response;
        }
    }
    match state.service.metrics_text().await {
        Ok(text) => ([(CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "metrics unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "metrics unavailable").into_response()
        }
    }
}

/// Equal without telling, through timing, how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
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
        let own = vec![
            "http://127.0.0.1:8080".to_owned(),
            "http://localhost:8080".to_owned(),
        ];
        assert!(
            origin_allowed("http://127.0.0.1:8080", &own, &none),
            "own origin"
        );
        assert!(origin_allowed("http://LOCALHOST:8080/", &own, &none));
        assert!(
            !origin_allowed("http://evil.example", &own, &none),
            "whatever Host the request names (DNS rebinding)"
        );
        assert!(!origin_allowed("null", &own, &none));
        let public = vec!["https://chat.example.com".to_owned()];
        assert!(origin_allowed("https://chat.example.com", &public, &none));
        assert!(!origin_allowed("http://chat.example.com", &public, &none));
        let shop = vec!["https://shop.example.com".to_owned()];
        assert!(origin_allowed("https://shop.example.com", &public, &shop));
        assert!(!origin_allowed(
            "https://shop.example.com.evil",
            &public,
            &shop
        ));
        assert!(origin_allowed("https://anything", &none, &["*".to_owned()]));
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
