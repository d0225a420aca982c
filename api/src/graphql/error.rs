//! The one place where service errors become GraphQL errors.

use async_graphql::ErrorExtensions;

use crate::error::{AppError, ErrorCode};

/// Converts with `extensions.code` set; internal details go to the log only.
pub fn to_gql(err: AppError) -> async_graphql::Error {
    if err.code() == ErrorCode::Internal {
        tracing::error!(error = %err, "request failed");
    }
    let code = err.code().as_str();
    async_graphql::Error::new(err.client_message()).extend_with(|_, ext| ext.set("code", code))
}

/// `.gql()` on service results. A bare `?` on an [`AppError`] would compile
/// (async-graphql converts any `Display` error) but drop the code, so every
/// resolver converts through this.
pub trait GqlResultExt<T> {
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T> GqlResultExt<T> for Result<T, AppError> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(to_gql)
    }
}
