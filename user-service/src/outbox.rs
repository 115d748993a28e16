//! The outbox relay: publishes committed outbox rows to Kafka and deletes each row only
//! after the broker acknowledged it.
//!
//! It is woken right after every registration commit and also sweeps on a timer, which
//! picks up rows left by a crash or by another replica. Several replicas are safe: on
//! MySQL each batch is claimed with `FOR UPDATE SKIP LOCKED`, so no row is sent by two
//! relays at once.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use events::Attributes;
use futures::future::join_all;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use service_kit::Shutdown;
use service_kit::db::codec::{Micros, UuidText};
use service_kit::db::{Database, DbError, Dialect, OwnConnection};
use service_kit::telemetry;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use tokio::sync::Notify;
use tracing::Instrument;
use uuid::Uuid;

use crate::metrics::{PublishOutcome, UserMetrics};

/// Relay settings.
#[derive(Debug, Clone, Copy)]
pub struct RelaySettings {
    pub batch_size: u32,
    pub sweep_interval: Duration,
}

/// Publishes the outbox to Kafka.
pub struct Relay {
    pub db: Database,
    /// The relay's own connection: a batch borrows none from the pool.
    pub conn: OwnConnection,
    pub producer: FutureProducer,
    pub topic: String,
    pub wake: Arc<Notify>,
    pub metrics: UserMetrics,
    pub settings: RelaySettings,
}

struct OutboxRow {
    id: i64,
    event_id: Uuid,
    key: String,
    payload: String,
    traceparent: Option<String>,
    created_at: DateTime<Utc>,
}

const MAX_BACKOFF: Duration = Duration::from_secs(5);
const SHUTDOWN_BATCH_WAIT: Duration = Duration::from_secs(3);

async fn give_up_after(shutdown: &Shutdown, wait: Duration) {
    shutdown.wait().await;
    tokio::time::sleep(wait).await;
}

impl Relay {
    /// Runs until `shutdown`, then flushes the producer.
    pub async fn run(self, shutdown: Shutdown) {
        tokio::join!(
            self.publish_until(shutdown.clone()),
            self.report_backlog(shutdown)
        );
        // Rows already acknowledged are deleted; anything still queued is sent now.
        if let Err(error) = self.producer.flush(Timeout::After(SHUTDOWN_BATCH_WAIT)) {
            tracing::warn!(%error, "producer flush at shutdown failed");
        }
        tracing::info!("outbox relay stopped");
    }

    async fn publish_until(&self, shutdown: Shutdown) {
        let mut backoff = Duration::ZERO;
        loop {
            tokio::select! {
                () = shutdown.wait() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.settings.sweep_interval) => {}
            }
            if !backoff.is_zero() {
                tokio::select! {
                    () = shutdown.wait() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
            }
            // A batch in flight at shutdown may finish (so its rows are not sent twice),
            // but not wait out an unreachable broker.
            let drained = tokio::select! {
                result = self.drain() => result,
                () = give_up_after(&shutdown, SHUTDOWN_BATCH_WAIT) => break,
            };
            backoff = match drained {
                Ok(()) => Duration::ZERO,
                Err(error) => {
                    tracing::warn!(error = %error, "outbox relay failed; will retry");
                    (backoff * 2).clamp(Duration::from_millis(100), MAX_BACKOFF)
                }
            };
        }
    }

    /// Refreshes the backlog gauges once per sweep interval. They count the whole table,
    /// so they run on their own clock: not after every batch of a busy relay, and still
    /// while a batch waits for an unreachable broker.
    async fn report_backlog(&self, shutdown: Shutdown) {
        loop {
            self.update_backlog().await;
            tokio::select! {
                () = shutdown.wait() => return,
                () = tokio::time::sleep(self.settings.sweep_interval) => {}
            }
        }
    }

    /// Publishes batches until the outbox is empty or a batch fails.
    async fn drain(&self) -> anyhow::Result<()> {
        while self.publish_batch().await? == self.settings.batch_size as usize {}
        Ok(())
    }

