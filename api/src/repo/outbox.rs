//! The webhook outbox: events written in the business transaction, fanned
//! out into one delivery per subscribed endpoint (written after its first
//! attempt), retries leased by dispatchers (`FOR UPDATE SKIP LOCKED` on
//! Postgres) and settled after each attempt.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use entity::{webhook_delivery, webhook_endpoint, webhook_event};
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{
    ActiveValue::NotSet, ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, Statement,
};
use uuid::Uuid;

use super::{json_batch, pg_time, uses_json_batches};
use crate::domain::webhooks::{DeliveryStatus, WebhookEventType};
use crate::domain::Message;

/// One outbox row to write.
#[derive(serde::Serialize)]
pub struct NewEvent<'a> {
    pub event_type: &'a str,
    pub session_id: Option<Uuid>,
    /// Empty when `message_id` names the message the body is built from.
    pub payload: String,
    pub message_id: Option<Uuid>,
    #[serde(serialize_with = "pg_time::at")]
    pub created_at: DateTime<Utc>,
}

impl NewEvent<'static> {
    /// A `message.created` event: it names its message, whose stored row
    /// the body is built from when it is sent (see `message_bodies`).
    pub fn message_created(m: &Message) -> NewEvent<'static> {
        NewEvent {
            event_type: WebhookEventType::MessageCreated.as_str(),
            session_id: Some(m.session_id),
            payload: String::new(),
            message_id: Some(m.id),
            created_at: m.created_at,
        }
    }
}

