use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{agent, chat_session};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use sea_orm::{DatabaseBackend, Order};

use super::parse;
use crate::domain::{Agent, AgentStatus, Skills};

const HELD: [&str; 2] = ["OFFERED", "ACTIVE"];

fn to_domain(m: agent::Model, held: i64) -> Result<Agent, DbErr> {
    Ok(Agent {
        status: parse(&m.status)?,
        id: m.id,
        name: m.name,
        capacity: m.capacity,
        active_session_count: i32::try_from(held).unwrap_or(i32::MAX),
        idle_since: m.idle_since,
        skills: Skills::from_stored(&m.skills),
    })
}

/// Creates the agent on first sight; a concurrent creator wins silently.
pub async fn insert_if_absent<C: ConnectionTrait>(
    db: &C,
    id: &str,
    name: &str,
    capacity: i32,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let row = agent::ActiveModel {
        id: Set(id.to_owned()),
        name: Set(name.to_owned()),
        status: Set(AgentStatus::Offline.as_str().to_owned()),
        capacity: Set(capacity),
        idle_since: Set(None),
        last_seen_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        skills: Set(String::new()),
    };
    agent::Entity::insert(row)
        .on_conflict(
            OnConflict::column(agent::Column::Id)
                .do_nothing()
                .to_owned(),
        )
        .do_nothing()
        .exec(db)
        .await?;
    Ok(())
}

/// OFFERED + ACTIVE sessions the agent holds.
pub async fn held_count<C: ConnectionTrait>(db: &C, agent_id: &str) -> Result<i64, DbErr> {
    let n = chat_session::Entity::find()
        .filter(chat_session::Column::AgentId.eq(agent_id))
        .filter(chat_session::Column::Status.is_in(HELD))
        .count(db)
        .await?;
    Ok(i64::try_from(n).unwrap_or(i64::MAX))
}

pub async fn find<C: ConnectionTrait>(db: &C, id: &str) -> Result<Option<Agent>, DbErr> {
    match agent::Entity::find_by_id(id).one(db).await? {
        Some(m) => {
            let held = held_count(db, &m.id).await?;
            Ok(Some(to_domain(m, held)?))
        }
        None => Ok(None),
    }
}

/// Reads the agent row and locks it until the transaction ends. Everything
/// that changes what an agent holds or their status locks this row first, so
/// capacity checks cannot race, across processes too.
pub async fn lock<C: ConnectionTrait>(txn: &C, id: &str) -> Result<Option<Agent>, DbErr> {
    match agent::Entity::find_by_id(id)
        .lock_exclusive()
        .one(txn)
        .await?
    {
        Some(m) => {
            let held = held_count(txn, &m.id).await?;
            Ok(Some(to_domain(m, held)?))
        }
        None => Ok(None),
    }
}

/// Sets status and, when given, idle_since.
pub async fn set_status<C: ConnectionTrait>(
    db: &C,
    id: &str,
    status: AgentStatus,
    idle_since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let mut update = agent::Entity::update_many()
        .col_expr(agent::Column::Status, Expr::value(status.as_str()))
        .col_expr(agent::Column::UpdatedAt, Expr::value(now))
        .filter(agent::Column::Id.eq(id));
    if let Some(at) = idle_since {
        update = update.col_expr(agent::Column::IdleSince, Expr::value(at));
    }
    update.exec(db).await?;
    Ok(())
}

pub async fn set_idle_since<C: ConnectionTrait>(
    db: &C,
    id: &str,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    agent::ActiveModel {
        id: Set(id.to_owned()),
        idle_since: Set(Some(at)),
        updated_at: Set(at),
        ..Default::default()
    }
    .update(db)
    .await?;
    Ok(())
}

