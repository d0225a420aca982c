//! Routing use cases: the matcher, offers and their lapse, decline,
//! transfer, admin assignment and capacity.
//!
//! Lock order, everywhere: the routing lock (matcher, lapse, assignment),
//! then agent rows in id order, then session rows. Holding to it keeps
//! concurrent transactions from deadlocking, across processes too.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use sea_orm::DatabaseTransaction;
use uuid::Uuid;

use super::outbox::Outbox;
use super::sessions::parse_session_id;
use super::ChatService;
use crate::auth::{Role, Viewer};
use crate::domain::{
    validate_capacity, validate_id, Agent, AgentStatus, ChatSession, HistoryKind, Message,
    SenderRole, SessionStatus,
};
use crate::error::{AppError, AppResult};
use crate::events::{AgentEvent, SessionEvent};
use crate::matching::{self, AgentSlots, QueuedSession, RoutingMode};
use crate::repo::history;
use crate::repo::{self, agents, messages, sessions};

impl ChatService {
    /// Pairs the queue with free agents: offers them (fair) or assigns them
    /// (auto). Idempotent: with nothing to pair it changes nothing. Only
    /// [`ChatService::rematch`] calls it, one pass at a time per process.
    async fn match_once(&self) -> AppResult<usize> {
        if self.policy.routing_mode == RoutingMode::Manual {
            return Ok(0);
        }
        let now = self.now();
        let txn = repo::begin_write(&self.db).await?;
        repo::lock_routing(&txn).await?;
        let free_agents = agents::lock_available(&txn).await?;
        if !free_agents
            .iter()
            .any(|a| a.active_session_count < a.capacity)
        {
            txn.commit().await?;
            return Ok(0);
        }
        let waiting = sessions::lock_waiting(&txn).await?;
        if waiting.is_empty() {
            txn.commit().await?;
            return Ok(0);
        }
        let ids: Vec<Uuid> = waiting.iter().map(|s| s.id).collect();
        let declined = history::declines(&txn, &ids).await?;
        let queue: Vec<QueuedSession> = waiting
            .iter()
            .map(|s| QueuedSession {
                id: s.id,
                queued_at: s.queued_at,
            })
            .collect();
        let slots: Vec<AgentSlots> = free_agents
            .iter()
            .map(|a| AgentSlots {
                id: a.id.clone(),
                idle_since: a.idle_since,
                free: a.capacity - a.active_session_count,
            })
            .collect();
        let pairings = matching::plan(&queue, &slots, &declined);
        if pairings.is_empty() {
            txn.commit().await?;
            return Ok(0);
        }

        let deadline_base = self.shared_now(&txn).await?;
        let names: HashMap<&str, &str> = free_agents
            .iter()
            .map(|a| (a.id.as_str(), a.name.as_str()))
            .collect();
        let mut outbox = Outbox::default();
        match self.policy.routing_mode {
            RoutingMode::Fair => {
                for p in &pairings {
                    let expires_at = deadline_base + self.policy.offer_timeout;
                    self.metrics.offers.fetch_add(1, Ordering::Relaxed);
                    sessions::mark_offered(&txn, p.session, &p.agent, expires_at).await?;
                    history::record(
                        &txn,
                        p.session,
                        HistoryKind::Offered,
                        Some(&p.agent),
                        None,
                        now,
                    )
                    .await?;
                    let s = self.reload(&txn, p.session).await?;
                    outbox.agent(
                        &p.agent,
                        AgentEvent::SessionOffered {
                            session: s.clone(),
                            expires_at: Some(expires_at),
                        },
                    );
                    outbox.session(p.session, SessionEvent::SessionChanged(s.clone()));
                    outbox.queue(s);
                }
            }
            RoutingMode::Auto | RoutingMode::Manual => {
                self.give_sessions(&txn, &pairings, &names, now, &mut outbox)
                    .await?;
            }
        }
        let mut touched: Vec<&str> = pairings.iter().map(|p| p.agent.as_str()).collect();
        touched.sort_unstable();
        touched.dedup();
        // Being given a session sends the agent to the back of the idle line.
        agents::set_idle_since_many(&txn, &touched, now).await?;
        for a in agents::find_many(&txn, &touched).await? {
            outbox.agent_changed(a);
        }
        txn.commit().await?;
        outbox.publish(self).await;
        Ok(pairings.len())
    }

