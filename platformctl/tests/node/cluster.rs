//! The cluster as a user reaches it: kubectl, helm and `kubectl port-forward`, with the
//! kubeconfig of scripts/kube.sh; and the node's containerd, to look inside a container
//! that has no shell.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The release of docs/deployment.md's minikube walkthrough.
pub const NAMESPACE: &str = "platform";
pub const RELEASE: &str = "platform";

pub struct Cluster {
    kubectl: String,
    helm: String,
    containerd: String,
    pub repo: PathBuf,
    pub http: reqwest::Client,
}

fn env(name: &str, hint: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set: {hint}"))
}

impl Cluster {
    pub fn from_env() -> anyhow::Result<Self> {
        let hint = "run through scripts/check-node.sh";
        env("KUBECONFIG", hint)?;
        Ok(Self {
            kubectl: env("KUBECTL", hint)?,
            helm: env("HELM", hint)?,
            containerd: env("NODE_CONTAINERD_SOCKET", hint)?,
            repo: PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .context("the workspace root")?
                .to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()?,
        })
    }

    /// Runs kubectl; its stdout, or an error with its stderr.
    pub async fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        run(&self.kubectl, args, &self.repo).await
    }

    pub async fn kubectl_json(&self, args: &[&str]) -> anyhow::Result<Value> {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let out = self.kubectl(&all).await?;
        serde_json::from_str(&out).context("kubectl printed no JSON")
    }

    pub async fn helm(&self, args: &[&str]) -> anyhow::Result<String> {
        run(&self.helm, args, &self.repo).await
    }

    /// The Pods of the release's namespace matching `selector`.
    pub async fn pods(&self, selector: &str) -> anyhow::Result<Vec<Value>> {
        let list = self
            .kubectl_json(&["get", "pods", "-n", NAMESPACE, "-l", selector])
            .await?;
        Ok(list["items"].as_array().cloned().unwrap_or_default())
    }

    /// `kubectl port-forward TARGET :PORT` in `namespace`, on a port the kernel picks.
    pub async fn port_forward(
        &self,
        namespace: &str,
        target: &str,
        port: u16,
    ) -> anyhow::Result<PortForward> {
        let mut child = Command::new(&self.kubectl)
            .args(["port-forward", "-n", namespace, target, &format!(":{port}")])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting kubectl port-forward")?;
        let stdout = child.stdout.take().context("port-forward's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("kubectl port-forward printed nothing within 30 s")??;
        // "Forwarding from 127.0.0.1:43567 -> 8000"
        let local = first
            .as_deref()
            .and_then(|l| l.strip_prefix("Forwarding from "))
            .and_then(|l| l.split(" -> ").next())
            .with_context(|| format!("unexpected port-forward output: {first:?}"))?
            .to_owned();
        // Keep draining its output so that it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(PortForward {
            _child: child,
            url: format!("http://{local}"),
        })
    }

    /// The host pid of a running container, from the node's containerd.
    pub async fn container_pid(&self, container_id: &str) -> anyhow::Result<u32> {
        let id = container_id
            .strip_prefix("containerd://")
            .with_context(|| format!("not a containerd container: {container_id}"))?;
        let tasks = run(
            "ctr",
            &["--address", &self.containerd, "-n", "k8s.io", "tasks", "ls"],
            &self.repo,
        )
        .await?;
        tasks
            .lines()
            .find_map(|l| {
                let mut f = l.split_whitespace();
                (f.next() == Some(id)).then(|| f.next()?.parse().ok())?
            })
            .with_context(|| format!("containerd runs no task {id}"))
    }
}

/// A running `kubectl port-forward`; stopped when dropped.
pub struct PortForward {
    _child: Child,
    pub url: String,
}

async fn run(program: &str, args: &[&str], dir: &PathBuf) -> anyhow::Result<String> {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("cannot run {program}"))?;
    if !output.status.success() {
        bail!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A container's process as the kernel sees it: uid, capabilities, read-only root.
pub struct ProcessView {
    pub uid: String,
    pub cap_eff: String,
    pub cap_bnd: String,
    pub root_read_only: bool,
}

pub fn process_view(pid: u32) -> anyhow::Result<ProcessView> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    let uid = field("Uid:")?;
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))?;
    // Fields: id parent major:minor root mount-point options ...
    let root = mountinfo
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/"))
        .with_context(|| format!("no / in /proc/{pid}/mountinfo"))?;
    let options = root.split_whitespace().nth(5).unwrap_or_default();
    Ok(ProcessView {
        uid,
        cap_eff: field("CapEff:")?,
        cap_bnd: field("CapBnd:")?,
        root_read_only: options.split(',').any(|o| o == "ro"),
    })
}

/// Pod names and whether each is Running and Ready.
pub fn running_and_ready(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running"
        && pod["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

pub fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or("?")
}

/// The workload pods (not Jobs' or tests') all Running and Ready; their names.
pub async fn workloads_ready(cluster: &Cluster) -> anyhow::Result<Vec<String>> {
    let pods = cluster
        .pods(&format!(
            "app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component notin (topics,migrations,test)"
        ))
        .await?;
    ensure!(!pods.is_empty(), "the release has no pods");
    let not_ready: Vec<_> = pods
        .iter()
        .filter(|p| !running_and_ready(p))
        .map(|p| format!("{} ({})", name(p), p["status"]["phase"]))
        .collect();
    ensure!(not_ready.is_empty(), "not Running and Ready: {not_ready:?}");
    Ok(pods.iter().map(|p| name(p).to_owned()).collect())
}
