use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Messages {
    Table,
    SessionId,
    Sender,
    SenderId,
    ClientMessageId,
}

const OLD: &str = "uq_messages_client_message_id";
const NEW: &str = "uq_messages_sender_client_message_id";

/// A sender is a role and an id: a customer and an agent whose tokens share
/// a `sub` are two people. Keyed by the id alone, the agent's send with
/// the customer's clientMessageId was answered with the customer's message
/// and stored nothing.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(NEW)
                    .table(Messages::Table)
                    .col(Messages::SessionId)
                    .col(Messages::SenderId)
                    .col(Messages::ClientMessageId)
                    .col(Messages::Sender)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(Index::drop().name(OLD).table(Messages::Table).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(OLD)
                    .table(Messages::Table)
                    .col(Messages::SessionId)
                    .col(Messages::SenderId)
                    .col(Messages::ClientMessageId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(Index::drop().name(NEW).table(Messages::Table).to_owned())
            .await
    }
}
