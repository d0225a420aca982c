use sea_orm::entity::prelude::*;

/// An agent, created the first time an agent token is seen. The primary key
/// is the token's `sub`, so no lookup table is needed between the two.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "agents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    pub status: String,
    pub capacity: i32,
    pub idle_since: Option<DateTimeUtc>,
    /// When the agent's last live connection closed (see `agent_connection`).
    pub last_seen_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Topics the agent handles, comma-joined.
    pub skills: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
