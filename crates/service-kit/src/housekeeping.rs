//! Housekeeping: tables that grow with traffic are trimmed to a window, in small batches
//! so that no statement holds its locks for long, on a timer, until shutdown.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::Shutdown;
use crate::db::codec::Micros;
use crate::db::{Database, DbError, Dialect};

/// How often and in what batches the expired rows of a service's tables are deleted.
#[derive(Debug, Clone, clap::Args)]
pub struct HousekeepingArgs {
    /// How often expired rows are deleted (e.g. 30s, 5m).
    #[arg(long, env = "HOUSEKEEPING_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub housekeeping_interval: Duration,

    /// Rows one DELETE statement removes at most.
    #[arg(long, env = "HOUSEKEEPING_BATCH_ROWS", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub housekeeping_batch_rows: u32,
}

impl Default for HousekeepingArgs {
    fn default() -> Self {
        crate::config::defaults()
    }
}

/// Parses a duration setting: a whole number with a unit, `s`, `m`, `h` or `d`
/// (`90s`, `15m`, `36h`, `8d`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit: write e.g. 90s, 15m, 36h or 8d"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a whole number"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "unknown unit `{unit}` in `{text}`: use s, m, h or d"
            ));
        }
    };
    number
        .checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is too long"))
}

/// Formats a duration the way [`parse_duration`] reads it, in its largest exact unit.
pub fn format_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    [(86_400, "d"), (3600, "h"), (60, "m")]
        .into_iter()
        .find(|(unit, _)| seconds > 0 && seconds.is_multiple_of(*unit))
        .map_or_else(
            || format!("{seconds}s"),
            |(unit, name)| format!("{}{name}", seconds / unit),
        )
}

/// A table whose rows expire: rows whose `column` (a stored time, [`Micros`], indexed)
/// is older than the window are deleted.
#[derive(Debug, Clone, Copy)]
pub struct ExpiringTable {
    pub table: &'static str,
    pub column: &'static str,
}

impl ExpiringTable {
    /// One batch: at most `rows` of the oldest expired rows, oldest first, so that the
    /// statement walks the index of `column` and locks only what it deletes.
    fn delete_batch_sql(self, dialect: Dialect, rows: u32) -> String {
        let Self { table, column } = self;
        match dialect {
            Dialect::MySql => {
                format!("DELETE FROM {table} WHERE {column} < ? ORDER BY {column} LIMIT {rows}")
            }
            // SQLite's DELETE takes no LIMIT unless compiled with it.
            Dialect::Sqlite => format!(
                "DELETE FROM {table} WHERE rowid IN \
                 (SELECT rowid FROM {table} WHERE {column} < ? ORDER BY {column} LIMIT {rows})"
            ),
        }
    }

    /// Deletes every row older than `window`, `batch_rows` per statement; returns how
    /// many. Stops at the first batch that finds fewer than `batch_rows`.
    pub async fn trim(
        self,
        db: &Database,
        window: Duration,
        batch_rows: u32,
    ) -> Result<u64, DbError> {
        // Before the epoch (a window longer than the clock's age) nothing is old enough.
        let cutoff = TimeDelta::from_std(window)
            .ok()
            .and_then(|window| Utc::now().checked_sub_signed(window))
            .map_or(DateTime::UNIX_EPOCH, |t| t.max(DateTime::UNIX_EPOCH));
        let sql = self.delete_batch_sql(db.dialect(), batch_rows);
        let mut deleted = 0;
        loop {
            let query = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(Micros(cutoff))
                .execute(db.pool());
            let batch = db.timed(query).await?.rows_affected();
            deleted += batch;
            if batch < u64::from(batch_rows) {
                return Ok(deleted);
            }
            // Let the traffic's own statements in between two batches.
            tokio::task::yield_now().await;
        }
    }
}

/// Runs `job` now and then every `interval` until `shutdown`. Errors are logged and the
/// job is tried again at the next tick: housekeeping never stops a service.
pub async fn every<F, Fut, E>(
    name: &'static str,
    interval: Duration,
    shutdown: Shutdown,
    mut job: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<u64, E>>,
    E: std::fmt::Display,
{
    loop {
        match job().await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(job = name, deleted, "expired rows deleted"),
            Err(error) => {
                tracing::warn!(job = name, %error, "housekeeping failed; next try in one interval")
            }
        }
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_their_unit() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("36h"), Ok(Duration::from_secs(129_600)));
        assert_eq!(parse_duration(" 8d "), Ok(Duration::from_secs(691_200)));
        for bad in ["", "15", "m", "1.5h", "-3d", "3w", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn durations_format_in_their_largest_exact_unit() {
        for text in ["90s", "15m", "36h", "8d", "0s", "61s"] {
            let parsed = parse_duration(text).expect("valid");
            assert_eq!(format_duration(parsed), text);
        }
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
    }

    #[test]
    fn a_batch_walks_the_index_oldest_first() {
        let table = ExpiringTable {
            table: "t",
            column: "c",
        };
        assert_eq!(
            table.delete_batch_sql(Dialect::MySql, 10),
            "DELETE FROM t WHERE c < ? ORDER BY c LIMIT 10"
        );
        assert!(
            table
                .delete_batch_sql(Dialect::Sqlite, 10)
                .contains("ORDER BY c LIMIT 10)")
        );
    }
}
