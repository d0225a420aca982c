//! Agents' presence across processes: `Agent.online`, `Agent.lastSeenAt`,
//! and what an agent's absence does (AWAY, then their chats back in the
//! queue).
//!
//! Each process counts the agents' WebSockets it holds (after a
//! connection_init with an agent token) and publishes the count as one row
//! per agent in `agent_connections`, written when a connection opens or
//! closes, and refreshed for all its agents at once by its heartbeat. An
//! agent is online while a row of theirs has connections and was refreshed
//! within three heartbeats: a process that dies, hangs or loses the
//! database stops refreshing, and its agents stop counting as connected
//! after that bound, with no one to clean up after it. When the last
//! connection closes, the agent's `last_seen_at` is stamped.
//!
//! Every process sweeps each heartbeat, agent by agent under the agent's
//! row lock (the lock every change to an agent takes first): rows of gone
//! processes are folded into `last_seen_at`, then the absence rule
//! (`domain::AbsenceRule`) is applied. Opening a connection writes its row
//! under the same lock, so a reconnect and a sweep cannot cross: either the
//! sweep sees the row, or the reconnect sees AWAY and undoes it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::DatabaseTransaction;

use super::core::Core;
use super::infra::outbox::Outbox;
use super::presence::Presence;
use super::transitions::Requeue;
use crate::auth::{Role, Viewer};
use crate::domain::{Agent, AgentPresence, AgentStatus, HistoryKind, SessionStatus};
use crate::error::{AppError, AppResult};
use crate::repo::{self, agent_presence, agents, sessions};

/// Agents of each kind examined per sweep.
const SWEEP_BATCH: u64 = 200;
/// Longest a new connection waits for its row before it is acknowledged
/// anyway (the heartbeat writes it later). Real time: it bounds database
/// I/O, not a rule.
const OPEN_WRITE_WAIT: Duration = Duration::from_secs(2);

/// Counts one agent WebSocket as live on this process until dropped.
pub struct AgentConnection {
    core: Arc<Core>,
    agent_id: String,
}

impl Drop for AgentConnection {
    fn drop(&mut self) {
        self.core.connections.closed(&self.agent_id);
        // Without a runtime the process is ending: its rows go stale.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (core, agent_id) = (self.core.clone(), std::mem::take(&mut self.agent_id));
        runtime.spawn(async move {
            if let Err(e) = core.presence().publish_connections(&agent_id).await {
                tracing::warn!(error = %e, agent = %agent_id, "could not record a closed agent connection; the heartbeat retries");
            }
        });
    }
}

/// What settling an agent did.
struct Settled {
    changed: bool,
    /// Sessions sent back to the queue (offers and active chats).
    freed: usize,
    back: bool,
}

