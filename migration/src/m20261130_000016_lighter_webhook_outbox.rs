//! A lighter outbox for busy chats.
//!
//! - `webhook_events.message_id`: a `message.created` event names its
//!   message instead of carrying its body; the dispatcher builds the body
//!   from the stored message when it sends it. The send path then writes a
//!   short row in the same statement as the messages, rather than building
//!   and storing every message's JSON twice. Such rows have an empty
//!   `payload`.
//! - The index of events to fan out holds only those: fanned-out events
//!   leave it instead of growing it for the rest of their 90 days.
//! - The index of due deliveries holds only pending ones: a delivery
//!   written as DELIVERED (most of them) costs one index entry less.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookEvents {
    Table,
    MessageId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(WebhookEvents::Table)
                    .add_column(ColumnDef::new(WebhookEvents::MessageId).uuid())
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        // The same text on both databases: a query uses a partial index
        // only when its condition visibly implies the index's.
        for statement in [
            "CREATE INDEX idx_webhook_events_to_fan_out ON webhook_events (seq) \
             WHERE fanned_out = false",
            "DROP INDEX idx_webhook_events_unfanned",
            "CREATE INDEX idx_webhook_deliveries_pending_due ON webhook_deliveries \
             (next_attempt_at) WHERE status = 'PENDING'",
            "DROP INDEX idx_webhook_deliveries_due",
        ] {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for statement in [
            "CREATE INDEX idx_webhook_deliveries_due ON webhook_deliveries \
             (status, next_attempt_at)",
            "DROP INDEX idx_webhook_deliveries_pending_due",
            "CREATE INDEX idx_webhook_events_unfanned ON webhook_events (fanned_out, seq)",
            "DROP INDEX idx_webhook_events_to_fan_out",
        ] {
            db.execute_unprepared(statement).await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(WebhookEvents::Table)
                    .drop_column(WebhookEvents::MessageId)
                    .to_owned(),
            )
            .await
    }
}
