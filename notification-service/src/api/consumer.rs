//! `GET /consumer/status`: state, counters, and offsets and lag per assigned partition.
//! `POST /consumer/pause`, `POST /consumer/resume` (admin): stop and restart fetching
//! while the consumer stays in its group.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use rdkafka::consumer::Consumer;
use serde::Serialize;
use service_kit::auth::{AdminToken, require_admin};
use service_kit::problem::Problem;
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use crate::consumer::{ConsumerState, Counters, PartitionStatus, partition_status, set_paused};

pub fn router(admin: AdminToken) -> Router<AppState> {
    let control = Router::new()
        .route("/consumer/pause", post(pause))
        .route("/consumer/resume", post(resume))
        .route_layer(middleware::from_fn_with_state(admin, require_admin));
    Router::new()
        .route("/consumer/status", get(status))
        .merge(control)
}

/// The consumer as the service sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsumerStatus {
    pub group: String,
    pub topic: String,
    #[serde(flatten)]
    pub counters: Counters,
    pub partitions: Vec<PartitionStatus>,
    /// Sum of the partitions' lag.
    pub total_lag: i64,
    /// Why partitions could not be read, if they could not.
    pub partitions_error: Option<String>,
}

/// Consumer state, counters and lag per partition.
#[utoipa::path(get, path = "/consumer/status", responses((status = 200, body = ConsumerStatus)))]
pub async fn status(State(state): State<AppState>) -> Json<ConsumerStatus> {
    let consumer = state.consumer.clone();
    let read = tokio::task::spawn_blocking(move || partition_status(&consumer)).await;
    let (partitions, partitions_error) = match read {
        Ok(Ok(partitions)) => (partitions, None),
        Ok(Err(error)) => (Vec::new(), Some(error.to_string())),
        Err(error) => (Vec::new(), Some(error.to_string())),
    };
    let mut counters = state.status.snapshot();
    if counters.state == ConsumerState::Running && state.consumer.context().is_paused() {
        counters.state = ConsumerState::Paused;
    }
    Json(ConsumerStatus {
        group: state.group_id.clone(),
        topic: state.topic.clone(),
        counters,
        total_lag: partitions.iter().map(|p| p.lag).sum(),
        partitions,
        partitions_error,
    })
}

/// The consumer's fetching state after a pause or resume.
#[derive(Debug, Serialize, ToSchema)]
pub struct ControlState {
    /// `paused` or `running`.
    pub state: ConsumerState,
}

/// Stops fetching from every assigned partition (and partitions assigned later); the
/// consumer stays in its group, so no rebalance happens. Idempotent.
#[utoipa::path(
    post,
    path = "/consumer/pause",
    security(("admin_token" = [])),
    responses(
        (status = 200, body = ControlState),
        (status = 401, body = Problem, description = "Missing or wrong token"),
        (status = 403, body = Problem, description = "No ADMIN_TOKEN is configured"),
        (status = 503, body = Problem, description = "Kafka client error"),
    )
)]
pub async fn pause(State(state): State<AppState>) -> Result<Json<ControlState>, ApiError> {
    control(state, true).await
}

/// Fetches again from every assigned partition, where it stopped. Idempotent.
#[utoipa::path(
    post,
    path = "/consumer/resume",
    security(("admin_token" = [])),
    responses(
        (status = 200, body = ControlState),
        (status = 401, body = Problem, description = "Missing or wrong token"),
        (status = 403, body = Problem, description = "No ADMIN_TOKEN is configured"),
        (status = 503, body = Problem, description = "Kafka client error"),
    )
)]
pub async fn resume(State(state): State<AppState>) -> Result<Json<ControlState>, ApiError> {
    control(state, false).await
}

async fn control(state: AppState, paused: bool) -> Result<Json<ControlState>, ApiError> {
    let consumer = state.consumer.clone();
    tokio::task::spawn_blocking(move || set_paused(&consumer, paused))
        .await
        .map_err(ApiError::ConsumerTask)?
        .map_err(|source| ApiError::ConsumerRefused { paused, source })?;
    Ok(Json(ControlState {
        state: if paused {
            ConsumerState::Paused
        } else {
            ConsumerState::Running
        },
    }))
}
