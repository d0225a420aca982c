use sea_orm::entity::prelude::*;

/// The ticket a chat was handed over as, and the claim on creating it.
/// While `external_id` is null, the process whose `claim_id` it holds (until
/// `claimed_until`) is calling the ticket system; everyone else waits.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "session_tickets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub session_id: Uuid,
    pub claim_id: Option<Uuid>,
    pub claimed_until: Option<DateTimeUtc>,
    /// Claims taken so far (each one call, with its retries).
    pub attempts: i32,
    /// Why the last claim ended without a ticket (for operators).
    pub last_error: Option<String>,
    /// The ticket system's id, once it answered.
    pub external_id: Option<String>,
    pub url: Option<String>,
    pub created_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
