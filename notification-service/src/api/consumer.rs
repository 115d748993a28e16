//! `GET /consumer/status`: state, counters, and offsets and lag per assigned partition.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::consumer::{Counters, PartitionStatus, partition_status};

pub fn router() -> Router<AppState> {
    Router::new().route("/consumer/status", get(status))
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
    Json(ConsumerStatus {
        group: state.group_id.clone(),
        topic: state.topic.clone(),
        counters: state.status.snapshot(),
        total_lag: partitions.iter().map(|p| p.lag).sum(),
        partitions,
        partitions_error,
    })
}
