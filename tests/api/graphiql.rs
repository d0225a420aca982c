//! The GraphiQL page at GET /: pinned files with SRI, a strict CSP and
//! security headers, GRAPHIQL_CDN, the ?token= pre-fill, and a page that
//! explains itself when the files cannot be loaded.

use base64::Engine;
use reqwest::header::HeaderMap;

use testkit::{
    html::{attr, tags},
    server::{spawn, Options, Server},
    tokens,
};

/// The files the page loads: (URL, integrity) of every external script and stylesheet.
fn assets(html: &str) -> Vec<(String, String)> {
    tags(html)
        .into_iter()
        .filter_map(|tag| {
            let url = attr(tag, "src").or_else(|| {
                (attr(tag, "rel") == Some("stylesheet"))
                    .then(|| attr(tag, "href"))
                    .flatten()
            })?;
            Some((
                url.to_owned(),
                attr(tag, "integrity").unwrap_or("").to_owned(),
            ))
        })
        .collect()
}

/// A directive of a Content-Security-Policy, without its name.
fn directive<'a>(csp: &'a str, name: &str) -> Option<&'a str> {
    csp.split(';')
        .map(str::trim)
        .find_map(|d| d.strip_prefix(name)?.strip_prefix(' '))
}

async fn get(app: &Server, path: &str) -> (HeaderMap, String) {
    let resp = app.http.get(app.url(path)).send().await.expect("GET");
    assert_eq!(resp.status(), 200);
    let headers = resp.headers().clone();
    (headers, resp.text().await.expect("body"))
}

pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing"))
        .to_str()
        .unwrap()
}

/// The package version in an asset URL (`…/graphiql@4.1.2/graphiql.min.js`).
fn version_of(url: &str) -> &str {
    let at = url.rfind('@').expect("a version in the URL");
    let rest = &url[at + 1..];
    &rest[..rest.find('/').expect("a path after the version")]
}

#[tokio::test]
async fn graphiql_sends_security_headers() {
    let app = spawn(Options::default()).await;
    let (headers, html) = get(&app, "/").await;
    assert_eq!(header(&headers, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    assert_eq!(header(&headers, "referrer-policy"), "no-referrer");
    assert_eq!(header(&headers, "x-frame-options"), "DENY");
    assert_eq!(header(&headers, "cache-control"), "no-store");

    let csp = header(&headers, "content-security-policy");
    assert_eq!(directive(csp, "default-src"), Some("'none'"), "{csp}");
    assert_eq!(directive(csp, "frame-ancestors"), Some("'none'"), "{csp}");
    assert_eq!(directive(csp, "base-uri"), Some("'none'"), "{csp}");
    assert_eq!(directive(csp, "form-action"), Some("'none'"), "{csp}");
    let addr = app.addr;
    assert_eq!(
        directive(csp, "connect-src"),
        Some(format!("'self' ws://{addr} wss://{addr}").as_str()),
        "{csp}"
    );

    // The inline script and style run by the response's nonce, and only them.
    let script_src = directive(csp, "script-src").expect("script-src");
    let nonce = script_src
        .split(' ')
        .find_map(|s| s.strip_prefix("'nonce-")?.strip_suffix('\''))
        .expect("a nonce in script-src");
    assert!(
        base64::engine::general_purpose::STANDARD
            .decode(nonce)
            .expect("base64 nonce")
            .len()
            >= 16
    );
    assert!(!csp.contains("unsafe-eval"), "{csp}");
    assert!(!script_src.contains("unsafe-inline"), "{csp}");
    assert!(directive(csp, "style-src")
        .unwrap()
        .contains(&format!("'nonce-{nonce}'")));
    for tag in tags(&html) {
        let external = attr(tag, "src").is_some() || attr(tag, "href").is_some();
        let data = attr(tag, "type") == Some("application/json");
        assert!(
            external || data || attr(tag, "nonce") == Some(nonce),
            "inline script without the nonce: {tag}"
        );
    }
    assert!(html.contains(&format!("<style nonce=\"{nonce}\">")));

    let (again, _) = get(&app, "/").await;
    assert_ne!(
        header(&again, "content-security-policy"),
        csp,
        "a fresh nonce per response"
    );
}

#[tokio::test]
async fn graphiql_pins_every_file_with_sri() {
    let app = spawn(Options::default()).await;
    let (headers, html) = get(&app, "/").await;
    let csp = header(&headers, "content-security-policy");
    let files = assets(&html);
    let names: Vec<&str> = files.iter().map(|(u, _)| u.as_str()).collect();
    for expected in [
        "/react@",
        "/react-dom@",
        "/graphiql@4.",
        "graphiql.min.js",
        "graphiql.min.css",
    ] {
        assert!(
            names.iter().any(|u| u.contains(expected)),
            "{expected} in {names:?}"
        );
    }
    for (url, integrity) in &files {
        assert!(url.starts_with("https://unpkg.com/"), "{url}");
        let version = version_of(url);
        let parts: Vec<&str> = version.split('.').collect();
        assert!(
            parts.len() == 3
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())),
            "{url} is not an exact version"
        );
        let hash = integrity
            .strip_prefix("sha384-")
            .unwrap_or_else(|| panic!("{url} has no sha384 integrity"));
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(hash)
                .unwrap()
                .len(),
            48,
            "{url}"
        );
        let tag = tags(&html)
            .into_iter()
            .find(|t| t.contains(url.as_str()))
            .unwrap();
        assert_eq!(attr(tag, "crossorigin"), Some("anonymous"), "{tag}");
        // Exactly these files, not the whole CDN.
        let directive_name = if url.ends_with(".css") {
            "style-src"
        } else {
            "script-src"
        };
        assert!(
            directive(csp, directive_name)
                .unwrap()
                .split(' ')
                .any(|s| s == url),
            "{url} in {directive_name}: {csp}"
        );
    }
    assert!(
        !csp.split([';', ' ']).any(|s| s == "https://unpkg.com"),
        "the whole CDN is allowed: {csp}"
    );
    // Nothing else is loaded from anywhere.
    for tag in tags(&html) {
        if let Some(href) = attr(tag, "href") {
            assert!(href.starts_with("data:") || names.contains(&href), "{tag}");
        }
    }
}

