//! Agent presence: each process's live connections per agent (its rows,
//! refreshed by its heartbeat) and when each agent's last connection closed.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::agent_connection::{self, Column};
use entity::{agent, chat_session};
use sea_orm::sea_query::{Expr, OnConflict, Query, SelectStatement};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use uuid::Uuid;

use crate::domain::{AgentPresence, AgentStatus, ConnectionRow, SessionStatus};

/// Records that this process holds `connections` (> 0) live connections
/// of the agent, as of `now`.
pub async fn put<C: ConnectionTrait>(
    db: &C,
    process: Uuid,
    agent_id: &str,
    connections: i32,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    agent_connection::Entity::insert(agent_connection::ActiveModel {
        process_id: Set(process),
        agent_id: Set(agent_id.to_owned()),
        connections: Set(connections),
        refreshed_at: Set(now),
    })
    .on_conflict(
        OnConflict::columns([Column::ProcessId, Column::AgentId])
            .update_columns([Column::Connections, Column::RefreshedAt])
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Forgets this process's connections of the agent; whether it had any.
pub async fn remove<C: ConnectionTrait>(
    db: &C,
    process: Uuid,
    agent_id: &str,
) -> Result<bool, DbErr> {
    let gone = agent_connection::Entity::delete_many()
        .filter(Column::ProcessId.eq(process))
        .filter(Column::AgentId.eq(agent_id))
        .exec(db)
        .await?;
    Ok(gone.rows_affected > 0)
}

/// The heartbeat: every row of this process vouched for at `now`, in one
/// statement. How many rows there were.
pub async fn refresh_process<C: ConnectionTrait>(
    db: &C,
    process: Uuid,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    Ok(agent_connection::Entity::update_many()
        .col_expr(Column::RefreshedAt, Expr::value(now))
        .filter(Column::ProcessId.eq(process))
        .exec(db)
        .await?
        .rows_affected)
}

/// The agents this process has rows for.
pub async fn agents_of_process<C: ConnectionTrait>(
    db: &C,
    process: Uuid,
) -> Result<Vec<String>, DbErr> {
    agent_connection::Entity::find()
        .select_only()
        .column(Column::AgentId)
        .filter(Column::ProcessId.eq(process))
        .into_tuple()
        .all(db)
        .await
}

/// Presence of these agents (the ones with rows on no process and no
/// closed connection are left out: offline, never seen). Rows refreshed
/// before `live_since` no longer count; see [`AgentPresence::from_rows`].
pub async fn presence_of<C: ConnectionTrait>(
    db: &C,
    agent_ids: &[&str],
    live_since: DateTime<Utc>,
) -> Result<HashMap<String, AgentPresence>, DbErr> {
    if agent_ids.is_empty() {
        return Ok(HashMap::new());
    }
    // Rows first: a connection's last close deletes its row and stamps the
    // agent in one transaction, and two reads outside one see either both
    // or the row still there (online), never neither (offline, never seen).
    let mut rows = rows_of(db, agent_ids).await?;
    let closed: Vec<(String, Option<DateTime<Utc>>)> = agent::Entity::find()
        .select_only()
        .column(agent::Column::Id)
        .column(agent::Column::LastSeenAt)
        .filter(agent::Column::Id.is_in(agent_ids.iter().copied()))
        .into_tuple()
        .all(db)
        .await?;
    Ok(closed
        .into_iter()
        .map(|(id, closed_at)| {
            let of_agent = rows.remove(&id).unwrap_or_default();
            let presence = AgentPresence::from_rows(&of_agent, closed_at, live_since);
            (id, presence)
        })
        .collect())
}

/// One agent's presence and since when they are known (their row's
/// creation), read in `txn` (which should hold the agent's row lock).
pub async fn presence_and_first_known<C: ConnectionTrait>(
    txn: &C,
    agent_id: &str,
    live_since: DateTime<Utc>,
) -> Result<Option<(AgentPresence, DateTime<Utc>)>, DbErr> {
    // Rows first, as in `presence_of`.
    let rows = rows_of(txn, &[agent_id])
        .await?
        .remove(agent_id)
        .unwrap_or_default();
    let Some(m) = agent::Entity::find_by_id(agent_id).one(txn).await? else {
        return Ok(None);
    };
    let presence = AgentPresence::from_rows(&rows, m.last_seen_at, live_since);
    Ok(Some((presence, m.created_at)))
}

async fn rows_of<C: ConnectionTrait>(
    db: &C,
    agent_ids: &[&str],
) -> Result<HashMap<String, Vec<ConnectionRow>>, DbErr> {
    let mut out: HashMap<String, Vec<ConnectionRow>> = HashMap::new();
    for m in agent_connection::Entity::find()
        .filter(Column::AgentId.is_in(agent_ids.iter().copied()))
        .all(db)
        .await?
    {
        out.entry(m.agent_id).or_default().push(ConnectionRow {
            connections: m.connections,
            refreshed_at: m.refreshed_at,
        });
    }
    Ok(out)
}

/// Records that the agent's last connection closed at `at` (never moving
/// the time back). The agent row must be locked.
pub async fn record_closed<C: ConnectionTrait>(
    txn: &C,
    agent_id: &str,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    agent::Entity::update_many()
        .col_expr(agent::Column::LastSeenAt, Expr::value(at))
        .filter(agent::Column::Id.eq(agent_id))
        .filter(
            Condition::any()
                .add(agent::Column::LastSeenAt.is_null())
                .add(agent::Column::LastSeenAt.lt(at)),
        )
        .exec(txn)
        .await?;
    Ok(())
}

/// Agents with rows not refreshed since `live_since`: their process is
/// presumed gone.
pub async fn with_stale_rows<C: ConnectionTrait>(
    db: &C,
    live_since: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<String>, DbErr> {
    agent_connection::Entity::find()
        .select_only()
        .column(Column::AgentId)
        .distinct()
        .filter(Column::RefreshedAt.lt(live_since))
        .order_by_asc(Column::AgentId)
        .limit(limit)
        .into_tuple()
        .all(db)
        .await
}

/// Deletes the agent's rows not refreshed since `live_since`; the latest
/// refresh among them, if there were any. The agent row must be locked.
pub async fn take_stale_rows<C: ConnectionTrait>(
    txn: &C,
    agent_id: &str,
    live_since: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    let stale = || {
        Condition::all()
            .add(Column::AgentId.eq(agent_id))
            .add(Column::RefreshedAt.lt(live_since))
    };
    let latest: Option<DateTime<Utc>> = agent_connection::Entity::find()
        .filter(stale())
        .order_by_desc(Column::RefreshedAt)
        .one(txn)
        .await?
        .map(|m| m.refreshed_at);
    if latest.is_some() {
        agent_connection::Entity::delete_many()
            .filter(stale())
            .exec(txn)
            .await?;
    }
    Ok(latest)
}

/// `SELECT agent_id FROM agent_connections` of rows that count.
fn live_rows(live_since: DateTime<Utc>) -> SelectStatement {
    Query::select()
        .column(Column::AgentId)
        .from(agent_connection::Entity)
        .and_where(Column::RefreshedAt.gte(live_since))
        .and_where(Column::Connections.gt(0))
        .to_owned()
}

/// Agents without a live connection whose last one ended (or, never
/// connected, who were first known) at `cutoff` or before.
fn offline_since(live_since: DateTime<Utc>, cutoff: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(agent::Column::Id.not_in_subquery(live_rows(live_since)))
        .add(
            Condition::any()
                .add(agent::Column::LastSeenAt.lte(cutoff))
                .add(
                    Condition::all()
                        .add(agent::Column::LastSeenAt.is_null())
                        .add(agent::Column::CreatedAt.lte(cutoff)),
                ),
        )
}

/// AWAY agents with a live connection again: they go back to AVAILABLE.
pub async fn away_but_connected<C: ConnectionTrait>(
    db: &C,
    live_since: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<String>, DbErr> {
    agent::Entity::find()
        .select_only()
        .column(agent::Column::Id)
        .filter(agent::Column::Status.eq(AgentStatus::Away.as_str()))
        .filter(agent::Column::Id.in_subquery(live_rows(live_since)))
        .limit(limit)
        .into_tuple()
        .all(db)
        .await
}

/// AVAILABLE agents offline since `cutoff` or before.
pub async fn available_offline_since<C: ConnectionTrait>(
    db: &C,
    live_since: DateTime<Utc>,
    cutoff: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<String>, DbErr> {
    agent::Entity::find()
        .select_only()
        .column(agent::Column::Id)
        .filter(agent::Column::Status.eq(AgentStatus::Available.as_str()))
        .filter(offline_since(live_since, cutoff))
        .limit(limit)
        .into_tuple()
        .all(db)
        .await
}

/// Agents holding sessions (OFFERED or ACTIVE) offline since `cutoff` or
/// before.
pub async fn holding_offline_since<C: ConnectionTrait>(
    db: &C,
    live_since: DateTime<Utc>,
    cutoff: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<String>, DbErr> {
    let holders = Query::select()
        .column(chat_session::Column::AgentId)
        .from(chat_session::Entity)
        .and_where(chat_session::Column::Status.is_in([
            SessionStatus::Offered.as_str(),
            SessionStatus::Active.as_str(),
        ]))
        .and_where(chat_session::Column::AgentId.is_not_null())
        .to_owned();
    agent::Entity::find()
        .select_only()
        .column(agent::Column::Id)
        .filter(agent::Column::Id.in_subquery(holders))
        .filter(offline_since(live_since, cutoff))
        .limit(limit)
        .into_tuple()
        .all(db)
        .await
}

/// The ACTIVE sessions the agent holds, in id order (the order session
/// rows are locked in).
pub async fn active_sessions_of<C: ConnectionTrait>(
    db: &C,
    agent_id: &str,
) -> Result<Vec<Uuid>, DbErr> {
    chat_session::Entity::find()
        .select_only()
        .column(chat_session::Column::Id)
        .filter(chat_session::Column::AgentId.eq(agent_id))
        .filter(chat_session::Column::Status.eq(SessionStatus::Active.as_str()))
        .order_by_asc(chat_session::Column::Id)
        .into_tuple()
        .all(db)
        .await
}
