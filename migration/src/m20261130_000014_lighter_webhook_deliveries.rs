//! Every message a webhook endpoint subscribes to becomes a delivery row,
//! so each index and constraint on `webhook_deliveries` is paid per
//! message. Two go:
//! - the foreign keys (Postgres): each checked row took a share lock on its
//!   endpoint's row, one row for thousands of deliveries a second, and the
//!   code already deletes deliveries itself before their event or
//!   endpoint (`repo::webhooks::delete_endpoint`, `purge_before`);
//! - the (endpoint, session, event) index over all deliveries, which the
//!   partial index over pending ones (migration 13) now does the work of.
//!
//! And one comes: pending deliveries by event, the order in which the
//! dispatcher looks for the next of each session to send.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "DO $$ DECLARE c record; BEGIN \
                       FOR c IN SELECT conname FROM pg_constraint \
                         WHERE conrelid = 'webhook_deliveries'::regclass AND contype = 'f' \
                       LOOP \
                         EXECUTE format('ALTER TABLE webhook_deliveries DROP CONSTRAINT %I', c.conname); \
                       END LOOP; \
                     END $$",
                )
                .await?;
        }
        manager
            .drop_index(
                Index::drop()
                    .name("idx_webhook_deliveries_order")
                    .table(Alias::new("webhook_deliveries"))
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX idx_webhook_deliveries_pending_seq \
                 ON webhook_deliveries (event_seq) WHERE status = 'PENDING'",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_webhook_deliveries_pending_seq")
                    .table(Alias::new("webhook_deliveries"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_deliveries_order")
                    .table(Alias::new("webhook_deliveries"))
                    .col(Alias::new("endpoint_id"))
                    .col(Alias::new("session_id"))
                    .col(Alias::new("event_seq"))
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "ALTER TABLE webhook_deliveries \
                       ADD FOREIGN KEY (event_seq) REFERENCES webhook_events (seq) ON DELETE CASCADE, \
                       ADD FOREIGN KEY (endpoint_id) REFERENCES webhook_endpoints (id) ON DELETE CASCADE",
                )
                .await?;
        }
        Ok(())
    }
}
