use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Deployment {
    Table,
    Id,
}

/// One row naming this deployment: every process on the database reads the
/// same random id, and no other deployment has it. The NATS relay scopes its
/// subject with it, so deployments sharing a NATS server never see each
/// other's events. Migrations run once, under a lock, so exactly one id is
/// ever made.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Deployment::Table)
                    .col(
                        ColumnDef::new(Deployment::Id)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .to_owned(),
            )
            .await?;
        let insert = Query::insert()
            .into_table(Deployment::Table)
            .columns([Deployment::Id])
            .values([uuid::Uuid::new_v4().to_string().into()])
            .map_err(|e| DbErr::Migration(e.to_string()))?
            .to_owned();
        manager.exec_stmt(insert).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Deployment::Table).to_owned())
            .await
    }
}
