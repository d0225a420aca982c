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
fn valid_host(host: &str) -> bool {
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

const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="robots" content="noindex">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <meta name="referrer" content="no-referrer">
    <title>Switchboard · GraphiQL</title>
    <link rel="icon" href="data:,">
    <style nonce="{{NONCE}}">
      html, body { height: 100%; margin: 0; }
      body { overflow: hidden; }
      #graphiql { height: 100vh; }
      #sb-loading, #sb-error { font: 16px/1.5 system-ui, sans-serif; color: #222; }
      #sb-loading { margin: 0; padding: 1.5rem 2rem; }
      #sb-error { height: 100vh; overflow: auto; box-sizing: border-box; padding: 1.5rem 2rem; }
      #sb-error > * { max-width: 60rem; }
      #sb-error h1 { font-size: 1.4rem; color: #b00020; }
      #sb-error code, #sb-error pre { font: 14px/1.4 ui-monospace, monospace; }
      #sb-error pre { background: #f3f3f3; padding: 0.75rem; white-space: pre-wrap; word-break: break-all; }
      #sb-error-urls { color: #b00020; word-break: break-all; }
    </style>
    <script type="application/json" id="sb-config">{{CONFIG}}</script>
    <script nonce="{{NONCE}}">{{BOOTSTRAP}}</script>
    {{STYLESHEETS}}
  </head>
  <body>
    <div id="sb-error" role="alert" hidden>
      <h1>GraphiQL could not start</h1>
      <p id="sb-error-reason"></p>
      <ul id="sb-error-urls"></ul>
      <p>This page loads pinned copies of React and GraphiQL from
        <code>{{CDN}}</code>, each checked against its integrity hash. If this
        browser cannot reach that address (an offline or filtered network),
        or the file there is not the expected one, the server's operator can
        set <code>GRAPHIQL_CDN</code> to a mirror that serves these exact
        files (a path on this server, such as <code>/static</code>, works too):</p>
      <ul>
        {{FILES}}
      </ul>
      <p>The API does not need this page: send GraphQL to
        <code>POST /graphql</code> with any GraphQL client, or with curl:</p>
      <pre>curl -X POST <span id="sb-origin"></span>/graphql \
  -H 'Content-Type: application/json' \
  -H 'Authorization: Bearer YOUR_TOKEN' \
  -d '{"query": "{ __typename }"}'</pre>
      <p>Subscriptions use the graphql-transport-ws protocol on
        <code>/graphql</code>, with <code>{"authorization": "Bearer YOUR_TOKEN"}</code>
        as the <code>connection_init</code> payload.</p>
    </div>
    <div id="graphiql">
      <p id="sb-loading">Loading GraphiQL…</p>
      <noscript><p>GraphiQL needs JavaScript. The API works without it:
        <code>POST /graphql</code> with any GraphQL client.</p></noscript>
    </div>
    {{SCRIPTS}}
  </body>
</html>
"#;

/// The page's own script. It runs before the pinned files load: it watches
/// them (their load and error events reach a capturing listener on the
/// document), starts GraphiQL once the document is parsed, and replaces
/// "Loading…" with an explanation when a file fails or GraphiQL has not
/// started in 10 seconds.
/// Everything it shows is set as text, never as HTML.
const BOOTSTRAP: &str = r#"
(function () {
  'use strict';
  var config = JSON.parse(document.getElementById('sb-config').textContent);
  // GraphiQL's dialogs add a <style> element with this nonce (the CSP needs it).
  window.__webpack_nonce__ = document.currentScript.nonce;
  var assets = config.assets.map(function (a) { return new URL(a, location.href).href; });
  var loaded = {};
  var failed = [];
  var reason = null;

  function show() {
    var box = document.getElementById('sb-error');
    if (!box || reason === null) return;
    document.getElementById('sb-error-reason').textContent = reason;
    var list = document.getElementById('sb-error-urls');
    list.textContent = '';
    failed.forEach(function (url) {
      var item = document.createElement('li');
      item.textContent = url;
      list.appendChild(item);
    });
    document.getElementById('sb-origin').textContent = location.origin;
    document.getElementById('graphiql').hidden = true;
    box.hidden = false;
  }

  function fail(why, urls) {
    if (reason === null) reason = why;
    urls.forEach(function (url) { if (failed.indexOf(url) < 0) failed.push(url); });
    show();
  }

  function pending() {
    return assets.filter(function (url) { return !loaded[url]; });
  }

  function track(event) {
    var el = event.target;
    var url = el && (el.tagName === 'SCRIPT' ? el.src : el.tagName === 'LINK' ? el.href : null);
    if (!url || assets.indexOf(url) < 0) return;
    if (event.type === 'load') {
      loaded[url] = true;
    } else {
      fail('These files could not be loaded: unreachable from this browser, refused ' +
        '(a mirror on another origin must send Access-Control-Allow-Origin), or not ' +
        'matching their pinned integrity hashes.', [url]);
    }
  }
  // On document: an element's load event never reaches window.
  document.addEventListener('load', track, true);
  document.addEventListener('error', track, true);

  function start() {
    show();
    if (failed.length) return;
    if (typeof React === 'undefined' || typeof ReactDOM === 'undefined' ||
        typeof GraphiQL === 'undefined') {
      fail('GraphiQL did not load.', pending());
      return;
    }
    try {
      var root = document.getElementById('graphiql');
      var fetcher = GraphiQL.createFetcher({
        url: new URL(config.endpoint, location.href).href,
        subscriptionUrl: new URL(config.subscriptionEndpoint, location.href).href
          .replace(/^http/, 'ws'),
        fetch: function (url, opts) {
          return fetch(url, Object.assign({}, opts, { credentials: 'same-origin' }));
        },
        headers: config.headers,
        wsConnectionParams: config.wsConnectionParams
      });
      // A late start (a slow CDN) replaces the timeout's message.
      reason = null;
      document.getElementById('sb-error').hidden = true;
      root.hidden = false;
      ReactDOM.createRoot(root).render(React.createElement(GraphiQL, {
        fetcher: fetcher,
        defaultEditorToolsVisibility: true
      }));
    } catch (e) {
      fail('GraphiQL failed to start: ' + e, []);
    }
  }
  document.addEventListener('DOMContentLoaded', start);

  setTimeout(function () {
    if (!document.querySelector('#graphiql .graphiql-container')) {
      var missing = pending();
      fail(missing.length
        ? 'GraphiQL has not started after 10 seconds. Still loading or missing:'
        : 'GraphiQL has not started after 10 seconds, though its files loaded: ' +
          'the browser console tells why.', missing);
    }
  }, 10000);
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// Attribute `name` of the HTML tag `tag` (as this module writes them).
    fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
        let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        let len = tag[start..].find('"')?;
        Some(&tag[start..start + len])
    }

    /// Every `<script …>` and `<link …>` start tag in `html`.
    fn tags(html: &str) -> Vec<&str> {
        let mut found = Vec::new();
        for open in ["<script", "<link"] {
            let mut rest = html;
            while let Some(i) = rest.find(open) {
                let len = rest[i..].find('>').expect("tag ends");
                found.push(&rest[i..=i + len]);
                rest = &rest[i + len..];
            }
        }
        found
    }

    #[test]
    fn pinned_assets_are_exact_versions_with_sri_hashes() {
        for a in ASSETS {
            let parts: Vec<&str> = a.version.split('.').collect();
            assert!(
                parts.len() == 3
                    && parts
                        .iter()
                        .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit())),
                "{} is not an exact version",
                a.file()
            );
            let hash = a.integrity.strip_prefix("sha384-").expect("sha384-");
            assert_eq!(
                STANDARD.decode(hash).expect("base64").len(),
                48,
                "{}: a SHA-384 is 48 bytes",
                a.file()
            );
        }
    }

    #[test]
    fn every_tag_comes_from_the_table() {
        let html = render("https://cdn.example/npm", None, "NONCE");
        let mut used = Vec::new();
        for tag in tags(&html) {
            let url = attr(tag, "src").or_else(|| {
                (attr(tag, "rel") == Some("stylesheet"))
                    .then(|| attr(tag, "href"))
                    .flatten()
            });
            let Some(url) = url else {
                // Inline: the page's own script, or data.
                assert!(
                    attr(tag, "nonce") == Some("NONCE")
                        || attr(tag, "type") == Some("application/json")
                        || attr(tag, "rel") == Some("icon"),
                    "{tag}"
                );
                continue;
            };
            let asset = ASSETS
                .iter()
                .find(|a| a.url("https://cdn.example/npm") == url)
                .unwrap_or_else(|| panic!("{tag} is not in ASSETS"));
            assert_eq!(attr(tag, "integrity"), Some(asset.integrity), "{tag}");
            assert_eq!(attr(tag, "crossorigin"), Some("anonymous"), "{tag}");
            used.push(*asset);
        }
        assert_eq!(used.len(), ASSETS.len(), "each asset loaded once");
        for a in ASSETS {
            assert!(used.contains(&a), "{} is never loaded", a.file());
        }
        assert!(!html.contains("{{"), "every placeholder is filled");
    }

    #[test]
    fn policy_allows_exactly_the_pinned_files() {
        let csp = content_security_policy("https://unpkg.com", Some("chat.example:8080"), "N0");
        for a in ASSETS {
            assert!(csp.contains(&a.url("https://unpkg.com")), "{csp}");
        }
        assert!(!csp.contains("https://unpkg.com;") && !csp.contains("https://unpkg.com "));
        assert!(csp.contains("script-src 'nonce-N0' https://unpkg.com/react@18.3.1/"));
        assert!(csp.contains("connect-src 'self' ws://chat.example:8080 wss://chat.example:8080;"));
        for d in [
            "default-src 'none'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'none'",
        ] {
            assert!(csp.contains(d), "{d} in {csp}");
        }

        let own = content_security_policy("/static", None, "N0");
        assert!(own.contains("script-src 'nonce-N0' 'self';"), "{own}");
        assert!(own.contains("style-src 'nonce-N0' 'self';"), "{own}");
        assert!(own.contains("connect-src 'self';"), "{own}");

        let odd = content_security_policy("https://x.example/a;b c,d'e", None, "N0");
        assert!(
            odd.contains("https://x.example/a%3Bb%20c%2Cd%27e/react@"),
            "{odd}"
        );
        assert!(HeaderValue::from_str(&odd).is_ok());
    }

    #[test]
    fn hosts_fit_for_the_policy() {
        assert!(valid_host("127.0.0.1:8080"));
        assert!(valid_host("[::1]:8080"));
        assert!(valid_host("chat.example.com"));
        assert!(!valid_host("evil; script-src *"));
        assert!(!valid_host("a'b"));
        assert!(!valid_host(""));
    }

    #[test]
    fn inserted_text_is_escaped() {
        let value = serde_json::json!({ "t": "</script><!-- \u{2028} & 'x' \"y\"" });
        let js = script_json(&value);
        assert!(
            !js.contains('<') && !js.contains('>') && !js.contains('&'),
            "{js}"
        );
        assert!(!js.contains('\u{2028}'));
        let back: serde_json::Value = serde_json::from_str(&js).unwrap();
        assert_eq!(back, value, "still the same JSON");
        assert_eq!(
            html_escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        let html = render(
            r#"https://cdn.example/"><script>alert(1)</script>"#,
            None,
            "N",
        );
        assert!(!html.contains("<script>alert(1)"));
    }

    #[test]
    fn token_prefills_header_and_connection_params() {
        let html = render("https://unpkg.com", Some("aaa.bbb.ccc"), "N");
        assert!(html.contains(r#""headers":{"Authorization":"Bearer aaa.bbb.ccc"}"#));
        assert!(html.contains(r#""wsConnectionParams":{"authorization":"Bearer aaa.bbb.ccc"}"#));
        let anonymous = render("https://unpkg.com", None, "N");
        assert!(anonymous.contains(r#""headers":{},"#), "{anonymous}");
        assert!(anonymous.contains(r#""wsConnectionParams":{}"#));
    }

    #[test]
    fn fill_is_one_pass() {
        let out = fill(
            "a {{X}} b {{Y}} {{Z}}",
            &[("X", "{{Y}}".into()), ("Y", "y".into())],
        );
        assert_eq!(out, "a {{Y}} b y {{Z}}");
    }
}
