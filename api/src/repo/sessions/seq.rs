//! Message seqs: the one allocator. Every writer of messages (a batch of
//! sends, the SYSTEM lines of joins, transfers and ends) takes its seqs
//! from [`take_seqs`] (or, for the join lines of an assignment, from
//! [`assign_taking_seq`], which takes them in the assignment's statement),
//! so a seq is never handed out twice nor skipped.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::chat_session::{self, Column};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, QueryFilter, Statement,
};
use uuid::Uuid;

use super::{all_to_domain, assign_many, find};
use crate::domain::{ChatSession, SessionStatus};
use crate::repo::{json_batch, pg_time, uses_json_batches};

/// How many seqs one session needs in this transaction, and when its
/// customer (if they sent in it) was last seen. Serialized as a row of
/// [`take_seqs`]'s JSON parameter.
#[derive(serde::Serialize)]
pub struct SeqTake {
    pub id: Uuid,
    pub count: i32,
    #[serde(serialize_with = "pg_time::opt")]
    pub customer_seen: Option<DateTime<Utc>>,
}

impl SeqTake {
    /// One seq, for one line.
    pub fn one(id: Uuid) -> SeqTake {
        SeqTake {
            id,
            count: 1,
            customer_seen: None,
        }
    }
}

/// Takes `count` seqs of each session in one statement and answers, per
/// session, the last seq taken: the session's new seqs are
/// `last - count + 1 ..= last`. Sessions that do not exist are left out.
/// Each session appears at most once in `takes`. The rows stay locked until
/// the transaction ends.
///
/// On paths that do not hold the session's agent row (sends), call it once
/// per transaction and make it the only UPDATE of the row: Postgres
/// re-checks the agent foreign key when a row already updated by the same
/// transaction is updated again, taking a lock on the agent row *after* the
/// session row — the reverse of the agent-then-session order that accept
/// and end use — and that deadlocks.
pub async fn take_seqs<C: ConnectionTrait>(
    txn: &C,
    takes: &[SeqTake],
) -> Result<HashMap<Uuid, i32>, DbErr> {
    let mut taken = HashMap::with_capacity(takes.len());
    if takes.is_empty() {
        return Ok(taken);
    }
    if uses_json_batches(txn) {
        let statement = json_batch(
            "UPDATE chat_sessions s SET last_seq = s.last_seq + v.count, \
               customer_seen_at = COALESCE(v.customer_seen, s.customer_seen_at) \
             FROM json_to_recordset($1::json) \
               AS v(id uuid, count int, customer_seen timestamptz) \
             WHERE s.id = v.id \
             RETURNING s.id, s.last_seq",
            &takes,
        )?;
        for row in txn.query_all(statement).await? {
            taken.insert(row.try_get("", "id")?, row.try_get("", "last_seq")?);
        }
        return Ok(taken);
    }
    // SQLite serializes writers anyway: one statement per session.
    for take in takes {
        let mut bump = chat_session::Entity::update_many()
            .col_expr(Column::LastSeq, Expr::col(Column::LastSeq).add(take.count))
            .filter(Column::Id.eq(take.id));
        if let Some(at) = take.customer_seen {
            bump = bump.col_expr(Column::CustomerSeenAt, Expr::value(at));
        }
        let last = if txn.support_returning() {
            bump.exec_with_returning(txn)
                .await?
                .into_iter()
                .next()
                .map(|row| row.last_seq)
        } else if bump.exec(txn).await?.rows_affected > 0 {
            find(txn, take.id).await?.map(|s| s.last_seq)
        } else {
            None
        };
        if let Some(last) = last {
            taken.insert(take.id, last);
        }
    }
    Ok(taken)
}

/// Makes each session ACTIVE with its agent and takes one seq of it, for
/// its join line: on Postgres in one statement (an assignment of hundreds
/// of sessions is one join with its pairs, not two passes over their rows).
/// The rows are locked by the caller. Returns the sessions as updated,
/// `last_seq` the join line's seq.
pub async fn assign_taking_seq<C: ConnectionTrait>(
    txn: &C,
    pairs: &[(Uuid, &str)],
    now: DateTime<Utc>,
) -> Result<Vec<ChatSession>, DbErr> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    if !uses_json_batches(txn) {
        let takes: Vec<SeqTake> = pairs.iter().map(|(id, _)| SeqTake::one(*id)).collect();
        take_seqs(txn, &takes).await?;
        return assign_many(txn, pairs, now).await;
    }
    #[derive(serde::Serialize)]
    struct Pair<'a> {
        id: Uuid,
        agent_id: &'a str,
    }
    let rows: Vec<Pair> = pairs
        .iter()
        .map(|(id, agent_id)| Pair { id: *id, agent_id })
        .collect();
    let json = serde_json::to_string(&rows).map_err(|e| DbErr::Custom(e.to_string()))?;
    let statement = Statement::from_sql_and_values(
        DatabaseBackend::Postgres,
        "UPDATE chat_sessions s SET status = $2, agent_id = v.agent_id, assigned_at = $3, \
           offer_expires_at = NULL, last_seq = s.last_seq + 1 \
         FROM json_to_recordset($1::json) AS v(id uuid, agent_id text) \
         WHERE s.id = v.id \
         RETURNING s.*",
        [
            json.into(),
            SessionStatus::Active.as_str().into(),
            now.into(),
        ],
    );
    let updated = chat_session::Entity::find()
        .from_raw_sql(statement)
        .all(txn)
        .await?;
    all_to_domain(updated)
}
