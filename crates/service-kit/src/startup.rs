//! Start-up before the dependencies answer: a pod may start before MySQL (or the
//! network path to it) is up. Instead of exiting, which turns into a crash loop, the
//! service keeps trying with backoff and meanwhile answers on its port: `/health/live`
//! 200 (the process is fine, do not restart it) and `/health/ready` 503 (send it no
//! traffic yet), every other path 503 problem+json.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio::net::TcpListener;

use crate::Shutdown;
use crate::problem::Problem;

/// Delay before the second attempt; doubled after each failure up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest delay between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(15);

#[derive(Serialize)]
struct Starting {
    status: &'static str,
    attempts: u64,
    error: String,
}

type LastError = Arc<Mutex<(u64, String)>>;

async fn not_ready(State(last): State<LastError>) -> Response {
    let (attempts, error) = last.lock().map(|g| g.clone()).unwrap_or_default();
    let body = Starting {
        status: "starting",
        attempts,
        error,
    };
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

async fn unavailable() -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "The service is starting: its dependencies do not answer yet.",
    )
}

/// The live-but-not-ready server of the start-up phase, on `addr` until `stop` triggers.
async fn not_ready_server(
    addr: SocketAddr,
    last: LastError,
    stop: Shutdown,
) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let router = Router::new()
        .route("/health/live", get(crate::http::live))
        .route("/health/ready", get(not_ready))
        .fallback(unavailable)
        .with_state(last);
    Ok(tokio::spawn(crate::http::serve(listener, router, stop)))
}

/// Logs a failed attempt and keeps it for the readiness answer.
fn note_failure(
    name: &str,
    last: &LastError,
    attempts: u64,
    backoff: Duration,
    error: &anyhow::Error,
) {
    tracing::warn!(
        attempts,
        retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
        error = format!("{error:#}"),
        "{name} not reachable yet; staying not ready and retrying"
    );
    if let Ok(mut guard) = last.lock() {
        *guard = (attempts, format!("{error:#}"));
    }
}

/// Runs `attempt` until it succeeds, waiting with exponential backoff between failures,
/// while a minimal server on `addr` answers live-but-not-ready. Returns `None` when
/// `shutdown` triggers first. The server has released `addr` when this returns, so the
/// service can bind it.
pub async fn retry_until_ready<T, F, Fut>(
    name: &str,
    addr: SocketAddr,
    shutdown: &Shutdown,
    mut attempt: F,
) -> anyhow::Result<Option<T>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let last: LastError = Arc::default();
    let stop = shutdown.child();
    let server = not_ready_server(addr, last.clone(), stop.clone()).await?;
    let mut backoff = FIRST_BACKOFF;
    let mut attempts = 0u64;
    let result = loop {
        attempts += 1;
        let outcome = tokio::select! {
            () = shutdown.wait() => break None,
            outcome = attempt() => outcome,
        };
        match outcome {
            Ok(value) => break Some(value),
            Err(error) => note_failure(name, &last, attempts, backoff, &error),
        }
        tokio::select! {
            () = shutdown.wait() => break None,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    };
    stop.trigger();
    server
        .await
        .context("start-up server panicked")?
        .context("start-up server failed")?;
    if result.is_some() && attempts > 1 {
        tracing::info!(attempts, "{name} reachable; starting");
    }
    Ok(result)
}
