//! The compose stack: started, checked, moved to other ports and taken down.

use std::os::unix::fs::MetadataExt;
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use serde_json::Value;
use sqlx::Connection;

use crate::docker::{PROJECT, Project};
use crate::gateway;

/// The images compose pulls, built here by scripts/images.sh (no registry is reachable).
const STAND_INS: [&str; 7] = [
    "debian:12.12-slim",
    "rust:1.95.0-bookworm",
    "mysql:8.4.6",
    "apache/kafka:4.1.1",
    "traefik:v3.5.3",
    "prom/prometheus:v3.5.0",
    "adminer:5.3.0",
];

/// The engine answers, the walkthrough runs in its network namespace (where compose
/// publishes ports), and every image compose would pull is there.
pub async fn preflight(project: &Project) -> anyhow::Result<String> {
    std::env::var("DOCKER_HOST")
        .context("DOCKER_HOST is not set: eval \"$(scripts/docker.sh up)\" first")?;
    let server = project
        .docker(&["version", "--format", "{{.Server.Version}}"])
        .await
        .context("the Docker engine does not answer: scripts/docker.sh up")?;
    let netns = std::env::var("DOCKER_NETNS_PATH")
        .context("DOCKER_NETNS_PATH is not set (scripts/docker.sh env)")?;
    let here = std::fs::metadata("/proc/self/ns/net")?.ino();
    ensure!(
        std::fs::metadata(&netns)?.ino() == here,
        "not inside the engine's network namespace: run under nsenter --net={netns}"
    );
    let mut missing = Vec::new();
    for image in STAND_INS {
        let recipe = project
            .inspect(image, "{{index .Config.Labels \"platform.recipe\"}}")
            .await
            .unwrap_or_default();
        if recipe.is_empty() {
            missing.push(image);
        }
    }
    ensure!(
        missing.is_empty(),
        "stand-in images missing: {missing:?} (scripts/images.sh build)"
    );
    Ok(format!("dockerd {}", server.trim()))
}

pub async fn up(project: &Project) -> anyhow::Result<String> {
    if let Err(error) = project.compose(&["up", "-d", "--build", "--wait"]).await {
        let state = project.compose(&["ps", "-a"]).await.unwrap_or_default();
        bail!("{error:#}\n{state}");
    }
    Ok(String::new())
}

/// `docker compose ps`: every service running and healthy, the one-shot job done.
pub async fn healthy(project: &Project) -> anyhow::Result<String> {
    let services = services(project).await?;
    let mut names = Vec::new();
    for service in &services {
        let name = service["Service"].as_str().unwrap_or("?");
        let (state, health) = (&service["State"], &service["Health"]);
        if name == "kafka-init" {
            ensure!(
                state == "exited" && service["ExitCode"] == 0,
                "kafka-init: {service}"
            );
        } else {
            ensure!(
                state == "running" && health == "healthy",
                "{name}: {state} {health}"
            );
        }
        names.push(name.to_owned());
    }
    ensure!(
        services.len() == 8,
        "expected 8 services without Grafana and Adminer, got {names:?}"
    );
    Ok(names.join(", "))
}

/// `docker compose ps -a --format json`: one object a line (an array in older releases).
async fn services(project: &Project) -> anyhow::Result<Vec<Value>> {
    let out = project.compose(&["ps", "-a", "--format", "json"]).await?;
    let mut all = Vec::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str(line).context("compose ps output")? {
            Value::Array(items) => all.extend(items),
            item => all.push(item),
        }
    }
    Ok(all)
}

/// The running processes themselves: their uid, read from /proc, and a read-only root.
pub async fn hardened(project: &Project) -> anyhow::Result<String> {
    for service in crate::docker::TARGETS {
        let id = project.container(service).await?;
        let state = project
            .inspect(&id, "{{.State.Pid}} {{.HostConfig.ReadonlyRootfs}}")
            .await?;
        let (pid, read_only) = state.split_once(' ').context("inspect output")?;
        ensure!(
            read_only == "true",
            "{service}: the root filesystem is writable"
        );
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .context("no Uid line")?;
        ensure!(
            uid.split_whitespace().all(|u| u == "10001"),
            "{service} (pid {pid}) runs with uids {uid}"
        );
    }
    Ok(String::new())
}

/// MySQL cannot be obtained here: the mysql:8.4.6 image is MariaDB, and says so.
pub async fn mysql_stand_in(project: &Project) -> anyhow::Result<String> {
    let logs = project
        .compose(&["logs", "--no-log-prefix", "mysql"])
        .await?;
    let notice = logs
        .lines()
        .find(|l| l.contains("stand-in") && l.contains("MariaDB"))
        .context("the mysql container never said it is MariaDB")?;
    let version = project
        .compose(&[
            "exec",
            "-T",
            "mysql",
            "mysql",
            "-uroot",
            "-proot_pw",
            "-N",
            "-e",
            "SELECT VERSION()",
        ])
        .await?;
    ensure!(
        version.contains("MariaDB"),
        "SELECT VERSION() answered {version}"
    );
    Ok(format!(
        "{} / SELECT VERSION() = {}",
        notice.trim(),
        version.trim()
    ))
}

/// Host ports moved by their variables: the gateway and MySQL answer on the new ones.
pub async fn moved_ports(project: &Project) -> anyhow::Result<String> {
    let env = [("GATEWAY_PORT", "18088"), ("MYSQL_PORT", "13306")];
    project.compose_with(&env, &["up", "-d", "--wait"]).await?;
    let (status, _) = gateway::register_at(project, "http://127.0.0.1:18088").await?;
    ensure!(
        status == 201,
        "registration on the moved gateway port answered {status}"
    );
    let mut db = sqlx::MySqlConnection::connect(
        "mysql://user_service:user_service_pw@127.0.0.1:13306/users",
    )
    .await
    .context("MySQL on the moved port 13306")?;
    let (users,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
        .fetch_one(&mut db)
        .await?;
    ensure!(users > 0, "no users in MySQL on port 13306");
    ensure!(
        std::net::TcpStream::connect("127.0.0.1:80").is_err(),
        "port 80 still answers after the gateway moved"
    );
    Ok(format!(
        "gateway :18088 201, MySQL :13306 has {users} users, :80 closed"
    ))
}

/// `docker compose down -v`, then nothing of the project is left on the engine.
pub async fn down(project: &Project) -> anyhow::Result<String> {
    let started = Instant::now();
    project
        .compose(&["--profile", "tools", "down", "-v", "--remove-orphans"])
        .await?;
    let filter = format!("label=com.docker.compose.project={PROJECT}");
    for (kind, args) in [
        ("containers", vec!["ps", "-a", "-q", "--filter", &filter]),
        ("networks", vec!["network", "ls", "-q", "--filter", &filter]),
        ("volumes", vec!["volume", "ls", "-q", "--filter", &filter]),
    ] {
        let left = project.docker(&args).await?;
        ensure!(left.trim().is_empty(), "{kind} left: {left}");
    }
    Ok(format!("in {:.0} s", started.elapsed().as_secs_f64()))
}
