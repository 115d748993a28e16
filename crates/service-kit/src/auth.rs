//! Bearer-token guard for admin endpoints and endpoints that return personal data.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::problem::Problem;

/// The configured admin token; `None` keeps admin endpoints closed.
#[derive(Debug, Clone, Default)]
pub struct AdminToken(Option<Arc<str>>);

impl AdminToken {
    pub fn new(token: Option<&str>) -> Self {
        Self(token.filter(|t| !t.is_empty()).map(Arc::from))
    }

    fn verify(&self, presented: &str) -> Verdict {
        match &self.0 {
            None => Verdict::Disabled,
            // Constant-time so response timing does not reveal a prefix of the token.
            Some(token) if bool::from(token.as_bytes().ct_eq(presented.as_bytes())) => {
                Verdict::Allowed
            }
            Some(_) => Verdict::Denied,
        }
    }
}

enum Verdict {
    Allowed,
    Denied,
    Disabled,
}

/// Second header that carries the admin token. The Kubernetes API server removes
/// `Authorization` from every request it has authenticated, so a call that reaches a pod
/// through the API server's pod proxy (`platformctl consumer pause` against a cluster)
/// cannot carry the token there.
pub const ADMIN_TOKEN_HEADER: &str = "x-admin-token";

/// Middleware: 401 without valid credentials, 403 when no admin token is configured.
/// The token is read from `Authorization: Bearer`, else from `X-Admin-Token`.
pub async fn require_admin(
    State(token): State<AdminToken>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| {
            headers
                .get(ADMIN_TOKEN_HEADER)
                .and_then(|v| v.to_str().ok())
        })
        .unwrap_or_default();
    match token.verify(presented) {
        Verdict::Allowed => next.run(request).await,
        Verdict::Disabled => Problem::new(
            StatusCode::FORBIDDEN,
            "Admin endpoints are disabled: no ADMIN_TOKEN is configured.",
        )
        .into_response(),
        Verdict::Denied => unauthorized(),
    }
}

fn unauthorized() -> Response {
    let mut response = Problem::new(
        StatusCode::UNAUTHORIZED,
        "A valid `Authorization: Bearer` admin token is required.",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}