impl Presence<'_> {
    /// How often this process vouches for its agents' connections and
    /// sweeps for absent agents.
    pub fn agent_heartbeat(&self) -> Duration {
        self.core.policy.agent_absence.heartbeat()
    }

    /// How long a process's connections count without a heartbeat.
    pub fn agent_stale_after(&self) -> Duration {
        self.core
            .policy
            .agent_absence
            .stale_after()
            .to_std()
            .unwrap_or_default()
    }

    /// An agent's WebSocket was initialised with `viewer`'s token: they
    /// count as connected, here and on every process, until the returned
    /// guard drops. None for anyone but an agent.
    pub async fn agent_connected(&self, viewer: &Viewer) -> Option<AgentConnection> {
        if viewer.role != Role::Agent {
            return None;
        }
        let agent_id = viewer.id.clone();
        self.core.connections.opened(&agent_id);
        let guard = AgentConnection {
            core: self.core.clone(),
            agent_id: agent_id.clone(),
        };
        match tokio::time::timeout(OPEN_WRITE_WAIT, self.publish_connections(&agent_id)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, agent = %agent_id, "could not record an agent connection; the heartbeat retries");
            }
            Err(_) => {
                self.core.connections.failed(&agent_id);
                tracing::warn!(agent = %agent_id, "recording an agent connection is slow; the heartbeat retries");
            }
        }
        Some(guard)
    }

    /// Presence of these agents, as every process sees it.
    pub async fn agents_presence(&self, ids: &[&str]) -> AppResult<HashMap<String, AgentPresence>> {
        let live_since = self.live_since(self.core.now());
        Ok(agent_presence::presence_of(&self.core.db, ids, live_since).await?)
    }

    fn live_since(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - self.core.policy.agent_absence.stale_after()
    }

    /// Stores this process's count of the agent's connections, and settles
    /// the agent: back from AWAY when connected again; the time seen when
    /// the last connection closed.
    pub(super) async fn publish_connections(&self, agent_id: &str) -> AppResult<()> {
        let live = &self.core.connections;
        let _turn = live.turn(agent_id).await;
        let held = live.held(agent_id);
        match self.write_connections(agent_id, held).await {
            Ok(()) => {
                live.written(agent_id, held);
                Ok(())
            }
            Err(e) => {
                live.failed(agent_id);
                Err(e)
            }
        }
    }

    async fn write_connections(&self, agent_id: &str, held: u32) -> AppResult<()> {
        let process = self.core.connections.process;
        let txn = repo::begin_write(&self.core.db).await?;
        // The agent's row first, as every change to an agent: a sweep
        // judging them waits for this, or this waits for the sweep.
        let Some(agent) = agents::lock(&txn, agent_id).await? else {
            // No row (the database was away at first sight): nothing to
            // be present for yet; the next connection tries again.
            txn.commit().await?;
            return Ok(());
        };
        // The row is held: a return to AVAILABLE is stamped on the shared
        // clock, after whatever it waited for, as every status change is.
        let now = self.core.shared_now(&txn).await?;
        if held > 0 {
            let count = i32::try_from(held).unwrap_or(i32::MAX);
            agent_presence::put(&txn, process, agent_id, count, now).await?;
        } else if agent_presence::remove(&txn, process, agent_id).await? {
            let live_since = self.live_since(now);
            let still_online = agent_presence::presence_of(&txn, &[agent_id], live_since)
                .await?
                .get(agent_id)
                .is_some_and(|p| p.online);
            if !still_online {
                agent_presence::record_closed(&txn, agent_id, now).await?;
            }
        }
        self.settle_and_publish(txn, agent, now).await?;
        Ok(())
    }

    /// The heartbeat: every connection this process holds is vouched for in
    /// one statement, and writes that failed are retried. Rows found
    /// missing (a sweep took this process for gone: it was cut off from the
    /// database, or too slow) are written again.
    pub async fn vouch_for_agents(&self) -> AppResult<()> {
        let live = &self.core.connections;
        for agent_id in live.dirty() {
            self.publish_connections(&agent_id).await?;
        }
        let connected = live.connected();
        if connected.is_empty() {
            return Ok(());
        }
        let process = live.process;
        let refreshed =
            agent_presence::refresh_process(&self.core.db, process, self.core.now()).await?;
        if refreshed < connected.len() as u64 {
            let stored: HashSet<String> = agent_presence::agents_of_process(&self.core.db, process)
                .await?
                .into_iter()
                .collect();
            for agent_id in connected.iter().filter(|a| !stored.contains(*a)) {
                self.publish_connections(agent_id).await?;
            }
        }
        Ok(())
    }

    /// The process is stopping: its connections stop counting now rather
    /// than after the bound.
    pub async fn forget_agent_connections(&self) {
        for agent_id in self.core.connections.forget_all() {
            if let Err(e) = self.publish_connections(&agent_id).await {
                tracing::warn!(error = %e, agent = %agent_id, "could not record a closed agent connection");
            }
        }
    }

    /// Applies the absence rule to every agent it may concern: rows of gone
    /// processes are folded away, AVAILABLE agents offline for
    /// AGENT_AWAY_SECS turn AWAY (their offers go to the next agent), AWAY
    /// agents connected again are AVAILABLE, and the chats of agents
    /// offline for AGENT_ABANDON_SECS go back to the queue in their places.
    /// Idempotent, on any number of processes. Returns the agents changed.
    pub async fn sweep_agents(&self) -> AppResult<usize> {
        // Only to pick whom to look at; each is judged under their lock.
        let now = self.core.now();
        let rule = self.core.policy.agent_absence;
        let live_since = self.live_since(now);
        let db = &self.core.db;
        let mut due: BTreeSet<String> = BTreeSet::new();
        due.extend(agent_presence::with_stale_rows(db, live_since, SWEEP_BATCH).await?);
        due.extend(agent_presence::away_but_connected(db, live_since, SWEEP_BATCH).await?);
        let away_since = now - rule.away_after;
        due.extend(
            agent_presence::available_offline_since(db, live_since, away_since, SWEEP_BATCH)
                .await?,
        );
        let abandon_since = now - rule.abandon_after;
        due.extend(
            agent_presence::holding_offline_since(db, live_since, abandon_since, SWEEP_BATCH)
                .await?,
        );
        let mut changed = 0;
        for agent_id in due {
            let txn = repo::begin_write(&self.core.db).await?;
            // Sessions may go back to the queue: no matcher pass in between.
            repo::lock_routing(&txn).await?;
            let Some(agent) = agents::lock(&txn, &agent_id).await? else {
                continue;
            };
            // Judged and stamped once every lock is held, on the shared
            // clock: offers withdrawn and chats sent back sort after the
            // passes this waited for, as the audit reads them.
            let now = self.core.shared_now(&txn).await?;
            if self.settle_and_publish(txn, agent, now).await? {
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// Settles the agent (row locked in `txn`), commits, publishes, and
    /// runs the matcher when sessions or the agent became free. Whether
    /// anything changed.
    async fn settle_and_publish(
        &self,
        txn: DatabaseTransaction,
        agent: Agent,
        now: DateTime<Utc>,
    ) -> AppResult<bool> {
        let mut outbox = Outbox::default();
        let settled = self.settle(&txn, agent, now, &mut outbox).await?;
        txn.commit().await?;
        if !settled.changed {
            return Ok(false);
        }
        outbox.publish(self.core).await;
        if settled.freed > 0 || settled.back {
            self.core.routing().rematch().await;
        }
        Ok(true)
    }

    /// Folds the rows of gone processes into the agent's `last_seen_at`
    /// and applies the absence rule, in `txn`, the agent's row locked.
    async fn settle(
        &self,
        txn: &DatabaseTransaction,
        agent: Agent,
        now: DateTime<Utc>,
        outbox: &mut Outbox,
    ) -> AppResult<Settled> {
        let rule = self.core.policy.agent_absence;
        let live_since = self.live_since(now);
        let agent_id = agent.id.as_str();
        if let Some(last) = agent_presence::take_stale_rows(txn, agent_id, live_since).await? {
            agent_presence::record_closed(txn, agent_id, last).await?;
        }
        let Some((presence, first_known)) =
            agent_presence::presence_and_first_known(txn, agent_id, live_since).await?
        else {
            return Err(AppError::Internal("agent vanished".into()));
        };
        let verdict = rule.judge(agent.status, presence.offline_since(first_known), now);
        // Someone leaving AVAILABLE gets nothing new: open offers go on.
        let going_away = verdict.status == AgentStatus::Away && agent.status != AgentStatus::Away;
        let mut freed = 0;
        if verdict.release_sessions || going_away {
            freed += self
                .send_back(txn, &agent, verdict.release_sessions, now, outbox)
                .await?;
        }
        let back = verdict.status == AgentStatus::Available && agent.status != verdict.status;
        if verdict.status != agent.status {
            // Back from AWAY is becoming available: the back of the idle line.
            agents::set_status(txn, agent_id, verdict.status, back.then_some(now), now).await?;
        }
        let changed = freed > 0 || verdict.status != agent.status;
        if changed {
            let mut after = agents::find(txn, agent_id)
                .await?
                .ok_or_else(|| AppError::Internal("agent vanished".into()))?;
            if freed > 0 {
                after = self
                    .core
                    .transitions()
                    .release_agent_slot(txn, after, now)
                    .await?;
            }
            outbox.agent_changed(after);
        }
        Ok(Settled {
            changed,
            freed,
            back,
        })
    }

    /// Takes back the agent's offers and, when `chats_too`, returns their
    /// ACTIVE sessions to the queue in their original places, each with a
    /// line for the customer. How many sessions went back.
    async fn send_back(
        &self,
        txn: &DatabaseTransaction,
        agent: &Agent,
        chats_too: bool,
        now: DateTime<Utc>,
        outbox: &mut Outbox,
    ) -> AppResult<usize> {
        let agent_id = agent.id.as_str();
        // Every session row concerned, locked at once in id order, as every
        // transaction that holds several session rows takes them.
        let mut ids: Vec<uuid::Uuid> = sessions::offered_to(txn, agent_id)
            .await?
            .iter()
            .map(|s| s.id)
            .collect();
        if chats_too {
            ids.extend(agent_presence::active_sessions_of(txn, agent_id).await?);
        }
        if ids.is_empty() {
            return Ok(0);
        }
        ids.sort_unstable();
        ids.dedup();
        let locked = sessions::lock_many(txn, &ids).await?;
        let transitions = self.core.transitions();
        let mut freed = transitions
            .withdraw_offers(txn, agent_id, HistoryKind::Withdrawn, now, outbox)
            .await?;
        if chats_too {
            let line = format!(
                "{} lost their connection; you are back in the queue.",
                agent.name
            );
            for s in locked.iter().filter(|s| {
                s.status == SessionStatus::Active && s.agent_id.as_deref() == Some(agent_id)
            }) {
                let why = Requeue {
                    kind: HistoryKind::Requeued,
                    agent_id,
                    actor: None,
                    line: Some(&line),
                };
                transitions.requeue(txn, s.id, why, now, outbox).await?;
                freed += 1;
            }
        }
        Ok(freed)
    }
}
