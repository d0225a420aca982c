use sea_orm::entity::prelude::*;

/// Why a session went to an agent: written in the transaction that made the
/// offer, assignment, accept or transfer, with what the rule saw then, so
/// that an audit can replay a period and check every decision.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "routing_decisions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub session_id: Uuid,
    pub agent_id: String,
    /// OFFERED, ASSIGNED, ACCEPTED, ADMIN_ASSIGNED or TRANSFERRED.
    pub kind: String,
    pub priority: i16,
    pub queued_at: DateTimeUtc,
    pub agent_idle_since: Option<DateTimeUtc>,
    /// Sessions the agent held just before, and their capacity.
    pub agent_held: i32,
    pub agent_capacity: i32,
    /// Eligible agents in rule order, the chosen one first: a JSON array.
    pub candidates: String,
    /// Comma-joined, as on the session.
    pub required_skills: String,
    pub skills_relaxed: bool,
    pub at: DateTimeUtc,
    /// The matcher pass that made it (`routing_passes`); null where a
    /// person decided.
    pub pass_id: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
