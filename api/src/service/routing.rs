//! Routing use cases: the matcher, offers and their lapse, decline,
//! transfer, admin assignment and capacity.
//!
//! Lock order, everywhere: the routing lock (matcher, lapse, assignment),
//! then agent rows in id order, then session rows. Holding to it keeps
//! concurrent transactions from deadlocking, across processes too.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use uuid::Uuid;

use super::agents::RoutingLock;
use super::core::Core;
use super::infra::outbox::Outbox;
use super::sessions::parse_session_id;
use super::transitions::{Giving, Requeue};
use super::webhooks::outbox as webhook_outbox;
use crate::auth::Viewer;
use crate::domain::webhooks::WebhookEvent;
use crate::domain::{
    access, validate_id, Agent, AgentStatus, ChatSession, DecisionKind, HistoryKind, PassAgent,
    RoutingDecision,
};
use crate::error::{AppError, AppResult};
use crate::events::{AgentEvent, SessionEvent};
use crate::matching::{self, AgentSlots, QueuedSession, RoutingMode, Rules};
use crate::repo::history;
use crate::repo::{self, agents, decisions, sessions};

/// Who is served next, and by whom: the matcher, offers and their lapse, decline, transfer and assignment by hand.
pub struct Routing<'a> {
    pub(super) core: &'a std::sync::Arc<Core>,
}

