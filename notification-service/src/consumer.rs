//! The consumer loop: at-least-once consumption with an exactly-once effect.
//!
//! * An offset is stored (`enable.auto.offset.store=false`) only after its event was
//!   delivered and recorded, dead-lettered, or found to be a duplicate; the background
//!   auto-commit then commits stored offsets only.
//! * Before partitions are revoked in a rebalance, and at shutdown, stored offsets are
//!   committed synchronously, so the next owner starts where this one stopped.
//! * Redeliveries after a crash are recognised by the event id (the unique key of the
//!   notifications table) and counted as duplicates, not sent again.
//! * An undecodable message goes to the dead-letter topic at once; a delivery that keeps
//!   failing goes there after bounded retries, so one bad message never stops the stream.
//!   A database outage is retried without limit: skipping would lose the event.
//! * Retries keep the partition's order: while one event is retried, later events of its
//!   partition wait. The wait is bounded by `DELIVERY_MAX_ATTEMPTS` attempts, each bounded
//!   by the channel's timeout, with backoff capped at 10 s; shutdown interrupts it.
//! * `POST /consumer/pause` stops fetching from every assigned partition while keeping
//!   the group membership; partitions assigned by a later rebalance are paused too.

mod batch;
mod unsettled;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use events::{DecodeError, Event};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::Serialize;
use service_kit::Shutdown;
use service_kit::db::{DbError, OwnConnection};
use tracing::Instrument;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::delivery::{Channel, DeliveryError};
use crate::metrics::{NotificationMetrics, Outcome, SendOutcome, UNKNOWN_EVENT_TYPE};
use crate::store::{Notification, NotificationStore, Recorded};

pub use unsettled::Unsettled;

/// How often record attempts without an answer are looked up between batches.
const SETTLE_INTERVAL: Duration = Duration::from_secs(1);

pub type KafkaConsumer = StreamConsumer<RebalanceCommit>;

/// Commits stored offsets before partitions are taken away, and keeps a paused consumer
/// paused across rebalances.
#[derive(Debug, Default)]
pub struct RebalanceCommit {
    paused: AtomicBool,
}

impl RebalanceCommit {
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }
}

impl ClientContext for RebalanceCommit {}

impl ConsumerContext for RebalanceCommit {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            commit_sync(consumer);
            tracing::info!(partitions = partitions.count(), "partitions revoked");
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            tracing::info!(partitions = partitions.count(), "partitions assigned");
            if self.is_paused()
                && let Err(error) = consumer.pause(partitions)
            {
                tracing::warn!(%error, "could not pause newly assigned partitions");
            }
        }
    }
}

/// Pauses or resumes fetching from every assigned partition; the group membership stays.
/// The flag is set first, so that a rebalance racing with this call applies it too. An
/// event already being handled is finished. Blocking: call it from `spawn_blocking`.
pub fn set_paused(consumer: &KafkaConsumer, paused: bool) -> KafkaResult<()> {
    consumer.context().paused.store(paused, Ordering::SeqCst);
    let assignment = consumer.assignment()?;
    if paused {
        consumer.pause(&assignment)?;
    } else {
        consumer.resume(&assignment)?;
    }
    tracing::info!(
        paused,
        partitions = assignment.count(),
        "consumer fetching {}",
        if paused { "paused" } else { "resumed" }
    );
    Ok(())
}

/// Commits the stored offsets now; "nothing to commit" is not an error.
pub fn commit_sync<C: Consumer<X>, X: ConsumerContext>(consumer: &C) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(error) => tracing::warn!(%error, "offset commit failed"),
    }
}

/// Bounded retries with exponential backoff and jitter.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl RetryPolicy {
    /// Delay before retry number `attempt` (1-based): base * 2^(attempt-1), capped, with
    /// 50-100 % jitter so that many consumers do not retry in lock-step.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponential = self
            .base
            .saturating_mul(1 << attempt.saturating_sub(1).min(16));
        exponential
            .min(self.max)
            .mul_f64(0.5 + rand::random::<f64>() / 2.0)
    }
}

/// What the consumer is doing, as `GET /consumer/status` reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsumerState {
    /// Built, not yet subscribed.
    #[default]
    Starting,
    Running,
    /// Running, with fetching paused by `POST /consumer/pause`.
    Paused,
    Stopped,
}

