use sea_orm::entity::prelude::*;

/// One chat between a customer and (eventually) an agent. The row also holds
/// the per-session message counter and both sides' receipt cursors, so that
/// allocating a seq or moving a cursor is a single-row update.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "chat_sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub customer_id: String,
    pub subject: Option<String>,
    pub status: String,
    pub agent_id: Option<String>,
    pub created_at: DateTimeUtc,
    /// The session's place in the queue; kept when it returns to the queue.
    pub queued_at: DateTimeUtc,
    pub assigned_at: Option<DateTimeUtc>,
    pub offer_expires_at: Option<DateTimeUtc>,
    pub ended_at: Option<DateTimeUtc>,
    pub ended_by: Option<String>,
    pub end_reason: Option<String>,
    pub last_seq: i32,
    pub customer_delivered_seq: i32,
    pub customer_read_seq: i32,
    pub agent_delivered_seq: i32,
    pub agent_read_seq: i32,
    /// When the customer was last connected or active.
    pub customer_seen_at: Option<DateTimeUtc>,
    /// LOW 0, NORMAL 1, HIGH 2, URGENT 3: the queue is served by priority, then queued_at.
    pub priority: i16,
    /// Skills an agent needs to be offered it, comma-joined.
    pub required_skills: String,
    /// The customer's name as their token's `name` claim gave it, if the shop sent one.
    pub customer_name: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::message::Entity")]
    Message,
}

impl Related<super::message::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Message.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
