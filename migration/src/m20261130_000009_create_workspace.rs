use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ChatSessions {
    Table,
    Id,
    CustomerName,
}

#[derive(DeriveIden)]
enum SessionEvents {
    Table,
    AgentId,
    At,
}

#[derive(DeriveIden)]
enum SessionNotes {
    Table,
    Id,
    SessionId,
    AuthorId,
    Body,
    CreatedAt,
}

#[derive(DeriveIden)]
enum CannedResponses {
    Table,
    Id,
    Scope,
    OwnerId,
    ShortCode,
    Title,
    Body,
    CreatedAt,
    UpdatedAt,
}

/// The agent's workspace: internal notes on sessions, canned responses,
/// the customer's name as their token gave it (for `{{customer.name}}`),
/// and on Postgres trigram indexes for searching subjects and message
/// bodies by words (SQLite scans).
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ChatSessions::Table)
                    .add_column(ColumnDef::new(ChatSessions::CustomerName).string())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SessionNotes::Table)
                    .col(
                        ColumnDef::new(SessionNotes::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(SessionNotes::SessionId).uuid().not_null())
                    .col(ColumnDef::new(SessionNotes::AuthorId).string().not_null())
                    .col(ColumnDef::new(SessionNotes::Body).text().not_null())
                    .col(
                        ColumnDef::new(SessionNotes::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(SessionNotes::Table, SessionNotes::SessionId)
                            .to(ChatSessions::Table, ChatSessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_session_notes_session")
                    .table(SessionNotes::Table)
                    .col(SessionNotes::SessionId)
                    .col(SessionNotes::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CannedResponses::Table)
                    .col(
                        ColumnDef::new(CannedResponses::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(CannedResponses::Scope).string().not_null())
                    // '' for TEAM responses: a unique index treats NULLs as
                    // distinct, and TEAM short codes must be unique too.
                    .col(ColumnDef::new(CannedResponses::OwnerId).string().not_null())
                    .col(
                        ColumnDef::new(CannedResponses::ShortCode)
                            .string()
                            .not_null(),
                    )
                    .col(ColumnDef::new(CannedResponses::Title).string().not_null())
                    .col(ColumnDef::new(CannedResponses::Body).text().not_null())
                    .col(
                        ColumnDef::new(CannedResponses::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(CannedResponses::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("canned_responses_short_code_key")
                    .table(CannedResponses::Table)
                    .col(CannedResponses::Scope)
                    .col(CannedResponses::OwnerId)
                    .col(CannedResponses::ShortCode)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // An agent's searches and the workload's "accepted today" look up
        // the history by agent.
        manager
            .create_index(
                Index::create()
                    .name("idx_session_events_agent_at")
                    .table(SessionEvents::Table)
                    .col(SessionEvents::AgentId)
                    .col(SessionEvents::At)
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            // Trigram indexes answer ILIKE '%word%' on both columns: a search
            // over a million messages reads the index, not the table.
            let db = manager.get_connection();
            db.execute_unprepared("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                .await?;
            db.execute_unprepared(
                "CREATE INDEX idx_messages_body_trgm ON messages USING gin (body gin_trgm_ops)",
            )
            .await?;
            db.execute_unprepared(
                "CREATE INDEX idx_chat_sessions_subject_trgm ON chat_sessions \
                 USING gin (subject gin_trgm_ops)",
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            let db = manager.get_connection();
            db.execute_unprepared("DROP INDEX IF EXISTS idx_messages_body_trgm")
                .await?;
            db.execute_unprepared("DROP INDEX IF EXISTS idx_chat_sessions_subject_trgm")
                .await?;
        }
        manager
            .drop_index(
                Index::drop()
                    .name("idx_session_events_agent_at")
                    .table(SessionEvents::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(CannedResponses::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(SessionNotes::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ChatSessions::Table)
                    .drop_column(ChatSessions::CustomerName)
                    .to_owned(),
            )
            .await
    }
}