/// Writes outbox rows in one statement, in the order given (which is the
/// order of their `seq`).
pub async fn insert_events<C: ConnectionTrait>(
    db: &C,
    events: &[NewEvent<'_>],
) -> Result<(), DbErr> {
    if events.is_empty() {
        return Ok(());
    }
    if uses_json_batches(db) {
        let statement = json_batch(
            "INSERT INTO webhook_events \
               (event_type, session_id, payload, message_id, fanned_out, created_at) \
             SELECT e.event_type, e.session_id, e.payload, e.message_id, false, e.created_at \
             FROM ROWS FROM (json_to_recordset($1::json) \
               AS (event_type text, session_id uuid, payload text, message_id uuid, \
                 created_at timestamptz)) \
               WITH ORDINALITY AS e(event_type, session_id, payload, message_id, created_at, n) \
             ORDER BY e.n",
            &events,
        )?;
        db.execute(statement).await?;
        return Ok(());
    }
    webhook_event::Entity::insert_many(events.iter().map(|e| webhook_event::ActiveModel {
        seq: NotSet,
        event_type: Set(e.event_type.to_owned()),
        session_id: Set(e.session_id),
        payload: Set(e.payload.clone()),
        message_id: Set(e.message_id),
        fanned_out: Set(false),
        created_at: Set(e.created_at),
    }))
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Takes the right to fan out for this transaction; false when another
/// process is at it (Postgres). Fanning out one at a time keeps each
/// session's deliveries created in event order.
pub async fn try_lock_fan_out<C: ConnectionTrait>(txn: &C) -> Result<bool, DbErr> {
    if txn.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(true);
    }
    let row = txn
        .query_one(Statement::from_string(
            DatabaseBackend::Postgres,
            // An arbitrary constant key that names "the webhook fan-out".
            "SELECT pg_try_advisory_xact_lock(7242019017) AS locked",
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("no answer to the fan-out lock".into()))?;
    row.try_get("", "locked")
}

/// An event as fan-out reads it: the payload too, as fan-out makes each
/// delivery's first attempt.
#[derive(Debug, sea_orm::FromQueryResult)]
pub struct Unfanned {
    pub seq: i64,
    pub event_type: String,
    pub session_id: Option<Uuid>,
    pub payload: String,
    pub message_id: Option<Uuid>,
}

/// The oldest events not fanned out yet, in order.
pub async fn unfanned<C: ConnectionTrait>(db: &C, limit: u64) -> Result<Vec<Unfanned>, DbErr> {
    use webhook_event::Column;
    webhook_event::Entity::find()
        .select_only()
        .column(Column::Seq)
        .column(Column::EventType)
        .column(Column::SessionId)
        .column(Column::Payload)
        .column(Column::MessageId)
        // Written as the partial index's condition is, so that it is used.
        .filter(Expr::cust("webhook_events.fanned_out = false"))
        .order_by_asc(Column::Seq)
        .limit(limit)
        .into_model::<Unfanned>()
        .all(db)
        .await
}

/// Enabled endpoints, with what they subscribe to as stored.
pub async fn enabled_endpoints<C: ConnectionTrait>(
    db: &C,
) -> Result<Vec<webhook_endpoint::Model>, DbErr> {
    webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::Enabled.eq(true))
        .all(db)
        .await
}

/// Which of these endpoints still have a PENDING delivery of one of these
/// sessions: a new event of such a pair waits behind it.
pub async fn pending_pairs<C: ConnectionTrait>(
    db: &C,
    endpoints: &[Uuid],
    sessions: &[Uuid],
) -> Result<HashSet<(Uuid, Uuid)>, DbErr> {
    use webhook_delivery::Column;
    if endpoints.is_empty() || sessions.is_empty() {
        return Ok(HashSet::new());
    }
    let mut select = webhook_delivery::Entity::find()
        .select_only()
        .column(Column::EndpointId)
        .column(Column::SessionId)
        .distinct()
        .filter(Column::Status.eq(DeliveryStatus::Pending.as_str()))
        .filter(Column::EndpointId.is_in(endpoints.iter().copied()));
    select = if uses_json_batches(db) {
        // One array parameter however many sessions: read through the
        // pending index by endpoint and session.
        select.filter(Expr::cust_with_values(
            "webhook_deliveries.session_id = ANY($1)",
            [sessions.to_vec()],
        ))
    } else {
        select.filter(Column::SessionId.is_in(sessions.iter().copied()))
    };
    let pairs: Vec<(Uuid, Option<Uuid>)> = select.into_tuple().all(db).await?;
    Ok(pairs
        .into_iter()
        .filter_map(|(endpoint, session)| session.map(|s| (endpoint, s)))
        .collect())
}

/// A delivery as fan-out creates it: after its first attempt (DELIVERED,
/// due again, or FAILED), or not tried yet (PENDING, due at `created_at`,
/// no attempt).
pub struct NewDelivery {
    pub id: Uuid,
    pub event_seq: i64,
    pub endpoint_id: Uuid,
    pub event_type: String,
    pub session_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub settled: Settled,
}

/// Creates the deliveries and marks the events fanned out. A delivery that
/// exists already (written by a process that then lost its lock) is kept
/// as it is.
pub async fn fan_out<C: ConnectionTrait>(
    db: &C,
    deliveries: Vec<NewDelivery>,
    events: &[i64],
) -> Result<(), DbErr> {
    insert_deliveries(db, &deliveries).await?;
    let mut update = webhook_event::Entity::update_many()
        .col_expr(webhook_event::Column::FannedOut, Expr::value(true));
    update = if uses_json_batches(db) {
        update.filter(Expr::cust_with_values(
            "webhook_events.seq = ANY($1)",
            [events.to_vec()],
        ))
    } else {
        update.filter(webhook_event::Column::Seq.is_in(events.iter().copied()))
    };
    update.exec(db).await?;
    Ok(())
}

async fn insert_deliveries<C: ConnectionTrait>(
    db: &C,
    deliveries: &[NewDelivery],
) -> Result<(), DbErr> {
    if deliveries.is_empty() {
        return Ok(());
    }
    if uses_json_batches(db) {
        #[derive(serde::Serialize)]
        struct Row<'a> {
            id: Uuid,
            event_seq: i64,
            endpoint_id: Uuid,
            event_type: &'a str,
            session_id: Option<Uuid>,
            #[serde(serialize_with = "pg_time::at")]
            created_at: DateTime<Utc>,
            #[serde(flatten)]
            settled: SettledRow<'a>,
        }
        let rows: Vec<Row> = deliveries
            .iter()
            .map(|d| Row {
                id: d.id,
                event_seq: d.event_seq,
                endpoint_id: d.endpoint_id,
                event_type: &d.event_type,
                session_id: d.session_id,
                created_at: d.created_at,
                settled: SettledRow::of(&d.settled),
            })
            .collect();
        // One statement however many: fan-out keeps up with a busy chat.
        let statement = json_batch(
            "INSERT INTO webhook_deliveries (id, event_seq, endpoint_id, event_type, session_id, \
               status, attempts, last_status_code, last_error, next_attempt_at, created_at, \
               delivered_at) \
             SELECT d.id, d.event_seq, d.endpoint_id, d.event_type, d.session_id, d.status, \
               d.attempts, d.code, d.error, d.next_at, d.created_at, d.delivered_at \
             FROM json_to_recordset($1::json) AS d(id uuid, event_seq bigint, endpoint_id uuid, \
               event_type text, session_id uuid, status text, attempts int, code int, \
               error text, next_at timestamptz, created_at timestamptz, delivered_at timestamptz) \
             ON CONFLICT (id) DO NOTHING",
            &rows,
        )?;
        db.execute(statement).await?;
    } else {
        // Well under SQLite's limit on bound values per statement.
        for chunk in deliveries.chunks(500) {
            webhook_delivery::Entity::insert_many(chunk.iter().map(|d| {
                webhook_delivery::ActiveModel {
                    id: Set(d.id),
                    event_seq: Set(d.event_seq),
                    endpoint_id: Set(d.endpoint_id),
                    event_type: Set(d.event_type.clone()),
                    session_id: Set(d.session_id),
                    status: Set(d.settled.status.as_str().to_owned()),
                    attempts: Set(d.settled.attempts),
                    last_status_code: Set(d.settled.status_code),
                    last_error: Set(d.settled.error.clone()),
                    next_attempt_at: Set(d.settled.next_attempt_at),
                    lease_until: Set(None),
                    lease_token: Set(None),
                    created_at: Set(d.created_at),
                    delivered_at: Set(d.settled.delivered_at),
                }
            }))
            .on_conflict(
                sea_orm::sea_query::OnConflict::column(webhook_delivery::Column::Id)
                    .do_nothing()
                    .to_owned(),
            )
            .do_nothing()
            .exec_without_returning(db)
            .await?;
        }
    }
    Ok(())
}

