//! The webhook outbox: events written in the business transaction, fanned
//! out into one delivery per subscribed endpoint, leased by dispatchers
//! (`FOR UPDATE SKIP LOCKED` on Postgres) and settled after each attempt.

use chrono::{DateTime, Utc};
use entity::{webhook_delivery, webhook_endpoint, webhook_event};
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{
    ActiveValue::NotSet, ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, Statement,
};
use uuid::Uuid;

use super::{json_batch, pg_time, uses_json_batches};
use crate::domain::webhooks::DeliveryStatus;

/// One outbox row to write.
#[derive(serde::Serialize)]
pub struct NewEvent<'a> {
    pub event_type: &'a str,
    pub session_id: Option<Uuid>,
    pub payload: String,
    #[serde(serialize_with = "pg_time::at")]
    pub created_at: DateTime<Utc>,
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
            "INSERT INTO webhook_events (event_type, session_id, payload, fanned_out, created_at) \
             SELECT e.event_type, e.session_id, e.payload, false, e.created_at \
             FROM ROWS FROM (json_to_recordset($1::json) \
               AS (event_type text, session_id uuid, payload text, created_at timestamptz)) \
               WITH ORDINALITY AS e(event_type, session_id, payload, created_at, n) \
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

/// The oldest events not fanned out yet, in order.
pub async fn unfanned<C: ConnectionTrait>(
    db: &C,
    limit: u64,
) -> Result<Vec<webhook_event::Model>, DbErr> {
    webhook_event::Entity::find()
        .filter(webhook_event::Column::FannedOut.eq(false))
        .order_by_asc(webhook_event::Column::Seq)
        .limit(limit)
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

/// A delivery to create at fan-out.
pub struct NewDelivery {
    pub event_seq: i64,
    pub endpoint_id: Uuid,
    pub event_type: String,
    pub session_id: Option<Uuid>,
    pub now: DateTime<Utc>,
}

/// Creates the deliveries and marks the events fanned out.
pub async fn fan_out<C: ConnectionTrait>(
    db: &C,
    deliveries: Vec<NewDelivery>,
    events: &[i64],
) -> Result<(), DbErr> {
    // Well under SQLite's limit on bound values per statement.
    for chunk in deliveries.chunks(500) {
        webhook_delivery::Entity::insert_many(chunk.iter().map(|d| {
            webhook_delivery::ActiveModel {
                id: Set(Uuid::new_v4()),
                event_seq: Set(d.event_seq),
                endpoint_id: Set(d.endpoint_id),
                event_type: Set(d.event_type.clone()),
                session_id: Set(d.session_id),
                status: Set(DeliveryStatus::Pending.as_str().to_owned()),
                attempts: Set(0),
                last_status_code: Set(None),
                last_error: Set(None),
                next_attempt_at: Set(Some(d.now)),
                lease_until: Set(None),
                lease_token: Set(None),
                created_at: Set(d.now),
                delivered_at: Set(None),
            }
        }))
        .exec_without_returning(db)
        .await?;
    }
    webhook_event::Entity::update_many()
        .col_expr(webhook_event::Column::FannedOut, Expr::value(true))
        .filter(webhook_event::Column::Seq.is_in(events.iter().copied()))
        .exec(db)
        .await?;
    Ok(())
}

/// Leases up to `limit` due deliveries until `lease_until` under `token`:
/// PENDING, due by `now`, not held by a live lease, their endpoint enabled,
/// and nothing earlier of their session still pending for their endpoint
/// (so each session's events reach an endpoint in order). On Postgres,
/// rows another dispatcher is leasing are skipped, not waited for.
pub async fn lease_due<C: ConnectionTrait>(
    txn: &C,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    token: Uuid,
    limit: u64,
) -> Result<Vec<webhook_delivery::Model>, DbErr> {
    use webhook_delivery::Column;
    let mut select = webhook_delivery::Entity::find()
        .select_only()
        .column(Column::Id)
        .filter(Column::Status.eq(DeliveryStatus::Pending.as_str()))
        .filter(Column::NextAttemptAt.lte(now))
        .filter(
            sea_orm::Condition::any()
                .add(Column::LeaseUntil.is_null())
                .add(Column::LeaseUntil.lte(now)),
        )
        .filter(Expr::cust(
            "EXISTS (SELECT 1 FROM webhook_endpoints e \
               WHERE e.id = webhook_deliveries.endpoint_id AND e.enabled)",
        ))
        .filter(Expr::cust(
            "NOT EXISTS (SELECT 1 FROM webhook_deliveries p \
               WHERE p.endpoint_id = webhook_deliveries.endpoint_id \
                 AND p.session_id = webhook_deliveries.session_id \
                 AND p.status = 'PENDING' AND p.event_seq < webhook_deliveries.event_seq)",
        ))
        .order_by_asc(Column::NextAttemptAt)
        .order_by_asc(Column::EventSeq)
        .limit(limit);
    if txn.get_database_backend() == DatabaseBackend::Postgres {
        select = select.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let ids: Vec<Uuid> = select.into_tuple().all(txn).await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    webhook_delivery::Entity::update_many()
        .col_expr(Column::LeaseUntil, Expr::value(lease_until))
        .col_expr(Column::LeaseToken, Expr::value(token))
        .filter(Column::Id.is_in(ids.clone()))
        .exec(txn)
        .await?;
    webhook_delivery::Entity::find()
        .filter(Column::Id.is_in(ids))
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
