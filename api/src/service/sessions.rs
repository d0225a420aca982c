//! Session lifecycle: start, accept, end; reading sessions and the queue.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use sea_orm::SqlErr;
use uuid::Uuid;

use super::agents::RoutingLock;
use super::core::Core;
use super::infra::batch_queue::{self, ArrivalRequest, BatchQueue, Batched, Pending};
use super::infra::outbox::Outbox;
use super::pagination::{decode_time_cursor, encode_time_cursor, page_size, Page, PageArgs};
use super::transitions::{Ender, Giving};
use super::webhooks::outbox as webhook_outbox;
use crate::auth::{Role, Viewer};
use crate::domain::webhooks::{WebhookEvent, WebhookEventType};
use crate::domain::{access, HistoryKind};
use crate::domain::{
    validate_subject, Acceptance, ChatSession, DecisionKind, SessionStatus, Skills,
};
use crate::error::{AppError, AppResult};
use crate::repo::history;
use crate::repo::{self, agents, sessions};

pub(crate) fn parse_session_id(raw: &str) -> AppResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| AppError::BadUserInput(format!("{raw:?} is not a session id")))
}

/// Session lifecycle seen from the outside: start, accept, end; reading sessions, the queue and its figures.
pub struct Sessions<'a> {
    pub(super) core: &'a std::sync::Arc<Core>,
}

