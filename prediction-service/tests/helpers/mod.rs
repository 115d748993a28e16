//! Black-box test harness: a prediction-service on a random port with its own topics and
//! a copy of the committed model, fed by a real producer and read by a real consumer, on
//! the embedded or the real Kafka backend.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use prediction_service::request::Features;
use prediction_service::{Application, Config};
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use service_kit::kafka::KafkaArgs;
use service_kit::testing::{Backend, TestKafka};
use uuid::Uuid;

pub const WAIT: Duration = Duration::from_secs(30);

fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
}

pub fn model_bytes() -> Vec<u8> {
    std::fs::read(models_dir().join("wine-forest.onnx")).expect("models/wine-forest.onnx")
}

/// One row of the parity fixture.
#[derive(Debug, Clone)]
pub struct ParityRow {
    pub features: Features,
    pub raw: Vec<f64>,
    pub class: i64,
    pub probabilities: Vec<f64>,
}

/// The fixture's model sha256 and its 178 rows.
pub fn parity_rows() -> (String, Vec<ParityRow>) {
    let text = std::fs::read(models_dir().join("wine-forest-parity.json")).expect("fixture");
    let fixture: serde_json::Value = serde_json::from_slice(&text).expect("fixture JSON");
    let rows = fixture["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| {
            let raw: Vec<f64> = serde_json::from_value(row["features"].clone()).expect("features");
            let values: [f32; 13] = raw
                .iter()
                .map(|&v| v as f32)
                .collect::<Vec<_>>()
                .try_into()
                .expect("13 features");
            ParityRow {
                features: Features::from_array(values),
                raw,
                class: row["class"].as_i64().expect("class"),
                probabilities: serde_json::from_value(row["probabilities"].clone())
                    .expect("probabilities"),
            }
        })
        .collect();
    (
        fixture["model_sha256"].as_str().expect("sha").to_owned(),
        rows,
    )
}

/// One row as tract, a second ONNX runtime, evaluates it.
#[derive(Debug, Clone)]
pub struct TractRow {
    pub class: i64,
    pub probabilities: Vec<f64>,
}

/// The variable naming tract's answers for the parity rows.
const TRACT_PREDICTIONS: &str = "TEST_TRACT_PREDICTIONS";

/// tract's model sha256 and its answer for every parity row, from the file that
/// `scripts/tract-parity.sh predict` writes and `scripts/test.sh` names in
/// `TEST_TRACT_PREDICTIONS`. tract takes minutes to compile, so it stays out of the
/// workspace: a plain `cargo test` on the embedded backend goes without it (`None`), the
/// real-backend pass fails without it.
pub fn tract_predictions() -> Option<(String, Vec<TractRow>)> {
    let Ok(path) = std::env::var(TRACT_PREDICTIONS) else {
        assert!(
            Backend::from_env() == Backend::Embedded,
            "PLATFORM_TEST_BACKEND=real needs {TRACT_PREDICTIONS}: run the tests through scripts/test.sh, which builds tools/tract-parity and writes tract's predictions (scripts/tract-parity.sh predict FILE)"
        );
        eprintln!("{TRACT_PREDICTIONS} is not set: tract's parity is checked by scripts/test.sh");
        return None;
    };
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{TRACT_PREDICTIONS}={path}: {e}"));
    let answers: serde_json::Value = serde_json::from_slice(&text).expect("tract's JSON");
    let rows = answers["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| TractRow {
            class: row["class"].as_i64().expect("class"),
            probabilities: serde_json::from_value(row["probabilities"].clone())
                .expect("probabilities"),
        })
        .collect();
    let sha256 = answers["model_sha256"].as_str().expect("sha").to_owned();
    Some((sha256, rows))
}

/// A Kafka backend with the request topic (3 partitions), its dead-letter topic, and the
/// result and reply topics, plus a model file of the test's own.
pub struct Backends {
    pub kafka: TestKafka,
    pub results: String,
    pub replies: String,
    pub model_dir: tempfile::TempDir,
}

impl Backends {
    pub async fn new() -> Self {
        let kafka = TestKafka::create(&Backend::from_env(), 3).await;
        let results = format!("{}.results", kafka.args.topic);
        let replies = format!("{}.replies", kafka.args.topic);
        kafka
            .create_topics(&[results.as_str(), replies.as_str()], 3)
            .await;
        let model_dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(model_dir.path().join("model.onnx"), model_bytes()).expect("model copy");
        Self {
            kafka,
            results,
            replies,
            model_dir,
        }
    }

