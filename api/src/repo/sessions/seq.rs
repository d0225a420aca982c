//! Message seqs: the per-session counter, taken one at a time or set for a
//! batch of sends.

use chrono::{DateTime, Utc};
use entity::chat_session::{self, Column};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::{find, to_domain};
use crate::domain::ChatSession;
use crate::repo::{json_batch, pg_time, uses_json_batches};

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