/// A pending delivery as a chain is built from it: id, endpoint, session,
/// event, when it is due and until when it is leased.
type ChainRow = (
    Uuid,
    Uuid,
    Option<Uuid>,
    i64,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

/// Leases due deliveries until `lease_until` under `token`, as chains:
/// up to `heads` deliveries that nothing earlier of their session still
/// waits before, for their endpoint (PENDING, due by `now`, not held by a
/// live lease, their endpoint enabled), each followed by up to
/// `chain - 1` later due ones of its session for that endpoint, to send
/// one after the other. On Postgres, heads another dispatcher is leasing
/// are skipped, not waited for; the rest of a chain cannot be leased by
/// another while its head is pending, as it is not a head. Ordered by
/// endpoint, session and event.
pub async fn lease_chains<C: ConnectionTrait>(
    txn: &C,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    token: Uuid,
    heads: u64,
    chain: usize,
) -> Result<Vec<webhook_delivery::Model>, DbErr> {
    use webhook_delivery::Column;
    let lease_free = || {
        sea_orm::Condition::any()
            .add(Column::LeaseUntil.is_null())
            .add(Column::LeaseUntil.lte(now))
    };
    let mut select = webhook_delivery::Entity::find()
        .select_only()
        .column(Column::Id)
        .column(Column::EndpointId)
        .column(Column::SessionId)
        .column(Column::EventSeq)
        .filter(Column::Status.eq(DeliveryStatus::Pending.as_str()))
        .filter(Column::NextAttemptAt.lte(now))
        .filter(lease_free())
        .filter(Expr::cust(
            "EXISTS (SELECT 1 FROM webhook_endpoints e \
               WHERE e.id = webhook_deliveries.endpoint_id AND e.enabled)",
        ))
        // The first pending one of its session for its endpoint: a scalar
        // subquery, one probe of the pending index per candidate, taken in
        // event order from the pending-by-event index until enough are
        // found. (Written as NOT EXISTS, the planner joined every pending
        // delivery with every other of its session.)
        .filter(Expr::cust(
            "(webhook_deliveries.session_id IS NULL OR webhook_deliveries.event_seq = \
               (SELECT min(p.event_seq) FROM webhook_deliveries p \
                 WHERE p.endpoint_id = webhook_deliveries.endpoint_id \
                   AND p.session_id = webhook_deliveries.session_id \
                   AND p.status = 'PENDING'))",
        ))
        .order_by_asc(Column::EventSeq)
        .limit(heads);
    if txn.get_database_backend() == DatabaseBackend::Postgres {
        select = select.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let found: Vec<(Uuid, Uuid, Option<Uuid>, i64)> = select.into_tuple().all(txn).await?;
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids: Vec<Uuid> = found.iter().map(|h| h.0).collect();
    // The rest of each chain: later due ones of the same session and
    // endpoint (a delivery without a session has no order to keep).
    let pairs: Vec<(Uuid, Uuid, i64)> = found
        .iter()
        .filter_map(|&(_, endpoint, session, seq)| session.map(|s| (endpoint, s, seq)))
        .collect();
    if chain > 1 && !pairs.is_empty() {
        let mut of_heads = sea_orm::Condition::any();
        for (endpoint, session, _) in &pairs {
            of_heads = of_heads.add(
                sea_orm::Condition::all()
                    .add(Column::EndpointId.eq(*endpoint))
                    .add(Column::SessionId.eq(*session)),
            );
        }
        let rest: Vec<ChainRow> = webhook_delivery::Entity::find()
            .select_only()
            .column(Column::Id)
            .column(Column::EndpointId)
            .column(Column::SessionId)
            .column(Column::EventSeq)
            .column(Column::NextAttemptAt)
            .column(Column::LeaseUntil)
            .filter(Column::Status.eq(DeliveryStatus::Pending.as_str()))
            .filter(of_heads)
            .order_by_asc(Column::EventSeq)
            .limit((pairs.len() * chain) as u64)
            .into_tuple()
            .all(txn)
            .await?;
        let mut taken: std::collections::HashMap<(Uuid, Uuid), usize> =
            pairs.iter().map(|(e, s, _)| ((*e, *s), 1)).collect();
        let head_seq: std::collections::HashMap<(Uuid, Uuid), i64> =
            pairs.iter().map(|(e, s, seq)| ((*e, *s), *seq)).collect();
        // A chain stops at the first one not due yet or still leased (by a
        // dispatcher that died mid-chain): those after it wait too.
        let mut stopped = std::collections::HashSet::new();
        for (id, endpoint, session, seq, due, leased_until) in rest {
            let Some(session) = session else { continue };
            let key = (endpoint, session);
            if head_seq.get(&key).is_none_or(|h| seq <= *h) || stopped.contains(&key) {
                continue;
            }
            if due.is_none_or(|at| at > now) || leased_until.is_some_and(|until| until > now) {
                stopped.insert(key);
                continue;
            }
            let Some(n) = taken.get_mut(&key) else {
                continue;
            };
            if *n < chain {
                *n += 1;
                ids.push(id);
            }
        }
    }
    webhook_delivery::Entity::update_many()
        .col_expr(Column::LeaseUntil, Expr::value(lease_until))
        .col_expr(Column::LeaseToken, Expr::value(token))
        .filter(Column::Id.is_in(ids.clone()))
        .filter(lease_free())
        .exec(txn)
        .await?;
    webhook_delivery::Entity::find()
        .filter(Column::Id.is_in(ids))
        .filter(Column::LeaseToken.eq(token))
        .order_by_asc(Column::EndpointId)
        .order_by_asc(Column::SessionId)
        .order_by_asc(Column::EventSeq)
        .all(txn)
        .await
}

pub async fn events_by_seq<C: ConnectionTrait>(
    db: &C,
    seqs: Vec<i64>,
) -> Result<Vec<webhook_event::Model>, DbErr> {
    webhook_event::Entity::find()
        .filter(webhook_event::Column::Seq.is_in(seqs))
        .all(db)
        .await
}

pub async fn endpoints_by_id<C: ConnectionTrait>(
    db: &C,
    ids: Vec<Uuid>,
) -> Result<Vec<webhook_endpoint::Model>, DbErr> {
    webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::Id.is_in(ids))
        .all(db)
        .await
}

/// How an attempt ended, to store.
pub struct Settled {
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// How an attempt ended, as the batch statements read it from JSON.
#[derive(serde::Serialize)]
struct SettledRow<'a> {
    status: &'a str,
    attempts: i32,
    code: Option<i32>,
    error: Option<&'a str>,
    #[serde(serialize_with = "pg_time::opt")]
    next_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "pg_time::opt")]
    delivered_at: Option<DateTime<Utc>>,
}

