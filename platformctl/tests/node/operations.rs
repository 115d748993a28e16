//! What a user does to a running release, each while `platformctl load --verify`
//! registers through the ingress with every registration counted by id: a config change
//! that rolls every Deployment, a notification-service replica deleted, the Kafka pod
//! deleted; then `kubectl drain` against the PodDisruptionBudgets.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use service_kit::testing::eventually;
use tokio::process::Child;

use crate::cluster::{Cluster, NAMESPACE, RELEASE, name, workloads_ready};
use crate::walk::VALUES;
use crate::walkthrough::{self, LoadTarget, exactly_once, finish_load, no_errors};

/// The chart's admin token in values-minikube.yaml.
const ADMIN_TOKEN: &str = "dev-admin-token";

/// Under the chart's per-client registration limit (120 a minute: every request comes
/// from the port-forward into Traefik, one client), for `seconds`: long enough to span
/// the operation (`finish_load` fails if it did not).
fn start_load(run: &str, gateway: &str, seconds: &str) -> anyhow::Result<Child> {
    walkthrough::start_load(
        run,
        &LoadTarget {
            users_url: &format!("{gateway}/api/users"),
            notifications_url: &format!("{gateway}/api/notifications"),
            admin_token: ADMIN_TOKEN,
            rate: "1.8",
            seconds,
        },
    )
}

/// The load is under way (the single user-service replica, through the ingress).
async fn progressed(cluster: &Cluster, gateway: &str) -> anyhow::Result<()> {
    walkthrough::progressed(&cluster.http, &format!("{gateway}/api/users/metrics")).await
}

/// The pod-template-hash of the three services' pods.
async fn templates(cluster: &Cluster) -> anyhow::Result<BTreeSet<String>> {
    let pods = cluster
        .pods(
            "app.kubernetes.io/component in (user-service,notification-service,prediction-service)",
        )
        .await?;
    // Pods on their way out (terminating after a rollout) do not count.
    Ok(pods
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|p| p["metadata"]["labels"]["pod-template-hash"].as_str())
        .map(str::to_owned)
        .collect())
}

/// `helm upgrade` with a changed config value rolls every service Deployment under load:
/// no registration fails, none is lost or delivered twice.
pub async fn upgrade(cluster: &Cluster, gateway: &str) -> anyhow::Result<String> {
    let before = templates(cluster).await?;
    let load = start_load("helm-upgrade", gateway, "50")?;
    progressed(cluster, gateway).await?;
    let mut args = vec!["upgrade", RELEASE, "charts/platform", "-n", NAMESPACE];
    args.extend(VALUES);
    args.extend([
        "--set",
        "notificationService.replicaCount=2",
        "--set",
        "config.rustLog=info\\,sqlx=warn",
        "--wait",
        "--timeout",
        "5m",
    ]);
    let rollout = Instant::now();
    cluster.helm(&args).await?;
    let rollout = rollout.elapsed().as_secs_f64();
    let after = templates(cluster).await?;
    let report = finish_load(load).await?;
    no_errors(&report, "every Deployment rolled")?;
    let detail = exactly_once(&report)?;
    ensure!(
        before.is_disjoint(&after),
        "not every Deployment rolled: templates before {before:?}, after {after:?}"
    );
    Ok(format!(
        "{} Deployments rolled in {rollout:.0} s; 0 failed; {detail}",
        after.len()
    ))
}

/// `kubectl delete pod` of one notification-service replica under load: 0 lost.
pub async fn notification_pod_deleted(cluster: &Cluster, gateway: &str) -> anyhow::Result<String> {
    let pods = cluster
        .pods("app.kubernetes.io/component=notification-service")
        .await?;
    let victim = name(pods.first().context("no notification-service pod")?).to_owned();
    let load = start_load("notification-delete", gateway, "40")?;
    progressed(cluster, gateway).await?;
    cluster
        .kubectl(&["delete", "pod", "-n", NAMESPACE, &victim, "--wait=true"])
        .await?;
    let report = finish_load(load).await?;
    let detail = exactly_once(&report)?;
    Ok(format!("deleted {victim}; {detail}"))
}

