//! The service images, built as a user builds them and checked one by one.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use service_kit::testing::eventually;

use crate::docker::{Project, TARGETS, image, mb};

const MAX_IMAGE_BYTES: u64 = 100_000_000;
/// The workspace's packages: the only crates a source-only change may recompile.
const WORKSPACE: [&str; 6] = [
    "events",
    "service-kit",
    "user-service",
    "notification-service",
    "prediction-service",
    "platformctl",
];

/// `docker build --target <service>` for each service, as the Dockerfile's header says.
pub async fn build_targets(project: &Project) -> anyhow::Result<String> {
    let mut took = Vec::new();
    for target in TARGETS {
        let started = Instant::now();
        let tag = image(target);
        project
            .run(
                "docker",
                &["build", "--target", target, "-t", &tag, "."],
                &[("DOCKER_BUILDKIT", "1")],
            )
            .await?;
        took.push(format!("{target} {:.0} s", started.elapsed().as_secs_f64()));
    }
    Ok(took.join(", "))
}

pub async fn compose_build(project: &Project) -> anyhow::Result<String> {
    project.compose(&["build"]).await?;
    Ok(String::new())
}

pub async fn sizes(project: &Project) -> anyhow::Result<String> {
    let mut sizes = Vec::new();
    for target in TARGETS {
        let bytes: u64 = project
            .inspect(&image(target), "{{.Size}}")
            .await?
            .parse()
            .context("image size")?;
        ensure!(
            bytes <= MAX_IMAGE_BYTES,
            "{target} is {}, over {}",
            mb(bytes),
            mb(MAX_IMAGE_BYTES)
        );
        sizes.push(format!("{target} {}", mb(bytes)));
    }
    Ok(sizes.join(", "))
}

pub async fn user(project: &Project) -> anyhow::Result<String> {
    for target in TARGETS {
        let user = project.inspect(&image(target), "{{.Config.User}}").await?;
        ensure!(user == "10001:10001", "{target} runs as '{user}'");
    }
    Ok("10001:10001".into())
}

/// Lists every file of each image: nothing to run but the service's own binaries.
pub async fn minimal(project: &Project) -> anyhow::Result<String> {
    let mut counts = Vec::new();
    for target in TARGETS {
        let id = project
            .docker(&["create", &image(target)])
            .await?
            .trim()
            .to_owned();
        let listing = project
            .run(
                "bash",
                &["-o", "pipefail", "-c", "docker export \"$0\" | tar -t", &id],
                &[],
            )
            .await;
        project.docker(&["rm", &id]).await?;
        let listing = listing?;
        let unwanted: Vec<&str> = listing.lines().filter(|path| unwanted(path)).collect();
        ensure!(unwanted.is_empty(), "{target} contains {unwanted:?}");
        counts.push(format!("{target} {} files", listing.lines().count()));
    }
    Ok(counts.join(", "))
}

/// A shell, a package manager, or any program outside /usr/local/bin.
fn unwanted(path: &str) -> bool {
    let name = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    let program_dir = ["bin/", "sbin/", "usr/bin/", "usr/sbin/"]
        .iter()
        .any(|dir| path.starts_with(dir) && path.len() > dir.len());
    program_dir || ["sh", "bash", "dash", "busybox", "apt", "apt-get", "dpkg"].contains(&name)
}

pub async fn help(project: &Project) -> anyhow::Result<String> {
    for target in TARGETS {
        let out = project
            .docker(&["run", "--rm", &image(target), "--help"])
            .await?;
        ensure!(
            out.contains("Usage:"),
            "{target} --help printed no usage: {out}"
        );
    }
    let user_service = image("user-service");
    let out = project
        .docker(&[
            "run",
            "--rm",
            "--entrypoint",
            "/usr/local/bin/platformctl",
            &user_service,
            "--help",
        ])
        .await?;
    ensure!(
        out.contains("Usage:"),
        "platformctl --help printed no usage: {out}"
    );
    Ok("3 services and platformctl".into())
}