    /// Publishes one batch and deletes what the broker acknowledged.
    ///
    /// On MySQL the batch is claimed with `FOR UPDATE SKIP LOCKED` inside a transaction
    /// that lasts until the acknowledged rows are deleted, so replicas never send the same
    /// row. `BEGIN` travels with the claim and `COMMIT` with the deletes: a batch costs
    /// two round-trips to the database. SQLite has one writer connection and a single
    /// relay: holding it while Kafka answers would block registrations, so there the rows
    /// are read and deleted in two short statements.
    async fn publish_batch(&self) -> anyhow::Result<usize> {
        let (sent, acked) = match self.db.dialect() {
            Dialect::MySql => {
                let mut conn = self.conn.lock().await?;
                let rows = self.claim(&mut conn, "BEGIN;").await?;
                let acked = self.send_all(&rows).await;
                self.delete(&mut conn, &acked, "COMMIT;").await?;
                conn.keep();
                (rows.len(), acked.len())
            }
            Dialect::Sqlite => {
                let mut conn = self.conn.lock().await?;
                let rows = self.claim(&mut conn, "").await?;
                conn.keep();
                let acked = self.send_all(&rows).await;
                let mut conn = self.conn.lock().await?;
                self.delete(&mut conn, &acked, "").await?;
                conn.keep();
                (rows.len(), acked.len())
            }
        };
        if acked < sent {
            anyhow::bail!(
                "{} of {sent} outbox rows were not acknowledged",
                sent - acked
            );
        }
        Ok(sent)
    }

    /// The oldest `batch_size` rows, after the statements in `before`.
    async fn claim(
        &self,
        conn: &mut AnyConnection,
        before: &str,
    ) -> Result<Vec<OutboxRow>, DbError> {
        let claim = format!(
            "{before}SELECT id, event_id, aggregate_id, payload, traceparent, created_at FROM outbox ORDER BY id LIMIT {}{}",
            self.settings.batch_size,
            self.db.dialect().skip_locked()
        );
        let rows = self
            .db
            .timed(sqlx::raw_sql(sqlx::AssertSqlSafe(claim)).fetch_all(conn))
            .await?;
        Ok(rows.iter().map(outbox_row).collect::<Result<_, _>>()?)
    }

    /// Deletes the acknowledged rows in one statement, followed by the statements in
    /// `after`, in one round-trip. On MySQL the ids arrive as a `JSON_TABLE` joined first
    /// (`STRAIGHT_JOIN`) to the primary key, so only those rows are touched whatever the
    /// table's size. A plain `DELETE … WHERE id IN (…)` may be planned as a scan on a
    /// small table, and a scan waits on rows that another replica's relay has claimed: a
    /// deadlock, after which the batch would be sent twice. One `DELETE` per row avoided
    /// that too, but cost MariaDB seven times as much for a batch of 500. SQLite has a
    /// single relay. The ids are integers read from the table, so the text is safe.
    async fn delete(
        &self,
        conn: &mut AnyConnection,
        ids: &[i64],
        after: &str,
    ) -> Result<(), DbError> {
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let delete = match (ids.is_empty(), self.db.dialect()) {
            (true, _) => String::new(),
            (false, Dialect::MySql) => format!(
                "DELETE o FROM JSON_TABLE('[{list}]', '$[*]' COLUMNS (id BIGINT PATH '$')) AS t \
                 STRAIGHT_JOIN outbox o ON o.id = t.id;"
            ),
            (false, Dialect::Sqlite) => format!("DELETE FROM outbox WHERE id IN ({list});"),
        };
        let statements = delete + after;
        if statements.is_empty() {
            return Ok(());
        }
        let delete = sqlx::raw_sql(sqlx::AssertSqlSafe(statements)).execute(conn);
        self.db.timed(delete).await.map(drop)
    }

