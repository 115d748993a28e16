//! Builds the notification-service from its settings and runs it until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rdkafka::producer::FutureProducer;
use service_kit::Shutdown;
use service_kit::app::{DatabaseService, DatabaseSettings, HttpServer, Migrations};
use service_kit::auth::AdminToken;
use service_kit::config::CommonArgs;
use service_kit::db::{Database, OwnConnection};
use service_kit::health::Refresh;

use crate::api::{AppState, router};
use crate::config::Config;
use crate::consumer::{
    DeadLetters, KafkaConsumer, Pipeline, RebalanceCommit, Records, StatusBoard, Worker, report_lag,
};
use crate::delivery::Channel;
use crate::metrics::NotificationMetrics;
use crate::retention::Retention;
use crate::store::NotificationStore;

// Tools and tests connect to a service's database as the service itself does.
pub use service_kit::app::connect_and_migrate;

static MIGRATIONS: Migrations = service_kit::migrations!();

const LAG_REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// A bound, ready-to-run notification-service.
pub struct Application {
    http: HttpServer,
    worker: Worker,
    retention: Retention,
    readiness: Refresh<AppState>,
    db: Database,
}

impl Application {
    /// Connects, migrates, creates the Kafka clients and binds; port 0 picks a free port.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let db = connect_and_migrate(config).await?;
        Self::with_database(config, db).await
    }

    /// Builds on a connected (and migrated) database and binds.
    pub async fn with_database(config: &Config, db: Database) -> anyhow::Result<Self> {
        let consumer: KafkaConsumer = config
            .kafka
            .consumer_config(&config.group_id)
            .create_with_context(RebalanceCommit::default())
            .context("invalid Kafka consumer settings")?;
        let consumer = Arc::new(consumer);
        let metrics = NotificationMetrics::new()?;
        let status = Arc::new(StatusBoard::default());
        let store = NotificationStore::new(db.clone());
        let state = AppState {
            store: store.clone(),
            db: db.clone(),
            consumer: consumer.clone(),
            status: status.clone(),
            group_id: config.group_id.clone(),
            topic: config.kafka.topic.clone(),
            metrics: metrics.clone(),
            admin: AdminToken::new(config.common.admin_token()?.as_deref()),
            trusted_proxies: config.common.trusted_proxies.clone(),
        };
        let parts = PipelineParts {
            consumer: consumer.clone(),
            store,
            db: db.clone(),
            status: status.clone(),
            metrics,
        };
        let worker = Worker {
            consumer,
            topic: config.kafka.topic.clone(),
            status,
            pipeline: pipeline(config, parts)?,
        };
        let retention = Retention::resolve(
            config.notifications_retention,
            &config.kafka,
            config.housekeeping.clone(),
        )
        .await?;
        Ok(Self {
            readiness: Refresh::new(state.clone()),
            http: HttpServer::bind(config.http_addr, router(state)).await?,
            worker,
            retention,
            db,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.http.local_addr()
    }

    /// Serves and consumes until `shutdown`: drains HTTP, commits offsets, closes the pool.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let lag = tokio::spawn(report_lag(
            Arc::downgrade(&self.worker.consumer),
            self.worker.pipeline.metrics.clone(),
            LAG_REPORT_INTERVAL,
            shutdown.clone(),
        ));
        let store = NotificationStore::new(self.db.clone());
        let housekeeping = tokio::spawn(self.retention.run(store, shutdown.clone()));
        let stop = shutdown.clone();
        let worker = self.worker;
        // If the consumer stops on its own (fatal Kafka error), the whole service stops.
        let worker = tokio::spawn(async move {
            let result = worker.run(stop.clone()).await;
            stop.trigger();
            result
        });
        let served = self
            .readiness
            .alongside(&shutdown, self.http.serve(Config::NAME, shutdown.clone()))
            .await;
        worker
            .await
            .context("consumer panicked")?
            .context("consumer failed")?;
        lag.await.context("lag reporter panicked")?;
        housekeeping.await.context("housekeeping panicked")?;
        served?;
        self.db.close().await;
        tracing::info!("notification-service stopped");
        Ok(())
    }
}

/// What the consumer's pipeline shares with the HTTP side.
struct PipelineParts {
    consumer: Arc<KafkaConsumer>,
    store: NotificationStore,
    db: Database,
    status: Arc<StatusBoard>,
    metrics: NotificationMetrics,
}

/// The consumer's steps with the clients of their own: the delivery channel, the
/// dead-letter producer and the connection records are written on.
fn pipeline(config: &Config, parts: PipelineParts) -> anyhow::Result<Pipeline> {
    let channel = Channel::new(config.channel, &config.smtp, &config.webhook)
        .context("invalid delivery channel settings")?;
    let producer: FutureProducer = config
        .kafka
        .producer_config()
        .create()
        .context("invalid Kafka producer settings")?;
    Ok(Pipeline {
        consumer: parts.consumer,
        records: Records {
            store: parts.store,
            conn: OwnConnection::new(parts.db),
            unsettled: Default::default(),
        },
        channel,
        dead_letters: DeadLetters {
            producer,
            topic: events::dlq_topic(&config.kafka.topic),
        },
        metrics: parts.metrics,
        status: parts.status,
        retry: config.retry_policy(),
    })
}

impl DatabaseService for Config {
    const NAME: &'static str = "notification-service";

    fn common(&self) -> &CommonArgs {
        &self.common
    }

    fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    fn database(&self) -> DatabaseSettings<'_> {
        DatabaseSettings {
            url: &self.database_url,
            max_connections: self.database_max_connections,
            migrations: &MIGRATIONS,
        }
    }

    async fn serve_on(&self, db: Database, shutdown: Shutdown) -> anyhow::Result<()> {
        Application::with_database(self, db)
            .await?
            .run(shutdown)
            .await
    }
}
