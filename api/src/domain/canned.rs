//! Canned responses: their rules (short codes, titles, bodies), how a
//! search ranks them, and how a body's `{{variables}}` are filled in.
//!
//! Templates cannot run code: the only construct is `{{name}}`, replaced
//! in one pass by a value looked up by name. Values are inserted as plain
//! text and never read again as template, so a customer named
//! `{{agent.name}}` stays literally that.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{named_enum, validate_body};

/// Who sees a canned response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CannedScope {
    /// Its owner only.
    Personal,
    /// Every agent; admins manage them.
    Team,
}
named_enum!(CannedScope, "canned scope", {
    Personal => "PERSONAL", Team => "TEAM",
});

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CannedResponse {
    pub id: Uuid,
    pub scope: CannedScope,
    /// The agent a PERSONAL response belongs to; None for TEAM.
    pub owner_id: Option<String>,
    pub short_code: String,
    pub title: String,
    pub body: String,
    pub updated_at: DateTime<Utc>,
}

pub const MAX_SHORT_CODE_CHARS: usize = 32;
pub const MAX_TITLE_CHARS: usize = 120;

/// A response's text fields, checked: `[a-z0-9_-]{1,32}` short code, a
/// title and a body that are not blank and within their limits (the body
/// is sent as a message, so a message's limit).
pub fn validate_fields<'a>(
    short_code: &'a str,
    title: &'a str,
    body: &'a str,
    max_body_chars: usize,
) -> Result<(&'a str, &'a str, &'a str), String> {
    let valid_code = !short_code.is_empty()
        && short_code.len() <= MAX_SHORT_CODE_CHARS
        && short_code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !valid_code {
        return Err(format!(
            "shortCode must be 1 to {MAX_SHORT_CODE_CHARS} of a-z, 0-9, _ and -"
        ));
    }
    let title =
        validate_body(title, MAX_TITLE_CHARS).map_err(|e| e.replace("message body", "title"))?;
    let body =
        validate_body(body, max_body_chars).map_err(|e| e.replace("message body", "body"))?;
    Ok((short_code, title, body))
}

/// The responses matching `search`, best first: short codes that start
/// with it (a leading `/`, as typed in the console, is ignored), then
/// titles having a word that starts with each of its words; by short code
/// within each. An empty search lists everything by short code.
pub fn rank(mut all: Vec<CannedResponse>, search: Option<&str>) -> Vec<CannedResponse> {
    let search = search
        .map(|s| s.trim().trim_start_matches('/').to_lowercase())
        .unwrap_or_default();
    all.sort_by(|a, b| a.short_code.cmp(&b.short_code));
    if search.is_empty() {
        return all;
    }
    let words: Vec<&str> = search.split_whitespace().collect();
    let title_matches = |title: &str| {
        let title = title.to_lowercase();
        let title_words: Vec<&str> = title
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        words
            .iter()
            .all(|w| title_words.iter().any(|t| t.starts_with(w)))
    };
    let (mut first, mut then) = (Vec::new(), Vec::new());
    for r in all {
        if r.short_code.starts_with(&search) {
            first.push(r);
        } else if title_matches(&r.title) {
            then.push(r);
        }
    }
    first.extend(then);
    first
}

/// A body filled in: the text, and the variables that had no value (each
/// once, in order of first use), left empty in the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    pub unresolved: Vec<String>,
}

/// Whether `name` can be a variable: dotted words of letters, digits, `_`
/// and `-` (`customer.name`, `customer.order_count`).
fn is_variable(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        })
}

