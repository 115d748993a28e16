//! Readiness: every dependency checked for real, with per-dependency detail.
//!
//! Readiness means "can serve its requests". A dependency the service's requests need is
//! *required*: when its check fails the service is `not_ready` (503), and on Kubernetes the
//! pod leaves its Service. A dependency that only background work needs (the outbox
//! relay's broker, a consumer's broker) is *reported*: when its check fails the service is
//! `degraded` (still 200, it serves its requests) and the failure shows in the body, in
//! the `dependency_up` gauge and in the alerts built on it.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use crate::Shutdown;
use crate::metrics::Metrics;

/// How often a running service re-evaluates its readiness on its own (see [`Refresh`]).
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// Result of one dependency check.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Check {
    pub ok: bool,
    /// Whether the service's requests need this dependency. A failing required check
    /// makes the service `not_ready` (503); a failing check with `required: false` (a
    /// dependency only background work needs) makes it `degraded` (200).
    pub required: bool,
    pub latency_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Check {
    /// Checks a dependency the service's requests need: its failure gates readiness.
    pub async fn required<E: std::fmt::Display>(
        probe: impl Future<Output = Result<(), E>>,
    ) -> Self {
        Self::run(probe, true).await
    }

    /// Checks a dependency only background work needs: its failure is reported (the
    /// service is `degraded`), never gating.
    pub async fn reported<E: std::fmt::Display>(
        probe: impl Future<Output = Result<(), E>>,
    ) -> Self {
        Self::run(probe, false).await
    }

    /// Runs `probe` and records how it went and how long it took.
    async fn run<E: std::fmt::Display>(
        probe: impl Future<Output = Result<(), E>>,
        required: bool,
    ) -> Self {
        let started = Instant::now();
        let result = probe.await;
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        Self {
            ok: result.is_ok(),
            required,
            latency_ms,
            error: result.err().map(|e| e.to_string()),
        }
    }
}

/// The service's state as `GET /health/ready` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ReadinessStatus)]
pub enum Status {
    /// Every check passed.
    Ready,
    /// Every required check passed and a reported one failed: the service serves its
    /// requests (200) while background work waits for the failing dependency.
    Degraded,
    /// A required check failed: the service cannot serve its requests (503).
    NotReady,
}

/// `GET /health/ready` answer: 200 when every required check passed (`ready`, or
/// `degraded` when a reported one failed), else 503 (`not_ready`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`, `degraded` (200) or `not_ready` (503).
    pub status: Status,
    /// One check per dependency, by name (`database`, `kafka`, `model`).
    pub checks: BTreeMap<&'static str, Check>,
}

impl Readiness {
    pub fn from_checks(checks: impl IntoIterator<Item = (&'static str, Check)>) -> Self {
        let checks: BTreeMap<_, _> = checks.into_iter().collect();
        let status = if checks.values().all(|c| c.ok) {
            Status::Ready
        } else if checks.values().all(|c| c.ok || !c.required) {
            Status::Degraded
        } else {
            Status::NotReady
        };
        Self { status, checks }
    }

    /// Whether the service can serve its requests (`ready` or `degraded`).
    pub fn serves(&self) -> bool {
        self.status != Status::NotReady
    }

    /// The names of the failing checks.
    pub fn failing(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.checks
            .iter()
            .filter(|(_, check)| !check.ok)
            .map(|(name, _)| *name)
    }

    /// Sets `dependency_up` for each check.
    pub fn record(&self, metrics: &Metrics) {
        for (name, check) in &self.checks {
            metrics.dependency_up(name, check.ok);
        }
    }
}

impl IntoResponse for Readiness {
    fn into_response(self) -> Response {
        let status = if self.serves() {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (status, Json(self)).into_response()
    }
}

/// What `GET /health/ready` checks: each service's handler state knows its dependencies,
/// and which of them its requests need.
pub trait Ready: Clone + Send + Sync + 'static {
    fn readiness(&self) -> impl Future<Output = Readiness> + Send;

