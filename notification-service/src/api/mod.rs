//! HTTP API: one router per resource, merged here with the shared routes and layers.

mod consumer;
mod error;
mod health;
mod notifications;

use std::sync::Arc;

use axum::Router;
use service_kit::auth::AdminToken;
use service_kit::db::Database;
use service_kit::limits::IpNet;
use service_kit::problem::Problem;
use utoipa::OpenApi;

use crate::consumer::{KafkaConsumer, StatusBoard};
use crate::metrics::NotificationMetrics;
use crate::store::NotificationStore;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: NotificationStore,
    pub db: Database,
    pub consumer: Arc<KafkaConsumer>,
    pub status: Arc<StatusBoard>,
    pub group_id: String,
    pub topic: String,
    pub metrics: NotificationMetrics,
    pub admin: AdminToken,
    /// Gateways whose forwarding headers are believed (`TRUSTED_PROXIES`).
    pub trusted_proxies: Vec<IpNet>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "notification-service",
        description = "Consumes UserRegistered events and sends welcome notifications."
    ),
    paths(
        notifications::list,
        consumer::status,
        consumer::pause,
        consumer::resume,
        service_kit::health::ready
    ),
    components(schemas(Problem))
)]
pub struct ApiDoc;

/// The complete application router.
pub fn router(state: AppState) -> Router {
    let metrics = state.metrics.registry.clone();
    let trusted_proxies = state.trusted_proxies.clone();
    let routes = Router::new()
        .merge(notifications::router(state.admin.clone()))
        .merge(consumer::router(state.admin.clone()))
        .merge(service_kit::health::router())
        .with_state(state);
    service_kit::http::finish(routes, metrics, ApiDoc::openapi(), &trusted_proxies)
}
