//! The queue as staff and waiting customers see it: its order, each
//! waiting session's place and estimated wait, its figures, and moving a
//! session within it by priority.

use std::sync::Arc;

use chrono::Duration;

use super::core::Core;
use super::infra::outbox::Outbox;
use super::sessions::parse_session_id;
use crate::auth::Viewer;
use crate::domain::{access, AgentStatus, ChatSession, Priority, SessionStatus};
use crate::error::{AppError, AppResult};
use crate::events::QueueStats;
use crate::repo::{self, agents, decisions, history, sessions};

/// How far back the estimate of a wait looks at how fast the queue moves.
const SERVICE_WINDOW_MINUTES: i64 = 10;

/// The queue: order, places, estimates, figures and priorities.
pub struct Queue<'a> {
    pub(super) core: &'a Arc<Core>,
}

impl Queue<'_> {
    /// WAITING and OFFERED sessions in routing order, each with its queue
    /// position (WAITING only).
    pub async fn queue(&self, viewer: &Viewer) -> AppResult<Vec<(ChatSession, Option<i32>)>> {
        viewer.require_staff()?;
        let mut position = 0;
        Ok(sessions::queue(&self.core.db)
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
        let p = sessions::queue_position(&self.core.db, s).await?;
        Ok(Some(i32::try_from(p).unwrap_or(i32::MAX)))
    }
    pub async fn queue_stats(&self, viewer: &Viewer) -> AppResult<QueueStats> {
        viewer.require_staff()?;
        self.compute_queue_stats().await
    }
    pub(crate) async fn compute_queue_stats(&self) -> AppResult<QueueStats> {
        let mut stats = QueueStats::default();
        for (status, n) in sessions::count_by_status(&self.core.db).await? {
            let n = i32::try_from(n).unwrap_or(i32::MAX);
            match status.parse::<SessionStatus>() {
                Ok(SessionStatus::Waiting) => stats.waiting = n,
                Ok(SessionStatus::Offered) => stats.offered = n,
                Ok(SessionStatus::Active) => stats.active = n,
                _ => {}
            }
        }
        for a in agents::list(&self.core.db).await? {
            if a.status == AgentStatus::Available {
                stats.available_agents += 1;
                stats.free_slots += a.free_slots();
            }
        }
        if let Some(since) = sessions::oldest_waiting_since(&self.core.db).await? {
            stats.longest_wait_seconds =
                i32::try_from((self.core.now() - since).num_seconds().max(0)).unwrap_or(i32::MAX);
        }
        Ok(stats)
    }
    /// Tells queue watchers that `session` entered, moved in or left the queue.
    pub(crate) async fn publish_queue_change(&self, session: &ChatSession) {
        let mut outbox = Outbox::default();
        outbox.queue(session.clone());
        outbox.publish(self.core).await;
    }

    /// For a WAITING session: seconds until an agent is likely free for
    /// it, from how many sessions left the queue for an agent over the last
    /// ten minutes and how many wait ahead of it. `None` when not waiting,
    /// or when nothing was served lately (no basis for a guess).
    pub async fn estimated_wait_seconds(&self, s: &ChatSession) -> AppResult<Option<i32>> {
        if s.status != SessionStatus::Waiting {
            return Ok(None);
        }
        let served = self.recently_served().await?;
        if served == 0 {
            return Ok(None);
        }
        let place = sessions::queue_position(&self.core.db, s).await?;
        let per_session = (SERVICE_WINDOW_MINUTES * 60) as f64 / served as f64;
        let seconds = (place as f64 * per_session).ceil();
        Ok(Some(seconds.min(i32::MAX as f64) as i32))
    }

    /// Sessions that left the queue for an agent in the last ten minutes,
    /// counted at most once a second.
    async fn recently_served(&self) -> AppResult<u64> {
        let now = self.core.now();
        let fresh = |cached: &Option<(chrono::DateTime<chrono::Utc>, u64)>| {
            cached.filter(|(at, _)| now - *at < Duration::seconds(1))
        };
        let lock = || {
            self.core
                .recently_served
                .lock()
                .unwrap_or_else(|p| p.into_inner())
        };
        if let Some((_, served)) = fresh(&lock()) {
            return Ok(served);
        }
        let since = now - Duration::minutes(SERVICE_WINDOW_MINUTES);
        let served = decisions::served_since(&self.core.db, since).await?;
        *lock() = Some((now, served));
        Ok(served)
    }

    /// The agent it is offered to, or an admin, moves a WAITING or OFFERED
    /// session within the queue by priority; it keeps its `queued_at`.
    pub async fn set_priority(
        &self,
        viewer: &Viewer,
        session_id: &str,
        priority: Priority,
    ) -> AppResult<ChatSession> {
        let id = parse_session_id(session_id)?;
        let seen = sessions::find(&self.core.db, id)
            .await?
            .filter(|s| access::may_view(viewer, s))
            .ok_or_else(AppError::session_not_found)?;
        access::may_set_priority(viewer, &seen)?;
        let txn = repo::begin_write(&self.core.db).await?;
        // The matcher reads priorities under the routing lock.
        repo::lock_routing(&txn).await?;
        let s = sessions::lock(&txn, id)
            .await?
            .ok_or_else(AppError::session_not_found)?;
        access::may_set_priority(viewer, &s)?;
        s.reprioritizable()?;
        if s.priority == priority {
            return Ok(s);
        }
        sessions::set_priority(&txn, id, priority).await?;
        // Recorded, on the shared clock after the locks: the audit rebuilds
        // the queue order at any moment from it.
        let now = self.core.shared_now(&txn).await?;
        history::record_priority(&txn, id, priority, &viewer.id, now).await?;
        let moved = self.core.reload(&txn, id).await?;
        let mut outbox = Outbox::default();
        outbox.session(
            id,
            crate::events::SessionEvent::SessionChanged(moved.clone()),
        );
        outbox.queue(moved.clone());
        txn.commit().await?;
        outbox.publish(self.core).await;
        self.core.routing().rematch().await;
        Ok(self.core.reload_or(moved).await)
    }
}
