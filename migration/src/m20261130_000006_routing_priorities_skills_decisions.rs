use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ChatSessions {
    Table,
    Priority,
    RequiredSkills,
    Status,
    QueuedAt,
}

#[derive(DeriveIden)]
enum Agents {
    Table,
    Skills,
}

#[derive(DeriveIden)]
enum RoutingDecisions {
    Table,
    Id,
    SessionId,
    AgentId,
    Kind,
    Priority,
    QueuedAt,
    AgentIdleSince,
    AgentHeld,
    AgentCapacity,
    Candidates,
    RequiredSkills,
    SkillsRelaxed,
    At,
}

const QUEUE_ORDER: &str = "ix_chat_sessions_queue_order";

/// Priorities and skills route sessions; every routing decision is kept,
/// with what the rule saw, so that an audit can replay them.
///
/// Priority is a small integer (LOW 0 … URGENT 3) so that the queue sorts
/// on it in SQL; skills are stored as their comma-joined names (each
/// `[a-z0-9_-]`, so the comma never occurs inside one).
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ChatSessions::Table)
                    .add_column(
                        ColumnDef::new(ChatSessions::Priority)
                            .small_integer()
                            .not_null()
                            .default(1),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ChatSessions::Table)
                    .add_column(
                        ColumnDef::new(ChatSessions::RequiredSkills)
                            .text()
                            .not_null()
                            .default(""),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Agents::Table)
                    .add_column(ColumnDef::new(Agents::Skills).text().not_null().default(""))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(QUEUE_ORDER)
                    .table(ChatSessions::Table)
                    .col(ChatSessions::Status)
                    .col(ChatSessions::Priority)
                    .col(ChatSessions::QueuedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RoutingDecisions::Table)
                    .col(
                        ColumnDef::new(RoutingDecisions::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(RoutingDecisions::SessionId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RoutingDecisions::AgentId)
                            .string()
                            .not_null(),
                    )
                    .col(ColumnDef::new(RoutingDecisions::Kind).string().not_null())
                    .col(
                        ColumnDef::new(RoutingDecisions::Priority)
                            .small_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RoutingDecisions::QueuedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RoutingDecisions::AgentIdleSince)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(RoutingDecisions::AgentHeld)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RoutingDecisions::AgentCapacity)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RoutingDecisions::Candidates)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RoutingDecisions::RequiredSkills)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RoutingDecisions::SkillsRelaxed)
                            .boolean()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RoutingDecisions::At)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_routing_decisions_at")
                    .table(RoutingDecisions::Table)
                    .col(RoutingDecisions::At)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_routing_decisions_session")
                    .table(RoutingDecisions::Table)
                    .col(RoutingDecisions::SessionId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RoutingDecisions::Table).to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name(QUEUE_ORDER)
                    .table(ChatSessions::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Agents::Table)
                    .drop_column(Agents::Skills)
                    .to_owned(),
            )
            .await?;
        for column in [ChatSessions::RequiredSkills, ChatSessions::Priority] {
            manager
                .alter_table(
                    Table::alter()
                        .table(ChatSessions::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
