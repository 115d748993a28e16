//! The minikube walkthrough of docs/deployment.md on a real node: the chart installed
//! with the minikube values on the control plane of scripts/kube.sh, its Pods run by
//! the kubelet and containerd of scripts/node.sh from the images built here, checked
//! command by command, then operated under load with every registration counted by id.
//!
//! Run by scripts/check-node.sh, which starts the node and loads the images. A plain
//! harness, not libtest: the steps build on each other and run in order; a failed step
//! that later steps need stops the run, and the last line is `N passed, N failed`.

mod cluster;
mod operations;
mod walk;
#[path = "../support/walkthrough.rs"]
mod walkthrough;

use std::process::ExitCode;

use cluster::Cluster;
use walkthrough::Tally;

#[tokio::main]
async fn main() -> ExitCode {
    let mut tally = Tally::new("node");
    let cluster = match Cluster::from_env() {
        Ok(cluster) => cluster,
        Err(error) => {
            println!("node: setting up ... FAILED: {error:#}");
            println!("0 passed, 1 failed");
            return ExitCode::FAILURE;
        }
    };
    run(&mut tally, &cluster).await;
    // Whatever happened above, the release goes, and its volumes with it.
    tally
        .step(
            "helm uninstall: release, namespace and volumes gone",
            operations::uninstall(&cluster),
        )
        .await;
    tally.finish()
}

/// The steps in order; returns at the first failure that later steps depend on.
async fn run(tally: &mut Tally, cluster: &Cluster) {
    if !tally
        .step(
            "the node is Ready with the images",
            walk::node_ready(cluster),
        )
        .await
    {
        return;
    }
    if !tally
        .step(
            "Traefik in the cluster as the ingress controller",
            walk::traefik(cluster),
        )
        .await
    {
        return;
    }
    if !tally
        .step(
            "a namespace enforcing the restricted profile",
            walk::namespace(cluster),
        )
        .await
    {
        return;
    }
    if !tally
        .step(
            "helm install -f values-minikube.yaml --wait: every pod Ready",
            walk::install(cluster),
        )
        .await
    {
        return;
    }
    tally
        .step(
            "the topic Job and the migration hooks completed",
            walk::jobs(cluster),
        )
        .await;
    tally
        .step("helm test platform --logs", walk::helm_test(cluster))
        .await;
    tally
        .step(
            "service pods: uid 10001, read-only root, no capabilities",
            walk::hardened(cluster),
        )
        .await;
    tally
        .step(
            "kubectl port-forward, then ./generate-test-data.sh 20",
            walk::generate_test_data(cluster),
        )
        .await;
    let gateway = match cluster.port_forward("traefik", "svc/traefik", 80).await {
        Ok(forward) => forward,
        Err(error) => {
            tally
                .step("kubectl port-forward to Traefik", async { Err(error) })
                .await;
            return;
        }
    };
    if !tally
        .step(
            "a registration through the chart's Ingress answers 201",
            walk::ingress(cluster, &gateway.url),
        )
        .await
    {
        return;
    }
    tally
        .step(
            "platformctl status shows the real pods",
            walk::status(cluster),
        )
        .await;
    tally
        .step(
            "platformctl consumer pause|resume reaches both replicas",
            walk::consumer_control(cluster),
        )
        .await;
    tally
        .step(
            "helm upgrade rolls every service under load: 0 failed, 0 lost, 0 twice",
            operations::upgrade(cluster, &gateway.url),
        )
        .await;
    tally
        .step(
            "a notification-service pod deleted under load: 0 lost",
            operations::notification_pod_deleted(cluster, &gateway.url),
        )
        .await;
    tally
        .step(
            "the Kafka pod deleted under load: back on its claim, 0 failed, 0 lost",
            operations::kafka_pod_deleted(cluster, &gateway.url),
        )
        .await;
    tally
        .step(
            "kubectl drain: a PodDisruptionBudget refuses an eviction",
            operations::drain(cluster),
        )
        .await;
}
