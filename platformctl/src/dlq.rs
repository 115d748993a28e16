//! `platformctl dlq replay`: re-publishes dead letters to the events topic once their
//! cause is fixed (a receiver back up, a bug deployed away).
//!
//! Reads `<topic>.dlq` from where its own consumer group stopped (the beginning the first
//! time) up to the end as it was at the start, re-publishes each message's key, payload
//! and original headers (without the `dlq.*` ones) with the idempotent producer, and
//! commits what was re-published, so a second replay does not repeat it. Replays are safe:
//! the notification-service dedupes on the event id, so an event that was delivered after
//! all is counted as a duplicate, not sent twice.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{Message, Offset, TopicPartitionList};
use service_kit::kafka::KafkaArgs;

const BROKER_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Re-publish the dead letters of `<topic>.dlq` to the topic, each once.
    Replay(ReplayArgs),
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    kafka: KafkaArgs,

    /// List what would be replayed; publish and commit nothing.
    #[arg(long)]
    dry_run: bool,

    /// Replay at most N messages (the oldest of each partition first).
    #[arg(long)]
    limit: Option<usize>,

    /// Consumer group that remembers how far the dead-letter topic was replayed.
    #[arg(
        long,
        env = "DLQ_REPLAY_GROUP",
        default_value = "platformctl-dlq-replay"
    )]
    group: String,
}

pub async fn run(command: DlqCommand) -> anyhow::Result<()> {
    match command {
        DlqCommand::Replay(args) => {
            let summary = Replay::new(&args)?.run(&args).await?;
            println!("{summary}");
            Ok(())
        }
    }
}

/// Where replay starts and ends in one partition of the dead-letter topic.
#[derive(Debug, Clone, Copy)]
struct Range {
    start: i64,
    end: i64,
}

struct Summary {
    dlq: String,
    topic: String,
    pending: i64,
    handled: usize,
    dry_run: bool,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (dlq, topic, handled, pending) = (&self.dlq, &self.topic, self.handled, self.pending);
        if self.dry_run {
            write!(
                f,
                "dry run: would replay {handled} of {pending} dead letters from {dlq} to {topic}"
            )
        } else {
            write!(
                f,
                "replayed {handled} of {pending} dead letters from {dlq} to {topic}"
            )
        }
    }
}

struct Replay {
    consumer: Arc<StreamConsumer>,
    producer: FutureProducer,
    dlq: String,
    topic: String,
}

impl Replay {
    fn new(args: &ReplayArgs) -> anyhow::Result<Self> {
        let mut config = args.kafka.consumer_config(&args.group);
        // Only what was re-published is committed, explicitly.
        config.set("enable.auto.commit", "false");
        Ok(Self {
            consumer: Arc::new(config.create().context("invalid Kafka consumer settings")?),
            producer: args
                .kafka
                .producer_config()
                .create()
                .context("invalid Kafka producer settings")?,
            dlq: events::dlq_topic(&args.kafka.topic),
            topic: args.kafka.topic.clone(),
        })
    }

    async fn run(self, args: &ReplayArgs) -> anyhow::Result<Summary> {
        let mut ranges = self.ranges().await?;
        let pending = ranges.values().map(|r| r.end - r.start).sum();
        let limit = args.limit.unwrap_or(usize::MAX);
        let mut handled = 0;
        let mut replayed = BTreeMap::new();
        if !ranges.is_empty() && limit > 0 {
            self.assign(&ranges)?;
        }
        while !ranges.is_empty() && handled < limit {
            let message = tokio::time::timeout(BROKER_TIMEOUT, self.consumer.recv())
                .await
                .with_context(|| format!("no message from {} within {BROKER_TIMEOUT:?}", self.dlq))?
                .context("reading the dead-letter topic")?;
            let (partition, offset) = (message.partition(), message.offset());
            if ranges.get(&partition).is_none_or(|r| offset >= r.end) {
                continue;
            }
            println!("{}", describe(&message));
            if !args.dry_run {
                self.republish(&message).await?;
                replayed.insert(partition, offset + 1);
            }
            handled += 1;
            if offset + 1 >= ranges[&partition].end {
                ranges.remove(&partition);
            }
        }
        self.commit(replayed).await?;
        Ok(Summary {
            dlq: self.dlq,
            topic: self.topic,
            pending,
            handled,
            dry_run: args.dry_run,
        })
    }

