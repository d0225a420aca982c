use sea_orm::entity::prelude::*;

/// A customer's rating of one ended chat; one per session (the key).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "session_ratings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub session_id: Uuid,
    /// 1 to 5.
    pub score: i16,
    pub comment: Option<String>,
    /// The agent who held the session when it ended.
    pub agent_id: Option<String>,
    /// The session's end, copied so that stats by period read this table alone.
    pub session_ended_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
