//! Relays events between processes through Postgres LISTEN/NOTIFY.
//!
//! A transaction that issues NOTIFY takes a database-wide lock at commit, so
//! notifying inside every message insert would cap the whole server at a few
//! thousand messages a second. Instead events are relayed after their
//! transaction committed, batched over a short window into as few
//! notifications as fit, and never carry message bodies: receivers read
//! those from storage by seq.

use std::time::Duration;

use sea_orm::sqlx::postgres::{PgConnection, PgListener, PgPool};
use sea_orm::sqlx::ConnectOptions;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{EventBus, RelayedEvent};

/// The notification channel; LISTEN/NOTIFY is scoped to one database.
const CHANNEL: &str = "switchboard_events";
/// How long the first event of a batch waits for company.
const FLUSH_WINDOW: Duration = Duration::from_millis(2);
/// NOTIFY payloads must stay under 8,000 bytes; leave room.
const MAX_PAYLOAD: usize = 7_000;
const RETRY_DELAY: Duration = Duration::from_millis(500);

#[derive(Serialize, Deserialize)]
struct Envelope {
    origin: Uuid,
    events: Vec<RelayedEvent>,
}

/// Starts relaying: a sender task that batches `outgoing` into
/// notifications, and a listener task that delivers other processes'
/// events to `bus`. Both reconnect by themselves.
pub fn spawn(pool: PgPool, bus: EventBus, outgoing: mpsc::Receiver<RelayedEvent>) {
    tokio::spawn(send_loop(pool.clone(), bus.origin(), outgoing));
    tokio::spawn(listen_loop(pool, bus));
}

/// Packs events into payloads of at most [`MAX_PAYLOAD`] bytes.
fn pack(origin: Uuid, events: Vec<RelayedEvent>) -> Vec<String> {
    let mut payloads = Vec::new();
    let mut batch: Vec<RelayedEvent> = Vec::new();
    for event in events {
        batch.push(event);
        let encoded = serde_json::to_string(&Envelope {
            origin,
            events: batch.clone(),
        })
        .unwrap_or_default();
        if encoded.len() > MAX_PAYLOAD {
            let last = batch.pop();
            if !batch.is_empty() {
                if let Ok(p) = serde_json::to_string(&Envelope {
                    origin,
                    events: std::mem::take(&mut batch),
                }) {
                    payloads.push(p);
                }
            }
            if let Some(last) = last {
                match serde_json::to_string(&Envelope {
                    origin,
                    events: vec![last.clone()],
                }) {
                    Ok(p) if p.len() <= MAX_PAYLOAD => batch.push(last),
                    _ => tracing::error!(
                        "an event is too large to relay; other processes will not see it"
                    ),
                }
            }
        }
    }
    if !batch.is_empty() {
        if let Ok(p) = serde_json::to_string(&Envelope {
            origin,
            events: batch,
        }) {
            payloads.push(p);
        }
    }
    payloads
}

/// Sends batches on a connection of its own, all of a batch's
/// notifications in one statement. Under load the shared pool has a queue of
/// requests in front of it: a relay that waited there once per notification
/// fell behind by thousands of events and dropped them (found by
/// switchboard-loadgen's `chat` scenario at 500 chats).
async fn send_loop(pool: PgPool, origin: Uuid, mut outgoing: mpsc::Receiver<RelayedEvent>) {
    let mut conn: Option<PgConnection> = None;
    while let Some(first) = outgoing.recv().await {
        let mut events = vec![first];
        let window = tokio::time::sleep(FLUSH_WINDOW);
        tokio::pin!(window);
        loop {
            tokio::select! {
                _ = &mut window => break,
                next = outgoing.recv() => match next {
                    Some(e) => events.push(e),
                    None => break,
                },
            }
        }
        let payloads = pack(origin, events);
        if conn.is_none() {
            match pool.connect_options().connect().await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    // Subscribers elsewhere catch up from storage when their
                    // next event or resync arrives; only ephemeral events are lost.
                    tracing::warn!(error = %e, "could not relay events to other processes");
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let sent = sea_orm::sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
            .bind(CHANNEL)
            .bind(&payloads)
            .execute(&mut *c)
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, "could not relay events to other processes");
            // Reconnect for the next batch.
            conn = None;
        }
    }
}

async fn listen_loop(pool: PgPool, bus: EventBus) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "event listener cannot connect; retrying");
                tokio::time::sleep(RETRY_DELAY).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %e, "event listener cannot LISTEN; retrying");
            tokio::time::sleep(RETRY_DELAY).await;
            continue;
        }
        // Anything published while we were not listening is in storage.
        bus.resync_sessions();
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    match serde_json::from_str::<Envelope>(notification.payload()) {
                        Ok(envelope) if envelope.origin == bus.origin() => {}
                        Ok(envelope) => envelope
                            .events
                            .into_iter()
                            .for_each(|e| bus.deliver_relayed(e)),
                        Err(e) => {
                            tracing::warn!(error = %e, "ignoring a malformed event notification")
                        }
                    }
                }
                Ok(None) => {
                    tracing::warn!("event listener lost its connection; reconnecting");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "event listener failed; reconnecting");
                    tokio::time::sleep(RETRY_DELAY).await;
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_stay_under_the_notify_limit() {
        let origin = Uuid::new_v4();
        let events: Vec<RelayedEvent> = (0..2_000)
            .map(|i| RelayedEvent::Messages {
                session: Uuid::new_v4(),
                up_to: i,
            })
            .collect();
        let payloads = pack(origin, events);
        assert!(payloads.len() > 1);
        let mut seen = 0;
        for p in &payloads {
            assert!(p.len() <= MAX_PAYLOAD);
            let e: Envelope = serde_json::from_str(p).unwrap();
            seen += e.events.len();
        }
        assert_eq!(seen, 2_000, "nothing lost in packing");
    }
}
