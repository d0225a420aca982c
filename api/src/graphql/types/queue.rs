//! The queue: its counters, and the events of the queue feed.

use async_graphql::SimpleObject;

use super::ChatSessionGql;
use crate::events;

#[derive(SimpleObject)]
#[graphql(name = "QueueStats")]
pub struct QueueStatsGql {
    pub waiting: i32,
    pub offered: i32,
    pub active: i32,
    pub available_agents: i32,
    /// Sum over AVAILABLE agents of capacity minus held sessions.
    pub free_slots: i32,
    /// Seconds the head of the queue has waited; 0 when the queue is empty.
    pub longest_wait_seconds: i32,
}

impl From<events::QueueStats> for QueueStatsGql {
    fn from(s: events::QueueStats) -> Self {
        QueueStatsGql {
            waiting: s.waiting,
            offered: s.offered,
            active: s.active,
            available_agents: s.available_agents,
            free_slots: s.free_slots,
            longest_wait_seconds: s.longest_wait_seconds,
        }
    }
}

#[derive(SimpleObject)]
pub struct QueueChanged {
    /// The session that entered, moved in, or left the queue.
    pub session: ChatSessionGql,
    pub stats: QueueStatsGql,
}

impl From<events::QueueChanged> for QueueChanged {
    fn from(e: events::QueueChanged) -> Self {
        QueueChanged {
            session: e.session.into(),
            stats: e.stats.into(),
        }
    }
}
