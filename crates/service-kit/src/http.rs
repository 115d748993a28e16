//! The HTTP pieces both services share: the JSON extractor that answers in problem+json,
//! the common routes and layers, and the server loop with graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Request};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router, middleware};
use serde::Serialize;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;
use utoipa_swagger_ui::SwaggerUi;

use crate::metrics::{Metrics, metrics_handler, track_http};
use crate::problem::Problem;
use crate::shutdown::Shutdown;
use crate::telemetry;

/// Largest request body accepted (413 above).
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Longest a request may take before it is answered 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// `Json` whose rejections are problem+json: 400 malformed, 413 too large, 415 not JSON,
/// 422 well-formed but of the wrong shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(Problem::new(rejection.status(), rejection.body_text())),
        }
    }
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        Json(self.0).into_response()
    }
}

#[derive(Serialize)]
struct Live {
    status: &'static str,
}

/// `GET /health/live`: the process runs and serves HTTP.
pub async fn live() -> Json<impl Serialize> {
    Json(Live { status: "live" })
}

/// Wraps a service's own routes with what every service has: liveness, metrics, API docs,
/// a problem+json 404, request ids, tracing, RED metrics, security headers, size limits,
/// load shedding, the body limit and a timeout.
pub fn finish(router: Router, metrics: Metrics, openapi: utoipa::openapi::OpenApi) -> Router {
    // The OpenAPI title is the service's name; spans carry it for the embedded platform,
    // where both services share one process (and one OpenTelemetry resource).
    let service: Arc<str> = openapi.info.title.as_str().into();
    router
        .route("/health/live", get(live))
        .route("/metrics", get(metrics_handler).with_state(metrics.clone()))
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            crate::limits::in_flight_permits(),
            crate::limits::guard,
        ))
        .layer(middleware::from_fn_with_state(metrics, track_http))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(move |request: &Request| server_span(&service, request))
                .on_response(record_status),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// The server span of one request, continuing the caller's trace when the request has a
/// `traceparent`. INFO, so that `RUST_LOG=info` keeps it (the OpenTelemetry layer has its
/// own filter).
fn server_span(service: &str, request: &Request) -> Span {
    let method = request.method().as_str();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let span = tracing::info_span!(
        "http.request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        http.route = route,
        url.path = request.uri().path(),
        http.response.status_code = tracing::field::Empty,
        request_id = request
            .headers()
            .get(&REQUEST_ID)
            .and_then(|v| v.to_str().ok()),
        service.name = service,
    );
    let traceparent = request
        .headers()
        .get(telemetry::TRACEPARENT)
        .and_then(|v| v.to_str().ok());
    telemetry::continue_trace(&span, traceparent);
    span
}

fn record_status(response: &Response, _latency: Duration, span: &Span) {
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
}

async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "No resource at this path.")
}

/// Serves `router` until `shutdown` triggers, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.wait().await })
    .await
}

/// `--healthcheck`: GET /health/live on the local port, for container healthchecks in
/// images that carry no curl. Returns whether the service answered 200.
pub async fn probe_live(http_addr: SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let target = SocketAddr::from(([127, 0, 0, 1], http_addr.port()));
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(target).await?;
        stream
            .write_all(b"GET /health/live HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        Ok::<_, std::io::Error>(&head[9..] == b"200")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(3), attempt).await,
        Ok(Ok(true))
    )
}
