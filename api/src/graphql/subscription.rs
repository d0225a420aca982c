use async_graphql::{Context, Subscription, ID};
use futures_util::{Stream, StreamExt};
use tokio_stream::wrappers::BroadcastStream;

use super::context::{caller_and_service, take_subscription_slot};
use super::error::{to_gql, GqlResultExt};
use super::types::{AgentEvent, QueueChanged, SessionEvent};
use crate::metrics::GaugeGuard;

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
        viewer.require_staff().gql()?;
        let slot = take_subscription_slot(ctx)?;
        let subscribed = (GaugeGuard::new(svc.metrics(), |m| &m.subscriptions), slot);
        // A watcher that lags skips what it missed; the next event carries fresh stats.
        Ok(
            BroadcastStream::new(svc.bus().subscribe_queue()).filter_map(move |e| {
                // The slot and the gauge are released when the stream drops.
                let _subscribed = &subscribed;
                let event = e.ok().map(Into::into);
                async move { event }
            }),
        )
    }

    /// Agent: offers, assignments and status changes of the caller.
    async fn agent_events(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = AgentEvent>> {
        let (viewer, svc) = caller_and_service(ctx)?;
        let agent_id = viewer.require_agent().gql()?;
        let slot = take_subscription_slot(ctx)?;
        let mut rx = svc.bus().subscribe_agent(agent_id);
        let subscribed = (GaugeGuard::new(svc.metrics(), |m| &m.subscriptions), slot);
        Ok(async_stream::stream! {
            let _subscribed = subscribed;
            loop {
                match rx.recv().await {
                    Ok(e) => yield AgentEvent::from(e),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        })
    }
}
