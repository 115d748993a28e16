//! `platformctl up`: the three services in one process. Embedded by default (SQLite files under
//! the data directory, librdkafka's in-process mock cluster as the broker); flags point it
//! at a real database and real brokers instead.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use service_kit::config::LogFormat;
use service_kit::kafka::{KafkaArgs, ensure_topics};
use service_kit::shutdown::run_until_signal;

#[derive(Debug, Parser)]
pub struct UpArgs {
    /// Where the embedded SQLite files live.
    #[arg(long, env = "PLATFORM_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,

    /// user-service database (default: SQLite file in the data directory).
    #[arg(long, env = "USERS_DATABASE_URL", hide_env_values = true)]
    users_database_url: Option<String>,

    /// notification-service database (default: SQLite file in the data directory).
    #[arg(long, env = "NOTIFICATIONS_DATABASE_URL", hide_env_values = true)]
    notifications_database_url: Option<String>,

    /// Real Kafka brokers (default: an in-process mock cluster).
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS")]
    kafka_bootstrap_servers: Option<String>,

    /// Topic of user events.
    #[arg(long, env = "KAFKA_TOPIC", default_value = events::TOPIC)]
    kafka_topic: String,

    /// Partitions of the topics the platform creates.
    #[arg(long, env = "KAFKA_TOPIC_PARTITIONS", default_value_t = 6)]
    partitions: i32,

    /// Admin bearer token (generated and printed when unset).
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,

    /// user-service address.
    #[arg(long, env = "USER_SERVICE_ADDR", default_value = "127.0.0.1:8000")]
    user_addr: SocketAddr,

    /// notification-service address.
    #[arg(
        long,
        env = "NOTIFICATION_SERVICE_ADDR",
        default_value = "127.0.0.1:8001"
    )]
    notification_addr: SocketAddr,

    /// prediction-service address.
    #[arg(
        long,
        env = "PREDICTION_SERVICE_ADDR",
        default_value = "127.0.0.1:8002"
    )]
    prediction_addr: SocketAddr,

    /// The prediction-service's ONNX model (reloaded when the file changes).
    #[arg(long, env = "MODEL_PATH", default_value = "models/wine-forest.onnx")]
    model_path: PathBuf,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    log_format: LogFormat,

    /// OTLP/HTTP collector base URL; traces are exported only when set. Both services
    /// share this process's resource (`service.name=platformctl`); each span carries a
    /// `service.name` attribute naming its service.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otel_exporter_otlp_endpoint: Option<String>,
}

const PREDICTION_REQUESTS: &str = "prediction_requests";
const PREDICTION_RESULTS: &str = "prediction_results";

/// The broker: a mock cluster kept alive for the run, or real brokers.
struct Broker {
    bootstrap_servers: String,
    _mock: Option<MockCluster<'static, DefaultProducerContext>>,
}

impl Broker {
    async fn start(args: &UpArgs) -> anyhow::Result<Self> {
        let topics = [
            args.kafka_topic.clone(),
            events::dlq_topic(&args.kafka_topic),
            PREDICTION_REQUESTS.to_owned(),
            format!("{PREDICTION_REQUESTS}.dlq"),
            PREDICTION_RESULTS.to_owned(),
        ];
        if let Some(servers) = &args.kafka_bootstrap_servers {
            let kafka = KafkaArgs::new(servers.clone(), args.kafka_topic.clone());
            let names: Vec<&str> = topics.iter().map(String::as_str).collect();
            ensure_topics(&kafka, &names, args.partitions, 1).await?;
            return Ok(Self {
                bootstrap_servers: servers.clone(),
                _mock: None,
            });
        }
        let mock = MockCluster::new(1).context("cannot start the Kafka mock cluster")?;
        for topic in &topics {
            mock.create_topic(topic, args.partitions, 1)?;
        }
        Ok(Self {
            bootstrap_servers: mock.bootstrap_servers(),
            _mock: Some(mock),
        })
    }

    fn is_mock(&self) -> bool {
        self._mock.is_some()
    }
}

