//! Every error the user-service's handlers answer with, and its problem+json answer.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use service_kit::db::DbError;
use service_kit::problem::Problem;

use crate::domain::FieldErrors;

/// Why a request failed; each variant documents its status. Internal causes are logged,
/// never returned.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the `Idempotency-Key` header is not 1-255 visible ASCII characters.
    #[error("bad idempotency key")]
    BadIdempotencyKey,
    /// 400: the `user_id` in the path is not a UUID.
    #[error("user_id is not a UUID")]
    BadUserId,
    /// 404: no user has this id.
    #[error("no such user")]
    UserNotFound,
    /// 409: the email is taken (case-insensitively).
    #[error("email already registered")]
    DuplicateEmail,
    /// 409: another request with the same idempotency key is still in progress.
    #[error("idempotency key in use")]
    KeyInProgress,
    /// 422: fields failed validation.
    #[error("invalid fields")]
    Invalid(FieldErrors),
    /// 422: the idempotency key was used before for a different request.
    #[error("idempotency key reused")]
    KeyReused,
    /// 503 with `Retry-After` when the database is unreachable or too slow, else 500
    /// (see [`Problem::store_failure`]).
    #[error("user store failed")]
    Store(#[from] DbError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = match self {
            Self::BadIdempotencyKey => Problem::new(
                StatusCode::BAD_REQUEST,
                "Idempotency-Key must be 1-255 visible ASCII characters.",
            ),
            Self::BadUserId => Problem::new(StatusCode::BAD_REQUEST, "user_id must be a UUID."),
            Self::UserNotFound => Problem::new(StatusCode::NOT_FOUND, "No user with this id."),
            Self::DuplicateEmail => Problem::new(
                StatusCode::CONFLICT,
                "A user with this email already exists.",
            ),
            Self::KeyInProgress => Problem::new(
                StatusCode::CONFLICT,
                "A request with this Idempotency-Key is in progress.",
            ),
            Self::Invalid(errors) => Problem::validation(errors),
            Self::KeyReused => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "This Idempotency-Key was already used for a different request.",
            ),
            Self::Store(error) => Problem::store_failure("user", &error),
        };
        problem.into_response()
    }
}
