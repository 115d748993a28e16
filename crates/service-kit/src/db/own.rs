//! A connection that a long-running worker keeps for itself.

use std::ops::{Deref, DerefMut};

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection};
use tokio::sync::{Mutex, MutexGuard};

use super::{Database, DbError, Dialect};

/// The connection of a long-running worker (the outbox relay, the consumer's pipeline),
/// kept instead of borrowed from the pool for every batch: the pool pings each connection
/// it takes back, one more round-trip per batch on top of the batch's own statements. On
/// SQLite, whose pool is its single writer connection, it is borrowed from the pool.
///
/// A connection not handed back with [`Held::keep`] (after an error, a timeout, a
/// cancelled batch) is closed, never reused: it may be broken or inside a transaction.
#[derive(Debug)]
pub struct OwnConnection {
    db: Database,
    held: Mutex<Option<AnyConnection>>,
}

impl OwnConnection {
    pub fn new(db: Database) -> Self {
        Self {
            db,
            held: Mutex::new(None),
        }
    }

    /// The connection, opened first if there is none; waits while another task has it.
    pub async fn lock(&self) -> Result<Held<'_>, DbError> {
        let inner = match self.db.dialect() {
            Dialect::MySql => {
                let mut slot = self.held.lock().await;
                if slot.is_none() {
                    let pooled = self.db.timed(self.db.pool().acquire()).await?;
                    // Detached, it keeps the pool's session settings but no longer counts
                    // towards (or returns to) the pool.
                    *slot = Some(pooled.detach());
                }
                Inner::Own(slot)
            }
            Dialect::Sqlite => Inner::Pooled(self.db.timed(self.db.pool().acquire()).await?),
        };
        Ok(Held { inner, keep: false })
    }
}

/// A worker's connection while it is in use.
pub struct Held<'a> {
    inner: Inner<'a>,
    keep: bool,
}

enum Inner<'a> {
    Own(MutexGuard<'a, Option<AnyConnection>>),
    Pooled(PoolConnection<Any>),
}

impl Held<'_> {
    /// Hands the connection back for the next batch. Call it only when the connection is
    /// idle and outside any transaction.
    pub fn keep(mut self) {
        self.keep = true;
    }
}

impl Deref for Held<'_> {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        match &self.inner {
            Inner::Own(slot) => slot.as_ref().expect("opened by lock()"),
            Inner::Pooled(conn) => conn,
        }
    }
}

impl DerefMut for Held<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match &mut self.inner {
            Inner::Own(slot) => slot.as_mut().expect("opened by lock()"),
            Inner::Pooled(conn) => conn,
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        match &mut self.inner {
            Inner::Own(slot) => drop(slot.take()),
            Inner::Pooled(conn) => conn.close_on_drop(),
        }
    }
}
