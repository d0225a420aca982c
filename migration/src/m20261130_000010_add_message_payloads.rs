use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Messages {
    Table,
    Payload,
}

/// What a FILE or ARTICLE message carries (its attachment, its link card),
/// as JSON beside the body: null for text, so a text message's row and its
/// insert stay as they were, and a transcript page reads files with the
/// messages. A nullable column without default is added instantly on
/// Postgres, however many messages there are.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Messages::Table)
                    .add_column(ColumnDef::new(Messages::Payload).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Messages::Table)
                    .drop_column(Messages::Payload)
                    .to_owned(),
            )
            .await
    }
}
