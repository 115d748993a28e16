//! The fast path of the consumer: the messages already fetched are handled together, with
//! one dedupe query and one insert for all of them instead of two round-trips per event.
//!
//! It keeps the offset policy: offsets are stored, in order, only after the events were
//! delivered and recorded or found to be duplicates. Anything unusual (an undecodable
//! message, a delivery failure, a database error, a concurrent record) hands the rest of
//! the batch to the one-at-a-time path with its retries and dead letters.

use std::collections::HashMap;

use events::Event;
use futures::FutureExt;
use rdkafka::consumer::Consumer;
use rdkafka::message::BorrowedMessage;
use service_kit::Shutdown;
use service_kit::db::DbError;
use tracing::Instrument;
use uuid::Uuid;

use super::{Worker, decode, notification};
use crate::delivery::DeliveryError;
use crate::metrics::{Outcome, SendOutcome};
use crate::store::{Notification, Recorded};

/// Most messages handled together.
const MAX_BATCH: usize = 500;

impl Worker {
    /// `first` and the messages that are already fetched, without waiting for more.
    pub(super) fn ready_batch<'c>(
        &'c self,
        first: BorrowedMessage<'c>,
    ) -> Vec<BorrowedMessage<'c>> {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match self.consumer.recv().now_or_never() {
                Some(Ok(message)) => batch.push(message),
                Some(Err(error)) => {
                    tracing::warn!(%error, "consumer error");
                    self.status.error(&error);
                    break;
                }
                None => break,
            }
        }
        batch
    }

    /// Handles `batch` and stores its offsets. Returns `false` only when shutdown
    /// interrupted it; offsets of unhandled events are then not stored.
    pub(super) async fn handle_batch(
        &self,
        batch: &[BorrowedMessage<'_>],
        shutdown: &Shutdown,
    ) -> bool {
        let (handled, mut failed) = match batch.iter().map(decode).collect::<Result<Vec<_>, _>>() {
            Ok(events) => self.fast(batch, &events).await,
            Err(_) => (0, None),
        };
        for message in &batch[handled..] {
            // The failed attempt belongs to the first event the fast path did not handle.
            if !self.handle(message, shutdown, failed.take()).await {
                return false;
            }
            self.store_offset(message);
        }
        true
    }

    /// Handles a prefix of the batch together and returns its length: up to the first
    /// delivery failure (returned too: it is that event's first attempt), or 0 when the
    /// database failed (the whole batch then takes the slow path, which re-delivers what
    /// was delivered but not recorded, as it does after any store error).
    async fn fast(
        &self,
        batch: &[BorrowedMessage<'_>],
        events: &[Event],
    ) -> (usize, Option<DeliveryError>) {
        let ids: Vec<_> = events.iter().map(|e| e.attributes.id).collect();
        let mut seen = match self.recorded_among(&ids).await {
            Ok(recorded) => recorded,
            Err(error) => {
                tracing::warn!(%error, "batch dedupe failed; handling one by one");
                return (0, None);
            }
        };
        let attempt = Uuid::new_v4();
        let mut new = Vec::new();
        let mut failed = None;
        let mut outcomes = Vec::with_capacity(events.len());
        for (message, event) in batch.iter().zip(events) {
            let id = event.attributes.id;
            if let Some(recorded_by) = seen.get(&id) {
                outcomes.push(self.settled(id, *recorded_by));
                continue;
            }
            if let Err(error) = self.deliver(message, event).await {
                failed = Some(error);
                break;
            }
            seen.insert(id, attempt);
            new.push(notification(event, self.channel.name(), attempt));
            outcomes.push(Outcome::Delivered);
        }
        let Some(recorded_before) = self.record(&new, events).await else {
            return (0, None);
        };
        for ((message, event), mut outcome) in
            batch.iter().zip(events).zip(outcomes.iter().copied())
        {
            if outcome == Outcome::Delivered
                && let Some(settled) = recorded_before.get(&event.attributes.id)
            {
                outcome = *settled;
            }
            self.finish(event, outcome);
            self.store_offset(message);
        }
        (outcomes.len(), failed)
    }

    /// Records `new` in one statement. Returns the outcomes of the events that some other
    /// attempt had recorded meanwhile (found one by one after a unique violation), or
    /// `None` when the database failed: the rows it may have written all the same are
    /// then unsettled.
    async fn record(
        &self,
        new: &[Notification],
        events: &[Event],
    ) -> Option<HashMap<Uuid, Outcome>> {
        let error = match self.record_all(new).await {
            Ok(()) => {
                self.unsettled.forget(new.iter().map(|n| n.event_id));
                return Some(HashMap::new());
            }
            Err(error) => error,
        };
        if !error.is_unique_violation() {
            tracing::warn!(%error, "batch record failed; handling one by one");
            self.unsettle(new, events);
            return None;
        }
        let mut recorded_before = HashMap::new();
        for (i, n) in new.iter().enumerate() {
            match self.record_one(n).await {
                Ok(None) => {}
                Ok(Some(outcome)) => {
                    recorded_before.insert(n.event_id, outcome);
                }
                Err(error) => {
                    tracing::warn!(%error, "record failed; handling one by one");
                    self.unsettle(&new[i..], events);
                    return None;
                }
            }
        }
        Some(recorded_before)
    }

    /// Records one row; `Some` outcome if the event's row existed already.
    async fn record_one(&self, n: &Notification) -> Result<Option<Outcome>, DbError> {
        match self.store.record(n).await {
            Ok(Recorded::New) => {
                self.unsettled.forget([n.event_id]);
                Ok(None)
            }
            Err(error) => Err(error),
            Ok(Recorded::Duplicate) => {
                let recorded_by = self.store.recorded_by(n.event_id).await?;
                Ok(Some(
                    self.settled(n.event_id, recorded_by.unwrap_or_default()),
                ))
            }
        }
    }

    /// Remembers rows whose record attempt got no answer, with their events' types.
    fn unsettle(&self, rows: &[Notification], events: &[Event]) {
        for row in rows {
            let event_type = events
                .iter()
                .find(|e| e.attributes.id == row.event_id)
                .map_or(events::USER_REGISTERED_TYPE, |e| {
                    e.attributes.event_type.as_str()
                });
            self.unsettled.add(row, event_type);
        }
    }

    /// The batch's dedupe query, on the consumer's own connection: the ids already
    /// recorded, each with the attempt that recorded it. The connection is held per
    /// statement, not across deliveries: on SQLite it is the pool's only one.
    pub(super) async fn recorded_among(
        &self,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, Uuid>, DbError> {
        let mut conn = self.conn.lock().await?;
        let recorded = self.store.recorded_among(&mut conn, ids).await?;
        conn.keep();
        Ok(recorded)
    }

    /// The batch's insert, on the consumer's own connection. A unique violation leaves the
    /// connection usable.
    async fn record_all(&self, new: &[Notification]) -> Result<(), DbError> {
        let mut conn = self.conn.lock().await?;
        let result = self.store.record_all(&mut conn, new).await;
        if result.is_ok() || result.as_ref().is_err_and(DbError::is_unique_violation) {
            conn.keep();
        }
        result
    }

    fn store_offset(&self, message: &BorrowedMessage<'_>) {
        if let Err(error) = self.consumer.store_offset_from_message(message) {
            tracing::warn!(%error, "could not store offset");
        }
    }

    /// Delivers one event; on failure the slow path retries it.
    async fn deliver(
        &self,
        message: &BorrowedMessage<'_>,
        event: &Event,
    ) -> Result<(), DeliveryError> {
        // The delivery span must be created inside the consume span to be its child.
        let consume = crate::spans::consume(message);
        let span = consume.in_scope(|| crate::spans::deliver(self.channel.name()));
        let result = self
            .channel
            .deliver(event)
            .instrument(span)
            .instrument(consume)
            .await;
        if result.is_ok() {
            self.metrics.sent(self.channel.name(), SendOutcome::Ok);
        }
        result
    }
}
