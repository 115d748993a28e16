//! HTTP API: one router per resource, merged here with the shared routes and layers.

mod error;
mod health;
mod register;
mod users;

use std::sync::Arc;

use axum::Router;
use rdkafka::producer::FutureProducer;
use service_kit::auth::AdminToken;
use service_kit::db::Database;
use service_kit::limits::{IpNet, RateLimiter};
use service_kit::problem::Problem;
use tokio::sync::Notify;
use utoipa::OpenApi;

use crate::metrics::UserMetrics;
use crate::store::UserStore;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: UserStore,
    pub db: Database,
    pub producer: FutureProducer,
    pub topic: String,
    /// Wakes the outbox relay after a commit.
    pub relay_wake: Arc<Notify>,
    pub metrics: UserMetrics,
    pub admin: AdminToken,
    /// Gateways whose forwarding headers are believed (`TRUSTED_PROXIES`).
    pub trusted_proxies: Vec<IpNet>,
    /// Per-client limit on registrations, when configured.
    pub rate_limiter: Option<RateLimiter>,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "user-service", description = "Registers users and publishes UserRegistered events."),
    paths(register::register, users::get_user, users::list_users, service_kit::health::ready),
    components(schemas(Problem)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The complete application router.
pub fn router(state: AppState) -> Router {
    let metrics = state.metrics.registry.clone();
    let trusted_proxies = state.trusted_proxies.clone();
    let routes = Router::new()
        .merge(register::router(state.rate_limiter.clone()))
        .merge(users::router(state.admin.clone()))
        .merge(service_kit::health::router())
        .with_state(state);
    service_kit::http::finish(routes, metrics, ApiDoc::openapi(), &trusted_proxies)
}