    /// Sends every row concurrently; returns the ids the broker acknowledged.
    async fn send_all(&self, rows: &[OutboxRow]) -> Vec<i64> {
        let sends = rows
            .iter()
            .map(|row| async move { (row, self.send(row).await) });
        let mut acked = Vec::with_capacity(rows.len());
        for (row, result) in join_all(sends).await {
            match result {
                Ok(()) => {
                    acked.push(row.id);
                    self.metrics.published(PublishOutcome::Ok);
                    let latency = (Utc::now() - row.created_at).to_std().unwrap_or_default();
                    self.metrics
                        .outbox_publish_latency
                        .observe(latency.as_secs_f64());
                }
                Err(error) => {
                    self.metrics.published(PublishOutcome::Failed);
                    tracing::debug!(%error, event_id = %row.event_id, "publish failed");
                }
            }
        }
        acked
    }

    async fn send(&self, row: &OutboxRow) -> Result<(), rdkafka::error::KafkaError> {
        let span = publish_span(&self.topic, row);
        // The message carries the produce span's context, so the consumer continues it.
        let traceparent = telemetry::traceparent(&span).or_else(|| row.traceparent.clone());
        let attributes = Attributes::user_registered(row.event_id, row.created_at, traceparent);
        let headers =
            attributes
                .to_headers()
                .into_iter()
                .fold(OwnedHeaders::new(), |h, (key, value)| {
                    h.insert(Header {
                        key,
                        value: Some(&value),
                    })
                });
        let record = FutureRecord::to(&self.topic)
            .key(&row.key)
            .payload(&row.payload)
            .headers(headers);
        let sent = self
            .producer
            .send(record, Timeout::Never)
            .instrument(span.clone())
            .await;
        if sent.is_err() {
            span.record("otel.status_code", "ERROR");
        }
        sent.map(drop).map_err(|(error, _)| error)
    }

    async fn update_backlog(&self) {
        let (backlog, oldest) = match self.backlog().await {
            Ok(backlog) => backlog,
            // An outage already shows in the relay's own failures; anything else is a bug.
            Err(error) if error.is_unavailable() => return,
            Err(error) => {
                tracing::warn!(%error, "outbox backlog not read");
                return;
            }
        };
        self.metrics.outbox_backlog.set(backlog);
        let age = oldest.map_or(0.0, |t| {
            (Utc::now() - t).to_std().unwrap_or_default().as_secs_f64()
        });
        self.metrics.outbox_oldest_age.set(age);
    }

    /// Rows in the outbox, and when the oldest was written (none when empty).
    async fn backlog(&self) -> Result<(i64, Option<DateTime<Utc>>), DbError> {
        let query = sqlx::query("SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM outbox")
            .fetch_one(self.db.pool());
        let row = self.db.timed(query).await?;
        let oldest: Option<Micros> = row.try_get("oldest")?;
        Ok((row.try_get("n")?, oldest.map(|Micros(t)| t)))
    }
}

/// The producer span of one row, a child of the registration's span stored in the row
/// (only when spans are exported).
fn publish_span(topic: &str, row: &OutboxRow) -> tracing::Span {
    telemetry::exported_span(|| {
        let span = tracing::info_span!(
            "outbox.publish",
            otel.kind = "producer",
            otel.status_code = tracing::field::Empty,
            messaging.system = "kafka",
            messaging.operation.type = "send",
            messaging.destination.name = topic,
            messaging.message.id = %row.event_id,
            messaging.kafka.message.key = row.key.as_str(),
            service.name = "user-service",
        );
        telemetry::continue_trace(&span, row.traceparent.as_deref());
        span
    })
}

fn outbox_row(row: &AnyRow) -> Result<OutboxRow, sqlx::Error> {
    let UuidText(event_id) = row.try_get("event_id")?;
    let Micros(created_at) = row.try_get("created_at")?;
    Ok(OutboxRow {
        id: row.try_get("id")?,
        event_id,
        // The Kafka key is the user id's stored text, sent as it is.
        key: row.try_get("aggregate_id")?,
        payload: row.try_get("payload")?,
        traceparent: row.try_get("traceparent")?,
        created_at,
    })
}
