//! Who holds what: each agent's sessions and the figures routing uses.

use std::collections::HashMap;

use super::Workspace;
use crate::auth::{Role, Viewer};
use crate::domain::{Agent, ChatSession};
use crate::error::{AppError, AppResult};
use crate::repo::{agents, sessions};

/// One agent's load.
pub struct AgentWorkload {
    pub agent: Agent,
    /// OFFERED + ACTIVE, as routing counts them.
    pub held: i32,
    pub capacity: i32,
    /// What routing could still give them: 0 unless AVAILABLE.
    pub free_slots: i32,
    /// Sessions accepted or given to them since the start of the UTC day.
    pub accepted_today: i32,
    pub sessions: Vec<ChatSession>,
}

impl Workspace<'_> {
    /// Admins: every agent; agents: themselves.
    pub async fn workload(&self, viewer: &Viewer) -> AppResult<Vec<AgentWorkload>> {
        let db = &self.core.db;
        let agents = match viewer.role {
            Role::Admin => agents::list(db).await?,
            Role::Agent => {
                self.core.agents().ensure_agent(viewer).await?;
                agents::find(db, &viewer.id).await?.into_iter().collect()
            }
            Role::Customer => {
                return Err(AppError::Forbidden(
                    "only agents and admins see workload".into(),
                ))
            }
        };
        let ids: Vec<&str> = agents.iter().map(|a| a.id.as_str()).collect();
        let scope = (viewer.role != Role::Admin).then_some(ids.as_slice());
        let mut held: HashMap<String, Vec<ChatSession>> = HashMap::new();
        for s in sessions::held_by_agents(db, scope).await? {
            if let Some(a) = s.agent_id.clone() {
                held.entry(a).or_default().push(s);
            }
        }
        let start_of_day = self
            .core
            .now()
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc())
            .unwrap_or_default();
        let accepted = sessions::accepted_since(db, start_of_day).await?;
        Ok(agents
            .into_iter()
            .map(|agent| AgentWorkload {
                held: agent.active_session_count,
                capacity: agent.capacity,
                free_slots: agent.open_slots(),
                accepted_today: accepted
                    .get(&agent.id)
                    .map_or(0, |n| i32::try_from(*n).unwrap_or(i32::MAX)),
                sessions: held.remove(&agent.id).unwrap_or_default(),
                agent,
            })
            .collect())
    }
}
