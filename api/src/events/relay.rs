//! What every way of relaying events between processes shares: the one
//! entry point ([`Relay::start`]), the wire envelope, packing events into
//! payloads a transport can carry, the batching sender, and delivery of
//! what arrives. A transport only says how one payload leaves the process
//! ([`Transport`]) and how payloads come in.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sea_orm::sqlx::postgres::PgPool;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{nats, postgres, EventBus, RelayedEvent};

/// How events reach the other processes of a deployment.
pub enum Relay {
    /// One process: events never leave it.
    InProcess,
    /// Postgres LISTEN/NOTIFY on the application's own database.
    Postgres(PgPool),
    /// NATS core pub/sub.
    Nats(nats::NatsRelay),
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("cannot connect to NATS at {url}: {reason}")]
    NatsConnect { url: String, reason: String },
    #[error("NATS at {url}: {reason}")]
    NatsSubscribe { url: String, reason: String },
}

impl Relay {
    /// Starts relaying `bus`'s events and returns the bus to publish on.
    /// Once this returns, events other processes publish reach `bus`.
    pub async fn start(self, bus: EventBus) -> Result<EventBus, RelayError> {
        match self {
            Relay::InProcess => Ok(bus),
            Relay::Postgres(pool) => {
                let (bus, outgoing) = bus.with_relay();
                postgres::spawn(pool, bus.clone(), outgoing);
                Ok(bus)
            }
            Relay::Nats(config) => nats::start(config, bus).await,
        }
    }
}

/// How one payload leaves this process, to every process of the deployment
/// (this one included: receivers skip their own echo).
pub(super) trait Transport: Send + 'static {
    /// Largest payload the transport carries, in bytes.
    const MAX_PAYLOAD: usize;
    fn send(
        &mut self,
        payload: String,
    ) -> impl Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>> + Send;
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    origin: Uuid,
    events: Vec<RelayedEvent>,
}

/// How long the first event of a batch waits for company.
const FLUSH_WINDOW: Duration = Duration::from_millis(2);
const ENVELOPE_TAIL: &str = "]}";

fn envelope_head(origin: Uuid) -> String {
    format!("{{\"origin\":\"{origin}\",\"events\":[")
}

/// Packs events into as few payloads of at most `max_payload` bytes as fit.
/// Each event is encoded once and spliced in, so packing stays linear in
/// the number of events however many a payload holds.
pub(super) fn pack(origin: Uuid, events: Vec<RelayedEvent>, max_payload: usize) -> Vec<String> {
    let head = envelope_head(origin);
    let mut payloads = Vec::new();
    let mut current = head.clone();
    let mut in_current = 0;
    for event in events {
        let encoded = match serde_json::to_string(&event) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode an event to relay");
                continue;
            }
        };
        if head.len() + encoded.len() + ENVELOPE_TAIL.len() > max_payload {
            tracing::error!("an event is too large to relay; other processes will not see it");
            continue;
        }
        if in_current > 0 && current.len() + 1 + encoded.len() + ENVELOPE_TAIL.len() > max_payload {
            current.push_str(ENVELOPE_TAIL);
            payloads.push(std::mem::replace(&mut current, head.clone()));
            in_current = 0;
        }
        if in_current > 0 {
            current.push(',');
        }
        current.push_str(&encoded);
        in_current += 1;
    }
    if in_current > 0 {
        current.push_str(ENVELOPE_TAIL);
        payloads.push(current);
    }
    payloads
}

/// An envelope with no events: a transport that needs to know when its
/// own messages come back (NATS, after a reconnect) sends one to itself.
pub(super) fn probe(origin: Uuid) -> String {
    format!("{}{ENVELOPE_TAIL}", envelope_head(origin))
}

/// Batches `outgoing` over [`FLUSH_WINDOW`] and sends it packed. Events are
/// relayed only after their transaction committed (the bus is called after
/// commit), so nothing here holds a database lock.
pub(super) async fn send_loop<T: Transport>(
    mut transport: T,
    bus: EventBus,
    mut outgoing: mpsc::Receiver<RelayedEvent>,
) {
    let origin = bus.origin();
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
        let dropped = bus.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            // What was dropped is committed; a resync after this batch
            // finds it in storage.
            tracing::warn!(
                dropped,
                "events for other processes were dropped; asking them to resync"
            );
            events.push(RelayedEvent::Resync);
        }
        for payload in pack(origin, events, T::MAX_PAYLOAD) {
            if let Err(e) = transport.send(payload).await {
                // Subscribers elsewhere catch up from storage when their
                // next event or resync arrives; only ephemeral events are lost.
                tracing::warn!(error = %e, "could not relay events to other processes");
            }
        }
    }
}

/// Who sent a payload that arrived.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Sender {
    /// This process: its own echo, not delivered again.
    ThisProcess { events: usize },
    /// Another process; its events were delivered to this one's subscribers.
    Other,
}

