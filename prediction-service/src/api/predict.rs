//! `POST /predict`: one request, or a JSON array of requests answered in the same order.

use std::collections::BTreeMap;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;
use service_kit::problem::Problem;
use utoipa::ToSchema;
use uuid::Uuid;

use super::AppState;
use crate::metrics::{Outcome, Transport};
use crate::request::{Answer, Request, parse_json, validate};

pub fn router(max_body_bytes: usize) -> Router<AppState> {
    Router::new().route(
        "/predict",
        post(predict).layer(DefaultBodyLimit::max(max_body_bytes)),
    )
}

/// A request (documentation only: the body is validated by hand to name every problem).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PredictRequest {
    /// Optional over HTTP; answers carry a generated one when absent.
    request_id: Option<Uuid>,
    /// 13 finite numbers in the order of `GET /model`'s `features`, or an object with the
    /// 13 named features.
    features: Vec<f64>,
}

/// Predicts the class of one wine, or of a batch (a JSON array of requests, up to
/// `PREDICT_MAX_BATCH`); a batch is answered by an array in the same order. A batch with
/// any invalid request is refused as a whole, each problem named under `[index].field`.
#[utoipa::path(
    post,
    path = "/predict",
    request_body(content = PredictRequest, description = "One request, or an array of them"),
    responses(
        (status = 200, description = "The answer (an array of answers for a batch)", body = Answer),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 413, description = "Body too large", body = Problem),
        (status = 415, description = "Not JSON", body = Problem),
        (status = 422, description = "Invalid request or batch", body = Problem),
    )
)]
pub async fn predict(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let started = Instant::now();
    let body = body.map_err(|r| Problem::new(r.status(), r.body_text()))?;
    if !is_json(&headers) {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Expected a body with content-type application/json.",
        ));
    }
    let value = parse_json(&body)
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, format!("Malformed JSON: {e}")))?;
    let (items, batch) = match value {
        Value::Array(items) => (items, true),
        single => (vec![single], false),
    };
    let requests = requests(&items, batch, state.max_batch).inspect_err(|_| {
        for _ in 0..items.len().max(1) {
            state
                .metrics
                .handled(Transport::Http, Outcome::Invalid, started.elapsed());
        }
    })?;
    let answers = answer(&state, requests);
    for _ in &answers {
        state
            .metrics
            .handled(Transport::Http, Outcome::Success, started.elapsed());
    }
    Ok(if batch {
        Json(answers).into_response()
    } else {
        Json(answers.into_iter().next()).into_response()
    })
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Validates every item; a 422 naming each problem if any is invalid.
fn requests(items: &[Value], batch: bool, max_batch: usize) -> Result<Vec<Request>, Problem> {
    if batch && items.is_empty() {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The batch is empty.",
        ));
    }
    if items.len() > max_batch {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "A batch of {} requests is over the limit of {max_batch}.",
                items.len()
            ),
        ));
    }
    let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut valid = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match validate(item, false) {
            Ok(request) => valid.push(request),
            Err(invalid) => {
                for (field, messages) in invalid.errors {
                    let field = match (batch, field.is_empty()) {
                        (false, _) => field,
                        (true, true) => format!("[{i}]"),
                        (true, false) => format!("[{i}].{field}"),
                    };
                    errors.entry(field).or_default().extend(messages);
                }
            }
        }
    }
    if errors.is_empty() {
        return Ok(valid);
    }
    let summary = errors
        .iter()
        .flat_map(|(f, ms)| ms.iter().map(move |m| format!("{f}: {m}")))
        .collect::<Vec<_>>()
        .join("; ");
    let mut problem = Problem::validation(errors);
    problem.detail = Some(summary);
    Err(problem)
}

/// Evaluates the requests in one call of the model.
fn answer(state: &AppState, requests: Vec<Request>) -> Vec<Answer> {
    let model = state.model.current();
    let rows: Vec<_> = requests.iter().map(|r| r.features).collect();
    state.metrics.batch_size.observe(rows.len() as f64);
    requests
        .into_iter()
        .zip(model.predict(&rows))
        .map(|(request, prediction)| {
            let id = request.request_id.unwrap_or_else(Uuid::now_v7).to_string();
            Answer::success(id, prediction, &model.info.version)
        })
        .collect()
}
