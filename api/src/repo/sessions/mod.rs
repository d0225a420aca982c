use chrono::{DateTime, Utc};
use entity::chat_session::{self, Column};
use sea_orm::sea_query::{Expr, LockType, Order, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, TryIntoModel,
};
use uuid::Uuid;

use super::{json_batch, parse, pg_time, uses_json_batches};
use crate::auth::Role;
use crate::domain::{ChatSession, EndReason, Party, SessionStatus};

fn to_domain(m: chat_session::Model) -> Result<ChatSession, DbErr> {
    Ok(ChatSession {
        id: m.id,
        status: parse(&m.status)?,
        ended_by: m
            .ended_by
            .as_deref()
            .map(|r| Role::from_claim(r).ok_or_else(|| DbErr::Type(format!("unknown role {r:?}"))))
            .transpose()?,
        end_reason: m
            .end_reason
            .as_deref()
            .map(parse::<EndReason>)
            .transpose()?,
        customer_id: m.customer_id,
        subject: m.subject,
        agent_id: m.agent_id,
        created_at: m.created_at,
        queued_at: m.queued_at,
        assigned_at: m.assigned_at,
        offer_expires_at: m.offer_expires_at,
        ended_at: m.ended_at,
        last_seq: m.last_seq,
        customer_delivered_seq: m.customer_delivered_seq,
        customer_read_seq: m.customer_read_seq,
        agent_delivered_seq: m.agent_delivered_seq,
        agent_read_seq: m.agent_read_seq,
        customer_seen_at: m.customer_seen_at,
    })
}

fn all_to_domain(rows: Vec<chat_session::Model>) -> Result<Vec<ChatSession>, DbErr> {
    rows.into_iter().map(to_domain).collect()
}

pub async fn find<C: ConnectionTrait>(db: &C, id: Uuid) -> Result<Option<ChatSession>, DbErr> {
    chat_session::Entity::find_by_id(id)
        .one(db)
        .await?
        .map(to_domain)
        .transpose()
}

/// Reads the session and locks its row until the transaction ends (Postgres;
/// SQLite serializes writers anyway). Message seqs, receipts and status
/// changes of one session are serialized by this lock.
pub async fn lock<C: ConnectionTrait>(txn: &C, id: Uuid) -> Result<Option<ChatSession>, DbErr> {
    chat_session::Entity::find_by_id(id)
        .lock_exclusive()
        .one(txn)
        .await?
        .map(to_domain)
        .transpose()
}

pub async fn find_open_for_customer<C: ConnectionTrait>(
    db: &C,
    customer_id: &str,
) -> Result<Option<ChatSession>, DbErr> {
    chat_session::Entity::find()
        .filter(Column::CustomerId.eq(customer_id))
        .filter(Column::Status.ne(SessionStatus::Ended.as_str()))
        .one(db)
        .await?
        .map(to_domain)
        .transpose()
}

/// A session about to enter the queue.
pub struct NewWaiting<'a> {
    pub customer_id: &'a str,
    pub subject: Option<String>,
    pub now: DateTime<Utc>,
    pub queued_at: DateTime<Utc>,
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

/// The open sessions of these customers.
pub async fn find_open_for_customers<C: ConnectionTrait>(
    db: &C,
    customer_ids: &[&str],
) -> Result<Vec<ChatSession>, DbErr> {
    all_to_domain(
        chat_session::Entity::find()
            .filter(Column::CustomerId.is_in(customer_ids.iter().copied()))
            .filter(Column::Status.ne(SessionStatus::Ended.as_str()))
            .all(db)
            .await?,
    )
}

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

/// The sessions with these ids.
pub async fn find_many<C: ConnectionTrait>(
    db: &C,
    ids: &[Uuid],
) -> Result<Vec<ChatSession>, DbErr> {
    all_to_domain(
        chat_session::Entity::find()
            .filter(Column::Id.is_in(ids.iter().copied()))
            .all(db)
            .await?,
    )
}

