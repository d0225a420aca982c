//! Files and article links in messages: what a FILE or ARTICLE message
//! carries, the content type as the bytes say (not as the uploader claims),
//! file names made safe to show and to put in a header, which article
//! addresses may be shared, and the signature of download links.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

use super::message::{has_bidi_controls, is_bidi_control, looks_blank};

/// What a message is, as clients show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    Text,
    File,
    Article,
    System,
}

/// A stored file, as its message carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub id: Uuid,
    pub filename: String,
    /// Sniffed from the content.
    pub content_type: String,
    pub size: i64,
}

impl Attachment {
    /// Where the bytes are in the store: under their session, so that a
    /// session's files are easy to find and to purge with it.
    pub fn storage_key(&self, session_id: Uuid) -> String {
        storage_key(session_id, self.id)
    }
}

pub fn storage_key(session_id: Uuid, attachment_id: Uuid) -> String {
    format!("{session_id}/{attachment_id}")
}

/// A link card to a help-centre article.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArticleLink {
    pub url: String,
    pub title: String,
}

/// What a message carries besides its body. Stored as JSON with the
/// message (one column, null for text), so a transcript page needs no
/// second query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessagePayload {
    File(Attachment),
    Article(ArticleLink),
}

/// How many leading bytes [`sniff`] reads.
pub const SNIFF_BYTES: usize = 4096;

/// The content type the leading bytes of a file show. Markup (HTML, SVG,
/// XML) is named as such even though it is text, so that it is never
/// accepted as `text/plain`; what nothing matches is
/// `application/octet-stream`.
pub fn sniff(head: &[u8]) -> &'static str {
    const SIGNATURES: &[(&[u8], &str)] = &[
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
        (b"%PDF-", "application/pdf"),
    ];
    if let Some((_, mime)) = SIGNATURES.iter().find(|(magic, _)| head.starts_with(magic)) {
        return mime;
    }
    if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        return "image/webp";
    }
    let text = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    if !looks_like_text(text) {
        return "application/octet-stream";
    }
    let lower = text.to_ascii_lowercase();
    let trimmed = lower.trim_ascii_start();
    let contains = |needle: &[u8]| lower.windows(needle.len()).any(|w| w == needle);
    if trimmed.starts_with(b"<?xml") || trimmed.starts_with(b"<svg") || contains(b"<svg") {
        if contains(b"<svg") {
            return "image/svg+xml";
        }
        return "application/xml";
    }
    // What a browser would take for a page (the WHATWG sniffing rules look
    // for these tags at the start; anywhere is stricter).
    const HTML: &[&[u8]] = &[
        b"<!doctype",
        b"<html",
        b"<head",
        b"<body",
        b"<script",
        b"<iframe",
        b"<style",
        b"<object",
        b"<embed",
        b"<meta",
        b"<a ",
        b"<img",
        b"<form",
        b"<!--",
    ];
    if trimmed.starts_with(b"<") || HTML.iter().any(|tag| contains(tag)) {
        return "text/html";
    }
    "text/plain"
}

/// UTF-8 (a character cut at the end of the window is fine) without NUL
/// or control characters other than tab, line breaks and form feed.
fn looks_like_text(bytes: &[u8]) -> bool {
    let valid = match std::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) if e.error_len().is_none() && bytes.len() >= SNIFF_BYTES - 4 => {
            // Safe: valid_up_to is a char boundary.
            std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return false,
    };
    valid
        .chars()
        .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r' | '\u{c}'))
}

/// Whether `content_type` is on the allowlist: exact names, or `type/*`.
pub fn content_type_allowed(content_type: &str, allowed: &[String]) -> bool {
    allowed.iter().any(|a| {
        a.eq_ignore_ascii_case(content_type)
            || a.strip_suffix("/*").is_some_and(|family| {
                content_type
                    .split_once('/')
                    .is_some_and(|(t, _)| t.eq_ignore_ascii_case(family))
            })
    })
}

/// Longest file name kept, in bytes.
pub const MAX_FILENAME_BYTES: usize = 200;

/// The name a file is shown and downloaded under: the last part of what
/// the client sent (no folders), without control or bidirectional
/// characters, quotes or reserved characters, not blank, not `.` or `..`,
/// at most [`MAX_FILENAME_BYTES`] bytes with its extension kept.
pub fn sanitize_filename(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !is_bidi_control(*c))
        .map(|c| match c {
            '"' | '<' | '>' | ':' | '|' | '?' | '*' | ';' => '_',
            c => c,
        })
        .collect();
    let cleaned = cleaned.trim().trim_matches('.').trim();
    if looks_blank(cleaned) {
        return "file".to_owned();
    }
    if cleaned.len() <= MAX_FILENAME_BYTES {
        return cleaned.to_owned();
    }
    let (stem, ext) = match cleaned.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && ext.len() <= 16 => (stem, Some(ext)),
        _ => (cleaned, None),
    };
    let room = MAX_FILENAME_BYTES - ext.map_or(0, |e| e.len() + 1);
    let mut cut = room.min(stem.len());
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    match ext {
        Some(ext) => format!("{}.{ext}", &stem[..cut]),
        None => stem[..cut].to_owned(),
    }
}

