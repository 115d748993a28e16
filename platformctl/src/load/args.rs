//! The options of `platformctl load`.

use clap::Parser;

use super::verify::VerifyArgs;
use crate::predict::RequestReplyArgs;

/// What a load run drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetKind {
    /// `POST /register/` of the user-service at `--url` (or its store, `--database-url`).
    Register,
    /// `POST /predict` of the prediction-service at `--url`, one request each.
    PredictHttp,
    /// Prediction requests on `--request-topic` at `--brokers`, each answer awaited on
    /// `--reply-topic` (sent as the `reply-to` header).
    PredictKafka,
}

// The Kafka options only matter for one target of `load`: their help says which.
#[derive(Debug, Clone, Parser)]
#[command(
    mut_arg("brokers", |a| a.help("Kafka bootstrap servers (`--target predict-kafka`)")),
    mut_arg("request_topic", |a| {
        a.help("Topic of prediction requests (`--target predict-kafka`)")
    }),
    mut_arg("reply_topic", |a| {
        a.help("Topic the answers are awaited on (`--target predict-kafka`)")
    })
)]
pub struct LoadArgs {
    /// What to drive.
    #[arg(long, value_enum, default_value_t = TargetKind::Register)]
    pub target: TargetKind,

    /// Service base URL: the user-service, or the prediction-service for
    /// `--target predict-http` (e.g. http://127.0.0.1:8002).
    #[arg(
        long,
        env = "USER_SERVICE_URL",
        default_value = "http://127.0.0.1:8000"
    )]
    pub url: String,

    /// Skip HTTP and Kafka: run the registration transaction (user + outbox row) straight
    /// against this database through the user-service store. This is the ceiling the
    /// HTTP path is measured against.
    #[arg(long, hide_env_values = true, conflicts_with = "verify")]
    pub database_url: Option<String>,

    #[command(flatten)]
    pub topics: RequestReplyArgs,

    /// Requests in flight at once (one keep-alive connection each).
    #[arg(long, short = 'c', default_value_t = 8)]
    pub concurrency: usize,

    /// Target rate in requests per second over all connections (default: as fast as
    /// possible). Latency is then measured from each request's scheduled start, so a
    /// stalled server cannot hide queueing delay.
    #[arg(long)]
    pub rate: Option<f64>,

    /// Requests to send (default 1000 unless `--duration` is given).
    #[arg(long, short = 'n')]
    pub count: Option<u64>,

    /// Seconds to run; with `--count`, whichever ends first.
    #[arg(long)]
    pub duration: Option<f64>,

    /// Tag in the generated emails (default: random), so runs never collide.
    #[arg(long)]
    pub run_id: Option<String>,

    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,

    /// After the run, wait until every created user was notified and check that each
    /// was notified exactly once; also measures end-to-end latency.
    #[arg(long)]
    pub verify: bool,

    #[command(flatten)]
    pub verify_args: VerifyArgs,
}
