//! docs/deployment.md's minikube walkthrough on the node of scripts/node.sh, command by
//! command: the restricted namespace, `helm install --wait`, the hooks, `helm test`,
//! a port-forward with ./generate-test-data.sh, the ingress, and `platformctl`.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::{Value, json};
use service_kit::testing::eventually;

use crate::cluster::{
    Cluster, NAMESPACE, RELEASE, name, process_view, running_and_ready, workloads_ready,
};

/// The values of the walkthrough: the minikube file; Grafana's image cannot be had here.
pub const VALUES: [&str; 4] = [
    "-f",
    "charts/platform/values-minikube.yaml",
    "--set",
    "monitoring.grafana.enabled=false",
];

/// What the walkthrough's user expects to be running once `helm install --wait` returns.
const COMPONENTS: [&str; 6] = [
    "mysql",
    "kafka",
    "user-service",
    "notification-service",
    "prediction-service",
    "prometheus",
];

/// The node is Ready and its containerd holds the images the chart names.
pub async fn node_ready(cluster: &Cluster) -> anyhow::Result<String> {
    let node = cluster
        .kubectl_json(&["get", "node", "platform-node"])
        .await?;
    let ready = node["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    });
    ensure!(
        ready,
        "node platform-node is not Ready: {}",
        node["status"]["conditions"]
    );
    let images: Vec<&str> = node["status"]["images"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|i| i["names"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    for wanted in [
        "docker.io/platform/user-service:0.1.0",
        "docker.io/library/mysql:8.4.6",
        "docker.io/apache/kafka:4.1.1",
        "docker.io/curlimages/curl:8.15.0",
    ] {
        ensure!(images.contains(&wanted), "the node has no image {wanted}");
    }
    Ok(format!(
        "{}, {} images",
        node["status"]["nodeInfo"]["containerRuntimeVersion"],
        images.len() / 2
    ))
}

/// A fresh namespace enforcing the restricted Pod Security profile.
pub async fn namespace(cluster: &Cluster) -> anyhow::Result<String> {
    // A run interrupted earlier leaves its release behind: start clean.
    let _ = cluster
        .kubectl(&[
            "delete",
            "namespace",
            NAMESPACE,
            "--wait=true",
            "--timeout=120s",
        ])
        .await;
    cluster.kubectl(&["create", "namespace", NAMESPACE]).await?;
    cluster
        .kubectl(&[
            "label",
            "namespace",
            NAMESPACE,
            "pod-security.kubernetes.io/enforce=restricted",
        ])
        .await?;
    Ok("pod-security.kubernetes.io/enforce=restricted".into())
}

/// `helm install ... --wait`, then every pod of the release Running and Ready.
pub async fn install(cluster: &Cluster) -> anyhow::Result<String> {
    let started = Instant::now();
    let mut args = vec!["install", RELEASE, "charts/platform", "-n", NAMESPACE];
    args.extend(VALUES);
    args.extend(["--wait", "--timeout", "10m"]);
    cluster.helm(&args).await?;
    let took = started.elapsed().as_secs_f64();
    let pods = workloads_ready(cluster).await?;
    for component in COMPONENTS {
        ensure!(
            pods.iter()
                .any(|p| p.starts_with(&format!("{RELEASE}-{component}"))),
            "no {component} pod: {pods:?}"
        );
    }
    ensure!(
        !pods.iter().any(|p| p.contains("grafana")),
        "Grafana runs although it is turned off: {pods:?}"
    );
    let claims = cluster
        .kubectl_json(&["get", "pvc", "-n", NAMESPACE])
        .await?;
    let claims = claims["items"].as_array().cloned().unwrap_or_default();
    ensure!(
        claims.len() == 2,
        "expected the MySQL and Kafka claims: {claims:?}"
    );
    for claim in &claims {
        ensure!(
            claim["status"]["phase"] == "Bound" && claim["spec"]["storageClassName"] == "standard",
            "claim {} is not Bound by the default class: {}",
            name(claim),
            claim["status"]
        );
    }
    Ok(format!(
        "all {} pods Running and Ready {took:.0} s after helm install; claims Bound",
        pods.len()
    ))
}

/// The topic Job completed; the migration hooks succeeded (helm keeps their last run).
pub async fn jobs(cluster: &Cluster) -> anyhow::Result<String> {
    let jobs = cluster
        .kubectl_json(&[
            "get",
            "jobs",
            "-n",
            NAMESPACE,
            "-l",
            "app.kubernetes.io/component=topics",
        ])
        .await?;
    let jobs = jobs["items"].as_array().cloned().unwrap_or_default();
    ensure!(!jobs.is_empty(), "no topic Job");
    for job in &jobs {
        ensure!(
            job["status"]["succeeded"].as_u64() >= Some(1),
            "Job {} did not complete: {}",
            name(job),
            job["status"]
        );
    }
    let status: Value = serde_json::from_str(
        &cluster
            .helm(&["status", RELEASE, "-n", NAMESPACE, "-o", "json"])
            .await?,
    )?;
    let migrations: Vec<&Value> = status["hooks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|h| h["kind"] == "Job")
        .collect();
    ensure!(
        migrations.len() == 2,
        "expected two migration hooks: {}",
        status["hooks"]
    );
    for hook in &migrations {
        ensure!(
            hook["last_run"]["phase"] == "Succeeded",
            "hook {} did not succeed: {}",
            hook["name"],
            hook["last_run"]
        );
    }
    Ok(format!(
        "{} completed; {} and {} succeeded",
        name(&jobs[0]),
        migrations[0]["name"],
        migrations[1]["name"]
    ))
}

/// `helm test platform --logs`: a user registered and notified, a wine classified.
pub async fn helm_test(cluster: &Cluster) -> anyhow::Result<String> {
    let out = cluster
        .helm(&[
            "test",
            RELEASE,
            "-n",
            NAMESPACE,
            "--logs",
            "--timeout",
            "5m",
        ])
        .await?;
    for pass in [
        "PASS: notification for helm-test-",
        "PASS: the prediction-service classified the wine",
    ] {
        ensure!(out.contains(pass), "helm test printed no '{pass}':\n{out}");
    }
    let line = out
        .lines()
        .find(|l| l.starts_with("PASS: notification"))
        .unwrap_or_default();
    Ok(line.to_owned())
}

/// In each service pod, as the kernel sees its process: uid 10001, no capability, a
/// read-only root. The images have no shell to `kubectl exec` into, so the node's
/// containerd says which process is the container's.
pub async fn hardened(cluster: &Cluster) -> anyhow::Result<String> {
    let pods = cluster
        .pods(&format!(
            "app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component in (user-service,notification-service,prediction-service)"
        ))
        .await?;
    ensure!(
        pods.len() >= 3,
        "expected three service pods, found {}",
        pods.len()
    );
    for pod in &pods {
        let id = pod["status"]["containerStatuses"][0]["containerID"]
            .as_str()
            .with_context(|| format!("{} has no container id", name(pod)))?;
        let view = process_view(cluster.container_pid(id).await?)?;
        let zero = "0000000000000000";
        ensure!(
            view.uid.split_whitespace().all(|u| u == "10001"),
            "{} runs as uid {}",
            name(pod),
            view.uid
        );
        ensure!(
            view.cap_eff == zero && view.cap_bnd == zero,
            "{} has capabilities: effective {}, bounding {}",
            name(pod),
            view.cap_eff,
            view.cap_bnd
        );
        ensure!(
            view.root_read_only,
            "{}'s root filesystem is writable",
            name(pod)
        );
    }
    Ok(format!(
        "{} pods: uid 10001, CapEff and CapBnd 0, / mounted ro",
        pods.len()
    ))
}

/// `kubectl port-forward` to the user-service, then `./generate-test-data.sh 20` through it.
pub async fn generate_test_data(cluster: &Cluster) -> anyhow::Result<String> {
    let forward = cluster
        .port_forward(NAMESPACE, &format!("svc/{RELEASE}-user-service"), 8000)
        .await?;
    let output = tokio::process::Command::new("./generate-test-data.sh")
        .arg("20")
        .env("BASE_URL", &forward.url)
        .current_dir(&cluster.repo)
        .output()
        .await?;
    let out = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "generate-test-data.sh failed: {out}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = out.lines().last().unwrap_or_default().to_owned();
    ensure!(summary.contains("20"), "unexpected summary: {out}");
    Ok(summary)
}

/// Traefik in the cluster, from the traefik image, as the ingress controller.
pub async fn traefik(cluster: &Cluster) -> anyhow::Result<String> {
    let manifest = cluster.repo.join("platformctl/tests/node/traefik.yaml");
    cluster
        .kubectl(&["apply", "-f", manifest.to_str().context("path")?])
        .await?;
    cluster
        .kubectl(&[
            "rollout",
            "status",
            "-n",
            "traefik",
            "deployment/traefik",
            "--timeout=120s",
        ])
        .await?;
    Ok("deployment/traefik rolled out".into())
}

/// A registration through the chart's Ingress, routed by Traefik, answers 201.
pub async fn ingress(cluster: &Cluster, gateway: &str) -> anyhow::Result<String> {
    let email = format!("ingress-{}@example.com", uuid::Uuid::new_v4().simple());
    // Traefik loads the Ingress and its Middleware from the API server: poll until routed.
    let last = std::cell::RefCell::new(String::new());
    let routed = eventually(Duration::from_secs(60), || async {
        match cluster
            .http
            .post(format!("{gateway}/api/users/register/"))
            .json(&json!({"user_name": "Ingress User", "email": email}))
            .send()
            .await
        {
            Ok(r) if r.status() == 201 => true,
            Ok(r) => {
                *last.borrow_mut() = r.status().to_string();
                false
            }
            Err(e) => {
                *last.borrow_mut() = e.to_string();
                false
            }
        }
    })
    .await;
    ensure!(
        routed,
        "POST {gateway}/api/users/register/ never answered 201 (last: {})",
        last.borrow()
    );
    Ok(format!("POST /api/users/register/ -> 201 for {email}"))
}

/// `platformctl status` lists the real pods, each Running and Ready as kubectl says.
pub async fn status(cluster: &Cluster) -> anyhow::Result<String> {
    let report = on_release(&["status"]).await?;
    let pods = cluster
        .pods(&format!("app.kubernetes.io/instance={RELEASE}"))
        .await?;
    let listed: Vec<&Value> = report["pods"].as_array().into_iter().flatten().collect();
    for pod in pods.iter().filter(|p| running_and_ready(p)) {
        let entry = listed
            .iter()
            .find(|l| l["name"] == name(pod))
            .with_context(|| format!("platformctl status does not list {}", name(pod)))?;
        ensure!(
            entry["ready"] == true && entry["ip"] == pod["status"]["podIP"],
            "platformctl status shows {} as {entry}",
            name(pod)
        );
    }
    // The table an operator reads, in the harness's output.
    let table = tokio::process::Command::new(env!("CARGO_BIN_EXE_platformctl"))
        .args(["status", "-n", NAMESPACE, "--release", RELEASE])
        .output()
        .await?;
    println!(
        "$ platformctl status -n {NAMESPACE}\n{}",
        String::from_utf8_lossy(&table.stdout)
    );
    ensure!(table.status.success(), "platformctl status failed");
    Ok(format!("{} pods listed with their IPs", listed.len()))
}

/// Two notification-service replicas; `platformctl consumer pause` then `resume` reach
/// both through the API server's pod proxy.
pub async fn consumer_control(cluster: &Cluster) -> anyhow::Result<String> {
    let mut args = vec!["upgrade", RELEASE, "charts/platform", "-n", NAMESPACE];
    args.extend(VALUES);
    args.extend([
        "--set",
        "notificationService.replicaCount=2",
        "--wait",
        "--timeout",
        "5m",
    ]);
    cluster.helm(&args).await?;
    for (action, state) in [("pause", "paused"), ("resume", "running")] {
        on_release(&["consumer", action]).await?;
        let status = on_release(&["consumer", "status"]).await?;
        let replicas = status["pods"].as_array().cloned().unwrap_or_default();
        ensure!(replicas.len() == 2, "expected two replicas: {status}");
        ensure!(
            replicas
                .iter()
                .all(|r| r["ok"] == true && r["state"] == state),
            "after {action}, not every replica is {state}: {status}"
        );
    }
    Ok("both replicas paused, then resumed".into())
}

/// `platformctl COMMAND -n platform --release platform --json`; its JSON output.
async fn on_release(command: &[&str]) -> anyhow::Result<Value> {
    let mut args = command.to_vec();
    args.extend(["-n", NAMESPACE, "--release", RELEASE, "--json"]);
    platformctl(&args).await
}

/// Runs platformctl with the cluster's kubeconfig; its JSON output.
async fn platformctl(args: &[&str]) -> anyhow::Result<Value> {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_platformctl"))
        .args(args)
        .output()
        .await?;
    ensure!(
        output.status.success(),
        "platformctl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout)
        .with_context(|| format!("platformctl {} printed no JSON", args.join(" ")))
}
