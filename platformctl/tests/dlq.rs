//! `platformctl dlq replay`: dead letters of a failing webhook are delivered exactly once
//! after the receiver recovers and a replay runs; a second replay repeats nothing.

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use events::{Attributes, UserRegistered};
use notification_service::delivery::{ChannelKind, Secret};
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use serde_json::Value;
use service_kit::kafka::KafkaArgs;
use service_kit::testing::{Backend, TestDatabase, TestKafka, TestServer, eventually};
use uuid::Uuid;

const TOKEN: &str = "dlq-test-token";
const WAIT: Duration = Duration::from_secs(60);

/// A webhook receiver that answers 500 while `failing` and counts 200s per event id.
struct Receiver {
    url: String,
    failing: Arc<AtomicBool>,
    delivered: Arc<Mutex<HashMap<String, usize>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Self {
        let failing = Arc::new(AtomicBool::new(true));
        let delivered = Arc::new(Mutex::new(HashMap::new()));
        let (fail, seen) = (failing.clone(), delivered.clone());
        let handler = move |headers: HeaderMap| {
            let (fail, seen) = (fail.clone(), seen.clone());
            async move {
                if fail.load(Ordering::SeqCst) {
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                let id = headers
                    .get("x-event-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                *seen.lock().expect("lock").entry(id).or_insert(0) += 1;
                StatusCode::OK
            }
        };
        let app = axum::Router::new().route("/hook", axum::routing::post(handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        Self {
            url,
            failing,
            delivered,
            task,
        }
    }

    fn deliveries(&self, event_id: &Uuid) -> usize {
        let delivered = self.delivered.lock().expect("lock");
        delivered.get(&event_id.to_string()).copied().unwrap_or(0)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Setup {
    kafka: TestKafka,
    _db: TestDatabase,
    receiver: Receiver,
    service: TestServer,
    producer: FutureProducer,
}

impl Setup {
    async fn new() -> Self {
        let backend = Backend::from_env();
        let db = TestDatabase::create(&backend).await;
        let kafka = TestKafka::create(&backend, 3).await;
        let receiver = Receiver::start().await;
        let mut config = notification_service::Config::new(db.url.clone(), kafka.args.clone());
        config.common.admin_token = Some(TOKEN.into());
        config.group_id = kafka.group.clone();
        config.channel = ChannelKind::Webhook;
        config.webhook.webhook_url = Some(receiver.url.clone());
        config.webhook.webhook_secret = Some(Secret::new("replay-secret"));
        config.delivery_max_attempts = 2;
        config.delivery_retry_base_ms = 10;
        let app = notification_service::Application::build(&config)
            .await
            .expect("notification-service");
        let service = TestServer::start(app.local_addr(), |s| app.run(s));
        let producer = kafka.args.producer_config().create().expect("producer");
        Self {
            kafka,
            _db: db,
            receiver,
            service,
            producer,
        }
    }

    /// Publishes a new event as the user-service would; returns its event id.
    async fn publish(&self) -> Uuid {
        let body = UserRegistered {
            user_id: Uuid::now_v7(),
            user_name: "Replayed User".to_owned(),
            email: "replayed@example.com".to_owned(),
            registered_at: Utc::now(),
        };
        let attributes = Attributes::user_registered(Uuid::now_v7(), Utc::now(), None);
        let headers =
            attributes
                .to_headers()
                .into_iter()
                .fold(OwnedHeaders::new(), |h, (key, value)| {
                    h.insert(Header {
                        key,
                        value: Some(value.as_bytes()),
                    })
                });
        let key = body.user_id.to_string();
        let payload = body.to_json();
        let record = FutureRecord::to(&self.kafka.args.topic)
            .key(&key)
            .payload(&payload)
            .headers(headers);
        self.producer
            .send(record, Timeout::After(Duration::from_secs(30)))
            .await
            .map_err(|(e, _)| e)
            .expect("publish");
        attributes.id
    }

    async fn wait_dead_letters(&self, n: f64) {
        let dead = eventually(WAIT, || async {
            self.service.metric("dlq_messages_total").await >= n
        })
        .await;
        assert!(dead, "{n} events dead-lettered");
    }

    /// Runs `platformctl dlq replay` with `extra` flags; returns its stdout.
    fn replay(&self, extra: &[&str]) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_platformctl"))
            .args(["dlq", "replay", "--bootstrap-servers"])
            .arg(&self.kafka.args.bootstrap_servers)
            .arg("--kafka-topic")
            .arg(&self.kafka.args.topic)
            .args(extra)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run platformctl");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "platformctl dlq replay failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    async fn notified(&self) -> Vec<String> {
        let list: Vec<Value> = self
            .service
            .get("/notifications?limit=1000", Some(TOKEN))
            .await
            .json()
            .await
            .expect("json");
        list.iter()
            .map(|n| n["event_id"].as_str().expect("id").to_owned())
            .collect()
    }
}

#[tokio::test]
async fn a_replayed_dead_letter_is_delivered_once_and_a_second_replay_repeats_nothing() {
    let setup = Setup::new().await;
    let event_id = setup.publish().await;
    setup.wait_dead_letters(1.0).await;
    setup.receiver.failing.store(false, Ordering::SeqCst);

    let listing = setup.replay(&["--dry-run"]);
    assert!(listing.contains("would replay 1 of 1"), "{listing}");
    assert!(listing.contains("attempts=2"), "{listing}");
    assert!(listing.contains("500"), "the reason is listed: {listing}");
    assert_eq!(
        setup.kafka.messages().await,
        1,
        "a dry run publishes nothing"
    );

    let summary = setup.replay(&[]);
    assert!(summary.contains("replayed 1 of 1"), "{summary}");
    let delivered = eventually(WAIT, || async {
        setup.notified().await == [event_id.to_string()]
    })
    .await;
    assert!(delivered, "the replayed event is delivered");
    assert_eq!(setup.receiver.deliveries(&event_id), 1);

    let again = setup.replay(&[]);
    assert!(again.contains("replayed 0 of 0"), "{again}");
    assert_eq!(
        setup.kafka.messages().await,
        2,
        "the original and one replay"
    );
    assert_eq!(setup.receiver.deliveries(&event_id), 1, "delivered once");
    assert_eq!(setup.notified().await.len(), 1);

    // The replayed copy carries the event's own headers, none of the dead-letter ones.
    let replayed = read_topic(&setup.kafka.args, 2).await;
    // Same key, so same partition: the original at offset 0, the copy right after it.
    let copy = replayed
        .iter()
        .find(|m| m.offset() == 1)
        .expect("the copy after the original");
    assert_eq!(copy.key(), replayed[0].key());
    assert_eq!(copy.payload(), replayed[0].payload());
    let keys: Vec<String> = copy
        .headers()
        .expect("headers")
        .iter()
        .map(|h| h.key.to_owned())
        .collect();
    assert!(keys.iter().any(|k| k == "ce_id"), "{keys:?}");
    assert!(!keys.iter().any(|k| k.starts_with("dlq.")), "{keys:?}");
    setup.service.stop().await;
}

#[tokio::test]
async fn replay_limit_replays_part_and_the_next_replay_the_rest() {
    let setup = Setup::new().await;
    let ids = [
        setup.publish().await,
        setup.publish().await,
        setup.publish().await,
    ];
    setup.wait_dead_letters(3.0).await;
    setup.receiver.failing.store(false, Ordering::SeqCst);

    let first = setup.replay(&["--limit", "2"]);
    assert!(first.contains("replayed 2 of 3"), "{first}");
    let two = eventually(WAIT, || async { setup.notified().await.len() == 2 }).await;
    assert!(two, "two replayed events delivered");
    let rest = setup.replay(&[]);
    assert!(rest.contains("replayed 1 of 1"), "{rest}");
    let all = eventually(WAIT, || async { setup.notified().await.len() == 3 }).await;
    assert!(all, "all three delivered");
    for id in &ids {
        assert_eq!(setup.receiver.deliveries(id), 1, "{id} delivered once");
    }
    setup.service.stop().await;
}

/// Reads `n` messages of the events topic from the beginning.
async fn read_topic(kafka: &KafkaArgs, n: usize) -> Vec<rdkafka::message::OwnedMessage> {
    let consumer: StreamConsumer = kafka
        .consumer_config(&format!("reader-{}", Uuid::new_v4()))
        .create()
        .expect("consumer");
    consumer.subscribe(&[&kafka.topic]).expect("subscribe");
    let mut messages = Vec::new();
    while messages.len() < n {
        let message = tokio::time::timeout(WAIT, consumer.recv())
            .await
            .expect("a message within the wait")
            .expect("message");
        messages.push(message.detach());
    }
    messages
}
