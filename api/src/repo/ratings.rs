//! Ratings: one per session (its key), and their figures by period.

use chrono::{DateTime, Utc};
use entity::session_rating::{self, Column};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect, Set};
use uuid::Uuid;

use crate::domain::Rating;

/// Stores the rating unless the session has one; false if it had. The key
/// decides, so concurrent ratings of one session store exactly one.
pub async fn insert_once<C: ConnectionTrait>(
    db: &C,
    session_id: Uuid,
    rating: &Rating,
    session_ended_at: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let stored = session_rating::Entity::insert(session_rating::ActiveModel {
        session_id: Set(session_id),
        score: Set(rating.score as i16),
        comment: Set(rating.comment.clone()),
        agent_id: Set(rating.agent_id.clone()),
        session_ended_at: Set(session_ended_at),
        created_at: Set(rating.created_at),
    })
    .on_conflict(
        OnConflict::column(Column::SessionId)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(stored == 1)
}

pub async fn find<C: ConnectionTrait>(db: &C, session_id: Uuid) -> Result<Option<Rating>, DbErr> {
    Ok(session_rating::Entity::find_by_id(session_id)
        .one(db)
        .await?
        .map(|m| Rating {
            score: i32::from(m.score),
            comment: m.comment,
            agent_id: m.agent_id,
            created_at: m.created_at,
        }))
}

/// How many ratings gave each score, over sessions ended in [from, to),
/// of one agent or of all.
pub async fn score_counts<C: ConnectionTrait>(
    db: &C,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    agent_id: Option<&str>,
) -> Result<Vec<(i32, u64)>, DbErr> {
    let mut q = session_rating::Entity::find()
        .select_only()
        .column(Column::Score)
        .column_as(Column::SessionId.count(), "n")
        .filter(Column::SessionEndedAt.gte(from))
        .filter(Column::SessionEndedAt.lt(to))
        .group_by(Column::Score);
    if let Some(agent) = agent_id {
        q = q.filter(Column::AgentId.eq(agent));
    }
    let rows: Vec<(i16, i64)> = q.into_tuple().all(db).await?;
    Ok(rows
        .into_iter()
        .map(|(score, n)| (i32::from(score), n.max(0) as u64))
        .collect())
}

/// Deletes the ratings of these sessions (retention, before the sessions go).
pub async fn delete_for_sessions<C: ConnectionTrait>(
    db: &C,
    session_ids: &[Uuid],
) -> Result<(), DbErr> {
    session_rating::Entity::delete_many()
        .filter(Column::SessionId.is_in(session_ids.iter().copied()))
        .exec(db)
        .await?;
    Ok(())
}
