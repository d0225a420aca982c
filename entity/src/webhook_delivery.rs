use sea_orm::entity::prelude::*;

/// One event for one endpoint. `id` is the `webhook-id` header, the same
/// on every attempt. While PENDING, a dispatcher holds it until
/// `lease_until` (its `lease_token` says which one), and it is due again
/// at `next_attempt_at`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub event_seq: i64,
    pub endpoint_id: Uuid,
    pub event_type: String,
    pub session_id: Option<Uuid>,
    pub status: String,
    pub attempts: i32,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<DateTimeUtc>,
    pub lease_until: Option<DateTimeUtc>,
    pub lease_token: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub delivered_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
