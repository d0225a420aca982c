//! Agents: first-sight creation, shifts and breaks, listings.

use super::core::Core;
use super::infra::outbox::Outbox;
use super::sessions::parse_session_id;
use crate::auth::{Role, Viewer};
use crate::domain::HistoryKind;
use crate::domain::{validate_capacity, validate_id, Agent, AgentStatus, ChatSession, Skills};
use crate::error::{AppError, AppResult};
use crate::events::AgentEvent;
use crate::repo::{self, agents, sessions};

/// Whether a change must exclude matcher passes (it sends sessions back to
/// the queue: a pass must see it wholly or not at all), or may run beside
/// them (it only takes what is already the caller's).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum RoutingLock {
    Excluded,
    Concurrent,
}

/// An agent setting only admins change.
enum Setting<'a> {
    Capacity(i32),
    Skills(&'a Skills),
}

/// One of the agent's own status changes.
#[derive(Clone, Copy, Debug)]
pub enum ShiftAction {
    StartShift,
    RequestBreak,
    EndBreak,
    EndShift,
}

/// Agents: first sight, shifts and breaks, capacity, listings.
pub struct Agents<'a> {
    pub(super) core: &'a std::sync::Arc<Core>,
}

impl Agents<'_> {
    /// Creates the agent row the first time an agent token is seen.
    pub async fn ensure_agent(&self, viewer: &Viewer) -> AppResult<()> {
        if viewer.role != Role::Agent {
            return Ok(());
        }
        let known = |agents: &std::collections::HashSet<String>| agents.contains(&viewer.id);
        if known(
            &self
                .core
                .known_agents
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        ) {
            return Ok(());
        }
        let name = viewer.name.as_deref().unwrap_or(&viewer.id);
        agents::insert_if_absent(
            &self.core.db,
            &viewer.id,
            name,
            self.core.policy.agent_capacity,
            self.core.now(),
        )
        .await?;
        self.core
            .known_agents
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

    /// A write transaction holding the calling agent's row, then the
    /// session's: the lock order of every path that changes both.
    pub(super) async fn lock_with_session(
        &self,
        viewer: &Viewer,
        session_id: &str,
        routing: RoutingLock,
    ) -> AppResult<(sea_orm::DatabaseTransaction, Agent, ChatSession)> {
        let id = parse_session_id(session_id)?;
        let txn = repo::begin_write(&self.core.db).await?;
        if routing == RoutingLock::Excluded {
            repo::lock_routing(&txn).await?;
        }
        let agent = self.lock_calling_agent(&txn, viewer).await?;
        let session = sessions::lock(&txn, id)
            .await?
            .ok_or_else(AppError::session_not_found)?;
        Ok((txn, agent, session))
    }

    /// The caller's agent record, when the caller is an agent.
    pub async fn viewer_agent(&self, viewer: &Viewer) -> AppResult<Option<Agent>> {
        if viewer.role != Role::Agent {
            return Ok(None);
        }
        Ok(agents::find(&self.core.db, &viewer.id).await?)
    }

    /// Any agent by id; visible to everyone who can see a session it holds.
    pub async fn agent(&self, id: &str) -> AppResult<Option<Agent>> {
        Ok(agents::find(&self.core.db, id).await?)
    }

    pub async fn agents(&self, viewer: &Viewer) -> AppResult<Vec<Agent>> {
        viewer.require_staff()?;
        Ok(agents::list(&self.core.db).await?)
    }

    /// Shift start and end, break request and end.
    pub async fn change_availability(
        &self,
        viewer: &Viewer,
        action: ShiftAction,
    ) -> AppResult<Agent> {
        let agent_id = viewer.require_agent()?;
        let leaving = matches!(action, ShiftAction::RequestBreak | ShiftAction::EndShift);
        let txn = repo::begin_write(&self.core.db).await?;
        if leaving {
            // Their offers go back to the queue: no matcher pass in between.
            repo::lock_routing(&txn).await?;
        }
        let agent = self.lock_calling_agent(&txn, viewer).await?;
        // The agent row is held: stamp on the shared clock, so idle times
        // order as the changes took effect.
        let now = self.core.shared_now(&txn).await?;
        let mut outbox = Outbox::default();
        // Someone leaving AVAILABLE gets nothing new: open offers go to the next agent.
        let withdrawn = if leaving {
            self.core
                .transitions()
                .withdraw_offers(&txn, agent_id, HistoryKind::Withdrawn, now, &mut outbox)
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
        outbox.publish(self.core).await;
        if became_available || withdrawn > 0 {
            self.core.routing().rematch().await;
            return Ok(agents::find(&self.core.db, agent_id)
                .await?
                .unwrap_or(updated));
        }
        Ok(updated)
    }

    /// Admin: how many sessions an agent may hold at once.
    pub async fn set_agent_capacity(
        &self,
        viewer: &Viewer,
        agent_id: &str,
        capacity: i32,
    ) -> AppResult<Agent> {
        viewer.require_admin()?;
        validate_id(agent_id).map_err(AppError::BadUserInput)?;
        let capacity = validate_capacity(capacity).map_err(AppError::BadUserInput)?;
        self.admin_update(agent_id, Setting::Capacity(capacity))
            .await
    }

    /// Admin: the topics an agent handles. Sessions that require skills
    /// go only to agents having all of them, until they have waited
    /// SKILL_WAIT_SECS.
    pub async fn set_agent_skills(
        &self,
        viewer: &Viewer,
        agent_id: &str,
        skills: &[String],
    ) -> AppResult<Agent> {
        viewer.require_admin()?;
        validate_id(agent_id).map_err(AppError::BadUserInput)?;
        let skills = Skills::parse(skills).map_err(AppError::BadUserInput)?;
        self.admin_update(agent_id, Setting::Skills(&skills)).await
    }

    /// An admin's change to an agent's settings: under the agent's row
    /// lock, stamped on the shared clock, told to the agent's feed, then a
    /// matcher pass (the change may let the queue move).
    async fn admin_update(&self, agent_id: &str, setting: Setting<'_>) -> AppResult<Agent> {
        let txn = repo::begin_write(&self.core.db).await?;
        agents::lock(&txn, agent_id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no agent {agent_id:?}")))?;
        let now = self.core.shared_now(&txn).await?;
        match setting {
            Setting::Capacity(capacity) => {
                agents::set_capacity(&txn, agent_id, capacity, now).await?
            }
            Setting::Skills(skills) => agents::set_skills(&txn, agent_id, skills, now).await?,
        }
        let agent = agents::find(&txn, agent_id)
            .await?
            .ok_or_else(|| AppError::Internal("agent vanished".into()))?;
        txn.commit().await?;
        self.core
            .bus
            .publish_agent(agent_id, AgentEvent::AgentChanged(agent.clone()));
        self.core.routing().rematch().await;
        Ok(agent)
    }
}