/// `kubectl delete pod` of the Kafka pod under load: the StatefulSet brings it back on
/// its claim, and registrations through the ingress never fail (the outbox holds the
/// events; the user-service stays ready without the broker).
pub async fn kafka_pod_deleted(cluster: &Cluster, gateway: &str) -> anyhow::Result<String> {
    let pod = format!("{RELEASE}-kafka-0");
    let before = cluster
        .kubectl_json(&["get", "pod", "-n", NAMESPACE, &pod])
        .await?;
    let load = start_load("kafka-delete", gateway, "50")?;
    progressed(cluster, gateway).await?;
    let away = Instant::now();
    cluster
        .kubectl(&["delete", "pod", "-n", NAMESPACE, &pod, "--wait=true"])
        .await?;
    cluster
        .kubectl(&[
            "wait",
            "-n",
            NAMESPACE,
            "--for=condition=Ready",
            &format!("pod/{pod}"),
            "--timeout=180s",
        ])
        .await?;
    let away = away.elapsed().as_secs_f64();
    let after = cluster
        .kubectl_json(&["get", "pod", "-n", NAMESPACE, &pod])
        .await?;
    let report = finish_load(load).await?;
    ensure!(
        before["metadata"]["uid"] != after["metadata"]["uid"],
        "{pod} was not replaced"
    );
    let claim = |p: &serde_json::Value| {
        p["spec"]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|v| v["persistentVolumeClaim"]["claimName"].as_str())
            .map(str::to_owned)
    };
    ensure!(
        claim(&before).is_some() && claim(&before) == claim(&after),
        "{pod} came back without its claim: {:?} then {:?}",
        claim(&before),
        claim(&after)
    );
    no_errors(&report, "the Kafka pod was away")?;
    let detail = exactly_once(&report)?;
    Ok(format!(
        "{pod} back on {} after {away:.0} s; 0 failed; {detail}",
        claim(&after).unwrap_or_default()
    ))
}

/// `kubectl drain` of the only node: each service's budget allows one pod unavailable
/// (`maxUnavailable: 1`), so of the two notification-service replicas one is evicted
/// and the eviction of the other is refused while the first cannot come back (the node
/// is cordoned); it keeps running. Then `kubectl uncordon` and every workload Ready again.
pub async fn drain(cluster: &Cluster) -> anyhow::Result<String> {
    let replicas = "app.kubernetes.io/component=notification-service";
    let live = |pods: Vec<serde_json::Value>| -> Vec<String> {
        pods.iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .map(|p| name(p).to_owned())
            .collect()
    };
    let before = live(cluster.pods(replicas).await?);
    ensure!(
        before.len() == 2,
        "expected two notification-service replicas: {before:?}"
    );
    let refused = cluster
        .kubectl(&[
            "drain",
            "platform-node",
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=30s",
        ])
        .await;
    let kept = live(cluster.pods(replicas).await?);
    let uncordon = cluster.kubectl(&["uncordon", "platform-node"]).await;
    let error = match refused {
        Ok(out) => anyhow::bail!("kubectl drain succeeded although a budget forbids it: {out}"),
        Err(e) => format!("{e:#}"),
    };
    uncordon?;
    ensure!(
        error.contains("would violate the pod's disruption budget"),
        "kubectl drain failed for another reason: {error}"
    );
    let survivors: Vec<&String> = before.iter().filter(|p| kept.contains(p)).collect();
    ensure!(
        survivors.len() == 1,
        "the budget should keep exactly one of {before:?} running; still there: {kept:?}"
    );
    // The evicted pods (the other replica, the single-replica services, and MySQL, Kafka
    // and Prometheus, which have no budget) come back once the node is schedulable.
    let back = eventually(Duration::from_secs(240), || async {
        workloads_ready(cluster).await.is_ok()
    })
    .await;
    ensure!(
        back,
        "the release did not become Ready after uncordon: {:?}",
        workloads_ready(cluster).await.err()
    );
    Ok(format!(
        "eviction of {} refused by its budget, the rest evicted; Ready again after uncordon",
        survivors[0]
    ))
}

/// `helm uninstall`, the namespace deleted: the claims' volumes are deleted by the
/// provisioner (reclaim policy Delete), no PersistentVolume of the release is left.
pub async fn uninstall(cluster: &Cluster) -> anyhow::Result<String> {
    cluster
        .helm(&[
            "uninstall",
            RELEASE,
            "-n",
            NAMESPACE,
            "--wait",
            "--timeout",
            "3m",
        ])
        .await?;
    cluster
        .kubectl(&[
            "delete",
            "namespace",
            NAMESPACE,
            "--wait=true",
            "--timeout=180s",
        ])
        .await?;
    let left = std::cell::RefCell::new(Vec::new());
    let gone = eventually(Duration::from_secs(60), || async {
        let Ok(volumes) = cluster.kubectl_json(&["get", "pv"]).await else {
            return false;
        };
        *left.borrow_mut() = volumes["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["spec"]["claimRef"]["namespace"] == NAMESPACE)
            .map(|v| name(v).to_owned())
            .collect::<Vec<_>>();
        left.borrow().is_empty()
    })
    .await;
    ensure!(
        gone,
        "volumes of the release left behind: {:?}",
        left.borrow()
    );
    Ok("release, namespace and its volumes gone".into())
}
