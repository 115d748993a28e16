//! platformctl: runs the embedded platform (`up`, the default) and operates a running one.

mod cluster;
mod consumer;
mod dlq;
mod load;
mod predict;
mod status;
mod topics;
mod up;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "platformctl",
    version,
    about = "Runs and operates the user/notification platform."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run both services in this process with embedded SQLite and an in-process Kafka
    /// mock cluster (the default), or against a real database and brokers.
    Up(up::UpArgs),
    /// Manage Kafka topics.
    #[command(subcommand)]
    Topics(topics::TopicsCommand),
    /// Inspect and replay the dead-letter topic.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// Load-test `POST /register/` or the prediction-service (HTTP or Kafka request/reply)
    /// and report throughput and latency percentiles.
    Load(Box<load::LoadArgs>),
    /// Send prediction requests over Kafka and print the answers, matched by request id.
    Predict(predict::PredictArgs),
    /// Show a release on a Kubernetes cluster: workloads, pods, consumer lag per
    /// partition and the outbox backlog (kubeconfig and context as kubectl).
    Status(status::StatusArgs),
    /// Pause, resume or show the Kafka consumer of every notification-service pod of a
    /// release on a Kubernetes cluster, each through the API server's pod proxy.
    Consumer(consumer::ConsumerArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli
        .command
        .unwrap_or_else(|| Command::Up(up::UpArgs::parse_from(["up"])));
    let result = match command {
        Command::Up(args) => up::run(args).await,
        Command::Topics(command) => topics::run(command).await,
        Command::Dlq(command) => dlq::run(command).await,
        Command::Load(args) => load::run(*args).await,
        Command::Predict(args) => predict::run(args).await,
        Command::Status(args) => status::run(args).await,
        Command::Consumer(args) => consumer::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("platformctl: {error:#}");
            ExitCode::FAILURE
        }
    }
}