    pub fn model_path(&self) -> PathBuf {
        self.model_dir.path().join("model.onnx")
    }

    pub fn config(&self) -> Config {
        let mut config = Config::new(&self.kafka.args, self.model_path());
        config.group_id = self.kafka.group.clone();
        config.result_topic = self.results.clone();
        config.reply_topic_prefix = self.replies.clone();
        config.model_poll_interval_ms = 50;
        config
    }

    pub fn producer(&self) -> Producer {
        Producer {
            producer: self
                .kafka
                .args
                .producer_config()
                .create()
                .expect("producer"),
            topic: self.kafka.args.topic.clone(),
        }
    }

    pub fn reader(&self, topic: &str) -> Reader {
        let consumer: StreamConsumer = self
            .kafka
            .args
            .consumer_config(&format!("reader-{}", Uuid::new_v4().simple()))
            .create()
            .expect("consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        Reader {
            consumer,
            seen: Vec::new(),
        }
    }

    pub fn dlq(&self) -> String {
        format!("{}.dlq", self.kafka.args.topic)
    }
}

service_kit::test_app!(Application, Config);

impl TestApp {
    pub async fn kafka_answered(&self) -> f64 {
        let success = self
            .metric(r#"predictions_total{outcome="success",transport="kafka"}"#)
            .await;
        let invalid = self
            .metric(r#"predictions_total{outcome="invalid",transport="kafka"}"#)
            .await;
        success + invalid
    }
}

/// A request body for `features` with a fresh request id.
pub fn request(features: &[f64]) -> (String, serde_json::Value) {
    let id = Uuid::new_v4().to_string();
    let body = serde_json::json!({"request_id": id, "features": features});
    (id, body)
}

pub struct Producer {
    producer: FutureProducer,
    topic: String,
}

impl Producer {
    pub async fn send(&self, payload: &[u8], headers: &[(&str, &str)]) {
        let headers = headers.iter().fold(OwnedHeaders::new(), |h, (key, value)| {
            h.insert(Header {
                key,
                value: Some(value.as_bytes()),
            })
        });
        let record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topic)
            .payload(payload)
            .headers(headers);
        self.producer
            .send(record, Timeout::After(WAIT))
            .await
            .map_err(|(e, _)| e)
            .expect("publish");
    }

    pub async fn send_json(&self, body: &serde_json::Value) {
        self.send(&serde_json::to_vec(body).expect("json"), &[])
            .await;
    }
}

/// Reads a topic from its beginning.
pub struct Reader {
    consumer: StreamConsumer,
    pub seen: Vec<OwnedMessage>,
}

impl Reader {
    /// Reads until `done(messages so far)` holds; panics after [`WAIT`].
    pub async fn until(
        &mut self,
        mut done: impl FnMut(&[OwnedMessage]) -> bool,
    ) -> &[OwnedMessage] {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !done(&self.seen) {
            let message = tokio::time::timeout_at(deadline, self.consumer.recv())
                .await
                .unwrap_or_else(|_| panic!("timed out with {} messages read", self.seen.len()))
                .expect("message");
            self.seen.push(message.detach());
        }
        &self.seen
    }

    /// Answers by request id (each id's answers in arrival order) once every id in `ids`
    /// has one.
    pub async fn answers(&mut self, ids: &[String]) -> HashMap<String, Vec<serde_json::Value>> {
        self.until(|seen| {
            let answered = by_id(seen);
            ids.iter().all(|id| answered.contains_key(id))
        })
        .await;
        by_id(&self.seen)
    }
}

pub fn by_id(messages: &[OwnedMessage]) -> HashMap<String, Vec<serde_json::Value>> {
    let mut answers: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
    for message in messages {
        let value: serde_json::Value =
            serde_json::from_slice(message.payload().unwrap_or_default()).expect("answer JSON");
        let id = value["request_id"].as_str().expect("request_id").to_owned();
        let key = message
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned());
        assert_eq!(
            key.as_deref(),
            Some(id.as_str()),
            "answers are keyed by request id"
        );
        answers.entry(id).or_default().push(value);
    }
    answers
}

/// The value of header `key`, as text.
pub fn header(message: &OwnedMessage, key: &str) -> Option<String> {
    message
        .headers()?
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

pub fn kafka_args(backends: &Backends) -> &KafkaArgs {
    &backends.kafka.args
}
