//! The HTTP pieces both services share: the JSON and query extractors that answer in
//! problem+json, the common routes and layers, and the server loop with graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{
    ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, MatchedPath, Path, Query,
    Request, State,
};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router, middleware};
use serde::Serialize;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;

use crate::limits::IpNet;
use crate::metrics::{Metrics, UNMATCHED_ROUTE, metrics_handler, track_http};
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

/// `Query` whose rejection is a problem+json 400 naming the parameter and what is wrong.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    Query<T>: FromRequestParts<S, Rejection = QueryRejection>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(Problem::new(StatusCode::BAD_REQUEST, rejection.body_text())),
        }
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
///
/// `trusted_proxies` are the gateways whose `X-Forwarded-Prefix` is believed (see
/// [`ForwardedPrefix`]).
pub fn finish(
    router: Router,
    metrics: Metrics,
    openapi: utoipa::openapi::OpenApi,
    trusted_proxies: &[IpNet],
) -> Router {
    // The OpenAPI title is the service's name; spans carry it for the embedded platform,
    // where both services share one process (and one OpenTelemetry resource).
    let service: Arc<str> = openapi.info.title.as_str().into();
    let trusted: Arc<[IpNet]> = trusted_proxies.into();
    router
        .route("/health/live", get(live))
        .route("/metrics", get(metrics_handler).with_state(metrics.clone()))
        .merge(api_docs(openapi))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(trusted, forwarded_prefix))
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

/// The path prefix a trusted gateway stripped before forwarding the request, from its
/// `X-Forwarded-Prefix` header (Traefik's `stripPrefix` sets it): `/api/users` behind the
/// compose gateway, empty when the request came directly. Links the service hands out
/// (`Location`, the OpenAPI `servers`) start with it so they work where the client is.
///
/// The header is believed only from a peer in `TRUSTED_PROXIES`, and only when it is a
/// plain absolute path (letters, digits, `-._~/`, no empty or dot segments, at most 256
/// bytes); anything else counts as no prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardedPrefix(String);

/// Longest `X-Forwarded-Prefix` believed.
const MAX_PREFIX_BYTES: usize = 256;

impl ForwardedPrefix {
    /// The prefix of a request from `peer` with `headers`.
    pub fn from_request(
        peer: Option<std::net::IpAddr>,
        headers: &axum::http::HeaderMap,
        trusted: &[IpNet],
    ) -> Self {
        let trusted_peer = peer.is_some_and(|ip| trusted.iter().any(|net| net.contains(ip)));
        let mut values = headers.get_all("x-forwarded-prefix").iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Self::default();
        };
        if !trusted_peer {
            return Self::default();
        }
        value
            .to_str()
            .ok()
            .and_then(Self::parse)
            .unwrap_or_default()
    }

    fn parse(value: &str) -> Option<Self> {
        let prefix = value.trim_end_matches('/');
        let plain = prefix.len() <= MAX_PREFIX_BYTES
            && (prefix.is_empty() || prefix.starts_with('/'))
            && prefix.split('/').skip(1).all(|segment| {
                !segment.is_empty()
                    && segment != "."
                    && segment != ".."
                    && segment
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
            });
        plain.then(|| Self(prefix.to_owned()))
    }

    /// The prefix, without a trailing slash; empty without a gateway.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `path` (absolute, as the service routes it) as the client must ask for it.
    pub fn link(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ForwardedPrefix {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Self>().cloned().unwrap_or_default())
    }
}

/// Middleware: records the request's [`ForwardedPrefix`] for the handlers.
async fn forwarded_prefix(
    State(trusted): State<Arc<[IpNet]>>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let prefix = ForwardedPrefix::from_request(peer, request.headers(), &trusted);
    request.extensions_mut().insert(prefix);
    next.run(request).await
}

/// `/openapi.json` and the Swagger UI at `/docs/`. Every URL they use is relative, or
/// carries the [`ForwardedPrefix`], so both work directly and behind the gateway:
/// `/docs` redirects to `docs/`, the UI loads `../openapi.json`, and the document's
/// `servers` names the prefix the client used.
fn api_docs(openapi: utoipa::openapi::OpenApi) -> Router {
    let openapi = Arc::new(openapi);
    let config = Arc::new(utoipa_swagger_ui::Config::new(["../openapi.json"]));
    let ui = {
        let config = config.clone();
        move |tail: Option<Path<String>>| {
            let config = config.clone();
            async move { swagger_file(tail.as_ref().map_or("", |t| t.as_str()), config) }
        }
    };
    Router::new()
        .route(
            "/openapi.json",
            get(move |prefix: ForwardedPrefix| {
                let openapi = openapi.clone();
                async move { openapi_for(&openapi, &prefix) }
            }),
        )
        .route(
            "/docs",
            get(|| async {
                // Relative, so that it stays under the gateway's prefix.
                (
                    StatusCode::SEE_OTHER,
                    [(header::LOCATION, HeaderValue::from_static("docs/"))],
                )
            }),
        )
        .route("/docs/", get(ui.clone()))
        .route("/docs/{*rest}", get(ui))
}

fn openapi_for(openapi: &utoipa::openapi::OpenApi, prefix: &ForwardedPrefix) -> Response {
    if prefix.as_str().is_empty() {
        return Json(openapi).into_response();
    }
    let mut document = openapi.clone();
    document.servers = Some(vec![utoipa::openapi::Server::new(prefix.as_str())]);
    Json(document).into_response()
}

fn swagger_file(path: &str, config: Arc<utoipa_swagger_ui::Config<'static>>) -> Response {
    match utoipa_swagger_ui::serve(path, config) {
        Ok(Some(file)) => {
            let mut response = (
                [(header::CONTENT_TYPE, file.content_type)],
                file.bytes.into_owned(),
            )
                .into_response();
            if file.gzpipped {
                response
                    .headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            response
        }
        Ok(None) => {
            Problem::new(StatusCode::NOT_FOUND, "No resource at this path.").into_response()
        }
        Err(error) => {
            tracing::error!(%error, "cannot serve the Swagger UI");
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The API docs are unavailable.",
            )
            .into_response()
        }
    }
}

/// The server span of one request, continuing the caller's trace when the request has a
/// `traceparent`. INFO, so that `RUST_LOG=info` keeps it (the OpenTelemetry layer has its
/// own filter).
fn server_span(service: &str, request: &Request) -> Span {
    let method = request.method().as_str();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
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
