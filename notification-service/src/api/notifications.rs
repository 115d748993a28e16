//! `GET /notifications?limit=N`: latest deliveries (personal data: admin token).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router, middleware};
use serde::Deserialize;
use service_kit::auth::{AdminToken, require_admin};
use service_kit::http::ApiQuery;
use service_kit::problem::Problem;
use utoipa::IntoParams;

use super::AppState;
use super::error::ApiError;
use crate::store::Notification;

pub fn router(admin: AdminToken) -> Router<AppState> {
    Router::new()
        .route("/notifications", get(list))
        .route("/notifications/", get(list))
        .route_layer(middleware::from_fn_with_state(admin, require_admin))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListParams {
    /// How many, 1-1000 (default 50).
    limit: Option<u32>,
}

/// Latest notifications, newest first.
#[utoipa::path(
    get,
    path = "/notifications",
    params(ListParams),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = Vec<Notification>),
        (status = 400, body = Problem, description = "Bad query parameters"),
        (status = 401, body = Problem, description = "Missing or wrong token"),
        (status = 503, body = Problem, description = "Database unavailable"),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<Vec<Notification>>, ApiError> {
    let limit = params.limit.unwrap_or(50).clamp(1, 1000);
    Ok(Json(state.store.latest(limit).await?))
}
