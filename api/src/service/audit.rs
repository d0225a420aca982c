//! The record of routing decisions, for admins: per session, and by period
//! (the fairness audit reads the same rows; see `crate::audit`).

use std::sync::Arc;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::{DateTime, Utc};

use super::core::Core;
use super::pagination::page_size;
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
        let after = after.map(decode_cursor).transpose()?;
        Ok(decisions::between(&self.core.db, from, to, after, limit)
            .await?
            .into_iter()
            .map(|(id, decision)| ListedDecision {
                cursor: encode_cursor(decision.at, id),
                decision,
            })
            .collect())
    }
}

fn encode_cursor(at: DateTime<Utc>, id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{id}", at.timestamp_micros()))
}

fn decode_cursor(cursor: &str) -> AppResult<(DateTime<Utc>, i64)> {
    let bad = || AppError::BadUserInput(format!("{cursor:?} is not a cursor from this list"));
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (micros, id) = raw.split_once('|').ok_or_else(bad)?;
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(bad)?;
    Ok((at, id.parse().map_err(|_| bad())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let at = DateTime::from_timestamp_micros(1_800_000_000_123_456).unwrap();
        assert_eq!(decode_cursor(&encode_cursor(at, 42)).unwrap(), (at, 42));
        assert!(decode_cursor("nope").is_err());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode("1|x")).is_err());
    }
}
