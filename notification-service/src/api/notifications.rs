//! `GET /notifications?limit=N`: latest deliveries (personal data: admin token).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router, middleware};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use service_kit::auth::{AdminToken, require_admin};
use service_kit::problem::Problem;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::AppState;
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

/// A delivered welcome notification.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NotificationView {
    pub event_id: Uuid,
    pub user_id: Uuid,
    pub user_name: String,
    pub email: String,
    pub channel: String,
    pub event_time: DateTime<Utc>,
    pub delivered_at: DateTime<Utc>,
}

impl From<Notification> for NotificationView {
    fn from(n: Notification) -> Self {
        Self {
            event_id: n.event_id,
            user_id: n.user_id,
            user_name: n.user_name,
            email: n.email,
            channel: n.channel,
            event_time: n.event_time,
            delivered_at: n.delivered_at,
        }
    }
}

/// Latest notifications, newest first.
#[utoipa::path(
    get,
    path = "/notifications",
    params(ListParams),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = Vec<NotificationView>),
        (status = 400, body = Problem, description = "Bad query parameters"),
        (status = 401, body = Problem, description = "Missing or wrong token"),
        (status = 503, body = Problem, description = "Database unavailable"),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<NotificationView>>, Problem> {
    let Query(params) = params.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let limit = params.limit.unwrap_or(50).clamp(1, 1000);
    match state.store.latest(limit).await {
        Ok(list) => Ok(Json(list.into_iter().map(NotificationView::from).collect())),
        Err(error) if error.is_unavailable() => {
            tracing::warn!(%error, "notification store unavailable");
            Err(Problem::unavailable(
                "The notification store is unavailable; retry shortly.",
                2,
            ))
        }
        Err(error) => {
            tracing::error!(?error, "notification query failed");
            Err(Problem::internal())
        }
    }
}
