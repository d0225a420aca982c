use async_graphql::{Context, MergedObject, Object, ID};

use super::context::caller_and_service;
use super::error::GqlResultExt;
use super::types::{
    AgentGql, ChatSessionGql, MessageGql, PriorityGql, SendMessageInput, StartSessionInput,
};
use crate::http::client_ip::ClientIp;
use crate::service::ShiftAction;

#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(
    SessionMutations,
    MessageMutations,
    AgentMutations,
    super::webhooks::WebhooksMutation,
    super::feedback::FeedbackMutation,
    super::guests::GuestMutation,
    super::files::FileMutations,
    super::workspace::WorkspaceMutations,
);

#[derive(Default)]
pub struct SessionMutations;

#[Object]
impl SessionMutations {
    /// Customer. Returns the customer's open (not ENDED) session if there is one, else a new WAITING one.
    async fn start_session(
        &self,
        ctx: &Context<'_>,
        input: StartSessionInput,
    ) -> async_graphql::Result<ChatSessionGql> {
        let (viewer, svc) = caller_and_service(ctx)?;
        let from = ctx.data_opt::<ClientIp>().map(|c| c.0);
        Ok(svc
            .sessions()
            .start_session(
                viewer,
                input.subject.as_deref(),
                input.skills.as_deref().unwrap_or_default(),
                from,
            )
            .await
            .gql()?
            .into())
    }

    /// Agent: take a session offered to them, or (manual routing) any WAITING one. A second taker gets CONFLICT.
    async fn accept_session(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
    ) -> async_graphql::Result<ChatSessionGql> {
        let (viewer, svc) = caller_and_service(ctx)?;
        Ok(svc
            .sessions()
            .accept_session(viewer, &session_id)
            .await
            .gql()?
            .into())
    }

    /// Agent: refuse an offer; the session goes to the next agent and keeps its place in the queue.
    async fn decline_session(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
    ) -> async_graphql::Result<ChatSessionGql> {
        let (viewer, svc) = caller_and_service(ctx)?;
        Ok(svc
            .routing()
            .decline_session(viewer, &session_id)
            .await
            .gql()?
            .into())
    }

    /// Agent of the session or admin: hand it to another agent, or back to the queue (toAgentId null) keeping its original place.
    async fn transfer_session(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
        to_agent_id: Option<ID>,
    ) -> async_graphql::Result<ChatSessionGql> {
        let (viewer, svc) = caller_and_service(ctx)?;
        Ok(svc
            .routing()
            .transfer_session(
                viewer,
                &session_id,
                to_agent_id.as_ref().map(|id| id.as_str()),
            )
            .await
            .gql()?
            .into())
    }

    /// Admin: give a WAITING or OFFERED session to an agent with a free slot.
    async fn assign_session(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
        agent_id: ID,
    ) -> async_graphql::Result<ChatSessionGql> {
        let (viewer, svc) = caller_and_service(ctx)?;
        Ok(svc
            .routing()
            .assign_session(viewer, &session_id, &agent_id)
            .await
            .gql()?
            .into())
    }

    /// Customer of the session, its agent, or an admin.
    async fn end_session(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
    ) -> async_graphql::Result<ChatSessionGql> {
        let (viewer, svc) = caller_and_service(ctx)?;
        Ok(svc
            .sessions()
            .end_session(viewer, &session_id)
            .await
            .gql()?
            .into())
    }
}

#[derive(Default)]
pub struct MessageMutations;

#[Object]
impl MessageMutations {
    /// Customer of the session (WAITING, OFFERED or ACTIVE) or its accepted agent (ACTIVE).
    async fn send_message(
        &self,
        ctx: &Context<'_>,
        input: SendMessageInput,
    ) -> async_graphql::Result<MessageGql> {
        let (viewer, svc) = caller_and_service(ctx)?;
        Ok(svc
            .messages()
            .send_message(
                viewer,
                &input.session_id,
                &input.body,
                &input.client_message_id,
            )
            .await
            .gql()?
            .into())
    }

    /// Marks every message up to seq from the other side as READ.
    async fn mark_read(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
        seq: i32,
    ) -> async_graphql::Result<ChatSessionGql> {
        let (viewer, svc) = caller_and_service(ctx)?;
        Ok(svc
            .messages()
            .mark_read(viewer, &session_id, seq)
            .await
            .gql()?
            .into())
    }

    /// Ephemeral: tells the other side; nothing is stored.
    async fn set_typing(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
        typing: bool,
    ) -> async_graphql::Result<bool> {
        let (viewer, svc) = caller_and_service(ctx)?;
        svc.messages()
            .set_typing(viewer, &session_id, typing)
            .await
            .gql()
    }
}

#[derive(Default)]
pub struct AgentMutations;

impl AgentMutations {
    async fn change(ctx: &Context<'_>, action: ShiftAction) -> async_graphql::Result<AgentGql> {
        let (viewer, svc) = caller_and_service(ctx)?;
        Ok(svc
            .agents()
            .change_availability(viewer, action)
            .await
            .gql()?
            .into())
    }
}

#[Object]
impl AgentMutations {
    /// Agent: OFFLINE or ON_BREAK to AVAILABLE.
    async fn start_shift(&self, ctx: &Context<'_>) -> async_graphql::Result<AgentGql> {
        Self::change(ctx, ShiftAction::StartShift).await
    }

    /// Agent: BREAK_REQUESTED, or ON_BREAK at once when holding no session.
    async fn request_break(&self, ctx: &Context<'_>) -> async_graphql::Result<AgentGql> {
        Self::change(ctx, ShiftAction::RequestBreak).await
    }

    /// Agent: back to AVAILABLE.
    async fn end_break(&self, ctx: &Context<'_>) -> async_graphql::Result<AgentGql> {
        Self::change(ctx, ShiftAction::EndBreak).await
    }

    /// Agent: SHIFT_ENDING, or OFFLINE at once when holding no session.
    async fn end_shift(&self, ctx: &Context<'_>) -> async_graphql::Result<AgentGql> {
        Self::change(ctx, ShiftAction::EndShift).await
    }

    /// Admin: how many sessions (OFFERED + ACTIVE) the agent may hold at once, 1 to 100.
    async fn set_agent_capacity(
        &self,
        ctx: &Context<'_>,
        agent_id: ID,
        capacity: i32,
    ) -> async_graphql::Result<AgentGql> {
        let (viewer, svc) = caller_and_service(ctx)?;
        Ok(svc
            .agents()
            .set_agent_capacity(viewer, &agent_id, capacity)
            .await
            .gql()?
            .into())
    }

    /// Admin: an agent's skills.
    async fn set_agent_skills(
        &self,
        ctx: &Context<'_>,
        agent_id: ID,
        skills: Vec<String>,
    ) -> async_graphql::Result<AgentGql> {
        let (viewer, svc) = caller_and_service(ctx)?;
        Ok(svc
            .agents()
            .set_agent_skills(viewer, &agent_id, &skills)
            .await
            .gql()?
            .into())
    }

    /// Agent holding the session, or admin, while WAITING or OFFERED: moves it within the queue by priority, keeping queuedAt.
    async fn set_session_priority(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
        priority: PriorityGql,
    ) -> async_graphql::Result<ChatSessionGql> {
        let (viewer, svc) = caller_and_service(ctx)?;
        Ok(svc
            .queue()
            .set_priority(viewer, &session_id, priority.into())
            .await
            .gql()?
            .into())
    }
}
