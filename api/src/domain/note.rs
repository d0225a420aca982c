//! Internal notes: agent-only remarks on a session. They take no message
//! seq and are never part of what a customer reads (see
//! [`super::access::may_read_notes`]); their body follows the message rules.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub id: Uuid,
    pub session_id: Uuid,
    pub author_id: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
}
