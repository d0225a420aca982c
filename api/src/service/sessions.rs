//! Session lifecycle: start, accept, end; reading sessions and the queue.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::{DateTime, Datelike, Duration, Utc};
use sea_orm::SqlErr;
use uuid::Uuid;

use super::batch_queue::{ArrivalRequest, BatchQueue, Batched, Pending};
use super::outbox::Outbox;
use super::pagination::{page_size, Page, PageArgs};
use super::ChatService;
use crate::auth::{Role, Viewer};
use crate::domain::HistoryKind;
use crate::domain::{
    validate_subject, AgentStatus, ChatSession, EndReason, Message, SenderRole, SessionStatus,
};
use crate::error::{AppError, AppResult};
use crate::events::{AgentEvent, QueueStats, SessionEvent};
use crate::matching::RoutingMode;
use crate::repo::history;
use crate::repo::{self, agents, messages, sessions};

/// Who ends a session.
#[derive(Clone, Copy)]
pub(crate) enum Ender<'a> {
    /// Someone, on purpose.
    Person(&'a Viewer),
    /// The system, because the customer has not been seen since `seen_before`.
    Absence { seen_before: DateTime<Utc> },
}

/// Whether `viewer` may read `s`: its customer, an admin, the agent it is
/// offered to or held by, or any agent while it is in the queue.
pub(crate) fn can_view(viewer: &Viewer, s: &ChatSession) -> bool {
    match viewer.role {
        Role::Admin => true,
        Role::Customer => s.customer_id == viewer.id,
        Role::Agent => s.status.is_queued() || s.agent_id.as_deref() == Some(viewer.id.as_str()),
    }
}

pub(crate) fn parse_session_id(raw: &str) -> AppResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| AppError::BadUserInput(format!("{raw:?} is not a session id")))
}

impl ChatService {
    /// Returns the customer's open session, or queues a new one. `from` is
    /// the client's address: each may start only so many sessions a minute,
    /// so that one host cannot flood the queue under many customer ids.
    pub async fn start_session(
        &self,
        viewer: &Viewer,
        subject: Option<&str>,
        from: Option<IpAddr>,
    ) -> AppResult<ChatSession> {
        let customer = viewer.require_customer()?;
        let subject = validate_subject(subject).map_err(AppError::BadUserInput)?;
        if let Some(open) = sessions::find_open_for_customer(&self.db, customer).await? {
            // Coming back to it is being here.
            sessions::touch_customer(&self.db, open.id, self.now()).await?;
            return Ok(open);
        }
        if let Some(ip) = from {
            if !self
                .session_limiter
                .try_take(&ip.to_string(), self.clock.instant())
            {
                self.metrics
                    .refused_by_ip_limit
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Err(AppError::RateLimited(format!(
                    "too many new chats from your address: at most {} a minute, bursts of {}",
                    self.policy.ip_session_rate_per_min, self.policy.ip_session_burst
                )));
            }
        }
        self.submit(ArrivalRequest {
            customer_id: customer.to_owned(),
            subject,
            at: self.now(),
        })
        .await
    }