/// Counters and state shown by `GET /consumer/status`.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Counters {
    pub delivered: u64,
    pub duplicates: u64,
    pub failed: u64,
    pub dead_lettered: u64,
    pub last_error: Option<String>,
    pub state: ConsumerState,
}

/// Shared between the loop and the API.
#[derive(Debug, Default)]
pub struct StatusBoard(Mutex<Counters>);

impl StatusBoard {
    pub fn snapshot(&self) -> Counters {
        self.0.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn update(&self, f: impl FnOnce(&mut Counters)) {
        if let Ok(mut counters) = self.0.lock() {
            f(&mut counters);
        }
    }

    fn count(&self, outcome: Outcome) {
        self.update(|c| match outcome {
            Outcome::Delivered => c.delivered += 1,
            Outcome::Duplicate => c.duplicates += 1,
            Outcome::Failed => c.failed += 1,
            Outcome::DeadLettered => c.dead_lettered += 1,
        });
    }

    fn error(&self, error: &dyn std::fmt::Display) {
        let text = error.to_string();
        self.update(|c| c.last_error = Some(text));
    }

    fn state(&self, state: ConsumerState) {
        self.update(|c| c.state = state);
    }
}

/// What went wrong handling one event.
#[derive(Debug, thiserror::Error)]
enum HandleError {
    #[error("notification store: {0}")]
    Store(#[from] DbError),
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
}

/// The consumer loop and everything it needs.
pub struct Worker {
    pub consumer: Arc<KafkaConsumer>,
    pub topic: String,
    pub store: NotificationStore,
    /// The batch path's own connection: a batch borrows none from the pool.
    pub conn: OwnConnection,
    pub channel: Channel,
    pub dead_letters: FutureProducer,
    pub dlq_topic: String,
    pub metrics: NotificationMetrics,
    pub status: Arc<StatusBoard>,
    pub retry: RetryPolicy,
    /// Record attempts whose outcome is unknown (see [`unsettled`]).
    pub unsettled: Unsettled,
}

impl Worker {
    /// Consumes until `shutdown`, then commits stored offsets synchronously.
    pub async fn run(self, shutdown: Shutdown) -> KafkaResult<()> {
        self.consumer.subscribe(&[&self.topic])?;
        self.status.state(ConsumerState::Running);
        let mut settle = tokio::time::interval(SETTLE_INTERVAL);
        settle.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let message = tokio::select! {
                () = shutdown.wait() => break,
                message = self.consumer.recv() => message,
                _ = settle.tick() => {
                    self.settle_unknown().await;
                    continue;
                }
            };
            match message {
                Ok(message) => {
                    let batch = self.ready_batch(message);
                    if !self.handle_batch(&batch, &shutdown).await {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "consumer error");
                    self.status.error(&error);
                }
            }
        }
        self.status.state(ConsumerState::Stopped);
        let consumer = self.consumer.clone();
        // A blocking librdkafka call: keep it off the async workers.
        let _ = tokio::task::spawn_blocking(move || {
            commit_sync(consumer.as_ref());
            consumer.unsubscribe();
        })
        .await;
        tracing::info!("consumer stopped, offsets committed");
        Ok(())
    }

    /// Handles one message to completion. Returns `false` only when shutdown interrupted
    /// it: then its offset is not stored and the event is redelivered later.
    /// `failed` is a delivery attempt already made (by the batch path): it counts as the
    /// first of `DELIVERY_MAX_ATTEMPTS`.
    async fn handle(
        &self,
        message: &BorrowedMessage<'_>,
        shutdown: &Shutdown,
        failed: Option<DeliveryError>,
    ) -> bool {
        let span = crate::spans::consume(message);
        self.handle_traced(message, shutdown, failed)
            .instrument(span)
            .await
    }

