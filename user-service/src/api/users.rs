//! `GET /users/{user_id}` and `GET /users/`: personal data, so admin token only.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router, middleware};
use serde::{Deserialize, Serialize};
use service_kit::auth::{AdminToken, require_admin};
use service_kit::http::ApiQuery;
use service_kit::problem::Problem;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::AppState;
use super::error::ApiError;
use super::register::UserResponse;

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 1000;

pub fn router(admin: AdminToken) -> Router<AppState> {
    Router::new()
        .route("/users/{user_id}", get(get_user))
        .route("/users/", get(list_users))
        .route("/users", get(list_users))
        .route_layer(middleware::from_fn_with_state(admin, require_admin))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListParams {
    /// Page size, 1-1000 (default 50).
    limit: Option<u32>,
    /// Return users after this user id (the `next_after` of the previous page).
    after: Option<Uuid>,
}

/// One page of users.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserPage {
    pub users: Vec<UserResponse>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub next_after: Option<Uuid>,
}

/// Get one user.
#[utoipa::path(
    get,
    path = "/users/{user_id}",
    params(("user_id" = Uuid, Path, description = "User id")),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = UserResponse),
        (status = 400, body = Problem, description = "Not a UUID", content_type = "application/problem+json"),
        (status = 401, body = Problem, description = "Missing or wrong token", content_type = "application/problem+json"),
        (status = 404, body = Problem, description = "No such user", content_type = "application/problem+json"),
    )
)]
pub async fn get_user(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
) -> Result<Json<UserResponse>, ApiError> {
    let user_id = Uuid::parse_str(&user_id).map_err(|_| ApiError::BadUserId)?;
    match state.store.get(user_id).await? {
        Some(user) => Ok(Json(user.into())),
        None => Err(ApiError::UserNotFound),
    }
}

/// List users, oldest first, with keyset pagination.
#[utoipa::path(
    get,
    path = "/users/",
    params(ListParams),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = UserPage),
        (status = 400, body = Problem, description = "Bad query parameters", content_type = "application/problem+json"),
        (status = 401, body = Problem, description = "Missing or wrong token", content_type = "application/problem+json"),
    )
)]
pub async fn list_users(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<UserPage>, ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let users = state.store.list(limit, params.after).await?;
    let next_after = (users.len() == limit as usize)
        .then(|| users.last().map(|u| u.user_id))
        .flatten();
    Ok(Json(UserPage {
        users: users.into_iter().map(UserResponse::from).collect(),
        next_after,
    }))
}
