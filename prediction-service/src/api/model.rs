//! `GET /model`: what is serving.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use super::AppState;
use crate::model::ModelInfo;

pub fn router() -> Router<AppState> {
    Router::new().route("/model", get(model))
}

/// The model serving now: name, version, sha256 of its file, features, classes, load time.
#[utoipa::path(get, path = "/model", responses((status = 200, body = ModelInfo)))]
pub async fn model(State(state): State<AppState>) -> Json<ModelInfo> {
    Json(state.model.current().info.clone())
}
