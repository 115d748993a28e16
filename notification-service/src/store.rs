//! Delivered notifications; the unique event id is the consumer's dedupe record.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use service_kit::db::codec::{Micros, UuidText};
use service_kit::db::{Database, DbError};
use service_kit::housekeeping::ExpiringTable;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Connection, Row};
use utoipa::ToSchema;
use uuid::Uuid;

/// A delivered welcome notification.
// `GET /notifications` answers with it as is, under its API name `NotificationView`;
// `recorded_by` is the consumer's bookkeeping and stays out of the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = NotificationView)]
pub struct Notification {
    pub event_id: Uuid,
    pub user_id: Uuid,
    pub user_name: String,
    pub email: String,
    pub channel: String,
    pub event_time: DateTime<Utc>,
    pub delivered_at: DateTime<Utc>,
    /// The record attempt that wrote the row (nil for rows older than the column).
    #[serde(skip)]
    pub recorded_by: Uuid,
}

/// Who was notified and when: what a check of a load run's deliveries reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub user_id: Uuid,
    pub delivered_at: DateTime<Utc>,
}

/// Whether recording created the row or found it already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    New,
    Duplicate,
}

/// Most rows one `INSERT` carries. Statements are prepared and cached per connection, one
/// per shape (row count), and sqlx's cache holds 100. Past that it evicts and closes a
/// statement with a packet it does not wait an answer for, and the next query then sits
/// out TCP's delayed acknowledgement (sqlx leaves Nagle on): 40 ms stalls that were most
/// of the consumer's tail latency (docs/benchmarks.md). 64 insert shapes and 10 dedupe
/// shapes fit.
pub const ROWS_PER_INSERT: usize = 64;

/// Rows expire by the time their notification was delivered (indexed for this).
const EXPIRING: ExpiringTable = ExpiringTable {
    table: "notifications",
    column: "delivered_at",
};

#[derive(Debug, Clone)]
pub struct NotificationStore {
    db: Database,
}

impl NotificationStore {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Deletes the notifications delivered more than `window` ago, `batch_rows` per
    /// statement; returns how many.
    pub async fn forget_delivered_before(
        &self,
        window: std::time::Duration,
        batch_rows: u32,
    ) -> Result<u64, DbError> {
        EXPIRING.trim(&self.db, window, batch_rows).await
    }

    /// The attempt that recorded the event, if it was delivered already.
    pub async fn recorded_by(&self, event_id: Uuid) -> Result<Option<Uuid>, DbError> {
        let query = sqlx::query("SELECT recorded_by FROM notifications WHERE event_id = ?")
            .bind(UuidText(event_id))
            .fetch_optional(self.db.pool());
        self.db
            .timed(query)
            .await?
            .map(|row| attempt(&row))
            .transpose()
    }

    /// Records a delivery; the unique index turns a concurrent second record into
    /// `Duplicate`.
    pub async fn record(&self, n: &Notification) -> Result<Recorded, DbError> {
        let insert = sqlx::query(
            "INSERT INTO notifications (event_id, user_id, user_name, email, channel, event_time, delivered_at, recorded_by) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(UuidText(n.event_id))
        .bind(UuidText(n.user_id))
        .bind(&n.user_name)
        .bind(&n.email)
        .bind(&n.channel)
        .bind(Micros(n.event_time))
        .bind(Micros(n.delivered_at))
        .bind(UuidText(n.recorded_by))
        .execute(self.db.pool());
        match self.db.timed(insert).await {
            Ok(_) => Ok(Recorded::New),
            Err(e) if e.is_unique_violation() => Ok(Recorded::Duplicate),
            Err(e) => Err(e),
        }
    }

    /// Which of `event_ids` were already delivered, each with the attempt that recorded
    /// it: one query for a whole batch. The id list is padded (with repeats) to a power of
    /// two, so that a handful of statement shapes serve every batch size (see
    /// [`ROWS_PER_INSERT`]).
    pub async fn recorded_among(
        &self,
        conn: &mut AnyConnection,
        event_ids: &[Uuid],
    ) -> Result<HashMap<Uuid, Uuid>, DbError> {
        let Some(last) = event_ids.last() else {
            return Ok(HashMap::new());
        };
        let padded = event_ids.len().next_power_of_two();
        let sql = format!(
            "SELECT event_id, recorded_by FROM notifications WHERE event_id IN ({})",
            placeholders(padded, 1)
        );
        let ids = event_ids.iter().chain(std::iter::repeat(last)).take(padded);
        let query = ids
            .fold(sqlx::query(sqlx::AssertSqlSafe(sql)), |q, id| {
                q.bind(UuidText(*id))
            })
            .fetch_all(conn);
        self.db
            .timed(query)
            .await?
            .iter()
            .map(|row| {
                let UuidText(event_id) = row.try_get("event_id")?;
                Ok((event_id, attempt(row)?))
            })
            .collect()
    }

    /// Records many deliveries in one transaction, [`ROWS_PER_INSERT`] rows a statement.
    /// A unique violation means some were recorded meanwhile: nothing is written, and the
    /// caller records them one by one with [`Self::record`].
    pub async fn record_all(
        &self,
        conn: &mut AnyConnection,
        notifications: &[Notification],
    ) -> Result<(), DbError> {
        if notifications.len() <= ROWS_PER_INSERT {
            return self.insert_rows(conn, notifications).await;
        }
        let mut tx = self.db.timed(conn.begin()).await?;
        for chunk in notifications.chunks(ROWS_PER_INSERT) {
            self.insert_rows(&mut tx, chunk).await?;
        }
        self.db.timed(tx.commit()).await
    }

    async fn insert_rows(
        &self,
        conn: &mut AnyConnection,
        notifications: &[Notification],
    ) -> Result<(), DbError> {
        if notifications.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO notifications (event_id, user_id, user_name, email, channel, event_time, delivered_at, recorded_by) \
             VALUES {}",
            placeholders(notifications.len(), 8)
        );
        let query = notifications
            .iter()
            .fold(sqlx::query(sqlx::AssertSqlSafe(sql)), |q, n| {
                q.bind(UuidText(n.event_id))
                    .bind(UuidText(n.user_id))
                    .bind(n.user_name.clone())
                    .bind(n.email.clone())
                    .bind(n.channel.clone())
                    .bind(Micros(n.event_time))
                    .bind(Micros(n.delivered_at))
                    .bind(UuidText(n.recorded_by))
            })
            .execute(conn);
        self.db.timed(query).await.map(drop)
    }

