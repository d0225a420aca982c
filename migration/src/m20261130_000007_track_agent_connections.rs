use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Agents {
    Table,
    Id,
    LastSeenAt,
}

#[derive(DeriveIden)]
enum AgentConnections {
    Table,
    ProcessId,
    AgentId,
    Connections,
    RefreshedAt,
}

/// Agent presence across processes: each process keeps a row per agent it
/// holds WebSockets for, refreshed by its heartbeat, and the agent's
/// `last_seen_at` says when their last connection closed. Rows a process
/// stopped refreshing stop counting, so a crash cannot leave agents online.
///
/// Agents that exist already count as seen now: nothing recorded their
/// connections before, and they must not look gone since they were created
/// (AWAY at once, their chats sent back to the queue) the moment this runs.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Agents::Table)
                    .add_column(ColumnDef::new(Agents::LastSeenAt).timestamp_with_time_zone())
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::update()
                    .table(Agents::Table)
                    .value(Agents::LastSeenAt, chrono::Utc::now())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AgentConnections::Table)
                    .col(
                        ColumnDef::new(AgentConnections::ProcessId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AgentConnections::AgentId)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AgentConnections::Connections)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AgentConnections::RefreshedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(AgentConnections::ProcessId)
                            .col(AgentConnections::AgentId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(AgentConnections::Table, AgentConnections::AgentId)
                            .to(Agents::Table, Agents::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Presence is read per agent; the sweep's look for stale rows reads
        // the whole table, which holds one row per connected agent and process.
        manager
            .create_index(
                Index::create()
                    .name("idx_agent_connections_agent")
                    .table(AgentConnections::Table)
                    .col(AgentConnections::AgentId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AgentConnections::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Agents::Table)
                    .drop_column(Agents::LastSeenAt)
                    .to_owned(),
            )
            .await
    }
}