impl<'a> SettledRow<'a> {
    fn of(s: &'a Settled) -> SettledRow<'a> {
        SettledRow {
            status: s.status.as_str(),
            attempts: s.attempts,
            code: s.status_code,
            error: s.error.as_deref(),
            next_at: s.next_attempt_at,
            delivered_at: s.delivered_at,
        }
    }
}

/// Records an attempt of a delivery this dispatcher still holds (its
/// lease token unchanged); false when another took it over meanwhile.
pub async fn settle<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    token: Uuid,
    settled: Settled,
) -> Result<bool, DbErr> {
    use webhook_delivery::Column;
    let res = webhook_delivery::Entity::update_many()
        .col_expr(Column::Status, Expr::value(settled.status.as_str()))
        .col_expr(Column::Attempts, Expr::value(settled.attempts))
        .col_expr(Column::LastStatusCode, Expr::value(settled.status_code))
        .col_expr(Column::LastError, Expr::value(settled.error))
        .col_expr(Column::NextAttemptAt, Expr::value(settled.next_attempt_at))
        .col_expr(Column::DeliveredAt, Expr::value(settled.delivered_at))
        .col_expr(
            Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(Column::LeaseToken, Expr::value(Option::<Uuid>::None))
        .filter(Column::Id.eq(id))
        .filter(Column::LeaseToken.eq(token))
        .exec(db)
        .await?;
    Ok(res.rows_affected > 0)
}

/// Records the attempts of deliveries this dispatcher still holds (their
/// lease token unchanged), in one statement on Postgres; the ids it could
/// record (another dispatcher took the rest over once our lease ran out).
pub async fn settle_many<C: ConnectionTrait>(
    db: &C,
    token: Uuid,
    settled: Vec<(Uuid, Settled)>,
) -> Result<Vec<Uuid>, DbErr> {
    if settled.is_empty() {
        return Ok(Vec::new());
    }
    if !uses_json_batches(db) {
        let mut recorded = Vec::new();
        for (id, s) in settled {
            if settle(db, id, token, s).await? {
                recorded.push(id);
            }
        }
        return Ok(recorded);
    }
    #[derive(serde::Serialize)]
    struct Row<'a> {
        id: Uuid,
        #[serde(flatten)]
        settled: SettledRow<'a>,
    }
    let rows: Vec<Row> = settled
        .iter()
        .map(|(id, s)| Row {
            id: *id,
            settled: SettledRow::of(s),
        })
        .collect();
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let json = serde_json::to_string(&rows).map_err(|e| DbErr::Custom(e.to_string()))?;
    let rows = db
        .query_all(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "UPDATE webhook_deliveries d SET status = s.status, attempts = s.attempts, \
               last_status_code = s.code, last_error = s.error, next_attempt_at = s.next_at, \
               delivered_at = s.delivered_at, lease_until = NULL, lease_token = NULL \
             FROM json_to_recordset($1::json) AS s(id uuid, status text, attempts int, \
               code int, error text, next_at timestamptz, delivered_at timestamptz) \
             WHERE d.id = s.id AND d.id = ANY($3) AND d.lease_token = $2 \
             RETURNING d.id",
            // The ids again as an array: the planner then reads them by
            // key rather than joining the whole table with the batch.
            [json.into(), token.into(), ids.into()],
        ))
        .await?;
    rows.iter().map(|r| r.try_get::<Uuid>("", "id")).collect()
}

/// Gives back leased deliveries not attempted (their chain stopped before
/// them): due as they were, for whichever dispatcher comes next.
pub async fn release<C: ConnectionTrait>(db: &C, token: Uuid, ids: Vec<Uuid>) -> Result<(), DbErr> {
    use webhook_delivery::Column;
    if ids.is_empty() {
        return Ok(());
    }
    webhook_delivery::Entity::update_many()
        .col_expr(
            Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(Column::LeaseToken, Expr::value(Option::<Uuid>::None))
        .filter(Column::Id.is_in(ids))
        .filter(Column::LeaseToken.eq(token))
        .exec(db)
        .await?;
    Ok(())
}

/// The endpoint's run of failures: begun at `since`, or over (None).
pub async fn set_failing_since<C: ConnectionTrait>(
    db: &C,
    endpoint: Uuid,
    since: Option<DateTime<Utc>>,
) -> Result<(), DbErr> {
    webhook_endpoint::Entity::update_many()
        .col_expr(webhook_endpoint::Column::FailingSince, Expr::value(since))
        .filter(webhook_endpoint::Column::Id.eq(endpoint))
        .exec(db)
        .await?;
    Ok(())
}
