//! Settings both services read from flags and environment variables.

use clap::{Args, ValueEnum};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// One JSON object per line, for log shippers.
    Json,
    /// Human-readable, for terminals.
    #[default]
    Pretty,
}

/// Settings shared by both services.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Bearer token for admin endpoints. Unset means those endpoints are closed.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    /// Apply database migrations at start-up.
    #[arg(long, env = "RUN_MIGRATIONS", default_value_t = true, action = clap::ArgAction::Set)]
    pub run_migrations: bool,

    /// Apply database migrations, then exit (for a deployment hook).
    #[arg(long, env = "MIGRATE_ONLY", default_value_t = false)]
    pub migrate_only: bool,

    /// Check that the service on HTTP_ADDR is live, exit 0 or 1 (container healthcheck).
    #[arg(long, default_value_t = false)]
    pub healthcheck: bool,

    /// Seconds to drain in-flight work on SIGTERM before exiting.
    #[arg(long, env = "SHUTDOWN_GRACE_SECONDS", default_value_t = 20)]
    pub shutdown_grace_seconds: u64,
}

impl Default for CommonArgs {
    fn default() -> Self {
        Self {
            admin_token: None,
            log_format: LogFormat::Pretty,
            run_migrations: true,
            migrate_only: false,
            healthcheck: false,
            shutdown_grace_seconds: 20,
        }
    }
}