/// Sends these agents to the back of the idle line, in one statement.
pub async fn set_idle_since_many<C: ConnectionTrait>(
    db: &C,
    ids: &[&str],
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    agent::Entity::update_many()
        .col_expr(agent::Column::IdleSince, Expr::value(at))
        .col_expr(agent::Column::UpdatedAt, Expr::value(at))
        .filter(agent::Column::Id.is_in(ids.iter().copied()))
        .exec(db)
        .await?;
    Ok(())
}

/// These agents with what they hold, in two queries.
pub async fn find_many<C: ConnectionTrait>(db: &C, ids: &[&str]) -> Result<Vec<Agent>, DbErr> {
    let rows = agent::Entity::find()
        .filter(agent::Column::Id.is_in(ids.iter().copied()))
        .order_by_asc(agent::Column::Id)
        .all(db)
        .await?;
    with_held_counts(db, rows).await
}

pub async fn set_capacity<C: ConnectionTrait>(
    db: &C,
    id: &str,
    capacity: i32,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    agent::ActiveModel {
        id: Set(id.to_owned()),
        capacity: Set(capacity),
        updated_at: Set(now),
        ..Default::default()
    }
    .update(db)
    .await?;
    Ok(())
}

pub async fn set_skills<C: ConnectionTrait>(
    db: &C,
    id: &str,
    skills: &Skills,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    agent::ActiveModel {
        id: Set(id.to_owned()),
        skills: Set(skills.to_stored()),
        updated_at: Set(now),
        ..Default::default()
    }
    .update(db)
    .await?;
    Ok(())
}

/// Locks the given agents in id order (the order every transaction that
/// locks several agents uses, so they cannot deadlock) and returns them.
pub async fn lock_many<C: ConnectionTrait>(txn: &C, ids: &[&str]) -> Result<Vec<Agent>, DbErr> {
    let mut ids: Vec<&str> = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(a) = lock(txn, id).await? {
            out.push(a);
        }
    }
    Ok(out)
}

/// Every AVAILABLE agent, locked, in id order — byte order, the order
/// [`lock_many`] uses; a collation-aware ORDER BY could sort ids such as
/// "amy" and "Zed" the other way round and let two lockers deadlock.
pub async fn lock_available<C: ConnectionTrait>(txn: &C) -> Result<Vec<Agent>, DbErr> {
    let mut query =
        agent::Entity::find().filter(agent::Column::Status.eq(AgentStatus::Available.as_str()));
    query = match txn.get_database_backend() {
        DatabaseBackend::Postgres => {
            query.order_by(Expr::cust(r#""agents"."id" COLLATE "C""#), Order::Asc)
        }
        // SQLite compares text bytewise by default.
        _ => query.order_by_asc(agent::Column::Id),
    };
    let rows = query.lock_exclusive().all(txn).await?;
    with_held_counts(txn, rows).await
}

/// Every agent with what they hold, in two queries whatever their number.
pub async fn list<C: ConnectionTrait>(db: &C) -> Result<Vec<Agent>, DbErr> {
    let rows = agent::Entity::find()
        .order_by_asc(agent::Column::Id)
        .all(db)
        .await?;
    with_held_counts(db, rows).await
}

async fn with_held_counts<C: ConnectionTrait>(
    db: &C,
    rows: Vec<agent::Model>,
) -> Result<Vec<Agent>, DbErr> {
    let held: HashMap<String, i64> = chat_session::Entity::find()
        .select_only()
        .column(chat_session::Column::AgentId)
        .column_as(chat_session::Column::Id.count(), "held")
        .filter(chat_session::Column::Status.is_in(HELD))
        .filter(chat_session::Column::AgentId.is_not_null())
        .group_by(chat_session::Column::AgentId)
        .into_tuple::<(Option<String>, i64)>()
        .all(db)
        .await?
        .into_iter()
        .filter_map(|(id, n)| id.map(|id| (id, n)))
        .collect();
    rows.into_iter()
        .map(|m| {
            let n = held.get(&m.id).copied().unwrap_or(0);
            to_domain(m, n)
        })
        .collect()
}
