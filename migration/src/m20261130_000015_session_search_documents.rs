//! Session search reads one document per ended session instead of a
//! trigram index over every message.
//!
//! The trigram index on `messages.body` (migration 000009) was maintained
//! by every send: each message's trigrams went into the index inside the
//! send transaction, which cost the chat about a tenth of its throughput.
//! An ended session's transcript no longer changes (but for a ticket's
//! SYSTEM line, which refreshes it), so its words are indexed once, when
//! it ends, as one document; the few open sessions are searched in their
//! messages directly. On Postgres the documents carry the trigram index;
//! SQLite scans them, as it scanned the messages.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SessionSearchDocuments {
    Table,
    SessionId,
    Body,
}

#[derive(DeriveIden)]
enum ChatSessions {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SessionSearchDocuments::Table)
                    .col(
                        ColumnDef::new(SessionSearchDocuments::SessionId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(SessionSearchDocuments::Body)
                            .text()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                SessionSearchDocuments::Table,
                                SessionSearchDocuments::SessionId,
                            )
                            .to(ChatSessions::Table, ChatSessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            db.execute_unprepared(
                "INSERT INTO session_search_documents (session_id, body) \
                 SELECT m.session_id, string_agg(m.body, E'\\n' ORDER BY m.seq) \
                 FROM messages m JOIN chat_sessions s ON s.id = m.session_id \
                 WHERE s.status = 'ENDED' GROUP BY m.session_id",
            )
            .await?;
            db.execute_unprepared(
                "CREATE INDEX idx_session_search_documents_body_trgm \
                 ON session_search_documents USING gin (body gin_trgm_ops)",
            )
            .await?;
            db.execute_unprepared("DROP INDEX IF EXISTS idx_messages_body_trgm")
                .await?;
        } else {
            db.execute_unprepared(
                "INSERT INTO session_search_documents (session_id, body) \
                 SELECT session_id, group_concat(body, char(10)) FROM \
                   (SELECT m.session_id, m.body FROM messages m \
                    JOIN chat_sessions s ON s.id = m.session_id \
                    WHERE s.status = 'ENDED' ORDER BY m.session_id, m.seq) \
                 GROUP BY session_id",
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "CREATE INDEX IF NOT EXISTS idx_messages_body_trgm \
                     ON messages USING gin (body gin_trgm_ops)",
                )
                .await?;
        }
        manager
            .drop_table(
                Table::drop()
                    .table(SessionSearchDocuments::Table)
                    .to_owned(),
            )
            .await
    }
}
