//! What the walkthrough harnesses (compose, node) share: the step tally, and a load
//! that registers through a URL while a fault happens, every registration counted by id
//! (`platformctl load --verify`). Included with `#[path]` by each harness.

use std::future::Future;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::Value;
use service_kit::testing::eventually;
use tokio::process::{Child, Command};

/// Counts the steps and prints one line each, prefixed with the harness's name.
pub struct Tally {
    name: &'static str,
    pub passed: usize,
    pub failed: usize,
}

impl Tally {
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            passed: 0,
            failed: 0,
        }
    }

    /// Runs one step; `false` when it failed.
    pub async fn step(
        &mut self,
        name: &str,
        step: impl Future<Output = anyhow::Result<String>>,
    ) -> bool {
        let started = Instant::now();
        let outcome = step.await;
        let took = started.elapsed().as_secs_f64();
        match outcome {
            Ok(detail) => {
                self.passed += 1;
                println!("{}: {name} ... ok ({took:.1} s) {detail}", self.name);
                true
            }
            Err(error) => {
                self.failed += 1;
                println!("{}: {name} ... FAILED ({took:.1} s): {error:#}", self.name);
                false
            }
        }
    }

    /// The last line, and the exit code.
    pub fn finish(&self) -> std::process::ExitCode {
        println!("{} passed, {} failed", self.passed, self.failed);
        if self.failed == 0 {
            std::process::ExitCode::SUCCESS
        } else {
            std::process::ExitCode::FAILURE
        }
    }
}

/// Where a load registers and where it reads the deliveries back.
pub struct LoadTarget<'a> {
    pub users_url: &'a str,
    pub notifications_url: &'a str,
    pub admin_token: &'a str,
    /// Registrations a second: under the per-client registration limit (120 a minute).
    pub rate: &'a str,
    /// Long enough to span the fault.
    pub seconds: &'a str,
}

/// `platformctl load --verify` at `target`, running until `finish`.
pub fn start_load(run: &str, target: &LoadTarget<'_>) -> anyhow::Result<Child> {
    let run_id = format!("{run}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    Command::new(env!("CARGO_BIN_EXE_platformctl"))
        .args(["load", "--url", target.users_url, "--rate", target.rate])
        .args(["--duration", target.seconds, "--concurrency", "4"])
        .args(["--run-id", &run_id, "--json"])
        .args(["--verify", "--notifications-url", target.notifications_url])
        .args([
            "--admin-token",
            target.admin_token,
            "--verify-timeout",
            "180",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting platformctl load")
}

/// The fault must have happened while the load ran; then its JSON report.
pub async fn finish_load(mut load: Child) -> anyhow::Result<Value> {
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

/// Every registration that answered 201 was delivered, none twice.
pub fn exactly_once(report: &Value) -> anyhow::Result<String> {
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

/// No registration failed during the load.
pub fn no_errors(report: &Value, during: &str) -> anyhow::Result<()> {
    let errors = report["errors"].as_u64().unwrap_or(u64::MAX);
    ensure!(
        errors == 0,
        "registrations failed while {during}: {}",
        report["errors_by_status"]
    );
    Ok(())
}

/// The load is under way: the user-service whose `/metrics` is at `metrics_url` has
/// registered ten more users.
pub async fn progressed(http: &reqwest::Client, metrics_url: &str) -> anyhow::Result<()> {
    let start = registered(http, metrics_url).await?;
    let moved = eventually(Duration::from_secs(60), || async {
        registered(http, metrics_url)
            .await
            .is_ok_and(|n| n >= start + 10.0)
    })
    .await;
    ensure!(moved, "the load registered nobody within 60 s");
    Ok(())
}

/// `users_registered_total` of the user-service at `metrics_url`.
async fn registered(http: &reqwest::Client, metrics_url: &str) -> anyhow::Result<f64> {
    let text = http
        .get(metrics_url)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    text.lines()
        .find_map(|l| l.strip_prefix("users_registered_total "))
        .and_then(|v| v.trim().parse().ok())
        .context("no users_registered_total")
}
