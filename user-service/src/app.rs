//! Builds the user-service from its settings and runs it until shutdown.

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
use service_kit::housekeeping::{self, HousekeepingArgs};
use tokio::sync::Notify;

use crate::api::{AppState, router};
use crate::config::Config;
use crate::metrics::UserMetrics;
use crate::outbox::Relay;
use crate::store::UserStore;

// Tools and tests connect to a service's database as the service itself does.
pub use service_kit::app::connect_and_migrate;

static MIGRATIONS: Migrations = service_kit::migrations!();

/// A bound, ready-to-run user-service.
pub struct Application {
    http: HttpServer,
    relay: Option<Relay>,
    housekeeping: Housekeeping,
    readiness: Refresh<AppState>,
    db: Database,
}

/// What housekeeping trims: idempotency keys past their time to live.
struct Housekeeping {
    key_ttl: Duration,
    args: HousekeepingArgs,
}

impl Application {
    /// Connects, migrates and binds; port 0 picks a free port (tests).
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let db = connect_and_migrate(config).await?;
        Self::with_database(config, db).await
    }

    /// Builds on a connected (and migrated) database and binds.
    pub async fn with_database(config: &Config, db: Database) -> anyhow::Result<Self> {
        let producer: FutureProducer = config
            .kafka
            .producer_config()
            .create()
            .context("invalid Kafka producer settings")?;
        let metrics = UserMetrics::new()?;
        let relay_wake = Arc::new(Notify::new());
        let state = AppState {
            store: UserStore::new(db.clone()),
            db: db.clone(),
            producer: producer.clone(),
            topic: config.kafka.topic.clone(),
            relay_wake: relay_wake.clone(),
            metrics: metrics.clone(),
            admin: AdminToken::new(config.common.admin_token()?.as_deref()),
            trusted_proxies: config.common.trusted_proxies.clone(),
            rate_limiter: config.rate_limiter(),
        };
        let relay = config.outbox_relay.then(|| Relay {
            db: db.clone(),
            conn: OwnConnection::new(db.clone()),
            producer,
            topic: config.kafka.topic.clone(),
            wake: relay_wake,
            metrics,
            settings: config.relay_settings(),
        });
        Ok(Self {
            readiness: Refresh::new(state.clone()),
            http: HttpServer::bind(config.http_addr, router(state)).await?,
            relay,
            housekeeping: Housekeeping {
                key_ttl: config.idempotency_key_ttl,
                args: config.housekeeping.clone(),
            },
            db,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.http.local_addr()
    }

    /// Serves until `shutdown`: drains HTTP, stops the relay (which flushes the
    /// producer), closes the pool.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let relay = self
            .relay
            .map(|relay| tokio::spawn(relay.run(shutdown.clone())));
        let housekeeping = tokio::spawn(forget_old_idempotency_keys(
            UserStore::new(self.db.clone()),
            self.housekeeping,
            shutdown.clone(),
        ));
        self.readiness
            .alongside(&shutdown, self.http.serve(Config::NAME, shutdown.clone()))
            .await?;
        if let Some(relay) = relay {
            relay.await.context("outbox relay panicked")?;
        }
        housekeeping.await.context("housekeeping panicked")?;
        self.db.close().await;
        tracing::info!("user-service stopped");
        Ok(())
    }
}

/// Deletes expired idempotency keys on the housekeeping timer until shutdown.
async fn forget_old_idempotency_keys(store: UserStore, keep: Housekeeping, shutdown: Shutdown) {
    let Housekeeping { key_ttl, args } = keep;
    housekeeping::every(
        "idempotency_keys",
        args.housekeeping_interval,
        shutdown,
        || store.forget_keys_older_than(key_ttl, args.housekeeping_batch_rows),
    )
    .await;
}

impl DatabaseService for Config {
    const NAME: &'static str = "user-service";

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
