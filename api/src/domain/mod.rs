//! The rules that need no I/O: who may do what ([`access`]), session and
//! agent states and their transitions, capacity, agent presence and what
//! absence does, message validation,
//! receipt status and history kinds. No SeaORM and no
//! GraphQL here; `repo` converts rows into these types.

pub mod access;
mod agent;
pub mod canned;
pub mod files;
mod history;
mod message;
mod note;
mod rating;
mod routing;
mod session;
mod ticket;
pub mod webhooks;

pub use agent::{
    validate_capacity, AbsenceRule, Agent, AgentPresence, AgentStatus, ConnectionRow, Verdict,
    MAX_CAPACITY,
};
pub use files::{ArticleLink, Attachment, MessageKind, MessagePayload};
pub use history::{HistoryEntry, HistoryKind};
pub use message::{
    has_bidi_controls, message_status, validate_body, validate_client_message_id, validate_id,
    validate_subject, Message, MessageStatus, MessageView, SenderRole,
};
pub use note::Note;
pub use rating::{rating_window_open, validate_rating, Rating, RatingStats};
pub use routing::{
    DecisionKind, PassAgent, Priority, RoutingDecision, RoutingMode, Skills, MAX_SKILLS,
    MAX_SKILL_CHARS,
};
pub use session::{Acceptance, ChatSession, EndReason, Party, SessionStatus};
pub use ticket::{backoff, read_ticket_answer, worth_retrying, Ticket};

/// Why the rules refuse a request: the caller may not do it at all, or
/// not with the session (or agent) in the state it is in now.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
}

/// A name could not be read back from storage: the row was written by
/// something other than this code.
#[derive(Debug, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownName {
    pub kind: &'static str,
    pub value: String,
}

macro_rules! named_enum {
    ($ty:ident, $kind:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $name),+ }
            }
        }
        impl std::str::FromStr for $ty {
            type Err = $crate::domain::UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    _ => Err($crate::domain::UnknownName { kind: $kind, value: s.to_owned() }),
                }
            }
        }
    };
}
pub(crate) use named_enum;
