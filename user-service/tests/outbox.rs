//! The outbox: every committed registration reaches Kafka exactly once, with the event
//! contract's headers, even across restarts and while Kafka is unreachable.

mod helpers;

use std::collections::HashSet;
use std::time::Duration;

use helpers::{Backends, read_topic, read_topic_exactly, spawn_app};
use reqwest::StatusCode;
use serde_json::Value;
use service_kit::kafka::KafkaArgs;
use service_kit::testing::metric_value;

const WAIT: Duration = Duration::from_secs(30);

async fn register_many(app: &helpers::TestApp, prefix: &str, n: usize) -> HashSet<String> {
    let mut ids = HashSet::new();
    for i in 0..n {
        let response = app
            .register(
                &format!("{prefix} {i}"),
                &format!("{prefix}-{i}@example.com"),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.expect("json");
        ids.insert(body["user_id"].as_str().expect("id").to_owned());
    }
    ids
}

#[tokio::test]
async fn each_registration_is_published_once_with_cloudevents_headers() {
    let backends = Backends::new().await;
    let app = spawn_app(backends.config()).await;
    let ids = register_many(&app, "pub", 10).await;

    let messages = read_topic_exactly(&backends.kafka.args, 10, Duration::from_secs(10)).await;

    assert_eq!(messages.len(), 10, "exactly one message per registration");
    let keys: HashSet<_> = messages.iter().map(|m| m.key.clone()).collect();
    assert_eq!(keys, ids, "the key is the user id");
    let event_ids: HashSet<_> = messages.iter().filter_map(|m| m.header("ce_id")).collect();
    assert_eq!(event_ids.len(), 10, "each event has its own id");
    for m in &messages {
        assert_eq!(m.header("ce_specversion"), Some("1.0"));
        assert_eq!(m.header("ce_type"), Some(events::USER_REGISTERED_TYPE));
        assert_eq!(m.header("ce_source"), Some(events::USER_SERVICE_SOURCE));
        assert!(m.header("ce_time").is_some());
        assert_eq!(m.payload["user_id"].as_str(), Some(m.key.as_str()));
    }
    let metrics = app.metrics().await;
    assert_eq!(
        metric_value(&metrics, "outbox_published_total{outcome=\"ok\"}"),
        10.0
    );
    app.stop().await;
}

#[tokio::test]
async fn the_traceparent_of_the_request_travels_with_the_event() {
    let backends = Backends::new().await;
    let app = spawn_app(backends.config()).await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let response = app
        .client
        .post(app.url("/register/"))
        .header("traceparent", traceparent)
        .json(&serde_json::json!({"user_name": "Trace", "email": "trace@example.com"}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::CREATED);

    let messages = read_topic(&backends.kafka.args, 1, WAIT).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].header("traceparent"), Some(traceparent));
    app.stop().await;
}

#[tokio::test]
async fn rows_committed_while_the_relay_was_down_are_published_after_restart() {
    let backends = Backends::new().await;
    let mut without_relay = backends.config();
    without_relay.outbox_relay = false;
    let app = spawn_app(without_relay).await;
    let ids = register_many(&app, "late", 15).await;
    app.stop().await;
    assert!(
        read_topic(&backends.kafka.args, 1, Duration::from_secs(3))
            .await
            .is_empty(),
        "nothing published yet"
    );

    let app = spawn_app(backends.config()).await;
    let messages = read_topic_exactly(&backends.kafka.args, 15, Duration::from_secs(10)).await;

    assert_eq!(messages.len(), 15);
    assert_eq!(
        messages
            .iter()
            .map(|m| m.key.clone())
            .collect::<HashSet<_>>(),
        ids
    );
    app.stop().await;
}

#[tokio::test]
async fn registrations_succeed_while_kafka_is_unreachable_and_wait_in_the_outbox() {
    let backends = Backends::new().await;
    let mut config = backends.config();
    // A port nothing listens on: the broker is "down".
    config.kafka = KafkaArgs::new("127.0.0.1:1", backends.kafka.args.topic.clone());
    let app = spawn_app(config).await;

    register_many(&app, "offline", 3).await;
    // It serves registrations, so it stays ready (200), degraded, naming the broker.
    let ready = app.get("/health/ready", None).await;
    assert_eq!(ready.status(), StatusCode::OK);
    let ready: Value = ready.json().await.expect("json");
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert_eq!(ready["checks"]["kafka"]["ok"], false);
    assert_eq!(ready["checks"]["kafka"]["required"], false);
    assert!(ready["checks"]["kafka"]["error"].is_string(), "{ready}");
    assert_eq!(ready["checks"]["database"]["ok"], true);
    assert_eq!(ready["checks"]["database"]["required"], true);
    assert_eq!(app.dependency_gauges().await, ["database=1", "kafka=0"]);
    let backlog = service_kit::testing::eventually(WAIT, || async {
        app.metric("outbox_backlog").await == 3.0
    })
    .await;
    assert!(backlog, "the three events wait in the outbox");
    app.stop().await;
}

#[tokio::test]
async fn readiness_checks_database_and_kafka() {
    let backends = Backends::new().await;
    let app = spawn_app(backends.config()).await;
    let response = app.get("/health/ready", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"]["ok"], true);
    assert_eq!(body["checks"]["database"]["required"], true);
    assert_eq!(body["checks"]["kafka"]["ok"], true);
    assert_eq!(body["checks"]["kafka"]["required"], false);
    assert_eq!(app.dependency_gauges().await, ["database=1", "kafka=1"]);
    assert_eq!(app.get("/health/live", None).await.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn without_its_database_the_service_is_not_ready() {
    let backends = Backends::new().await;
    let (app, db) = helpers::spawn_app_sharing_database(&backends.config()).await;
    assert_eq!(
        app.get("/health/ready", None).await.status(),
        StatusCode::OK
    );

    // Closing the pool makes every query fail, the readiness check's included.
    let closing = tokio::spawn(async move { db.close().await });
    let closed = service_kit::testing::eventually(WAIT, || async {
        app.get("/health/ready", None).await.status() == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    assert!(closed, "/health/ready turns 503 without the database");
    let response = app.get("/health/ready", None).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"], "not_ready", "{body}");
    assert_eq!(body["checks"]["database"]["ok"], false);
    assert_eq!(body["checks"]["database"]["required"], true);
    assert!(body["checks"]["database"]["error"].is_string(), "{body}");
    assert_eq!(body["checks"]["kafka"]["ok"], true);
    assert_eq!(app.dependency_gauges().await, ["database=0", "kafka=1"]);
    // What readiness says holds for the requests: a registration cannot be served.
    let refused = app.register("No Db", "no.db@example.com").await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    app.stop().await;
    closing.await.expect("pool closed");
}

#[tokio::test]
async fn metrics_use_route_templates_and_docs_are_served() {
    let backends = Backends::new().await;
    let app = spawn_app(backends.config()).await;
    app.register("M", "m@example.com").await;
    app.get(
        "/users/01a20896-c02e-70f0-9bd4-90fc7696cc5e",
        Some(helpers::TOKEN),
    )
    .await;

    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"http_requests_total{method="POST",route="/register/",status="201"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"route="/users/{user_id}""#));
    assert!(metrics.contains("process_resident_memory_bytes"));
    let openapi: Value = app
        .get("/openapi.json", None)
        .await
        .json()
        .await
        .expect("openapi");
    assert!(openapi["paths"]["/register/"]["post"].is_object());
    assert_eq!(app.get("/docs/", None).await.status(), StatusCode::OK);
    app.stop().await;
}
