//! `application/problem+json` (RFC 9457) error responses.

use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::DbError;

pub const CONTENT_TYPE: &str = "application/problem+json";

/// `Retry-After` (seconds) of a 503 for an unavailable database.
const STORE_RETRY_AFTER_SECONDS: u64 = 2;

/// An error answer. `detail` is always written for the client: internal causes go to the
/// log, never here.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type; `about:blank` means "see the status".
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Messages per invalid field, for validation errors.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, Vec<String>>,
    #[serde(skip)]
    retry_after_seconds: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            problem_type: "about:blank".to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: Some(detail.into()),
            errors: BTreeMap::new(),
            retry_after_seconds: None,
        }
    }

    /// A 422 with messages per field.
    pub fn validation(errors: BTreeMap<String, Vec<String>>) -> Self {
        let mut problem = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The request body has invalid fields.",
        );
        problem.errors = errors;
        problem
    }

    /// A 503 telling the client when to retry.
    pub fn unavailable(detail: impl Into<String>, retry_after_seconds: u64) -> Self {
        let mut problem = Self::new(StatusCode::SERVICE_UNAVAILABLE, detail);
        problem.retry_after_seconds = Some(retry_after_seconds);
        problem
    }

    /// Tells the client when to retry (`Retry-After`, seconds).
    pub fn retry_after(&mut self, seconds: u64) {
        self.retry_after_seconds = Some(seconds);
    }

    /// A 500 that says nothing about the cause (which the caller logs).
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server could not handle the request.",
        )
    }

    /// The answer to a failed call of a service's store (`store` names it in the detail:
    /// "user", "notification"): 503 with `Retry-After` when the database is unreachable
    /// or too slow, which a retry may outlast; else a 500 that names no cause. The cause
    /// is logged either way.
    pub fn store_failure(store: &str, error: &DbError) -> Self {
        if error.is_unavailable() {
            tracing::warn!(%error, store, "store unavailable");
            Self::unavailable(
                format!("The {store} store is unavailable; retry shortly."),
                STORE_RETRY_AFTER_SECONDS,
            )
        } else {
            tracing::error!(?error, store, "store call failed");
            Self::internal()
        }
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry_after = self.retry_after_seconds;
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn parts(problem: Problem) -> (StatusCode, Option<String>, String) {
        let response = problem.into_response();
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap_or_default();
        (
            status,
            retry_after,
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    #[tokio::test]
    async fn an_unavailable_store_is_a_503_with_retry_after() {
        let error = DbError::Timeout(Duration::from_secs(1));
        let (status, retry_after, body) = parts(Problem::store_failure("user", &error)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after.as_deref(), Some("2"));
        assert_eq!(
            body,
            r#"{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"The user store is unavailable; retry shortly."}"#
        );
    }

    #[tokio::test]
    async fn any_other_store_failure_is_a_500_that_names_no_cause() {
        let error = DbError::Sqlx(sqlx::Error::RowNotFound);
        let (status, retry_after, body) = parts(Problem::store_failure("user", &error)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(retry_after, None);
        assert_eq!(
            body,
            r#"{"type":"about:blank","title":"Internal Server Error","status":500,"detail":"The server could not handle the request."}"#
        );
    }
}
