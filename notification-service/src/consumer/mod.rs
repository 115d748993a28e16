//! The consumer: at-least-once consumption with an exactly-once effect.
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
//!
//! Layers: this module is the loop (fetch a batch, run it through the pipeline, settle
//! unanswered records between batches); [`pipeline`] is the steps every message takes;
//! [`records`], [`dead_letter`] and [`unsettled`] are what the steps use; [`kafka`] is the
//! consumer's Kafka side (rebalances, pausing, lag) and [`status`] what the API reports.

mod dead_letter;
mod kafka;
mod pipeline;
mod records;
mod status;
mod unsettled;

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaResult;
use rdkafka::message::BorrowedMessage;
use service_kit::Shutdown;

pub use dead_letter::DeadLetters;
pub use kafka::{
    KafkaConsumer, PartitionStatus, RebalanceCommit, commit_sync, partition_status, report_lag,
    set_paused,
};
pub use pipeline::{Pipeline, RetryPolicy};
pub use records::Records;
pub use status::{ConsumerState, Counters, StatusBoard};
pub use unsettled::Unsettled;

/// How often record attempts without an answer are looked up between batches.
const SETTLE_INTERVAL: Duration = Duration::from_secs(1);

/// Most messages run through the pipeline together.
const MAX_BATCH: usize = 500;

/// The consumer loop.
pub struct Worker {
    pub consumer: Arc<KafkaConsumer>,
    pub topic: String,
    pub status: Arc<StatusBoard>,
    pub pipeline: Pipeline,
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
                    self.pipeline.settle_unknown().await;
                    continue;
                }
            };
            match message {
                Ok(message) => {
                    let batch = self.ready_batch(message);
                    if !self.pipeline.run(&batch, &shutdown).await {
                        break;
                    }
                }
                Err(error) => self.consumer_error(&error),
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

    /// `first` and the messages that are already fetched, without waiting for more.
    fn ready_batch<'c>(&'c self, first: BorrowedMessage<'c>) -> Vec<BorrowedMessage<'c>> {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match self.consumer.recv().now_or_never() {
                Some(Ok(message)) => batch.push(message),
                Some(Err(error)) => {
                    self.consumer_error(&error);
                    break;
                }
                None => break,
            }
        }
        batch
    }

    fn consumer_error(&self, error: &rdkafka::error::KafkaError) {
        tracing::warn!(%error, "consumer error");
        self.status.error(error);
    }
}