    /// The registry that holds the service's `dependency_up` gauge.
    fn metrics(&self) -> &Metrics;
}

/// Evaluates readiness and records each dependency in `dependency_up`. Every evaluation
/// updates the gauge, so it stays fresh: Kubernetes' readiness probe asks every 5 s (the
/// chart's `periodSeconds`), and [`Refresh`] asks every [`REFRESH_INTERVAL`] besides, for
/// where nothing probes (docker compose's healthcheck and gateway ask `/health/live`).
pub async fn evaluate<S: Ready>(state: &S) -> Readiness {
    let readiness = state.readiness().await;
    readiness.record(state.metrics());
    readiness
}

/// `GET /health/ready` for a service whose handler state is `S`.
pub fn router<S: Ready>() -> Router<S> {
    Router::new().route("/health/ready", get(ready::<S>))
}

/// Readiness with a check per dependency.
///
/// Readiness means "can serve its requests": only a failing dependency that the requests
/// need (`required: true`) makes it 503. A failing dependency that only background work
/// needs (`required: false`, e.g. the broker of the outbox relay or of a consumer) leaves
/// it 200 with `status: degraded`, naming the dependency and its error.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "health",
    responses(
        (status = 200, description = "The service serves its requests: `ready` (every check passed) or `degraded` (a dependency only background work needs, `required: false`, is failing)", body = Readiness),
        (status = 503, description = "`not_ready`: a dependency the service's requests need (`required: true`) is failing", body = Readiness),
    )
)]
pub async fn ready<S: Ready>(State(state): State<S>) -> Readiness {
    evaluate(&state).await
}

/// Re-evaluates a service's readiness every [`REFRESH_INTERVAL`] until shutdown, so that
/// `dependency_up` stays fresh where nothing probes `/health/ready`.
pub struct Refresh<S> {
    state: S,
    every: Duration,
}

impl<S: Ready> Refresh<S> {
    pub fn new(state: S) -> Self {
        Self::every(state, REFRESH_INTERVAL)
    }

    fn every(state: S, every: Duration) -> Self {
        Self { state, every }
    }

    /// Runs `service` (the service's HTTP server) with the refresh beside it, until
    /// `service` ends. Not a spawned task: a service that is dropped (a test's killed
    /// process) drops its refresh too, and with it the Kafka clients it holds.
    pub async fn alongside<T>(self, shutdown: &Shutdown, service: impl Future<Output = T>) -> T {
        let stop = shutdown.child();
        let service = async {
            let result = service.await;
            stop.trigger();
            result
        };
        let (result, ()) = tokio::join!(service, self.run(stop.clone()));
        result
    }

    async fn run(self, shutdown: Shutdown) {
        loop {
            tokio::select! {
                () = shutdown.wait() => return,
                _ = evaluate(&self.state) => {}
            }
            tokio::select! {
                () = shutdown.wait() => return,
                () = tokio::time::sleep(self.every) => {}
            }
        }
    }
}

