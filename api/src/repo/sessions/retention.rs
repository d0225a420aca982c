//! Retention: ended sessions are deleted after a while, with their
//! messages, history and routing decisions.

use chrono::{DateTime, Utc};
use entity::chat_session::{self, Column};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::domain::SessionStatus;
use crate::repo::{decisions, history, messages, notes};

/// What one purge batch removed.
#[derive(Debug, Default)]
pub struct Purged {
    pub sessions: u64,
    /// The store keys of their files, to remove once the rows are gone.
    pub files: Vec<String>,
}

/// Deletes up to `batch` sessions that ended before `cutoff`, with their
/// messages and history, in one short transaction; answers how many went
/// and which stored files were theirs.
pub async fn purge_ended_before<C: ConnectionTrait>(
    db: &C,
    cutoff: DateTime<Utc>,
    batch: u64,
) -> Result<Purged, DbErr> {
    let ids: Vec<Uuid> = chat_session::Entity::find()
        .select_only()
        .column(Column::Id)
        .filter(Column::Status.eq(SessionStatus::Ended.as_str()))
        .filter(Column::EndedAt.lt(cutoff))
        .limit(batch)
        .into_tuple()
        .all(db)
        .await?;
    if ids.is_empty() {
        return Ok(Purged::default());
    }
    let files = messages::file_keys_for_sessions(db, &ids).await?;
    // Children first: SQLite enforces the cascade only when told to, and
    // explicit deletes keep each statement's work visible and bounded.
    messages::delete_for_sessions(db, &ids).await?;
    history::delete_for_sessions(db, &ids).await?;
    decisions::delete_for_sessions(db, &ids).await?;
    crate::repo::ratings::delete_for_sessions(db, &ids).await?;
    crate::repo::tickets::delete_for_sessions(db, &ids).await?;
    notes::delete_for_sessions(db, &ids).await?;
    crate::repo::search_documents::delete_for_sessions(db, &ids).await?;
    let res = chat_session::Entity::delete_many()
        .filter(Column::Id.is_in(ids))
        .exec(db)
        .await?;
    Ok(Purged {
        sessions: res.rows_affected,
        files,
    })
}
