//! The event bus: fans out what happened to live subscribers.
//!
//! Events are published only after the transaction that caused them has
//! committed, so a subscriber that reads storage after receiving an event
//! always finds what the event announces. Subscribers to a session must not
//! trust the bus for completeness: they replay from storage by seq and use
//! the bus only to learn that something new exists.
//!
//! Delivery to this process's subscribers is direct (the hub). With a relay
//! ([`Relay`]: Postgres LISTEN/NOTIFY or NATS), every event is also
//! forwarded to the other processes of the deployment, which deliver it to
//! theirs.

pub mod nats;
mod postgres;
mod relay;
mod topics;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

use crate::domain::{Agent, ChatSession, Message, Note, Party};
pub use relay::{Relay, RelayError};
pub use topics::{TopicReceiver, Topics};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum SessionEvent {
    MessagePosted(Message),
    TypingChanged {
        session_id: Uuid,
        sender: Party,
        typing: bool,
    },
    ReceiptUpdated {
        session_id: Uuid,
        reader: Party,
        delivered_seq: i32,
        read_seq: i32,
    },
    SessionChanged(ChatSession),
    /// An internal note: only staff subscribers pass it on.
    NoteAdded(Note),
}

/// What a session subscriber receives.
// Nearly every signal is an event: boxing it would cost an allocation per
// publish on the hot path to save bytes on the rare StoredUpTo.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum SessionSignal {
    Event(SessionEvent),
    /// Messages up to this seq exist in storage (from another process:
    /// bodies are read from the database, not carried by the relay).
    StoredUpTo(i32),
    /// Something may have been missed (the relay reconnected): read storage.
    Resync,
    /// A note with this id is stored (from another process: like message
    /// bodies, note bodies are read from the database, not relayed).
    NoteStored(Uuid),
}

/// Queue counts at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    pub waiting: i32,
    pub offered: i32,
    pub active: i32,
    pub available_agents: i32,
    pub free_slots: i32,
    pub longest_wait_seconds: i32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueueChanged {
    pub session: ChatSession,
    pub stats: QueueStats,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum AgentEvent {
    SessionOffered {
        session: ChatSession,
        expires_at: Option<DateTime<Utc>>,
    },
    SessionAssigned(ChatSession),
    AgentChanged(Agent),
}

/// An event as it travels between processes: small, and never a message
/// body (those can exceed what a notification may carry).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum RelayedEvent {
    Messages {
        session: Uuid,
        up_to: i32,
    },
    Note {
        session: Uuid,
        note: Uuid,
    },
    Session {
        session: Uuid,
        event: SessionEvent,
    },
    Agent {
        agent: String,
        event: AgentEvent,
    },
    Queue(QueueChanged),
    /// Webhook endpoints changed: cached subscriptions are stale.
    WebhooksChanged,
    /// Events of the sender were dropped before they could be relayed:
    /// session subscribers catch up from storage.
    Resync,
}

/// Per-session buffer. A subscriber further behind than this is told it
/// lagged and catches up from storage.
const SESSION_BUFFER: usize = 64;
const AGENT_BUFFER: usize = 64;
const QUEUE_BUFFER: usize = 1024;
/// Events waiting to be relayed. A relay this far behind drops events (and
/// says so in the log) rather than hold memory without bound.
const RELAY_BUFFER: usize = 16_384;

/// A cheap-to-clone handle; every clone publishes to the same subscribers.
#[derive(Clone)]
pub struct EventBus {
    hub: Arc<Hub>,
    relay: Option<mpsc::Sender<RelayedEvent>>,
    /// Identifies this process's notifications, so it skips its own echo.
    origin: Uuid,
    /// Events dropped because the relay was behind, not yet reported to the
    /// other processes.
    dropped: Arc<AtomicU64>,
    /// Counts changes to webhook endpoints, here and relayed: a cache of
    /// what is subscribed holds while this stays the same.
    webhooks_changed: Arc<AtomicU64>,
}

/// This process's subscribers.
struct Hub {
    sessions: Topics<Uuid, SessionSignal>,
    agents: Topics<String, AgentEvent>,
    queue: broadcast::Sender<QueueChanged>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::in_process()
    }
}

