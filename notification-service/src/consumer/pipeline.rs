//! The one path every fetched message takes, for a batch of one or many:
//!
//! decode -> dedupe -> deliver -> record -> count and store offsets
//!
//! A pass takes the messages already fetched (up to [`super::MAX_BATCH`]): one query finds
//! the events recorded before (duplicates), the new ones are delivered in order, one
//! insert records them, and only then are their outcomes counted and their offsets
//! stored, in order. The two remaining steps handle what a pass cannot:
//!
//! * retry: anything unusual (an undecodable message, a failed delivery, a database
//!   error) sends the rest of the batch through the same steps one message at a time. A
//!   failed attempt at that message is counted and retried after a backoff; a delivery
//!   that failed `max_attempts` times is dead-lettered, a database outage is retried
//!   without limit (skipping the event would lose it). The message's later neighbours
//!   wait: the partition keeps its order.
//! * dead-letter: an undecodable message, or an event whose delivery kept failing, is
//!   copied to the dead-letter topic, and its offset stored, once the broker has it.
//!
//! Only shutdown stops a batch midway; the offsets of its unhandled events are then not
//! stored, and the events are redelivered to the next owner.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use events::{DecodeError, Event};
use rdkafka::consumer::Consumer;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use service_kit::Shutdown;
use service_kit::db::DbError;
use tracing::{Instrument, Span};
use uuid::Uuid;

use super::dead_letter::DeadLetters;
use super::kafka::KafkaConsumer;
use super::records::Records;
use super::status::StatusBoard;
use crate::delivery::{Channel, DeliveryError};
use crate::metrics::{NotificationMetrics, Outcome, SendOutcome, UNKNOWN_EVENT_TYPE};
use crate::spans;
use crate::store::Notification;

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

/// What went wrong in one attempt at an event.
#[derive(Debug, thiserror::Error)]
enum HandleError {
    #[error("notification store: {0}")]
    Store(#[from] DbError),
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
}

/// Everything the steps need.
pub struct Pipeline {
    /// Where offsets are stored.
    pub consumer: Arc<KafkaConsumer>,
    pub records: Records,
    pub channel: Channel,
    pub dead_letters: DeadLetters,
    pub metrics: NotificationMetrics,
    pub status: Arc<StatusBoard>,
    pub retry: RetryPolicy,
}

/// How a pass ended.
enum Pass {
    /// The first `n` messages were handled and their offsets stored.
    Handled(usize),
    /// The first `handled` messages were handled; delivering the next one failed (its
    /// consume span comes along, for the retries).
    DeliveryFailed {
        handled: usize,
        error: DeliveryError,
        span: Span,
    },
    /// The database failed: nothing of the pass was counted or stored.
    DbFailed(DbError),
}

/// The new events a pass delivered, up to the first failure.
#[derive(Default)]
struct Deliveries {
    /// One per event before the failure: delivered, or settled by the dedupe query.
    outcomes: Vec<Outcome>,
    /// The rows recording the deliveries.
    rows: Vec<Notification>,
    failed: Option<(DeliveryError, Span)>,
}

/// The pipeline's place in a batch: the messages left, whether they go one at a time,
/// and the retries of the first of them.
struct Position<'b, 'c> {
    rest: &'b [BorrowedMessage<'c>],
    one_by_one: bool,
    /// Failed attempts at the first message's event.
    attempts: u32,
    /// The first message's consume span, kept across its retries.
    span: Option<Span>,
}

impl<'b, 'c> Position<'b, 'c> {
    fn new(batch: &'b [BorrowedMessage<'c>]) -> Self {
        Self {
            rest: batch,
            one_by_one: false,
            attempts: 0,
            span: None,
        }
    }

    /// The messages of the next pass.
    fn chunk(&self) -> &'b [BorrowedMessage<'c>] {
        if self.one_by_one {
            &self.rest[..1]
        } else {
            self.rest
        }
    }

    fn head(&self) -> &'b BorrowedMessage<'c> {
        &self.rest[0]
    }

    fn head_span(&mut self) -> Span {
        let head = self.head();
        self.span
            .get_or_insert_with(|| spans::consume(head))
            .clone()
    }

    /// Moves past `n` handled messages.
    fn advance(&mut self, n: usize) {
        self.rest = &self.rest[n..];
        if n > 0 {
            self.attempts = 0;
            self.span = None;
        }
    }
}

