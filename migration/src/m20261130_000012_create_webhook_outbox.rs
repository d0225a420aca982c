use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    Id,
    Url,
    Events,
    Description,
    Secret,
    Enabled,
    FailingSince,
    CreatedAt,
}

#[derive(DeriveIden)]
enum WebhookEvents {
    Table,
    Seq,
    EventType,
    SessionId,
    Payload,
    FannedOut,
    CreatedAt,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    EventSeq,
    EndpointId,
    EventType,
    SessionId,
    Status,
    Attempts,
    LastStatusCode,
    LastError,
    NextAttemptAt,
    LeaseUntil,
    LeaseToken,
    CreatedAt,
    DeliveredAt,
}

/// Outbound webhooks: the endpoints admins register, the outbox of events
/// (written in the transaction of the change they announce, in `seq`
/// order, which is each session's order), and one delivery per event and
/// subscribed endpoint, leased by one dispatcher at a time and kept after
/// it ends for inspection until retention purges it.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let at = |c: WebhookDeliveries| ColumnDef::new(c).timestamp_with_time_zone().to_owned();
        manager
            .create_table(
                Table::create()
                    .table(WebhookEndpoints::Table)
                    .col(
                        ColumnDef::new(WebhookEndpoints::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(WebhookEndpoints::Url).text().not_null())
                    // ",SESSION_ENDED,MESSAGE_CREATED,": a LIKE finds one.
                    .col(ColumnDef::new(WebhookEndpoints::Events).text().not_null())
                    .col(ColumnDef::new(WebhookEndpoints::Description).text())
                    .col(ColumnDef::new(WebhookEndpoints::Secret).text().not_null())
                    .col(
                        ColumnDef::new(WebhookEndpoints::Enabled)
                            .boolean()
                            .not_null(),
                    )
                    .col(ColumnDef::new(WebhookEndpoints::FailingSince).timestamp_with_time_zone())
                    .col(
                        ColumnDef::new(WebhookEndpoints::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookEvents::Table)
                    .col(
                        ColumnDef::new(WebhookEvents::Seq)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(WebhookEvents::EventType).string().not_null())
                    .col(ColumnDef::new(WebhookEvents::SessionId).uuid())
                    .col(ColumnDef::new(WebhookEvents::Payload).text().not_null())
                    .col(
                        ColumnDef::new(WebhookEvents::FannedOut)
                            .boolean()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookEvents::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_events_unfanned")
                    .table(WebhookEvents::Table)
                    .col(WebhookEvents::FannedOut)
                    .col(WebhookEvents::Seq)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .col(
                        ColumnDef::new(WebhookDeliveries::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveries::EventSeq)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveries::EndpointId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveries::EventType)
                            .string()
                            .not_null(),
                    )
                    .col(ColumnDef::new(WebhookDeliveries::SessionId).uuid())
                    .col(
                        ColumnDef::new(WebhookDeliveries::Status)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveries::Attempts)
                            .integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(WebhookDeliveries::LastStatusCode).integer())
                    .col(ColumnDef::new(WebhookDeliveries::LastError).text())
                    .col(at(WebhookDeliveries::NextAttemptAt))
                    .col(at(WebhookDeliveries::LeaseUntil))
                    .col(ColumnDef::new(WebhookDeliveries::LeaseToken).uuid())
                    .col(at(WebhookDeliveries::CreatedAt).not_null())
                    .col(at(WebhookDeliveries::DeliveredAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(WebhookDeliveries::Table, WebhookDeliveries::EventSeq)
                            .to(WebhookEvents::Table, WebhookEvents::Seq)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(WebhookDeliveries::Table, WebhookDeliveries::EndpointId)
                            .to(WebhookEndpoints::Table, WebhookEndpoints::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // The dispatcher's look for due deliveries.
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_deliveries_due")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::Status)
                    .col(WebhookDeliveries::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        // "Nothing earlier of this session is still pending for this endpoint."
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_deliveries_order")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::EndpointId)
                    .col(WebhookDeliveries::SessionId)
                    .col(WebhookDeliveries::EventSeq)
                    .to_owned(),
            )
            .await?;
        // webhookDeliveries (newest first) and the purge.
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_deliveries_created")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::EndpointId)
                    .col(WebhookDeliveries::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_deliveries_event")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::EventSeq)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            WebhookDeliveries::Table.into_iden(),
            WebhookEvents::Table.into_iden(),
            WebhookEndpoints::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
