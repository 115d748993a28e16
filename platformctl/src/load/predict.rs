//! Load on the prediction-service: `POST /predict` over HTTP, or request/reply over Kafka
//! (each request sent with a `reply-to` header, its answer matched by request id). The
//! requests cycle through the wine data set's 178 rows, and every answer's class is
//! checked against scikit-learn's (models/wine-forest-parity.json): a wrong class counts
//! as an error, not as throughput.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use rdkafka::Message;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::outcome::Outcome;
use crate::predict::RequestReplyArgs;

/// The data set with scikit-learn's answers, as models/train.sh wrote it.
const PARITY: &str = include_str!("../../../models/wine-forest-parity.json");

/// Longest wait for one answer over Kafka.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Deserialize)]
struct Row {
    features: Vec<f64>,
    class: i64,
}

#[derive(Deserialize)]
struct Parity {
    rows: Vec<Row>,
}

/// Request bodies (without their id) and the class each must get.
pub struct Requests {
    rows: Vec<(String, i64)>,
}

impl Requests {
    pub fn load() -> anyhow::Result<Self> {
        let parity: Parity = serde_json::from_str(PARITY).context("parity data")?;
        let rows = parity
            .rows
            .into_iter()
            .map(|row| serde_json::to_string(&row.features).map(|f| (f, row.class)))
            .collect::<Result<_, _>>()?;
        Ok(Self { rows })
    }

    /// Request `n`'s JSON body under `id`, and its expected class.
    pub fn body(&self, n: u64, id: &str) -> (String, i64) {
        let (features, class) = &self.rows[(n % self.rows.len() as u64) as usize];
        (
            format!(r#"{{"request_id":"{id}","features":{features}}}"#),
            *class,
        )
    }
}

/// An answer's outcome: the expected class is `ok`, another class `wrong-class`, an error
/// answer `error`.
pub fn judge(answer: &Value, expected: i64) -> Outcome {
    match (answer["status"].as_str(), answer["prediction"].as_i64()) {
        (Some("success"), Some(class)) if class == expected => Outcome::Answered,
        (Some("success"), _) => Outcome::Refused("wrong-class".to_owned()),
        _ => Outcome::Refused("error".to_owned()),
    }
}

type Waiting = Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>;

/// Request/reply over Kafka: one producer, one reader of the answer topic that hands each
/// answer to the request waiting for it.
pub struct KafkaRoundTrip {
    producer: FutureProducer,
    request_topic: String,
    reply_topic: String,
    waiting: Waiting,
    reader: tokio::task::JoinHandle<()>,
}

impl KafkaRoundTrip {
    pub async fn connect(topics: &RequestReplyArgs) -> anyhow::Result<Self> {
        let kafka = topics.kafka();
        let answers = crate::predict::listen_at_end(&kafka, Duration::from_secs(10)).await?;
        let waiting = Waiting::default();
        let handed = waiting.clone();
        let reader = tokio::spawn(async move {
            while let Ok(message) = answers.recv().await {
                let Ok(answer) =
                    serde_json::from_slice::<Value>(message.payload().unwrap_or_default())
                else {
                    continue;
                };
                let waiter = answer["request_id"]
                    .as_str()
                    .and_then(|id| handed.lock().ok()?.remove(id));
                if let Some(waiter) = waiter {
                    let _ = waiter.send(answer);
                }
            }
        });
        Ok(Self {
            producer: kafka.producer_config().create()?,
            request_topic: topics.request_topic.clone(),
            reply_topic: topics.reply_topic.clone(),
            waiting,
            reader,
        })
    }

    /// Sends request `n` and waits for its answer.
    pub async fn ask(&self, requests: &Requests, n: u64) -> Outcome {
        let id = Uuid::new_v4().to_string();
        let (body, expected) = requests.body(n, &id);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.insert(id.clone(), tx);
        }
        let headers = OwnedHeaders::new().insert(Header {
            key: "reply-to",
            value: Some(self.reply_topic.as_bytes()),
        });
        let record: FutureRecord<'_, str, str> = FutureRecord::to(&self.request_topic)
            .key(id.as_str())
            .payload(body.as_str())
            .headers(headers);
        let sent = self
            .producer
            .send(record, Timeout::After(ANSWER_TIMEOUT))
            .await;
        let answer = match sent {
            Ok(_) => tokio::time::timeout(ANSWER_TIMEOUT, rx)
                .await
                .ok()
                .and_then(Result::ok),
            Err(_) => None,
        };
        match answer {
            Some(answer) => judge(&answer, expected),
            None => {
                if let Ok(mut waiting) = self.waiting.lock() {
                    waiting.remove(&id);
                }
                Outcome::Failed
            }
        }
    }
}

impl Drop for KafkaRoundTrip {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_cycle_through_the_data_set_with_their_expected_class() {
        let requests = Requests::load().expect("parity data");
        assert_eq!(requests.rows.len(), 178);
        let (first, class) = requests.body(0, "id");
        let again = requests.body(178, "id");
        assert_eq!((first.clone(), class), again);
        let parsed: Value = serde_json::from_str(&first).expect("json");
        assert_eq!(parsed["features"].as_array().map(Vec::len), Some(13));
        assert_eq!(parsed["request_id"], "id");
    }

    #[test]
    fn only_the_expected_class_counts_as_answered() {
        let answer = |class| json!({"request_id": "x", "prediction": class, "status": "success"});
        assert!(matches!(judge(&answer(1), 1), Outcome::Answered));
        assert_eq!(judge(&answer(2), 1).label(), "wrong-class");
        let error = json!({"request_id": "x", "error": "features: ...", "status": "error"});
        assert_eq!(judge(&error, 1).label(), "error");
    }
}