/// Makes each session ACTIVE with its agent and takes its next seq (for
/// the join line) in one statement; the rows are locked by the caller.
/// Returns the sessions as updated. One UPDATE per row, as
/// [`allocate_seq`] explains.
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
        .col_expr(Column::LastSeq, Expr::col(Column::LastSeq).add(1))
        .filter(Column::Id.is_in(ids.iter().copied()));
    if txn.support_returning() {
        return all_to_domain(update.exec_with_returning(txn).await?);
    }
    update.exec(txn).await?;
    find_many(txn, &ids).await
}

/// Takes the next seq of a session, and when `customer_seen` is given also
/// records the customer's presence. Locks the row for the rest of the
/// transaction (if it was not yet) and returns the session as it is now,
/// with `last_seq` the new seq; `None` when there is no such session.
///
/// Exactly one UPDATE of the row per transaction on this path: Postgres
/// re-checks the agent foreign key when a row already updated by the same
/// transaction is updated again, taking a lock on the agent row *after* the
/// session row — the reverse of the agent-then-session order that accept
/// and end use — and that deadlocks.
pub async fn allocate_seq<C: ConnectionTrait>(
    txn: &C,
    id: Uuid,
    customer_seen: Option<DateTime<Utc>>,
) -> Result<Option<ChatSession>, DbErr> {
    let mut bump = chat_session::Entity::update_many()
        .col_expr(Column::LastSeq, Expr::col(Column::LastSeq).add(1))
        .filter(Column::Id.eq(id));
    if let Some(at) = customer_seen {
        bump = bump.col_expr(Column::CustomerSeenAt, Expr::value(at));
    }
    // One round trip where the backend can return the new row.
    if txn.support_returning() {
        return bump
            .exec_with_returning(txn)
            .await?
            .into_iter()
            .next()
            .map(to_domain)
            .transpose();
    }
    if bump.exec(txn).await?.rows_affected == 0 {
        return Ok(None);
    }
    find(txn, id).await
}

/// Reads the sessions and locks their rows until the transaction ends, in
/// id order, so that two transactions locking overlapping sets wait for
/// each other instead of deadlocking. Ids with no session are left out.
pub async fn lock_many<C: ConnectionTrait>(
    txn: &C,
    ids: &[Uuid],
) -> Result<Vec<ChatSession>, DbErr> {
    if uses_json_batches(txn) {
        let statement = json_batch(
            "SELECT * FROM chat_sessions WHERE id IN \
               (SELECT value::uuid FROM json_array_elements_text($1::json)) \
             ORDER BY id FOR UPDATE",
            &ids,
        )?;
        return all_to_domain(
            chat_session::Entity::find()
                .from_raw_sql(statement)
                .all(txn)
                .await?,
        );
    }
    all_to_domain(
        chat_session::Entity::find()
            .filter(Column::Id.is_in(ids.iter().copied()))
            .order_by_asc(Column::Id)
            .lock_exclusive()
            .all(txn)
            .await?,
    )
}

/// Where a session's seq counter stands after a batch of sends, and when
/// its customer (if they sent in the batch) was last seen. Serialized as a
/// row of [`set_seqs`]'s JSON parameter.
#[derive(serde::Serialize)]
pub struct SeqAdvance {
    pub id: Uuid,
    pub last_seq: i32,
    #[serde(serialize_with = "pg_time::opt")]
    pub customer_seen: Option<DateTime<Utc>>,
}

