use std::collections::HashSet;

use chrono::{DateTime, Utc};
use entity::session_event;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, NotSet, QueryFilter, QueryOrder, Set,
};
use uuid::Uuid;

use super::parse;
use crate::domain::Priority;
pub use crate::domain::{HistoryEntry, HistoryKind};

pub async fn record<C: ConnectionTrait>(
    db: &C,
    session_id: Uuid,
    kind: HistoryKind,
    agent_id: Option<&str>,
    actor_id: Option<&str>,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    session_event::Entity::insert(session_event::ActiveModel {
        id: NotSet,
        session_id: Set(session_id),
        kind: Set(kind.as_str().to_owned()),
        agent_id: Set(agent_id.map(str::to_owned)),
        actor_id: Set(actor_id.map(str::to_owned)),
        at: Set(at),
        priority: Set(None),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Records that the session was moved within the queue to `priority`.
pub async fn record_priority<C: ConnectionTrait>(
    db: &C,
    session_id: Uuid,
    priority: Priority,
    actor_id: &str,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    session_event::Entity::insert(session_event::ActiveModel {
        id: NotSet,
        session_id: Set(session_id),
        kind: Set(HistoryKind::Reprioritized.as_str().to_owned()),
        agent_id: Set(None),
        actor_id: Set(Some(actor_id.to_owned())),
        at: Set(at),
        priority: Set(Some(priority.rank())),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// One history entry of [`record_many`].
pub struct NewEntry<'a> {
    pub session_id: Uuid,
    pub kind: HistoryKind,
    pub agent_id: Option<&'a str>,
    pub actor_id: Option<&'a str>,
    pub at: DateTime<Utc>,
    /// On QUEUED: the priority the session enters with.
    pub priority: Option<Priority>,
}

/// Records many entries in one statement.
pub async fn record_many<C: ConnectionTrait>(
    db: &C,
    entries: &[NewEntry<'_>],
) -> Result<(), DbErr> {
    if entries.is_empty() {
        return Ok(());
    }
    session_event::Entity::insert_many(entries.iter().map(|e| session_event::ActiveModel {
        id: NotSet,
        session_id: Set(e.session_id),
        kind: Set(e.kind.as_str().to_owned()),
        agent_id: Set(e.agent_id.map(str::to_owned)),
        actor_id: Set(e.actor_id.map(str::to_owned)),
        at: Set(e.at),
        priority: Set(e.priority.map(Priority::rank)),
    }))
    .exec_without_returning(db)
    .await?;
    Ok(())
}

pub async fn for_session<C: ConnectionTrait>(
    db: &C,
    session_id: Uuid,
) -> Result<Vec<HistoryEntry>, DbErr> {
    session_event::Entity::find()
        .filter(session_event::Column::SessionId.eq(session_id))
        .order_by_asc(session_event::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(|m| {
            Ok(HistoryEntry {
                kind: parse(&m.kind)?,
                agent_id: m.agent_id,
                actor_id: m.actor_id,
                at: m.at,
            })
        })
        .collect()
}

/// (session, agent) pairs where the agent declined the session.
pub async fn declines<C: ConnectionTrait>(
    db: &C,
    session_ids: &[Uuid],
) -> Result<HashSet<(Uuid, String)>, DbErr> {
    if session_ids.is_empty() {
        return Ok(HashSet::new());
    }
    Ok(session_event::Entity::find()
        .filter(session_event::Column::SessionId.is_in(session_ids.iter().copied()))
        .filter(session_event::Column::Kind.eq(HistoryKind::Declined.as_str()))
        .all(db)
        .await?
        .into_iter()
        .filter_map(|m| m.agent_id.map(|a| (m.session_id, a)))
        .collect())
}

/// Who declined which of these sessions, and when.
pub async fn declines_with_times<C: ConnectionTrait>(
    db: &C,
    session_ids: &[Uuid],
) -> Result<Vec<(Uuid, String, DateTime<Utc>)>, DbErr> {
    if session_ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(session_event::Entity::find()
        .filter(session_event::Column::SessionId.is_in(session_ids.iter().copied()))
        .filter(session_event::Column::Kind.eq(HistoryKind::Declined.as_str()))
        .all(db)
        .await?
        .into_iter()
        .filter_map(|m| m.agent_id.map(|a| (m.session_id, a, m.at)))
        .collect())
}

/// Deletes every history entry of these sessions (retention, before the
/// sessions themselves go).
pub async fn delete_for_sessions<C: ConnectionTrait>(
    db: &C,
    session_ids: &[Uuid],
) -> Result<(), DbErr> {
    session_event::Entity::delete_many()
        .filter(session_event::Column::SessionId.is_in(session_ids.iter().copied()))
        .exec(db)
        .await?;
    Ok(())
}

/// Whether `agent_id` ever held the session: accepted it, was given it or
/// had it transferred to them (an offer alone is not holding it).
pub async fn ever_held<C: ConnectionTrait>(
    db: &C,
    session_id: Uuid,
    agent_id: &str,
) -> Result<bool, DbErr> {
    let held = [
        HistoryKind::Accepted,
        HistoryKind::Assigned,
        HistoryKind::Transferred,
    ];
    Ok(session_event::Entity::find()
        .filter(session_event::Column::SessionId.eq(session_id))
        .filter(session_event::Column::AgentId.eq(agent_id))
        .filter(session_event::Column::Kind.is_in(held.map(HistoryKind::as_str)))
        .one(db)
        .await?
        .is_some())
}
