//! The transitions several services share, each in one place: ending a
//! session (on purpose or for absence), releasing the agent's slot after,
//! giving a session to an agent (accept, assignment, transfer, the
//! matcher), returning sessions to the queue (decline, lapse, withdrawal,
//! transfer back), and writing a SYSTEM line with the session's next seq.
//!
//! Each runs inside the caller's transaction, with the rows the caller
//! locked, and gathers its events in the caller's outbox.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::DatabaseTransaction;
use uuid::Uuid;

use super::core::Core;
use super::infra::outbox::Outbox;
use super::webhooks::outbox as webhook_outbox;
use crate::auth::{Role, Viewer};
use crate::domain::webhooks::{WebhookEvent, WebhookEventType};
use crate::domain::{
    access, Agent, AgentStatus, ChatSession, DecisionKind, HistoryKind, Message, RoutingDecision,
    SenderRole,
};
use crate::error::{AppError, AppResult};
use crate::events::{AgentEvent, SessionEvent};
use crate::matching;
use crate::repo::history;
use crate::repo::sessions::SeqTake;
use crate::repo::{self, agents, decisions, messages, search_documents, sessions};

/// Who ends a session.
#[derive(Clone, Copy)]
pub(crate) enum Ender<'a> {
    /// Someone, on purpose.
    Person(&'a Viewer),
    /// The system, because the customer has not been seen since `seen_before`.
    Absence { seen_before: DateTime<Utc> },
}

pub(crate) struct Transitions<'a> {
    pub(super) core: &'a Arc<Core>,
}

