//! Agents: first-sight creation, shifts and breaks, listings.

use super::outbox::Outbox;
use super::ChatService;
use crate::auth::{Role, Viewer};
use crate::domain::HistoryKind;
use crate::domain::{Agent, AgentStatus};
use crate::error::{AppError, AppResult};
use crate::repo::{self, agents};

/// One of the agent's own status changes.
#[derive(Clone, Copy, Debug)]
pub enum ShiftAction {
    StartShift,
    RequestBreak,
    EndBreak,
    EndShift,
}

impl ChatService {
    /// Creates the agent row the first time an agent token is seen.
    pub async fn ensure_agent(&self, viewer: &Viewer) -> AppResult<()> {
        if viewer.role != Role::Agent {
            return Ok(());
        }
        let known = |agents: &std::collections::HashSet<String>| agents.contains(&viewer.id);
        if known(&self.known_agents.lock().unwrap_or_else(|p| p.into_inner())) {
            return Ok(());
        }
        let name = viewer.name.as_deref().unwrap_or(&viewer.id);
        agents::insert_if_absent(
            &self.db,
            &viewer.id,
            name,
            self.policy.agent_capacity,
            self.now(),
        )
        .await?;
        self.known_agents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(viewer.id.clone());
        Ok(())
    }

    /// The calling agent's row, locked in `txn`. The row is normally created
    /// when the token is first seen; ensuring it again here means a failure
    /// then (database briefly away) does not stick to a WebSocket.
    pub(crate) async fn lock_calling_agent(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        viewer: &Viewer,
    ) -> AppResult<Agent> {
        let agent_id = viewer.require_agent()?;
        self.ensure_agent(viewer).await?;
        agents::lock(txn, agent_id)
            .await?
            .ok_or_else(|| AppError::Internal(format!("agent {agent_id} has no row")))
    }

    /// The caller's agent record, when the caller is an agent.
    pub async fn viewer_agent(&self, viewer: &Viewer) -> AppResult<Option<Agent>> {
        if viewer.role != Role::Agent {
            return Ok(None);
        }
        Ok(agents::find(&self.db, &viewer.id).await?)
    }

    /// Any agent by id; visible to everyone who can see a session it holds.
    pub async fn agent(&self, id: &str) -> AppResult<Option<Agent>> {
        Ok(agents::find(&self.db, id).await?)
    }

    pub async fn agents(&self, viewer: &Viewer) -> AppResult<Vec<Agent>> {
        viewer.require_staff()?;
        Ok(agents::list(&self.db).await?)
    }

    /// Shift start and end, break request and end.
    pub async fn change_availability(
        &self,
        viewer: &Viewer,
        action: ShiftAction,
    ) -> AppResult<Agent> {
        let agent_id = viewer.require_agent()?;
        let now = self.now();
        let txn = repo::begin_write(&self.db).await?;
        let agent = self.lock_calling_agent(&txn, viewer).await?;
        let mut outbox = Outbox::default();
        let leaving = matches!(action, ShiftAction::RequestBreak | ShiftAction::EndShift);
        // Someone leaving AVAILABLE gets nothing new: open offers go to the next agent.
        let withdrawn = if leaving {
            self.withdraw_offers(&txn, agent_id, HistoryKind::Withdrawn, now, &mut outbox)
                .await?
        } else {
            0
        };
        let holding = u32::try_from(agents::held_count(&txn, agent_id).await?).unwrap_or(u32::MAX);
        let next = match action {
            ShiftAction::StartShift => agent.status.start_shift(),
            ShiftAction::RequestBreak => agent.status.request_break(holding),
            ShiftAction::EndBreak => agent.status.end_break(),
            ShiftAction::EndShift => agent.status.end_shift(holding),
        }
        .map_err(|e| AppError::Conflict(e.to_string()))?;
        if next == agent.status && withdrawn == 0 {
            txn.commit().await?;
            return Ok(agent);
        }
        // Becoming available puts the agent at the back of the idle line.
        let became_available =
            next == AgentStatus::Available && agent.status != AgentStatus::Available;
        if next != agent.status {
            agents::set_status(&txn, agent_id, next, became_available.then_some(now), now).await?;
        }
        let updated = agents::find(&txn, agent_id)
            .await?
            .ok_or_else(|| AppError::Internal("agent vanished".into()))?;
        outbox.agent_changed(updated.clone());
        txn.commit().await?;
        outbox.publish(self).await;
        if became_available || withdrawn > 0 {
            self.rematch().await;
            return Ok(agents::find(&self.db, agent_id).await?.unwrap_or(updated));
        }
        Ok(updated)
    }
}
