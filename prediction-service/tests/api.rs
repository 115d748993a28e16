//! The HTTP API, called in-process through the complete router (`oneshot`), with the
//! committed model and a Kafka backend for readiness.

mod helpers;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use prediction_service::Application;
use prediction_service::request::FEATURES;
use serde_json::{Value, json};
use tower::ServiceExt;

use helpers::{Backends, parity_rows};

struct Api {
    router: Router,
    _backends: Backends,
}

async fn api(max_batch: usize) -> Api {
    let backends = Backends::new().await;
    let mut config = backends.config();
    config.max_batch = max_batch;
    config.max_request_bytes = 512;
    let app = Application::build(&config).await.expect("build");
    Api {
        router: app.router(),
        _backends: backends,
    }
}

#[tokio::test]
async fn without_a_broker_predict_answers_and_readiness_is_degraded_naming_kafka() {
    let backends = Backends::new().await;
    let mut config = backends.config();
    // A port nothing listens on: the broker is "down".
    config.kafka_bootstrap_servers = "127.0.0.1:1".into();
    let app = Application::build(&config).await.expect("build");
    let api = Api {
        router: app.router(),
        _backends: backends,
    };

    let ready = api.get("/health/ready").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    assert_eq!(ready.body["status"], "degraded", "{}", ready.body);
    assert_eq!(ready.body["checks"]["kafka"]["ok"], false);
    assert_eq!(ready.body["checks"]["kafka"]["required"], false);
    assert!(ready.body["checks"]["kafka"]["error"].is_string());
    assert_eq!(ready.body["checks"]["model"]["ok"], true);
    let (_, rows) = parity_rows();
    let answer = api.predict(&json!({"features": rows[0].raw})).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["prediction"], rows[0].class);
    let metrics = api.get("/metrics").await.body;
    let text = metrics.as_str().expect("text");
    let gauges = service_kit::testing::dependency_gauges(text);
    assert_eq!(gauges, ["kafka=0", "model=1"], "{text}");
}

struct Reply {
    status: StatusCode,
    content_type: String,
    body: Value,
}

impl Api {
    async fn call(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(Body::from(body)).expect("request"))
            .await
            .expect("response");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Reply {
            status,
            content_type,
            body,
        }
    }

    async fn predict(&self, body: &Value) -> Reply {
        self.predict_raw(serde_json::to_vec(body).expect("json"))
            .await
    }

    async fn predict_raw(&self, body: Vec<u8>) -> Reply {
        self.call("POST", "/predict", Some("application/json"), body)
            .await
    }

    async fn get(&self, path: &str) -> Reply {
        self.call("GET", path, None, Vec::new()).await
    }
}

fn assert_problem(reply: &Reply, status: StatusCode) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.content_type, "application/problem+json");
    assert_eq!(reply.body["status"], status.as_u16());
}

#[tokio::test]
async fn one_request_is_answered_like_scikit_learn() {
    let api = api(256).await;
    let (_, rows) = parity_rows();
    let id = "4a1f8c9e-2b7d-4e3a-9c1f-0123456789ab";
    let reply = api
        .predict(&json!({"request_id": id, "features": rows[60].raw}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["request_id"], id);
    assert_eq!(reply.body["status"], "success");
    assert_eq!(reply.body["prediction"], rows[60].class);
    assert_eq!(reply.body["model_version"], "1");
    let probabilities: Vec<f64> =
        serde_json::from_value(reply.body["probabilities"].clone()).expect("probabilities");
    for (ours, theirs) in probabilities.iter().zip(&rows[60].probabilities) {
        assert!((ours - theirs).abs() <= 1e-5);
    }
}

#[tokio::test]
async fn named_features_and_a_generated_request_id() {
    let api = api(256).await;
    let (_, rows) = parity_rows();
    let named: serde_json::Map<String, Value> = FEATURES
        .iter()
        .zip(&rows[150].raw)
        .map(|(name, v)| ((*name).to_owned(), json!(v)))
        .collect();
    let reply = api.predict(&json!({"features": named})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["prediction"], rows[150].class);
    let id = reply.body["request_id"].as_str().expect("request id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
}

#[tokio::test]
async fn a_batch_is_answered_in_order() {
    let api = api(256).await;
    let (_, rows) = parity_rows();
    let batch: Vec<Value> = rows.iter().map(|r| json!({"features": r.raw})).collect();
    let reply = api.predict(&Value::Array(batch)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let answers = reply.body.as_array().expect("array");
    assert_eq!(answers.len(), 178);
    for (answer, row) in answers.iter().zip(&rows) {
        assert_eq!(answer["prediction"], row.class);
    }
}

#[tokio::test]
async fn every_kind_of_bad_input_is_a_422_naming_it() {
    let api = api(256).await;
    let id = "4a1f8c9e-2b7d-4e3a-9c1f-0123456789ab";
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (
            json!({"features": [1, 2, 3]}).to_string().into_bytes(),
            "features",
            "expected 13 values, got 3",
        ),
        (
            br#"{"features": [NaN,1,1,1,1,1,1,1,1,1,1,1,1]}"#.to_vec(),
            "features[0]",
            "(alcohol) is NaN: values must be finite",
        ),
        (
            br#"{"features": [1,1,1,1,1,1,1,1,1,1,1,1,-Infinity]}"#.to_vec(),
            "features[12]",
            "(proline) is -Infinity: values must be finite",
        ),
        (
            json!({"features": [1,1,"x",1,1,1,1,1,1,1,1,1,1]})
                .to_string()
                .into_bytes(),
            "features[2]",
            "(ash) must be a number, got a string",
        ),
        (
            json!({"request_id": "not-a-uuid", "features": [1,1,1,1,1,1,1,1,1,1,1,1,1]})
                .to_string()
                .into_bytes(),
            "request_id",
            "is not a UUID",
        ),
        (
            json!({"request_id": id, "features": {"alcohol": 1}})
                .to_string()
                .into_bytes(),
            "features.proline",
            "is missing",
        ),
        (
            json!({"request_id": id}).to_string().into_bytes(),
            "features",
            "is missing",
        ),
    ];
    for (body, field, message) in cases {
        let reply = api.predict_raw(body).await;
        assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY);
        let messages = &reply.body["errors"][field];
        assert!(
            messages
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m == message)),
            "{field}: expected {message:?} in {}",
            reply.body
        );
    }
}

