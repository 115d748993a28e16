//! Prometheus registry of one service and the HTTP RED middleware.
//!
//! Each service owns its registry (not the global one) so that the embedded platform and
//! the tests can run several services in one process without mixing their series.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder, core::Collector,
};

/// Histogram buckets in seconds that resolve millisecond latencies.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The `route` of a request no route matched, in metrics and spans alike: one value, so
/// that scanners' random paths cannot blow up the label set.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// A service's metrics registry plus the HTTP and readiness metrics every service has.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    dependency_up: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests answered."),
            &["method", "route", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency.")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["method", "route"],
        )?;
        // Set by each readiness evaluation (`health::evaluate`), one series per dependency
        // the service checks (`database`, `kafka`, `model`).
        let dependency_up = IntGaugeVec::new(
            Opts::new(
                "dependency_up",
                "Whether the dependency answered the service's last readiness check (1) or not (0).",
            ),
            &["dependency"],
        )?;
        let metrics = Self {
            registry,
            http_requests,
            http_duration,
            dependency_up,
        };
        metrics.register(metrics.http_requests.clone())?;
        metrics.register(metrics.http_duration.clone())?;
        metrics.register(metrics.dependency_up.clone())?;
        // Dashboards divide process_cpu_seconds_total's rate by it: CPU as a share of
        // what the process may use, whatever the machine or the pod's quota.
        let cores = metrics.register(IntGauge::new(
            "process_cpu_cores_available",
            "CPU cores this process may use (CPU quota or affinity).",
        )?)?;
        cores.set(std::thread::available_parallelism().map_or(1, |n| n.get() as i64));
        Ok(metrics)
    }

    /// Registers a collector and hands it back.
    pub fn register<C: Collector + Clone + 'static>(&self, collector: C) -> prometheus::Result<C> {
        self.registry.register(Box::new(collector.clone()))?;
        Ok(collector)
    }

    /// Sets `dependency_up{dependency}` to 1 when the dependency answered its check, else 0.
    pub fn dependency_up(&self, dependency: &str, up: bool) {
        self.dependency_up
            .with_label_values(&[dependency])
            .set(i64::from(up));
    }

    /// The text exposition of every registered metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(error) = encoder.encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(%error, "could not encode metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

/// Handler for `GET /metrics`.
pub async fn metrics_handler(State(metrics): State<Metrics>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.render(),
    )
        .into_response()
}

/// Middleware recording rate, errors and duration per route template. Unmatched paths
/// share one `route` label, [`UNMATCHED_ROUTE`].
pub async fn track_http(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE, MatchedPath::as_str)
        .to_owned();
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let labels = [method.as_str(), route.as_str()];
    metrics
        .http_duration
        .with_label_values(&labels)
        .observe(started.elapsed().as_secs_f64());
    metrics
        .http_requests
        .with_label_values(&[method.as_str(), route.as_str(), response.status().as_str()])
        .inc();
    response
}
