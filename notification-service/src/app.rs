//! Builds the notification-service from its settings and runs it until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use rdkafka::producer::FutureProducer;
use service_kit::Shutdown;
use service_kit::auth::AdminToken;
use service_kit::db::{Database, OwnConnection};
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;

use crate::api::{AppState, router};
use crate::config::Config;
use crate::consumer::{
    DeadLetters, KafkaConsumer, Pipeline, RebalanceCommit, Records, StatusBoard, Worker, report_lag,
};
use crate::delivery::Channel;
use crate::metrics::NotificationMetrics;
use crate::retention::Retention;
use crate::store::NotificationStore;

static MYSQL_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/mysql");
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");

const LAG_REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// A bound, ready-to-run notification-service.
pub struct Application {
    listener: TcpListener,
    router: Router,
    worker: Worker,
    retention: Retention,
    db: Database,
}

/// Connects to the database and applies the migrations.
pub async fn connect_and_migrate(config: &Config) -> anyhow::Result<Database> {
    let db = Database::connect(&config.database_url, config.database_max_connections).await?;
    if config.common.run_migrations || config.common.migrate_only {
        db.migrate(&MYSQL_MIGRATIONS, &SQLITE_MIGRATIONS).await?;
    }
    Ok(db)
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
        let channel = Channel::new(config.channel, &config.smtp, &config.webhook)
            .context("invalid delivery channel settings")?;
        let dead_letters: FutureProducer = config
            .kafka
            .producer_config()
            .create()
            .context("invalid Kafka producer settings")?;
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
        let pipeline = Pipeline {
            consumer: consumer.clone(),
            records: Records {
                store,
                conn: OwnConnection::new(db.clone()),
                unsettled: Default::default(),
            },
            channel,
            dead_letters: DeadLetters {
                producer: dead_letters,
                topic: events::dlq_topic(&config.kafka.topic),
            },
            metrics,
            status: status.clone(),
            retry: config.retry_policy(),
        };
        let worker = Worker {
            consumer,
            topic: config.kafka.topic.clone(),
            status,
            pipeline,
        };
        let retention = Retention::resolve(
            config.notifications_retention,
            &config.kafka,
            config.housekeeping.clone(),
        )
        .await?;
        let listener = TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.http_addr))?;
        Ok(Self {
            listener,
            router: router(state),
            worker,
            retention,
            db,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
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
        tracing::info!(addr = %self.listener.local_addr()?, "notification-service listening");
        let served = service_kit::http::serve(self.listener, self.router, shutdown.clone()).await;
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

impl service_kit::runner::ServiceConfig for Config {
    const NAME: &'static str = "notification-service";

    fn common(&self) -> &service_kit::config::CommonArgs {
        &self.common
    }

    fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        connect_and_migrate(self).await.map(drop)
    }

    async fn serve(&self, shutdown: Shutdown) -> anyhow::Result<()> {
        // Until the database answers (and is migrated), retry and stay live but not ready.
        let db =
            service_kit::startup::retry_until_ready("database", self.http_addr, &shutdown, || {
                connect_and_migrate(self)
            });
        let Some(db) = db.await? else {
            return Ok(());
        };
        Application::with_database(self, db)
            .await?
            .run(shutdown)
            .await
    }
}
