//! `sendFile` and `shareArticle`.

use async_graphql::{Context, Object};

use super::context::caller_and_service;
use super::error::{to_gql, GqlResultExt};
use super::types::{MessageGql, SendFileInput, ShareArticleInput};
use crate::error::AppError;
use crate::service::Upload;

#[derive(Default)]
pub struct FileMutations;

#[Object]
impl FileMutations {
    /// Customer of the session or its accepted agent (ACTIVE); size and content-type limits apply (BAD_USER_INPUT).
    async fn send_file(
        &self,
        ctx: &Context<'_>,
        input: SendFileInput,
    ) -> async_graphql::Result<MessageGql> {
        let (viewer, svc) = caller_and_service(ctx)?;
        let upload = input.file.value(ctx).map_err(|e| {
            to_gql(AppError::BadUserInput(format!(
                "the file part could not be read: {e}"
            )))
        })?;
        Ok(svc
            .files()
            .send_file(
                viewer,
                &input.session_id,
                Upload {
                    filename: upload.filename,
                    file: upload.content,
                },
                input.caption.as_deref(),
                &input.client_message_id,
            )
            .await
            .gql()?
            .into())
    }

    /// Agent of an ACTIVE session.
    async fn share_article(
        &self,
        ctx: &Context<'_>,
        input: ShareArticleInput,
    ) -> async_graphql::Result<MessageGql> {
        let (viewer, svc) = caller_and_service(ctx)?;
        Ok(svc
            .files()
            .share_article(
                viewer,
                &input.session_id,
                &input.url,
                &input.title,
                &input.client_message_id,
            )
            .await
            .gql()?
            .into())
    }
}
