//! A session's way through its states: inserted WAITING, offered, made
//! ACTIVE (one or many at once), returned to the queue, ENDED.

use chrono::{DateTime, Utc};
use entity::chat_session::{self, Column};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set,
    TryIntoModel,
};
use uuid::Uuid;

use super::{all_to_domain, find_many, to_domain};
use crate::auth::Role;
use crate::domain::{ChatSession, EndReason, Priority, SessionStatus, Skills};

/// A session about to enter the queue.
pub struct NewWaiting<'a> {
    pub customer_id: &'a str,
    pub subject: Option<String>,
    pub now: DateTime<Utc>,
    pub queued_at: DateTime<Utc>,
    pub priority: Priority,
    pub required_skills: Skills,
    /// The `name` claim of the customer's token, for canned responses.
    pub customer_name: Option<String>,
}

fn waiting_row(new: NewWaiting<'_>) -> chat_session::ActiveModel {
    chat_session::ActiveModel {
        id: Set(Uuid::new_v4()),
        customer_id: Set(new.customer_id.to_owned()),
        subject: Set(new.subject),
        status: Set(SessionStatus::Waiting.as_str().to_owned()),
        agent_id: Set(None),
        created_at: Set(new.now),
        queued_at: Set(new.queued_at),
        assigned_at: Set(None),
        offer_expires_at: Set(None),
        ended_at: Set(None),
        ended_by: Set(None),
        end_reason: Set(None),
        last_seq: Set(0),
        customer_delivered_seq: Set(0),
        customer_read_seq: Set(0),
        agent_delivered_seq: Set(0),
        agent_read_seq: Set(0),
        customer_seen_at: Set(Some(new.now)),
        priority: Set(new.priority.rank()),
        required_skills: Set(new.required_skills.to_stored()),
        customer_name: Set(new.customer_name),
    }
}

/// Inserts WAITING sessions in one statement and returns them.
pub async fn insert_waiting<C: ConnectionTrait>(
    db: &C,
    new: Vec<NewWaiting<'_>>,
) -> Result<Vec<ChatSession>, DbErr> {
    let rows: Vec<chat_session::ActiveModel> = new.into_iter().map(waiting_row).collect();
    let sessions = rows
        .iter()
        .map(|row| row.clone().try_into_model().and_then(to_domain))
        .collect::<Result<Vec<_>, DbErr>>()?;
    if !rows.is_empty() {
        chat_session::Entity::insert_many(rows)
            .exec_without_returning(db)
            .await?;
    }
    Ok(sessions)
}

/// Makes each session ACTIVE with its agent in one statement; the session
/// and agent rows are locked by the caller. Returns the sessions as updated.
pub async fn assign_many<C: ConnectionTrait>(
    txn: &C,
    pairs: &[(Uuid, &str)],
    now: DateTime<Utc>,
) -> Result<Vec<ChatSession>, DbErr> {
    let Some(((first_id, first_agent), rest)) = pairs.split_first() else {
        return Ok(Vec::new());
    };
    let mut agent = Expr::case(Column::Id.eq(*first_id), *first_agent);
    for (id, agent_id) in rest {
        agent = agent.case(Column::Id.eq(*id), *agent_id);
    }
    let ids: Vec<Uuid> = pairs.iter().map(|(id, _)| *id).collect();
    let update = chat_session::Entity::update_many()
        .col_expr(Column::Status, Expr::value(SessionStatus::Active.as_str()))
        .col_expr(
            Column::AgentId,
            agent.finally(Expr::col(Column::AgentId)).into(),
        )
        .col_expr(Column::AssignedAt, Expr::value(now))
        .col_expr(
            Column::OfferExpiresAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(Column::Id.is_in(ids.iter().copied()));
    if txn.support_returning() {
        return all_to_domain(update.exec_with_returning(txn).await?);
    }
    update.exec(txn).await?;
    find_many(txn, &ids).await
}

/// Moves a queued session by priority (its queued_at stays).
pub async fn set_priority<C: ConnectionTrait>(
    txn: &C,
    id: Uuid,
    priority: Priority,
) -> Result<(), DbErr> {
    chat_session::ActiveModel {
        id: Set(id),
        priority: Set(priority.rank()),
        ..Default::default()
    }
    .update(txn)
    .await?;
    Ok(())
}

/// Reserves the session for `agent_id` until `expires_at`.
pub async fn mark_offered<C: ConnectionTrait>(
    txn: &C,
    id: Uuid,
    agent_id: &str,
    expires_at: DateTime<Utc>,
) -> Result<(), DbErr> {
    chat_session::ActiveModel {
        id: Set(id),
        status: Set(SessionStatus::Offered.as_str().to_owned()),
        agent_id: Set(Some(agent_id.to_owned())),
        offer_expires_at: Set(Some(expires_at)),
        ..Default::default()
    }
    .update(txn)
    .await?;
    Ok(())
}

pub async fn mark_active<C: ConnectionTrait>(
    txn: &C,
    id: Uuid,
    agent_id: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    chat_session::ActiveModel {
        id: Set(id),
        status: Set(SessionStatus::Active.as_str().to_owned()),
        agent_id: Set(Some(agent_id.to_owned())),
        assigned_at: Set(Some(now)),
        offer_expires_at: Set(None),
        ..Default::default()
    }
    .update(txn)
    .await?;
    Ok(())
}

/// Back to WAITING with no agent. `queued_at` is untouched: the session
/// keeps its original place in the queue.
pub async fn return_to_queue<C: ConnectionTrait>(txn: &C, id: Uuid) -> Result<(), DbErr> {
    chat_session::ActiveModel {
        id: Set(id),
        status: Set(SessionStatus::Waiting.as_str().to_owned()),
        agent_id: Set(None),
        assigned_at: Set(None),
        offer_expires_at: Set(None),
        ..Default::default()
    }
    .update(txn)
    .await?;
    Ok(())
}

pub async fn mark_ended<C: ConnectionTrait>(
    txn: &C,
    id: Uuid,
    by: Option<Role>,
    reason: EndReason,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    chat_session::ActiveModel {
        id: Set(id),
        status: Set(SessionStatus::Ended.as_str().to_owned()),
        ended_at: Set(Some(now)),
        ended_by: Set(by.map(|r| r.as_claim().to_owned())),
        end_reason: Set(Some(reason.as_str().to_owned())),
        offer_expires_at: Set(None),
        ..Default::default()
    }
    .update(txn)
    .await?;
    Ok(())
}
