//! Black-box test harness: a user-service on a random port with its own database and
//! topic, on the embedded or the real backends (see `service_kit::testing`).

#![allow(dead_code)]

use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use reqwest::Response;
use serde_json::{Value, json};
use service_kit::kafka::KafkaArgs;
use service_kit::testing::TestBackends;
use user_service::{Application, Config};

pub const TOKEN: &str = "test-admin-token";

service_kit::test_wrapper!(
    pub struct Backends(TestBackends);
);

service_kit::test_app!(Application, Config, connect: user_service::app::connect_and_migrate);

impl Backends {
    pub async fn new() -> Self {
        Self(TestBackends::new(3).await)
    }

    pub fn config(&self) -> Config {
        let mut config = Config::new(self.db.url.clone(), self.kafka.args.clone());
        config.common.admin_token = Some(TOKEN.to_owned());
        config.outbox_sweep_interval_ms = 100;
        config
    }
}

impl TestApp {
    pub async fn register(&self, user_name: &str, email: &str) -> Response {
        self.post_json(
            "/register/",
            &json!({"user_name": user_name, "email": email}),
        )
        .await
    }

    pub async fn post_raw(&self, content_type: &str, body: impl Into<reqwest::Body>) -> Response {
        self.client
            .post(self.url("/register/"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request")
    }
}

/// A message read back from the topic.
#[derive(Debug)]
pub struct Received {
    pub key: String,
    pub payload: Value,
    pub headers: Vec<(String, String)>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads the topic from the beginning until `count` messages arrived or `timeout` passed.
pub async fn read_topic(kafka: &KafkaArgs, count: usize, timeout: Duration) -> Vec<Received> {
    let group = format!("reader-{}", uuid::Uuid::new_v4());
    let consumer: StreamConsumer = kafka.consumer_config(&group).create().expect("consumer");
    consumer.subscribe(&[&kafka.topic]).expect("subscribe");
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while received.len() < count {
        let Ok(message) = tokio::time::timeout_at(deadline, consumer.recv()).await else {
            break;
        };
        let message = message.expect("message");
        received.push(Received {
            key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
            payload: serde_json::from_slice(message.payload().unwrap_or_default())
                .expect("json payload"),
            headers: message
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            (
                                h.key.to_owned(),
                                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        });
    }
    received
}

/// Reads one message more than `expected` within `timeout`: proves nothing extra was
/// published.
pub async fn read_topic_exactly(
    kafka: &KafkaArgs,
    expected: usize,
    timeout: Duration,
) -> Vec<Received> {
    read_topic(kafka, expected + 1, timeout).await
}
