//! Satisfaction ratings: a customer rates an ended chat once; the rating
//! shows to them, the agent it names and admins; figures by period.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::core::Core;
use super::webhooks::outbox as webhook_outbox;
use crate::auth::Viewer;
use crate::domain::webhooks::WebhookEvent;
use crate::domain::{
    access, rating_window_open, validate_rating, ChatSession, Rating, RatingStats,
};
use crate::error::{AppError, AppResult};
use crate::repo::{self, ratings, sessions};

pub struct Ratings<'a> {
    pub(super) core: &'a Arc<Core>,
}

impl Ratings<'_> {
    /// The customer rates their ended chat: once, within the window. The
    /// rating names the agent who held the chat when it ended.
    pub async fn rate_session(
        &self,
        viewer: &Viewer,
        session_id: &str,
        score: i32,
        comment: Option<&str>,
    ) -> AppResult<ChatSession> {
        let id = Uuid::parse_str(session_id).map_err(|_| AppError::session_not_found())?;
        let s = sessions::find(&self.core.db, id)
            .await?
            .filter(|s| access::may_view(viewer, s))
            .ok_or_else(AppError::session_not_found)?;
        access::may_rate(viewer, &s)?;
        let comment = validate_rating(score, comment).map_err(AppError::BadUserInput)?;
        let ended_at = s
            .ended_at
            .ok_or_else(|| AppError::Internal("an ended session without ended_at".into()))?;
        let now = self.core.now();
        rating_window_open(ended_at, now, self.core.policy.rating_window)?;
        let rating = Rating {
            score,
            comment,
            agent_id: s.agent_id.clone(),
            created_at: now,
        };
        // The rating and its webhook event commit together, or neither.
        let txn = repo::begin_write(&self.core.db).await?;
        if !ratings::insert_once(&txn, id, &rating, ended_at).await? {
            return Err(AppError::Conflict(
                "this chat has been rated already".into(),
            ));
        }
        webhook_outbox::record(
            self.core,
            &txn,
            now,
            WebhookEvent::SessionRated {
                session: s.clone(),
                rating: serde_json::json!({
                    "score": rating.score,
                    "comment": rating.comment,
                    "agentId": rating.agent_id,
                    "createdAt": rating.created_at,
                }),
            },
        )
        .await?;
        txn.commit().await?;
        self.core.webhooks.wake_if_recorded();
        Ok(s)
    }

    /// The session's rating, if it has one the caller may see (else None).
    pub async fn rating_of(&self, viewer: &Viewer, s: &ChatSession) -> AppResult<Option<Rating>> {
        // Open chats have none; not asking saves a read per listed session.
        if s.status.is_open() || s.assigned_at.is_none() {
            return Ok(None);
        }
        let rating = ratings::find(&self.core.db, s.id).await?;
        Ok(rating.filter(|r| access::may_see_rating(viewer, s, r.agent_id.as_deref())))
    }

    /// Count, mean and CSAT share over chats ended in [from, to): an
    /// admin's for any agent or all, an agent's for themselves.
    pub async fn stats(
        &self,
        viewer: &Viewer,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        agent_id: Option<&str>,
    ) -> AppResult<RatingStats> {
        let agent = access::rating_stats_scope(viewer, agent_id)?;
        if from >= to {
            return Err(AppError::BadUserInput("from must be before to".into()));
        }
        let counts = ratings::score_counts(&self.core.db, from, to, agent).await?;
        Ok(RatingStats::from_counts(&counts))
    }
}
