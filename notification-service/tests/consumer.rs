//! Consumption: each event delivered once, duplicates recognised, poison messages
//! dead-lettered, restarts lose nothing.

mod helpers;

use std::collections::HashSet;

use helpers::{Backends, TOKEN, WAIT, dead_letters, event, spawn_app};
use rdkafka::message::{Headers, Message};
use reqwest::StatusCode;
use service_kit::kafka::KafkaArgs;
use service_kit::testing::eventually;

#[tokio::test]
async fn each_event_is_delivered_and_recorded_once() {
    let backends = Backends::new().await;
    let app = spawn_app(&backends.config()).await;
    let producer = backends.producer();
    let mut users = HashSet::new();
    for i in 0..20 {
        let (attributes, body) = event(i);
        users.insert(body.user_id.to_string());
        producer.publish(&attributes, &body).await;
    }

    assert!(app.wait_delivered(20.0).await, "20 deliveries");
    let notifications = app.notifications().await;
    let delivered: HashSet<_> = notifications
        .iter()
        .map(|n| n["user_id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(delivered, users);
    assert_eq!(notifications.len(), 20);
    assert_eq!(
        app.metric("notifications_sent_total{channel=\"log\",outcome=\"ok\"}")
            .await,
        20.0
    );
    assert!(app.metric("event_end_to_end_latency_seconds_count").await >= 20.0);
    app.stop().await;
}

#[tokio::test]
async fn a_redelivered_event_id_is_counted_as_duplicate_not_sent_again() {
    let backends = Backends::new().await;
    let app = spawn_app(&backends.config()).await;
    let producer = backends.producer();
    let (attributes, body) = event(1);
    producer.publish(&attributes, &body).await;
    producer.publish(&attributes, &body).await;
    producer.publish(&attributes, &body).await;

    let seen = eventually(WAIT, || async { app.duplicates().await >= 2.0 }).await;
    assert!(seen, "two duplicates counted");
    assert_eq!(app.delivered().await, 1.0);
    assert_eq!(app.notifications().await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn poison_messages_go_to_the_dead_letter_topic_and_the_stream_goes_on() {
    let backends = Backends::new().await;
    let app = spawn_app(&backends.config()).await;
    let producer = backends.producer();
    let (attributes, body) = event(1);
    let good_headers: Vec<(&str, Vec<u8>)> = attributes
        .to_headers()
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    producer
        .publish_raw("k1", Some(b"{definitely not json"), &good_headers)
        .await;
    producer.publish_raw("k2", Some(&body.to_json()), &[]).await;
    let (attributes, body) = event(2);
    producer.publish(&attributes, &body).await;

    assert!(
        app.wait_delivered(1.0).await,
        "the good event after the poison is delivered"
    );
    let dead = eventually(WAIT, || async {
        app.metric("dlq_messages_total").await >= 2.0
    })
    .await;
    assert!(dead, "both poison messages dead-lettered");

    let mut keys = HashSet::new();
    for message in dead_letters(&backends.kafka.args, 2).await {
        let headers: Vec<_> = message
            .headers()
            .expect("headers")
            .iter()
            .map(|h| h.key.to_owned())
            .collect();
        for required in [
            "dlq.reason",
            "dlq.attempts",
            "dlq.original.topic",
            "dlq.original.partition",
            "dlq.original.offset",
        ] {
            assert!(
                headers.iter().any(|h| h == required),
                "{required} in {headers:?}"
            );
        }
        keys.insert(String::from_utf8_lossy(message.key().expect("key")).into_owned());
    }
    assert_eq!(keys, HashSet::from(["k1".to_owned(), "k2".to_owned()]));
    app.stop().await;
}

#[tokio::test]
async fn a_restarted_consumer_resumes_without_loss_or_duplicate_delivery() {
    let backends = Backends::new().await;
    let config = backends.config();
    let producer = backends.producer();
    let app = spawn_app(&config).await;
    for i in 0..30 {
        let (a, b) = event(i);
        producer.publish(&a, &b).await;
    }
    assert!(app.wait_delivered(30.0).await);
    app.stop().await;

    for i in 30..60 {
        let (a, b) = event(i);
        producer.publish(&a, &b).await;
    }
    let app = spawn_app(&config).await;
    assert!(app.wait_delivered(30.0).await, "the 30 new events");
    let notifications = app.notifications().await;
    let ids: HashSet<_> = notifications
        .iter()
        .map(|n| n["event_id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(
        (notifications.len(), ids.len()),
        (60, 60),
        "60 distinct deliveries"
    );
    assert_eq!(
        app.delivered().await,
        30.0,
        "nothing old was delivered again"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_consumer_dropped_mid_stream_loses_nothing_and_delivers_nothing_twice() {
    let backends = Backends::new().await;
    let config = backends.config();
    let producer = backends.producer();
    let app = spawn_app(&config).await;
    for i in 0..40 {
        let (a, b) = event(i);
        producer.publish(&a, &b).await;
    }
    // Dropped while events are still arriving: no graceful shutdown of the service.
    assert!(app.wait_delivered(10.0).await);
    app.abort();

    let app = spawn_app(&config).await;
    let (a, b) = event(40);
    producer.publish(&a, &b).await;
    let all = eventually(WAIT, || async { app.notifications().await.len() >= 41 }).await;
    assert!(all, "all 41 events recorded");
    let notifications = app.notifications().await;
    let ids: HashSet<_> = notifications
        .iter()
        .map(|n| n["event_id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(
        (notifications.len(), ids.len()),
        (41, 41),
        "each event recorded once"
    );
    app.stop().await;
}

#[tokio::test]
async fn status_shows_partitions_and_counts_and_notifications_need_the_token() {
    let backends = Backends::new().await;
    let app = spawn_app(&backends.config()).await;
    let (a, b) = event(1);
    backends.producer().publish(&a, &b).await;
    assert!(app.wait_delivered(1.0).await);

    let status: serde_json::Value = app
        .get("/consumer/status", None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(status["state"], "running");
    assert_eq!(status["delivered"], 1);
    assert_eq!(
        status["partitions"].as_array().expect("partitions").len(),
        3
    );
    assert_eq!(
        app.get("/notifications", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/notifications", Some(TOKEN)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get("/notifications?limit=x", Some(TOKEN))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    let ready = app.get("/health/ready", None).await;
    assert_eq!(ready.status(), StatusCode::OK);
    let ready: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["checks"]["database"]["required"], true);
    assert_eq!(ready["checks"]["kafka"]["required"], false);
    assert_eq!(app.dependency_gauges().await, ["database=1", "kafka=1"]);
    app.stop().await;
}

#[tokio::test]
async fn without_a_broker_it_serves_its_api_degraded_and_without_a_database_it_is_not_ready() {
    let backends = Backends::new().await;
    let mut config = backends.config();
    // A port nothing listens on: the broker is "down".
    config.kafka = KafkaArgs::new("127.0.0.1:1", backends.kafka.args.topic.clone());
    let (app, db) = helpers::spawn_app_sharing_database(&config).await;

    // It serves /notifications from the database: ready (200), degraded, naming Kafka.
    let ready = app.get("/health/ready", None).await;
    assert_eq!(ready.status(), StatusCode::OK);
    let ready: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert_eq!(ready["checks"]["kafka"]["ok"], false);
    assert_eq!(ready["checks"]["kafka"]["required"], false);
    assert!(ready["checks"]["kafka"]["error"].is_string(), "{ready}");
    assert_eq!(ready["checks"]["database"]["ok"], true);
    assert_eq!(app.dependency_gauges().await, ["database=1", "kafka=0"]);
    assert_eq!(
        app.get("/notifications", Some(TOKEN)).await.status(),
        StatusCode::OK
    );

    // Closing the pool makes every query fail, the readiness check's included.
    let closing = tokio::spawn(async move { db.close().await });
    let not_ready = eventually(WAIT, || async {
        app.get("/health/ready", None).await.status() == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    assert!(not_ready, "/health/ready turns 503 without the database");
    let ready: serde_json::Value = app
        .get("/health/ready", None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(ready["status"], "not_ready", "{ready}");
    assert_eq!(ready["checks"]["database"]["ok"], false);
    assert_eq!(ready["checks"]["database"]["required"], true);
    assert_eq!(app.dependency_gauges().await, ["database=0", "kafka=0"]);
    assert_eq!(
        app.get("/notifications", Some(TOKEN)).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    app.stop().await;
    closing.await.expect("pool closed");
}