    /// Per partition with something to replay: the group's committed offset (or the
    /// oldest message) up to the high watermark as it is now.
    async fn ranges(&self) -> anyhow::Result<BTreeMap<i32, Range>> {
        let (consumer, dlq) = (self.consumer.clone(), self.dlq.clone());
        tokio::task::spawn_blocking(move || {
            let metadata = consumer
                .fetch_metadata(Some(&dlq), BROKER_TIMEOUT)
                .with_context(|| format!("cannot read the metadata of {dlq}"))?;
            let topic = metadata
                .topics()
                .iter()
                .find(|t| t.name() == dlq && t.error().is_none())
                .with_context(|| {
                    format!("topic {dlq} not found: run `platformctl topics create`")
                })?;
            let mut all = TopicPartitionList::new();
            for p in topic.partitions() {
                all.add_partition(&dlq, p.id());
            }
            let committed = consumer.committed_offsets(all, BROKER_TIMEOUT)?;
            let mut ranges = BTreeMap::new();
            for element in committed.elements() {
                let partition = element.partition();
                let (low, high) = consumer.fetch_watermarks(&dlq, partition, BROKER_TIMEOUT)?;
                let start = match element.offset() {
                    Offset::Offset(offset) => offset.max(low),
                    _ => low,
                };
                if start < high {
                    ranges.insert(partition, Range { start, end: high });
                }
            }
            Ok(ranges)
        })
        .await?
    }

    fn assign(&self, ranges: &BTreeMap<i32, Range>) -> anyhow::Result<()> {
        let mut list = TopicPartitionList::new();
        for (partition, range) in ranges {
            list.add_partition_offset(&self.dlq, *partition, Offset::Offset(range.start))?;
        }
        self.consumer.assign(&list)?;
        Ok(())
    }

    /// Publishes the message as it was before it was dead-lettered, and waits for the
    /// broker's acknowledgement.
    async fn republish(&self, message: &BorrowedMessage<'_>) -> anyhow::Result<()> {
        let headers = message
            .headers()
            .into_iter()
            .flat_map(|h| h.iter())
            .filter(|h| !h.key.starts_with("dlq."))
            .fold(OwnedHeaders::new(), |all, h| {
                all.insert(Header {
                    key: h.key,
                    value: h.value,
                })
            });
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.topic).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        self.producer
            .send(record, Timeout::After(BROKER_TIMEOUT))
            .await
            .map_err(|(error, _)| error)
            .with_context(|| format!("cannot publish to {}", self.topic))?;
        Ok(())
    }

    /// Commits the next offset of each partition replayed from.
    async fn commit(&self, replayed: BTreeMap<i32, i64>) -> anyhow::Result<()> {
        if replayed.is_empty() {
            return Ok(());
        }
        let mut list = TopicPartitionList::new();
        for (partition, next) in replayed {
            list.add_partition_offset(&self.dlq, partition, Offset::Offset(next))?;
        }
        let consumer = self.consumer.clone();
        tokio::task::spawn_blocking(move || consumer.commit(&list, CommitMode::Sync))
            .await?
            .context("cannot commit the replayed offsets")
    }
}

/// One line per dead letter: where it is, its key, why it failed.
fn describe(message: &BorrowedMessage<'_>) -> String {
    let header = |name: &str| {
        message
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == name))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_else(|| "-".to_owned())
    };
    let key = message.key().map_or_else(
        || "-".to_owned(),
        |k| String::from_utf8_lossy(k).into_owned(),
    );
    format!(
        "{}[{}]@{} key={key} attempts={} reason={}",
        message.topic(),
        message.partition(),
        message.offset(),
        header("dlq.attempts"),
        header("dlq.reason"),
    )
}
