//! Relays events between processes through Postgres LISTEN/NOTIFY.
//!
//! A transaction that issues NOTIFY takes a database-wide lock at commit, so
//! notifying inside every message insert would cap the whole server at a few
//! thousand messages a second. Instead events are relayed after their
//! transaction committed, batched over a short window into as few
//! notifications as fit ([`super::relay`]), and never carry message bodies:
//! receivers read those from storage by seq.

use std::time::Duration;

use sea_orm::sqlx::postgres::{PgConnection, PgListener, PgPool};
use sea_orm::sqlx::ConnectOptions;
use tokio::sync::mpsc;

use super::relay::{self, Transport};
use super::{EventBus, RelayedEvent};

/// The notification channel; LISTEN/NOTIFY is scoped to one database, so
/// deployments on different databases never hear each other.
const CHANNEL: &str = "switchboard_events";
const RETRY_DELAY: Duration = Duration::from_millis(500);

/// Starts relaying: a sender task that batches `outgoing` into
/// notifications, and a listener task that delivers other processes'
/// events to `bus`. Both reconnect by themselves.
pub(super) fn spawn(pool: PgPool, bus: EventBus, outgoing: mpsc::Receiver<RelayedEvent>) {
    tokio::spawn(relay::send_loop(
        Notify {
            pool: pool.clone(),
            conn: None,
        },
        bus.clone(),
        outgoing,
    ));
    tokio::spawn(listen_loop(pool, bus));
}

/// Sends on a connection of its own. Under load the shared pool has a queue
/// of requests in front of it, and a relay that waited there once per
/// notification fell thousands of events behind and dropped them
/// (switchboard-loadgen's `chat` at 500 chats; see BENCHMARKS.md).
struct Notify {
    pool: PgPool,
    conn: Option<PgConnection>,
}

impl Transport for Notify {
    /// NOTIFY payloads must stay under 8,000 bytes; leave room.
    const MAX_PAYLOAD: usize = 7_000;

    async fn send(
        &mut self,
        payload: String,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let conn = match self.conn.as_mut() {
            Some(c) => c,
            None => self
                .conn
                .insert(self.pool.connect_options().connect().await?),
        };
        let sent = sea_orm::sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(&payload)
            .execute(&mut *conn)
            .await;
        if sent.is_err() {
            // Reconnect for the next payload.
            self.conn = None;
        }
        sent?;
        Ok(())
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
                    if let Err(e) = relay::receive(&bus, notification.payload().as_bytes()) {
                        tracing::warn!(error = %e, "ignoring a malformed event notification");
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