#[tokio::test]
async fn a_batch_with_one_bad_request_names_its_index() {
    let api = api(256).await;
    let (_, rows) = parity_rows();
    let batch = json!([{"features": rows[0].raw}, {"features": [1]}]);
    let reply = api.predict(&batch).await;
    assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        reply.body["errors"]["[1].features"][0],
        "expected 13 values, got 1"
    );
}

#[tokio::test]
async fn batches_are_bounded_and_bodies_checked() {
    let api = api(2).await;
    let (_, rows) = parity_rows();
    let three: Vec<Value> = rows[..3]
        .iter()
        .map(|r| json!({"features": r.raw}))
        .collect();
    let reply = api.predict(&Value::Array(three)).await;
    assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        reply.body["detail"]
            .as_str()
            .expect("detail")
            .contains("over the limit of 2")
    );
    assert_problem(
        &api.predict(&json!([])).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    assert_problem(
        &api.predict_raw(b"{not json".to_vec()).await,
        StatusCode::BAD_REQUEST,
    );
    let text = api
        .call("POST", "/predict", Some("text/plain"), b"{}".to_vec())
        .await;
    assert_problem(&text, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Two requests of at most 512 bytes each.
    let huge = api.predict_raw(vec![b' '; 2 * 512 + 1]).await;
    assert_problem(&huge, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn model_health_metrics_and_docs() {
    let api = api(256).await;
    let model = api.get("/model").await;
    assert_eq!(model.status, StatusCode::OK);
    let card: Value = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../models/wine-forest.json"
        ))
        .expect("card"),
    )
    .expect("card JSON");
    assert_eq!(model.body["name"], "wine-forest");
    assert_eq!(model.body["version"], "1");
    assert_eq!(model.body["sha256"], card["sha256"]);
    assert_eq!(model.body["features"], card["features"]);
    assert_eq!(model.body["classes"], json!([0, 1, 2]));
    assert!(model.body["loaded_at"].is_string());

    let ready = api.get("/health/ready").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    assert_eq!(ready.body["status"], "ready", "{}", ready.body);
    assert_eq!(ready.body["checks"]["model"]["ok"], true);
    assert_eq!(ready.body["checks"]["model"]["required"], true);
    assert_eq!(ready.body["checks"]["kafka"]["ok"], true);
    assert_eq!(ready.body["checks"]["kafka"]["required"], false);
    assert_eq!(api.get("/health/live").await.status, StatusCode::OK);

    let (_, rows) = parity_rows();
    api.predict(&json!({"features": rows[0].raw})).await;
    api.predict(&json!({"features": [1]})).await;
    let metrics = api.get("/metrics").await.body;
    let text = metrics.as_str().expect("text");
    for series in [
        r#"predictions_total{outcome="success",transport="http"} 1"#,
        r#"predictions_total{outcome="invalid",transport="http"} 1"#,
        "prediction_latency_seconds_bucket{transport=\"http\"",
        "prediction_batch_size_bucket",
        &format!(
            r#"model_info{{sha256="{}",version="1"}} 1"#,
            card["sha256"].as_str().expect("sha")
        ),
        r#"model_reloads_total{outcome="failure"} 0"#,
        r#"dependency_up{dependency="kafka"} 1"#,
        r#"dependency_up{dependency="model"} 1"#,
    ] {
        assert!(text.contains(series), "{series} missing from\n{text}");
    }
    let openapi = api.get("/openapi.json").await.body;
    for path in ["/predict", "/model", "/health/ready"] {
        assert!(openapi["paths"][path].is_object(), "{path} not documented");
    }
}
