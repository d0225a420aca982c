//! The GraphiQL page: the playground admins and integrators use.
//!
//! The page holds a token, so it is built to be served on the internet: it
//! loads exact versions of React and GraphiQL, each checked by the browser
//! against a pinned SRI hash, from `GRAPHIQL_CDN` (unpkg by default; a mirror
//! or a path on this server for deployments that host the files themselves);
//! a Content-Security-Policy allows those files, the page's own inline
//! script (by a per-response nonce) and connections to this server only. When
//! a file cannot be loaded the page says which one, and where else to go,
//! instead of "Loading…" forever.
//!
//! The page's HTML and its own script are files beside this one
//! (`graphiql/page.html`, `graphiql/bootstrap.js`), built in at compile time.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HOST, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::{engine::general_purpose::STANDARD, Engine};

use super::AppState;

/// One file the page loads: `<cdn>/<package>@<version>/<path>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Asset {
    pub package: &'static str,
    /// Exact: a range would let the CDN serve other bytes than `integrity`.
    pub version: &'static str,
    pub path: &'static str,
    /// Subresource Integrity: `sha384-` and the base64 SHA-384 of the file.
    pub integrity: &'static str,
}

impl Asset {
    /// Where the file is, relative to the CDN: `<package>@<version>/<path>`.
    pub fn file(&self) -> String {
        format!("{}@{}/{}", self.package, self.version, self.path)
    }

    pub fn url(&self, cdn: &str) -> String {
        format!("{cdn}/{}", self.file())
    }

    pub fn is_stylesheet(&self) -> bool {
        self.path.ends_with(".css")
    }
}

/// Every file the page loads, in load order; nothing else is loaded.
///
/// How these were made (GraphiQL 4's UMD build, the one for `<script>`
/// tags, expects React 18's UMD globals `React` and `ReactDOM`; React 19 has
/// no UMD build): the CDN serves package files as they are in the npm
/// tarball, so
///
/// ```sh
/// npm pack react@18.3.1 react-dom@18.3.1 graphiql@4.1.2
/// mkdir graphiql && tar xzf graphiql-4.1.2.tgz -C graphiql   # files land in package/
/// openssl dgst -sha384 -binary graphiql/package/graphiql.min.js | openssl base64 -A
/// ```
///
/// (`npm pack` checks each tarball against the registry's sha512.) To update:
/// pick new exact versions, repeat for each path, replace the hashes, then
/// check the page in a browser against a mirror of the new files (the
/// integration test `graphiql_hashes_match_the_npm_files` checks the hashes
/// when `GRAPHIQL_ASSETS_DIR` points at such a mirror). Deployments that set
/// `GRAPHIQL_CDN` must then mirror the new files too.
pub(super) const ASSETS: [Asset; 4] = [
    Asset {
        package: "graphiql",
        version: "4.1.2",
        path: "graphiql.min.css",
        integrity: "sha384-1el1QShFBnnXTx9x/Cprg82hZWKt0ry29OAYIXt05swbi0KcZDFoj0CWguMpopJr",
    },
    Asset {
        package: "react",
        version: "18.3.1",
        path: "umd/react.production.min.js",
        integrity: "sha384-DGyLxAyjq0f9SPpVevD6IgztCFlnMF6oW/XQGmfe+IsZ8TqEiDrcHkMLKI6fiB/Z",
    },
    Asset {
        package: "react-dom",
        version: "18.3.1",
        path: "umd/react-dom.production.min.js",
        integrity: "sha384-gTGxhz21lVGYNMcdJOyq01Edg0jhn/c22nsx0kyqP0TxaV5WVdsSH1fSDUf5YJj1",
    },
    Asset {
        package: "graphiql",
        version: "4.1.2",
        path: "graphiql.min.js",
        integrity: "sha384-9XdHu7ajgGJziD4J1zNBKQ842Q/+zZfDv+ib1eMhZWBH6hPAs806x+Jbcf0yNO6B",
    },
];

/// Where GraphiQL sends queries and opens its graphql-transport-ws socket.
const ENDPOINT: &str = "/graphql";

/// GraphiQL. `/?token=<jwt>` pre-fills the Authorization header and the
/// WebSocket connection_init payload, so subscriptions work in the page.
pub(super) async fn page(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    // Only JWT characters: anything else is dropped, never reflected.
    let token = params.get("token").map(String::as_str).filter(|t| {
        !t.is_empty()
            && t.len() < 4096
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    });
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| valid_host(h));
    let Some(nonce) = nonce() else {
        tracing::error!("no randomness for the GraphiQL page's CSP nonce");
        return (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response();
    };
    let cdn = state.limits.graphiql_cdn.as_str();
    let html = render(cdn, token, &nonce);
    let Ok(policy) = HeaderValue::from_str(&content_security_policy(cdn, host, &nonce)) else {
        // Unreachable: every part is checked or percent-encoded.
        tracing::error!("the GraphiQL page's CSP is not a valid header value");
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "GraphiQL is misconfigured",
        )
            .into_response();
    };
    (
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (CONTENT_SECURITY_POLICY, policy),
            (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            // The page's URL may hold ?token=: never send it anywhere.
            (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
            // For browsers without CSP frame-ancestors.
            (X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            // The page may hold a token.
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        html,
    )
        .into_response()
}

/// 128 random bits, base64: a fresh CSP nonce for each response.
fn nonce() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(STANDARD.encode(bytes))
}

/// A Host header fit to go into the CSP: a name or address and a port.
pub(super) fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
}