/// Readiness of a service that serves its requests from its database and does background
/// work on a Kafka topic: the database is required, the broker reported. `fetch` reads
/// broker metadata through the service's own Kafka client.
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
    let (database, kafka) = tokio::join!(Check::required(db.ping()), Check::reported(kafka));
    Readiness::from_checks([("database", database), ("kafka", kafka)])
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;

    async fn up() -> Result<(), String> {
        Ok(())
    }

    async fn down() -> Result<(), String> {
        Err("connection refused".into())
    }

    async fn readiness(database_up: bool, kafka_up: bool) -> Readiness {
        let database = if database_up {
            Check::required(up()).await
        } else {
            Check::required(down()).await
        };
        let kafka = if kafka_up {
            Check::reported(up()).await
        } else {
            Check::reported(down()).await
        };
        Readiness::from_checks([("database", database), ("kafka", kafka)])
    }

    async fn answer(readiness: Readiness) -> (StatusCode, serde_json::Value) {
        let response = readiness.into_response();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        (status, serde_json::from_slice(&body).expect("json"))
    }

    #[tokio::test]
    async fn every_check_passing_is_ready_with_200() {
        let ready = readiness(true, true).await;
        assert_eq!(ready.status, Status::Ready);
        assert!(ready.serves());
        assert_eq!(ready.failing().count(), 0);
        let (status, body) = answer(ready).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "ready");
        assert_eq!(body["checks"]["database"]["ok"], true);
        assert_eq!(body["checks"]["database"]["required"], true);
        assert_eq!(body["checks"]["kafka"]["required"], false);
        assert!(body["checks"]["kafka"]["latency_ms"].is_u64());
        assert!(body["checks"]["kafka"].get("error").is_none());
    }

    #[tokio::test]
    async fn a_failing_reported_check_is_degraded_with_200_and_names_it() {
        let degraded = readiness(true, false).await;
        assert_eq!(degraded.status, Status::Degraded);
        assert!(degraded.serves());
        assert_eq!(degraded.failing().collect::<Vec<_>>(), ["kafka"]);
        let (status, body) = answer(degraded).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "degraded");
        assert_eq!(body["checks"]["kafka"]["ok"], false);
        assert_eq!(body["checks"]["kafka"]["required"], false);
        assert_eq!(body["checks"]["kafka"]["error"], "connection refused");
        assert_eq!(body["checks"]["database"]["ok"], true);
    }

    #[tokio::test]
    async fn a_failing_required_check_is_not_ready_with_503() {
        for kafka_up in [true, false] {
            let not_ready = readiness(false, kafka_up).await;
            assert_eq!(not_ready.status, Status::NotReady, "kafka up: {kafka_up}");
            assert!(!not_ready.serves());
            let (status, body) = answer(not_ready).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(body["status"], "not_ready");
            assert_eq!(body["checks"]["database"]["ok"], false);
            assert_eq!(body["checks"]["database"]["required"], true);
            assert_eq!(body["checks"]["database"]["error"], "connection refused");
        }
    }

    /// A service whose broker can be switched off, counting its evaluations.
    #[derive(Clone)]
    struct Fake {
        kafka_up: Arc<AtomicBool>,
        evaluations: Arc<AtomicUsize>,
        metrics: Metrics,
    }

    impl Fake {
        fn new() -> Self {
            Self {
                kafka_up: Arc::new(AtomicBool::new(true)),
                evaluations: Arc::default(),
                metrics: Metrics::new().expect("metrics"),
            }
        }

        fn gauge(&self, dependency: &str) -> Option<String> {
            let series = format!("dependency_up{{dependency=\"{dependency}\"}} ");
            let text = self.metrics.render();
            text.lines()
                .find_map(|l| l.strip_prefix(&series).map(str::to_owned))
        }
    }

    impl Ready for Fake {
        async fn readiness(&self) -> Readiness {
            self.evaluations.fetch_add(1, Ordering::SeqCst);
            readiness(true, self.kafka_up.load(Ordering::SeqCst)).await
        }

        fn metrics(&self) -> &Metrics {
            &self.metrics
        }
    }

    #[tokio::test]
    async fn each_evaluation_sets_the_dependency_gauges() {
        let service = Fake::new();
        assert_eq!(service.gauge("kafka"), None, "no series before a check");
        evaluate(&service).await;
        assert_eq!(service.gauge("kafka").as_deref(), Some("1"));
        assert_eq!(service.gauge("database").as_deref(), Some("1"));
        service.kafka_up.store(false, Ordering::SeqCst);
        let (status, _) = answer(ready(State(service.clone())).await).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(service.gauge("kafka").as_deref(), Some("0"));
        assert_eq!(service.gauge("database").as_deref(), Some("1"));
    }

    #[tokio::test]
    async fn the_refresh_beside_a_service_stops_when_the_service_ends() {
        let service = Fake::new();
        let shutdown = Shutdown::new();
        let refresh = Refresh::every(service.clone(), Duration::from_millis(10));
        let served = tokio::time::timeout(
            Duration::from_secs(5),
            refresh.alongside(&shutdown, tokio::time::sleep(Duration::from_millis(100))),
        )
        .await;
        assert!(served.is_ok(), "the refresh outlived the service");
        assert!(
            !shutdown.is_triggered(),
            "only the refresh's own token stops"
        );
        assert!(service.evaluations.load(Ordering::SeqCst) >= 2);
    }

    #[tokio::test]
    async fn the_refresh_evaluates_on_its_timer_until_shutdown() {
        let service = Fake::new();
        service.kafka_up.store(false, Ordering::SeqCst);
        let shutdown = Shutdown::new();
        let refresh = tokio::spawn(
            Refresh::every(service.clone(), Duration::from_millis(10)).run(shutdown.clone()),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while service.evaluations.load(Ordering::SeqCst) < 3 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(service.evaluations.load(Ordering::SeqCst) >= 3);
        assert_eq!(service.gauge("kafka").as_deref(), Some("0"));
        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(1), refresh)
            .await
            .expect("the refresh stops at shutdown")
            .expect("no panic");
    }
}
