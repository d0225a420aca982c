//! This process's count of each agent's live WebSockets, which agents'
//! stored rows may lag behind it, and the order in which those rows are
//! written.
//!
//! The count in memory is the truth for this process; the database row
//! (`repo::agent_presence`) is its published copy. Every write publishes
//! the count as it is when the write runs, one write per agent at a time,
//! so writes that finish out of order still leave the latest count stored.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

use uuid::Uuid;

/// Independent write turns: agents on different stripes are written
/// concurrently, one agent's writes never.
const STRIPES: usize = 16;

pub(crate) struct LiveConnections {
    /// This process, as its rows name it: new at every start, so the rows
    /// of a process that died are never mistaken for a live one's.
    pub process: Uuid,
    /// A std mutex: held for a map update, never across an await.
    state: Mutex<State>,
    turns: [tokio::sync::Mutex<()>; STRIPES],
}

#[derive(Default)]
struct State {
    held: HashMap<String, u32>,
    /// Agents whose stored row may differ from `held`: a write is due or failed.
    dirty: HashSet<String>,
}

impl LiveConnections {
    pub fn new() -> Self {
        LiveConnections {
            process: Uuid::new_v4(),
            state: Mutex::default(),
            turns: std::array::from_fn(|_| tokio::sync::Mutex::new(())),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn opened(&self, agent_id: &str) {
        let mut state = self.state();
        *state.held.entry(agent_id.to_owned()).or_default() += 1;
        state.dirty.insert(agent_id.to_owned());
    }

    pub fn closed(&self, agent_id: &str) {
        let mut state = self.state();
        if let Some(n) = state.held.get_mut(agent_id) {
            *n = n.saturating_sub(1);
        }
        state.dirty.insert(agent_id.to_owned());
    }

    /// Live connections of the agent on this process now.
    pub fn held(&self, agent_id: &str) -> u32 {
        self.state().held.get(agent_id).copied().unwrap_or(0)
    }

    /// The agent's write turn: hold it from reading [`Self::held`] until
    /// the write committed.
    pub async fn turn(&self, agent_id: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let mut hasher = DefaultHasher::new();
        agent_id.hash(&mut hasher);
        let stripe = (hasher.finish() % STRIPES as u64) as usize;
        self.turns[stripe].lock().await
    }

    /// `held` connections of the agent are stored now. Up to date unless
    /// the count moved meanwhile (then its own write is on the way).
    pub fn written(&self, agent_id: &str, held: u32) {
        let mut state = self.state();
        if state.held.get(agent_id).copied().unwrap_or(0) != held {
            return;
        }
        state.dirty.remove(agent_id);
        if held == 0 {
            state.held.remove(agent_id);
        }
    }

    /// A write failed: the heartbeat retries it.
    pub fn failed(&self, agent_id: &str) {
        self.state().dirty.insert(agent_id.to_owned());
    }

    pub fn dirty(&self) -> Vec<String> {
        self.state().dirty.iter().cloned().collect()
    }

    /// Agents with at least one live connection on this process.
    pub fn connected(&self) -> Vec<String> {
        let state = self.state();
        state
            .held
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(a, _)| a.clone())
            .collect()
    }

    /// The process is stopping: no connection counts any more. Returns the
    /// agents whose rows must go.
    pub fn forget_all(&self) -> Vec<String> {
        let mut state = self.state();
        let State { held, dirty } = &mut *state;
        held.values_mut().for_each(|n| *n = 0);
        dirty.extend(held.keys().cloned());
        dirty.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::LiveConnections;

    #[test]
    fn counts_and_what_is_left_to_write() {
        let live = LiveConnections::new();
        live.opened("ann");
        live.opened("ann");
        live.opened("bob");
        assert_eq!(live.held("ann"), 2);
        live.written("ann", 2);
        assert_eq!(live.dirty(), vec!["bob".to_owned()]);
        // A write of a count that moved meanwhile leaves the agent to write.
        live.closed("bob");
        live.written("bob", 1);
        assert_eq!(live.dirty(), vec!["bob".to_owned()]);
        live.written("bob", 0);
        assert!(live.dirty().is_empty());
        assert_eq!(live.connected(), vec!["ann".to_owned()]);
        assert_eq!(live.forget_all(), vec!["ann".to_owned()]);
        assert_eq!(live.held("ann"), 0);
        assert!(live.connected().is_empty());
    }
}