/// The page's Content-Security-Policy.
///
/// Scripts: the page's one inline script (by nonce) and the exact pinned
/// files, not the whole CDN host: anyone can publish to npm, so allowing
/// `https://unpkg.com` would allow any script there. A CDN that is a path
/// on this server is allowed as `'self'` (CSP has no relative sources).
/// Styles: the pinned stylesheet, and `<style>` elements with the nonce
/// (the page's own, and the one GraphiQL's dialogs add, which takes the
/// nonce from `__webpack_nonce__`); style attributes are allowed, as
/// CodeMirror's search dialog writes them into its HTML (they cannot run
/// scripts). Fonts and the one image are data: URLs in GraphiQL's CSS.
/// Connections: this server, and its WebSocket origin spelled out, as not
/// every browser counts ws:/wss: as 'self' (a ws: source matches wss: too).
pub(super) fn content_security_policy(cdn: &str, host: Option<&str>, nonce: &str) -> String {
    let sources = |stylesheets: bool| -> String {
        if cdn.starts_with('/') {
            return "'self'".to_owned();
        }
        ASSETS
            .iter()
            .filter(|a| a.is_stylesheet() == stylesheets)
            .map(|a| csp_source(&a.url(cdn)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let sockets = host
        .map(|h| format!(" ws://{h} wss://{h}"))
        .unwrap_or_default();
    format!(
        "default-src 'none'; \
         script-src 'nonce-{nonce}' {scripts}; \
         style-src 'nonce-{nonce}' {styles}; \
         style-src-attr 'unsafe-inline'; \
         img-src data:; \
         font-src data:; \
         connect-src 'self'{sockets}; \
         base-uri 'none'; \
         form-action 'none'; \
         frame-ancestors 'none'",
        scripts = sources(false),
        styles = sources(true),
    )
}

/// A URL as a CSP source expression: `;`, `,`, spaces, quotes and anything
/// not printable ASCII percent-encoded, so that a GRAPHIQL_CDN cannot end
/// or add a directive.
fn csp_source(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for b in url.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&()*+=%".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Text for HTML content or a quoted attribute value.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON that is safe inside a `<script>` element: no `<`, `>` or `&` (so no
/// `</script>` or `<!--`), and no U+2028/U+2029.
fn script_json(value: &serde_json::Value) -> String {
    let mut out = String::new();
    for c in value.to_string().chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// The page, with GraphiQL's files from `cdn`.
pub(super) fn render(cdn: &str, token: Option<&str>, nonce: &str) -> String {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let (headers, ws_params) = match &bearer {
        Some(b) => (
            serde_json::json!({ "Authorization": b }),
            serde_json::json!({ "authorization": b }),
        ),
        None => (serde_json::json!({}), serde_json::json!({})),
    };
    let config = serde_json::json!({
        "endpoint": ENDPOINT,
        "subscriptionEndpoint": ENDPOINT,
        "headers": headers,
        "wsConnectionParams": ws_params,
        "assets": ASSETS.iter().map(|a| a.url(cdn)).collect::<Vec<_>>(),
    });
    let tag = |a: &Asset| {
        let (url, integrity) = (html_escape(&a.url(cdn)), html_escape(a.integrity));
        if a.is_stylesheet() {
            format!(
                r#"<link rel="stylesheet" href="{url}" integrity="{integrity}" crossorigin="anonymous">"#
            )
        } else {
            format!(
                r#"<script src="{url}" integrity="{integrity}" crossorigin="anonymous"></script>"#
            )
        }
    };
    let stylesheets: Vec<String> = ASSETS
        .iter()
        .filter(|a| a.is_stylesheet())
        .map(tag)
        .collect();
    let scripts: Vec<String> = ASSETS
        .iter()
        .filter(|a| !a.is_stylesheet())
        .map(tag)
        .collect();
    let files: Vec<String> = ASSETS
        .iter()
        .map(|a| format!("<li><code>{}</code></li>", html_escape(&a.file())))
        .collect();
    fill(
        PAGE,
        &[
            ("NONCE", html_escape(nonce)),
            ("CONFIG", script_json(&config)),
            ("BOOTSTRAP", BOOTSTRAP.to_owned()),
            ("STYLESHEETS", stylesheets.join("\n    ")),
            ("SCRIPTS", scripts.join("\n    ")),
            ("CDN", html_escape(cdn)),
            ("FILES", files.join("\n        ")),
        ],
    )
}

/// Replaces each `{{KEY}}` in `template` in one pass: inserted values are
/// never searched for keys themselves.
fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len() + 4096);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}").and_then(|end| {
            let key = &after[..end];
            values
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (v, end))
        }) {
            Some((value, end)) => {
                out.push_str(value);
                rest = &after[end + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The page, with `{{KEY}}` placeholders that [`render`] fills.
const PAGE: &str = include_str!("graphiql/page.html");

/// The page's own script. It runs before the pinned files load: it watches
/// them (their load and error events reach a capturing listener on the
/// document), starts GraphiQL once the document is parsed, and replaces
/// "Loading…" with an explanation when a file fails or GraphiQL has not
/// started in 10 seconds.
/// Everything it shows is set as text, never as HTML.
const BOOTSTRAP: &str = include_str!("graphiql/bootstrap.js");

#[cfg(test)]
mod tests;