/// The hashes in the page are those of the real files: each package is
/// fetched from the npm registry with `npm pack` (what the CDN serves is the
/// package's files as they are) and every pinned file hashed. Set
/// `GRAPHIQL_ASSETS_DIR` to a folder laid out as the CDN is
/// (`<package>@<version>/<path>`) to compare with files already at hand.
#[tokio::test]
async fn graphiql_hashes_match_the_npm_files() {
    let app = spawn(&[("GRAPHIQL_CDN", "/cdn")]).await;
    let (_, html) = get(&app, "/").await;
    let files = assets(&html);
    assert_eq!(files.len(), 4);
    let given = std::env::var("GRAPHIQL_ASSETS_DIR").ok();
    let dir = match &given {
        Some(dir) => std::path::PathBuf::from(dir),
        None => unpack_from_npm(files.iter().map(|(url, _)| url.as_str())),
    };
    for (url, integrity) in files {
        let file = dir.join(url.strip_prefix("/cdn/").unwrap());
        let out = std::process::Command::new("openssl")
            .args(["dgst", "-sha384", "-binary"])
            .arg(&file)
            .output()
            .expect("openssl runs");
        assert!(out.status.success(), "hashing {}", file.display());
        let actual = format!(
            "sha384-{}",
            base64::engine::general_purpose::STANDARD.encode(out.stdout)
        );
        assert_eq!(integrity, actual, "{}", file.display());
    }
    if given.is_none() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// `npm pack` of every `<package>@<version>` the URLs name, unpacked into a
/// new folder as `<package>@<version>/…`.
fn unpack_from_npm<'a>(urls: impl Iterator<Item = &'a str>) -> std::path::PathBuf {
    let root = std::env::temp_dir().join(format!("graphiql-npm-{}", uuid::Uuid::new_v4()));
    let mut specs: Vec<&str> = urls
        .map(|url| {
            url.strip_prefix("/cdn/")
                .unwrap()
                .split('/')
                .next()
                .unwrap()
        })
        .collect();
    specs.sort_unstable();
    specs.dedup();
    for spec in specs {
        let into = root.join(spec);
        std::fs::create_dir_all(&into).unwrap();
        let packed = std::process::Command::new("npm")
            .args(["pack", "--silent", spec])
            .current_dir(&into)
            .output()
            .expect("npm runs (the tests need Node.js and npm)");
        assert!(
            packed.status.success(),
            "npm pack {spec}: {}",
            String::from_utf8_lossy(&packed.stderr)
        );
        let tarball = String::from_utf8_lossy(&packed.stdout).trim().to_owned();
        let unpacked = std::process::Command::new("tar")
            .args(["xzf", &tarball, "--strip-components=1"])
            .current_dir(&into)
            .status()
            .expect("tar runs");
        assert!(unpacked.success(), "unpacking {tarball}");
    }
    root
}