    /// The latest `limit` notifications, newest first.
    pub async fn latest(&self, limit: u32) -> Result<Vec<Notification>, DbError> {
        let query = sqlx::query(
            "SELECT event_id, user_id, user_name, email, channel, event_time, delivered_at, recorded_by \
             FROM notifications ORDER BY id DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(self.db.pool());
        self.db.timed(query).await?.iter().map(from_row).collect()
    }

    /// The deliveries to every email address that starts with `prefix`, in no order: no
    /// size limit, unlike [`Self::latest`], and no request deadline, since it serves tools
    /// that check a whole load run (`platformctl load --verify`), not requests.
    pub async fn deliveries_to_emails_starting(
        &self,
        prefix: &str,
    ) -> Result<Vec<Delivery>, DbError> {
        // `!` escapes LIKE's wildcards in the prefix: a backslash would need doubling in
        // MySQL's string literals but not in SQLite's.
        let pattern = prefix
            .replace('!', "!!")
            .replace('%', "!%")
            .replace('_', "!_")
            + "%";
        let rows = sqlx::query(
            "SELECT user_id, delivered_at FROM notifications WHERE email LIKE ? ESCAPE '!'",
        )
        .bind(pattern)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(delivery).collect()
    }
}

/// `rows` groups of `columns` placeholders: `?` or `(?, ?), (?, ?)`.
fn placeholders(rows: usize, columns: usize) -> String {
    let row = if columns == 1 {
        "?".to_owned()
    } else {
        format!("({})", vec!["?"; columns].join(", "))
    };
    vec![row; rows].join(", ")
}

/// `recorded_by`; rows written before the column existed have none.
fn attempt(row: &AnyRow) -> Result<Uuid, DbError> {
    let attempt: Option<UuidText> = row.try_get("recorded_by")?;
    Ok(attempt.map_or(Uuid::nil(), |UuidText(id)| id))
}

fn delivery(row: &AnyRow) -> Result<Delivery, DbError> {
    let (UuidText(user_id), Micros(delivered_at)) =
        (row.try_get("user_id")?, row.try_get("delivered_at")?);
    Ok(Delivery {
        user_id,
        delivered_at,
    })
}

fn from_row(row: &AnyRow) -> Result<Notification, DbError> {
    let (UuidText(event_id), UuidText(user_id)) =
        (row.try_get("event_id")?, row.try_get("user_id")?);
    let (Micros(event_time), Micros(delivered_at)) =
        (row.try_get("event_time")?, row.try_get("delivered_at")?);
    Ok(Notification {
        event_id,
        user_id,
        user_name: row.try_get("user_name")?,
        email: row.try_get("email")?,
        channel: row.try_get("channel")?,
        event_time,
        delivered_at,
        recorded_by: attempt(row)?,
    })
}
