use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Agents {
    Table,
    Id,
    Name,
    Status,
    Capacity,
    IdleSince,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ChatSessions {
    Table,
    Id,
    CustomerId,
    Subject,
    Status,
    AgentId,
    CreatedAt,
    QueuedAt,
    AssignedAt,
    OfferExpiresAt,
    EndedAt,
    EndedBy,
    EndReason,
    LastSeq,
    CustomerDeliveredSeq,
    CustomerReadSeq,
    AgentDeliveredSeq,
    AgentReadSeq,
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Id,
    SessionId,
    Seq,
    Sender,
    SenderId,
    Body,
    ClientMessageId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum SessionEvents {
    Table,
    Id,
    SessionId,
    Kind,
    AgentId,
    ActorId,
    At,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Agents::Table)
                    .col(ColumnDef::new(Agents::Id).string().not_null().primary_key())
                    .col(ColumnDef::new(Agents::Name).string().not_null())
                    .col(ColumnDef::new(Agents::Status).string_len(16).not_null())
                    .col(ColumnDef::new(Agents::Capacity).integer().not_null())
                    .col(ColumnDef::new(Agents::IdleSince).timestamp_with_time_zone())
                    .col(
                        ColumnDef::new(Agents::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Agents::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ChatSessions::Table)
                    .col(
                        ColumnDef::new(ChatSessions::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(ChatSessions::CustomerId).string().not_null())
                    .col(ColumnDef::new(ChatSessions::Subject).string())
                    .col(
                        ColumnDef::new(ChatSessions::Status)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(ColumnDef::new(ChatSessions::AgentId).string())
                    .col(
                        ColumnDef::new(ChatSessions::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ChatSessions::QueuedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(ChatSessions::AssignedAt).timestamp_with_time_zone())
                    .col(ColumnDef::new(ChatSessions::OfferExpiresAt).timestamp_with_time_zone())
                    .col(ColumnDef::new(ChatSessions::EndedAt).timestamp_with_time_zone())
                    .col(ColumnDef::new(ChatSessions::EndedBy).string_len(16))
                    .col(ColumnDef::new(ChatSessions::EndReason).string_len(16))
                    .col(
                        ColumnDef::new(ChatSessions::LastSeq)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(ChatSessions::CustomerDeliveredSeq)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(ChatSessions::CustomerReadSeq)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(ChatSessions::AgentDeliveredSeq)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(ChatSessions::AgentReadSeq)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ChatSessions::Table, ChatSessions::AgentId)
                            .to(Agents::Table, Agents::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_chat_sessions_status_queued_at")
                    .table(ChatSessions::Table)
                    .col(ChatSessions::Status)
                    .col(ChatSessions::QueuedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_chat_sessions_customer_created")
                    .table(ChatSessions::Table)
                    .col(ChatSessions::CustomerId)
                    .col(ChatSessions::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_chat_sessions_agent_status")
                    .table(ChatSessions::Table)
                    .col(ChatSessions::AgentId)
                    .col(ChatSessions::Status)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_chat_sessions_created")
                    .table(ChatSessions::Table)
                    .col(ChatSessions::CreatedAt)
                    .to_owned(),
            )
            .await?;
        // One open session per customer, enforced by the database so that two
        // racing `startSession` calls cannot both create one. Partial indexes
        // read the same in Postgres and SQLite; the index builder cannot say it.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX uq_chat_sessions_open_per_customer \
                 ON chat_sessions (customer_id) WHERE status <> 'ENDED'",
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Messages::Table)
                    .col(ColumnDef::new(Messages::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Messages::SessionId).uuid().not_null())
                    .col(ColumnDef::new(Messages::Seq).integer().not_null())
                    .col(ColumnDef::new(Messages::Sender).string_len(16).not_null())
                    .col(ColumnDef::new(Messages::SenderId).string())
                    .col(ColumnDef::new(Messages::Body).text().not_null())
                    .col(ColumnDef::new(Messages::ClientMessageId).string())
                    .col(
                        ColumnDef::new(Messages::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Messages::Table, Messages::SessionId)
                            .to(ChatSessions::Table, ChatSessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_messages_session_seq")
                    .table(Messages::Table)
                    .col(Messages::SessionId)
                    .col(Messages::Seq)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_messages_client_message_id")
                    .table(Messages::Table)
                    .col(Messages::SessionId)
                    .col(Messages::SenderId)
                    .col(Messages::ClientMessageId)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(SessionEvents::Table)
                    .col(
                        ColumnDef::new(SessionEvents::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(SessionEvents::SessionId).uuid().not_null())
                    .col(
                        ColumnDef::new(SessionEvents::Kind)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(ColumnDef::new(SessionEvents::AgentId).string())
                    .col(ColumnDef::new(SessionEvents::ActorId).string())
                    .col(
                        ColumnDef::new(SessionEvents::At)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(SessionEvents::Table, SessionEvents::SessionId)
                            .to(ChatSessions::Table, ChatSessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_session_events_session")
                    .table(SessionEvents::Table)
                    .col(SessionEvents::SessionId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            SessionEvents::Table.into_iden(),
            Messages::Table.into_iden(),
            ChatSessions::Table.into_iden(),
            Agents::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