fn sqlite_url(dir: &std::path::Path, file: &str) -> String {
    format!("sqlite://{}?mode=rwc", dir.join(file).display())
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let telemetry = service_kit::telemetry::init(
        args.log_format,
        args.otel_exporter_otlp_endpoint.as_deref(),
        "platformctl",
    );
    let result = run_platform(args).await;
    telemetry.shutdown();
    result
}

async fn run_platform(args: UpArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let broker = Broker::start(&args).await?;
    let kafka = KafkaArgs::new(broker.bootstrap_servers.clone(), args.kafka_topic.clone());
    let admin_token = args.admin_token.clone().unwrap_or_else(generate_token);

    let users_url = args
        .users_database_url
        .clone()
        .unwrap_or_else(|| sqlite_url(&args.data_dir, "users.db"));
    let mut users = user_service::Config::new(users_url, kafka.clone());
    users.http_addr = args.user_addr;
    users.common.admin_token = Some(admin_token.clone());
    users.outbox_sweep_interval_ms = 250;

    let notifications_url = args
        .notifications_database_url
        .clone()
        .unwrap_or_else(|| sqlite_url(&args.data_dir, "notifications.db"));
    let mut predictions = prediction_service::Config::new(
        &KafkaArgs::new(broker.bootstrap_servers.clone(), PREDICTION_REQUESTS),
        &args.model_path,
    );
    predictions.http_addr = args.prediction_addr;

    let mut notifications = notification_service::Config::new(notifications_url, kafka);
    notifications.http_addr = args.notification_addr;
    notifications.common.admin_token = Some(admin_token.clone());

    let user_app = user_service::Application::build(&users).await?;
    let notification_app = notification_service::Application::build(&notifications).await?;
    let prediction_app = prediction_service::Application::build(&predictions)
        .await
        .with_context(|| format!("prediction-service (model {})", args.model_path.display()))?;
    let addrs = [
        user_app.local_addr(),
        notification_app.local_addr(),
        prediction_app.local_addr(),
    ];
    print_banner(&args, &broker, addrs, &admin_token);

    run_until_signal(
        Duration::ZERO,
        Duration::from_secs(20),
        |shutdown| async move {
            let (users, notifications, predictions) = tokio::join!(
                user_app.run(shutdown.clone()),
                notification_app.run(shutdown.clone()),
                prediction_app.run(shutdown.clone())
            );
            users.and(notifications).and(predictions)
        },
    )
    .await?;
    println!("platform stopped");
    Ok(())
}

fn generate_token() -> String {
    (0..32)
        .map(|_| format!("{:x}", rand::random::<u8>() % 16))
        .collect()
}

fn print_banner(args: &UpArgs, broker: &Broker, addrs: [SocketAddr; 3], token: &str) {
    let [users, notifications, predictions] = addrs;
    let storage = if args.users_database_url.is_some() {
        "the configured databases".to_owned()
    } else {
        format!("SQLite files in {}", args.data_dir.display())
    };
    let kafka = if broker.is_mock() {
        "in-process Kafka mock cluster"
    } else {
        "Kafka at the configured brokers"
    };
    println!(
        "\nPlatform running ({storage}, {kafka})\n\
         \n  user-service          http://{users}   (API docs: http://{users}/docs)\
         \n  notification-service  http://{notifications}   (API docs: http://{notifications}/docs)\
         \n  prediction-service    http://{predictions}   (API docs: http://{predictions}/docs)\
         \n  admin token           {token}\
         \n\nRegister a user:\
         \n  curl -i -X POST http://{users}/register/ -H 'content-type: application/json' \\\
         \n       -d '{{\"user_name\": \"Ada Lovelace\", \"email\": \"ada@example.com\"}}'\
         \nSee it delivered:\
         \n  curl -H 'authorization: Bearer {token}' http://{notifications}/notifications\
         \nClassify a wine (or `platformctl predict` over Kafka):\
         \n  curl -X POST http://{predictions}/predict -H 'content-type: application/json' \\\
         \n       -d '{{\"features\": [13.2,1.78,2.14,11.2,100,2.65,2.76,0.26,1.28,4.38,1.05,3.4,1050]}}'\
         \n\nCtrl-C stops everything.\n"
    );
}
