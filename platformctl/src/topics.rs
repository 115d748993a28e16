//! `platformctl topics create`: the event topic and its dead-letter topic, idempotently.

use clap::{Args, Subcommand};
use service_kit::kafka::{KafkaArgs, ensure_topics};

#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// Create the events topic and its `.dlq` (existing topics are left as they are).
    Create(CreateArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    kafka: KafkaArgs,

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
            let dlq = events::dlq_topic(&args.kafka.topic);
            ensure_topics(
                &args.kafka,
                &[&args.kafka.topic, &dlq],
                args.partitions,
                args.replication,
            )
            .await?;
            println!("topics ready: {} and {dlq}", args.kafka.topic);
            Ok(())
        }
    }
}