    /// Queues a session for each arrival in one transaction, in arrival
    /// order, then runs the matcher once for all of them. A customer with
    /// an open session (a concurrent start, or one earlier in the batch)
    /// gets that one. Answers with the sessions as they are after matching.
    async fn enter_queue(
        &self,
        arrivals: &[ArrivalRequest],
    ) -> AppResult<Vec<AppResult<ChatSession>>> {
        let txn = repo::begin_write(&self.db).await?;
        // Entering the queue under the routing lock, and stamping the time
        // only once it is held, makes queue order equal commit order: the
        // matcher can never see a later arrival before an earlier one.
        repo::lock_routing(&txn).await?;
        let customers: Vec<&str> = arrivals.iter().map(|a| a.customer_id.as_str()).collect();
        let mut open: HashMap<String, ChatSession> =
            sessions::find_open_for_customers(&txn, &customers)
                .await?
                .into_iter()
                .map(|s| (s.customer_id.clone(), s))
                .collect();
        // Each arrival a microsecond after the one before, all after
        // whatever is already queued: ties would fall back to the ids'
        // random order.
        let clock = self.shared_now(&txn).await?;
        let after_queue = sessions::latest_queued_at(&txn)
            .await?
            .map(|t| t + chrono::Duration::microseconds(1));
        let first = after_queue.map_or(clock, |t| t.max(clock));
        let mut entering = Vec::new();
        let mut entered: HashSet<&str> = HashSet::new();
        for arrival in arrivals {
            if open.contains_key(&arrival.customer_id) || !entered.insert(&arrival.customer_id) {
                continue;
            }
            entering.push(sessions::NewWaiting {
                customer_id: &arrival.customer_id,
                subject: arrival.subject.clone(),
                now: arrival.at,
                queued_at: first + chrono::Duration::microseconds(entering.len() as i64),
            });
        }
        let created = match sessions::insert_waiting(&txn, entering).await {
            Ok(created) => created,
            // Only without the routing lock (SQLite): a concurrent start won
            // the unique index. Alone, the arrival gets the winner's session.
            Err(e)
                if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
                    && arrivals.len() == 1 =>
            {
                drop(txn);
                let customer = &arrivals[0].customer_id;
                return Ok(vec![sessions::find_open_for_customer(&self.db, customer)
                    .await?
                    .ok_or_else(|| {
                        AppError::Conflict("your chat changed meanwhile; try again".into())
                    })]);
            }
            Err(e) => return Err(e.into()),
        };
        let entries: Vec<history::NewEntry> = created
            .iter()
            .map(|s| history::NewEntry {
                session_id: s.id,
                kind: HistoryKind::Queued,
                agent_id: None,
                actor_id: Some(&s.customer_id),
                at: s.created_at,
            })
            .collect();
        history::record_many(&txn, &entries).await?;
        txn.commit().await?;
        if !created.is_empty() {
            use std::sync::atomic::Ordering::Relaxed;
            self.metrics
                .queue_entries
                .fetch_add(created.len() as u64, Relaxed);
            self.metrics.queue_entry_transactions.fetch_add(1, Relaxed);
        }

        let mut outbox = Outbox::default();
        for s in &created {
            outbox.queue(s.clone());
        }
        outbox.publish(self).await;
        let created_ids: Vec<Uuid> = created.iter().map(|s| s.id).collect();
        open.extend(created.into_iter().map(|s| (s.customer_id.clone(), s)));
        if !created_ids.is_empty() {
            self.rematch().await;
            // As matching left them; if that read fails, as they entered.
            match sessions::find_many(&self.db, &created_ids).await {
                Ok(now) => open.extend(now.into_iter().map(|s| (s.customer_id.clone(), s))),
                Err(e) => tracing::warn!(error = %e, "could not re-read sessions after matching"),
            }
        }
        Ok(arrivals
            .iter()
            .map(|a| {
                open.get(&a.customer_id)
                    .cloned()
                    .ok_or_else(|| AppError::Internal("an arrival was not queued".into()))
            })
            .collect())
    }

