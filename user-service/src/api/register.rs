//! `POST /register/`: validate, commit user + outbox row, wake the relay, answer 201.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Router, middleware};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use service_kit::db::within_deadline;
use service_kit::http::{ApiJson, ForwardedPrefix};
use service_kit::limits::{RateLimiter, rate_limit};
use service_kit::problem::Problem;
use utoipa::ToSchema;
use uuid::Uuid;

use super::AppState;
use super::error::ApiError;
use crate::domain::NewUser;
use crate::store::{RegisterError, StoredResponse, User};

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

pub fn router(rate_limiter: Option<RateLimiter>) -> Router<AppState> {
    let router = Router::new()
        .route("/register/", post(register))
        .route("/register", post(register));
    match rate_limiter {
        Some(limiter) => router.route_layer(middleware::from_fn_with_state(limiter, rate_limit)),
        None => router,
    }
}

/// Register a user.
///
/// With an `Idempotency-Key` header, a retry of the same request gets the same answer
/// (even after a restart) instead of a second registration or a 409.
#[utoipa::path(
    post,
    path = "/register/",
    request_body = RegisterRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: same key and body, same answer")),
    responses(
        (status = 201, description = "Registered", body = UserResponse,
         headers(("Location" = String, description = "Path of the new user, behind a gateway with its prefix (`X-Forwarded-Prefix`)"))),
        (status = 400, description = "Malformed JSON or Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Email already registered", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 16 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or a reused Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many registrations from this client", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn register(
    State(state): State<AppState>,
    prefix: ForwardedPrefix,
    headers: HeaderMap,
    ApiJson(request): ApiJson<RegisterRequest>,
) -> Result<Response, ApiError> {
    let mut response = within_deadline(register_within_deadline(state, headers, request)).await?;
    // The stored `Location` is the service's own path; behind a gateway that stripped a
    // prefix, the client needs it back in front.
    if !prefix.as_str().is_empty()
        && let Some(location) = response.headers().get(header::LOCATION)
        && let Ok(link) = HeaderValue::try_from(prefix.link(location.to_str().unwrap_or_default()))
    {
        response.headers_mut().insert(header::LOCATION, link);
    }
    Ok(response)
}

async fn register_within_deadline(
    state: AppState,
    headers: HeaderMap,
    request: RegisterRequest,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let fingerprint = serde_json::json!([request.user_name, request.email]).to_string();
    if let Some(key) = &key
        && let Some(stored) = state.store.stored_response(key).await?
    {
        return replay(stored, &fingerprint);
    }
    let new_user = NewUser::parse(&request.user_name, &request.email).map_err(ApiError::Invalid)?;
    let user = User::new(&new_user);
    let response = StoredResponse {
        request: fingerprint.clone(),
        status: StatusCode::CREATED.as_u16(),
        location: format!("/users/{}", user.user_id),
        body: serde_json::to_string(&UserResponse::from(user.clone())).unwrap_or_default(),
    };
    // The event continues this request's trace: the server span's context (which already
    // continues an incoming `traceparent`), or with traces off the caller's header as is.
    let traceparent =
        service_kit::telemetry::traceparent(&tracing::Span::current()).or_else(|| {
            headers
                .get(service_kit::telemetry::TRACEPARENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        });
    let remember = key.as_deref().map(|k| (k, &response));
    match state.store.register(&user, traceparent, remember).await {
        Ok(()) => {}
        Err(RegisterError::DuplicateEmail) => {
            return Err(ApiError::DuplicateEmail);
        }
        // A concurrent request with the same key won the race: answer as it did.
        Err(RegisterError::KeyInUse) => {
            return replay_key(&state, key.as_deref(), &fingerprint).await;
        }
        Err(RegisterError::Db(error)) => return Err(error.into()),
    }
    state.metrics.users_registered.inc();
    state.relay_wake.notify_one();
    Ok(json_response(
        StatusCode::CREATED,
        response.location,
        response.body,
    ))
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().map_err(|_| ApiError::BadIdempotencyKey)?;
    let valid = (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic());
    if valid {
        Ok(Some(key.to_owned()))
    } else {
        Err(ApiError::BadIdempotencyKey)
    }
}

async fn replay_key(
    state: &AppState,
    key: Option<&str>,
    fingerprint: &str,
) -> Result<Response, ApiError> {
    match key {
        Some(key) => match state.store.stored_response(key).await? {
            Some(stored) => replay(stored, fingerprint),
            None => Err(ApiError::KeyInProgress),
        },
        None => Err(ApiError::DuplicateEmail),
    }
}

/// The remembered answer, if the request is the one it answered.
fn replay(stored: StoredResponse, fingerprint: &str) -> Result<Response, ApiError> {
    if stored.request != fingerprint {
        return Err(ApiError::KeyReused);
    }
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::CREATED);
    Ok(json_response(status, stored.location, stored.body))
}

fn json_response(status: StatusCode, location: String, body: String) -> Response {
    (
        status,
        [
            (header::LOCATION, location),
            (header::CONTENT_TYPE, "application/json".to_owned()),
        ],
        body,
    )
        .into_response()
}
