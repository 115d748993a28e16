//! Kafka request/reply: at-least-once, and a request is never lost.
//!
//! * The messages already fetched (up to `PREDICT_MAX_BATCH`) are handled together, and
//!   their valid requests evaluated in one call of the model.
//! * Each answer goes to the request's `reply-to` header topic (when it starts with the
//!   allowed prefix) or to the results topic, keyed by the request id, with the
//!   `correlation-id` header of the request (or its request id) copied.
//! * A request's offset is stored (`enable.auto.offset.store=false`) only after its answer
//!   or its dead letter was acknowledged by the broker (idempotent producer, acks=all);
//!   stored offsets are committed by the background auto-commit, and synchronously before
//!   a rebalance takes partitions away and at shutdown. A crash before the commit means
//!   the request is answered again: the same answer, under the same key.
//! * A message without a readable request id (not JSON, not an object, no string id),
//!   an empty or an oversized one goes to the dead-letter topic with the reason in its
//!   `dlq.reason` header, and the stream goes on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::FutureExt;
use rdkafka::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use service_kit::Shutdown;

use crate::metrics::{Outcome, PredictionMetrics, Transport};
use crate::model::watch::ModelStore;
use crate::request::{Answer, Request, parse_json, validate};

pub type KafkaConsumer = StreamConsumer<CommitOnRevoke>;

/// Header naming the topic a client wants its answer on.
pub const REPLY_TO: &str = "reply-to";
/// Header copied from the request to its answer (the request id when absent).
pub const CORRELATION_ID: &str = "correlation-id";

/// Commits stored offsets before partitions are taken away, so that the next owner starts
/// right after the last answered request.
#[derive(Debug, Default)]
pub struct CommitOnRevoke;

impl ClientContext for CommitOnRevoke {}

impl ConsumerContext for CommitOnRevoke {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            commit_sync(consumer);
            tracing::info!(partitions = partitions.count(), "partitions revoked");
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            tracing::info!(partitions = partitions.count(), "partitions assigned");
        }
    }
}

fn commit_sync<C: Consumer<X>, X: ConsumerContext>(consumer: &C) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(error) => tracing::warn!(%error, "offset commit failed"),
    }
}

/// Where answers go.
#[derive(Debug, Clone)]
pub struct Topics {
    pub requests: String,
    pub results: String,
    pub dead_letters: String,
    /// A `reply-to` topic must start with this.
    pub reply_prefix: String,
}

/// The request/reply loop and what it needs.
pub struct Worker {
    pub consumer: Arc<KafkaConsumer>,
    pub producer: FutureProducer,
    pub model: Arc<ModelStore>,
    pub metrics: PredictionMetrics,
    pub topics: Topics,
    pub max_batch: usize,
    pub max_request_bytes: usize,
}

/// One message to send for one request: its answer or its dead letter.
struct Outgoing {
    topic: String,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    headers: OwnedHeaders,
    outcome: Outcome,
}

/// What a request message turned out to be.
enum Parsed {
    Valid { id: String, request: Request },
    Answer(Answer),
    DeadLetter(String),
}

impl Worker {
    /// Answers requests until `shutdown`, then commits stored offsets.
    pub async fn run(self, shutdown: Shutdown) -> KafkaResult<()> {
        self.consumer.subscribe(&[&self.topics.requests])?;
        loop {
            let first = tokio::select! {
                () = shutdown.wait() => break,
                message = self.consumer.recv() => message,
            };
            match first {
                Ok(first) => {
                    let batch = self.ready_batch(first);
                    if !self.handle(&batch, &shutdown).await {
                        break;
                    }
                }
                Err(error) => tracing::warn!(%error, "consumer error"),
            }
        }
        let consumer = self.consumer.clone();
        // Blocking librdkafka calls: keep them off the async workers.
        let _ = tokio::task::spawn_blocking(move || {
            commit_sync(consumer.as_ref());
            consumer.unsubscribe();
        })
        .await;
        tracing::info!("request consumer stopped, offsets committed");
        Ok(())
    }

    /// `first` and the messages already fetched, without waiting for more.
    fn ready_batch<'c>(&'c self, first: BorrowedMessage<'c>) -> Vec<BorrowedMessage<'c>> {
        let mut batch = vec![first];
        while batch.len() < self.max_batch {
            match self.consumer.recv().now_or_never() {
                Some(Ok(message)) => batch.push(message),
                Some(Err(error)) => {
                    tracing::warn!(%error, "consumer error");
                    break;
                }
                None => break,
            }
        }
        batch
    }