    async fn handle_traced(
        &self,
        message: &BorrowedMessage<'_>,
        shutdown: &Shutdown,
        mut failed: Option<DeliveryError>,
    ) -> bool {
        let event = match decode(message) {
            Ok(event) => event,
            Err(error) => {
                self.metrics
                    .consumed(UNKNOWN_EVENT_TYPE, Outcome::DeadLettered);
                self.status.count(Outcome::DeadLettered);
                return self
                    .dead_letter(message, &error.to_string(), 0, shutdown)
                    .await;
            }
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = match failed.take() {
                Some(error) => Err(HandleError::Delivery(error)),
                None => self.process(&event).await,
            };
            let error = match result {
                Ok(outcome) => {
                    self.finish(&event, outcome);
                    return true;
                }
                Err(error) => error,
            };
            tracing::warn!(%error, event_id = %event.attributes.id, attempt, "handling failed");
            self.status.error(&error);
            self.finish(&event, Outcome::Failed);
            if matches!(error, HandleError::Delivery(_)) {
                self.metrics.sent(self.channel.name(), SendOutcome::Failed);
                if attempt >= self.retry.max_attempts {
                    self.finish(&event, Outcome::DeadLettered);
                    return self
                        .dead_letter(message, &error.to_string(), attempt, shutdown)
                        .await;
                }
            }
            if !sleep_unless_shutdown(self.retry.delay(attempt), shutdown).await {
                return false;
            }
        }
    }

    /// Delivers and records the event unless it was delivered before.
    async fn process(&self, event: &Event) -> Result<Outcome, HandleError> {
        let id = event.attributes.id;
        if let Some(recorded_by) = self.store.recorded_by(id).await? {
            return Ok(self.settled(id, recorded_by));
        }
        let span = crate::spans::deliver(self.channel.name());
        self.channel.deliver(event).instrument(span).await?;
        self.metrics.sent(self.channel.name(), SendOutcome::Ok);
        let row = notification(event, self.channel.name(), Uuid::new_v4());
        match self.store.record(&row).await {
            Ok(Recorded::New) => {
                self.unsettled.forget([id]);
                Ok(Outcome::Delivered)
            }
            Ok(Recorded::Duplicate) => {
                let recorded_by = self.store.recorded_by(id).await?.unwrap_or_default();
                Ok(self.settled(id, recorded_by))
            }
            Err(error) => {
                self.unsettled.add(&row, &event.attributes.event_type);
                Err(error.into())
            }
        }
    }

    /// The outcome of an event whose row exists: delivered if one of this consumer's own
    /// unanswered attempts wrote it (counted now, once), else a duplicate.
    fn settled(&self, event_id: Uuid, recorded_by: Uuid) -> Outcome {
        match self.unsettled.settle(event_id, recorded_by) {
            Some(_) => Outcome::Delivered,
            None => Outcome::Duplicate,
        }
    }

    /// Looks up the rows of unanswered record attempts between batches, and counts those
    /// this consumer wrote: their events may never come back to it (another replica owns
    /// the partition now, and counts them as duplicates).
    async fn settle_unknown(&self) {
        let ids = self.unsettled.pending();
        if ids.is_empty() {
            return;
        }
        // A failed lookup is tried again at the next tick.
        let Ok(found) = self.recorded_among(&ids).await else {
            return;
        };
        for (id, recorded_by) in found {
            if let Some(unknown) = self.unsettled.settle(id, recorded_by) {
                self.count(&unknown.event_type, unknown.event_time, Outcome::Delivered);
            }
        }
    }

    fn finish(&self, event: &Event, outcome: Outcome) {
        self.count(&event.attributes.event_type, event.attributes.time, outcome);
    }

    fn count(&self, event_type: &str, event_time: DateTime<Utc>, outcome: Outcome) {
        self.metrics.consumed(event_type, outcome);
        self.status.count(outcome);
        if outcome == Outcome::Delivered {
            let latency = (Utc::now() - event_time).to_std().unwrap_or_default();
            self.metrics
                .end_to_end_latency
                .observe(latency.as_secs_f64());
        }
    }

    /// Copies the message to the dead-letter topic with the reason in headers. Retries
    /// until the broker takes it: a dead letter must not be lost either.
    async fn dead_letter(
        &self,
        message: &BorrowedMessage<'_>,
        reason: &str,
        attempts: u32,
        shutdown: &Shutdown,
    ) -> bool {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.send_dead_letter(message, reason, attempts).await {
                Ok(()) => {
                    self.metrics.dlq_messages.inc();
                    tracing::warn!(
                        reason,
                        partition = message.partition(),
                        offset = message.offset(),
                        "message dead-lettered"
                    );
                    return true;
                }
                Err(error) => {
                    tracing::warn!(%error, "dead-letter publish failed");
                    self.status.error(&error);
                }
            }
            if !sleep_unless_shutdown(self.retry.delay(attempt), shutdown).await {
                return false;
            }
        }
    }

