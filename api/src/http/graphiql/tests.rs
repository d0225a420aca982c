//! The page's own checks: pinned assets, tags, policy, escaping, filling.

use super::*;

// The same helpers the integration tests use (testkit/src/html.rs),
// included by path: the server's unit tests cannot depend on the kit.
#[path = "../../../../testkit/src/html.rs"]
mod html;
use html::{attr, tags};

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