/// Sets the seq counters of many sessions (rows locked by the caller) in
/// one statement. Like [`allocate_seq`], at most once per row and
/// transaction.
pub async fn set_seqs<C: ConnectionTrait>(txn: &C, advances: &[SeqAdvance]) -> Result<(), DbErr> {
    let Some((first, rest)) = advances.split_first() else {
        return Ok(());
    };
    if uses_json_batches(txn) {
        let statement = json_batch(
            "UPDATE chat_sessions s SET last_seq = v.last_seq, \
               customer_seen_at = COALESCE(v.customer_seen, s.customer_seen_at) \
             FROM json_to_recordset($1::json) \
               AS v(id uuid, last_seq int, customer_seen timestamptz) \
             WHERE s.id = v.id",
            &advances,
        )?;
        txn.execute(statement).await?;
        return Ok(());
    }
    let mut seqs = Expr::case(Column::Id.eq(first.id), first.last_seq);
    for a in rest {
        seqs = seqs.case(Column::Id.eq(a.id), a.last_seq);
    }
    let mut update = chat_session::Entity::update_many()
        .col_expr(
            Column::LastSeq,
            seqs.finally(Expr::col(Column::LastSeq)).into(),
        )
        .filter(Column::Id.is_in(advances.iter().map(|a| a.id)));
    let mut seen = advances
        .iter()
        .filter_map(|a| a.customer_seen.map(|at| (a.id, at)));
    if let Some((id, at)) = seen.next() {
        let mut cases = Expr::case(Column::Id.eq(id), at);
        for (id, at) in seen {
            cases = cases.case(Column::Id.eq(id), at);
        }
        update = update.col_expr(
            Column::CustomerSeenAt,
            cases.finally(Expr::col(Column::CustomerSeenAt)).into(),
        );
    }
    update.exec(txn).await?;
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

/// Moves one side's cursors forward to the given values. Never backwards:
/// the caller passes values it computed as maxima under the row lock.
pub async fn set_cursors<C: ConnectionTrait>(
    txn: &C,
    id: Uuid,
    party: Party,
    delivered: i32,
    read: i32,
) -> Result<(), DbErr> {
    let (d, r) = match party {
        Party::Customer => (Column::CustomerDeliveredSeq, Column::CustomerReadSeq),
        Party::Agent => (Column::AgentDeliveredSeq, Column::AgentReadSeq),
    };
    chat_session::Entity::update_many()
        .col_expr(d, Expr::value(delivered))
        .col_expr(r, Expr::value(read))
        .filter(Column::Id.eq(id))
        .exec(txn)
        .await?;
    Ok(())
}

/// One side of a session has had messages up to `seq` delivered.
pub struct DeliveredMark {
    pub session_id: Uuid,
    pub party: Party,
    pub seq: i32,
}

/// Moves delivered cursors forward, at most one mark per session and side,
/// in one statement and without a lock: each cursor moves only forward and
/// never past the newest message, so concurrent calls are safe. Returns the
/// sessions in which some cursor moved, as updated (a side whose cursor is
/// not at its mark did not move). One round trip where the backend can
/// return rows: this runs for every few messages pushed live.
pub async fn advance_delivered<C: ConnectionTrait>(
    db: &C,
    marks: &[DeliveredMark],
) -> Result<Vec<ChatSession>, DbErr> {
    if marks.is_empty() {
        return Ok(Vec::new());
    }
    if uses_json_batches(db) {
        return advance_delivered_json(db, marks).await;
    }
    let moves = |m: &DeliveredMark| {
        let col = match m.party {
            Party::Customer => Column::CustomerDeliveredSeq,
            Party::Agent => Column::AgentDeliveredSeq,
        };
        Condition::all()
            .add(Column::Id.eq(m.session_id))
            .add(col.lt(m.seq))
            .add(Column::LastSeq.gte(m.seq))
    };
    let mut update = chat_session::Entity::update_many();
    for (party, col) in [
        (Party::Customer, Column::CustomerDeliveredSeq),
        (Party::Agent, Column::AgentDeliveredSeq),
    ] {
        let mut side = marks.iter().filter(|m| m.party == party);
        let Some(first) = side.next() else {
            continue;
        };
        let mut cases = Expr::case(moves(first), first.seq);
        for m in side {
            cases = cases.case(moves(m), m.seq);
        }
        update = update.col_expr(col, cases.finally(Expr::col(col)).into());
    }
    // The rows are locked first, in id order, as every transaction that
    // holds several session rows takes them (a batch of sends does): an
    // UPDATE alone would lock them in whatever order it finds them, and
    // deadlock against such a transaction.
    let in_id_order = Query::select()
        .column(Column::Id)
        .from(chat_session::Entity)
        .and_where(Column::Id.is_in(marks.iter().map(|m| m.session_id)))
        .order_by(Column::Id, Order::Asc)
        .lock(LockType::Update)
        .to_owned();
    let update = update.filter(Column::Id.in_subquery(in_id_order)).filter(
        marks
            .iter()
            .fold(Condition::any(), |any, m| any.add(moves(m))),
    );
    if db.support_returning() {
        return all_to_domain(update.exec_with_returning(db).await?);
    }
    // Without RETURNING the moved rows cannot be told apart; read them all
    // (the caller publishes only cursors that are at their marks).
    update.exec(db).await?;
    let ids: Vec<Uuid> = marks.iter().map(|m| m.session_id).collect();
    find_many(db, &ids).await
}

/// [`advance_delivered`] on Postgres: both sides' marks of a session on one
/// row; the rows locked in id order by the subquery, as in the builder's
/// version. Of several marks for one side (callers pass one) the furthest
/// counts: if it is past the newest message that side does not move.
async fn advance_delivered_json<C: ConnectionTrait>(
    db: &C,
    marks: &[DeliveredMark],
) -> Result<Vec<ChatSession>, DbErr> {
    #[derive(serde::Serialize)]
    struct Row {
        id: Uuid,
        customer: Option<i32>,
        agent: Option<i32>,
    }
    let mut rows: Vec<Row> = Vec::with_capacity(marks.len());
    let mut row_of: std::collections::HashMap<Uuid, usize> = Default::default();
    for m in marks {
        let at = *row_of.entry(m.session_id).or_insert_with(|| {
            rows.push(Row {
                id: m.session_id,
                customer: None,
                agent: None,
            });
            rows.len() - 1
        });
        let side = match m.party {
            Party::Customer => &mut rows[at].customer,
            Party::Agent => &mut rows[at].agent,
        };
        *side = Some(side.map_or(m.seq, |seq| seq.max(m.seq)));
    }
    let statement = json_batch(
        "WITH marks AS (SELECT * FROM json_to_recordset($1::json) \
           AS m(id uuid, customer int, agent int)) \
         UPDATE chat_sessions s SET \
           customer_delivered_seq = CASE WHEN m.customer > s.customer_delivered_seq \
             AND m.customer <= s.last_seq THEN m.customer ELSE s.customer_delivered_seq END, \
           agent_delivered_seq = CASE WHEN m.agent > s.agent_delivered_seq \
             AND m.agent <= s.last_seq THEN m.agent ELSE s.agent_delivered_seq END \
         FROM marks m \
         WHERE s.id = m.id \
           AND s.id IN (SELECT id FROM chat_sessions WHERE id IN (SELECT id FROM marks) \
             ORDER BY id FOR UPDATE) \
           AND ((m.customer > s.customer_delivered_seq AND m.customer <= s.last_seq) \
             OR (m.agent > s.agent_delivered_seq AND m.agent <= s.last_seq)) \
         RETURNING s.*",
        &rows,
    )?;
    all_to_domain(
        chat_session::Entity::find()
            .from_raw_sql(statement)
            .all(db)
            .await?,
    )
}

/// WAITING and OFFERED sessions in queue order: by when they entered the
/// queue, ties broken by id so every reader sees the same order.
pub async fn queue<C: ConnectionTrait>(db: &C) -> Result<Vec<ChatSession>, DbErr> {
    all_to_domain(
        chat_session::Entity::find()
            .filter(Column::Status.is_in([
                SessionStatus::Waiting.as_str(),
                SessionStatus::Offered.as_str(),
            ]))
            .order_by_asc(Column::QueuedAt)
            .order_by_asc(Column::Id)
            .all(db)
            .await?,
    )
}

/// 1-based place among WAITING sessions.
pub async fn queue_position<C: ConnectionTrait>(db: &C, s: &ChatSession) -> Result<i64, DbErr> {
    let ahead = chat_session::Entity::find()
        .filter(Column::Status.eq(SessionStatus::Waiting.as_str()))
        .filter(
            Condition::any().add(Column::QueuedAt.lt(s.queued_at)).add(
                Condition::all()
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

/// Who may appear in a listing.
pub enum Scope<'a> {
    Customer { id: &'a str, since: DateTime<Utc> },
    Agent { id: &'a str },
    All,
}

/// Newest first, keyset-paginated on (created_at, id).
pub async fn page<C: ConnectionTrait>(
    db: &C,
    scope: Scope<'_>,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: u64,
) -> Result<Vec<ChatSession>, DbErr> {
    let mut q = chat_session::Entity::find();
    q = match scope {
        Scope::Customer { id, since } => q
            .filter(Column::CustomerId.eq(id))
            .filter(Column::CreatedAt.gte(since)),
        Scope::Agent { id } => q.filter(Column::AgentId.eq(id)),
        Scope::All => q,
    };
    if let Some((at, id)) = before {
        q = q.filter(
            Condition::any().add(Column::CreatedAt.lt(at)).add(
                Condition::all()
                    .add(Column::CreatedAt.eq(at))
                    .add(Column::Id.lt(id)),
            ),
        );
    }
    all_to_domain(
        q.order_by_desc(Column::CreatedAt)
            .order_by_desc(Column::Id)
            .limit(limit)
            .all(db)
            .await?,
    )
}

/// Deletes up to `batch` sessions that ended before `cutoff`, with their
/// messages and history, in one short transaction. Returns how many went.
pub async fn purge_ended_before<C: ConnectionTrait>(
    db: &C,
    cutoff: DateTime<Utc>,
    batch: u64,
) -> Result<u64, DbErr> {
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
        return Ok(0);
    }
    // Children first: SQLite enforces the cascade only when told to, and
    // explicit deletes keep each statement's work visible and bounded.
    entity::message::Entity::delete_many()
        .filter(entity::message::Column::SessionId.is_in(ids.clone()))
        .exec(db)
        .await?;
    entity::session_event::Entity::delete_many()
        .filter(entity::session_event::Column::SessionId.is_in(ids.clone()))
        .exec(db)
        .await?;
    let res = chat_session::Entity::delete_many()
        .filter(Column::Id.is_in(ids))
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}

/// Records that the customer of an open session is here now.
pub async fn touch_customer<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    chat_session::Entity::update_many()
        .col_expr(Column::CustomerSeenAt, Expr::value(now))
        .filter(Column::Id.eq(id))
        .filter(Column::Status.ne(SessionStatus::Ended.as_str()))
        .exec(db)
        .await?;
    Ok(())
}

/// Counts every open session's customer as seen at `now`; how many.
pub async fn touch_all_open_customers<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    // Rows locked in id order first, as everything that holds several
    // session rows takes them: this runs right after an outage, when the
    // sends that waited flush in large batches.
    let in_id_order = Query::select()
        .column(Column::Id)
        .from(chat_session::Entity)
        .and_where(Column::Status.ne(SessionStatus::Ended.as_str()))
        .and_where(Column::CustomerSeenAt.lt(now))
        .order_by(Column::Id, Order::Asc)
        .lock(LockType::Update)
        .to_owned();
    Ok(chat_session::Entity::update_many()
        .col_expr(Column::CustomerSeenAt, Expr::value(now))
        .filter(Column::Id.in_subquery(in_id_order))
        .filter(Column::CustomerSeenAt.lt(now))
        .exec(db)
        .await?
        .rows_affected)
}

/// Open sessions whose customer has not been seen since `cutoff`.
pub async fn with_absent_customer<C: ConnectionTrait>(
    db: &C,
    cutoff: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<Uuid>, DbErr> {
    chat_session::Entity::find()
        .select_only()
        .column(Column::Id)
        .filter(Column::Status.ne(SessionStatus::Ended.as_str()))
        .filter(
            Condition::any().add(Column::CustomerSeenAt.lt(cutoff)).add(
                Condition::all()
                    .add(Column::CustomerSeenAt.is_null())
                    .add(Column::CreatedAt.lt(cutoff)),
            ),
        )
        .limit(limit)
        .into_tuple()
        .all(db)
        .await
}
