use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RoutingDecisions {
    Table,
    PassAgents,
}

#[derive(DeriveIden)]
enum SessionEvents {
    Table,
    Priority,
}

/// What the fairness audit needs and the record lacked:
///
/// - `routing_decisions.pass_agents`: the agents a matcher pass chose from
///   (AVAILABLE with a free slot, as read under its locks: idle since,
///   held, capacity, skills), a JSON array, the same on every decision of
///   the pass; `[]` on decisions people made. Without it, neither the idle
///   line nor the skills of the chosen agent at that moment can be known
///   afterwards (agents' status, idle time and skills are kept only as
///   they are now).
/// - `session_events.priority`: the priority a session entered the queue
///   with (on QUEUED) and each change of it (on REPRIORITIZED), so the
///   queue order at any moment can be rebuilt.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(RoutingDecisions::Table)
                    .add_column(
                        ColumnDef::new(RoutingDecisions::PassAgents)
                            .text()
                            .not_null()
                            .default("[]"),
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
                    .drop_column(RoutingDecisions::PassAgents)
                    .to_owned(),
            )
            .await
    }
}
