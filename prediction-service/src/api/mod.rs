//! HTTP API: one router per resource, merged here with the shared routes and layers.

mod health;
mod model;
mod predict;

use std::sync::Arc;

use axum::Router;
use service_kit::limits::IpNet;
use service_kit::problem::Problem;
use utoipa::OpenApi;

use crate::kafka::KafkaConsumer;
use crate::metrics::PredictionMetrics;
use crate::model::watch::ModelStore;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub model: Arc<ModelStore>,
    pub metrics: PredictionMetrics,
    pub consumer: Arc<KafkaConsumer>,
    pub request_topic: String,
    pub max_batch: usize,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "prediction-service",
        description = "Classifies wines from their 13 chemical features with a mounted ONNX random forest, over HTTP and Kafka request/reply."
    ),
    paths(predict::predict, model::model, service_kit::health::ready),
    components(schemas(
        Problem,
        crate::request::Answer,
        crate::model::ModelInfo,
        predict::PredictRequest
    ))
)]
pub struct ApiDoc;

/// The complete application router. `max_body_bytes` bounds a batch's body;
/// `trusted_proxies` are the gateways whose forwarding headers are believed.
pub fn router(state: AppState, max_body_bytes: usize, trusted_proxies: &[IpNet]) -> Router {
    let metrics = state.metrics.registry.clone();
    let routes = Router::new()
        .merge(predict::router(max_body_bytes))
        .merge(model::router())
        .merge(service_kit::health::router())
        .with_state(state);
    service_kit::http::finish(routes, metrics, ApiDoc::openapi(), trusted_proxies)
}
