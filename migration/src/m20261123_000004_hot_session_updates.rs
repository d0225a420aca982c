use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ChatSessions {
    Table,
    CustomerSeenAt,
    Status,
}

const SEEN_INDEX: &str = "idx_chat_sessions_status_customer_seen";

/// Lets the updates every message makes to its session row (seq counter,
/// delivery marks, customer last seen) be HOT updates in Postgres: written
/// in place on the same page, with no new entry in any of the table's
/// indexes. That needs room on the page (fillfactor) and no changed column
/// in any index; `customer_seen_at` was, for the absent-customer sweep,
/// which reads open sessions through the partial index of open sessions
/// (`uq_chat_sessions_open_per_customer`) instead.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(SEEN_INDEX)
                    .table(ChatSessions::Table)
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            // Pages written from now on keep 30 % free for new row versions.
            manager
                .get_connection()
                .execute_unprepared("ALTER TABLE chat_sessions SET (fillfactor = 70)")
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("ALTER TABLE chat_sessions RESET (fillfactor)")
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name(SEEN_INDEX)
                    .table(ChatSessions::Table)
                    .col(ChatSessions::Status)
                    .col(ChatSessions::CustomerSeenAt)
                    .to_owned(),
            )
            .await
    }
}
