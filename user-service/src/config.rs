//! user-service settings: every one an environment variable and a flag (`--help`).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use service_kit::config::CommonArgs;
use service_kit::housekeeping::{HousekeepingArgs, parse_duration};
use service_kit::kafka::KafkaArgs;
use service_kit::limits::RateLimiter;

use crate::outbox::RelaySettings;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "user-service",
    version,
    about = "Registers users and publishes UserRegistered events."
)]
pub struct Config {
    /// Address to serve HTTP on.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8000")]
    pub http_addr: SocketAddr,

    /// mysql://user:password@host:3306/users or sqlite://path?mode=rwc
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "mysql://user_service:user_service@127.0.0.1:3306/users",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub database_url: String,

    /// Largest number of database connections.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 20)]
    pub database_max_connections: u32,

    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub common: CommonArgs,

    /// Run the outbox relay in this process.
    #[arg(long, env = "OUTBOX_RELAY", default_value_t = true, action = clap::ArgAction::Set)]
    pub outbox_relay: bool,

    /// Registrations per minute allowed from one client address (0: no limit).
    #[arg(long, env = "REGISTER_RATE_LIMIT_PER_MINUTE", default_value_t = 0)]
    pub register_rate_limit_per_minute: u32,

    /// Registrations one client may send in a burst before the rate applies.
    #[arg(long, env = "REGISTER_RATE_BURST", default_value_t = 10)]
    pub register_rate_burst: u32,

    /// Outbox rows published per batch.
    #[arg(long, env = "OUTBOX_BATCH_SIZE", default_value_t = 500)]
    pub outbox_batch_size: u32,

    /// Milliseconds between outbox sweeps (rows left by a crash or another replica).
    #[arg(long, env = "OUTBOX_SWEEP_INTERVAL_MS", default_value_t = 1000)]
    pub outbox_sweep_interval_ms: u64,

    /// How long a client may retry a registration with the same `Idempotency-Key` and
    /// get the stored answer (e.g. 24h); older keys are deleted by housekeeping.
    #[arg(long, env = "IDEMPOTENCY_KEY_TTL", default_value = "24h", value_parser = parse_duration)]
    pub idempotency_key_ttl: Duration,

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

    /// The per-client limiter of `POST /register/`, if a rate is configured.
    pub fn rate_limiter(&self) -> Option<RateLimiter> {
        (self.register_rate_limit_per_minute > 0).then(|| {
            RateLimiter::new(
                self.register_rate_limit_per_minute,
                self.register_rate_burst,
                self.common.trusted_proxies.clone(),
            )
        })
    }

    pub fn relay_settings(&self) -> RelaySettings {
        RelaySettings {
            batch_size: self.outbox_batch_size.max(1),
            sweep_interval: Duration::from_millis(self.outbox_sweep_interval_ms.max(10)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_is_the_flags_defaults_with_its_own_database_kafka_and_port() {
        let config = Config::new("sqlite://users.db", KafkaArgs::new("broker:9092", "events"));
        let flags: Config = service_kit::config::from_flags(&[
            "--http-addr=127.0.0.1:0",
            "--database-url=sqlite://users.db",
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
        assert_eq!(config.http_addr, SocketAddr::from(([0, 0, 0, 0], 8000)));
        assert_eq!(config.database_max_connections, 20);
        assert!(config.outbox_relay);
        assert_eq!(config.idempotency_key_ttl, Duration::from_secs(24 * 3600));
        assert_eq!(config.housekeeping.housekeeping_batch_rows, 1000);
    }
}
