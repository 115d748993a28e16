//! Transport security: the platform talks to a SASL-authenticated Kafka listener through
//! the librdkafka pass-through alone, with no code for it.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use service_kit::kafka::{KafkaArgs, ensure_topics, parse_property};
use service_kit::testing::{Backend, TestDatabase, TestServer, eventually};

fn required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: scripts/deps.sh starts the SASL listener and prints it")
    })
}

fn sasl_args(topic: &str, password: &str) -> KafkaArgs {
    let mut args = KafkaArgs::new(required("TEST_KAFKA_SASL_BROKERS"), topic);
    args.properties = [
        "security.protocol=SASL_PLAINTEXT".to_owned(),
        "sasl.mechanism=PLAIN".to_owned(),
        format!("sasl.username={}", required("TEST_KAFKA_SASL_USERNAME")),
        format!("sasl.password={password}"),
    ]
    .iter()
    .map(|p| parse_property(p).expect("property"))
    .collect();
    args
}

#[tokio::test]
async fn registrations_flow_end_to_end_over_a_sasl_listener() {
    let backend = Backend::from_env();
    let topic = format!("sasl-{}", uuid::Uuid::new_v4().simple());
    let kafka = sasl_args(&topic, &required("TEST_KAFKA_SASL_PASSWORD"));
    let dlq = events::dlq_topic(&topic);
    ensure_topics(&kafka, &[&topic, &dlq], 3, 1)
        .await
        .expect("topics over SASL");
    let (users_db, notifications_db) = (
        TestDatabase::create(&backend).await,
        TestDatabase::create(&backend).await,
    );

    let users_config = user_service::Config::new(users_db.url.clone(), kafka.clone());
    let users_app = user_service::Application::build(&users_config)
        .await
        .expect("user-service");
    let users = TestServer::start(users_app.local_addr(), |s| users_app.run(s));
    let mut notifications_config =
        notification_service::Config::new(notifications_db.url.clone(), kafka.clone());
    notifications_config.common.admin_token = Some("sasl".into());
    let notifications_app = notification_service::Application::build(&notifications_config)
        .await
        .expect("notification-service");
    let notifications =
        TestServer::start(notifications_app.local_addr(), |s| notifications_app.run(s));

    let mut ids = HashSet::new();
    for i in 0..10 {
        let response = users
            .post_json(
                "/register/",
                &json!({"user_name": "Sasl", "email": format!("sasl{i}@example.com")}),
            )
            .await;
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.expect("json");
        ids.insert(body["user_id"].as_str().expect("id").to_owned());
    }
    let delivered = eventually(Duration::from_secs(60), || async {
        let list: Vec<Value> = notifications
            .get("/notifications?limit=100", Some("sasl"))
            .await
            .json()
            .await
            .expect("json");
        list.iter()
            .map(|n| n["user_id"].as_str().unwrap_or_default().to_owned())
            .collect::<HashSet<_>>()
            == ids
    })
    .await;
    assert!(delivered, "all ten registrations delivered over SASL");
    let ready: Value = users
        .get("/health/ready", None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(ready["status"], "ready", "{ready}");
    users.stop().await;
    notifications.stop().await;
}

#[tokio::test]
async fn a_wrong_sasl_password_leaves_the_service_degraded_naming_kafka() {
    let backend = Backend::from_env();
    let db = TestDatabase::create(&backend).await;
    let config =
        user_service::Config::new(db.url.clone(), sasl_args("user-events", "wrong-password"));
    let app = user_service::Application::build(&config)
        .await
        .expect("user-service");
    let users = TestServer::start(app.local_addr(), |s| app.run(s));
    // Registrations need only the database: ready (200), degraded, naming the broker.
    let ready = users.get("/health/ready", None).await;
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.expect("json");
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["checks"]["kafka"]["ok"], false);
    assert_eq!(body["checks"]["kafka"]["required"], false);
    assert_eq!(body["checks"]["database"]["ok"], true);
    users.stop().await;
}