/// A caption: optional; when given, a message body's rules apply.
pub fn validate_caption(caption: Option<&str>, max_chars: usize) -> Result<String, String> {
    match caption {
        Some(c) if !looks_blank(c) => super::validate_body(c, max_chars)
            .map(str::to_owned)
            .map_err(|e| e.replace("message body", "caption")),
        _ => Ok(String::new()),
    }
}

pub const MAX_ARTICLE_URL_BYTES: usize = 2048;
pub const MAX_ARTICLE_TITLE_CHARS: usize = 200;

/// Checks an article link against the configured origins
/// (`https://help.example.com`): https only, no credentials, on one of them.
/// No origins means sharing articles is off.
pub fn validate_article(url: &str, title: &str, origins: &[String]) -> Result<ArticleLink, String> {
    if origins.is_empty() {
        return Err(
            "sharing articles is off on this server: ARTICLE_ORIGINS names no origin".into(),
        );
    }
    let url = url.trim();
    if url.len() > MAX_ARTICLE_URL_BYTES {
        return Err(format!(
            "the article URL is longer than {MAX_ARTICLE_URL_BYTES} bytes"
        ));
    }
    let parsed = url::Url::parse(url).map_err(|e| format!("the article URL is not a URL: {e}"))?;
    if parsed.scheme() != "https" {
        return Err("the article URL must be https".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("the article URL must not carry credentials".into());
    }
    let origin = parsed.origin().ascii_serialization();
    if !origins
        .iter()
        .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(&origin))
    {
        return Err(format!(
            "{origin} is not an article origin of this server (ARTICLE_ORIGINS)"
        ));
    }
    let title = title.trim();
    if looks_blank(title) {
        return Err("the article title must not be empty".into());
    }
    if title.chars().any(char::is_control) || has_bidi_controls(title) {
        return Err("the article title must not contain control characters".into());
    }
    if title.chars().count() > MAX_ARTICLE_TITLE_CHARS {
        return Err(format!(
            "the article title is limited to {MAX_ARTICLE_TITLE_CHARS} characters"
        ));
    }
    Ok(ArticleLink {
        url: parsed.to_string(),
        title: title.to_owned(),
    })
}

/// Signs and checks download links: an HMAC over the message, the
/// attachment and the expiry, with a key only the servers hold.
#[derive(Clone)]
pub struct LinkSigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkSigner(..)")
    }
}

type HmacSha256 = Hmac<Sha256>;

impl LinkSigner {
    /// A signer whose key is derived from `secret` for this use alone, so
    /// that a link's signature says nothing about the secret's other uses.
    pub fn derived_from(secret: &[u8]) -> LinkSigner {
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
        mac.update(b"switchboard download links v1");
        LinkSigner {
            key: mac.finalize().into_bytes().to_vec(),
        }
    }

    fn mac(&self, message: Uuid, attachment: Uuid, expires: i64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(format!("{message}.{attachment}.{expires}").as_bytes());
        mac
    }

