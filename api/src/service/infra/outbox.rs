//! Events gathered while a transaction runs and published after it commits,
//! so that no subscriber hears of something that did not happen.

use uuid::Uuid;

use std::sync::Arc;

use crate::domain::{Agent, ChatSession};
use crate::events::{AgentEvent, QueueChanged, SessionEvent};
use crate::service::Core;

#[derive(Default)]
pub(crate) struct Outbox {
    session: Vec<(Uuid, SessionEvent)>,
    agent: Vec<(String, AgentEvent)>,
    queue: Vec<ChatSession>,
}

impl Outbox {
    pub fn session(&mut self, id: Uuid, event: SessionEvent) {
        self.session.push((id, event));
    }

    pub fn agent(&mut self, id: &str, event: AgentEvent) {
        self.agent.push((id.to_owned(), event));
    }

    pub fn agent_changed(&mut self, agent: Agent) {
        let id = agent.id.clone();
        self.agent.push((id, AgentEvent::AgentChanged(agent)));
    }

    /// `session` entered, moved in or left the queue.
    pub fn queue(&mut self, session: ChatSession) {
        self.queue.push(session);
    }

    pub async fn publish(self, core: &Arc<Core>) {
        core.webhooks.wake_if_recorded();
        for (id, e) in self.session {
            core.bus.publish_session(id, e);
        }
        for (id, e) in self.agent {
            core.bus.publish_agent(&id, e);
        }
        if self.queue.is_empty() {
            return;
        }
        // One stats read for the whole batch: they describe the queue after it.
        match core.queue().compute_queue_stats().await {
            Ok(stats) => {
                for session in self.queue {
                    core.bus.publish_queue(QueueChanged {
                        session,
                        stats: stats.clone(),
                    });
                }
            }
            Err(e) => tracing::error!(error = %e, "could not compute queue stats for QueueChanged"),
        }
    }
}
