//! The record of routing decisions, for admins: per session, and by period
//! (the fairness audit reads the same rows; see `crate::audit`).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::core::Core;
use super::pagination::{decode_time_cursor, encode_time_cursor, page_size};
use crate::auth::Viewer;
use crate::domain::{ChatSession, RoutingDecision};
use crate::error::{AppError, AppResult};
use crate::repo::decisions;

/// Routing decisions as admins read them.
pub struct Audit<'a> {
    pub(super) core: &'a Arc<Core>,
}

/// A decision and the cursor that lists what comes after it.
pub struct ListedDecision {
    pub decision: RoutingDecision,
    pub cursor: String,
}

impl Audit<'_> {
    /// Admin: a session's decisions, oldest first.
    pub async fn for_session(
        &self,
        viewer: &Viewer,
        s: &ChatSession,
    ) -> AppResult<Vec<RoutingDecision>> {
        viewer.require_admin()?;
        Ok(decisions::for_session(&self.core.db, s.id).await?)
    }

    /// Admin: decisions taken in [from, to), in the order they took effect,
    /// `first` at a time (default 100, at most 1000) after `after`.
    pub async fn between(
        &self,
        viewer: &Viewer,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        first: Option<i32>,
        after: Option<&str>,
    ) -> AppResult<Vec<ListedDecision>> {
        viewer.require_admin()?;
        if to < from {
            return Err(AppError::BadUserInput("`to` is before `from`".into()));
        }
        let limit = page_size("first", first, 100, 1000)?;
        let after = after.map(decode_time_cursor::<i64>).transpose()?;
        Ok(decisions::between(&self.core.db, from, to, after, limit)
            .await?
            .into_iter()
            .map(|(id, decision)| ListedDecision {
                cursor: encode_time_cursor(decision.at, id),
                decision,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_cursors_round_trip_and_refuse_garbage() {
        let at = DateTime::from_timestamp_micros(1_800_000_000_123_456).unwrap();
        let cursor = encode_time_cursor(at, 42);
        assert_eq!(decode_time_cursor::<i64>(&cursor).unwrap(), (at, 42));
        assert!(decode_time_cursor::<i64>("nope").is_err());
        let not_an_id = encode_time_cursor(at, "x");
        assert!(decode_time_cursor::<i64>(&not_an_id).is_err());
    }
}
