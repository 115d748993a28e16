//! The Kafka side of the consumer: offsets committed before a rebalance takes partitions
//! away, pausing that survives rebalances, and offsets and lag per partition.

use std::sync::Weak;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::Serialize;
use service_kit::Shutdown;
use utoipa::ToSchema;

use crate::metrics::NotificationMetrics;

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