/// Fills each `{{ name }}` of `template` with `value(name)`, in one pass.
/// A missing or empty value leaves the place empty and lists the name;
/// braces that do not hold a variable name stay as written.
pub fn render(template: &str, value: impl Fn(&str) -> Option<String>) -> Rendered {
    let mut text = String::with_capacity(template.len());
    let mut unresolved: Vec<String> = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let after_open = &rest[open + 2..];
        let Some(close) = after_open.find("}}") else {
            break;
        };
        let name = after_open[..close].trim();
        if !is_variable(name) {
            // Not a variable: keep the first brace and look again from the
            // next one, which may open a variable (`{{{name}}}`).
            text.push_str(&rest[..open + 1]);
            rest = &rest[open + 1..];
            continue;
        }
        text.push_str(&rest[..open]);
        match value(name).filter(|v| !v.is_empty()) {
            Some(v) => text.push_str(&v),
            None => {
                if !unresolved.iter().any(|u| u == name) {
                    unresolved.push(name.to_owned());
                }
            }
        }
        rest = &after_open[close + 2..];
    }
    text.push_str(rest);
    Rendered { text, unresolved }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(name: &str) -> Option<String> {
        match name {
            "customer.name" => Some("{{agent.name}}".into()),
            "agent.name" => Some("Ann".into()),
            "customer.id" => Some("c-1".into()),
            "customer.tier" => Some(String::new()),
            "session.subject" => Some("Refund }} {{customer.id}}".into()),
            _ => None,
        }
    }

    #[test]
    fn rendering() {
        #[rustfmt::skip]
        let table: &[(&str, &str, &[&str])] = &[
            ("Hi {{agent.name}} here", "Hi Ann here", &[]),
            ("Hi {{ agent.name }}!", "Hi Ann!", &[]),
            // A value is text, never a template again.
            ("Dear {{customer.name}}", "Dear {{agent.name}}", &[]),
            ("Re: {{session.subject}}", "Re: Refund }} {{customer.id}}", &[]),
            ("{{customer.id}}{{customer.id}}", "c-1c-1", &[]),
            // Unknown and empty values: left empty, listed once each.
            ("a{{customer.orders}}b{{customer.orders}}{{customer.tier}}", "ab", &["customer.orders", "customer.tier"]),
            // Not variables: kept as written.
            ("{{}} {{ two words }} {{x..y}}", "{{}} {{ two words }} {{x..y}}", &[]),
            ("unclosed {{agent.name", "unclosed {{agent.name", &[]),
            ("{{{agent.name}}}", "{Ann}", &[]),
            ("{{ {{agent.name}}", "{{ Ann", &[]),
            ("no variables", "no variables", &[]),
            ("ünï {{agent.name}} ✓", "ünï Ann ✓", &[]),
        ];
        for (template, text, unresolved) in table {
            let got = render(template, values);
            assert_eq!(got.text, *text, "{template}");
            assert_eq!(got.unresolved, *unresolved, "{template}");
        }
    }

    #[test]
    fn field_rules() {
        let ok = |code: &str| validate_fields(code, "Title", "Body", 100).is_ok();
        assert!(ok("refund"));
        assert!(ok("a_b-9"));
        assert!(ok(&"x".repeat(32)));
        assert!(!ok(&"x".repeat(33)));
        assert!(!ok(""));
        assert!(!ok("Refund"));
        assert!(!ok("re fund"));
        assert!(!ok("/refund"));
        assert!(validate_fields("a", "  ", "Body", 100).is_err());
        assert!(validate_fields("a", &"t".repeat(121), "Body", 100).is_err());
        assert!(validate_fields("a", "T", "", 100).is_err());
        assert!(validate_fields("a", "T", &"b".repeat(101), 100).is_err());
        assert_eq!(
            validate_fields("a", " T ", " B ", 100).unwrap(),
            ("a", "T", "B")
        );
    }

    #[test]
    fn ranking() {
        let r = |code: &str, title: &str| CannedResponse {
            id: Uuid::new_v4(),
            scope: CannedScope::Team,
            owner_id: None,
            short_code: code.into(),
            title: title.into(),
            body: "b".into(),
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
        };
        let all = vec![
            r("thanks", "Refund thanks"),
            r("refund-late", "Late refund"),
            r("refund", "Refund policy"),
            r("hello", "Greeting"),
        ];
        let codes = |search: Option<&str>| -> Vec<String> {
            rank(all.clone(), search)
                .into_iter()
                .map(|r| r.short_code)
                .collect()
        };
        assert_eq!(codes(None), ["hello", "refund", "refund-late", "thanks"]);
        assert_eq!(codes(Some("/ref")), ["refund", "refund-late", "thanks"]);
        assert_eq!(codes(Some("REF")), ["refund", "refund-late", "thanks"]);
        assert_eq!(codes(Some("late ref")), ["refund-late"]);
        assert_eq!(codes(Some("greet")), ["hello"]);
        assert!(codes(Some("nothing")).is_empty());
    }
}
