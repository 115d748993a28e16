use std::process::ExitCode;

use clap::Parser;
use prediction_service::Config;

#[tokio::main]
async fn main() -> ExitCode {
    service_kit::runner::run(Config::parse()).await
}
