//! The `main` of a service: healthcheck probe, telemetry, migrate-only or serve until a
//! signal with a grace period, exit code. Each service supplies its settings through
//! [`ServiceConfig`].

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use crate::Shutdown;
use crate::config::CommonArgs;
use crate::shutdown::GraceExpired;

/// What the runner needs to know about a service.
pub trait ServiceConfig: Sized {
    /// Service name in logs and traces.
    const NAME: &'static str;

    fn common(&self) -> &CommonArgs;
    fn http_addr(&self) -> std::net::SocketAddr;
    /// Applies the migrations and returns (`--migrate-only`).
    fn migrate(&self) -> impl Future<Output = anyhow::Result<()>>;
    /// Builds the service and runs it until `shutdown`.
    fn serve(&self, shutdown: Shutdown) -> impl Future<Output = anyhow::Result<()>>;
}

/// Runs a service process to its end and returns its exit code.
pub async fn run<C: ServiceConfig>(config: C) -> ExitCode {
    let common = config.common();
    if common.healthcheck {
        return exit_code(crate::http::probe_live(config.http_addr()).await);
    }
    let telemetry = crate::telemetry::init(
        common.log_format,
        common.otel_exporter_otlp_endpoint.as_deref(),
        C::NAME,
    );
    let result = if common.migrate_only {
        config.migrate().await
    } else {
        let delay = Duration::from_secs(common.shutdown_delay_seconds);
        let grace = Duration::from_secs(common.shutdown_grace_seconds);
        crate::shutdown::run_until_signal(delay, grace, |shutdown| config.serve(shutdown)).await
    };
    if let Err(error) = &result {
        tracing::error!(error = ?error, "{} failed", C::NAME);
    }
    telemetry.shutdown();
    if result
        .as_ref()
        .is_err_and(|error| error.is::<GraceExpired>())
    {
        // What did not stop may also hang in its destructor (a Kafka client whose group
        // never rejoined blocks in its close), and returning runs the destructors of
        // the tasks still alive: exit without them, as the orchestrator would kill it.
        std::process::exit(1);
    }
    exit_code(result.is_ok())
}

fn exit_code(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
