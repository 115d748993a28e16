//! `GET /health/ready`: ready only when the database and Kafka both answer.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use rdkafka::consumer::Consumer;
use service_kit::health::{self, Readiness};

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/health/ready", get(ready))
}

/// Readiness with a check per dependency.
#[utoipa::path(
    get,
    path = "/health/ready",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "A dependency is down", body = Readiness),
    )
)]
pub async fn ready(State(state): State<AppState>) -> Readiness {
    let consumer = state.consumer.clone();
    health::database_and_kafka(&state.db, state.topic.clone(), move |topic, timeout| {
        consumer.client().fetch_metadata(Some(topic), timeout)
    })
    .await
}
