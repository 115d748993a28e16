//! How long delivered notifications are kept. The table is also the consumer's dedupe
//! record, so a row may go only once no copy of its event can be delivered again: the
//! window must outlive every message of the topic (docs/operations.md, "Bounded tables").

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use service_kit::Shutdown;
use service_kit::housekeeping::{self, HousekeepingArgs, format_duration};
use service_kit::kafka::{KafkaArgs, topic_message_life};

use crate::store::NotificationStore;
use std::sync::OnceLock;

/// What `auto` keeps beyond the topic's longest message life.
pub const AUTO_MARGIN: Duration = Duration::from_secs(86_400);

/// How long a start-up waits for the broker to describe the topic.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// The `NOTIFICATIONS_RETENTION` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionSetting {
    /// The topic's longest message life plus [`AUTO_MARGIN`].
    Auto,
    Window(Duration),
}

impl FromStr for RetentionSetting {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.trim() == "auto" {
            return Ok(Self::Auto);
        }
        housekeeping::parse_duration(text).map(Self::Window)
    }
}

impl fmt::Display for RetentionSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Window(window) => f.write_str(&format_duration(*window)),
        }
    }
}

/// A window that would forget events the broker can still deliver.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetentionError {
    #[error(
        "NOTIFICATIONS_RETENTION={} is not longer than the longest life of a message of the topic ({}: retention.ms + segment.ms + the broker's retention check); a redelivered event would be sent twice",
        format_duration(*window), format_duration(*life)
    )]
    TooShort { window: Duration, life: Duration },
    #[error(
        "NOTIFICATIONS_RETENTION={} but the topic never deletes messages by age (retention.ms=-1 or compacted): keep every notification with `auto`",
        format_duration(*window)
    )]
    TopicKeepsForever { window: Duration },
}

/// The window to keep, given the longest life of a message (`None`: forever); `None`
/// keeps every row.
pub fn dedupe_window(
    setting: RetentionSetting,
    life: Option<Duration>,
) -> Result<Option<Duration>, RetentionError> {
    match (setting, life) {
        (RetentionSetting::Auto, life) => Ok(life.map(|life| life + AUTO_MARGIN)),
        (RetentionSetting::Window(window), Some(life)) if window > life => Ok(Some(window)),
        (RetentionSetting::Window(window), Some(life)) => {
            Err(RetentionError::TooShort { window, life })
        }
        (RetentionSetting::Window(window), None) => {
            Err(RetentionError::TopicKeepsForever { window })
        }
    }
}

/// Trims the notifications table to its window, on the housekeeping timer.
#[derive(Debug, Clone)]
pub struct Retention {
    setting: RetentionSetting,
    kafka: KafkaArgs,
    /// Resolved once the broker has described the topic.
    window: Arc<OnceLock<Option<Duration>>>,
    unknown_reported: Arc<AtomicBool>,
    args: HousekeepingArgs,
}

impl Retention {
    /// An explicit window is checked against the topic before the service starts, and
    /// refused if it is too short. `auto`, or a broker that does not answer in time, is
    /// resolved by the housekeeping task once the broker describes the topic; until then
    /// nothing is deleted.
    pub async fn resolve(
        setting: RetentionSetting,
        kafka: &KafkaArgs,
        args: HousekeepingArgs,
    ) -> Result<Self, RetentionError> {
        let retention = Self {
            setting,
            kafka: kafka.clone(),
            window: Arc::default(),
            unknown_reported: Arc::default(),
            args,
        };
        if let RetentionSetting::Window(_) = setting {
            match tokio::time::timeout(LOOKUP_TIMEOUT, retention.lookup()).await {
                Ok(Ok(window)) => retention.settle(window?),
                Ok(Err(error)) => retention.report_unknown(&error),
                Err(_) => retention.report_unknown(&"the broker did not answer in time"),
            }
        }
        Ok(retention)
    }