#[tokio::test]
async fn graphiql_cdn_setting_moves_the_files_and_the_policy() {
    let mirror = "https://mirror.example.com/npm";
    let app = spawn(&[("GRAPHIQL_CDN", "https://mirror.example.com/npm/")]).await;
    let (headers, html) = get(&app, "/").await;
    let csp = header(&headers, "content-security-policy");
    let files = assets(&html);
    assert_eq!(files.len(), 4);
    for (url, _) in &files {
        assert!(url.starts_with(&format!("{mirror}/")), "{url}");
        assert!(csp.contains(url.as_str()), "{url} in {csp}");
    }
    assert!(!html.contains("unpkg") && !csp.contains("unpkg"), "{csp}");
    assert!(
        html.contains(&format!("<code>{mirror}</code>")),
        "the failure message names the CDN"
    );

    // A path on this server: the files come from the page's own origin.
    let app = spawn(&[("GRAPHIQL_CDN", "/static")]).await;
    let (headers, html) = get(&app, "/").await;
    let csp = header(&headers, "content-security-policy");
    for (url, _) in assets(&html) {
        assert!(url.starts_with("/static/"), "{url}");
    }
    let script_src = directive(csp, "script-src").unwrap();
    assert!(
        script_src.ends_with(" 'self'") && !script_src.contains("http"),
        "{csp}"
    );
    assert!(directive(csp, "style-src").unwrap().ends_with(" 'self'"));
}

#[tokio::test]
async fn graphiql_token_prefill_and_hostile_tokens() {
    let app = spawn(Options::default()).await;
    let token = tokens::customer("alice");
    let (_, html) = get(&app, &format!("/?token={token}")).await;
    assert!(
        html.contains(&format!(
            r#""headers":{{"Authorization":"Bearer {token}"}}"#
        )),
        "the token pre-fills the Authorization header"
    );
    assert!(
        html.contains(&format!(
            r#""wsConnectionParams":{{"authorization":"Bearer {token}"}}"#
        )),
        "the token pre-fills the connection_init payload"
    );
    assert!(html.contains(r#""endpoint":"/graphql""#));
    assert!(html.contains(r#""subscriptionEndpoint":"/graphql""#));

    let (_, anonymous) = get(&app, "/").await;
    assert!(anonymous.contains(r#""headers":{},"#));
    assert!(anonymous.contains(r#""wsConnectionParams":{}"#));

    for hostile in [
        "a%22%3C%2Fscript%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "x'%3B%20alert(1)%2F%2F",
        "x%5Cu2028y",
        "%3C!--",
    ] {
        let (_, page) = get(&app, &format!("/?token={hostile}")).await;
        assert!(!page.contains("alert(1)"), "{hostile} reflected");
        assert!(!page.contains("<!--"), "{hostile} reflected");
        assert!(
            page.contains(r#""headers":{},"#),
            "{hostile} was used as a token"
        );
        assert_eq!(
            page.matches("</script>").count(),
            anonymous.matches("</script>").count(),
            "{hostile} added a script end"
        );
    }
}

#[tokio::test]
async fn graphiql_explains_when_it_cannot_load() {
    let app = spawn(Options::default()).await;
    let (_, html) = get(&app, "/").await;
    assert!(
        html.contains("Loading GraphiQL…"),
        "shown while the files load"
    );
    assert!(html.contains(r#"<div id="sb-error" role="alert" hidden>"#));
    for needed in [
        "GraphiQL could not start",
        "<code>https://unpkg.com</code>",
        "<code>GRAPHIQL_CDN</code>",
        "<code>POST /graphql</code>",
        "curl -X POST",
        "graphql-transport-ws",
        "<code>graphiql@4.1.2/graphiql.min.js</code>",
        "<code>react@18.3.1/umd/react.production.min.js</code>",
    ] {
        assert!(html.contains(needed), "{needed} missing from the message");
    }
    // The script that shows it: load failures and a 10 s deadline.
    assert!(html.contains("document.addEventListener('error', track, true)"));
    assert!(html.contains("}, 10000);"));
    assert!(html.contains("<noscript>"));
}
