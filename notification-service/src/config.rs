//! notification-service settings: every one an environment variable and a flag (`--help`).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use service_kit::config::CommonArgs;
use service_kit::housekeeping::HousekeepingArgs;
use service_kit::kafka::KafkaArgs;

use crate::consumer::RetryPolicy;
use crate::delivery::{ChannelKind, SmtpArgs, WebhookArgs};
use crate::retention::RetentionSetting;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "notification-service",
    version,
    about = "Consumes UserRegistered events and sends welcome notifications."
)]
pub struct Config {
    /// Address to serve HTTP on.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8001")]
    pub http_addr: SocketAddr,

    /// mysql://user:password@host:3306/notifications or sqlite://path?mode=rwc
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "mysql://notification_service:notification_service@127.0.0.1:3306/notifications",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub database_url: String,

    /// Largest number of database connections.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,

    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub common: CommonArgs,

    /// Kafka consumer group.
    #[arg(long, env = "KAFKA_GROUP_ID", default_value = "notification-service")]
    pub group_id: String,

    /// Channel that delivers welcome notifications.
    #[arg(long, env = "NOTIFY_CHANNEL", value_enum, default_value_t = ChannelKind::Log)]
    pub channel: ChannelKind,

    #[command(flatten)]
    pub smtp: SmtpArgs,

    #[command(flatten)]
    pub webhook: WebhookArgs,

    /// Delivery attempts before an event goes to the dead-letter topic.
    #[arg(long, env = "DELIVERY_MAX_ATTEMPTS", default_value_t = 5)]
    pub delivery_max_attempts: u32,

    /// First retry delay in milliseconds (doubles per attempt, with jitter).
    #[arg(long, env = "DELIVERY_RETRY_BASE_MS", default_value_t = 200)]
    pub delivery_retry_base_ms: u64,

    /// How long delivered notifications, the dedupe record, are kept: a duration (8d,
    /// 36h) longer than the topic's longest message life, or `auto` (that life plus a
    /// day). A shorter window is refused at start.
    #[arg(long, env = "NOTIFICATIONS_RETENTION", default_value = "auto")]
    pub notifications_retention: RetentionSetting,

    #[command(flatten)]
    pub housekeeping: HousekeepingArgs,
}

impl Default for Config {
    /// The settings of a process started without flags or environment variables.
    fn default() -> Self {
        service_kit::config::defaults()
    }
}

impl Config {
    /// Settings for a service on `database_url` and `kafka`, HTTP on a free loopback
    /// port, everything else default.
    pub fn new(database_url: impl Into<String>, kafka: KafkaArgs) -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: database_url.into(),
            kafka,
            ..Self::default()
        }
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.delivery_max_attempts.max(1),
            base: Duration::from_millis(self.delivery_retry_base_ms.max(1)),
            max: Duration::from_secs(10),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_is_the_flags_defaults_with_its_own_database_kafka_and_port() {
        let config = Config::new(
            "sqlite://notifications.db",
            KafkaArgs::new("broker:9092", "events"),
        );
        let flags: Config = service_kit::config::from_flags(&[
            "--http-addr=127.0.0.1:0",
            "--database-url=sqlite://notifications.db",
            "--bootstrap-servers=broker:9092",
            "--kafka-topic=events",
        ])
        .expect("flags");
        // Debug shows every field, so equal text is equal settings.
        assert_eq!(format!("{config:?}"), format!("{flags:?}"));
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let config = Config::default();
        assert_eq!(config.http_addr, SocketAddr::from(([0, 0, 0, 0], 8001)));
        assert_eq!(config.database_max_connections, 10);
        assert_eq!(config.group_id, "notification-service");
        assert_eq!(config.channel, ChannelKind::Log);
        assert_eq!(config.delivery_max_attempts, 5);
        assert_eq!(config.notifications_retention, RetentionSetting::Auto);
    }
}
