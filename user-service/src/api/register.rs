//! `POST /register/`: validate, commit user + outbox row, wake the relay, answer 201.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use service_kit::http::ApiJson;
use service_kit::problem::Problem;
use utoipa::ToSchema;
use uuid::Uuid;

use super::AppState;
use crate::domain::{FieldErrors, NewUser};
use crate::store::{RegisterError, User};

/// Registration request. Unknown fields are ignored, never bound.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    #[schema(example = "Ada Lovelace")]
    pub user_name: String,
    #[schema(example = "ada@example.com")]
    pub email: String,
}

/// A registered user.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserResponse {
    pub user_id: Uuid,
    pub user_name: String,
    pub email: String,
    pub created_at: DateTime<Utc>,
}

impl From<User> for UserResponse {
    fn from(user: User) -> Self {
        Self {
            user_id: user.user_id,
            user_name: user.user_name.as_ref().to_owned(),
            email: user.email.as_ref().to_owned(),
            created_at: user.created_at,
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/register/", post(register))
        .route("/register", post(register))
}

/// Why a registration was refused; each variant documents its status.
#[derive(Debug, thiserror::Error)]
enum RegisterFailure {
    /// 422: fields failed validation.
    #[error("invalid fields")]
    Invalid(FieldErrors),
    /// 409: the email is taken (case-insensitively).
    #[error("duplicate email")]
    Duplicate,
    /// 503: the database is unreachable or too slow.
    #[error("database unavailable")]
    Unavailable(#[source] service_kit::db::DbError),
    /// 500: anything else; the cause is logged, never returned.
    #[error("registration failed")]
    Internal(#[source] service_kit::db::DbError),
}

impl IntoResponse for RegisterFailure {
    fn into_response(self) -> Response {
        match self {
            Self::Invalid(errors) => Problem::validation(errors),
            Self::Duplicate => Problem::new(
                StatusCode::CONFLICT,
                "A user with this email already exists.",
            ),
            Self::Unavailable(error) => {
                tracing::warn!(error = %error, "registration: database unavailable");
                Problem::unavailable("The user store is unavailable; retry shortly.", 2)
            }
            Self::Internal(error) => {
                tracing::error!(error = ?error, "registration failed");
                Problem::internal()
            }
        }
        .into_response()
    }
}

/// Register a user.
#[utoipa::path(
    post,
    path = "/register/",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered", body = UserResponse,
         headers(("Location" = String, description = "URL of the new user"))),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Email already registered", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 16 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<RegisterRequest>,
) -> Result<Response, RegisterFailure> {
    let new_user =
        NewUser::parse(&request.user_name, &request.email).map_err(RegisterFailure::Invalid)?;
    let traceparent = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let user = state
        .store
        .register(&new_user, traceparent)
        .await
        .map_err(|e| match e {
            RegisterError::DuplicateEmail => RegisterFailure::Duplicate,
            RegisterError::Db(e) if e.is_unavailable() => RegisterFailure::Unavailable(e),
            RegisterError::Db(e) => RegisterFailure::Internal(e),
        })?;
    state.metrics.users_registered.inc();
    state.relay_wake.notify_one();
    let location = format!("/users/{}", user.user_id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(UserResponse::from(user)),
    )
        .into_response())
}
