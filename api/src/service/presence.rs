//! Presence: a customer who drops off keeps their chat for RESUME_GRACE_SECS.
//! (Agents' presence is the other half of this service, in `agent_presence`.)
//!
//! Presence is a timestamp on the session, refreshed while the customer's
//! live feed is open (a heartbeat) and when they write. It lives in the
//! database, so a customer who reconnects to another process counts, and
//! any process may close a chat whose customer stayed away.

use chrono::Duration;

use super::core::Core;
use super::transitions::Ender;
use crate::error::AppResult;
use crate::repo::sessions;

/// Sessions examined per sweep.
const SWEEP_BATCH: u64 = 200;

/// Customers' presence and the sweep that closes the chats of those who
/// left; agents' connections and what their absence does.
pub struct Presence<'a> {
    pub(super) core: &'a std::sync::Arc<Core>,
}

impl Presence<'_> {
    /// How often a connected customer's presence is refreshed, and how often
    /// absent customers are looked for: a quarter of the grace period,
    /// between 250 ms and 30 s.
    pub fn presence_heartbeat(&self) -> std::time::Duration {
        let quarter = self.core.policy.resume_grace / 4;
        quarter.to_std().unwrap_or_default().clamp(
            std::time::Duration::from_millis(250),
            std::time::Duration::from_secs(30),
        )
    }

    pub(crate) async fn customer_seen(&self, session_id: uuid::Uuid) -> AppResult<()> {
        Ok(sessions::touch_customer(&self.core.db, session_id, self.core.now()).await?)
    }

    /// Restarts the grace period of every open chat. While the database was
    /// unreachable no customer's presence could be recorded, so after an
    /// outage longer than the grace period every open chat would look
    /// abandoned the moment the database came back. Returns how many.
    pub async fn excuse_absences(&self) -> AppResult<u64> {
        Ok(sessions::touch_all_open_customers(&self.core.db, self.core.now()).await?)
    }

    /// Closes the chats of customers away longer than the grace period:
    /// CANCELLED while still queued, ABANDONED once accepted (which frees
    /// the agent). Returns how many were closed.
    pub async fn close_abandoned(&self) -> AppResult<usize> {
        // A heartbeat's worth of slack, so a connected customer whose next
        // refresh is due is never mistaken for an absent one.
        let cutoff = self.core.now()
            - self.core.policy.resume_grace
            - Duration::from_std(self.presence_heartbeat()).unwrap_or_default();
        let mut closed = 0;
        for id in sessions::with_absent_customer(&self.core.db, cutoff, SWEEP_BATCH).await? {
            let s = self
                .core
                .transitions()
                .close(
                    id,
                    Ender::Absence {
                        seen_before: cutoff,
                    },
                )
                .await?;
            if s.ended_by.is_none() && s.end_reason.is_some() {
                closed += 1;
            }
        }
        Ok(closed)
    }
}
