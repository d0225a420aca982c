use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{named_enum, Party};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SenderRole {
    Customer,
    Agent,
    System,
}
named_enum!(SenderRole, "sender role", {
    Customer => "CUSTOMER", Agent => "AGENT", System => "SYSTEM",
});

impl SenderRole {
    /// Whose cursors decide the status of a message from this sender.
    /// SYSTEM messages are addressed to the customer.
    pub fn recipient(self) -> Party {
        match self {
            SenderRole::Customer => Party::Agent,
            SenderRole::Agent | SenderRole::System => Party::Customer,
        }
    }
}

impl From<Party> for SenderRole {
    fn from(p: Party) -> Self {
        match p {
            Party::Customer => SenderRole::Customer,
            Party::Agent => SenderRole::Agent,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageStatus {
    Sent,
    Delivered,
    Read,
}

/// Status of message `seq` from the recipient's cursors: no per-message,
/// per-reader rows are kept.
pub fn message_status(seq: i32, delivered: i32, read: i32) -> MessageStatus {
    if seq <= read {
        MessageStatus::Read
    } else if seq <= delivered {
        MessageStatus::Delivered
    } else {
        MessageStatus::Sent
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: Uuid,
    pub session_id: Uuid,
    pub seq: i32,
    pub sender: SenderRole,
    pub sender_id: Option<String>,
    pub body: String,
    pub client_message_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// A FILE's attachment or an ARTICLE's link; none for text. (Default
    /// when absent, so events relayed by an older process still read.)
    #[serde(default)]
    pub payload: Option<super::MessagePayload>,
}

impl Message {
    pub fn kind(&self) -> super::MessageKind {
        use super::{MessageKind, MessagePayload};
        match (&self.payload, self.sender) {
            (Some(MessagePayload::File(_)), _) => MessageKind::File,
            (Some(MessagePayload::Article(_)), _) => MessageKind::Article,
            (None, SenderRole::System) => MessageKind::System,
            (None, _) => MessageKind::Text,
        }
    }
}

/// Trims the body and checks it is non-empty and at most `max_chars` characters.
/// Text the database cannot store (NUL) or that no person typed (other
/// control characters, except line breaks and tabs).
fn has_forbidden_chars(s: &str) -> bool {
    s.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
}

/// Identifiers from clients (agent ids): printable, at most 200 bytes.
pub fn validate_id(id: &str) -> Result<&str, String> {
    if id.is_empty() || id.len() > 200 || id.chars().any(char::is_control) {
        return Err(format!("{id:?} is not a valid id"));
    }
    Ok(id)
}

/// Bidirectional embeddings, overrides and isolates (U+202A–U+202E,
/// U+2066–U+2069): they make text display in another order than it reads
/// ("Trojan Source"), so a link or an amount can show as something else.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

pub fn has_bidi_controls(s: &str) -> bool {
    s.chars().any(is_bidi_control)
}

/// Characters that show nothing: zero-width spaces and joiners, the byte
/// order mark, word joiners, fillers, variation selectors and tags. Text of
/// only these (and spaces) looks empty to whoever reads it.
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2060}'..='\u{2064}'
                | '\u{206A}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{E0000}'..='\u{E007F}'
                | '\u{E0100}'..='\u{E01EF}'
        )
}

/// Nothing a reader would see.
pub fn looks_blank(s: &str) -> bool {
    s.chars().all(is_invisible)
}

pub fn validate_body(body: &str, max_chars: usize) -> Result<&str, String> {
    if has_forbidden_chars(body) {
        return Err("message body must not contain control characters".into());
    }
    if has_bidi_controls(body) {
        return Err("message body must not contain bidirectional override characters".into());
    }
    let body = body.trim();
    if looks_blank(body) {
        return Err("message body must not be empty".into());
    }
    let chars = body.chars().count();
    if chars > max_chars {
        return Err(format!(
            "message body has {chars} characters; the limit is {max_chars}"
        ));
    }
    Ok(body)
}

pub const MAX_CLIENT_MESSAGE_ID_LEN: usize = 128;

pub fn validate_client_message_id(id: &str) -> Result<&str, String> {
    if id.is_empty()
        || id.len() > MAX_CLIENT_MESSAGE_ID_LEN
        || id.trim() != id
        || id.chars().any(char::is_control)
    {
        return Err(format!(
            "clientMessageId must be 1 to {MAX_CLIENT_MESSAGE_ID_LEN} bytes without surrounding spaces"
        ));
    }
    Ok(id)
}

pub const MAX_SUBJECT_CHARS: usize = 200;

/// A blank subject is no subject.
pub fn validate_subject(subject: Option<&str>) -> Result<Option<String>, String> {
    let Some(s) = subject.map(str::trim).filter(|s| !looks_blank(s)) else {
        return Ok(None);
    };
    if s.chars().any(char::is_control) {
        return Err("subject must not contain control characters".into());
    }
    if has_bidi_controls(s) {
        return Err("subject must not contain bidirectional override characters".into());
    }
    if s.chars().count() > MAX_SUBJECT_CHARS {
        return Err(format!(
            "subject is limited to {MAX_SUBJECT_CHARS} characters"
        ));
    }
    Ok(Some(s.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_trimmed_and_bounded() {
        assert_eq!(validate_body("  hi \n", 10), Ok("hi"));
        assert!(validate_body("   ", 10).is_err());
        assert!(validate_body("", 10).is_err());
        assert!(
            validate_body(&"é".repeat(10), 10).is_ok(),
            "the limit counts characters, not bytes"
        );
        assert!(validate_body(&"a".repeat(11), 10).is_err());
    }

    #[test]
    fn status_follows_the_recipient_cursors() {
        assert_eq!(message_status(5, 4, 3), MessageStatus::Sent);
        assert_eq!(message_status(4, 4, 3), MessageStatus::Delivered);
        assert_eq!(message_status(3, 4, 3), MessageStatus::Read);
    }

    #[test]
    fn control_characters_are_refused() {
        assert!(validate_body("hi\u{0}", 10).is_err());
        assert!(validate_body("a\u{7}b", 10).is_err());
        assert_eq!(
            validate_body("line one\nline two", 100),
            Ok("line one\nline two")
        );
        assert!(validate_client_message_id("k\u{0}").is_err());
        assert!(validate_subject(Some("a\u{0}b")).is_err());
        assert!(validate_id("ann\u{0}").is_err());
        assert!(validate_id("").is_err());
        assert_eq!(validate_id("ann"), Ok("ann"));
    }

    #[test]
    fn invisible_text_is_empty_and_bidi_overrides_are_refused() {
        for invisible in [
            "\u{200B}",
            "\u{200B}\u{200D}\u{FEFF}",
            " \u{2060} \u{00AD}",
            "\u{E0041}",
        ] {
            assert_eq!(
                validate_body(invisible, 10),
                Err("message body must not be empty".into()),
                "{invisible:?}"
            );
            assert_eq!(validate_subject(Some(invisible)), Ok(None));
        }
        // Joiners inside real text are text: emoji sequences use them.
        assert!(validate_body("👩\u{200D}💻 ok", 10).is_ok());
        for bidi in ['\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}'] {
            let text = format!("pay {bidi}0001$");
            assert!(validate_body(&text, 100)
                .unwrap_err()
                .contains("bidirectional"));
            assert!(validate_subject(Some(&text))
                .unwrap_err()
                .contains("bidirectional"));
        }
        assert!(
            validate_body("שלום, hello", 100).is_ok(),
            "right-to-left text itself is fine"
        );
    }

    #[test]
    fn client_message_ids_are_bounded() {
        assert!(validate_client_message_id("abc-1").is_ok());
        assert!(validate_client_message_id("").is_err());
        assert!(validate_client_message_id(" x").is_err());
        assert!(validate_client_message_id(&"x".repeat(129)).is_err());
    }

    #[test]
    fn subjects() {
        assert_eq!(validate_subject(None), Ok(None));
        assert_eq!(validate_subject(Some("  ")), Ok(None));
        assert_eq!(
            validate_subject(Some(" Refund ")),
            Ok(Some("Refund".into()))
        );
        assert!(validate_subject(Some(&"x".repeat(201))).is_err());
    }
}

/// A message as one reader sees it: with its status for the recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageView {
    pub message: Message,
    pub status: MessageStatus,
}

impl MessageView {
    /// The status from the session's cursors as they are in `session`.
    pub fn from_cursors(message: Message, session: &super::ChatSession) -> Self {
        let (delivered, read) = session.cursors(message.sender.recipient());
        let status = message_status(message.seq, delivered, read);
        MessageView { message, status }
    }
}
