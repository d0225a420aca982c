use async_graphql::{Context, MergedObject, Object, ID};
use chrono::{DateTime, Utc};

use super::context::caller_and_service;
use super::error::GqlResultExt;
use super::types::{
    AgentGql, ChatSessionConnection, ChatSessionGql, QueueStatsGql, RoutingDecisionGql, ViewerGql,
};
use crate::service::PageArgs;

/// Each area adds its own query object here, so features do not share one impl.
#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(
    CoreQuery,
    super::webhooks::WebhooksQuery,
    super::feedback::FeedbackQuery,
    super::guests::GuestQuery,
    super::workspace::WorkspaceQuery,
);

#[derive(Default)]
pub struct CoreQuery;

#[Object]
impl CoreQuery {
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<ViewerGql> {
        let (viewer, svc) = caller_and_service(ctx)?;
        Ok(ViewerGql {
            id: ID(viewer.id.clone()),
            role: viewer.role.into(),
            agent: svc
                .agents()
                .viewer_agent(viewer)
                .await
                .gql()?
                .map(Into::into),
        })
    }

    /// Null when it does not exist or the caller may not see it.
    async fn session(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<ChatSessionGql>> {
        let (viewer, svc) = caller_and_service(ctx)?;
        Ok(svc
            .sessions()
            .session(viewer, &id)
            .await
            .gql()?
            .map(Into::into))
    }

    /// Customer: own sessions created in the last 14 days, completed or not, newest first.
    /// Agent: sessions they handled. Admin: all sessions within retention.
    async fn my_sessions(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<ChatSessionConnection> {
        let (viewer, svc) = caller_and_service(ctx)?;
        let args = PageArgs {
            first,
            after,
            ..Default::default()
        };
        let page = svc.sessions().my_sessions(viewer, &args).await.gql()?;
        Ok(ChatSessionConnection::batched(page, svc))
    }

    /// Agent or admin: WAITING and OFFERED sessions in routing order.
    async fn queue(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ChatSessionGql>> {
        let (viewer, svc) = caller_and_service(ctx)?;
        Ok(svc
            .queue()
            .queue(viewer)
            .await
            .gql()?
            .into_iter()
            .map(|(inner, pos)| ChatSessionGql {
                inner,
                position: Some(pos),
                page: None,
            })
            .collect())
    }

    /// Agent or admin.
    async fn queue_stats(&self, ctx: &Context<'_>) -> async_graphql::Result<QueueStatsGql> {
        let (viewer, svc) = caller_and_service(ctx)?;
        Ok(svc.queue().queue_stats(viewer).await.gql()?.into())
    }

    /// Admin: decisions in [from, to), oldest first: the fairness audit.
    async fn routing_decisions(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Vec<RoutingDecisionGql>> {
        let (viewer, svc) = caller_and_service(ctx)?;
        Ok(svc
            .audit()
            .between(viewer, from, to, first, after.as_deref())
            .await
            .gql()?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Agent or admin.
    async fn agents(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<AgentGql>> {
        let (viewer, svc) = caller_and_service(ctx)?;
        let agents = svc.agents().agents(viewer).await.gql()?;
        // Presence for the whole list in one read, when it is asked for.
        let look = ctx.look_ahead();
        let mut presence = if look.field("online").exists() || look.field("lastSeenAt").exists() {
            let ids: Vec<&str> = agents.iter().map(|a| a.id.as_str()).collect();
            svc.presence().agents_presence(&ids).await.gql()?
        } else {
            Default::default()
        };
        Ok(agents
            .into_iter()
            .map(|a| {
                let p = presence.remove(&a.id);
                AgentGql::from(a).with_presence(p)
            })
            .collect())
    }
}
