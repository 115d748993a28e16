//! `GET /health/ready`: ready only with a model loaded and Kafka answering.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use rdkafka::consumer::Consumer;
use service_kit::health::{Check, Readiness};

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
    let kafka = service_kit::kafka::probe(state.request_topic.clone(), move |topic, timeout| {
        consumer.client().fetch_metadata(Some(topic), timeout)
    });
    // The service does not start without a model, and a refused reload keeps the old one.
    let model = async {
        let _serving = state.model.current();
        Ok::<(), String>(())
    };
    let (kafka, model) = tokio::join!(Check::run(kafka), Check::run(model));
    Readiness::from_checks([("kafka", kafka), ("model", model)])
}
