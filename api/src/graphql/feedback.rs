//! Ratings and tickets: `rateSession`, `ratingStats`, `convertToTicket`.

use async_graphql::{Context, Object, ID};
use chrono::{DateTime, Utc};

use super::context::caller_and_service;
use super::error::GqlResultExt;
use super::types::{ChatSessionGql, RatingStatsGql};

#[derive(Default)]
pub struct FeedbackQuery;

#[Object]
impl FeedbackQuery {
    /// Admin: over sessions ended in [from, to), optionally for one agent. Agent: their own (another agent's id is FORBIDDEN).
    async fn rating_stats(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        agent_id: Option<ID>,
    ) -> async_graphql::Result<RatingStatsGql> {
        let (viewer, svc) = caller_and_service(ctx)?;
        let agent = agent_id.as_ref().map(|a| a.as_str());
        Ok(svc
            .ratings()
            .stats(viewer, from, to, agent)
            .await
            .gql()?
            .into())
    }
}

#[derive(Default)]
pub struct FeedbackMutation;

#[Object]
impl FeedbackMutation {
    /// Customer of an ENDED session that had an agent, once (CONFLICT after), within RATING_WINDOW_DAYS.
    async fn rate_session(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
        score: i32,
        comment: Option<String>,
    ) -> async_graphql::Result<ChatSessionGql> {
        let (viewer, svc) = caller_and_service(ctx)?;
        Ok(svc
            .ratings()
            .rate_session(viewer, &session_id, score, comment.as_deref())
            .await
            .gql()?
            .into())
    }

    /// Agent who holds or held the session, or admin: hands the transcript to the configured ticket system once; again returns the same ticket.
    async fn convert_to_ticket(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
    ) -> async_graphql::Result<ChatSessionGql> {
        let (viewer, svc) = caller_and_service(ctx)?;
        Ok(svc
            .tickets()
            .convert_to_ticket(viewer, &session_id)
            .await
            .gql()?
            .into())
    }
}
