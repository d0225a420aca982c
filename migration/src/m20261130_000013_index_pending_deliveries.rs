//! The dispatcher asks, for every delivery it might lease, whether an
//! earlier one of the same session is still PENDING for the same endpoint.
//! Over all deliveries that walks every delivered one of the session; over
//! the pending ones only, it is one index probe. Partial indexes read the
//! same on Postgres and SQLite.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX idx_webhook_deliveries_pending \
                 ON webhook_deliveries (endpoint_id, session_id, event_seq) \
                 WHERE status = 'PENDING'",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_webhook_deliveries_pending")
                    .table(Alias::new("webhook_deliveries"))
                    .to_owned(),
            )
            .await
    }
}
