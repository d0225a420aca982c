//! The one error type of the service layer, and the codes clients see.

use sea_orm::{DbErr, RuntimeErr, SqlxError};

/// The `extensions.code` values of the API contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    Unauthenticated,
    Forbidden,
    NotFound,
    BadUserInput,
    Conflict,
    RateLimited,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::BadUserInput => "BAD_USER_INPUT",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::Internal => "INTERNAL",
        }
    }
}

/// Everything a use case can refuse or fail with. The message of every
/// variant but the internal ones is written for the client; internal ones
/// are logged and replaced by a generic message before they leave the server.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadUserInput(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    RateLimited(String),
    /// A system this server calls (the ticket system) failed; the message,
    /// written for the client, says how without its details.
    #[error("{0}")]
    Upstream(String),
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<crate::domain::Refusal> for AppError {
    fn from(refusal: crate::domain::Refusal) -> Self {
        match refusal {
            crate::domain::Refusal::Forbidden(why) => AppError::Forbidden(why),
            crate::domain::Refusal::Conflict(why) => AppError::Conflict(why),
        }
    }
}

impl AppError {
    pub fn code(&self) -> ErrorCode {
        match self {
            AppError::Unauthenticated(_) => ErrorCode::Unauthenticated,
            AppError::Forbidden(_) => ErrorCode::Forbidden,
            AppError::NotFound(_) => ErrorCode::NotFound,
            AppError::BadUserInput(_) => ErrorCode::BadUserInput,
            AppError::Conflict(_) => ErrorCode::Conflict,
            AppError::RateLimited(_) => ErrorCode::RateLimited,
            AppError::Upstream(_) | AppError::Database(_) | AppError::Internal(_) => {
                ErrorCode::Internal
            }
        }
    }

    /// What the client may read. Internal details stay in the logs.
    pub fn client_message(&self) -> String {
        match self.code() {
            ErrorCode::Internal if matches!(self, AppError::Upstream(_)) => self.to_string(),
            ErrorCode::Internal if self.retryable() => {
                "the database is unavailable; retry shortly".to_owned()
            }
            ErrorCode::Internal => "internal server error".to_owned(),
            _ => self.to_string(),
        }
    }

    /// Whether the same request may well succeed if sent again shortly: the
    /// database could not be reached (down, restarting, connection lost),
    /// as opposed to refusing the request. Clients see it as
    /// `extensions.retryable`, so they can retry instead of giving up. A
    /// system this server calls that failed counts too.
    pub fn retryable(&self) -> bool {
        match self {
            AppError::Upstream(_) => true,
            AppError::Database(e) => database_unreachable(e),
            _ => false,
        }
    }

    pub fn session_not_found() -> Self {
        AppError::NotFound("no such session".to_owned())
    }
}

pub type AppResult<T> = Result<T, AppError>;

fn database_unreachable(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            connection_lost(e)
        }
        _ => false,
    }
}

fn connection_lost(err: &SqlxError) -> bool {
    match err {
        SqlxError::Io(_)
        | SqlxError::Tls(_)
        | SqlxError::PoolTimedOut
        | SqlxError::PoolClosed
        | SqlxError::WorkerCrashed => true,
        // SQLSTATE class 08 is "connection exception"; 57P01-57P03 are
        // the server shutting down, crashing or still starting.
        SqlxError::Database(e) => e
            .code()
            .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_hide_their_details() {
        let err = AppError::Database(DbErr::Custom("password=hunter2".into()));
        assert_eq!(err.code(), ErrorCode::Internal);
        assert!(!err.client_message().contains("hunter2"));
    }

    #[test]
    fn an_unreachable_database_is_internal_but_retryable() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "at 10.0.0.5:5432");
        for err in [
            AppError::Database(DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout)),
            AppError::Database(DbErr::Conn(RuntimeErr::SqlxError(SqlxError::Io(io)))),
            AppError::Database(DbErr::Exec(RuntimeErr::SqlxError(SqlxError::PoolTimedOut))),
        ] {
            assert_eq!(err.code(), ErrorCode::Internal);
            assert!(err.retryable(), "{err}");
            assert_eq!(
                err.client_message(),
                "the database is unavailable; retry shortly"
            );
        }
    }

    #[test]
    fn other_internal_errors_are_not_retryable() {
        for err in [
            AppError::Database(DbErr::Custom("constraint".into())),
            AppError::Database(DbErr::Query(RuntimeErr::SqlxError(SqlxError::RowNotFound))),
            AppError::Internal("bug".into()),
            AppError::Conflict("taken".into()),
        ] {
            assert!(!err.retryable(), "{err}");
        }
        assert_eq!(
            AppError::Internal("bug".into()).client_message(),
            "internal server error"
        );
    }

    #[test]
    fn user_errors_keep_their_message_and_code() {
        let err = AppError::Conflict("already taken".into());
        assert_eq!(err.code().as_str(), "CONFLICT");
        assert_eq!(err.client_message(), "already taken");
    }
}
