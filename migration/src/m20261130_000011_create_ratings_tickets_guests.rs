use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ChatSessions {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum SessionRatings {
    Table,
    SessionId,
    Score,
    Comment,
    AgentId,
    SessionEndedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum SessionTickets {
    Table,
    SessionId,
    ClaimId,
    ClaimedUntil,
    Attempts,
    LastError,
    ExternalId,
    Url,
    CreatedAt,
}

#[derive(DeriveIden)]
enum GuestChallenges {
    Table,
    Nonce,
    ExpiresAt,
}

const RATINGS_BY_PERIOD: &str = "ix_session_ratings_ended_agent";
const CHALLENGES_BY_EXPIRY: &str = "ix_guest_challenges_expires_at";

/// Ratings, tickets and guest challenges.
///
/// - A rating is keyed by its session, so a second one is refused by the
///   key itself, however many arrive at once and on however many processes.
///   It copies the session's end time: the stats read one table by period.
/// - A ticket row is both the claim on creating the ticket and its result:
///   the process that holds an unexpired claim calls the ticket system, the
///   others wait for it; a claim whose holder died runs out and may be taken.
/// - A guest challenge's nonce is stored once solved, so one solution buys
///   one token; rows are dropped once the challenge would have expired.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SessionRatings::Table)
                    .col(
                        ColumnDef::new(SessionRatings::SessionId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(SessionRatings::Score)
                            .small_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(SessionRatings::Comment).text())
                    .col(ColumnDef::new(SessionRatings::AgentId).string())
                    .col(
                        ColumnDef::new(SessionRatings::SessionEndedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SessionRatings::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(SessionRatings::Table, SessionRatings::SessionId)
                            .to(ChatSessions::Table, ChatSessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(RATINGS_BY_PERIOD)
                    .table(SessionRatings::Table)
                    .col(SessionRatings::SessionEndedAt)
                    .col(SessionRatings::AgentId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SessionTickets::Table)
                    .col(
                        ColumnDef::new(SessionTickets::SessionId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(SessionTickets::ClaimId).uuid())
                    .col(ColumnDef::new(SessionTickets::ClaimedUntil).timestamp_with_time_zone())
                    .col(
                        ColumnDef::new(SessionTickets::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ColumnDef::new(SessionTickets::LastError).text())
                    .col(ColumnDef::new(SessionTickets::ExternalId).text())
                    .col(ColumnDef::new(SessionTickets::Url).text())
                    .col(ColumnDef::new(SessionTickets::CreatedAt).timestamp_with_time_zone())
                    .foreign_key(
                        ForeignKey::create()
                            .from(SessionTickets::Table, SessionTickets::SessionId)
                            .to(ChatSessions::Table, ChatSessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(GuestChallenges::Table)
                    .col(
                        ColumnDef::new(GuestChallenges::Nonce)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(GuestChallenges::ExpiresAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(CHALLENGES_BY_EXPIRY)
                    .table(GuestChallenges::Table)
                    .col(GuestChallenges::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            GuestChallenges::Table.into_iden(),
            SessionTickets::Table.into_iden(),
            SessionRatings::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
