use sea_orm::entity::prelude::*;

/// Where an admin asked for events to be sent. `events` holds the
/// subscribed type names between commas (",SESSION_ENDED,MESSAGE_CREATED,");
/// `secret` is the `whsec_…` signing key; `failing_since` is when its
/// current run of failed attempts began (none while it succeeds).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_endpoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub url: String,
    pub events: String,
    pub description: Option<String>,
    pub secret: String,
    pub enabled: bool,
    pub failing_since: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
