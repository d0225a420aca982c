use async_graphql::{Context, Subscription, ID};
use futures_util::{Stream, StreamExt};

use super::context::{caller_and_service, take_subscription_slot};
use super::error::{to_gql, GqlResultExt};
use super::types::{AgentEvent, QueueChanged, SessionEvent};

pub struct SubscriptionRoot;

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// Everything that happens in one session. First every message with seq > afterSeq
    /// is replayed from storage, in order, then one CaughtUp, then live events with no
    /// gap and no duplicate. For the customer of the session, its agent, and admins.
    async fn session_events(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
        #[graphql(default_with = "Some(0)")] after_seq: Option<i32>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<SessionEvent>>> {
        let (viewer, svc) = caller_and_service(ctx)?;
        let slot = take_subscription_slot(ctx)?;
        let stream = svc
            .live()
            .session_events(viewer, &session_id, after_seq.unwrap_or(0))
            .await
            .gql()?;
        let id = session_id.to_string();
        Ok(stream.map(move |item| {
            // The slot is released when the stream (and this closure) drops.
            let _slot = &slot;
            item.map(|i| SessionEvent::from_live(&id, i))
                .map_err(to_gql)
        }))
    }

    /// Agent or admin: the queue as it changes.
    async fn queue_events(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = QueueChanged>> {
        let (viewer, svc) = caller_and_service(ctx)?;
        let feed = svc.live().queue_feed(viewer).gql()?;
        let slot = take_subscription_slot(ctx)?;
        Ok(feed.map(move |event| {
            // The slot is released when the stream (and this closure) drops.
            let _slot = &slot;
            QueueChanged::from(event)
        }))
    }

    /// Agent: offers, assignments and status changes of the caller.
    async fn agent_events(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = AgentEvent>> {
        let (viewer, svc) = caller_and_service(ctx)?;
        let feed = svc.live().agent_feed(viewer).gql()?;
        let slot = take_subscription_slot(ctx)?;
        Ok(feed.map(move |event| {
            let _slot = &slot;
            AgentEvent::from(event)
        }))
    }
}