impl Routing<'_> {
    /// Pairs the queue with free agents: offers them (fair) or assigns them
    /// (auto). Idempotent: with nothing to pair it changes nothing. Only
    /// [`Routing::rematch`] calls it, one pass at a time per process.
    async fn match_once(&self) -> AppResult<usize> {
        if self.core.policy.routing_mode == RoutingMode::Manual {
            return Ok(0);
        }
        let txn = repo::begin_write(&self.core.db).await?;
        repo::lock_routing(&txn).await?;
        let free_agents = agents::lock_available(&txn).await?;
        if !free_agents.iter().any(|a| a.free_slots() > 0) {
            txn.commit().await?;
            return Ok(0);
        }
        let waiting = sessions::lock_waiting(&txn).await?;
        if waiting.is_empty() {
            txn.commit().await?;
            return Ok(0);
        }
        // Every lock is held: from here on, times are the shared clock's,
        // so that what this pass records sorts after what it waited for.
        let now = self.core.shared_now(&txn).await?;
        let ids: Vec<Uuid> = waiting.iter().map(|s| s.id).collect();
        let declined = history::declines(&txn, &ids).await?;
        let queue: Vec<QueuedSession> = waiting
            .iter()
            .map(|s| QueuedSession {
                id: s.id,
                queued_at: s.queued_at,
                priority: s.priority,
                required_skills: s.required_skills.clone(),
            })
            .collect();
        let slots: Vec<AgentSlots> = free_agents
            .iter()
            .map(|a| AgentSlots {
                id: a.id.clone(),
                idle_since: a.idle_since,
                free: a.free_slots(),
                skills: a.skills.clone(),
            })
            .collect();
        let rules = Rules {
            now,
            skill_wait: self.core.policy.skill_wait,
        };
        let pairings = matching::plan(&queue, &slots, &declined, rules);
        if pairings.is_empty() {
            txn.commit().await?;
            return Ok(0);
        }
        let kind = match self.core.policy.routing_mode {
            RoutingMode::Fair => DecisionKind::Offered,
            RoutingMode::Auto | RoutingMode::Manual => DecisionKind::Assigned,
        };
        // What the pass chose from, kept with each of its decisions.
        let seen: Vec<PassAgent> = free_agents
            .iter()
            .filter(|a| a.free_slots() > 0)
            .map(|a| PassAgent {
                id: a.id.clone(),
                idle_since: a.idle_since,
                held: a.active_session_count,
                capacity: a.capacity,
                skills: a.skills.clone(),
            })
            .collect();
        let by_id: HashMap<Uuid, &ChatSession> = waiting.iter().map(|s| (s.id, s)).collect();
        let agent_by_id: HashMap<&str, &Agent> =
            free_agents.iter().map(|a| (a.id.as_str(), a)).collect();
        let decisions: Vec<RoutingDecision> = pairings
            .iter()
            .filter_map(|p| {
                let s = by_id.get(&p.session)?;
                let a = agent_by_id.get(p.agent.as_str())?;
                Some(RoutingDecision {
                    session_id: s.id,
                    agent_id: a.id.clone(),
                    kind,
                    priority: s.priority,
                    queued_at: s.queued_at,
                    agent_idle_since: p.agent_idle_since,
                    agent_held: a.active_session_count + p.given_earlier,
                    agent_capacity: a.capacity,
                    // Replayed from the pass on reading (repo::decisions):
                    // hundreds of names per decision are not worth writing.
                    candidates: Vec::new(),
                    required_skills: s.required_skills.clone(),
                    skills_relaxed: p.skills_relaxed,
                    at: now,
                    // Written once for the pass, below.
                    pass_agents: Vec::new(),
                })
            })
            .collect();
        decisions::record_pass(&txn, &seen, &decisions).await?;

        let deadline_base = now;
        let names: HashMap<&str, &str> = free_agents
            .iter()
            .map(|a| (a.id.as_str(), a.name.as_str()))
            .collect();
        let mut outbox = Outbox::default();
        match self.core.policy.routing_mode {
            RoutingMode::Fair => {
                for p in &pairings {
                    let expires_at = deadline_base + self.core.policy.offer_timeout;
                    self.core.metrics.offers.fetch_add(1, Ordering::Relaxed);
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
                    let s = self.core.reload(&txn, p.session).await?;
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
                self.core
                    .transitions()
                    .give_sessions(&txn, &pairings, &names, now, &mut outbox)
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
        outbox.publish(self.core).await;
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
        self.core
            .matcher
            .trigger(|| async {
                if let Err(e) = self.match_once().await {
                    tracing::error!(error = %e, "matching failed; the periodic sweep will retry");
                }
            })
            .await;
    }

    /// Agent: refuse an offer. The session goes to the next agent and keeps
    /// its place; this agent is not offered it again.
    pub async fn decline_session(
        &self,
        viewer: &Viewer,
        session_id: &str,
    ) -> AppResult<ChatSession> {
        let agent_id = viewer.require_agent()?;
        let (txn, _, s) = self
            .core
            .agents()
            .lock_with_session(viewer, session_id, RoutingLock::Excluded)
            .await?;
        let now = self.core.shared_now(&txn).await?;
        let id = s.id;
        s.decline_by(agent_id)?;
        let mut outbox = Outbox::default();
        let why = Requeue {
            kind: HistoryKind::Declined,
            agent_id,
            actor: Some(agent_id),
            line: None,
        };
        let back = self
            .core
            .transitions()
            .requeue(&txn, id, why, now, &mut outbox)
            .await?;
        if let Some(a) = agents::find(&txn, agent_id).await? {
            outbox.agent_changed(a);
        }
        txn.commit().await?;
        outbox.publish(self.core).await;
        self.rematch().await;
        Ok(self.core.reload_or(back).await)
    }

    /// Lapses offers past their deadline: the session goes back to its place
    /// in the queue and the agent, evidently away, goes on break. Deadlines
    /// are stored, so lapsing resumes after a restart.
    pub async fn lapse_expired_offers(&self) -> AppResult<usize> {
        // Deadlines were set by the database clock; compare with the same.
        let now = self.core.shared_now(&self.core.db).await?;
        let expired = sessions::expired_offers(&self.core.db, now).await?;
        let mut lapsed = 0;
        for s in expired {
            let Some(agent_id) = s.agent_id.as_deref() else {
                continue;
            };
            let txn = repo::begin_write(&self.core.db).await?;
            repo::lock_routing(&txn).await?;
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
            if !locked.offer_lapses(agent_id, now) {
                continue;
            }
            // Locks held: what this lapse records is stamped after them.
            let now = self.core.shared_now(&txn).await?;
            let mut outbox = Outbox::default();
            let why = Requeue {
                kind: HistoryKind::Lapsed,
                agent_id,
                actor: None,
                line: None,
            };
            let transitions = self.core.transitions();
            transitions
                .requeue(&txn, s.id, why, now, &mut outbox)
                .await?;
            // Any other offer they hold goes back too: they are not at their desk.
            self.core
                .transitions()
                .withdraw_offers(&txn, agent_id, HistoryKind::Lapsed, now, &mut outbox)
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
            outbox.publish(self.core).await;
            self.core.metrics.lapses.fetch_add(1, Ordering::Relaxed);
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
        let seen = sessions::find(&self.core.db, id)
            .await?
            .ok_or_else(AppError::session_not_found)?;
        access::may_transfer(viewer, &seen)?;
        let from = seen.transfer_to(to_agent)?.to_owned();
        let txn = repo::begin_write(&self.core.db).await?;
        // What an agent holds and what waits change together: no matcher
        // pass may see one without the other.
        repo::lock_routing(&txn).await?;
        let mut lock_ids = vec![from.as_str()];
        lock_ids.extend(to_agent);
        let locked = agents::lock_many(&txn, &lock_ids).await?;
        let find = |id: &str| locked.iter().find(|a| a.id == id).cloned();
        let s = sessions::lock(&txn, id)
            .await?
            .ok_or_else(AppError::session_not_found)?;
        if s.transfer_to(to_agent).ok() != Some(from.as_str()) {
            return Err(AppError::Conflict(
                "the session changed meanwhile; try again".into(),
            ));
        }
        let now = self.core.shared_now(&txn).await?;
        let from_agent =
            find(&from).ok_or_else(|| AppError::Internal("holder has no row".into()))?;
        let mut outbox = Outbox::default();
        let result = match to_agent {
            Some(target_id) => {
                let target = find(target_id)
                    .ok_or_else(|| AppError::NotFound(format!("no agent {target_id:?}")))?;
                target.ensure_room(&format!("{} is", target.id))?;
                let giving = Giving {
                    to: &target,
                    kind: HistoryKind::Transferred,
                    actor: Some(&viewer.id),
                    to_back_of_line: true,
                    decision: Some(DecisionKind::Transferred),
                };
                let transitions = self.core.transitions();
                let s = transitions
                    .give_session(&txn, id, giving, now, &mut outbox)
                    .await?;
                if let Some(a) = agents::find(&txn, &target.id).await? {
                    outbox.agent_changed(a);
                }
                s
            }
            None => {
                let line = format!("{} returned the chat to the queue.", from_agent.name);
                let why = Requeue {
                    kind: HistoryKind::Requeued,
                    agent_id: &from,
                    actor: Some(&viewer.id),
                    line: Some(&line),
                };
                self.core
                    .transitions()
                    .requeue(&txn, id, why, now, &mut outbox)
                    .await?
            }
        };
        let released = self
            .core
            .transitions()
            .release_agent_slot(&txn, from_agent, now)
            .await?;
        outbox.agent_changed(released);
        let transferred = WebhookEvent::SessionTransferred(result.clone());
        webhook_outbox::record(self.core, &txn, now, transferred).await?;
        txn.commit().await?;
        outbox.publish(self.core).await;
        self.rematch().await;
        Ok(self.core.reload_or(result).await)
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
        let seen = sessions::find(&self.core.db, id)
            .await?
            .ok_or_else(AppError::session_not_found)?;
        seen.assignable()?;
        let txn = repo::begin_write(&self.core.db).await?;
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
        if s.assignable().is_err() || s.agent_id != seen.agent_id {
            return Err(AppError::Conflict(
                "the session changed meanwhile; try again".into(),
            ));
        }
        let now = self.core.shared_now(&txn).await?;
        let already_offered_to_target = s.agent_id.as_deref() == Some(agent_id);
        if !already_offered_to_target {
            target.ensure_below_capacity(&format!("{} is", target.id))?;
        }
        let mut outbox = Outbox::default();
        let giving = Giving {
            to: &target,
            kind: HistoryKind::Assigned,
            actor: Some(&viewer.id),
            to_back_of_line: true,
            decision: Some(DecisionKind::AdminAssigned),
        };
        let transitions = self.core.transitions();
        let given = transitions
            .give_session(&txn, id, giving, now, &mut outbox)
            .await?;
        outbox.queue(given.clone());
        for a in &locked {
            if let Some(fresh) = agents::find(&txn, &a.id).await? {
                outbox.agent_changed(fresh);
            }
        }
        txn.commit().await?;
        outbox.publish(self.core).await;
        // A former offeree has a free slot again.
        if !already_offered_to_target && seen.agent_id.is_some() {
            self.rematch().await;
        }
        Ok(given)
    }
}
