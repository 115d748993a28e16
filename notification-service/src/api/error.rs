//! Every error the notification-service's handlers answer with, and its problem+json
//! answer.

use axum::response::{IntoResponse, Response};
use rdkafka::error::KafkaError;
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
    /// 503 with `Retry-After`: the Kafka consumer did not accept a pause or resume.
    #[error("the consumer refused a pause or resume")]
    ConsumerRefused {
        paused: bool,
        #[source]
        source: KafkaError,
    },
    /// 500: the task that pauses or resumes the consumer failed.
    #[error("consumer pause/resume task failed")]
    ConsumerTask(#[source] tokio::task::JoinError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = match self {
            Self::Store(error) => Problem::store_failure("notification", &error),
            Self::ConsumerRefused { paused, source } => {
                tracing::warn!(error = %source, paused, "consumer pause/resume failed");
                Problem::unavailable(
                    "The Kafka consumer did not accept the change; retry shortly.",
                    2,
                )
            }
            Self::ConsumerTask(error) => {
                tracing::error!(%error, "consumer pause/resume task failed");
                Problem::internal()
            }
        };
        problem.into_response()
    }
}
