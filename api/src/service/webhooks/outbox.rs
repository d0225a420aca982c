//! Writing webhook events in the business transaction: an event exists if
//! and only if its change committed. An event type no enabled endpoint
//! subscribes to is not written, and costs no statement: which types are
//! wanted is cached per process, and the cache is dropped when any process
//! changes an endpoint (the event bus relays that) or after a while.
//!
//! Services call, inside their transaction and before its commit:
//!
//! ```ignore
//! outbox::record(core, &txn, now, WebhookEvent::SessionRated { session, rating }).await?;
//! ```
//!
//! then, after the commit, `core.webhooks.wake_if_recorded()` (the
//! in-memory `infra::outbox::Outbox::publish` does it), so the dispatcher
//! looks at once rather than at its next poll.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use crate::domain::webhooks::{read_event_types, EventTypes, WebhookEvent, WebhookEventType};
use crate::error::AppResult;
use crate::repo::{outbox, webhooks};
use crate::service::Core;

/// The event types some enabled endpoint wants: from the cache, or read
/// (in `db`, the caller's transaction) when an endpoint changed since.
pub(crate) async fn subscribed<C: ConnectionTrait>(
    core: &Arc<Core>,
    db: &C,
) -> AppResult<EventTypes> {
    let generation = core.bus.webhooks_generation();
    if let Some(types) = core.webhooks.cached(generation) {
        return Ok(types);
    }
    load(core, db, generation).await
}

/// Reads the cache again if it is older than `SUBSCRIBED_TTL`: the
/// dispatcher's job, so that no business transaction pays for it.
pub(crate) async fn refresh_if_old<C: ConnectionTrait>(core: &Arc<Core>, db: &C) -> AppResult<()> {
    if core.webhooks.is_old(core.clock.instant()) {
        load(core, db, core.bus.webhooks_generation()).await?;
    }
    Ok(())
}

async fn load<C: ConnectionTrait>(
    core: &Arc<Core>,
    db: &C,
    generation: u64,
) -> AppResult<EventTypes> {
    let now = core.clock.instant();
    let mut types = EventTypes::default();
    for stored in webhooks::subscribed_types(db).await? {
        // An unknown name is a row written by other code: skip it here,
        // the admin listing reports it.
        for t in read_event_types(&stored).unwrap_or_default() {
            types.insert(t);
        }
    }
    core.webhooks.store(types, generation, now);
    Ok(types)
}

/// Whether events of type `t` are wanted: callers that would build many
/// events ask first.
pub(crate) async fn wants<C: ConnectionTrait>(
    core: &Arc<Core>,
    db: &C,
    t: WebhookEventType,
) -> AppResult<bool> {
    Ok(subscribed(core, db).await?.contains(t))
}

/// Writes one event in the caller's transaction, if any endpoint wants it.
pub(crate) async fn record<C: ConnectionTrait>(
    core: &Arc<Core>,
    txn: &C,
    at: DateTime<Utc>,
    event: WebhookEvent,
) -> AppResult<()> {
    record_all(core, txn, at, std::slice::from_ref(&event)).await
}

/// Writes the wanted ones of `events` in one statement (none when none is
/// wanted), in order: each session's events reach endpoints in this order.
pub(crate) async fn record_all<C: ConnectionTrait>(
    core: &Arc<Core>,
    txn: &C,
    at: DateTime<Utc>,
    events: &[WebhookEvent],
) -> AppResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let wanted = subscribed(core, txn).await?;
    if wanted.is_empty() {
        return Ok(());
    }
    let rows: Vec<outbox::NewEvent> = events
        .iter()
        .filter(|e| wanted.contains(e.event_type()))
        .map(|e| match e {
            WebhookEvent::MessageCreated(m) => outbox::NewEvent::message_created(m),
            _ => outbox::NewEvent {
                event_type: e.event_type().as_str(),
                session_id: Some(e.session_id()),
                payload: e.body(at),
                message_id: None,
                created_at: at,
            },
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    outbox::insert_events(txn, &rows).await?;
    recorded(core);
    Ok(())
}

/// Notes that this transaction wrote outbox rows: once it commits,
/// `wake_if_recorded` wakes the dispatcher.
pub(crate) fn recorded(core: &Arc<Core>) {
    core.webhooks.recorded.store(true, Ordering::Relaxed);
}