    /// The window once the broker has described the topic: `Some(None)` keeps every row.
    pub fn resolved(&self) -> Option<Option<Duration>> {
        self.window.get().copied()
    }

    async fn lookup(&self) -> anyhow::Result<Result<Option<Duration>, RetentionError>> {
        let life = topic_message_life(&self.kafka, &self.kafka.topic).await?;
        Ok(dedupe_window(self.setting, life))
    }

    fn settle(&self, window: Option<Duration>) {
        if self.window.set(window).is_err() {
            return;
        }
        match window {
            Some(window) => tracing::info!(
                window = %format_duration(window), setting = %self.setting,
                "notifications older than the window are deleted"
            ),
            None => tracing::info!("the topic keeps messages forever: every notification is kept"),
        }
    }

    /// Once at warn level (a broker that refuses DescribeConfigs keeps every row), then
    /// at debug level.
    fn report_unknown(&self, error: &dyn fmt::Display) {
        if self.unknown_reported.swap(true, Ordering::Relaxed) {
            tracing::debug!(%error, "topic retention still unknown; notifications are kept");
        } else {
            tracing::warn!(%error, "topic retention unknown; notifications are kept until the broker describes the topic");
        }
    }

    /// The window, asking the broker if it has not described the topic yet; `None` while
    /// unknown, or while the setting is refused.
    pub async fn window(&self) -> Option<Option<Duration>> {
        if let Some(window) = self.window.get() {
            return Some(*window);
        }
        match self.lookup().await {
            Ok(Ok(window)) => {
                self.settle(window);
                Some(window)
            }
            Ok(Err(refused)) => {
                tracing::error!(%refused, "notifications are kept until the setting is corrected");
                None
            }
            Err(error) => {
                self.report_unknown(&error);
                None
            }
        }
    }

    /// Deletes expired notifications every interval until `shutdown`.
    pub async fn run(self, store: NotificationStore, shutdown: Shutdown) {
        let interval = self.args.housekeeping_interval;
        housekeeping::every("notifications", interval, shutdown, || {
            let (retention, store) = (self.clone(), store.clone());
            async move {
                let Some(Some(window)) = retention.window().await else {
                    return Ok(0);
                };
                let rows = retention.args.housekeeping_batch_rows;
                store.forget_delivered_before(window, rows).await
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn auto_keeps_a_day_beyond_the_longest_message_life() {
        assert_eq!(
            dedupe_window(RetentionSetting::Auto, Some(11 * MINUTE)),
            Ok(Some(11 * MINUTE + AUTO_MARGIN))
        );
        assert_eq!(dedupe_window(RetentionSetting::Auto, None), Ok(None));
    }

    #[test]
    fn a_window_not_longer_than_a_message_can_live_is_refused() {
        let life = 11 * MINUTE;
        assert_eq!(
            dedupe_window(RetentionSetting::Window(12 * MINUTE), Some(life)),
            Ok(Some(12 * MINUTE))
        );
        let refused = dedupe_window(RetentionSetting::Window(life), Some(life));
        assert_eq!(
            refused,
            Err(RetentionError::TooShort { window: life, life })
        );
        let message = refused.expect_err("refused").to_string();
        assert!(message.contains("NOTIFICATIONS_RETENTION=11m"), "{message}");
        assert_eq!(
            dedupe_window(RetentionSetting::Window(life), None),
            Err(RetentionError::TopicKeepsForever { window: life })
        );
    }

    #[test]
    fn the_setting_reads_auto_or_a_duration() {
        assert_eq!("auto".parse(), Ok(RetentionSetting::Auto));
        assert_eq!(
            "8d".parse(),
            Ok(RetentionSetting::Window(8 * 24 * 60 * MINUTE))
        );
        assert!("forever".parse::<RetentionSetting>().is_err());
        assert_eq!(
            RetentionSetting::Window(36 * 60 * MINUTE).to_string(),
            "36h"
        );
    }
}
