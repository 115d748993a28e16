//! Faults under load through the published ports, every registration counted by id
//! (`platformctl load --verify`).

use tokio::process::Child;

use crate::docker::{ADMIN_TOKEN, Project};
use crate::gateway::GATEWAY;
use crate::walkthrough::{self, LoadTarget, exactly_once, finish_load, no_errors};

/// Under compose's per-client registration limit (120 a minute), long enough to span a
/// broker restart.
const RATE: &str = "1.8";
const SECONDS: &str = "50";

/// `docker compose restart kafka` in the middle of a load: the outbox holds the events,
/// so every registration still answers 201, and each is delivered exactly once.
pub async fn kafka_restart(project: &Project) -> anyhow::Result<String> {
    let load = start_load("kafka-restart")?;
    progressed(project).await?;
    project.compose(&["restart", "kafka"]).await?;
    let report = finish_load(load).await?;
    no_errors(&report, "Kafka restarted")?;
    exactly_once(&report)
}

/// `docker compose kill -s KILL user-service`, then `up -d`: requests in flight fail,
/// but no registration that committed is lost or delivered twice.
pub async fn user_service_killed(project: &Project) -> anyhow::Result<String> {
    let load = start_load("user-service-kill")?;
    progressed(project).await?;
    project
        .compose(&["kill", "-s", "KILL", "user-service"])
        .await?;
    project
        .compose(&["up", "-d", "--wait", "user-service"])
        .await?;
    let report = finish_load(load).await?;
    let detail = exactly_once(&report)?;
    Ok(format!(
        "{detail}; failed while down: {}",
        report["errors_by_status"]
    ))
}

fn start_load(run: &str) -> anyhow::Result<Child> {
    walkthrough::start_load(
        run,
        &LoadTarget {
            users_url: &format!("{GATEWAY}/api/users"),
            notifications_url: &format!("{GATEWAY}/api/notifications"),
            admin_token: ADMIN_TOKEN,
            rate: RATE,
            seconds: SECONDS,
        },
    )
}

/// The load is under way (the user-service's published port).
async fn progressed(project: &Project) -> anyhow::Result<()> {
    walkthrough::progressed(&project.http, "http://127.0.0.1:8000/metrics").await
}
