//! Readiness: every dependency checked for real, with per-dependency detail.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

/// Result of one dependency check.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Check {
    pub ok: bool,
    pub latency_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Check {
    /// Runs `probe` and records how it went and how long it took.
    pub async fn run<E: std::fmt::Display>(probe: impl Future<Output = Result<(), E>>) -> Self {
        let started = Instant::now();
        let result = probe.await;
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match result {
            Ok(()) => Self {
                ok: true,
                latency_ms,
                error: None,
            },
            Err(e) => Self {
                ok: false,
                latency_ms,
                error: Some(e.to_string()),
            },
        }
    }
}

/// `GET /health/ready` answer: 200 when every check passed, else 503.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    pub checks: BTreeMap<&'static str, Check>,
}

impl Readiness {
    pub fn from_checks(checks: impl IntoIterator<Item = (&'static str, Check)>) -> Self {
        let checks: BTreeMap<_, _> = checks.into_iter().collect();
        let ready = checks.values().all(|c| c.ok);
        Self {
            status: if ready { "ready" } else { "not_ready" },
            checks,
        }
    }

    pub fn is_ready(&self) -> bool {
        self.status == "ready"
    }
}

impl IntoResponse for Readiness {
    fn into_response(self) -> Response {
        let status = if self.is_ready() {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (status, Json(self)).into_response()
    }
}

/// What `GET /health/ready` checks: each service's handler state knows its dependencies.
pub trait Ready: Clone + Send + Sync + 'static {
    fn readiness(&self) -> impl Future<Output = Readiness> + Send;
}

/// `GET /health/ready` for a service whose handler state is `S`.
pub fn router<S: Ready>() -> Router<S> {
    Router::new().route("/health/ready", get(ready::<S>))
}

/// Readiness with a check per dependency.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "health",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "A dependency is down", body = Readiness),
    )
)]
pub async fn ready<S: Ready>(State(state): State<S>) -> Readiness {
    state.readiness().await
}

/// Readiness of a service that needs its database and the Kafka topic it works on.
/// `fetch` reads broker metadata through the service's own Kafka client.
pub async fn database_and_kafka<F>(db: &crate::db::Database, topic: String, fetch: F) -> Readiness
where
    F: FnOnce(
            &str,
            std::time::Duration,
        ) -> rdkafka::error::KafkaResult<rdkafka::metadata::Metadata>
        + Send
        + 'static,
{
    let kafka = crate::kafka::probe(topic, fetch);
    let (database, kafka) = tokio::join!(Check::run(db.ping()), Check::run(kafka));
    Readiness::from_checks([("database", database), ("kafka", kafka)])
}
