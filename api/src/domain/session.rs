use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::named_enum;
use crate::auth::Role;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SessionStatus {
    Waiting,
    Offered,
    Active,
    Ended,
}
named_enum!(SessionStatus, "session status", {
    Waiting => "WAITING", Offered => "OFFERED", Active => "ACTIVE", Ended => "ENDED",
});

impl SessionStatus {
    pub fn is_open(self) -> bool {
        self != SessionStatus::Ended
    }
    /// In the queue, i.e. not yet accepted by an agent.
    pub fn is_queued(self) -> bool {
        matches!(self, SessionStatus::Waiting | SessionStatus::Offered)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndReason {
    Resolved,
    Cancelled,
    Abandoned,
}
named_enum!(EndReason, "end reason", {
    Resolved => "RESOLVED", Cancelled => "CANCELLED", Abandoned => "ABANDONED",
});

impl EndReason {
    /// Why a session ends when `by` ends it on purpose while it is `status`:
    /// a customer leaving before any agent accepted cancels; anything else
    /// ended on purpose is resolved.
    pub fn on_purpose(by: Role, status: SessionStatus) -> EndReason {
        match (by, status.is_queued()) {
            (Role::Customer, true) => EndReason::Cancelled,
            _ => EndReason::Resolved,
        }
    }
}

/// The two sides of a chat; used for receipts and typing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
pub enum Party {
    Customer,
    Agent,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatSession {
    pub id: Uuid,
    pub customer_id: String,
    pub subject: Option<String>,
    pub status: SessionStatus,
    pub agent_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub queued_at: DateTime<Utc>,
    pub assigned_at: Option<DateTime<Utc>>,
    pub offer_expires_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub ended_by: Option<Role>,
    pub end_reason: Option<EndReason>,
    pub last_seq: i32,
    pub customer_delivered_seq: i32,
    pub customer_read_seq: i32,
    pub agent_delivered_seq: i32,
    pub agent_read_seq: i32,
    /// When the customer was last connected or active.
    pub customer_seen_at: Option<DateTime<Utc>>,
}

impl ChatSession {
    /// Which side of this session the caller is on, if any.
    pub fn party_of(&self, role: Role, id: &str) -> Option<Party> {
        match role {
            Role::Customer if self.customer_id == id => Some(Party::Customer),
            Role::Agent if self.agent_id.as_deref() == Some(id) => Some(Party::Agent),
            _ => None,
        }
    }

    /// Which side's read cursor the caller moves, if any: the customer, or
    /// the agent once they accepted. An agent only offered the session has
    /// not joined it, and may pass it on.
    pub fn reader_of(&self, role: Role, id: &str) -> Option<Party> {
        match self.party_of(role, id) {
            Some(Party::Agent) if self.status == SessionStatus::Offered => None,
            party => party,
        }
    }

    /// (delivered, read) cursors of one side.
    pub fn cursors(&self, party: Party) -> (i32, i32) {
        match party {
            Party::Customer => (self.customer_delivered_seq, self.customer_read_seq),
            Party::Agent => (self.agent_delivered_seq, self.agent_read_seq),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in [
            SessionStatus::Waiting,
            SessionStatus::Offered,
            SessionStatus::Active,
            SessionStatus::Ended,
        ] {
            assert_eq!(s.as_str().parse::<SessionStatus>().unwrap(), s);
        }
        assert!("waiting".parse::<SessionStatus>().is_err());
    }

    #[test]
    fn customers_leaving_the_queue_cancel_everything_else_resolves() {
        assert_eq!(
            EndReason::on_purpose(Role::Customer, SessionStatus::Waiting),
            EndReason::Cancelled
        );
        assert_eq!(
            EndReason::on_purpose(Role::Customer, SessionStatus::Offered),
            EndReason::Cancelled
        );
        assert_eq!(
            EndReason::on_purpose(Role::Customer, SessionStatus::Active),
            EndReason::Resolved
        );
        assert_eq!(
            EndReason::on_purpose(Role::Agent, SessionStatus::Active),
            EndReason::Resolved
        );
        assert_eq!(
            EndReason::on_purpose(Role::Admin, SessionStatus::Waiting),
            EndReason::Resolved
        );
    }
}
