//! Chat sessions: status, end reason, the `ChatSession` object with its
//! resolved fields, session listings as a connection, and the input of
//! `startSession`.

use async_graphql::{ComplexObject, Context, Enum, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};

use super::{
    AgentGql, CustomerContextGql, CustomerGql, MessageConnection, NoteGql, PageInfo, PriorityGql,
    RoleGql, RoutingDecisionGql, SessionHistoryEntry, SessionRatingGql, TicketGql,
};
use crate::domain;
use crate::graphql::context::caller_and_service;
use crate::graphql::error::GqlResultExt;
use crate::service::{Page, PageArgs, Services, SessionPage};

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "SessionStatus")]
pub enum SessionStatusGql {
    /// In the queue, waiting for an agent.
    Waiting,
    /// Reserved for one agent (fair routing) who has not accepted yet.
    Offered,
    /// Accepted by an agent; both sides exchange messages.
    Active,
    /// Over. An ended session can be read but never resumed.
    Ended,
}

impl From<domain::SessionStatus> for SessionStatusGql {
    fn from(s: domain::SessionStatus) -> Self {
        use domain::SessionStatus as S;
        match s {
            S::Waiting => SessionStatusGql::Waiting,
            S::Offered => SessionStatusGql::Offered,
            S::Active => SessionStatusGql::Active,
            S::Ended => SessionStatusGql::Ended,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "EndReason")]
pub enum EndReasonGql {
    /// Ended on purpose by the customer, the agent or an admin.
    Resolved,
    /// The customer left the queue before any agent accepted.
    Cancelled,
    /// The customer stayed disconnected longer than the grace period.
    Abandoned,
}

impl From<domain::EndReason> for EndReasonGql {
    fn from(r: domain::EndReason) -> Self {
        use domain::EndReason as R;
        match r {
            R::Resolved => EndReasonGql::Resolved,
            R::Cancelled => EndReasonGql::Cancelled,
            R::Abandoned => EndReasonGql::Abandoned,
        }
    }
}

/// A chat session. `position` is filled in when the caller already knows the
/// queue position (the queue listing), to save a query per row; `page`
/// when it is one row of a listing, whose agents and places are read once
/// for all rows.
pub struct ChatSessionGql {
    pub inner: domain::ChatSession,
    pub position: Option<Option<i32>>,
    pub page: Option<std::sync::Arc<SessionPage>>,
}

impl From<domain::ChatSession> for ChatSessionGql {
    fn from(inner: domain::ChatSession) -> Self {
        ChatSessionGql {
            inner,
            position: None,
            page: None,
        }
    }
}

#[Object(name = "ChatSession")]
impl ChatSessionGql {
    async fn id(&self) -> ID {
        ID(self.inner.id.to_string())
    }
    async fn status(&self) -> SessionStatusGql {
        self.inner.status.into()
    }
    async fn subject(&self) -> Option<&str> {
        self.inner.subject.as_deref()
    }
    async fn customer(&self) -> CustomerGql {
        CustomerGql {
            id: ID(self.inner.customer_id.clone()),
        }
    }
    /// The agent the session is offered to or accepted by.
    async fn agent(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<AgentGql>> {
        let Some(agent_id) = self.inner.agent_id.as_deref() else {
            return Ok(None);
        };
        if let Some(page) = &self.page {
            return Ok(page.agent(agent_id).await.gql()?.map(Into::into));
        }
        let (_, svc) = caller_and_service(ctx)?;
        Ok(svc.agents().agent(agent_id).await.gql()?.map(Into::into))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.inner.created_at
    }
    /// When an agent accepted.
    async fn assigned_at(&self) -> Option<DateTime<Utc>> {
        self.inner.assigned_at
    }
    async fn ended_at(&self) -> Option<DateTime<Utc>> {
        self.inner.ended_at
    }
    /// Who ended it; null when the system did.
    async fn ended_by(&self) -> Option<RoleGql> {
        self.inner.ended_by.map(Into::into)
    }
    async fn end_reason(&self) -> Option<EndReasonGql> {
        self.inner.end_reason.map(Into::into)
    }
    /// 1-based place in the queue while WAITING; null otherwise.
    async fn queue_position(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<i32>> {
        if let Some(known) = self.position {
            return Ok(known);
        }
        if let Some(page) = &self.page {
            return page.queue_position(&self.inner).await.gql();
        }
        let (_, svc) = caller_and_service(ctx)?;
        svc.queue().queue_position(&self.inner).await.gql()
    }
    async fn priority(&self) -> PriorityGql {
        self.inner.priority.into()
    }
    async fn required_skills(&self) -> Vec<String> {
        self.inner.required_skills.names().to_vec()
    }
    /// When the session entered the queue; the queue is served by priority, then by this time. Kept when it returns to the queue.
    async fn queued_at(&self) -> Option<DateTime<Utc>> {
        Some(self.inner.queued_at)
    }
    /// For the customer while WAITING: a live estimate from recent service times; null when unknown.
    async fn estimated_wait_seconds(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<i32>> {
        let (_, svc) = caller_and_service(ctx)?;
        svc.queue().estimated_wait_seconds(&self.inner).await.gql()
    }
    /// Admin: every routing decision on the session, oldest first.
    async fn routing_decisions(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<RoutingDecisionGql>> {
        let (viewer, svc) = caller_and_service(ctx)?;
        Ok(svc
            .audit()
            .for_session(viewer, &self.inner)
            .await
            .gql()?
            .into_iter()
            .map(Into::into)
            .collect())
    }
    /// seq of the newest message; 0 when there is none.
    async fn last_seq(&self) -> i32 {
        self.inner.last_seq
    }
    /// The transcript, oldest first; cursors are message seqs.
    async fn messages(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<MessageConnection> {
        let (viewer, svc) = caller_and_service(ctx)?;
        let args = PageArgs {
            first,
            after,
            last,
            before,
        };
        Ok(svc
            .messages()
            .messages(viewer, &self.inner, &args)
            .await
            .gql()?
            .into())
    }
    /// The customer's rating, once given: for the customer, the agent it names and admins (null for others).
    async fn rating(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<SessionRatingGql>> {
        let (viewer, svc) = caller_and_service(ctx)?;
        let rating = svc.ratings().rating_of(viewer, &self.inner).await.gql()?;
        Ok(rating.map(Into::into))
    }
    /// The ticket the chat was handed over as (convertToTicket): for agents and admins; null for customers.
    async fn ticket(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<TicketGql>> {
        let (viewer, svc) = caller_and_service(ctx)?;
        let ticket = svc.tickets().ticket_of(viewer, &self.inner).await.gql()?;
        Ok(ticket.map(Into::into))
    }
    /// Agents holding or offered the session, and admins; null for customers.
    async fn customer_context(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<CustomerContextGql>> {
        let (viewer, svc) = caller_and_service(ctx)?;
        let found = svc.workspace().customer_context(viewer, &self.inner).await;
        Ok(found.gql()?.map(Into::into))
    }
    /// Agents and admins: internal notes, oldest first. Empty for customers.
    async fn notes(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<NoteGql>> {
        let (viewer, svc) = caller_and_service(ctx)?;
        let notes = svc.workspace().notes(viewer, &self.inner).await.gql()?;
        Ok(notes.into_iter().map(Into::into).collect())
    }
    /// Admin: every offer, acceptance, transfer, return to the queue and end, oldest first.
    async fn history(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<SessionHistoryEntry>> {
        let (viewer, svc) = caller_and_service(ctx)?;
        Ok(svc
            .sessions()
            .session_history(viewer, &self.inner)
            .await
            .gql()?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}

#[derive(SimpleObject)]
#[graphql(name = "ChatSessionEdge")]
pub struct ChatSessionEdge {
    pub cursor: String,
    pub node: ChatSessionGql,
}

#[derive(SimpleObject)]
#[graphql(name = "ChatSessionConnection", complex)]
pub struct ChatSessionConnection {
    pub edges: Vec<ChatSessionEdge>,
    pub page_info: PageInfo,
}

#[ComplexObject]
impl ChatSessionConnection {
    async fn nodes(&self) -> Vec<&ChatSessionGql> {
        self.edges.iter().map(|e| &e.node).collect()
    }
}

impl ChatSessionConnection {
    /// The page with its rows' agents and queue places read once for all
    /// of them, when asked for (see [`SessionPage`]).
    pub fn batched(page: Page<domain::ChatSession>, svc: &Services) -> Self {
        let shared = SessionPage::new(svc, page.items.iter().map(|(_, s)| s));
        let mut connection = ChatSessionConnection::from(page);
        for edge in &mut connection.edges {
            edge.node.page = Some(std::sync::Arc::clone(&shared));
        }
        connection
    }
}

impl From<Page<domain::ChatSession>> for ChatSessionConnection {
    fn from(page: Page<domain::ChatSession>) -> Self {
        let page_info = PageInfo::from(&page);
        ChatSessionConnection {
            edges: page
                .items
                .into_iter()
                .map(|(cursor, s)| ChatSessionEdge {
                    cursor,
                    node: s.into(),
                })
                .collect(),
            page_info,
        }
    }
}

#[derive(InputObject)]
pub struct StartSessionInput {
    pub subject: Option<String>,
    /// Topics the customer chose (e.g. billing); agents need all of them, relaxed after SKILL_WAIT_SECS.
    pub skills: Option<Vec<String>>,
}
