//! The project as a user has it after a clone, and the commands the walkthrough runs in it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::Command;

/// The Dockerfile's service targets, each also an image `platform/<target>:dev` of compose.
pub const TARGETS: [&str; 3] = ["user-service", "notification-service", "prediction-service"];
/// docker-compose.yml's default admin token.
pub const ADMIN_TOKEN: &str = "dev-admin-token";
/// The name docker-compose.yml gives its project.
pub const PROJECT: &str = "platform";
/// Grafana cannot be obtained here; this override only leaves it out.
const OVERRIDE: &str = "platformctl/tests/compose/without-grafana.yml";
/// No command of the walkthrough should take longer than an image build from scratch.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(40 * 60);

pub fn image(target: &str) -> String {
    format!("platform/{target}:dev")
}

pub struct Project {
    dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

impl Project {
    /// A copy of the working tree: what git tracks, and what it would track (new files),
    /// with their modification times, as a clone gives a user.
    pub fn checkout() -> anyhow::Result<Self> {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("the workspace root")?;
        let dir = tempfile::Builder::new()
            .prefix("platform-compose-")
            .tempdir()?;
        let status = std::process::Command::new("bash")
            .arg("-o")
            .arg("pipefail")
            .arg("-c")
            .arg(
                "git ls-files -z --cached --others --exclude-standard \
                 | tar --null --ignore-failed-read -T - -c | tar -x -C \"$0\"",
            )
            .arg(dir.path())
            .current_dir(repo)
            .status()
            .context("copying the working tree (git, tar)")?;
        if !status.success() {
            bail!("copying the working tree with git ls-files and tar failed");
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { dir, http })
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Runs a program in the project directory; an exit code other than 0 is an error
    /// that carries the end of its output.
    pub async fn run(
        &self,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<String> {
        let output = self.output(program, args, env).await?;
        if !output.status.success() {
            bail!(
                "`{program} {}` exited with {}: {}",
                args.join(" "),
                output.status,
                tail(&format!("{}{}", output.stdout, output.stderr))
            );
        }
        Ok(output.stdout)
    }

    /// Runs a program in the project directory and returns what it did, whatever its exit code.
    pub async fn output(
        &self,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Output> {
        let mut command = Command::new(program);
        command
            .args(args)
            .envs(env.iter().copied())
            .current_dir(self.dir())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let output = tokio::time::timeout(COMMAND_TIMEOUT, command.output())
            .await
            .with_context(|| {
                format!(
                    "`{program} {}` still running after {COMMAND_TIMEOUT:?}",
                    args.join(" ")
                )
            })?
            .with_context(|| format!("cannot run {program}"))?;
        Ok(Output {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    pub async fn docker(&self, args: &[&str]) -> anyhow::Result<String> {
        self.run("docker", args, &[]).await
    }

    /// `docker compose` on docker-compose.yml, with Grafana left out, and extra environment.
    pub async fn compose_with(
        &self,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> anyhow::Result<String> {
        let mut all = vec!["compose", "-f", "docker-compose.yml", "-f", OVERRIDE];
        all.extend_from_slice(args);
        self.run("docker", &all, env).await
    }

    pub async fn compose(&self, args: &[&str]) -> anyhow::Result<String> {
        self.compose_with(&[], args).await
    }

    /// `docker inspect --format` of one object, trimmed.
    pub async fn inspect(&self, object: &str, format: &str) -> anyhow::Result<String> {
        Ok(self
            .docker(&["inspect", "--format", format, object])
            .await?
            .trim()
            .to_owned())
    }

    /// The container id of a compose service.
    pub async fn container(&self, service: &str) -> anyhow::Result<String> {
        let id = self
            .compose(&["ps", "-q", service])
            .await?
            .trim()
            .to_owned();
        if id.is_empty() {
            bail!("compose has no container for {service}");
        }
        Ok(id)
    }
}

pub struct Output {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// The last lines of a command's output, for an error message.
pub fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Megabytes, for the report.
pub fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}
