//! The one error type of the service layer, and the codes clients see.

use sea_orm::DbErr;

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
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    #[error("internal error: {0}")]
    Internal(String),
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
            AppError::Database(_) | AppError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// What the client may read. Internal details stay in the logs.
    pub fn client_message(&self) -> String {
        match self.code() {
            ErrorCode::Internal => "internal server error".to_owned(),
            _ => self.to_string(),
        }
    }

    pub fn session_not_found() -> Self {
        AppError::NotFound("no such session".to_owned())
    }
}

pub type AppResult<T> = Result<T, AppError>;

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
    fn user_errors_keep_their_message_and_code() {
        let err = AppError::Conflict("already taken".into());
        assert_eq!(err.code().as_str(), "CONFLICT");
        assert_eq!(err.client_message(), "already taken");
    }
}
