//! Priorities and the record of routing decisions.

use async_graphql::{Enum, SimpleObject, ID};
use chrono::{DateTime, Utc};

use crate::domain;
use crate::service::ListedDecision;

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "Priority")]
pub enum PriorityGql {
    Low,
    Normal,
    High,
    Urgent,
}

impl From<domain::Priority> for PriorityGql {
    fn from(p: domain::Priority) -> Self {
        match p {
            domain::Priority::Low => PriorityGql::Low,
            domain::Priority::Normal => PriorityGql::Normal,
            domain::Priority::High => PriorityGql::High,
            domain::Priority::Urgent => PriorityGql::Urgent,
        }
    }
}

impl From<PriorityGql> for domain::Priority {
    fn from(p: PriorityGql) -> Self {
        match p {
            PriorityGql::Low => domain::Priority::Low,
            PriorityGql::Normal => domain::Priority::Normal,
            PriorityGql::High => domain::Priority::High,
            PriorityGql::Urgent => domain::Priority::Urgent,
        }
    }
}

/// Why a session went to an agent: the rule applied and who else could have had it.
#[derive(SimpleObject)]
#[graphql(name = "RoutingDecision")]
pub struct RoutingDecisionGql {
    pub session_id: ID,
    pub agent_id: ID,
    /// OFFERED, ASSIGNED, ACCEPTED (manual), ADMIN_ASSIGNED or TRANSFERRED.
    pub kind: String,
    /// The queue key that ordered the session: priority, then queuedAt.
    pub priority: PriorityGql,
    pub queued_at: DateTime<Utc>,
    /// The agent's idleSince when chosen.
    pub agent_idle_since: Option<DateTime<Utc>>,
    /// Sessions (OFFERED + ACTIVE) the agent held just before, and their capacity then.
    pub agent_held: i32,
    pub agent_capacity: i32,
    /// Agents that were eligible at that moment, in the order the rule ranks them; the chosen one is first.
    pub candidates: Vec<ID>,
    /// Skills the session required and whether they were relaxed after waiting.
    pub required_skills: Vec<String>,
    pub skills_relaxed: bool,
    /// Taken after every lock was held, on the database clock: decisions sort in the order they took effect.
    pub at: DateTime<Utc>,
    /// Pass as `after` to routingDecisions to list what came after this one; empty where the list is not paged.
    pub cursor: String,
}

impl From<domain::RoutingDecision> for RoutingDecisionGql {
    fn from(d: domain::RoutingDecision) -> Self {
        RoutingDecisionGql {
            session_id: ID(d.session_id.to_string()),
            agent_id: ID(d.agent_id),
            kind: d.kind.as_str().to_owned(),
            priority: d.priority.into(),
            queued_at: d.queued_at,
            agent_idle_since: d.agent_idle_since,
            agent_held: d.agent_held,
            agent_capacity: d.agent_capacity,
            candidates: d.candidates.into_iter().map(ID).collect(),
            required_skills: d.required_skills.names().to_vec(),
            skills_relaxed: d.skills_relaxed,
            at: d.at,
            cursor: String::new(),
        }
    }
}

impl From<ListedDecision> for RoutingDecisionGql {
    fn from(listed: ListedDecision) -> Self {
        RoutingDecisionGql {
            cursor: listed.cursor,
            ..listed.decision.into()
        }
    }
}
