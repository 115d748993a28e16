//! Database pool over sqlx's `Any` driver: MySQL/MariaDB in production, SQLite for the
//! embedded run and fast tests, with one portable query set (see docs/architecture.md).

pub mod codec;
mod own;

use std::future::Future;
use std::time::Duration;

use crate::app::Migrations;
use anyhow::Context;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Connection, Executor};

pub use own::{Held, OwnConnection};

/// How long a request waits for the database before the service answers 503.
pub const DB_TIMEOUT: Duration = Duration::from_secs(1);

/// A pooled connection idle this long is pinged before it is handed out again.
const PING_IDLE_AFTER: Duration = Duration::from_secs(10);

/// Runs several store calls under one request deadline of [`DB_TIMEOUT`]: a request made
/// of a lookup and an insert still answers 503 within the deadline, not within twice it.
pub async fn within_deadline<T, E>(operation: impl Future<Output = Result<T, E>>) -> Result<T, E>
where
    E: From<DbError>,
{
    tokio::time::timeout(DB_TIMEOUT, operation)
        .await
        .unwrap_or_else(|_| Err(DbError::Timeout(DB_TIMEOUT).into()))
}

/// The SQL dialect behind a pool, for the few statements that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    MySql,
    Sqlite,
}

impl Dialect {
    pub fn from_url(url: &str) -> anyhow::Result<Self> {
        match url.split_once(':').map(|(scheme, _)| scheme) {
            Some("mysql" | "mariadb") => Ok(Self::MySql),
            Some("sqlite") => Ok(Self::Sqlite),
            _ => anyhow::bail!("DATABASE_URL must start with mysql:// or sqlite:"),
        }
    }

    /// Row-lock clause that lets several relay replicas claim disjoint batches. SQLite has
    /// a single writer, so it needs none.
    pub fn skip_locked(self) -> &'static str {
        match self {
            Self::MySql => " FOR UPDATE SKIP LOCKED",
            Self::Sqlite => "",
        }
    }
}

/// A connection pool and its dialect.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    dialect: Dialect,
}

/// The database did not answer in time or failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database did not answer within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
}

impl DbError {
    /// Whether the error means "database unreachable or overloaded" (503) rather than a bug.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Timeout(_) => true,
            Self::Sqlx(e) => {
                matches!(
                    e,
                    sqlx::Error::Io(_)
                        | sqlx::Error::PoolTimedOut
                        | sqlx::Error::PoolClosed
                        | sqlx::Error::Tls(_)
                        | sqlx::Error::Protocol(_)
                        | sqlx::Error::WorkerCrashed
                ) || is_server_gone(e)
            }
        }
    }

    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Self::Sqlx(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}

fn is_server_gone(error: &sqlx::Error) -> bool {
    // SQLSTATE 08S01: communication link failure (server shutting down); 40001: deadlock or
    // serialisation failure. Both are transient: the client may retry.
    let sqlx::Error::Database(e) = error else {
        return false;
    };
    matches!(e.code().as_deref(), Some("08S01" | "40001"))
}

impl Database {
    /// Connects (eagerly, so a wrong URL fails at start-up) with at most `max_connections`.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        install_default_drivers();
        let dialect = Dialect::from_url(url)?;
        let options = AnyPoolOptions::new()
            .acquire_timeout(DB_TIMEOUT)
            // sqlx pings every connection it hands out and again when it takes it back: two
            // round-trips on top of a registration's four. The ping on release stays (it
            // drops connections a failed query broke); on acquire only a connection idle
            // long enough for the server to have dropped it is checked.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_IDLE_AFTER {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            // SQLite serialises writers; one connection avoids SQLITE_BUSY under load.
            .max_connections(match dialect {
                Dialect::MySql => max_connections,
                Dialect::Sqlite => 1,
            })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    match dialect {
                        Dialect::Sqlite => {
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA synchronous = NORMAL").await?;
                            conn.execute("PRAGMA busy_timeout = 5000").await?;
                        }
                        // READ COMMITTED takes no gap locks: a relay holding its claimed
                        // outbox rows never blocks registrations inserting new ones.
                        Dialect::MySql => {
                            conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                                .await?;
                        }
                    }
                    Ok(())
                })
            });
        let pool = options
            .connect(url)
            .await
            .with_context(|| format!("cannot connect to the {dialect:?} database"))?;
        Ok(Self { pool, dialect })
    }

    /// Applies the migrations of this dialect.
    pub async fn migrate(&self, migrations: &Migrations) -> anyhow::Result<()> {
        let migrator = match self.dialect {
            Dialect::MySql => &migrations.mysql,
            Dialect::Sqlite => &migrations.sqlite,
        };
        let mut conn = self.pool.acquire().await?;
        // sqlx's own migration lock is `GET_LOCK(…, -1)`, which MariaDB answers at once with
        // NULL instead of waiting: replicas starting together would race. Hold our own.
        if self.dialect == Dialect::MySql {
            sqlx::query("SELECT GET_LOCK(CONCAT('migrations:', DATABASE()), 60)")
                .execute(&mut *conn)
                .await?;
        }
        let result = migrator.run(&mut *conn).await;
        if self.dialect == Dialect::MySql {
            sqlx::query("SELECT RELEASE_LOCK(CONCAT('migrations:', DATABASE()))")
                .execute(&mut *conn)
                .await?;
        }
        result.context("database migrations failed")
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Runs `operation` with the request deadline, so a hung database becomes a quick 503.
    pub async fn timed<T, E>(
        &self,
        operation: impl Future<Output = Result<T, E>>,
    ) -> Result<T, DbError>
    where
        DbError: From<E>,
    {
        match tokio::time::timeout(DB_TIMEOUT, operation).await {
            Ok(result) => result.map_err(DbError::from),
            Err(_) => Err(DbError::Timeout(DB_TIMEOUT)),
        }
    }

    /// Readiness probe: a trivial query within the deadline.
    pub async fn ping(&self) -> Result<(), DbError> {
        self.timed(sqlx::query("SELECT 1").execute(&self.pool))
            .await
            .map(drop)
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
