//! The container walkthrough: the three images built from the `Dockerfile` as a user
//! builds them and checked, then docs/deployment.md's "docker compose" section run
//! command by command on the unmodified `docker-compose.yml`, faults under load counted
//! by id, and `docker compose down -v` leaving nothing behind.
//!
//! It needs the Docker engine of scripts/docker.sh (`DOCKER_HOST`), the stand-in images
//! of scripts/images.sh, and runs inside the engine's network namespace, where compose
//! publishes its ports (scripts/check-compose.sh). The only change to the compose file
//! is `without-grafana.yml`: Grafana cannot be obtained here.
//!
//! A plain harness, not libtest: the steps build on each other and run in order. Each
//! prints `ok` or `FAILED`; a failed step that later steps need stops the run, and the
//! last line is `N passed, N failed`.

mod docker;
mod faults;
mod gateway;
mod images;
mod stack;
#[path = "../support/walkthrough.rs"]
mod walkthrough;

use std::process::ExitCode;

use docker::Project;
use walkthrough::Tally;

#[tokio::main]
async fn main() -> ExitCode {
    let mut tally = Tally::new("compose");
    let project = match Project::checkout() {
        Ok(project) => project,
        Err(error) => {
            println!("compose: setting up ... FAILED: {error:#}");
            println!("0 passed, 1 failed");
            return ExitCode::FAILURE;
        }
    };
    run(&mut tally, &project).await;
    // Whatever happened above, the stack goes, and its absence is checked.
    tally
        .step(
            "docker compose down -v leaves no container, network or volume",
            stack::down(&project),
        )
        .await;
    tally.finish()
}

/// The steps in order; returns at the first failure that later steps depend on.
async fn run(tally: &mut Tally, project: &Project) {
    if !tally
        .step(
            "the engine and the stand-in images are there",
            stack::preflight(project),
        )
        .await
    {
        return;
    }
    if !tally
        .step(
            "docker build --target ... of each service (BuildKit)",
            images::build_targets(project),
        )
        .await
    {
        return;
    }
    tally
        .step("docker compose build", images::compose_build(project))
        .await;
    tally
        .step("each image at most 100 MB", images::sizes(project))
        .await;
    tally
        .step("each image runs as uid 10001", images::user(project))
        .await;
    tally
        .step(
            "no shell, no package manager in the images",
            images::minimal(project),
        )
        .await;
    tally
        .step(
            "--help of every binary in the images",
            images::help(project),
        )
        .await;
    tally
        .step(
            "a source-only change recompiles only the workspace crates",
            images::rebuild(project),
        )
        .await;
    if !tally
        .step("docker compose up -d --build --wait", stack::up(project))
        .await
    {
        return;
    }
    tally
        .step(
            "every service healthy, kafka-init exited 0",
            stack::healthy(project),
        )
        .await;
    tally
        .step(
            "services run as uid 10001 on a read-only root",
            stack::hardened(project),
        )
        .await;
    tally
        .step(
            "mysql:8.4.6 here is MariaDB (a different server)",
            stack::mysql_stand_in(project),
        )
        .await;
    tally
        .step(
            "each image's own HEALTHCHECK turns healthy",
            images::healthcheck(project),
        )
        .await;
    tally
        .step(
            "registration through the gateway, Location followed",
            gateway::register(project),
        )
        .await;
    tally
        .step(
            "the welcome notification through the gateway",
            gateway::notification(project),
        )
        .await;
    tally
        .step(
            "a prediction and /model through the gateway",
            gateway::prediction(project),
        )
        .await;
    tally
        .step(
            "every Prometheus target up",
            gateway::prometheus_targets(project),
        )
        .await;
    tally
        .step(
            "./generate-test-data.sh 40 against the gateway",
            gateway::generate_test_data(project),
        )
        .await;
    tally
        .step(
            "a model swapped on the host is reloaded",
            gateway::model_swap(project),
        )
        .await;
    tally
        .step("Adminer (profile tools) logs in", gateway::adminer(project))
        .await;
    tally
        .step(
            "Kafka restarted under load: all 201, 0 lost, 0 twice",
            faults::kafka_restart(project),
        )
        .await;
    tally
        .step(
            "user-service killed under load: 0 lost, 0 twice",
            faults::user_service_killed(project),
        )
        .await;
    tally
        .step(
            "moved ports: GATEWAY_PORT and MYSQL_PORT",
            stack::moved_ports(project),
        )
        .await;
}
