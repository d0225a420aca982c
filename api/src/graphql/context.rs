use async_graphql::Context;

use super::error::{to_gql, GqlResultExt};
use crate::auth::{Caller, Viewer};
use crate::error::AppError;
use crate::service::ChatService;

/// The verified caller, or UNAUTHENTICATED.
pub fn viewer<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Viewer> {
    match ctx.data_opt::<Caller>() {
        Some(caller) => caller.viewer().gql(),
        None => Err(to_gql(AppError::Unauthenticated("missing token".into()))),
    }
}

pub fn service<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a ChatService> {
    ctx.data_opt::<ChatService>()
        .ok_or_else(|| to_gql(AppError::Internal("schema built without a service".into())))
}

/// Both at once, the common case.
pub fn caller_and_service<'a>(
    ctx: &Context<'a>,
) -> async_graphql::Result<(&'a Viewer, &'a ChatService)> {
    Ok((viewer(ctx)?, service(ctx)?))
}
