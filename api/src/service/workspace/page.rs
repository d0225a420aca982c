//! What a page of sessions reads once for all its rows: the agents they
//! are with and the queue places of the waiting ones. The first row to ask
//! loads it for the page; the others wait for that and read it, so a page
//! of 100 costs the same statements as a page of one.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::domain::{Agent, ChatSession, SessionStatus};
use crate::error::AppResult;
use crate::repo::{agents, sessions};
use crate::service::Core;

pub struct SessionPage {
    core: Arc<Core>,
    agent_ids: Vec<String>,
    agents: OnceCell<HashMap<String, Agent>>,
    positions: OnceCell<HashMap<Uuid, i32>>,
}

impl SessionPage {
    pub fn new<'a>(core: &Arc<Core>, page: impl IntoIterator<Item = &'a ChatSession>) -> Arc<Self> {
        let mut agent_ids: Vec<String> = page
            .into_iter()
            .filter_map(|s| s.agent_id.clone())
            .collect();
        agent_ids.sort();
        agent_ids.dedup();
        Arc::new(SessionPage {
            core: Arc::clone(core),
            agent_ids,
            agents: OnceCell::new(),
            positions: OnceCell::new(),
        })
    }

    /// The agent, read with every other agent of the page.
    pub async fn agent(&self, id: &str) -> AppResult<Option<Agent>> {
        let all = self
            .agents
            .get_or_try_init(|| async {
                let ids: Vec<&str> = self.agent_ids.iter().map(String::as_str).collect();
                let found = agents::find_many(&self.core.db, &ids).await?;
                AppResult::Ok(found.into_iter().map(|a| (a.id.clone(), a)).collect())
            })
            .await?;
        Ok(all.get(id).cloned())
    }

    /// The session's 1-based place among WAITING sessions, from one read of
    /// the queue in routing order (as `Queue::queue` numbers it).
    pub async fn queue_position(&self, s: &ChatSession) -> AppResult<Option<i32>> {
        if s.status != SessionStatus::Waiting {
            return Ok(None);
        }
        let positions = self
            .positions
            .get_or_try_init(|| async {
                let queue = sessions::queue(&self.core.db).await?;
                AppResult::Ok(
                    queue
                        .iter()
                        .filter(|q| q.status == SessionStatus::Waiting)
                        .zip(1..)
                        .map(|(q, pos)| (q.id, pos))
                        .collect(),
                )
            })
            .await?;
        // Not in the queue as read (it moved meanwhile): ask on its own.
        match positions.get(&s.id) {
            Some(p) => Ok(Some(*p)),
            None => self.core.queue().queue_position(s).await,
        }
    }
}