/// Delivers a payload from another process to this process's subscribers.
pub(super) fn receive(bus: &EventBus, payload: &[u8]) -> Result<Sender, serde_json::Error> {
    let envelope: Envelope = serde_json::from_slice(payload)?;
    if envelope.origin == bus.origin() {
        return Ok(Sender::ThisProcess {
            events: envelope.events.len(),
        });
    }
    envelope
        .events
        .into_iter()
        .for_each(|e| bus.deliver_relayed(e));
    Ok(Sender::Other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Agent, AgentStatus};
    use crate::events::{AgentEvent, SessionSignal};

    fn messages(n: i32) -> Vec<RelayedEvent> {
        (0..n)
            .map(|i| RelayedEvent::Messages {
                session: Uuid::new_v4(),
                up_to: i,
            })
            .collect()
    }

    #[test]
    fn payloads_stay_under_the_limit_and_lose_nothing() {
        for max in [7_000, 32 * 1024] {
            let origin = Uuid::new_v4();
            let payloads = pack(origin, messages(2_000), max);
            assert!(payloads.len() > 1);
            let mut seen = 0;
            for p in &payloads {
                assert!(p.len() <= max);
                let e: Envelope = serde_json::from_str(p).unwrap();
                assert_eq!(e.origin, origin);
                seen += e.events.len();
            }
            assert_eq!(seen, 2_000, "nothing lost in packing");
        }
    }

    #[test]
    fn an_event_too_large_for_any_payload_is_skipped_alone() {
        let mut events = messages(3);
        events.insert(
            1,
            RelayedEvent::Agent {
                agent: "x".repeat(10_000),
                event: AgentEvent::AgentChanged(Agent {
                    id: "x".into(),
                    name: "x".into(),
                    status: AgentStatus::Available,
                    capacity: 2,
                    active_session_count: 0,
                    idle_since: None,
                    skills: Default::default(),
                }),
            },
        );
        let payloads = pack(Uuid::new_v4(), events, 7_000);
        let seen: usize = payloads
            .iter()
            .map(|p| serde_json::from_str::<Envelope>(p).unwrap().events.len())
            .sum();
        assert_eq!(seen, 3);
    }

    #[tokio::test]
    async fn own_payloads_are_not_delivered_and_probes_carry_no_events() {
        let bus = EventBus::in_process();
        let other = EventBus::in_process();
        let own = receive(&bus, probe(bus.origin()).as_bytes()).unwrap();
        assert_eq!(own, Sender::ThisProcess { events: 0 });
        let sid = Uuid::new_v4();
        let mut rx = bus.subscribe_session(sid);
        let payload = pack(
            other.origin(),
            vec![RelayedEvent::Messages {
                session: sid,
                up_to: 7,
            }],
            7_000,
        );
        assert_eq!(receive(&bus, payload[0].as_bytes()).unwrap(), Sender::Other);
        assert!(matches!(rx.recv().await, Ok(SessionSignal::StoredUpTo(7))));
        assert!(receive(&bus, b"not json").is_err());
    }

    #[tokio::test]
    async fn notes_travel_as_ids_and_arrive_as_stored() {
        let (bus, mut outgoing) = EventBus::in_process().with_relay();
        let sid = Uuid::new_v4();
        let note = crate::domain::Note {
            id: Uuid::new_v4(),
            session_id: sid,
            author_id: "ann".into(),
            body: "x".repeat(20_000),
            created_at: chrono::Utc::now(),
        };
        bus.publish_session(sid, super::super::SessionEvent::NoteAdded(note.clone()));
        let relayed = outgoing.recv().await.unwrap();
        assert!(
            matches!(relayed, RelayedEvent::Note { session, note: id } if session == sid && id == note.id),
            "no body on the wire"
        );
        let other = EventBus::in_process();
        let mut rx = other.subscribe_session(sid);
        let payload = pack(bus.origin(), vec![relayed], 7_000);
        receive(&other, payload[0].as_bytes()).unwrap();
        assert!(matches!(rx.recv().await, Ok(SessionSignal::NoteStored(id)) if id == note.id));
    }

    /// Sends payloads into a channel the test reads.
    struct Capture(mpsc::UnboundedSender<String>);

    impl Transport for Capture {
        const MAX_PAYLOAD: usize = 64 * 1024;
        async fn send(
            &mut self,
            payload: String,
        ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            self.0.send(payload)?;
            Ok(())
        }
    }

    #[tokio::test]
    async fn events_dropped_by_a_relay_behind_make_the_others_resync() {
        let (bus, outgoing) = EventBus::in_process().with_relay();
        let sid = Uuid::new_v4();
        let sent = super::super::RELAY_BUFFER + 10;
        for up_to in 0..sent {
            bus.publish_session(
                sid,
                super::super::SessionEvent::TypingChanged {
                    session_id: sid,
                    sender: crate::domain::Party::Agent,
                    typing: up_to % 2 == 0,
                },
            );
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        tokio::spawn(send_loop(Capture(tx), bus.clone(), outgoing));
        let (mut relayed, mut resync) = (0, false);
        // Everything queued arrives, and the drops are reported.
        while !resync || relayed < super::super::RELAY_BUFFER {
            let payload = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("the relay sent everything queued and a resync")
                .unwrap();
            for event in serde_json::from_str::<Envelope>(&payload).unwrap().events {
                match event {
                    RelayedEvent::Resync => resync = true,
                    _ => relayed += 1,
                }
            }
        }
        assert_eq!(relayed, super::super::RELAY_BUFFER);
        assert_eq!(bus.dropped.load(Ordering::Relaxed), 0, "reported once");
    }
}