    /// An agent takes a session: one offered to them (fair routing), or any
    /// WAITING one (manual routing), where the first taker wins and capacity
    /// holds. Locks the agent row, then the session row.
    pub async fn accept_session(
        &self,
        viewer: &Viewer,
        session_id: &str,
    ) -> AppResult<ChatSession> {
        let agent_id = viewer.require_agent()?;
        let id = parse_session_id(session_id)?;
        let now = self.now();
        let txn = repo::begin_write(&self.db).await?;
        let agent = self.lock_calling_agent(&txn, viewer).await?;
        let session = sessions::lock(&txn, id)
            .await?
            .ok_or_else(AppError::session_not_found)?;
        let mine = session.agent_id.as_deref() == Some(agent_id);
        match (session.status, self.policy.routing_mode) {
            // A retried accept of what is already ours succeeds.
            (SessionStatus::Active, _) if mine => return Ok(session),
            (SessionStatus::Offered, _) if mine => {
                let deadline_now = self.shared_now(&txn).await?;
                if session
                    .offer_expires_at
                    .is_some_and(|at| at <= deadline_now)
                {
                    return Err(AppError::Conflict("the offer has lapsed".into()));
                }
            }
            (SessionStatus::Waiting, RoutingMode::Manual) => {
                if !agent.status.takes_new_sessions() {
                    return Err(AppError::Conflict(format!(
                        "you are {}; start your shift to take sessions",
                        agent.status.as_str()
                    )));
                }
                if agent.active_session_count >= agent.capacity {
                    return Err(AppError::Conflict(format!(
                        "you already hold {} of {} sessions",
                        agent.active_session_count, agent.capacity
                    )));
                }
            }
            (SessionStatus::Waiting, mode) => {
                return Err(AppError::Conflict(format!(
                    "routing is {mode}: sessions reach agents by the queue, not by picking"
                )))
            }
            (SessionStatus::Offered, _) => {
                return Err(AppError::Conflict(
                    "session is offered to another agent".into(),
                ))
            }
            (SessionStatus::Active, _) => {
                return Err(AppError::Conflict(
                    "session was already taken by another agent".into(),
                ))
            }
            (SessionStatus::Ended, _) => {
                return Err(AppError::Conflict("session has ended".into()))
            }
        }
        let mut outbox = Outbox::default();
        let accepted = self
            .give_session(
                &txn,
                id,
                agent_id,
                &agent.name,
                HistoryKind::Accepted,
                Some(agent_id),
                now,
                &mut outbox,
            )
            .await?;
        if session.status == SessionStatus::Waiting {
            // Picked from the queue: given a session now. (An offer set this
            // when it was made.)
            agents::set_idle_since(&txn, agent_id, now).await?;
        }
        if let Some(a) = agents::find(&txn, agent_id).await? {
            outbox.agent_changed(a);
        }
        outbox.queue(accepted.clone());
        txn.commit().await?;
        outbox.publish(self).await;
        Ok(accepted)
    }

    /// Ends a session on purpose. Ending an ended session returns it as it
    /// is, so a retried request does not fail.
    pub async fn end_session(&self, viewer: &Viewer, session_id: &str) -> AppResult<ChatSession> {
        let id = parse_session_id(session_id)?;
        self.close(id, Ender::Person(viewer)).await
    }

