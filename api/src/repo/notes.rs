//! Internal notes on sessions.

use chrono::{DateTime, Utc};
use entity::session_note::{self, Column};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, Set};
use uuid::Uuid;

use crate::domain::Note;

fn to_domain(m: session_note::Model) -> Note {
    Note {
        id: m.id,
        session_id: m.session_id,
        author_id: m.author_id,
        body: m.body,
        created_at: m.created_at,
    }
}

pub async fn insert<C: ConnectionTrait>(db: &C, note: &Note) -> Result<(), DbErr> {
    session_note::Entity::insert(session_note::ActiveModel {
        id: Set(note.id),
        session_id: Set(note.session_id),
        author_id: Set(note.author_id.clone()),
        body: Set(note.body.clone()),
        created_at: Set(note.created_at),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

pub async fn find<C: ConnectionTrait>(db: &C, id: Uuid) -> Result<Option<Note>, DbErr> {
    Ok(session_note::Entity::find_by_id(id)
        .one(db)
        .await?
        .map(to_domain))
}

/// The session's notes, oldest first; only those created at or after
/// `since` when given (a feed catching up).
pub async fn for_session<C: ConnectionTrait>(
    db: &C,
    session_id: Uuid,
    since: Option<DateTime<Utc>>,
) -> Result<Vec<Note>, DbErr> {
    let mut q = session_note::Entity::find().filter(Column::SessionId.eq(session_id));
    if let Some(since) = since {
        q = q.filter(Column::CreatedAt.gte(since));
    }
    Ok(q.order_by_asc(Column::CreatedAt)
        .order_by_asc(Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(to_domain)
        .collect())
}

pub async fn delete_for_sessions<C: ConnectionTrait>(db: &C, ids: &[Uuid]) -> Result<(), DbErr> {
    session_note::Entity::delete_many()
        .filter(Column::SessionId.is_in(ids.iter().copied()))
        .exec(db)
        .await?;
    Ok(())
}
