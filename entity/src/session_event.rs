use sea_orm::entity::prelude::*;

/// The assignment history of a session: every offer, acceptance, transfer,
/// return to the queue and end, in order. Written in the same transaction as
/// the change it records, so it can be trusted to audit routing.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "session_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub session_id: Uuid,
    pub kind: String,
    pub agent_id: Option<String>,
    pub actor_id: Option<String>,
    pub at: DateTimeUtc,
    /// The priority the session entered the queue with (QUEUED) or was
    /// given (REPRIORITIZED); null on other entries.
    pub priority: Option<i16>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
