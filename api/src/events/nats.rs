//! Relays events between processes through NATS core pub/sub, for
//! deployments that outgrow Postgres signalling.
//!
//! Batching, packing and delivery are shared with the Postgres relay
//! ([`super::relay`]); like it, payloads never carry message bodies, so a
//! receiver reads those from storage by seq.
//!
//! The client reconnects by itself. NATS core keeps nothing for a client
//! that is away, so after every (re)connect this process's session
//! subscribers catch up from storage. The catch-up must not start before
//! the server has our subscription again, or an event published in between
//! would be missed by both the catch-up and the subscription: the client
//! re-subscribes before anything else it sends, and the server handles one
//! connection's messages in order, so when a probe we publish after
//! connecting comes back to us, the subscription is live; the resync
//! happens then.

use std::sync::Arc;
use std::time::Duration;

use async_nats::{Client, Event, Subject};
use futures_util::StreamExt;
use tokio::sync::{oneshot, Notify};
use uuid::Uuid;

use super::relay::{self, RelayError, Sender, Transport};
use super::EventBus;

/// Where and on which subject a deployment's processes meet.
#[derive(Clone, Debug)]
pub struct NatsRelay {
    pub url: String,
    pub subject: String,
}

/// The subject of one deployment.
///
/// Many deployments (and, in tests, many databases at once) may share one
/// NATS server, and their ids overlap (every test has an agent "ann"), so
/// the subject must be shared by exactly the processes of one deployment.
/// They all share one database, and only that: its deployment id (a random
/// uuid made once by a migration, under the migration lock) scopes the
/// subject. A fixed name would mix deployments; a name from configuration
/// would mix them the day two are configured alike. `NATS_SUBJECT`
/// overrides it for NATS servers whose permissions name subjects ahead.
pub fn subject_for(deployment: Uuid) -> String {
    format!("switchboard.{}.events", deployment.simple())
}

/// Largest payload we publish: far below NATS's default 1 MiB limit, so
/// one batch never holds the connection for long.
const MAX_PAYLOAD: usize = 32 * 1024;
/// Messages the client queues while it is away from the server. With the
/// bus's own bounded queue in front, this bounds the memory an outage
/// costs: past it, publishing waits and the bus drops (and logs) events
/// instead of blocking requests.
const CLIENT_CAPACITY: usize = 256;
/// Messages received but not yet delivered; past it the client drops them
/// and reports a slow consumer, and subscribers resync from storage.
const SUBSCRIPTION_CAPACITY: usize = 4096;
/// How often the client pings the server: a silently dead connection is
/// noticed within two of these.
const PING_INTERVAL: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long start-up waits for the first probe to come back.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects, subscribes and starts relaying. Returns once this process
/// receives what the others publish.
pub(super) async fn start(config: NatsRelay, bus: EventBus) -> Result<EventBus, RelayError> {
    let connect_error = |reason: String| RelayError::NatsConnect {
        url: redact(&config.url),
        reason,
    };
    // Connects and slow-consumer drops both call for a probe and a resync.
    let resync_needed = Arc::new(Notify::new());
    let on_event = resync_needed.clone();
    let client = async_nats::ConnectOptions::new()
        .name("switchboard")
        .client_capacity(CLIENT_CAPACITY)
        .subscription_capacity(SUBSCRIPTION_CAPACITY)
        .ping_interval(PING_INTERVAL)
        .connection_timeout(CONNECT_TIMEOUT)
        .event_callback(move |event| {
            let resync_needed = on_event.clone();
            async move {
                match event {
                    Event::Connected => {
                        tracing::info!("event relay connected to NATS");
                        resync_needed.notify_one();
                    }
                    Event::SlowConsumer(_) => {
                        tracing::warn!("event relay fell behind NATS; events were dropped");
                        resync_needed.notify_one();
                    }
                    Event::Disconnected => {
                        tracing::warn!("event relay lost NATS; reconnecting")
                    }
                    other => tracing::warn!(event = %other, "event relay: NATS reported"),
                }
            }
        })
        .connect(config.url.as_str())
        .await
        .map_err(|e| connect_error(e.to_string()))?;
    let subscriber = client
        .subscribe(config.subject.clone())
        .await
        .map_err(|e| RelayError::NatsSubscribe {
            url: redact(&config.url),
            reason: e.to_string(),
        })?;
    let subject = Subject::from(config.subject.as_str());
    let (bus, outgoing) = bus.with_relay();
    let (ready_tx, ready_rx) = oneshot::channel();
    tokio::spawn(relay::send_loop(
        Publish {
            client: client.clone(),
            subject: subject.clone(),
        },
        bus.clone(),
        outgoing,
    ));
    tokio::spawn(listen_loop(
        client,
        subject,
        subscriber,
        bus.clone(),
        resync_needed,
        ready_tx,
    ));
    match tokio::time::timeout(READY_TIMEOUT, ready_rx).await {
        Ok(Ok(())) => Ok(bus),
        _ => Err(RelayError::NatsSubscribe {
            url: redact(&config.url),
            reason: format!(
                "no message on {} came back within {READY_TIMEOUT:?}",
                config.subject
            ),
        }),
    }
}

struct Publish {
    client: Client,
    subject: Subject,
}

impl Transport for Publish {
    const MAX_PAYLOAD: usize = MAX_PAYLOAD;

    async fn send(
        &mut self,
        payload: String,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        // While disconnected this queues in the client, and waits once its
        // queue is full; the bus keeps request paths from waiting with it.
        self.client
            .publish(self.subject.clone(), payload.into())
            .await?;
        Ok(())
    }
}

async fn listen_loop(
    client: Client,
    subject: Subject,
    mut subscriber: async_nats::Subscriber,
    bus: EventBus,
    resync_needed: Arc<Notify>,
    ready: oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let send_probe = |client: &Client| {
        let client = client.clone();
        let subject = subject.clone();
        let probe = relay::probe(bus.origin());
        // Its own task: while disconnected the publish may wait, and this
        // loop must keep delivering what already arrived.
        tokio::spawn(async move {
            if let Err(e) = client.publish(subject, probe.into()).await {
                tracing::warn!(error = %e, "event relay cannot probe NATS");
            }
        });
    };
    send_probe(&client);
    loop {
        tokio::select! {
            _ = resync_needed.notified() => send_probe(&client),
            message = subscriber.next() => {
                let Some(message) = message else {
                    tracing::error!("event relay's NATS subscription ended; events from other processes stop");
                    return;
                };
                match relay::receive(&bus, &message.payload) {
                    Ok(Sender::ThisProcess { events: 0 }) => {
                        // Our probe: the subscription is live again, and
                        // anything published while it was not is in storage.
                        bus.resync_sessions();
                        if let Some(ready) = ready.take() {
                            let _ = ready.send(());
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "ignoring a malformed event message"),
                }
            }
        }
    }
}

/// `nats://user:secret@host` → `nats://user:***@host`, for errors and logs.
fn redact(url: &str) -> String {
    crate::config::redact_url(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployments_get_distinct_valid_subjects() {
        let a = subject_for(Uuid::new_v4());
        let b = subject_for(Uuid::new_v4());
        assert_ne!(a, b);
        assert!(a.starts_with("switchboard.") && a.ends_with(".events"));
        assert!(!a.contains(['*', '>', ' ']));
    }
}
