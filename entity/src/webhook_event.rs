use sea_orm::entity::prelude::*;

/// The outbox: one row per event, written in the transaction of the change
/// it announces. `seq` orders a session's events; `payload` is the JSON
/// body every endpoint receives, or empty for a `message.created` event,
/// whose body is built from its message (`message_id`) when it is sent;
/// `fanned_out` once its deliveries exist.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub seq: i64,
    pub event_type: String,
    pub session_id: Option<Uuid>,
    pub payload: String,
    pub message_id: Option<Uuid>,
    pub fanned_out: bool,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
