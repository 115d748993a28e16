//! Records whose outcome is unknown. A write whose answer never came (the database
//! deadline passed, the connection broke, the process stalled past its timer) may have
//! committed all the same: a frozen database runs the statement when it wakes up. Counting
//! such an event as failed and, on its redelivery, as a duplicate would leave
//! `events_consumed_total{outcome="delivered"}` below the rows in the table.
//!
//! Every record attempt writes its own token into the row (`recorded_by`). An attempt that
//! ended without an answer is remembered here; when its event's row is found later (on the
//! event's redelivery, or by [`Records::settle_unknown`] between batches) with that token,
//! this consumer recorded it and counts it as delivered then, once. A row with another
//! token was recorded, and counted, by another attempt or replica.
//!
//! [`Records::settle_unknown`]: super::records::Records::settle_unknown

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::store::Notification;

/// How long an attempt stays unsettled. Long past any statement a database could still
/// be holding: a write that has not appeared by then never will.
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// A record attempt without an answer.
#[derive(Debug, Clone)]
pub struct Unknown {
    pub attempt: Uuid,
    pub event_type: String,
    pub event_time: DateTime<Utc>,
    since: Instant,
}

/// Unsettled attempts by event id.
#[derive(Debug, Default)]
pub struct Unsettled(Mutex<HashMap<Uuid, Unknown>>);

impl Unsettled {
    /// Remembers that `row` was written by an attempt whose outcome is unknown.
    pub fn add(&self, row: &Notification, event_type: &str) {
        let unknown = Unknown {
            attempt: row.recorded_by,
            event_type: event_type.to_owned(),
            event_time: row.event_time,
            since: Instant::now(),
        };
        self.with(|map| map.insert(row.event_id, unknown));
    }

    /// The event's row exists, written by `recorded_by`. Returns the unsettled attempt if
    /// it was that one (the caller counts the delivery now); either way the event is
    /// settled.
    pub fn settle(&self, event_id: Uuid, recorded_by: Uuid) -> Option<Unknown> {
        self.with(|map| map.remove(&event_id))
            .filter(|unknown| unknown.attempt == recorded_by)
    }

    /// A later attempt recorded the event: no earlier one can have.
    pub fn forget(&self, event_ids: impl IntoIterator<Item = Uuid>) {
        self.with(|map| {
            for id in event_ids {
                map.remove(&id);
            }
        });
    }

    /// Event ids to look up, after dropping attempts too old to ever appear.
    pub fn pending(&self) -> Vec<Uuid> {
        self.with(|map| {
            map.retain(|id, unknown| {
                let keep = unknown.since.elapsed() < FORGET_AFTER;
                if !keep {
                    tracing::warn!(event_id = %id, "record attempt never appeared; forgotten");
                }
                keep
            });
            map.keys().copied().collect()
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<Uuid, Unknown>) -> T) -> T {
        // A panic while holding the lock cannot leave the map half-updated.
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(attempt: Uuid) -> Notification {
        Notification {
            event_id: Uuid::new_v4(),
            user_id: Uuid::new_v4(),
            user_name: "Ada".into(),
            email: "ada@example.com".into(),
            channel: "log".into(),
            event_time: Utc::now(),
            delivered_at: Utc::now(),
            recorded_by: attempt,
        }
    }

    #[test]
    fn only_the_unsettled_attempt_itself_settles_as_ours_and_only_once() {
        let unsettled = Unsettled::default();
        let ours = row(Uuid::new_v4());
        unsettled.add(&ours, "t");
        assert_eq!(unsettled.pending(), vec![ours.event_id]);
        let settled = unsettled.settle(ours.event_id, ours.recorded_by);
        assert_eq!(settled.map(|u| u.attempt), Some(ours.recorded_by));
        assert!(unsettled.settle(ours.event_id, ours.recorded_by).is_none());
        assert!(unsettled.pending().is_empty());
    }

    #[test]
    fn a_row_written_by_another_attempt_settles_as_not_ours() {
        let unsettled = Unsettled::default();
        let ours = row(Uuid::new_v4());
        unsettled.add(&ours, "t");
        assert!(unsettled.settle(ours.event_id, Uuid::new_v4()).is_none());
        assert!(unsettled.pending().is_empty(), "settled either way");
    }

    #[test]
    fn a_later_successful_attempt_forgets_the_earlier_one() {
        let unsettled = Unsettled::default();
        let ours = row(Uuid::new_v4());
        unsettled.add(&ours, "t");
        unsettled.forget([ours.event_id]);
        assert!(unsettled.settle(ours.event_id, ours.recorded_by).is_none());
    }
}