impl Sessions<'_> {
    /// Returns the customer's open session, or queues a new one. `from` is
    /// the client's address: each may start only so many sessions a minute,
    /// so that one host cannot flood the queue under many customer ids.
    pub async fn start_session(
        &self,
        viewer: &Viewer,
        subject: Option<&str>,
        skills: &[String],
        from: Option<IpAddr>,
    ) -> AppResult<ChatSession> {
        let customer = viewer.require_customer()?;
        let subject = validate_subject(subject).map_err(AppError::BadUserInput)?;
        let required_skills = Skills::parse(skills).map_err(AppError::BadUserInput)?;
        if let Some(open) = sessions::find_open_for_customer(&self.core.db, customer).await? {
            // Coming back to it is being here.
            sessions::touch_customer(&self.core.db, open.id, self.core.now()).await?;
            return Ok(open);
        }
        if let Some(ip) = from {
            if !self.core.admit_address(&self.core.session_limiter, ip) {
                return Err(AppError::RateLimited(format!(
                    "too many new chats from your address: at most {} a minute, bursts of {}",
                    self.core.policy.ip_session_rate_per_min, self.core.policy.ip_session_burst
                )));
            }
        }
        batch_queue::submit(
            self.core,
            ArrivalRequest {
                customer_id: customer.to_owned(),
                subject,
                // Only the shop's signed claim sets it; customers cannot.
                priority: viewer.priority.unwrap_or_default(),
                required_skills,
                customer_name: viewer.name.clone(),
                at: self.core.now(),
            },
        )
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
        let txn = repo::begin_write(&self.core.db).await?;
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
        let clock = self.core.shared_now(&txn).await?;
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
                priority: arrival.priority,
                required_skills: arrival.required_skills.clone(),
                customer_name: arrival.customer_name.clone(),
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
                return Ok(vec![sessions::find_open_for_customer(
                    &self.core.db,
                    customer,
                )
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
                // Its place in the queue: the shared clock under the routing
                // lock, like every other entry (created_at is the arrival,
                // on this process's clock).
                at: s.queued_at,
                priority: Some(s.priority),
            })
            .collect();
        history::record_many(&txn, &entries).await?;
        if !created.is_empty()
            && webhook_outbox::wants(self.core, &txn, WebhookEventType::SessionStarted).await?
        {
            let started: Vec<WebhookEvent> = created
                .iter()
                .cloned()
                .map(WebhookEvent::SessionStarted)
                .collect();
            webhook_outbox::record_all(self.core, &txn, clock, &started).await?;
        }
        txn.commit().await?;
        if !created.is_empty() {
            use std::sync::atomic::Ordering::Relaxed;
            self.core
                .metrics
                .queue_entries
                .fetch_add(created.len() as u64, Relaxed);
            self.core
                .metrics
                .queue_entry_transactions
                .fetch_add(1, Relaxed);
        }

        let mut outbox = Outbox::default();
        for s in &created {
            outbox.queue(s.clone());
        }
        outbox.publish(self.core).await;
        let created_ids: Vec<Uuid> = created.iter().map(|s| s.id).collect();
        open.extend(created.into_iter().map(|s| (s.customer_id.clone(), s)));
        if !created_ids.is_empty() {
            self.core.routing().rematch().await;
            // As matching left them; if that read fails, as they entered.
            match sessions::find_many(&self.core.db, &created_ids).await {
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
        let (txn, agent, session) = self
            .core
            .agents()
            .lock_with_session(viewer, session_id, RoutingLock::Concurrent)
            .await?;
        let id = session.id;
        let acceptance = session.accept_by(&agent, self.core.policy.routing_mode)?;
        // A retried accept of what is already ours succeeds, changing nothing.
        if acceptance == Acceptance::AlreadyHeld {
            return Ok(session);
        }
        // Rows held: the shared clock (which also set offer deadlines)
        // stamps the change after everything it waited for.
        let now = self.core.shared_now(&txn).await?;
        if acceptance == Acceptance::TakeOffer {
            session.take_offer(now)?;
        }
        let mut outbox = Outbox::default();
        let giving = Giving {
            to: &agent,
            kind: HistoryKind::Accepted,
            actor: Some(agent_id),
            // Picked from the queue: given a session now. (An offer moved
            // the agent when it was made.)
            to_back_of_line: session.status == SessionStatus::Waiting,
            decision: (acceptance == Acceptance::PickFromQueue).then_some(DecisionKind::Accepted),
        };
        let transitions = self.core.transitions();
        let accepted = transitions
            .give_session(&txn, id, giving, now, &mut outbox)
            .await?;
        if let Some(a) = agents::find(&txn, agent_id).await? {
            outbox.agent_changed(a);
        }
        outbox.queue(accepted.clone());
        txn.commit().await?;
        outbox.publish(self.core).await;
        Ok(accepted)
    }

    /// Ends a session on purpose. Ending an ended session returns it as it
    /// is, so a retried request does not fail.
    pub async fn end_session(&self, viewer: &Viewer, session_id: &str) -> AppResult<ChatSession> {
        let id = parse_session_id(session_id)?;
        self.core
            .transitions()
            .close(id, Ender::Person(viewer))
            .await
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
        Ok(sessions::find(&self.core.db, id)
            .await?
            .filter(|s| access::may_view(viewer, s)))
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
        let since = self.core.now() - Duration::days(self.core.policy.history_days);
        let scope = match viewer.role {
            Role::Customer => sessions::Scope::Customer {
                id: &viewer.id,
                since,
            },
            Role::Agent => sessions::Scope::Agent { id: &viewer.id },
            Role::Admin => sessions::Scope::All,
        };
        let mut rows = sessions::page(&self.core.db, scope, after, limit + 1).await?;
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

    /// The assignment history of a session, for admins.
    pub async fn session_history(
        &self,
        viewer: &Viewer,
        s: &ChatSession,
    ) -> AppResult<Vec<history::HistoryEntry>> {
        viewer.require_admin()?;
        Ok(history::for_session(&self.core.db, s.id).await?)
    }
}

fn encode_session_cursor(s: &ChatSession) -> String {
    encode_time_cursor(s.created_at, s.id)
}

fn decode_session_cursor(cursor: &str) -> AppResult<(DateTime<Utc>, Uuid)> {
    decode_time_cursor(cursor)
}

impl Batched for ArrivalRequest {
    type Answer = ChatSession;
    const WHAT: &'static str = "arrivals";
    fn queue(core: &Core) -> &BatchQueue<Pending<Self, ChatSession>> {
        &core.arrivals
    }
    async fn write(
        core: &std::sync::Arc<Core>,
        batch: &[Self],
    ) -> AppResult<Vec<AppResult<ChatSession>>> {
        Sessions { core }.enter_queue(batch).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};

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
