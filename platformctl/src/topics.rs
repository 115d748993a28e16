//! `platformctl topics create`: topics and their dead-letter topics, idempotently.

use clap::{Args, Subcommand};
use service_kit::kafka::{KafkaArgs, ensure_topics};

#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// Create topics, each with its `.dlq` (existing topics are left as they are).
    Create(CreateArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    kafka: KafkaArgs,

    /// The topics to create, each with its `.dlq`; none means `--topic` (KAFKA_TOPIC). Several
    /// in one command let an image without a shell create them all in one job.
    topics: Vec<String>,

    /// Partitions per topic.
    #[arg(long, env = "KAFKA_TOPIC_PARTITIONS", default_value_t = 6)]
    partitions: i32,

    /// Replication factor.
    #[arg(long, env = "KAFKA_TOPIC_REPLICATION", default_value_t = 1)]
    replication: i32,
}

pub async fn run(command: TopicsCommand) -> anyhow::Result<()> {
    // A one-shot command: logs only, no traces.
    let _telemetry =
        service_kit::telemetry::init(service_kit::config::LogFormat::Pretty, None, "platformctl");
    match command {
        TopicsCommand::Create(args) => {
            let named = if args.topics.is_empty() {
                vec![args.kafka.topic.clone()]
            } else {
                args.topics.clone()
            };
            let all: Vec<String> = named
                .iter()
                .flat_map(|topic| [topic.clone(), events::dlq_topic(topic)])
                .collect();
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            ensure_topics(&args.kafka, &refs, args.partitions, args.replication).await?;
            println!("topics ready: {}", all.join(", "));
            Ok(())
        }
    }
}
