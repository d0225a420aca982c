//! A session's assignment history, as admins read it.

use async_graphql::{SimpleObject, ID};
use chrono::{DateTime, Utc};

use crate::domain::HistoryEntry;

/// One step in a session's assignment history.
#[derive(SimpleObject)]
pub struct SessionHistoryEntry {
    /// QUEUED, ACCEPTED, ENDED, ...
    pub kind: String,
    pub agent_id: Option<ID>,
    /// Who caused it; null when the system did.
    pub actor_id: Option<ID>,
    pub at: DateTime<Utc>,
}

impl From<HistoryEntry> for SessionHistoryEntry {
    fn from(h: HistoryEntry) -> Self {
        SessionHistoryEntry {
            kind: h.kind.as_str().to_owned(),
            agent_id: h.agent_id.map(ID),
            actor_id: h.actor_id.map(ID),
            at: h.at,
        }
    }
}