impl EventBus {
    /// A bus for one process: no relay.
    pub fn in_process() -> Self {
        EventBus {
            hub: Arc::new(Hub {
                sessions: Topics::new(SESSION_BUFFER),
                agents: Topics::new(AGENT_BUFFER),
                queue: broadcast::channel(QUEUE_BUFFER).0,
            }),
            relay: None,
            origin: Uuid::new_v4(),
            dropped: Arc::new(AtomicU64::new(0)),
            webhooks_changed: Arc::new(AtomicU64::new(0)),
        }
    }

    /// This bus, forwarding every event to a relay; returns the receiving
    /// end for the relay task.
    pub fn with_relay(mut self) -> (Self, mpsc::Receiver<RelayedEvent>) {
        let (tx, rx) = mpsc::channel(RELAY_BUFFER);
        self.relay = Some(tx);
        (self, rx)
    }

    pub fn origin(&self) -> Uuid {
        self.origin
    }

    fn relay(&self, event: RelayedEvent) {
        if let Some(tx) = &self.relay {
            if tx.try_send(event).is_err() && self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                // Once per episode: the relay reports the count, and asks the
                // other processes to resync, when it catches up.
                tracing::warn!(
                    "event relay is behind; events for other processes are being dropped"
                );
            }
        }
    }

    pub fn publish_session(&self, session_id: Uuid, event: SessionEvent) {
        let relayed = match &event {
            SessionEvent::MessagePosted(m) => RelayedEvent::Messages {
                session: session_id,
                up_to: m.seq,
            },
            SessionEvent::NoteAdded(n) => RelayedEvent::Note {
                session: session_id,
                note: n.id,
            },
            other => RelayedEvent::Session {
                session: session_id,
                event: other.clone(),
            },
        };
        self.hub
            .sessions
            .publish(&session_id, SessionSignal::Event(event));
        self.relay(relayed);
    }

    pub fn subscribe_session(&self, session_id: Uuid) -> TopicReceiver<Uuid, SessionSignal> {
        self.hub.sessions.subscribe(session_id)
    }

    pub fn publish_agent(&self, agent_id: &str, event: AgentEvent) {
        self.hub.agents.publish(agent_id, event.clone());
        self.relay(RelayedEvent::Agent {
            agent: agent_id.to_owned(),
            event,
        });
    }

    pub fn subscribe_agent(&self, agent_id: &str) -> TopicReceiver<String, AgentEvent> {
        self.hub.agents.subscribe(agent_id.to_owned())
    }

    pub fn publish_queue(&self, event: QueueChanged) {
        // No subscriber is not an error: nobody is watching the queue.
        let _ = self.hub.queue.send(event.clone());
        self.relay(RelayedEvent::Queue(event));
    }

    pub fn subscribe_queue(&self) -> broadcast::Receiver<QueueChanged> {
        self.hub.queue.subscribe()
    }

    /// Webhook endpoints changed (after the commit): every process's
    /// cache of subscribed event types is stale.
    pub fn publish_webhooks_changed(&self) {
        self.webhooks_changed.fetch_add(1, Ordering::Relaxed);
        self.relay(RelayedEvent::WebhooksChanged);
    }

    /// How many webhook endpoint changes this process has heard of.
    pub fn webhooks_generation(&self) -> u64 {
        self.webhooks_changed.load(Ordering::Relaxed)
    }

    /// Delivers an event that another process published.
    pub fn deliver_relayed(&self, event: RelayedEvent) {
        match event {
            RelayedEvent::Messages { session, up_to } => self
                .hub
                .sessions
                .publish(&session, SessionSignal::StoredUpTo(up_to)),
            RelayedEvent::Note { session, note } => self
                .hub
                .sessions
                .publish(&session, SessionSignal::NoteStored(note)),
            RelayedEvent::Session { session, event } => self
                .hub
                .sessions
                .publish(&session, SessionSignal::Event(event)),
            RelayedEvent::Agent { agent, event } => self.hub.agents.publish(&agent, event),
            RelayedEvent::Queue(q) => {
                let _ = self.hub.queue.send(q);
            }
            RelayedEvent::WebhooksChanged => {
                self.webhooks_changed.fetch_add(1, Ordering::Relaxed);
            }
            RelayedEvent::Resync => {
                // What was dropped may have been an endpoint change.
                self.webhooks_changed.fetch_add(1, Ordering::Relaxed);
                self.resync_sessions()
            }
        }
    }

    /// Tells every session subscriber to catch up from storage.
    pub fn resync_sessions(&self) {
        self.hub.sessions.publish_all(SessionSignal::Resync);
    }
}
