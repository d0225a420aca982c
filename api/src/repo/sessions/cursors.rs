//! Receipt cursors: how far each side has had messages delivered and read.

use entity::chat_session::{self, Column};
use sea_orm::sea_query::{Expr, LockType, Order, Query};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::{all_to_domain, find_many};
use crate::domain::{ChatSession, Party};
use crate::repo::{json_batch, uses_json_batches};

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
