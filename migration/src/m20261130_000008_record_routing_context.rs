use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RoutingDecisions {
    Table,
    PassId,
}

#[derive(DeriveIden)]
enum RoutingPasses {
    Table,
    Id,
    Agents,
}

#[derive(DeriveIden)]
enum SessionEvents {
    Table,
    Priority,
}

/// What the fairness audit needs and the record lacked:
///
/// - `routing_passes.agents`: the agents a matcher pass chose from
///   (AVAILABLE with a free slot, as read under its locks: idle since,
///   held, capacity, skills), a JSON array, written once per pass and named
///   by each of its decisions (`routing_decisions.pass_id`; null where a
///   person decided). Without it, neither the idle line nor the skills of
///   the chosen agent at that moment can be known afterwards (agents'
///   status, idle time and skills are kept only as they are now). Once per
///   pass, not per decision: a pass of hundreds of decisions over hundreds
///   of agents would otherwise write megabytes.
/// - `session_events.priority`: the priority a session entered the queue
///   with (on QUEUED) and each change of it (on REPRIORITIZED), so the
///   queue order at any moment can be rebuilt.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RoutingPasses::Table)
                    .col(
                        ColumnDef::new(RoutingPasses::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(RoutingPasses::Agents).text().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(RoutingDecisions::Table)
                    .add_column(
                        ColumnDef::new(RoutingDecisions::PassId)
                            .big_integer()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(SessionEvents::Table)
                    .add_column(
                        ColumnDef::new(SessionEvents::Priority)
                            .small_integer()
                            .null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(SessionEvents::Table)
                    .drop_column(SessionEvents::Priority)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(RoutingDecisions::Table)
                    .drop_column(RoutingDecisions::PassId)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(RoutingPasses::Table).to_owned())
            .await
    }
}
