use std::process::ExitCode;

use clap::Parser;
use user_service::Config;

#[tokio::main]
async fn main() -> ExitCode {
    service_kit::runner::run(Config::parse()).await
}