    /// Runs the matcher after a change (call it once the change committed)
    /// and returns when a pass that saw the change is over. Logs instead of
    /// failing: the change itself is committed, and the periodic sweep
    /// retries.
    ///
    /// Triggers that arrive while a pass runs share the next one: a burst
    /// of arrivals costs a few passes, each pairing many sessions, instead
    /// of one pass per arrival queued behind the routing lock.
    pub(crate) async fn rematch(&self) {
        self.matcher
            .trigger(|| async {
                if let Err(e) = self.match_once().await {
                    tracing::error!(error = %e, "matching failed; the periodic sweep will retry");
                }
            })
            .await;
    }

    async fn reload(&self, txn: &DatabaseTransaction, id: Uuid) -> AppResult<ChatSession> {
        sessions::find(txn, id)
            .await?
            .ok_or_else(AppError::session_not_found)
    }

    /// Makes the session ACTIVE with `agent_id`, writes the join line and
    /// the history entry, and queues the events. Agent row and session row
    /// must be locked.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn give_session(
        &self,
        txn: &DatabaseTransaction,
        id: Uuid,
        agent_id: &str,
        agent_name: &str,
        kind: HistoryKind,
        actor: Option<&str>,
        now: DateTime<Utc>,
        outbox: &mut Outbox,
    ) -> AppResult<ChatSession> {
        sessions::mark_active(txn, id, agent_id, now).await?;
        let line = match kind {
            HistoryKind::Transferred => format!("The chat was transferred to {agent_name}."),
            _ => format!("{agent_name} joined the chat."),
        };
        let joined = self.append_system_message(txn, id, &line, now).await?;
        history::record(txn, id, kind, Some(agent_id), actor, now).await?;
        let s = self.reload(txn, id).await?;
        if kind != HistoryKind::Transferred {
            let waited = (now - s.queued_at).num_milliseconds() as f64 / 1000.0;
            self.metrics.queue_wait.observe(waited);
        }
        outbox.session(id, SessionEvent::MessagePosted(joined));
        outbox.session(id, SessionEvent::SessionChanged(s.clone()));
        outbox.agent(agent_id, AgentEvent::SessionAssigned(s.clone()));
        Ok(s)
    }

    /// [`give_session`](Self::give_session) for every pairing of a matcher
    /// pass, in four statements however many there are: a burst of
    /// arrivals is assigned in one short transaction. Agent and session
    /// rows must be locked.
    async fn give_sessions(
        &self,
        txn: &DatabaseTransaction,
        pairings: &[matching::Pairing],
        names: &HashMap<&str, &str>,
        now: DateTime<Utc>,
        outbox: &mut Outbox,
    ) -> AppResult<()> {
        let pairs: Vec<(Uuid, &str)> = pairings
            .iter()
            .map(|p| (p.session, p.agent.as_str()))
            .collect();
        let mut assigned = sessions::assign_many(txn, &pairs, now).await?;
        // In the matcher's order (queue order), not the order rows came
        // back in: history and events read as the queue was served.
        let rank: HashMap<Uuid, usize> = pairs
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (*id, i))
            .collect();
        assigned.sort_by_key(|s| rank.get(&s.id).copied().unwrap_or(usize::MAX));
        let joined: Vec<Message> = assigned
            .iter()
            .map(|s| {
                let agent = s.agent_id.as_deref().unwrap_or_default();
                let name = names.get(agent).copied().unwrap_or(agent);
                messages::prepare(messages::NewMessage {
                    session_id: s.id,
                    seq: s.last_seq,
                    sender: SenderRole::System,
                    sender_id: None,
                    body: &format!("{name} joined the chat."),
                    client_message_id: None,
                    created_at: now,
                })
            })
            .collect();
        messages::insert_many(txn, &joined).await?;
        let entries: Vec<history::NewEntry> = assigned
            .iter()
            .map(|s| history::NewEntry {
                session_id: s.id,
                kind: HistoryKind::Assigned,
                agent_id: s.agent_id.as_deref(),
                actor_id: None,
                at: now,
            })
            .collect();
        history::record_many(txn, &entries).await?;
        for (s, line) in assigned.iter().zip(joined) {
            let waited = (now - s.queued_at).num_milliseconds() as f64 / 1000.0;
            self.metrics.queue_wait.observe(waited);
            outbox.session(s.id, SessionEvent::MessagePosted(line));
            outbox.session(s.id, SessionEvent::SessionChanged(s.clone()));
            if let Some(agent) = &s.agent_id {
                outbox.agent(agent, AgentEvent::SessionAssigned(s.clone()));
            }
            outbox.queue(s.clone());
        }
        Ok(())
    }

    /// Takes back every offer the agent holds (their row locked): the
    /// sessions return to the queue in their original places.
    pub(crate) async fn withdraw_offers(
        &self,
        txn: &DatabaseTransaction,
        agent_id: &str,
        kind: HistoryKind,
        now: DateTime<Utc>,
        outbox: &mut Outbox,
    ) -> AppResult<usize> {
        let offered = sessions::offered_to(txn, agent_id).await?;
        let mut withdrawn = 0;
        for s in offered {
            // Re-read under the session lock: it may have been accepted meanwhile.
            let Some(locked) = sessions::lock(txn, s.id).await? else {
                continue;
            };
            if locked.status != SessionStatus::Offered
                || locked.agent_id.as_deref() != Some(agent_id)
            {
                continue;
            }
            sessions::return_to_queue(txn, s.id).await?;
            history::record(txn, s.id, kind, Some(agent_id), None, now).await?;
            let back = self.reload(txn, s.id).await?;
            outbox.session(s.id, SessionEvent::SessionChanged(back.clone()));
            outbox.queue(back);
            withdrawn += 1;
        }
        Ok(withdrawn)
    }

    /// Agent: refuse an offer. The session goes to the next agent and keeps
    /// its place; this agent is not offered it again.
    pub async fn decline_session(
        &self,
        viewer: &Viewer,
        session_id: &str,
    ) -> AppResult<ChatSession> {
        let agent_id = viewer.require_agent()?;
        let id = parse_session_id(session_id)?;
        let now = self.now();
        let txn = repo::begin_write(&self.db).await?;
        self.lock_calling_agent(&txn, viewer).await?;
        let s = sessions::lock(&txn, id)
            .await?
            .ok_or_else(AppError::session_not_found)?;
        if s.status != SessionStatus::Offered || s.agent_id.as_deref() != Some(agent_id) {
            return Err(AppError::Conflict(
                "this session is not offered to you".into(),
            ));
        }
        let mut outbox = Outbox::default();
        sessions::return_to_queue(&txn, id).await?;
        history::record(
            &txn,
            id,
            HistoryKind::Declined,
            Some(agent_id),
            Some(agent_id),
            now,
        )
        .await?;
        let back = self.reload(&txn, id).await?;
        outbox.session(id, SessionEvent::SessionChanged(back.clone()));
        outbox.queue(back.clone());
        if let Some(a) = agents::find(&txn, agent_id).await? {
            outbox.agent_changed(a);
        }
        txn.commit().await?;
        outbox.publish(self).await;
        self.rematch().await;
        Ok(self.reload_or(back).await)
    }

    /// The session as it is now (after matching may have moved it), or as
    /// it was if it cannot be read.
    async fn reload_or(&self, fallback: ChatSession) -> ChatSession {
        match sessions::find(&self.db, fallback.id).await {
            Ok(Some(s)) => s,
            _ => fallback,
        }
    }

    /// Lapses offers past their deadline: the session goes back to its place
    /// in the queue and the agent, evidently away, goes on break. Deadlines
    /// are stored, so lapsing resumes after a restart.
    pub async fn lapse_expired_offers(&self) -> AppResult<usize> {
        // Deadlines were set by the database clock; compare with the same.
        let now = self.shared_now(&self.db).await?;
        let expired = sessions::expired_offers(&self.db, now).await?;
        let mut lapsed = 0;
        for s in expired {
            let Some(agent_id) = s.agent_id.as_deref() else {
                continue;
            };
            let txn = repo::begin_write(&self.db).await?;
            let Some(agent) = agents::lock(&txn, agent_id).await? else {
                continue;
            };
            // This session and the agent's other offers (withdrawn below)
            // are locked together in id order, as every transaction that
            // holds several session rows takes them.
            let mut offered: Vec<Uuid> = sessions::offered_to(&txn, agent_id)
                .await?
                .iter()
                .map(|o| o.id)
                .collect();
            offered.push(s.id);
            offered.sort_unstable();
            offered.dedup();
            let Some(locked) = sessions::lock_many(&txn, &offered)
                .await?
                .into_iter()
                .find(|l| l.id == s.id)
            else {
                continue;
            };
            let still_due = locked.status == SessionStatus::Offered
                && locked.agent_id.as_deref() == Some(agent_id)
                && locked.offer_expires_at.is_some_and(|at| at <= now);
            if !still_due {
                continue;
            }
            let mut outbox = Outbox::default();
            sessions::return_to_queue(&txn, s.id).await?;
            history::record(&txn, s.id, HistoryKind::Lapsed, Some(agent_id), None, now).await?;
            let back = self.reload(&txn, s.id).await?;
            outbox.session(s.id, SessionEvent::SessionChanged(back.clone()));
            outbox.queue(back);
            // Any other offer they hold goes back too: they are not at their desk.
            self.withdraw_offers(&txn, agent_id, HistoryKind::Lapsed, now, &mut outbox)
                .await?;
            if agent.status == AgentStatus::Available {
                let holding = agents::held_count(&txn, agent_id).await?;
                let away = agent
                    .status
                    .request_break(u32::try_from(holding).unwrap_or(u32::MAX))
                    .unwrap_or(AgentStatus::OnBreak);
                agents::set_status(&txn, agent_id, away, None, now).await?;
            }
            if let Some(a) = agents::find(&txn, agent_id).await? {
                outbox.agent_changed(a);
            }
            txn.commit().await?;
            outbox.publish(self).await;
            self.metrics.lapses.fetch_add(1, Ordering::Relaxed);
            lapsed += 1;
        }
        if lapsed > 0 {
            self.rematch().await;
        }
        Ok(lapsed)
    }

    /// The session's agent or an admin hands an ACTIVE session to another
    /// agent (AVAILABLE with a free slot), or back to the queue.
    pub async fn transfer_session(
        &self,
        viewer: &Viewer,
        session_id: &str,
        to_agent: Option<&str>,
    ) -> AppResult<ChatSession> {
        let id = parse_session_id(session_id)?;
        let seen = sessions::find(&self.db, id)
            .await?
            .ok_or_else(AppError::session_not_found)?;
        let holder = seen.agent_id.clone();
        match viewer.role {
            Role::Admin => {}
            Role::Agent if holder.as_deref() == Some(viewer.id.as_str()) => {}
            _ => {
                return Err(AppError::Forbidden(
                    "only the session's agent or an admin may transfer it".into(),
                ))
            }
        }
        if seen.status != SessionStatus::Active {
            return Err(AppError::Conflict(
                "only an ACTIVE session can be transferred".into(),
            ));
        }
        let Some(from) = holder else {
            return Err(AppError::Conflict("the session has no agent".into()));
        };
        if to_agent == Some(from.as_str()) {
            return Err(AppError::Conflict(
                "the session is already with that agent".into(),
            ));
        }
        let now = self.now();
        let txn = repo::begin_write(&self.db).await?;
        let mut lock_ids = vec![from.as_str()];
        lock_ids.extend(to_agent);
        let locked = agents::lock_many(&txn, &lock_ids).await?;
        let find = |id: &str| locked.iter().find(|a| a.id == id).cloned();
        let s = sessions::lock(&txn, id)
            .await?
            .ok_or_else(AppError::session_not_found)?;
        if s.status != SessionStatus::Active || s.agent_id.as_deref() != Some(from.as_str()) {
            return Err(AppError::Conflict(
                "the session changed meanwhile; try again".into(),
            ));
        }
        let from_agent =
            find(&from).ok_or_else(|| AppError::Internal("holder has no row".into()))?;
        let mut outbox = Outbox::default();
        let result = match to_agent {
            Some(target_id) => {
                let target = find(target_id)
                    .ok_or_else(|| AppError::NotFound(format!("no agent {target_id:?}")))?;
                ensure_can_take(&target)?;
                let s = self
                    .give_session(
                        &txn,
                        id,
                        &target.id,
                        &target.name,
                        HistoryKind::Transferred,
                        Some(&viewer.id),
                        now,
                        &mut outbox,
                    )
                    .await?;
                agents::set_idle_since(&txn, &target.id, now).await?;
                if let Some(a) = agents::find(&txn, &target.id).await? {
                    outbox.agent_changed(a);
                }
                s
            }
            None => {
                sessions::return_to_queue(&txn, id).await?;
                let line = format!("{} returned the chat to the queue.", from_agent.name);
                let msg = self.append_system_message(&txn, id, &line, now).await?;
                history::record(
                    &txn,
                    id,
                    HistoryKind::Requeued,
                    Some(&from),
                    Some(&viewer.id),
                    now,
                )
                .await?;
                let back = self.reload(&txn, id).await?;
                outbox.session(id, SessionEvent::MessagePosted(msg));
                outbox.session(id, SessionEvent::SessionChanged(back.clone()));
                outbox.queue(back.clone());
                back
            }
        };
        let released = self.release_agent_slot(&txn, from_agent, now).await?;
        outbox.agent_changed(released);
        txn.commit().await?;
        outbox.publish(self).await;
        self.rematch().await;
        Ok(self.reload_or(result).await)
    }

    /// Admin: give a WAITING or OFFERED session to a named agent below
    /// capacity, in any routing mode.
    pub async fn assign_session(
        &self,
        viewer: &Viewer,
        session_id: &str,
        agent_id: &str,
    ) -> AppResult<ChatSession> {
        viewer.require_admin()?;
        validate_id(agent_id).map_err(AppError::BadUserInput)?;
        let id = parse_session_id(session_id)?;
        let seen = sessions::find(&self.db, id)
            .await?
            .ok_or_else(AppError::session_not_found)?;
        if !seen.status.is_queued() {
            return Err(AppError::Conflict(
                "only a WAITING or OFFERED session can be assigned".into(),
            ));
        }
        let now = self.now();
        let txn = repo::begin_write(&self.db).await?;
        repo::lock_routing(&txn).await?;
        let mut lock_ids = vec![agent_id];
        lock_ids.extend(seen.agent_id.as_deref());
        let locked = agents::lock_many(&txn, &lock_ids).await?;
        let target = locked
            .iter()
            .find(|a| a.id == agent_id)
            .cloned()
            .ok_or_else(|| AppError::NotFound(format!("no agent {agent_id:?}")))?;
        let s = sessions::lock(&txn, id)
            .await?
            .ok_or_else(AppError::session_not_found)?;
        if !s.status.is_queued() || s.agent_id != seen.agent_id {
            return Err(AppError::Conflict(
                "the session changed meanwhile; try again".into(),
            ));
        }
        let already_offered_to_target = s.agent_id.as_deref() == Some(agent_id);
        if !already_offered_to_target && target.active_session_count >= target.capacity {
            return Err(AppError::Conflict(format!(
                "{} already holds {} of {} sessions",
                target.id, target.active_session_count, target.capacity
            )));
        }
        let mut outbox = Outbox::default();
        let given = self
            .give_session(
                &txn,
                id,
                &target.id,
                &target.name,
                HistoryKind::Assigned,
                Some(&viewer.id),
                now,
                &mut outbox,
            )
            .await?;
        agents::set_idle_since(&txn, &target.id, now).await?;
        outbox.queue(given.clone());
        for a in &locked {
            if let Some(fresh) = agents::find(&txn, &a.id).await? {
                outbox.agent_changed(fresh);
            }
        }
        txn.commit().await?;
        outbox.publish(self).await;
        // A former offeree has a free slot again.
        if !already_offered_to_target && seen.agent_id.is_some() {
            self.rematch().await;
        }
        Ok(given)
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
        let now = self.now();
        let txn = repo::begin_write(&self.db).await?;
        agents::lock(&txn, agent_id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no agent {agent_id:?}")))?;
        agents::set_capacity(&txn, agent_id, capacity, now).await?;
        let agent = agents::find(&txn, agent_id)
            .await?
            .ok_or_else(|| AppError::Internal("agent vanished".into()))?;
        txn.commit().await?;
        self.bus
            .publish_agent(agent_id, AgentEvent::AgentChanged(agent.clone()));
        self.rematch().await;
        Ok(agent)
    }
}

/// Whether an agent may be handed one more session by someone else.
fn ensure_can_take(agent: &Agent) -> AppResult<()> {
    if agent.status != AgentStatus::Available {
        return Err(AppError::Conflict(format!(
            "{} is {}",
            agent.id,
            agent.status.as_str()
        )));
    }
    if agent.active_session_count >= agent.capacity {
        return Err(AppError::Conflict(format!(
            "{} already holds {} of {} sessions",
            agent.id, agent.active_session_count, agent.capacity
        )));
    }
    Ok(())
}
