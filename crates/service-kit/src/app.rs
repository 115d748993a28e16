//! The skeleton every service is built on: its embedded migrations, connecting to and
//! migrating its database, its router on a bound port, and the runner's hooks for a
//! service that owns a database.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;

use crate::Shutdown;
use crate::config::CommonArgs;
use crate::db::Database;
use crate::runner::ServiceConfig;

/// A service's migrations, one set per SQL dialect, because DDL differs between them.
pub struct Migrations {
    pub mysql: Migrator,
    pub sqlite: Migrator,
}

/// Embeds the calling crate's `migrations/mysql` and `migrations/sqlite` as [`Migrations`]
/// (the paths are the calling crate's: `sqlx::migrate!` reads them at compile time).
#[macro_export]
macro_rules! migrations {
    () => {
        $crate::app::Migrations {
            mysql: ::sqlx::migrate!("./migrations/mysql"),
            sqlite: ::sqlx::migrate!("./migrations/sqlite"),
        }
    };
}

/// Where a service's own database is, and the schema it is migrated to.
pub struct DatabaseSettings<'a> {
    pub url: &'a str,
    pub max_connections: u32,
    pub migrations: &'static Migrations,
}

/// A service that owns a database. Implementing it makes the settings the runner's
/// [`ServiceConfig`]: `--migrate-only` migrates, and start-up waits (live, not ready)
/// until the database answers and is migrated before the service is built.
pub trait DatabaseService: Sized {
    /// Service name in logs and traces.
    const NAME: &'static str;

    fn common(&self) -> &CommonArgs;
    fn http_addr(&self) -> SocketAddr;
    fn database(&self) -> DatabaseSettings<'_>;
    /// Builds the service on its connected, migrated database and runs it until `shutdown`.
    fn serve_on(
        &self,
        db: Database,
        shutdown: Shutdown,
    ) -> impl Future<Output = anyhow::Result<()>>;
}

/// Connects to the service's database and applies its migrations, unless start-up
/// migrations are turned off (`--migrate-only` always applies them).
pub async fn connect_and_migrate<C: DatabaseService>(config: &C) -> anyhow::Result<Database> {
    let settings = config.database();
    let db = Database::connect(settings.url, settings.max_connections).await?;
    let common = config.common();
    if common.run_migrations || common.migrate_only {
        db.migrate(settings.migrations).await?;
    }
    Ok(db)
}

impl<C: DatabaseService> ServiceConfig for C {
    const NAME: &'static str = <C as DatabaseService>::NAME;

    fn common(&self) -> &CommonArgs {
        DatabaseService::common(self)
    }

    fn http_addr(&self) -> SocketAddr {
        DatabaseService::http_addr(self)
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        connect_and_migrate(self).await.map(drop)
    }

    async fn serve(&self, shutdown: Shutdown) -> anyhow::Result<()> {
        // Until the database answers (and is migrated), retry and stay live but not ready.
        let addr = DatabaseService::http_addr(self);
        let db = crate::startup::retry_until_ready("database", addr, &shutdown, || {
            connect_and_migrate(self)
        });
        let Some(db) = db.await? else {
            return Ok(());
        };
        self.serve_on(db, shutdown).await
    }
}

/// A service's router on its bound port. Binding comes first so that tests can ask for
/// port 0 and learn the port before the service runs.
pub struct HttpServer {
    listener: TcpListener,
    router: Router,
}

impl HttpServer {
    pub async fn bind(addr: SocketAddr, router: Router) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        Ok(Self { listener, router })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The router, for in-process (`oneshot`) tests.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Serves until `shutdown`, then drains in-flight requests.
    pub async fn serve(self, service: &str, shutdown: Shutdown) -> anyhow::Result<()> {
        tracing::info!(addr = %self.listener.local_addr()?, "{service} listening");
        Ok(crate::http::serve(self.listener, self.router, shutdown).await?)
    }
}
