//! Every error the notification-service's handlers answer with, and its problem+json
//! answer.

use axum::response::{IntoResponse, Response};
use service_kit::db::DbError;
use service_kit::problem::Problem;

/// Why a request failed; each variant documents its status. Internal causes are logged,
/// never returned.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 503 with `Retry-After` when the database is unreachable or too slow, else 500
    /// (see [`Problem::store_failure`]).
    #[error("notification store failed")]
    Store(#[from] DbError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = match self {
            Self::Store(error) => Problem::store_failure("notification", &error),
        };
        problem.into_response()
    }
}
