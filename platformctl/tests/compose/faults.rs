//! Faults under load through the published ports, every registration counted by id
//! (`platformctl load --verify`).

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde_json::Value;
use service_kit::testing::eventually;
use tokio::process::{Child, Command};

use crate::docker::{ADMIN_TOKEN, Project};
use crate::gateway::GATEWAY;

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
    let report = finish(load).await?;
    let errors = report["errors"].as_u64().unwrap_or(u64::MAX);
    ensure!(
        errors == 0,
        "registrations failed while Kafka restarted: {}",
        report["errors_by_status"]
    );
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
    let report = finish(load).await?;
    let detail = exactly_once(&report)?;
    Ok(format!(
        "{detail}; failed while down: {}",
        report["errors_by_status"]
    ))
}

fn start_load(run: &str) -> anyhow::Result<Child> {
    let run_id = format!("{run}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    Command::new(env!("CARGO_BIN_EXE_platformctl"))
        .args([
            "load",
            "--url",
            &format!("{GATEWAY}/api/users"),
            "--rate",
            RATE,
        ])
        .args([
            "--duration",
            SECONDS,
            "--concurrency",
            "4",
            "--run-id",
            &run_id,
            "--json",
        ])
        .args([
            "--verify",
            "--notifications-url",
            &format!("{GATEWAY}/api/notifications"),
        ])
        .args(["--admin-token", ADMIN_TOKEN, "--verify-timeout", "180"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting platformctl load")
}

/// The load is under way: the user-service has registered ten more users.
async fn progressed(project: &Project) -> anyhow::Result<()> {
    let start = registered(project).await?;
    let moved = eventually(Duration::from_secs(30), || async {
        registered(project).await.is_ok_and(|n| n >= start + 10.0)
    })
    .await;
    ensure!(moved, "the load registered nobody within 30 s");
    Ok(())
}

/// `users_registered_total` of the user-service, on its published port.
async fn registered(project: &Project) -> anyhow::Result<f64> {
    let text = project
        .http
        .get("http://127.0.0.1:8000/metrics")
        .send()
        .await?
        .text()
        .await?;
    text.lines()
        .find_map(|l| l.strip_prefix("users_registered_total "))
        .and_then(|v| v.trim().parse().ok())
        .context("no users_registered_total")
}

/// The fault must have happened while the load ran; then its JSON report.
async fn finish(mut load: Child) -> anyhow::Result<Value> {
    if let Some(status) = load.try_wait()? {
        bail!("the load ended ({status}) before the fault was over: lengthen it");
    }
    let output = load.wait_with_output().await?;
    let report: Value = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "platformctl load printed no report: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    Ok(report)
}

fn exactly_once(report: &Value) -> anyhow::Result<String> {
    let verify = &report["verify"];
    let created = report["created"].as_u64().unwrap_or(0);
    ensure!(
        created >= 30,
        "only {created} registrations went through: {report}"
    );
    ensure!(
        verify["missing"] == 0 && verify["duplicated"] == 0,
        "not exactly once: {verify}"
    );
    Ok(format!(
        "registered {created}, delivered {} (0 lost, 0 twice, {} unseen 201s delivered once)",
        verify["delivered"], verify["unexpected"]
    ))
}
