//! Webhook endpoints and the record of their deliveries.

use chrono::{DateTime, Utc};
use entity::{webhook_delivery, webhook_endpoint, webhook_event};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

use super::parse;
use crate::domain::webhooks::{
    read_event_types, store_event_types, DeliveryStatus, WebhookDelivery, WebhookEndpoint,
    WebhookEventType,
};

fn endpoint(m: webhook_endpoint::Model) -> Result<WebhookEndpoint, DbErr> {
    Ok(WebhookEndpoint {
        events: read_event_types(&m.events).map_err(|e| DbErr::Type(e.to_string()))?,
        id: m.id,
        url: m.url,
        description: m.description,
        enabled: m.enabled,
        created_at: m.created_at,
    })
}

pub fn delivery(m: webhook_delivery::Model) -> Result<WebhookDelivery, DbErr> {
    Ok(WebhookDelivery {
        event: parse(&m.event_type)?,
        status: parse(&m.status)?,
        id: m.id,
        endpoint_id: m.endpoint_id,
        attempts: m.attempts,
        last_status_code: m.last_status_code,
        last_error: m.last_error,
        next_attempt_at: m.next_attempt_at,
        created_at: m.created_at,
        delivered_at: m.delivered_at,
    })
}

pub struct NewEndpoint<'a> {
    pub url: &'a str,
    pub events: &'a [WebhookEventType],
    pub description: Option<&'a str>,
    pub secret: &'a str,
    pub now: DateTime<Utc>,
}

pub async fn insert_endpoint<C: ConnectionTrait>(
    db: &C,
    new: NewEndpoint<'_>,
) -> Result<WebhookEndpoint, DbErr> {
    let model = webhook_endpoint::Model {
        id: Uuid::new_v4(),
        url: new.url.to_owned(),
        events: store_event_types(new.events),
        description: new.description.map(str::to_owned),
        secret: new.secret.to_owned(),
        enabled: true,
        failing_since: None,
        created_at: new.now,
    };
    let active: webhook_endpoint::ActiveModel = model.clone().into();
    webhook_endpoint::Entity::insert(active)
        .exec_without_returning(db)
        .await?;
    endpoint(model)
}

pub async fn list_endpoints<C: ConnectionTrait>(db: &C) -> Result<Vec<WebhookEndpoint>, DbErr> {
    webhook_endpoint::Entity::find()
        .order_by_asc(webhook_endpoint::Column::CreatedAt)
        .order_by_asc(webhook_endpoint::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(endpoint)
        .collect()
}

pub async fn find_endpoint<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
) -> Result<Option<WebhookEndpoint>, DbErr> {
    webhook_endpoint::Entity::find_by_id(id)
        .one(db)
        .await?
        .map(endpoint)
        .transpose()
}

/// Changes an endpoint's URL, types, description and (when given)
/// whether it is enabled; enabling it again forgets its failures. None
/// when there is no such endpoint.
pub async fn update_endpoint<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    url: &str,
    events: &[WebhookEventType],
    description: Option<&str>,
    enabled: Option<bool>,
) -> Result<Option<WebhookEndpoint>, DbErr> {
    let Some(found) = webhook_endpoint::Entity::find_by_id(id).one(db).await? else {
        return Ok(None);
    };
    let was_enabled = found.enabled;
    let mut active: webhook_endpoint::ActiveModel = found.into();
    active.url = Set(url.to_owned());
    active.events = Set(store_event_types(events));
    active.description = Set(description.map(str::to_owned));
    if let Some(enabled) = enabled {
        active.enabled = Set(enabled);
        if enabled && !was_enabled {
            active.failing_since = Set(None);
        }
    }
    let updated = webhook_endpoint::Entity::update(active).exec(db).await?;
    endpoint(updated).map(Some)
}

