//! The built-in UI: /widget.js for any shop page, /console and its files
//! with a strict Content-Security-Policy. What they do in a browser is
//! api/tests/browser.rs; this is what the server sends.

use reqwest::header::HeaderMap;

use crate::graphiql::header;
use testkit::server::{spawn, Options, Server};

async fn get(app: &Server, path: &str, origin: Option<&str>) -> (u16, HeaderMap, String) {
    let mut request = app.http.get(app.url(path));
    if let Some(origin) = origin {
        request = request.header("Origin", origin);
    }
    let resp = request.send().await.expect("GET");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.expect("body"))
}

#[tokio::test]
async fn widget_script_is_one_small_script_for_any_page() {
    let app = spawn(Options::default()).await;
    // A classic <script src> sends no Origin: any page may load it.
    let (status, headers, body) = get(&app, "/widget.js", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        "text/javascript; charset=utf-8"
    );
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    assert_eq!(
        header(&headers, "cross-origin-resource-policy"),
        "cross-origin"
    );
    assert!(body.len() < 50 * 1024, "{} bytes", body.len());
    assert!(body.contains("customElements.define('switchboard-chat'"));
    assert!(
        body.starts_with("(() => {") && body.trim_end().ends_with("})();"),
        "wrapped: nothing global but the element"
    );
    assert!(!body.contains("import ") && !body.contains("export {"));
}

#[tokio::test]
async fn console_has_a_strict_policy() {
    let app = spawn(Options::default()).await;
    let (status, headers, html) = get(&app, "/console", None).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), "text/html; charset=utf-8");
    let csp = header(&headers, "content-security-policy");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert!(
        csp.contains(&format!("ws://{}", app.addr)),
        "its WebSocket: {csp}"
    );
    assert_eq!(header(&headers, "x-frame-options"), "DENY");
    assert_eq!(header(&headers, "referrer-policy"), "no-referrer");
    assert!(html.contains(r#"<script type="module" src="/console/app.js"></script>"#));
    assert!(!html.contains("<script>"), "no inline script");

    for (path, kind) in [
        ("/console/app.js", "text/javascript; charset=utf-8"),
        ("/console/chat.js", "text/javascript; charset=utf-8"),
        ("/console/admin.js", "text/javascript; charset=utf-8"),
        ("/console/client.js", "text/javascript; charset=utf-8"),
        ("/console/console.css", "text/css; charset=utf-8"),
    ] {
        let (status, headers, body) = get(&app, path, None).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(header(&headers, "content-type"), kind, "{path}");
        assert!(!body.is_empty());
    }
    let (_, _, client) = get(&app, "/console/client.js", None).await;
    assert!(client.contains("export { createClient"));
    let (status, _, _) = get(&app, "/console/nothing.js", None).await;
    assert_eq!(status, 404);
}

/// A page of a foreign origin fetching the files with CORS (a module
/// script) is refused like any other use of the server by that page.
#[tokio::test]
async fn foreign_pages_are_refused_allowed_ones_get_cors() {
    let app = spawn(&[("ALLOWED_ORIGINS", "https://shop.example.com")]).await;
    let (status, headers, _) = get(&app, "/widget.js", Some("https://shop.example.com")).await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        "https://shop.example.com"
    );
    let (status, _, body) = get(&app, "/widget.js", Some("https://evil.example")).await;
    assert_eq!(status, 403);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");
}
