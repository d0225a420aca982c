//! The agent's workspace: canned responses, rendered text, customer
//! context, notes, workload, and the session search filter.

use async_graphql::{Enum, InputObject, Json, SimpleObject, ID};
use chrono::{DateTime, Utc};

use super::{AgentGql, ChatSessionGql, SessionStatusGql};
use crate::domain::{self, canned};
use crate::service;

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "CannedScope")]
pub enum CannedScopeGql {
    /// Visible to its owner only; created by any agent for themselves.
    Personal,
    /// Visible to every agent; created and changed by admins.
    Team,
}

impl From<canned::CannedScope> for CannedScopeGql {
    fn from(s: canned::CannedScope) -> Self {
        match s {
            canned::CannedScope::Personal => CannedScopeGql::Personal,
            canned::CannedScope::Team => CannedScopeGql::Team,
        }
    }
}

impl From<CannedScopeGql> for canned::CannedScope {
    fn from(s: CannedScopeGql) -> Self {
        match s {
            CannedScopeGql::Personal => canned::CannedScope::Personal,
            CannedScopeGql::Team => canned::CannedScope::Team,
        }
    }
}

#[derive(SimpleObject)]
#[graphql(name = "CannedResponse")]
pub struct CannedResponseGql {
    pub id: ID,
    /// Typed after '/' in the console, unique per owner (PERSONAL) or team-wide (TEAM); [a-z0-9_-], 1 to 32.
    pub short_code: String,
    pub title: String,
    /// Text with {{variables}}: customer.id, customer.name, customer.<context key>, agent.name, session.subject, session.id.
    pub body: String,
    pub scope: CannedScopeGql,
    pub owner_id: Option<ID>,
    pub updated_at: DateTime<Utc>,
}

impl From<canned::CannedResponse> for CannedResponseGql {
    fn from(r: canned::CannedResponse) -> Self {
        CannedResponseGql {
            id: ID(r.id.to_string()),
            short_code: r.short_code,
            title: r.title,
            body: r.body,
            scope: r.scope.into(),
            owner_id: r.owner_id.map(ID),
            updated_at: r.updated_at,
        }
    }
}

#[derive(InputObject)]
pub struct CannedResponseInput {
    pub short_code: String,
    pub title: String,
    pub body: String,
    pub scope: CannedScopeGql,
}

impl CannedResponseInput {
    pub fn as_input(&self) -> service::CannedInput<'_> {
        service::CannedInput {
            short_code: &self.short_code,
            title: &self.title,
            body: &self.body,
            scope: self.scope.into(),
        }
    }
}

/// A canned response filled in for one session. Nothing is sent until the agent sends the text.
#[derive(SimpleObject)]
pub struct RenderedText {
    pub text: String,
    /// Variables that had no value; they are left empty in text.
    pub unresolved: Vec<String>,
}

impl From<canned::Rendered> for RenderedText {
    fn from(r: canned::Rendered) -> Self {
        RenderedText {
            text: r.text,
            unresolved: r.unresolved,
        }
    }
}

/// What the shop's own systems know of the customer (orders, profile, account), fetched live from the configured context provider.
#[derive(SimpleObject)]
#[graphql(name = "CustomerContext")]
pub struct CustomerContextGql {
    /// The provider's answer as it came; null when none is configured or it failed.
    pub data: Option<Json<serde_json::Map<String, serde_json::Value>>>,
    pub fetched_at: Option<DateTime<Utc>>,
    /// Why data is missing: NOT_CONFIGURED, TIMEOUT, UNAVAILABLE, BAD_RESPONSE; null on success.
    pub error: Option<String>,
}

impl From<service::CustomerContext> for CustomerContextGql {
    fn from(c: service::CustomerContext) -> Self {
        CustomerContextGql {
            data: c.data.map(Json),
            fetched_at: c.fetched_at,
            error: c.error.map(|e| e.as_str().to_owned()),
        }
    }
}

/// An agent-only remark on a session. Never shown to the customer, never in the customer's transcript or feed.
#[derive(SimpleObject)]
#[graphql(name = "Note")]
pub struct NoteGql {
    pub id: ID,
    pub session_id: ID,
    pub author_id: ID,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

impl From<domain::Note> for NoteGql {
    fn from(n: domain::Note) -> Self {
        NoteGql {
            id: ID(n.id.to_string()),
            session_id: ID(n.session_id.to_string()),
            author_id: ID(n.author_id),
            body: n.body,
            created_at: n.created_at,
        }
    }
}

#[derive(SimpleObject)]
pub struct NoteAdded {
    pub note: NoteGql,
}

#[derive(SimpleObject)]
#[graphql(name = "AgentWorkload")]
pub struct AgentWorkloadGql {
    pub agent: AgentGql,
    /// Sessions OFFERED to or ACTIVE with the agent.
    pub held: i32,
    pub capacity: i32,
    /// capacity - held, never negative; 0 when not AVAILABLE.
    pub free_slots: i32,
    /// Sessions the agent accepted since the start of the current UTC day.
    pub accepted_today: i32,
    pub sessions: Vec<ChatSessionGql>,
}

impl From<service::AgentWorkload> for AgentWorkloadGql {
    fn from(w: service::AgentWorkload) -> Self {
        AgentWorkloadGql {
            agent: w.agent.into(),
            held: w.held,
            capacity: w.capacity,
            free_slots: w.free_slots,
            accepted_today: w.accepted_today,
            sessions: w.sessions.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(InputObject)]
pub struct SessionFilter {
    pub status: Option<Vec<SessionStatusGql>>,
    pub agent_id: Option<ID>,
    pub customer_id: Option<ID>,
    /// Sessions created at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Sessions created before this time.
    pub to: Option<DateTime<Utc>>,
    /// Words that must all appear in the subject or a message body (case-insensitive).
    pub text: Option<String>,
}

impl From<SessionStatusGql> for domain::SessionStatus {
    fn from(s: SessionStatusGql) -> Self {
        match s {
            SessionStatusGql::Waiting => domain::SessionStatus::Waiting,
            SessionStatusGql::Offered => domain::SessionStatus::Offered,
            SessionStatusGql::Active => domain::SessionStatus::Active,
            SessionStatusGql::Ended => domain::SessionStatus::Ended,
        }
    }
}

impl From<SessionFilter> for service::SessionSearch {
    fn from(f: SessionFilter) -> Self {
        service::SessionSearch {
            statuses: f
                .status
                .unwrap_or_default()
                .into_iter()
                .map(Into::into)
                .collect(),
            agent_id: f.agent_id.map(|i| i.0),
            customer_id: f.customer_id.map(|i| i.0),
            from: f.from,
            to: f.to,
            text: f.text,
        }
    }
}
