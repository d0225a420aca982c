//! The queue: WAITING and OFFERED sessions, their order and counts, and
//! offers that lapse.

use chrono::{DateTime, Utc};
use entity::chat_session::{self, Column};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::all_to_domain;
use crate::domain::{ChatSession, SessionStatus};

/// The latest queue time of any session in the queue: a new arrival must
/// queue after it.
pub async fn latest_queued_at<C: ConnectionTrait>(db: &C) -> Result<Option<DateTime<Utc>>, DbErr> {
    chat_session::Entity::find()
        .select_only()
        .column_as(Column::QueuedAt.max(), "latest")
        .filter(Column::Status.is_in([
            SessionStatus::Waiting.as_str(),
            SessionStatus::Offered.as_str(),
        ]))
        .into_tuple::<Option<DateTime<Utc>>>()
        .one(db)
        .await
        .map(Option::flatten)
}

/// WAITING sessions, locked, in id order (not queue order).
pub async fn lock_waiting<C: ConnectionTrait>(txn: &C) -> Result<Vec<ChatSession>, DbErr> {
    all_to_domain(
        chat_session::Entity::find()
            .filter(Column::Status.eq(SessionStatus::Waiting.as_str()))
            // Locked in id order, as every transaction that holds several
            // session rows takes them; the matcher sorts by queue order.
            .order_by_asc(Column::Id)
            .lock_exclusive()
            .all(txn)
            .await?,
    )
}

/// Sessions currently offered to the agent.
pub async fn offered_to<C: ConnectionTrait>(
    db: &C,
    agent_id: &str,
) -> Result<Vec<ChatSession>, DbErr> {
    all_to_domain(
        chat_session::Entity::find()
            .filter(Column::Status.eq(SessionStatus::Offered.as_str()))
            .filter(Column::AgentId.eq(agent_id))
            // The caller locks them one by one: in id order, like everyone.
            .order_by_asc(Column::Id)
            .all(db)
            .await?,
    )
}

/// Offers whose deadline has passed.
pub async fn expired_offers<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
) -> Result<Vec<ChatSession>, DbErr> {
    all_to_domain(
        chat_session::Entity::find()
            .filter(Column::Status.eq(SessionStatus::Offered.as_str()))
            .filter(Column::OfferExpiresAt.lte(now))
            .order_by_asc(Column::OfferExpiresAt)
            .limit(100)
            .all(db)
            .await?,
    )
}

/// WAITING and OFFERED sessions in queue order: by priority, then by when
/// they entered the queue, ties broken by id so every reader sees the same
/// order (the matcher's, [`crate::matching::queue_key`]).
pub async fn queue<C: ConnectionTrait>(db: &C) -> Result<Vec<ChatSession>, DbErr> {
    all_to_domain(
        chat_session::Entity::find()
            .filter(Column::Status.is_in([
                SessionStatus::Waiting.as_str(),
                SessionStatus::Offered.as_str(),
            ]))
            .order_by_desc(Column::Priority)
            .order_by_asc(Column::QueuedAt)
            .order_by_asc(Column::Id)
            .all(db)
            .await?,
    )
}

/// 1-based place among WAITING sessions, in queue order.
pub async fn queue_position<C: ConnectionTrait>(db: &C, s: &ChatSession) -> Result<i64, DbErr> {
    let rank = s.priority.rank();
    let ahead = chat_session::Entity::find()
        .filter(Column::Status.eq(SessionStatus::Waiting.as_str()))
        .filter(
            Condition::any()
                .add(Column::Priority.gt(rank))
                .add(
                    Condition::all()
                        .add(Column::Priority.eq(rank))
                        .add(Column::QueuedAt.lt(s.queued_at)),
                )
                .add(
                    Condition::all()
                        .add(Column::Priority.eq(rank))
                        .add(Column::QueuedAt.eq(s.queued_at))
                        .add(Column::Id.lt(s.id)),
                ),
        )
        .count(db)
        .await?;
    Ok(i64::try_from(ahead).unwrap_or(i64::MAX).saturating_add(1))
}

pub async fn count_by_status<C: ConnectionTrait>(db: &C) -> Result<Vec<(String, i64)>, DbErr> {
    chat_session::Entity::find()
        .select_only()
        .column(Column::Status)
        .column_as(Column::Id.count(), "n")
        .filter(Column::Status.ne(SessionStatus::Ended.as_str()))
        .group_by(Column::Status)
        .into_tuple::<(String, i64)>()
        .all(db)
        .await
}

pub async fn oldest_waiting_since<C: ConnectionTrait>(
    db: &C,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    Ok(chat_session::Entity::find()
        .filter(Column::Status.eq(SessionStatus::Waiting.as_str()))
        .order_by_asc(Column::QueuedAt)
        .one(db)
        .await?
        .map(|m| m.queued_at))
}
