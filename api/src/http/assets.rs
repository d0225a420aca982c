//! Serves the built-in UI ([`crate::web`]): `/widget.js` for any page that
//! embeds the chat, `/console` and its files for agents and admins.
//!
//! The widget script runs on other sites, so it may be loaded from anywhere
//! (`Cross-Origin-Resource-Policy: cross-origin`); what it may then do is
//! decided by ALLOWED_ORIGINS at the API (the origin guard in [`super`]).
//! The console holds a token, so its page gets a strict policy: only its
//! own scripts and styles, connections to this server only, never framed,
//! no referrer.

use std::sync::Arc;

use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HOST, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::graphiql::valid_host;
use super::AppState;
use crate::web::{Asset, CONSOLE_FILES, CONSOLE_PAGE, WIDGET};

const CROSS_ORIGIN_RESOURCE_POLICY: HeaderName =
    HeaderName::from_static("cross-origin-resource-policy");

/// The routes of the UI, merged into the server's router.
pub(super) fn routes() -> Router<Arc<AppState>> {
    let mut router = Router::new().route("/widget.js", get(widget)).route(
        CONSOLE_PAGE.path,
        get(|h: HeaderMap| async move { console(&CONSOLE_PAGE, &h) }),
    );
    for asset in CONSOLE_FILES {
        router = router.route(
            asset.path,
            get(move |h: HeaderMap| async move { console(asset, &h) }),
        );
    }
    router
}

async fn widget() -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(WIDGET.content_type)),
            (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (
                CROSS_ORIGIN_RESOURCE_POLICY,
                HeaderValue::from_static("cross-origin"),
            ),
            // Short: a new release reaches shop pages within minutes.
            (
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        WIDGET.body(),
    )
        .into_response()
}

fn console(asset: &'static Asset, headers: &HeaderMap) -> Response {
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| valid_host(h));
    let policy = HeaderValue::from_str(&console_policy(host))
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"));
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
            (CONTENT_SECURITY_POLICY, policy),
            (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
            (X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        asset.body(),
    )
        .into_response()
}

/// The console's Content-Security-Policy: its own files only (no inline
/// script or style, no eval), connections to this server, its WebSocket
/// origin spelled out as not every browser counts ws:/wss: as 'self'.
pub(super) fn console_policy(host: Option<&str>) -> String {
    let sockets = host
        .map(|h| format!(" ws://{h} wss://{h}"))
        .unwrap_or_default();
    format!(
        "default-src 'none'; \
         script-src 'self'; \
         style-src 'self'; \
         img-src 'self' data:; \
         connect-src 'self'{sockets}; \
         base-uri 'none'; \
         form-action 'none'; \
         frame-ancestors 'none'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_the_socket_origin_only_for_a_valid_host() {
        let p = console_policy(Some("127.0.0.1:8080"));
        assert!(p.contains("connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080;"));
        assert!(p.contains("script-src 'self';"));
        assert!(!p.contains("unsafe"));
        assert!(console_policy(None).contains("connect-src 'self';"));
    }
}
