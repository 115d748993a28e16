//! The pipeline's database steps: which events were recorded before (dedupe), and the
//! record of the new deliveries, with the bookkeeping of attempts whose outcome is
//! unknown (see [`super::unsettled`]).
//!
//! The dedupe query and the insert run on the consumer's own connection, one statement
//! each for a whole batch; the connection is held per statement, not across deliveries:
//! on SQLite it is the pool's only one.

use std::collections::HashMap;

use events::Event;
use service_kit::db::{DbError, OwnConnection};
use uuid::Uuid;

use super::unsettled::{Unknown, Unsettled};
use crate::metrics::Outcome;
use crate::store::{Notification, NotificationStore, Recorded};

/// The notifications table as the pipeline sees it.
pub struct Records {
    pub store: NotificationStore,
    /// The consumer's own connection: a batch borrows none from the pool.
    pub conn: OwnConnection,
    /// Record attempts whose outcome is unknown.
    pub unsettled: Unsettled,
}

impl Records {
    /// The ids among `ids` already recorded, each with the attempt that recorded it.
    pub async fn recorded_among(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Uuid>, DbError> {
        let mut conn = self.conn.lock().await?;
        let recorded = self.store.recorded_among(&mut conn, ids).await?;
        conn.keep();
        Ok(recorded)
    }

    /// The outcome of an event whose row exists: delivered if one of this consumer's own
    /// unanswered attempts wrote it (counted now, once), else a duplicate.
    pub fn settled(&self, event_id: Uuid, recorded_by: Uuid) -> Outcome {
        match self.unsettled.settle(event_id, recorded_by) {
            Some(_) => Outcome::Delivered,
            None => Outcome::Duplicate,
        }
    }

    /// Records `rows` (the deliveries of `events`) in one statement. Returns the outcomes
    /// of the events that some other attempt had recorded meanwhile (found one by one
    /// after a unique violation). On a database error the rows it may have written all
    /// the same are unsettled.
    pub async fn record(
        &self,
        rows: &[Notification],
        events: &[Event],
    ) -> Result<HashMap<Uuid, Outcome>, DbError> {
        if rows.is_empty() {
            return Ok(HashMap::new());
        }
        let error = match self.record_all(rows).await {
            Ok(()) => {
                self.unsettled.forget(rows.iter().map(|n| n.event_id));
                return Ok(HashMap::new());
            }
            Err(error) => error,
        };
        if !error.is_unique_violation() {
            self.unsettle(rows, events);
            return Err(error);
        }
        let mut recorded_before = HashMap::new();
        for (i, row) in rows.iter().enumerate() {
            match self.record_one(row).await {
                Ok(None) => {}
                Ok(Some(outcome)) => {
                    recorded_before.insert(row.event_id, outcome);
                }
                Err(error) => {
                    self.unsettle(&rows[i..], events);
                    return Err(error);
                }
            }
        }
        Ok(recorded_before)
    }

    /// Looks up the rows of unanswered record attempts and returns those this consumer
    /// wrote: their events may never come back to it (another replica owns the partition
    /// now, and counts them as duplicates), so the caller counts them now.
    pub async fn settle_unknown(&self) -> Vec<Unknown> {
        let ids = self.unsettled.pending();
        if ids.is_empty() {
            return Vec::new();
        }
        // A failed lookup is tried again next time.
        let Ok(found) = self.recorded_among(&ids).await else {
            return Vec::new();
        };
        found
            .into_iter()
            .filter_map(|(id, recorded_by)| self.unsettled.settle(id, recorded_by))
            .collect()
    }

    /// Records one row; `Some` outcome if the event's row existed already.
    async fn record_one(&self, row: &Notification) -> Result<Option<Outcome>, DbError> {
        match self.store.record(row).await {
            Ok(Recorded::New) => {
                self.unsettled.forget([row.event_id]);
                Ok(None)
            }
            Err(error) => Err(error),
            Ok(Recorded::Duplicate) => {
                let recorded_by = self.store.recorded_by(row.event_id).await?;
                Ok(Some(
                    self.settled(row.event_id, recorded_by.unwrap_or_default()),
                ))
            }
        }
    }

    /// The batch's insert. A unique violation leaves the connection usable.
    async fn record_all(&self, rows: &[Notification]) -> Result<(), DbError> {
        let mut conn = self.conn.lock().await?;
        let result = self.store.record_all(&mut conn, rows).await;
        if result.is_ok() || result.as_ref().is_err_and(DbError::is_unique_violation) {
            conn.keep();
        }
        result
    }

    /// Remembers rows whose record attempt got no answer, with their events' types.
    fn unsettle(&self, rows: &[Notification], events: &[Event]) {
        for row in rows {
            let event_type = events
                .iter()
                .find(|e| e.attributes.id == row.event_id)
                .map_or(events::USER_REGISTERED_TYPE, |e| {
                    e.attributes.event_type.as_str()
                });
            self.unsettled.add(row, event_type);
        }
    }
}
