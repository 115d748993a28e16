//! Settings both services read from flags and environment variables.

use clap::{Args, Command, ValueEnum};

use crate::limits::IpNet;

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

    /// File holding the admin token (a mounted Secret); used when ADMIN_TOKEN is unset.
    #[arg(long, env = "ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<std::path::PathBuf>,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    /// OTLP/HTTP collector base URL (e.g. http://otel-collector:4318); traces are
    /// exported only when set.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otel_exporter_otlp_endpoint: Option<String>,

    /// Apply database migrations at start-up.
    #[arg(long, env = "RUN_MIGRATIONS", default_value_t = true, action = clap::ArgAction::Set)]
    pub run_migrations: bool,

    /// Apply database migrations, then exit (for a deployment hook).
    #[arg(long, env = "MIGRATE_ONLY", default_value_t = false)]
    pub migrate_only: bool,

    /// Check that the service on HTTP_ADDR is live, exit 0 or 1 (container healthcheck).
    #[arg(long, default_value_t = false)]
    pub healthcheck: bool,

    /// Seconds to keep serving after SIGTERM before draining: a gateway that learns of
    /// the stop from the Service's endpoints (Kubernetes) still sends new connections
    /// for a moment.
    #[arg(long, env = "SHUTDOWN_DELAY_SECONDS", default_value_t = 0)]
    pub shutdown_delay_seconds: u64,

    /// Seconds to drain in-flight work on SIGTERM (after the delay) before exiting.
    #[arg(long, env = "SHUTDOWN_GRACE_SECONDS", default_value_t = 20)]
    pub shutdown_grace_seconds: u64,

    /// Proxies (IPs or CIDR networks, comma-separated) whose forwarding headers are
    /// believed: `X-Forwarded-For` names the client (rate limit) and
    /// `X-Forwarded-Prefix` the path the gateway stripped (links, API docs). None by
    /// default; set it to the gateway's network, e.g. the Traefik pods'.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for CommonArgs {
    fn default() -> Self {
        defaults()
    }
}

impl CommonArgs {
    /// The admin token from `ADMIN_TOKEN`, else from `ADMIN_TOKEN_FILE` (trimmed).
    pub fn admin_token(&self) -> anyhow::Result<Option<String>> {
        if self.admin_token.is_some() {
            return Ok(self.admin_token.clone());
        }
        let Some(path) = &self.admin_token_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read ADMIN_TOKEN_FILE {}: {e}", path.display()))?;
        Ok(Some(text.trim().to_owned()).filter(|t| !t.is_empty()))
    }
}

/// The settings `flags` give, with every environment variable ignored.
pub fn from_flags<A: Args>(flags: &[&str]) -> Result<A, clap::Error> {
    // Clearing `env` on every argument leaves flags and `default_value`s only: a variable
    // set in the process (a test's, a developer's shell) must not leak into a default.
    let command = A::augment_args(Command::new("settings")).mut_args(|arg| arg.env(None));
    let matches =
        command.try_get_matches_from(std::iter::once("settings").chain(flags.iter().copied()))?;
    A::from_arg_matches(&matches)
}

/// The settings a process started without flags or environment variables runs with.
/// Every default is written once, in its clap attribute; a `Default` built from this
/// cannot drift from what the binary starts with.
pub fn defaults<A: Args>() -> A {
    // Only a setting without a default and not optional fails here: a programming error
    // that every service's unit tests (which build its defaults) catch.
    from_flags(&[]).unwrap_or_else(|e| panic!("settings without a default: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Args)]
    struct Probe {
        #[arg(long, env = "PATH", default_value = "unset")]
        path: String,
    }

    #[test]
    fn defaults_ignore_the_environment() {
        assert!(
            std::env::var_os("PATH").is_some(),
            "PATH is set in any process"
        );
        assert_eq!(defaults::<Probe>().path, "unset");
    }

    #[test]
    fn flags_override_defaults() {
        let probe: Probe = from_flags(&["--path", "/bin"]).expect("flags");
        assert_eq!(probe.path, "/bin");
    }

    #[test]
    fn common_defaults_are_the_documented_ones() {
        let common = CommonArgs::default();
        assert!(common.run_migrations);
        assert!(!common.migrate_only);
        assert_eq!(common.log_format, LogFormat::Pretty);
        assert_eq!(common.shutdown_delay_seconds, 0);
        assert_eq!(common.shutdown_grace_seconds, 20);
        assert!(common.trusted_proxies.is_empty());
    }
}
