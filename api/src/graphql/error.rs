//! The one place where service errors become GraphQL errors.

use async_graphql::{ErrorExtensions, Response};

use crate::error::{AppError, ErrorCode};

/// Converts with `extensions.code` set; internal details go to the log only.
pub fn to_gql(err: AppError) -> async_graphql::Error {
    if err.code() == ErrorCode::Internal {
        tracing::error!(error = %err, "request failed");
    }
    let code = err.code().as_str();
    let retryable = err.retryable();
    async_graphql::Error::new(err.client_message()).extend_with(|_, ext| {
        ext.set("code", code);
        if retryable {
            ext.set("retryable", true);
        }
    })
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

/// Gives every error that async-graphql raises itself (syntax, validation,
/// depth and complexity limits, disabled introspection) the code
/// BAD_USER_INPUT: those all describe a request the client must change.
/// Errors from resolvers already carry their code and are left alone.
pub(super) fn stamp(mut response: Response) -> Response {
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            extensions.set("code", ErrorCode::BadUserInput.as_str());
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::Value;
    use sea_orm::{ConnAcquireErr, DbErr};

    fn extension(err: &async_graphql::Error, key: &str) -> Option<Value> {
        err.extensions.as_ref().and_then(|e| e.get(key)).cloned()
    }

    #[test]
    fn an_unreachable_database_is_marked_retryable() {
        let err = to_gql(AppError::Database(DbErr::ConnectionAcquire(
            ConnAcquireErr::Timeout,
        )));
        assert_eq!(err.message, "the database is unavailable; retry shortly");
        assert_eq!(extension(&err, "code"), Some(Value::from("INTERNAL")));
        assert_eq!(extension(&err, "retryable"), Some(Value::from(true)));
    }

    #[test]
    fn other_errors_carry_no_retryable_hint() {
        for err in [
            AppError::Internal("bug".into()),
            AppError::Conflict("taken".into()),
        ] {
            let err = to_gql(err);
            assert_eq!(extension(&err, "retryable"), None);
        }
    }
}
