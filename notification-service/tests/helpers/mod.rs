//! Black-box test harness: a notification-service on a random port with its own database
//! and topic, fed by a real producer, on the embedded or the real backends.

#![allow(dead_code)]

use std::time::Duration;

use chrono::Utc;
use events::{Attributes, UserRegistered};
use notification_service::{Application, Config};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use service_kit::kafka::KafkaArgs;
use service_kit::testing::TestBackends;
use uuid::Uuid;

pub const TOKEN: &str = "test-admin-token";
pub const WAIT: Duration = Duration::from_secs(30);

service_kit::test_wrapper!(
    pub struct Backends(TestBackends);
);

service_kit::test_app!(Application, Config, connect: notification_service::app::connect_and_migrate);

impl Backends {
    pub async fn new() -> Self {
        Self(TestBackends::new(3).await)
    }

    pub fn config(&self) -> Config {
        let mut config = Config::new(self.db.url.clone(), self.kafka.args.clone());
        config.common.admin_token = Some(TOKEN.to_owned());
        config.group_id = self.kafka.group.clone();
        config.delivery_retry_base_ms = 10;
        config
    }

    pub fn producer(&self) -> Producer {
        Producer::new(&self.kafka.args)
    }
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

/// One request a [`WebhookReceiver`] got, and what it answered.
#[derive(Debug, Clone)]
pub struct WebhookRequest {
    pub body: Vec<u8>,
    pub signature: Option<String>,
    pub event_id: Option<String>,
    pub status: u16,
}

impl WebhookRequest {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }
}

type Answer = dyn Fn(usize, &serde_json::Value) -> u16 + Send + Sync;

/// A real HTTP receiver on a free port; `answer(n, body)` picks the status of the n-th
/// (0-based) request.
pub struct WebhookReceiver {
    pub url: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<WebhookRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

impl WebhookReceiver {
    pub async fn start(
        answer: impl Fn(usize, &serde_json::Value) -> u16 + Send + Sync + 'static,
    ) -> Self {
        use axum::body::Bytes;
        use axum::http::{HeaderMap, StatusCode};
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let answer: std::sync::Arc<Answer> = std::sync::Arc::new(answer);
        let seen = requests.clone();
        let handler = move |headers: HeaderMap, body: Bytes| {
            let (seen, answer) = (seen.clone(), answer.clone());
            async move {
                let value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                let mut seen = seen.lock().expect("lock");
                let status = answer(seen.len(), &value);
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                seen.push(WebhookRequest {
                    body: body.to_vec(),
                    signature: header("x-signature-256"),
                    event_id: header("x-event-id"),
                    status,
                });
                StatusCode::from_u16(status).expect("status")
            }
        };
        let app = axum::Router::new().route("/hook", axum::routing::post(handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind webhook receiver");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("webhook receiver");
        });
        Self {
            url,
            requests,
            task,
        }
    }

    pub fn requests(&self) -> Vec<WebhookRequest> {
        self.requests.lock().expect("lock").clone()
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `sha256=<hex>` of the HMAC-SHA256 of `body`, computed here independently of the service.
pub fn expected_signature(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The SMTP server of `scripts/smtp-sink.sh` (aiosmtpd), writing each email it accepts as
/// JSON into a temporary directory.
pub struct SmtpSink {
    pub port: u16,
    dir: tempfile::TempDir,
    child: std::process::Child,
}

impl SmtpSink {
    pub fn start() -> Self {
        use std::io::BufRead;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let cache = std::env::var_os("PLATFORM_CACHE").map_or_else(
            || {
                std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                    .join(".cache/platform")
            },
            std::path::PathBuf::from,
        );
        let python = cache.join("venv-smtp/bin/python");
        let usable = std::process::Command::new(&python)
            .args(["-c", "import aiosmtpd"])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            usable,
            "the SMTP test server (aiosmtpd) is not installed at {}: run `scripts/smtp-sink.sh install`",
            python.display()
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = std::process::Command::new(&python)
            .arg(root.join("scripts/smtp-sink.py"))
            .arg(dir.path())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the SMTP sink");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("SMTP sink port");
        let port = line.trim().parse().unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("the SMTP sink did not print its port: `{line}`")
        });
        Self { port, dir, child }
    }

    /// Every email received so far, in order.
    pub fn emails(&self) -> Vec<serde_json::Value> {
        let mut files: Vec<_> = std::fs::read_dir(self.dir.path())
            .expect("sink dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort_by_key(|p| {
            p.file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u64>().ok())
        });
        files
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).expect("email")).expect("json"))
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `n` messages from the dead-letter topic of `kafka`, from the beginning.
pub async fn dead_letters(kafka: &KafkaArgs, n: usize) -> Vec<rdkafka::message::OwnedMessage> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    let dlq = KafkaArgs::new(
        kafka.bootstrap_servers.clone(),
        events::dlq_topic(&kafka.topic),
    );
    let consumer: StreamConsumer = dlq
        .consumer_config(&format!("dlq-reader-{}", Uuid::new_v4()))
        .create()
        .expect("consumer");
    consumer.subscribe(&[&dlq.topic]).expect("subscribe");
    let mut messages = Vec::new();
    while messages.len() < n {
        let message = tokio::time::timeout(WAIT, consumer.recv())
            .await
            .expect("a dead letter within the wait")
            .expect("message");
        messages.push(message.detach());
    }
    messages
}

/// The value of header `key` of `message`, as text.
pub fn header(message: &rdkafka::message::OwnedMessage, key: &str) -> Option<String> {
    use rdkafka::Message;
    use rdkafka::message::Headers;
    let headers = message.headers()?;
    headers
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}
