//! Black-box test harness: a notification-service on a random port with its own database
//! and topic, fed by a real producer, on the embedded or the real backends.

#![allow(dead_code)]

use std::ops::Deref;
use std::time::Duration;

use chrono::Utc;
use events::{Attributes, UserRegistered};
use notification_service::{Application, Config};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use service_kit::kafka::KafkaArgs;
use service_kit::testing::{TestBackends, TestServer};
use uuid::Uuid;

pub const TOKEN: &str = "test-admin-token";
pub const WAIT: Duration = Duration::from_secs(30);

pub struct Backends(TestBackends);

impl Deref for Backends {
    type Target = TestBackends;
    fn deref(&self) -> &TestBackends {
        &self.0
    }
}

impl Backends {
    pub async fn new() -> Self {
        Self(TestBackends::new(3).await)
    }

    pub fn config(&self) -> Config {
        let mut config = Config::new(self.db.url.clone(), self.kafka.args.clone());
        config.common.admin_token = Some(TOKEN.to_owned());
        config.group_id = format!("group-{}", Uuid::new_v4());
        config.delivery_retry_base_ms = 10;
        config
    }

    pub fn producer(&self) -> Producer {
        Producer::new(&self.kafka.args)
    }
}

pub struct TestApp(TestServer);

impl Deref for TestApp {
    type Target = TestServer;
    fn deref(&self) -> &TestServer {
        &self.0
    }
}

pub async fn spawn_app(config: &Config) -> TestApp {
    let app = Application::build(config)
        .await
        .expect("build notification-service");
    TestApp(TestServer::start(app.local_addr(), |shutdown| {
        app.run(shutdown)
    }))
}

impl TestApp {
    pub async fn delivered(&self) -> f64 {
        self.metric(r#"events_consumed_total{event_type="com.platform.user.registered.v1",outcome="delivered"}"#).await
    }

    pub async fn duplicates(&self) -> f64 {
        self.metric(r#"events_consumed_total{event_type="com.platform.user.registered.v1",outcome="duplicate"}"#).await
    }

    /// Polls until `n` events were delivered by this instance.
    pub async fn wait_delivered(&self, n: f64) -> bool {
        service_kit::testing::eventually(WAIT, || async { self.delivered().await >= n }).await
    }

    pub async fn notifications(&self) -> Vec<serde_json::Value> {
        self.get("/notifications?limit=1000", Some(TOKEN))
            .await
            .json()
            .await
            .expect("json")
    }

    pub async fn stop(self) {
        self.0.stop().await;
    }

    pub fn abort(self) {
        self.0.abort();
    }
}

/// Publishes events the way the user-service's relay does.
pub struct Producer {
    producer: FutureProducer,
    topic: String,
}

/// A new event with a fresh id for user number `i`.
pub fn event(i: usize) -> (Attributes, UserRegistered) {
    let body = UserRegistered {
        user_id: Uuid::now_v7(),
        user_name: format!("User {i}"),
        email: format!("user{i}@example.com"),
        registered_at: Utc::now(),
    };
    (
        Attributes::user_registered(Uuid::now_v7(), Utc::now(), None),
        body,
    )
}

impl Producer {
    pub fn new(kafka: &KafkaArgs) -> Self {
        Self {
            producer: kafka.producer_config().create().expect("producer"),
            topic: kafka.topic.clone(),
        }
    }

    pub async fn publish(&self, attributes: &Attributes, body: &UserRegistered) {
        let headers: Vec<(&str, Vec<u8>)> = attributes
            .to_headers()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes()))
            .collect();
        self.publish_raw(&body.user_id.to_string(), Some(&body.to_json()), &headers)
            .await;
    }

    pub async fn publish_raw(
        &self,
        key: &str,
        payload: Option<&[u8]>,
        headers: &[(&str, Vec<u8>)],
    ) {
        let headers = headers.iter().fold(OwnedHeaders::new(), |h, (key, value)| {
            h.insert(Header {
                key,
                value: Some(value),
            })
        });
        let mut record: FutureRecord<'_, str, [u8]> =
            FutureRecord::to(&self.topic).key(key).headers(headers);
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        self.producer
            .send(record, Timeout::After(Duration::from_secs(30)))
            .await
            .map_err(|(e, _)| e)
            .expect("publish");
    }
}
