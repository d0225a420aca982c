//! The agent's workspace in the API: canned responses, notes, search and
//! workload (`ChatSession.customerContext` and `notes` are on the session).

use async_graphql::{Context, Object, ID};

use super::context::caller_and_service;
use super::error::GqlResultExt;
use super::types::{
    AgentWorkloadGql, CannedResponseGql, CannedResponseInput, ChatSessionConnection, NoteGql,
    RenderedText, SessionFilter,
};
use crate::service::PageArgs;

#[derive(Default)]
pub struct WorkspaceQuery;

#[Object]
impl WorkspaceQuery {
    /// Agent: own PERSONAL and every TEAM response; admin: every TEAM response. search matches shortCode prefix or title words.
    async fn canned_responses(
        &self,
        ctx: &Context<'_>,
        search: Option<String>,
    ) -> async_graphql::Result<Vec<CannedResponseGql>> {
        let (viewer, svc) = caller_and_service(ctx)?;
        let found = svc
            .workspace()
            .canned_responses(viewer, search.as_deref())
            .await;
        Ok(found.gql()?.into_iter().map(Into::into).collect())
    }

    /// Agent holding the session, or admin: the response's body filled in for that session.
    async fn render_canned_response(
        &self,
        ctx: &Context<'_>,
        id: ID,
        session_id: ID,
    ) -> async_graphql::Result<RenderedText> {
        let (viewer, svc) = caller_and_service(ctx)?;
        let rendered = svc
            .workspace()
            .render_canned(viewer, &id, &session_id)
            .await;
        Ok(rendered.gql()?.into())
    }

    /// Agent: sessions they handled or may see; admin: all within retention. Newest first.
    async fn search_sessions(
        &self,
        ctx: &Context<'_>,
        filter: SessionFilter,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<ChatSessionConnection> {
        let (viewer, svc) = caller_and_service(ctx)?;
        let args = PageArgs {
            first,
            after,
            ..Default::default()
        };
        let page = svc
            .workspace()
            .search_sessions(viewer, filter.into(), &args)
            .await
            .gql()?;
        Ok(ChatSessionConnection::batched(page, svc))
    }

    /// Admin: every agent; agent: themselves only.
    async fn workload(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<AgentWorkloadGql>> {
        let (viewer, svc) = caller_and_service(ctx)?;
        let all = svc.workspace().workload(viewer).await.gql()?;
        Ok(all.into_iter().map(Into::into).collect())
    }
}

#[derive(Default)]
pub struct WorkspaceMutations;

#[Object]
impl WorkspaceMutations {
    /// Agent: PERSONAL only; admin: TEAM only. A taken shortCode in the same scope and owner gives CONFLICT.
    async fn create_canned_response(
        &self,
        ctx: &Context<'_>,
        input: CannedResponseInput,
    ) -> async_graphql::Result<CannedResponseGql> {
        let (viewer, svc) = caller_and_service(ctx)?;
        let created = svc
            .workspace()
            .create_canned(viewer, input.as_input())
            .await;
        Ok(created.gql()?.into())
    }

    /// Its owner (PERSONAL) or an admin (TEAM).
    async fn update_canned_response(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: CannedResponseInput,
    ) -> async_graphql::Result<CannedResponseGql> {
        let (viewer, svc) = caller_and_service(ctx)?;
        let updated = svc
            .workspace()
            .update_canned(viewer, &id, input.as_input())
            .await;
        Ok(updated.gql()?.into())
    }

    /// Its owner (PERSONAL) or an admin (TEAM).
    async fn delete_canned_response(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<bool> {
        let (viewer, svc) = caller_and_service(ctx)?;
        svc.workspace().delete_canned(viewer, &id).await.gql()
    }

    /// Agent holding the session (OFFERED or ACTIVE, or who held it), or admin. Also published as NoteAdded to agents and admins following the session.
    async fn add_note(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
        body: String,
    ) -> async_graphql::Result<NoteGql> {
        let (viewer, svc) = caller_and_service(ctx)?;
        let note = svc.workspace().add_note(viewer, &session_id, &body).await;
        Ok(note.gql()?.into())
    }
}