/// Appends a comment to one source file and rebuilds: the cache mounts keep every
/// dependency compiled, so only workspace crates may be compiled again, and at least the
/// changed one must be.
pub async fn rebuild(project: &Project) -> anyhow::Result<String> {
    let main = project.path("user-service/src/main.rs");
    let original = std::fs::read_to_string(&main)?;
    // A change never built before: an earlier run's layer would be reused whole.
    let change = uuid::Uuid::new_v4();
    std::fs::write(
        &main,
        format!("{original}\n// a source-only change {change}\n"),
    )?;
    let started = Instant::now();
    let tag = "platform/user-service:rebuild";
    let build = project
        .output(
            "docker",
            &[
                "build",
                "--progress=plain",
                "--target",
                "user-service",
                "-t",
                tag,
                ".",
            ],
            &[("DOCKER_BUILDKIT", "1")],
        )
        .await;
    let took = started.elapsed().as_secs_f64();
    std::fs::write(&main, original)?;
    let build = build?;
    ensure!(
        build.status.success(),
        "the rebuild failed: {}",
        crate::docker::tail(&build.stderr)
    );
    project.docker(&["rmi", tag]).await?;
    let compiled = compiled_crates(&build.stderr);
    ensure!(
        compiled.contains(&"user-service"),
        "user-service was not recompiled: {compiled:?}"
    );
    let others: Vec<&&str> = compiled.iter().filter(|c| !WORKSPACE.contains(c)).collect();
    ensure!(others.is_empty(), "dependencies recompiled too: {others:?}");
    Ok(format!("{took:.0} s, recompiled {}", compiled.join(", ")))
}

/// The crates in cargo's "Compiling <name> v<version>" lines of a build's log.
fn compiled_crates(log: &str) -> Vec<&str> {
    let mut crates: Vec<&str> = log
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace().skip_while(|w| *w != "Compiling");
            words.next().and(words.next())
        })
        .collect();
    crates.sort_unstable();
    crates.dedup();
    crates
}

/// Each image started on its own (beside the compose stack, on its network), hardened as
/// the chart runs it, with nothing but the image's own HEALTHCHECK.
pub async fn healthcheck(project: &Project) -> anyhow::Result<String> {
    let models = format!("{}:/models:ro", project.path("models").display());
    let runs: [(&str, Vec<&str>); 3] = [
        (
            "user-service",
            vec![
                "-e",
                "DATABASE_URL=mysql://user_service:user_service_pw@mysql:3306/users",
            ],
        ),
        (
            "notification-service",
            vec![
                "-e",
                "DATABASE_URL=mysql://notification_service:notification_service_pw@mysql:3306/notifications",
            ],
        ),
        (
            "prediction-service",
            vec!["-e", "KAFKA_TOPIC=prediction_requests", "-v", &models],
        ),
    ];
    let mut ids = Vec::new();
    for (target, extra) in &runs {
        let tag = image(target);
        let mut args = vec![
            "run",
            "-d",
            "--network",
            "platform_default",
            "--read-only",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges:true",
            "--tmpfs",
            "/tmp",
            "-e",
            "KAFKA_BOOTSTRAP_SERVERS=kafka:9092",
            "-e",
            "ADMIN_TOKEN=standalone-check",
        ];
        args.extend_from_slice(extra);
        args.push(&tag);
        ids.push((*target, project.docker(&args).await?.trim().to_owned()));
    }
    let result = wait_healthy(project, &ids).await;
    for (_, id) in &ids {
        project.docker(&["rm", "-f", id]).await?;
    }
    result
}

async fn wait_healthy(project: &Project, ids: &[(&str, String)]) -> anyhow::Result<String> {
    let started = Instant::now();
    let mut took = Vec::new();
    for (target, id) in ids {
        let test = project
            .inspect(id, "{{json .Config.Healthcheck.Test}}")
            .await?;
        ensure!(
            test.contains("--healthcheck"),
            "{target}: the image's HEALTHCHECK is {test}"
        );
        let healthy = eventually(Duration::from_secs(120), || async {
            project
                .inspect(id, "{{.State.Health.Status}}")
                .await
                .ok()
                .as_deref()
                == Some("healthy")
        })
        .await;
        if !healthy {
            let logs = project
                .run("docker", &["logs", "--tail", "20", id], &[])
                .await
                .unwrap_or_default();
            bail!("{target} did not turn healthy within 120 s: {logs}");
        }
        took.push(format!(
            "{target} after {:.0} s",
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(took.join(", "))
}