/// Switches an endpoint off (after long failure).
pub async fn disable_endpoint<C: ConnectionTrait>(db: &C, id: Uuid) -> Result<(), DbErr> {
    webhook_endpoint::Entity::update_many()
        .col_expr(webhook_endpoint::Column::Enabled, Expr::value(false))
        .filter(webhook_endpoint::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Deletes an endpoint and its deliveries; whether it existed.
pub async fn delete_endpoint<C: ConnectionTrait>(db: &C, id: Uuid) -> Result<bool, DbErr> {
    // Children first: SQLite enforces the cascade only when told to.
    webhook_delivery::Entity::delete_many()
        .filter(webhook_delivery::Column::EndpointId.eq(id))
        .exec(db)
        .await?;
    let res = webhook_endpoint::Entity::delete_by_id(id).exec(db).await?;
    Ok(res.rows_affected > 0)
}

/// The stored event types of every enabled endpoint.
pub async fn subscribed_types<C: ConnectionTrait>(db: &C) -> Result<Vec<String>, DbErr> {
    webhook_endpoint::Entity::find()
        .select_only()
        .column(webhook_endpoint::Column::Events)
        .filter(webhook_endpoint::Column::Enabled.eq(true))
        .into_tuple()
        .all(db)
        .await
}

/// An endpoint's deliveries, newest first.
pub async fn deliveries<C: ConnectionTrait>(
    db: &C,
    endpoint_id: Uuid,
    status: Option<DeliveryStatus>,
    limit: u64,
) -> Result<Vec<WebhookDelivery>, DbErr> {
    use webhook_delivery::Column;
    let mut select = webhook_delivery::Entity::find().filter(Column::EndpointId.eq(endpoint_id));
    if let Some(status) = status {
        select = select.filter(Column::Status.eq(status.as_str()));
    }
    select
        .order_by_desc(Column::CreatedAt)
        .order_by_desc(Column::EventSeq)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(delivery)
        .collect()
}

pub async fn find_delivery<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
) -> Result<Option<WebhookDelivery>, DbErr> {
    webhook_delivery::Entity::find_by_id(id)
        .one(db)
        .await?
        .map(delivery)
        .transpose()
}

/// Queues a delivery again, due now, with the same id and a fresh run of
/// attempts. A lease still held by a dispatcher is left to end.
pub async fn requeue_delivery<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    use webhook_delivery::Column;
    webhook_delivery::Entity::update_many()
        .col_expr(
            Column::Status,
            Expr::value(DeliveryStatus::Pending.as_str()),
        )
        .col_expr(Column::Attempts, Expr::value(0))
        .col_expr(Column::NextAttemptAt, Expr::value(now))
        .col_expr(
            Column::DeliveredAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Deletes up to `batch` finished deliveries created before `cutoff`, then
/// the events fanned out before it that no delivery needs any more.
/// Returns how many deliveries and events went.
pub async fn purge_before<C: ConnectionTrait>(
    db: &C,
    cutoff: DateTime<Utc>,
    batch: u64,
) -> Result<u64, DbErr> {
    use webhook_delivery::Column;
    let done: Vec<Uuid> = webhook_delivery::Entity::find()
        .select_only()
        .column(Column::Id)
        .filter(Column::Status.ne(DeliveryStatus::Pending.as_str()))
        .filter(Column::CreatedAt.lt(cutoff))
        .limit(batch)
        .into_tuple()
        .all(db)
        .await?;
    let mut purged = 0;
    if !done.is_empty() {
        purged += webhook_delivery::Entity::delete_many()
            .filter(Column::Id.is_in(done))
            .exec(db)
            .await?
            .rows_affected;
    }
    let unneeded: Vec<i64> = webhook_event::Entity::find()
        .select_only()
        .column(webhook_event::Column::Seq)
        .filter(webhook_event::Column::FannedOut.eq(true))
        .filter(webhook_event::Column::CreatedAt.lt(cutoff))
        .filter(Expr::cust(
            "NOT EXISTS (SELECT 1 FROM webhook_deliveries d \
               WHERE d.event_seq = webhook_events.seq)",
        ))
        .limit(batch)
        .into_tuple()
        .all(db)
        .await?;
    if !unneeded.is_empty() {
        purged += webhook_event::Entity::delete_many()
            .filter(webhook_event::Column::Seq.is_in(unneeded))
            .exec(db)
            .await?
            .rows_affected;
    }
    Ok(purged)
}