    async fn send_dead_letter(
        &self,
        message: &BorrowedMessage<'_>,
        reason: &str,
        attempts: u32,
    ) -> KafkaResult<()> {
        let headers = message
            .headers()
            .map_or_else(OwnedHeaders::new, |h| h.detach());
        let extra = [
            ("dlq.reason", reason.to_owned()),
            ("dlq.attempts", attempts.to_string()),
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
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.dlq_topic).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        self.dead_letters
            .send(record, Timeout::After(Duration::from_secs(10)))
            .await
            .map(drop)
            .map_err(|(error, _)| error)
    }
}

/// The row that records `event`'s delivery by attempt `recorded_by`.
fn notification(event: &Event, channel: &str, recorded_by: Uuid) -> Notification {
    Notification {
        event_id: event.attributes.id,
        user_id: event.body.user_id,
        user_name: event.body.user_name.clone(),
        email: event.body.email.clone(),
        channel: channel.to_owned(),
        event_time: event.attributes.time,
        delivered_at: Utc::now(),
        recorded_by,
    }
}

fn decode(message: &BorrowedMessage<'_>) -> Result<Event, DecodeError> {
    let headers: Vec<_> = message
        .headers()
        .map(|h| h.iter().map(|h| (h.key, h.value)).collect())
        .unwrap_or_default();
    events::decode(message.payload(), headers)
}

/// Sleeps for `delay`; returns `false` if shutdown came first.
async fn sleep_unless_shutdown(delay: Duration, shutdown: &Shutdown) -> bool {
    tokio::select! {
        () = shutdown.wait() => false,
        () = tokio::time::sleep(delay) => true,
    }
}

/// Offsets and lag of one assigned partition.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PartitionStatus {
    pub topic: String,
    pub partition: i32,
    /// Next offset the group will read; absent before the first commit.
    pub committed_offset: Option<i64>,
    pub high_watermark: i64,
    pub lag: i64,
}

/// Reads assignment, committed offsets and watermarks. Blocking: call it from
/// `spawn_blocking`.
pub fn partition_status(consumer: &KafkaConsumer) -> KafkaResult<Vec<PartitionStatus>> {
    let assignment: TopicPartitionList = consumer.assignment()?;
    if assignment.count() == 0 {
        return Ok(Vec::new());
    }
    let committed = consumer.committed_offsets(assignment, Duration::from_secs(2))?;
    let mut partitions = Vec::new();
    for element in committed.elements() {
        let (low, high) = consumer.fetch_watermarks(
            element.topic(),
            element.partition(),
            Duration::from_secs(2),
        )?;
        let committed_offset = match element.offset() {
            Offset::Offset(offset) => Some(offset),
            _ => None,
        };
        partitions.push(PartitionStatus {
            topic: element.topic().to_owned(),
            partition: element.partition(),
            committed_offset,
            high_watermark: high,
            lag: (high - committed_offset.unwrap_or(low)).max(0),
        });
    }
    Ok(partitions)
}

/// Publishes lag per partition to `kafka_consumer_lag` every `interval` until shutdown.
/// Holds the consumer weakly: it must not keep a dropped service's group member alive.
pub async fn report_lag(
    consumer: Weak<KafkaConsumer>,
    metrics: NotificationMetrics,
    interval: Duration,
    shutdown: Shutdown,
) {
    // Partitions taken away in a rebalance lose their series: their lag is the new
    // owner's to report, and a frozen value would add up in sum(kafka_consumer_lag).
    let mut reported: Vec<[String; 2]> = Vec::new();
    loop {
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let Some(consumer) = consumer.upgrade() else {
            return;
        };
        if let Ok(Ok(partitions)) =
            tokio::task::spawn_blocking(move || partition_status(&consumer)).await
        {
            let current: Vec<[String; 2]> = partitions
                .iter()
                .map(|p| [p.topic.clone(), p.partition.to_string()])
                .collect();
            for gone in reported.iter().filter(|labels| !current.contains(labels)) {
                let _ = metrics
                    .consumer_lag
                    .remove_label_values(&[gone[0].as_str(), gone[1].as_str()]);
            }
            for (p, [topic, partition]) in partitions.iter().zip(&current) {
                metrics
                    .consumer_lag
                    .with_label_values(&[topic.as_str(), partition.as_str()])
                    .set(p.lag);
            }
            reported = current;
        }
    }
}
