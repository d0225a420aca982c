use sea_orm::entity::prelude::*;

/// An agent's live WebSocket connections on one server process: how many,
/// and when that process last vouched for them (its heartbeat). A process
/// writes only its own rows; a row its process stopped refreshing no longer
/// counts, and any process's presence sweep folds it into the agent's
/// `last_seen_at` and deletes it. So a process that dies, however it dies,
/// leaves no agent online for longer than that bound.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "agent_connections")]
pub struct Model {
    /// A random id each process takes at start.
    #[sea_orm(primary_key, auto_increment = false)]
    pub process_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub agent_id: String,
    pub connections: i32,
    pub refreshed_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