    /// Answers (or dead-letters) every message of `batch` and stores its offsets. Returns
    /// `false` only when shutdown interrupted it; then no offset of the batch is stored.
    async fn handle(&self, batch: &[BorrowedMessage<'_>], shutdown: &Shutdown) -> bool {
        let started = Instant::now();
        let outgoing = self.answers(batch);
        let mut pending: Vec<usize> = (0..outgoing.len()).collect();
        let mut attempt = 0u32;
        while !pending.is_empty() {
            let results =
                futures::future::join_all(pending.iter().map(|&i| self.send(&outgoing[i]))).await;
            let mut failed = Vec::new();
            for (&i, result) in pending.iter().zip(results) {
                if let Err(error) = result {
                    tracing::warn!(%error, topic = %outgoing[i].topic, "answer not acknowledged; retrying");
                    failed.push(i);
                }
            }
            pending = failed;
            if pending.is_empty() {
                break;
            }
            attempt += 1;
            let delay = Duration::from_millis(100 << attempt.min(6));
            tokio::select! {
                () = shutdown.wait() => return false,
                () = tokio::time::sleep(delay) => {}
            }
        }
        let latency = started.elapsed();
        for (message, out) in batch.iter().zip(&outgoing) {
            if let Err(error) = self.consumer.store_offset_from_message(message) {
                tracing::warn!(%error, "offset not stored (partition revoked?)");
            }
            self.metrics.handled(Transport::Kafka, out.outcome, latency);
        }
        true
    }

    /// The answer or dead letter of each message, the valid requests evaluated together.
    fn answers(&self, batch: &[BorrowedMessage<'_>]) -> Vec<Outgoing> {
        let parsed: Vec<Parsed> = batch.iter().map(|m| self.parse(m)).collect();
        let rows: Vec<_> = parsed
            .iter()
            .filter_map(|p| match p {
                Parsed::Valid { request, .. } => Some(request.features),
                _ => None,
            })
            .collect();
        let model = self.model.current();
        let mut predictions = if rows.is_empty() {
            Vec::new()
        } else {
            self.metrics.batch_size.observe(rows.len() as f64);
            model.predict(&rows)
        }
        .into_iter();
        batch
            .iter()
            .zip(parsed)
            .map(|(message, parsed)| match parsed {
                Parsed::Valid { id, .. } => {
                    let prediction = predictions.next().expect("one prediction per valid row");
                    self.reply(
                        message,
                        Answer::success(id, prediction, &model.info.version),
                    )
                }
                Parsed::Answer(answer) => self.reply(message, answer),
                Parsed::DeadLetter(reason) => self.dead_letter(message, &reason),
            })
            .collect()
    }

    fn parse(&self, message: &BorrowedMessage<'_>) -> Parsed {
        let payload = message.payload().unwrap_or_default();
        if payload.is_empty() {
            return Parsed::DeadLetter("empty message".into());
        }
        if payload.len() > self.max_request_bytes {
            return Parsed::DeadLetter(format!(
                "message of {} bytes is over the {}-byte limit",
                payload.len(),
                self.max_request_bytes
            ));
        }
        let value = match parse_json(payload) {
            Ok(value) => value,
            Err(error) => return Parsed::DeadLetter(format!("not JSON: {error}")),
        };
        match validate(&value, true) {
            Ok(request) => {
                let id = request
                    .request_id
                    .map(|id| id.to_string())
                    .unwrap_or_default();
                Parsed::Valid { id, request }
            }
            Err(invalid) => match invalid.request_id.clone() {
                Some(id) => Parsed::Answer(Answer::error(id, invalid.summary())),
                None => {
                    Parsed::DeadLetter(format!("no request id to answer: {}", invalid.summary()))
                }
            },
        }
    }

    fn reply(&self, message: &BorrowedMessage<'_>, answer: Answer) -> Outgoing {
        let outcome = if answer.status == "success" {
            Outcome::Success
        } else {
            Outcome::Invalid
        };
        let (topic, answer) = match header(message, REPLY_TO) {
            None => (self.topics.results.clone(), answer),
            Some(topic) if self.allowed_reply_topic(&topic) => (topic, answer),
            Some(topic) => {
                let error = format!(
                    "reply-to topic {topic:?} is not allowed (must be a topic name starting with {:?})",
                    self.topics.reply_prefix
                );
                (
                    self.topics.results.clone(),
                    Answer::error(answer.request_id, error),
                )
            }
        };
        let outcome = if answer.status == "success" {
            outcome
        } else {
            Outcome::Invalid
        };
        let correlation =
            header(message, CORRELATION_ID).unwrap_or_else(|| answer.request_id.clone());
        let headers = OwnedHeaders::new().insert(Header {
            key: CORRELATION_ID,
            value: Some(correlation.as_bytes()),
        });
        Outgoing {
            topic,
            key: Some(answer.request_id.clone().into_bytes()),
            payload: serde_json::to_vec(&answer).unwrap_or_default(),
            headers,
            outcome,
        }
    }

    fn allowed_reply_topic(&self, topic: &str) -> bool {
        topic.starts_with(&self.topics.reply_prefix)
            && (1..=249).contains(&topic.len())
            && topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    }

    fn dead_letter(&self, message: &BorrowedMessage<'_>, reason: &str) -> Outgoing {
        tracing::warn!(
            reason,
            partition = message.partition(),
            offset = message.offset(),
            "request dead-lettered"
        );
        let headers = message
            .headers()
            .map_or_else(OwnedHeaders::new, |h| h.detach());
        let extra = [
            ("dlq.reason", reason.to_owned()),
            ("dlq.original.topic", message.topic().to_owned()),
            ("dlq.original.partition", message.partition().to_string()),
            ("dlq.original.offset", message.offset().to_string()),
            ("dlq.time", Utc::now().to_rfc3339()),
        ];
        let headers = extra.iter().fold(headers, |h, (key, value)| {
            h.insert(Header {
                key,
                value: Some(value),
            })
        });
        Outgoing {
            topic: self.topics.dead_letters.clone(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().unwrap_or_default().to_vec(),
            headers,
            outcome: Outcome::DeadLettered,
        }
    }

    async fn send(&self, out: &Outgoing) -> KafkaResult<()> {
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&out.topic)
            .payload(out.payload.as_slice())
            .headers(out.headers.clone());
        if let Some(key) = &out.key {
            record = record.key(key.as_slice());
        }
        self.producer
            .send(record, Timeout::After(Duration::from_secs(10)))
            .await
            .map(drop)
            .map_err(|(error, _)| error)
    }
}

/// A UTF-8 header's value.
fn header(message: &BorrowedMessage<'_>, key: &str) -> Option<String> {
    let headers = message.headers()?;
    headers
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::to_owned)
}