    /// The signature, URL-safe base64.
    pub fn sign(&self, message: Uuid, attachment: Uuid, expires: i64) -> String {
        use base64::Engine;
        let tag = self
            .mac(message, attachment, expires)
            .finalize()
            .into_bytes();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag)
    }

    /// Whether `signature` is this key's for these values (in constant time).
    pub fn verify(&self, message: Uuid, attachment: Uuid, expires: i64, signature: &str) -> bool {
        use base64::Engine;
        let Ok(tag) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        self.mac(message, attachment, expires)
            .verify_slice(&tag)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_come_from_the_bytes() {
        let cases: &[(&[u8], &str)] = &[
            (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "image/png"),
            (b"\xff\xd8\xff\xe0\0\x10JFIF", "image/jpeg"),
            (b"GIF89a\x01\0", "image/gif"),
            (b"RIFF\x24\0\0\0WEBPVP8 ", "image/webp"),
            (b"%PDF-1.7\n", "application/pdf"),
            (b"hello\nworld\t!", "text/plain"),
            ("h\u{e9}llo, \u{2713}".as_bytes(), "text/plain"),
            (b"\xef\xbb\xbfwith a BOM", "text/plain"),
            (b"<!DOCTYPE html><html>", "text/html"),
            (b"  \n<HTML><script>alert(1)</script>", "text/html"),
            (b"hi <script>alert(1)</script>", "text/html"),
            (b"<p>just a paragraph", "text/html"),
            (
                b"<svg xmlns=\"http://www.w3.org/2000/svg\">",
                "image/svg+xml",
            ),
            (b"<?xml version=\"1.0\"?><svg>", "image/svg+xml"),
            (b"<?xml version=\"1.0\"?><doc/>", "application/xml"),
            (b"MZ\x90\0\x03\0\0\0", "application/octet-stream"),
            (b"\x7fELF\x02\x01", "application/octet-stream"),
            (b"text with a NUL\0", "application/octet-stream"),
            (b"\xc3\x28 invalid UTF-8", "application/octet-stream"),
            (b"", "text/plain"),
        ];
        for (bytes, expected) in cases {
            assert_eq!(
                sniff(bytes),
                *expected,
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        // A character cut by the end of a full window is still text.
        let mut long = "é".repeat(SNIFF_BYTES / 2).into_bytes();
        long.truncate(SNIFF_BYTES - 1);
        assert_eq!(sniff(&long), "text/plain");
    }

    #[test]
    fn the_allowlist_takes_names_and_families() {
        let allowed = vec!["image/png".to_owned(), "text/*".to_owned()];
        assert!(content_type_allowed("image/png", &allowed));
        assert!(content_type_allowed("text/plain", &allowed));
        assert!(content_type_allowed("text/html", &allowed));
        assert!(!content_type_allowed("image/jpeg", &allowed));
        assert!(!content_type_allowed("application/pdf", &[]));
    }

    #[test]
    fn file_names_lose_folders_controls_and_reserved_characters() {
        let cases = [
            ("report.pdf", "report.pdf"),
            ("../../etc/passwd", "passwd"),
            ("C:\\Users\\me\\photo.png", "photo.png"),
            ("a\u{0}b\u{7}c.txt", "abc.txt"),
            ("in\u{202E}gnp.exe", "ingnp.exe"),
            ("say \"hi\".txt", "say _hi_.txt"),
            ("  spaced  ", "spaced"),
            ("..", "file"),
            ("", "file"),
            ("dir/", "file"),
            ("\u{200B}", "file"),
        ];
        for (raw, expected) in cases {
            assert_eq!(sanitize_filename(raw), expected, "{raw:?}");
        }
        let long = format!("{}.png", "é".repeat(300));
        let kept = sanitize_filename(&long);
        assert!(kept.len() <= MAX_FILENAME_BYTES, "{}", kept.len());
        assert!(kept.ends_with("é.png"), "{kept}");
    }

    #[test]
    fn captions_are_optional_bodies() {
        assert_eq!(validate_caption(None, 10), Ok(String::new()));
        assert_eq!(validate_caption(Some("  "), 10), Ok(String::new()));
        assert_eq!(validate_caption(Some(" hi "), 10), Ok("hi".into()));
        assert!(validate_caption(Some(&"x".repeat(11)), 10)
            .unwrap_err()
            .contains("caption"));
    }

    #[test]
    fn articles_are_https_on_a_configured_origin() {
        let origins = vec!["https://help.example.com".to_owned()];
        let ok = validate_article("https://help.example.com/a/1?x=y", " Refunds ", &origins);
        assert_eq!(
            ok,
            Ok(ArticleLink {
                url: "https://help.example.com/a/1?x=y".into(),
                title: "Refunds".into()
            })
        );
        let refused = [
            ("http://help.example.com/a", "must be https"),
            ("https://evil.example.com/a", "not an article origin"),
            (
                "https://help.example.com.evil.net/a",
                "not an article origin",
            ),
            ("https://user:pw@help.example.com/a", "credentials"),
            ("https://help.example.com:8443/a", "not an article origin"),
            ("javascript:alert(1)", "must be https"),
            ("not a url", "not a URL"),
        ];
        for (url, why) in refused {
            let err = validate_article(url, "t", &origins).unwrap_err();
            assert!(err.contains(why), "{url}: {err}");
        }
        assert!(validate_article("https://help.example.com/", " ", &origins)
            .unwrap_err()
            .contains("title"));
        assert!(validate_article("https://help.example.com/", "t", &[])
            .unwrap_err()
            .contains("off"));
    }

    #[test]
    fn links_verify_only_as_signed() {
        let signer = LinkSigner::derived_from(b"a server secret of some length");
        let (m, a) = (Uuid::new_v4(), Uuid::new_v4());
        let sig = signer.sign(m, a, 1000);
        assert!(signer.verify(m, a, 1000, &sig));
        assert!(!signer.verify(m, a, 1001, &sig), "another expiry");
        assert!(
            !signer.verify(Uuid::new_v4(), a, 1000, &sig),
            "another message"
        );
        assert!(
            !signer.verify(m, Uuid::new_v4(), 1000, &sig),
            "another file"
        );
        assert!(!signer.verify(m, a, 1000, "AAAA"), "another signature");
        assert!(!signer.verify(m, a, 1000, "not base64!"));
        let other = LinkSigner::derived_from(b"another server's secret");
        assert!(!other.verify(m, a, 1000, &sig), "another key");
    }
}
