//! The event bus: fans out what happened to live subscribers.
//!
//! Events are published only after the transaction that caused them has
//! committed, so a subscriber that reads storage after receiving an event
//! always finds what the event announces. Subscribers to a session must not
//! trust the bus for completeness: they replay from storage by seq and use
//! the bus only to learn that something new exists.

mod topics;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::domain::{Agent, ChatSession, Message, Party};
pub use topics::{TopicReceiver, Topics};

#[derive(Clone, Debug)]
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
}

/// Queue counts at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub waiting: i32,
    pub offered: i32,
    pub active: i32,
    pub available_agents: i32,
    pub free_slots: i32,
    pub longest_wait_seconds: i32,
}

#[derive(Clone, Debug)]
pub struct QueueChanged {
    pub session: ChatSession,
    pub stats: QueueStats,
}

#[derive(Clone, Debug)]
pub enum AgentEvent {
    SessionOffered {
        session: ChatSession,
        expires_at: Option<DateTime<Utc>>,
    },
    SessionAssigned(ChatSession),
    AgentChanged(Agent),
}

/// Per-session buffer. A subscriber further behind than this is told it
/// lagged and catches up from storage.
const SESSION_BUFFER: usize = 256;
const AGENT_BUFFER: usize = 64;
const QUEUE_BUFFER: usize = 1024;

/// A cheap-to-clone handle; every clone publishes to the same subscribers.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<Inner>,
}

struct Inner {
    sessions: Topics<Uuid, SessionEvent>,
    agents: Topics<String, AgentEvent>,
    queue: broadcast::Sender<QueueChanged>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        EventBus {
            inner: Arc::new(Inner {
                sessions: Topics::new(SESSION_BUFFER),
                agents: Topics::new(AGENT_BUFFER),
                queue: broadcast::channel(QUEUE_BUFFER).0,
            }),
        }
    }

    pub fn publish_session(&self, session_id: Uuid, event: SessionEvent) {
        self.inner.sessions.publish(&session_id, event);
    }

    pub fn subscribe_session(&self, session_id: Uuid) -> TopicReceiver<Uuid, SessionEvent> {
        self.inner.sessions.subscribe(session_id)
    }

    pub fn publish_agent(&self, agent_id: &str, event: AgentEvent) {
        self.inner.agents.publish(agent_id, event);
    }

    pub fn subscribe_agent(&self, agent_id: &str) -> TopicReceiver<String, AgentEvent> {
        self.inner.agents.subscribe(agent_id.to_owned())
    }

    pub fn publish_queue(&self, event: QueueChanged) {
        // No subscriber is not an error: nobody is watching the queue.
        let _ = self.inner.queue.send(event);
    }

    pub fn subscribe_queue(&self) -> broadcast::Receiver<QueueChanged> {
        self.inner.queue.subscribe()
    }

    /// Session topics currently open; for tests and metrics.
    pub fn open_session_topics(&self) -> usize {
        self.inner.sessions.len()
    }
}