impl Transitions<'_> {
    /// Ends a session for `ender`, writing the SYSTEM line and history,
    /// freeing the agent's slot and telling everyone after the commit.
    pub(super) async fn close(&self, id: Uuid, ender: Ender<'_>) -> AppResult<ChatSession> {
        // The agent row must be locked before the session row (the order
        // accept uses); the holder is read first and checked again under lock.
        for _ in 0..5 {
            let seen = sessions::find(&self.core.db, id)
                .await?
                .ok_or_else(AppError::session_not_found)?;
            if let Ender::Person(viewer) = ender {
                access::may_end(viewer, &seen)?;
            }
            if !seen.status.is_open() {
                return Ok(seen);
            }
            let txn = repo::begin_write(&self.core.db).await?;
            let agent = match seen.agent_id.as_deref() {
                Some(a) => agents::lock(&txn, a).await?,
                None => None,
            };
            let session = sessions::lock(&txn, id)
                .await?
                .ok_or_else(AppError::session_not_found)?;
            if session.agent_id != seen.agent_id {
                continue; // reassigned meanwhile: lock the new holder
            }
            // Rows held: the end (and the slot it frees) is stamped on the
            // shared clock after them, so no later assignment of the slot
            // can carry an earlier time.
            let now = self.core.shared_now(&txn).await?;
            let (by, reason, line, actor) = match ender {
                Ender::Person(viewer) => {
                    let Some(reason) = session.end_on_purpose(viewer.role) else {
                        return Ok(session);
                    };
                    let who = match viewer.role {
                        Role::Customer => "the customer",
                        Role::Agent => "the agent",
                        Role::Admin => "an administrator",
                    };
                    (
                        Some(viewer.role),
                        reason,
                        format!("Chat ended by {who}."),
                        Some(viewer.id.as_str()),
                    )
                }
                Ender::Absence { seen_before } => {
                    // None also when the customer came back since the sweep looked.
                    let Some(reason) = session.end_for_absence(seen_before) else {
                        return Ok(session);
                    };
                    (
                        None,
                        reason,
                        "The customer left; the chat was closed.".to_owned(),
                        None,
                    )
                }
            };
            sessions::mark_ended(&txn, id, by, reason, now).await?;
            let ended_msg = self.append_system_message(&txn, id, &line, now).await?;
            // Its transcript is complete: searched from now on as one document.
            search_documents::refresh(&txn, id).await?;
            history::record(
                &txn,
                id,
                HistoryKind::Ended,
                session.agent_id.as_deref(),
                actor,
                now,
            )
            .await?;
            let agent_after = match agent {
                Some(a) => Some(self.release_agent_slot(&txn, a, now).await?),
                None => None,
            };
            let ended = sessions::find(&txn, id)
                .await?
                .ok_or_else(AppError::session_not_found)?;
            webhook_outbox::record(
                self.core,
                &txn,
                now,
                WebhookEvent::SessionEnded(ended.clone()),
            )
            .await?;
            txn.commit().await?;
            self.core.webhooks.wake_if_recorded();

            self.core
                .bus
                .publish_session(id, SessionEvent::MessagePosted(ended_msg));
            self.core
                .bus
                .publish_session(id, SessionEvent::SessionChanged(ended.clone()));
            if let Some(a) = agent_after {
                self.core
                    .bus
                    .publish_agent(&a.id.clone(), AgentEvent::AgentChanged(a));
            }
            if session.status.is_queued() {
                self.core.queue().publish_queue_change(&ended).await;
            }
            // A slot (or, for an offer, a queue head) was freed.
            if session.agent_id.is_some() {
                self.core.routing().rematch().await;
            }
            return Ok(ended);
        }
        Err(AppError::Conflict(
            "session keeps changing hands; try again".into(),
        ))
    }
    /// After one of the agent's sessions ended (in `txn`, agent row locked):
    /// a draining agent moves on when it was the last; an available one
    /// becomes idle from now.
    pub(super) async fn release_agent_slot(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        agent: crate::domain::Agent,
        now: DateTime<Utc>,
    ) -> AppResult<crate::domain::Agent> {
        let still_held = agents::held_count(txn, &agent.id).await?;
        let next = if still_held == 0 {
            agent.status.after_last_session()
        } else {
            agent.status
        };
        let idle_since = (next == AgentStatus::Available).then_some(now);
        if next != agent.status || idle_since.is_some() {
            agents::set_status(txn, &agent.id, next, idle_since, now).await?;
        }
        agents::find(txn, &agent.id)
            .await?
            .ok_or_else(|| AppError::Internal("agent vanished".into()))
    }
    /// Writes a SYSTEM message with the next seq. The session row must be locked.
    pub(super) async fn append_system_message(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        session_id: Uuid,
        body: &str,
        now: DateTime<Utc>,
    ) -> AppResult<Message> {
        let seq = *sessions::take_seqs(txn, &[SeqTake::one(session_id)])
            .await?
            .get(&session_id)
            .ok_or_else(AppError::session_not_found)?;
        Ok(messages::insert(
            txn,
            messages::NewMessage {
                session_id,
                seq,
                sender: SenderRole::System,
                sender_id: None,
                body,
                client_message_id: None,
                created_at: now,
            },
        )
        .await?)
    }
    /// Makes the session ACTIVE with `agent_id`, writes the join line and
    /// the history entry, and queues the events. Agent row and session row
    /// must be locked.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn give_session(
        &self,
        txn: &DatabaseTransaction,
        id: Uuid,
        giving: Giving<'_>,
        now: DateTime<Utc>,
        outbox: &mut Outbox,
    ) -> AppResult<ChatSession> {
        let Giving {
            to,
            kind,
            actor,
            to_back_of_line,
            decision,
        } = giving;
        let (agent_id, agent_name) = (to.id.as_str(), to.name.as_str());
        sessions::mark_active(txn, id, agent_id, now).await?;
        if to_back_of_line {
            agents::set_idle_since(txn, agent_id, now).await?;
        }
        let line = match kind {
            HistoryKind::Transferred => format!("The chat was transferred to {agent_name}."),
            _ => format!("{agent_name} joined the chat."),
        };
        let joined = self.append_system_message(txn, id, &line, now).await?;
        history::record(txn, id, kind, Some(agent_id), actor, now).await?;
        let s = self.core.reload(txn, id).await?;
        // A transfer is announced by its caller, whichever way it goes.
        if kind != HistoryKind::Transferred {
            let assigned = WebhookEvent::SessionAssigned(s.clone());
            webhook_outbox::record(self.core, txn, now, assigned).await?;
        }
        if let Some(kind) = decision {
            let decided = RoutingDecision {
                session_id: id,
                agent_id: to.id.clone(),
                kind,
                priority: s.priority,
                queued_at: s.queued_at,
                agent_idle_since: to.idle_since,
                agent_held: to.active_session_count,
                agent_capacity: to.capacity,
                // A person chose: the only candidate is the one chosen.
                candidates: vec![to.id.clone()],
                required_skills: s.required_skills.clone(),
                skills_relaxed: !to.skills.covers(&s.required_skills),
                at: now,
                pass_agents: Vec::new(),
            };
            decisions::record_many(txn, &[decided]).await?;
        }
        if kind != HistoryKind::Transferred {
            let waited = (now - s.queued_at).num_milliseconds() as f64 / 1000.0;
            self.core.metrics.queue_wait.observe(waited);
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
    pub(super) async fn give_sessions(
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
        // Each comes back with `last_seq` the seq of its join line.
        let mut assigned = sessions::assign_taking_seq(txn, &pairs, now).await?;
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
                priority: None,
            })
            .collect();
        history::record_many(txn, &entries).await?;
        if webhook_outbox::wants(self.core, txn, WebhookEventType::SessionAssigned).await? {
            let events: Vec<WebhookEvent> = assigned
                .iter()
                .cloned()
                .map(WebhookEvent::SessionAssigned)
                .collect();
            webhook_outbox::record_all(self.core, txn, now, &events).await?;
        }
        for (s, line) in assigned.iter().zip(joined) {
            let waited = (now - s.queued_at).num_milliseconds() as f64 / 1000.0;
            self.core.metrics.queue_wait.observe(waited);
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
    pub(super) async fn withdraw_offers(
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
            if !locked.is_offered_to(agent_id) {
                continue;
            }
            let why = Requeue {
                kind,
                agent_id,
                actor: None,
                line: None,
            };
            self.requeue(txn, s.id, why, now, outbox).await?;
            withdrawn += 1;
        }
        Ok(withdrawn)
    }

    /// Returns a session to its place in the queue (its `queued_at` is
    /// kept): the one way back, whether declined, lapsed, withdrawn or
    /// transferred back. Session row (and agent row) locked by the caller.
    pub(super) async fn requeue(
        &self,
        txn: &DatabaseTransaction,
        id: Uuid,
        why: Requeue<'_>,
        now: DateTime<Utc>,
        outbox: &mut Outbox,
    ) -> AppResult<ChatSession> {
        sessions::return_to_queue(txn, id).await?;
        if let Some(line) = why.line {
            let posted = self.append_system_message(txn, id, line, now).await?;
            outbox.session(id, SessionEvent::MessagePosted(posted));
        }
        history::record(txn, id, why.kind, Some(why.agent_id), why.actor, now).await?;
        let back = self.core.reload(txn, id).await?;
        outbox.session(id, SessionEvent::SessionChanged(back.clone()));
        outbox.queue(back.clone());
        Ok(back)
    }
}

/// To whom and how a session is given.
pub(super) struct Giving<'a> {
    pub to: &'a Agent,
    pub kind: HistoryKind,
    /// Who gave it, when someone did.
    pub actor: Option<&'a str>,
    /// Being given a session sends the agent to the back of the idle line;
    /// false where an offer already did so when it was made.
    pub to_back_of_line: bool,
    /// The routing decision this is, when a person made it here (an offer
    /// taken was decided, and recorded, when it was made).
    pub decision: Option<DecisionKind>,
}

/// Why a session goes back to the queue, for its history and its transcript.
pub(super) struct Requeue<'a> {
    pub kind: HistoryKind,
    /// The agent it leaves.
    pub agent_id: &'a str,
    /// Who sent it back, when someone did.
    pub actor: Option<&'a str>,
    /// The SYSTEM line the customer reads, if any.
    pub line: Option<&'a str>,
}