impl Pipeline {
    /// Runs `batch` through the pipeline and stores its offsets. Returns `false` only
    /// when shutdown interrupted it.
    pub async fn run(&self, batch: &[BorrowedMessage<'_>], shutdown: &Shutdown) -> bool {
        let mut at = Position::new(batch);
        while !at.rest.is_empty() {
            if !self.step(&mut at, shutdown).await {
                return false;
            }
        }
        true
    }

    /// One pass over the next messages, then the retry or dead-letter step its end calls
    /// for. Returns `false` only when shutdown interrupted it.
    async fn step(&self, at: &mut Position<'_, '_>, shutdown: &Shutdown) -> bool {
        let chunk = at.chunk();
        let events = match chunk.iter().map(decode).collect::<Result<Vec<_>, _>>() {
            Ok(events) => events,
            // One at a time, the message is dead-lettered in its place in the order.
            Err(_) if chunk.len() > 1 => {
                at.one_by_one = true;
                return true;
            }
            Err(error) => return self.reject(at, &error, shutdown).await,
        };
        // One at a time, a message keeps one consume span across its attempts.
        let head_span = at.one_by_one.then(|| at.head_span());
        match self.pass(chunk, &events, head_span).await {
            Pass::Handled(n) => {
                at.advance(n);
                true
            }
            Pass::DeliveryFailed {
                handled,
                error,
                span,
            } => {
                at.advance(handled);
                at.one_by_one = true;
                at.span = Some(span);
                self.failed(at, &events[handled], error.into(), shutdown)
                    .await
            }
            // A batch's failure is not an attempt at any one of its events: they are
            // tried again at once, one by one, and only those failures count.
            Pass::DbFailed(error) if !at.one_by_one => {
                tracing::warn!(%error, "batch failed in the database; handling one by one");
                at.one_by_one = true;
                true
            }
            Pass::DbFailed(error) => self.failed(at, &events[0], error.into(), shutdown).await,
        }
    }

    /// Dedupe, deliver, record, then count and store the offsets of what was handled.
    /// `head_span` is the first message's consume span if an earlier attempt made one.
    async fn pass(
        &self,
        messages: &[BorrowedMessage<'_>],
        events: &[Event],
        head_span: Option<Span>,
    ) -> Pass {
        let ids: Vec<_> = events.iter().map(|e| e.attributes.id).collect();
        let seen = match self.records.recorded_among(&ids).await {
            Ok(seen) => seen,
            Err(error) => return Pass::DbFailed(error),
        };
        let delivered = self.deliver_new(messages, events, seen, head_span).await;
        let recorded_before = match self.records.record(&delivered.rows, events).await {
            Ok(recorded_before) => recorded_before,
            Err(error) => return Pass::DbFailed(error),
        };
        let handled = delivered.outcomes.len();
        self.settle(messages, events, &delivered.outcomes, &recorded_before);
        match delivered.failed {
            None => Pass::Handled(handled),
            Some((error, span)) => Pass::DeliveryFailed {
                handled,
                error,
                span,
            },
        }
    }

    /// Delivers, in order, the events not recorded before (`seen`: event id -> the
    /// attempt that recorded it), up to the first failure.
    async fn deliver_new(
        &self,
        messages: &[BorrowedMessage<'_>],
        events: &[Event],
        mut seen: HashMap<Uuid, Uuid>,
        mut head_span: Option<Span>,
    ) -> Deliveries {
        let attempt = Uuid::new_v4();
        let mut delivered = Deliveries::default();
        for (message, event) in messages.iter().zip(events) {
            let span = head_span.take();
            let id = event.attributes.id;
            if let Some(recorded_by) = seen.get(&id) {
                delivered
                    .outcomes
                    .push(self.records.settled(id, *recorded_by));
                continue;
            }
            let span = span.unwrap_or_else(|| spans::consume(message));
            if let Err(error) = self.deliver(event, &span).await {
                delivered.failed = Some((error, span));
                break;
            }
            // A second event with the same id later in the batch is a duplicate.
            seen.insert(id, attempt);
            let row = notification(event, self.channel.name(), attempt);
            delivered.rows.push(row);
            delivered.outcomes.push(Outcome::Delivered);
        }
        delivered
    }

    /// Delivers one event inside its message's consume span.
    async fn deliver(&self, event: &Event, consume: &Span) -> Result<(), DeliveryError> {
        // The delivery span must be created inside the consume span to be its child.
        let span = consume.in_scope(|| spans::deliver(self.channel.name()));
        let result = self
            .channel
            .deliver(event)
            .instrument(span)
            .instrument(consume.clone())
            .await;
        if result.is_ok() {
            self.metrics.sent(self.channel.name(), SendOutcome::Ok);
        }
        result
    }

    /// Counts the outcomes of a pass's handled events and stores their offsets, in
    /// order. An event some other attempt recorded meanwhile takes that outcome.
    fn settle(
        &self,
        messages: &[BorrowedMessage<'_>],
        events: &[Event],
        outcomes: &[Outcome],
        recorded_before: &HashMap<Uuid, Outcome>,
    ) {
        for ((message, event), &outcome) in messages.iter().zip(events).zip(outcomes) {
            let outcome = match recorded_before.get(&event.attributes.id) {
                Some(&settled) if outcome == Outcome::Delivered => settled,
                _ => outcome,
            };
            self.count_outcome(event, outcome);
            self.store_offset(message);
        }
    }

    /// The retry step: a failed attempt at the first message's event is counted, then
    /// retried after a backoff; a delivery that failed `max_attempts` times is
    /// dead-lettered instead. Returns `false` only when shutdown interrupted it.
    async fn failed(
        &self,
        at: &mut Position<'_, '_>,
        event: &Event,
        error: HandleError,
        shutdown: &Shutdown,
    ) -> bool {
        at.attempts += 1;
        let attempt = at.attempts;
        let span = at.head_span();
        span.in_scope(|| self.count_failure(event, &error, attempt));
        if matches!(error, HandleError::Delivery(_)) && attempt >= self.retry.max_attempts {
            self.count_outcome(event, Outcome::DeadLettered);
            return self
                .dead_letter_head(at, &error.to_string(), attempt, shutdown)
                .instrument(span)
                .await;
        }
        sleep_unless_shutdown(self.retry.delay(attempt), shutdown).await
    }

    fn count_failure(&self, event: &Event, error: &HandleError, attempt: u32) {
        tracing::warn!(%error, event_id = %event.attributes.id, attempt, "handling failed");
        self.status.error(error);
        self.count_outcome(event, Outcome::Failed);
        if matches!(error, HandleError::Delivery(_)) {
            self.metrics.sent(self.channel.name(), SendOutcome::Failed);
        }
    }

    /// A message that breaks the event contract is dead-lettered at once: no retry can
    /// make it decodable.
    async fn reject(
        &self,
        at: &mut Position<'_, '_>,
        error: &DecodeError,
        shutdown: &Shutdown,
    ) -> bool {
        let span = at.head_span();
        self.metrics
            .consumed(UNKNOWN_EVENT_TYPE, Outcome::DeadLettered);
        self.status.count(Outcome::DeadLettered);
        self.dead_letter_head(at, &error.to_string(), 0, shutdown)
            .instrument(span)
            .await
    }

    /// The dead-letter step: publishes the first message to the dead-letter topic, then
    /// stores its offset and moves past it. Retries until the broker takes it: a dead
    /// letter must not be lost either.
    async fn dead_letter_head(
        &self,
        at: &mut Position<'_, '_>,
        reason: &str,
        attempts: u32,
        shutdown: &Shutdown,
    ) -> bool {
        let message = at.head();
        let mut attempt = 0;
        while let Err(error) = self.dead_letters.send(message, reason, attempts).await {
            tracing::warn!(%error, "dead-letter publish failed");
            self.status.error(&error);
            attempt += 1;
            if !sleep_unless_shutdown(self.retry.delay(attempt), shutdown).await {
                return false;
            }
        }
        self.metrics.dlq_messages.inc();
        tracing::warn!(
            reason,
            partition = message.partition(),
            offset = message.offset(),
            "message dead-lettered"
        );
        self.store_offset(message);
        at.advance(1);
        true
    }

    /// Counts, between batches, the deliveries of this consumer's unanswered record
    /// attempts whose rows turned up.
    pub async fn settle_unknown(&self) {
        for unknown in self.records.settle_unknown().await {
            self.count(&unknown.event_type, unknown.event_time, Outcome::Delivered);
        }
    }

    fn count_outcome(&self, event: &Event, outcome: Outcome) {
        self.count(&event.attributes.event_type, event.attributes.time, outcome);
    }

    /// Counts an event's outcome in the metrics and the status, and a delivery's
    /// end-to-end latency.
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

    fn store_offset(&self, message: &BorrowedMessage<'_>) {
        if let Err(error) = self.consumer.store_offset_from_message(message) {
            tracing::warn!(%error, "could not store offset");
        }
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