    /// Ends a session for `ender`, writing the SYSTEM line and history,
    /// freeing the agent's slot and telling everyone after the commit.
    pub(crate) async fn close(&self, id: Uuid, ender: Ender<'_>) -> AppResult<ChatSession> {
        // The agent row must be locked before the session row (the order
        // accept uses); the holder is read first and checked again under lock.
        for _ in 0..5 {
            let seen = sessions::find(&self.db, id)
                .await?
                .ok_or_else(AppError::session_not_found)?;
            if let Ender::Person(viewer) = ender {
                let allowed = match viewer.role {
                    Role::Admin => true,
                    Role::Customer => seen.customer_id == viewer.id,
                    // An agent who was only offered it declines instead.
                    Role::Agent => {
                        seen.agent_id.as_deref() == Some(viewer.id.as_str())
                            && seen.status != SessionStatus::Offered
                    }
                };
                if !allowed {
                    return Err(if can_view(viewer, &seen) {
                        AppError::Forbidden(
                            "only the session's customer, its agent or an admin may end it".into(),
                        )
                    } else {
                        AppError::Forbidden("not your session".into())
                    });
                }
            }
            if !seen.status.is_open() {
                return Ok(seen);
            }
            let now = self.now();
            let txn = repo::begin_write(&self.db).await?;
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
            if !session.status.is_open() {
                return Ok(session);
            }
            let (by, reason, line, actor) = match ender {
                Ender::Person(viewer) => {
                    let who = match viewer.role {
                        Role::Customer => "the customer",
                        Role::Agent => "the agent",
                        Role::Admin => "an administrator",
                    };
                    (
                        Some(viewer.role),
                        EndReason::on_purpose(viewer.role, session.status),
                        format!("Chat ended by {who}."),
                        Some(viewer.id.as_str()),
                    )
                }
                Ender::Absence { seen_before } => {
                    // The customer may have come back since the sweep looked.
                    if session.customer_seen_at.is_some_and(|at| at >= seen_before) {
                        return Ok(session);
                    }
                    let reason = if session.status.is_queued() {
                        EndReason::Cancelled
                    } else {
                        EndReason::Abandoned
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
            txn.commit().await?;

            self.bus
                .publish_session(id, SessionEvent::MessagePosted(ended_msg));
            self.bus
                .publish_session(id, SessionEvent::SessionChanged(ended.clone()));
            if let Some(a) = agent_after {
                self.bus
                    .publish_agent(&a.id.clone(), AgentEvent::AgentChanged(a));
            }
            if session.status.is_queued() {
                self.publish_queue_change(&ended).await;
            }
            // A slot (or, for an offer, a queue head) was freed.
            if session.agent_id.is_some() {
                self.rematch().await;
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
    pub(crate) async fn release_agent_slot(
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
    pub(crate) async fn append_system_message(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        session_id: Uuid,
        body: &str,
        now: DateTime<Utc>,
    ) -> AppResult<Message> {
        let seq = sessions::allocate_seq(txn, session_id, None)
            .await?
            .ok_or_else(AppError::session_not_found)?
            .last_seq;
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

    /// The session if the viewer may see it; `None` otherwise, whether or
    /// not it exists, so that ids cannot be probed.
    pub async fn session(
        &self,
        viewer: &Viewer,
        session_id: &str,
    ) -> AppResult<Option<ChatSession>> {
        let Ok(id) = Uuid::parse_str(session_id) else {
            return Ok(None);
        };
        Ok(sessions::find(&self.db, id)
            .await?
            .filter(|s| can_view(viewer, s)))
    }

    /// Customer: own sessions of the last HISTORY_DAYS days. Agent: sessions
    /// they handled. Admin: everything stored. Newest first.
    pub async fn my_sessions(
        &self,
        viewer: &Viewer,
        args: &PageArgs,
    ) -> AppResult<Page<ChatSession>> {
        let limit = page_size("first", args.first, 20, 100)?;
        let after = args
            .after
            .as_deref()
            .map(decode_session_cursor)
            .transpose()?;
        let since = self.now() - Duration::days(self.policy.history_days);
        let scope = match viewer.role {
            Role::Customer => sessions::Scope::Customer {
                id: &viewer.id,
                since,
            },
            Role::Agent => sessions::Scope::Agent { id: &viewer.id },
            Role::Admin => sessions::Scope::All,
        };
        let mut rows = sessions::page(&self.db, scope, after, limit + 1).await?;
        let has_next_page = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        Ok(Page {
            items: rows
                .into_iter()
                .map(|s| (encode_session_cursor(&s), s))
                .collect(),
            has_previous_page: after.is_some(),
            has_next_page,
        })
    }

    /// WAITING and OFFERED sessions in routing order, each with its queue
    /// position (WAITING only).
    pub async fn queue(&self, viewer: &Viewer) -> AppResult<Vec<(ChatSession, Option<i32>)>> {
        viewer.require_staff()?;
        let mut position = 0;
        Ok(sessions::queue(&self.db)
            .await?
            .into_iter()
            .map(|s| {
                let pos = (s.status == SessionStatus::Waiting).then(|| {
                    position += 1;
                    position
                });
                (s, pos)
            })
            .collect())
    }

    /// 1-based place in the queue while WAITING.
    pub async fn queue_position(&self, s: &ChatSession) -> AppResult<Option<i32>> {
        if s.status != SessionStatus::Waiting {
            return Ok(None);
        }
        let p = sessions::queue_position(&self.db, s).await?;
        Ok(Some(i32::try_from(p).unwrap_or(i32::MAX)))
    }

    pub async fn queue_stats(&self, viewer: &Viewer) -> AppResult<QueueStats> {
        viewer.require_staff()?;
        self.compute_queue_stats().await
    }

    pub(crate) async fn compute_queue_stats(&self) -> AppResult<QueueStats> {
        let mut stats = QueueStats::default();
        for (status, n) in sessions::count_by_status(&self.db).await? {
            let n = i32::try_from(n).unwrap_or(i32::MAX);
            match status.parse::<SessionStatus>() {
                Ok(SessionStatus::Waiting) => stats.waiting = n,
                Ok(SessionStatus::Offered) => stats.offered = n,
                Ok(SessionStatus::Active) => stats.active = n,
                _ => {}
            }
        }
        for a in agents::list(&self.db).await? {
            if a.status == AgentStatus::Available {
                stats.available_agents += 1;
                stats.free_slots += (a.capacity - a.active_session_count).max(0);
            }
        }
        if let Some(since) = sessions::oldest_waiting_since(&self.db).await? {
            stats.longest_wait_seconds =
                i32::try_from((self.now() - since).num_seconds().max(0)).unwrap_or(i32::MAX);
        }
        Ok(stats)
    }

    /// Tells queue watchers that `session` entered, moved in or left the queue.
    pub(crate) async fn publish_queue_change(&self, session: &ChatSession) {
        let mut outbox = Outbox::default();
        outbox.queue(session.clone());
        outbox.publish(self).await;
    }

    /// The assignment history of a session, for admins.
    pub async fn session_history(
        &self,
        viewer: &Viewer,
        s: &ChatSession,
    ) -> AppResult<Vec<history::HistoryEntry>> {
        viewer.require_admin()?;
        Ok(history::for_session(&self.db, s.id).await?)
    }
}

fn encode_session_cursor(s: &ChatSession) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{}", s.created_at.timestamp_micros(), s.id))
}

fn decode_session_cursor(cursor: &str) -> AppResult<(DateTime<Utc>, Uuid)> {
    let bad = || AppError::BadUserInput(format!("{cursor:?} is not a cursor from this list"));
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (micros, id) = raw.split_once('|').ok_or_else(bad)?;
    // Every real cursor holds a creation time; the bounds keep forged ones
    // inside what Postgres's timestamptz can compare (4713 BC to 294276 AD).
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .filter(|at| (0..=9999).contains(&at.year()))
        .ok_or_else(bad)?;
    Ok((at, Uuid::parse_str(id).map_err(|_| bad())?))
}

impl Batched for ArrivalRequest {
    type Answer = ChatSession;
    const WHAT: &'static str = "arrivals";
    fn queue(svc: &ChatService) -> &BatchQueue<Pending<Self, ChatSession>> {
        &svc.arrivals
    }
    fn write<'a>(
        svc: &'a ChatService,
        batch: &'a [Self],
    ) -> impl std::future::Future<Output = AppResult<Vec<AppResult<ChatSession>>>> + Send + 'a {
        svc.enter_queue(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_cursors_round_trip_and_reject_garbage() {
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let id = Uuid::new_v4();
        let encoded = URL_SAFE_NO_PAD.encode(format!("{}|{}", at.timestamp_micros(), id));
        assert_eq!(decode_session_cursor(&encoded).unwrap(), (at, id));
        assert!(decode_session_cursor("not a cursor").is_err());
        assert!(decode_session_cursor(&URL_SAFE_NO_PAD.encode("12|nope")).is_err());
        let nil = Uuid::nil();
        for micros in [i64::MIN, -210_866_803_200_000_001, 253_402_300_800_000_000] {
            let forged = URL_SAFE_NO_PAD.encode(format!("{micros}|{nil}"));
            assert!(decode_session_cursor(&forged).is_err(), "{micros}");
        }
    }
}
