//! Retention: chats are kept RETENTION_DAYS after they end, then purged,
//! with their files.

use chrono::Duration;

use super::core::Core;
use crate::error::AppResult;
use crate::repo::{self, sessions};

/// Sessions deleted per transaction: small enough that no chat waits on it.
const PURGE_BATCH: u64 = 200;

/// The purge of what is past its retention.
pub struct Retention<'a> {
    pub(super) core: &'a std::sync::Arc<Core>,
}

impl Retention<'_> {
    /// Deletes every session (with its messages and history) that ended more
    /// than RETENTION_DAYS ago, batch by batch. Returns how many went.
    pub async fn purge_expired(&self) -> AppResult<u64> {
        let cutoff = self.core.now() - Duration::days(self.core.policy.retention_days);
        let mut purged = 0;
        loop {
            let txn = repo::begin_write(&self.core.db).await?;
            let batch = sessions::purge_ended_before(&txn, cutoff, PURGE_BATCH).await?;
            txn.commit().await?;
            // Files after the commit: a failed purge keeps both; a failed
            // removal leaves a file nothing links to, never a link to nothing.
            self.core.files().delete_stored(&batch.files).await;
            let n = batch.sessions;
            purged += n;
            if n < PURGE_BATCH {
                break;
            }
            // Let other work in between batches.
            tokio::task::yield_now().await;
        }
        if purged > 0 {
            tracing::info!(purged, %cutoff, "purged sessions past retention");
        }
        let deliveries = self.core.webhooks().purge_before(cutoff).await?;
        if deliveries > 0 {
            tracing::info!(deliveries, %cutoff, "purged webhook deliveries past retention");
        }
        Ok(purged)
    }
}
