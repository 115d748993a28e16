use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use notification_service::{Application, Config, app};

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    if config.common.healthcheck {
        return exit_code(service_kit::http::probe_live(config.http_addr).await);
    }
    let telemetry = service_kit::telemetry::init(
        config.common.log_format,
        config.common.otel_exporter_otlp_endpoint.as_deref(),
        "notification-service",
    );
    let result = if config.common.migrate_only {
        app::connect_and_migrate(&config).await.map(drop)
    } else {
        let grace = Duration::from_secs(config.common.shutdown_grace_seconds);
        service_kit::shutdown::run_until_signal(grace, |shutdown| async move {
            Application::build(&config).await?.run(shutdown).await
        })
        .await
    };
    if let Err(error) = &result {
        tracing::error!(error = ?error, "notification-service failed");
    }
    telemetry.shutdown();
    exit_code(result.is_ok())
}

fn exit_code(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
