//! The consumer's state and counters, shared between the loop and `GET /consumer/status`.

use std::sync::Mutex;

use serde::Serialize;
use utoipa::ToSchema;

use crate::metrics::Outcome;

/// What the consumer is doing, as `GET /consumer/status` reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsumerState {
    /// Built, not yet subscribed.
    #[default]
    Starting,
    Running,
    /// Running, with fetching paused by `POST /consumer/pause`.
    Paused,
    Stopped,
}

/// Counters and state shown by `GET /consumer/status`.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Counters {
    pub delivered: u64,
    pub duplicates: u64,
    pub failed: u64,
    pub dead_lettered: u64,
    pub last_error: Option<String>,
    pub state: ConsumerState,
}

/// Shared between the loop and the API.
#[derive(Debug, Default)]
pub struct StatusBoard(Mutex<Counters>);

impl StatusBoard {
    pub fn snapshot(&self) -> Counters {
        self.0.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn update(&self, f: impl FnOnce(&mut Counters)) {
        if let Ok(mut counters) = self.0.lock() {
            f(&mut counters);
        }
    }

    pub fn count(&self, outcome: Outcome) {
        self.update(|c| match outcome {
            Outcome::Delivered => c.delivered += 1,
            Outcome::Duplicate => c.duplicates += 1,
            Outcome::Failed => c.failed += 1,
            Outcome::DeadLettered => c.dead_lettered += 1,
        });
    }

    pub fn error(&self, error: &dyn std::fmt::Display) {
        let text = error.to_string();
        self.update(|c| c.last_error = Some(text));
    }

    pub fn state(&self, state: ConsumerState) {
        self.update(|c| c.state = state);
    }
}
