//! platformctl's cluster commands (`status`, `consumer pause|resume|status`) against the
//! local control plane of scripts/kube.sh (etcd, kube-apiserver, kube-controller-manager)
//! with the chart installed by `helm install`, the release's Deployments turned into Pods
//! by the controller-manager, and those Pods run by a stand-in for the kubelet (the one
//! simulated part, see kubelet.rs): the real service binaries on test hosts in network
//! namespaces, against the real MariaDB and Kafka of scripts/deps.sh.
//!
//! Needs root (network namespaces), KUBECONFIG from `scripts/kube.sh up`, helm (HELM or
//! PATH), PLATFORM_TEST_BACKEND=real with TEST_MYSQL_URL and TEST_KAFKA_BROKERS, and the
//! service binaries built; scripts/check-cluster.sh provides all of it.

mod kubelet;
mod netns;

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, Config};
use serde_json::{Value, json};
use service_kit::testing::{Backend, TestDatabase, TestKafka, eventually, free_port};

use kubelet::{Kubelet, RunningPod};

const RELEASE: &str = "platform";
const WAIT: Duration = Duration::from_secs(90);

fn required_env(name: &str, hint: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("{name} is not set: {hint}"))
}

fn kubeconfig() -> String {
    required_env(
        "KUBECONFIG",
        "start the local control plane with `eval \"$(scripts/kube.sh up)\"` (scripts/check-cluster.sh does)",
    )
}

fn helm() -> String {
    std::env::var("HELM").unwrap_or_else(|_| "helm".into())
}

fn port_of(address: &str) -> u16 {
    let authority = address.rsplit('@').next().unwrap_or(address);
    let authority = authority.split('/').next().unwrap_or(authority);
    authority
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {address}"))
}

/// Runs the built platformctl with `args` (and the test's kubeconfig).
async fn platformctl(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_platformctl"))
        .args(args)
        .output()
        .await
        .expect("run platformctl")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The namespace and release of one test run; uninstalled and deleted on drop.
struct Release {
    namespace: String,
    kubeconfig: String,
}

impl Release {
    async fn install(client: &Client, namespace: &str, values: &Value) -> Self {
        let ns: Namespace = serde_json::from_value(json!({
            "metadata": {"name": namespace, "labels": {
                "pod-security.kubernetes.io/enforce": "restricted"}}
        }))
        .expect("namespace");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
        let release = Self {
            namespace: namespace.to_owned(),
            kubeconfig: kubeconfig(),
        };
        let dir = tempfile::tempdir().expect("values dir");
        let file = dir.path().join("values.yaml");
        std::fs::write(&file, serde_json::to_vec_pretty(values).expect("values")).expect("write");
        let chart = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/platform");
        let output = tokio::process::Command::new(helm())
            .args(["install", RELEASE])
            .arg(&chart)
            .args(["-n", namespace, "--kubeconfig", &release.kubeconfig, "-f"])
            .arg(&file)
            .output()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run helm ({}): {e}; scripts/check-cluster.sh installs it",
                    helm()
                )
            });
        assert!(
            output.status.success(),
            "helm install failed: {}",
            text(&output.stderr)
        );
        release
    }

    fn args<'a>(&'a self, command: &[&'a str]) -> Vec<&'a str> {
        self.args_as(&self.kubeconfig, command)
    }

    /// The arguments of `command` with another kubeconfig (another user).
    fn args_as<'a>(&'a self, kubeconfig: &'a str, command: &[&'a str]) -> Vec<&'a str> {
        let mut args = command.to_vec();
        args.extend(["-n", &self.namespace, "--kubeconfig", kubeconfig]);
        args
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        let _ = std::process::Command::new(helm())
            .args([
                "uninstall",
                RELEASE,
                "-n",
                &self.namespace,
                "--kubeconfig",
                &self.kubeconfig,
            ])
            .output();
        let namespace = self.namespace.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                if let Ok(client) = Client::try_default().await {
                    let _ = Api::<Namespace>::all(client)
                        .delete(&namespace, &DeleteParams::default())
                        .await;
                }
            });
        })
        .join();
    }
}

async fn client() -> Client {
    let config = Config::infer()
        .await
        .unwrap_or_else(|e| panic!("cannot load KUBECONFIG={}: {e}", kubeconfig()));
    Client::try_from(config).expect("kube client")
}

/// Everything one run sets up: databases, topic, the release and its running pods.
struct Stack {
    release: Release,
    /// A kubeconfig of the chart's operator ServiceAccount (operatorAccess): only what its
    /// Role grants.
    operator: String,
    users: Vec<RunningPod>,
    notifications: Vec<RunningPod>,
    _dbs: (TestDatabase, TestDatabase),
    _kafka: TestKafka,
    _logs: tempfile::TempDir,
}

async fn stack() -> Stack {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .expect("id -u");
    assert_eq!(
        text(&root.stdout).trim(),
        "0",
        "the cluster tests need root (network namespaces)"
    );
    let backend = Backend::from_env();
    let Backend::Real {
        mysql_url,
        kafka_brokers,
    } = &backend
    else {
        panic!(
            "the cluster tests need PLATFORM_TEST_BACKEND=real with TEST_MYSQL_URL and TEST_KAFKA_BROKERS (eval \"$(scripts/deps.sh up)\")"
        );
    };
    let users_db = TestDatabase::create(&backend).await;
    let notifications_db = TestDatabase::create(&backend).await;
    let kafka = TestKafka::create(&backend, 4).await;
    let client = client().await;
    let id = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();
    let namespace = format!("pctl-{id}");
    let values = json!({
        "mysql": {"enabled": false},
        "kafka": {"enabled": false},
        "externalKafka": {"bootstrapServers": kafka_brokers},
        "migrations": {"enabled": false},
        "topics": {"enabled": false},
        "ingress": {"enabled": false},
        "operatorAccess": {"enabled": true},
        "serviceMonitor": {"enabled": false},
        "prometheusRule": {"enabled": false},
        "secrets": {
            "userServiceDatabaseUrl": users_db.url,
            "notificationServiceDatabaseUrl": notifications_db.url,
        },
        "config": {"kafkaTopic": kafka.args.topic, "rustLog": "info"},
        "userService": {"replicaCount": 1, "autoscaling": {"enabled": false}},
        "notificationService": {
            "replicaCount": 2,
            "autoscaling": {"enabled": false},
            "extraEnv": [{"name": "KAFKA_GROUP_ID", "value": kafka.group}],
        },
        // The commands under test read the two event services; the stand-in kubelet
        // does not project the model ConfigMap into a pod's files.
        "predictionService": {"enabled": false},
    });
    let release = Release::install(&client, &namespace, &values).await;
    let pods_api = Api::<Pod>::namespaced(client.clone(), &namespace);
    let selector = format!("app.kubernetes.io/instance={RELEASE}");
    let created = eventually(WAIT, || async {
        pods_api
            .list(&ListParams::default().labels(&selector))
            .await
            .is_ok_and(|pods| pods.items.len() == 3)
    })
    .await;
    assert!(
        created,
        "the release's 3 Pods were not created: is kube-controller-manager running (scripts/kube.sh up)?"
    );
    let logs = tempfile::tempdir().expect("log dir");
    let kubelet = Kubelet {
        client: client.clone(),
        namespace: namespace.clone(),
        id,
        subnet: rand::random::<u8>(),
        forwarded_ports: vec![port_of(mysql_url), port_of(kafka_brokers)],
        logs: logs.path().to_owned(),
    };
    let mut pods = pods_api
        .list(&ListParams::default().labels(&selector))
        .await
        .expect("pods")
        .items;
    // user-service first: notification-service needs nothing of it, but a stable order
    // keeps the test hosts' addresses stable.
    pods.sort_by_key(|p| p.metadata.name.clone());
    let (mut users, mut notifications) = (Vec::new(), Vec::new());
    for (index, pod) in pods.iter().enumerate() {
        let running = kubelet.run(pod, u8::try_from(index).expect("index")).await;
        match running.component.as_str() {
            "user-service" => users.push(running),
            _ => notifications.push(running),
        }
    }
    assert_eq!((users.len(), notifications.len()), (1, 2));
    // The controller-manager sees the Ready pods and updates the Deployments' status.
    let deployments = Api::<Deployment>::namespaced(client.clone(), &namespace);
    let rolled_out = eventually(WAIT, || async {
        deployments
            .list(&ListParams::default().labels(&selector))
            .await
            .is_ok_and(|list| {
                list.items.len() == 2
                    && list.items.iter().all(|d| {
                        let status = d.status.clone().unwrap_or_default();
                        status.ready_replicas == d.spec.replicas
                    })
            })
    })
    .await;
    assert!(
        rolled_out,
        "the Deployments did not report their pods ready"
    );
    let operator = operator_kubeconfig(&client, &namespace, logs.path()).await;
    Stack {
        release,
        operator,
        users,
        notifications,
        _dbs: (users_db, notifications_db),
        _kafka: kafka,
        _logs: logs,
    }
}

/// A kubeconfig that authenticates as `<release>-operator` with a short-lived token.
async fn operator_kubeconfig(client: &Client, namespace: &str, dir: &std::path::Path) -> String {
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}}))
            .expect("token request");
    let answer: TokenRequest = Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create_subresource(
            "token",
            &format!("{RELEASE}-operator"),
            &PostParams::default(),
            &request,
        )
        .await
        .expect("a token of the operator ServiceAccount (operatorAccess.enabled)");
    let token = answer.status.and_then(|s| s.token).expect("token");
    let server = Config::infer().await.expect("kubeconfig").cluster_url;
    let path = dir.join("operator.kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {server}\n    insecure-skip-tls-verify: true\n\
             users:\n- name: operator\n  user:\n    token: {token}\ncontexts:\n- name: operator\n  context:\n    cluster: local\n    user: operator\n    namespace: {namespace}\ncurrent-context: operator\n"
        ),
    )
    .expect("operator kubeconfig");
    path.to_str().expect("path").to_owned()
}

async fn json_of(release: &Release, command: &[&str]) -> Value {
    let mut args = release.args(command);
    args.push("--json");
    let output = platformctl(&args).await;
    assert!(
        output.status.success(),
        "platformctl {} failed: {}",
        args.join(" "),
        text(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON output")
}

/// Polls `platformctl status --json` until `done` holds; the last answer either way.
async fn status_until(release: &Release, done: impl Fn(&Value) -> bool) -> (bool, Value) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status = json_of(release, &["status"]).await;
        if done(&status) {
            return (true, status);
        }
        if tokio::time::Instant::now() >= deadline {
            return (false, status);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The consumer state a pod reports itself (straight to its address, not via platformctl).
async fn own_state(pod: &RunningPod) -> String {
    let status: Value = reqwest::get(pod.url("/consumer/status"))
        .await
        .expect("consumer status")
        .json()
        .await
        .expect("status json");
    status["state"].as_str().unwrap_or_default().to_owned()
}

fn total_lag(status: &Value) -> i64 {
    status["consumers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| {
            c["value"]["partitions"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|p| p["lag"].as_i64().unwrap_or(0))
        .sum()
}

fn assigned_partitions(status: &Value) -> usize {
    status["consumers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["value"]["partitions"].as_array().map_or(0, Vec::len))
        .sum()
}

async fn register(user_service: &RunningPod, count: usize) {
    let client = reqwest::Client::new();
    for i in 0..count {
        let response = client
            .post(user_service.url("/register/"))
            .json(&json!({"user_name": format!("Cluster {i}"), "email": format!("cluster.{i}@example.com")}))
            .send()
            .await
            .expect("register");
        assert!(
            response.status().is_success(),
            "register: {}",
            response.status()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_and_consumer_control_reach_every_pod_through_the_api_server() {
    let mut stack = stack().await;
    let release = &stack.release;

    // status: workloads, pods, consumers with every partition assigned, outbox backlog.
    let (settled, status) = status_until(release, |s| assigned_partitions(s) == 4).await;
    assert!(
        settled,
        "the consumers never held all 4 partitions: {status:#}"
    );
    let workloads = status["workloads"].as_array().expect("workloads");
    let summary: Vec<(String, i64, i64, i64)> = workloads
        .iter()
        .map(|w| {
            (
                w["component"].as_str().unwrap_or_default().to_owned(),
                w["desired"].as_i64().unwrap_or(-1),
                w["ready"].as_i64().unwrap_or(-1),
                w["updated"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("notification-service".to_owned(), 2, 2, 2),
            ("user-service".to_owned(), 1, 1, 1)
        ]
    );
    let pods = status["pods"].as_array().expect("pods");
    assert_eq!(pods.len(), 3);
    assert!(
        pods.iter()
            .all(|p| p["phase"] == "Running" && p["ready"] == true),
        "{pods:#?}"
    );
    // Each service pod's own /health/ready, read through the pod proxy.
    let readiness = status["readiness"].as_array().expect("readiness");
    assert_eq!(readiness.len(), 3, "{readiness:#?}");
    assert!(
        readiness.iter().all(|r| r["value"]["status"] == "ready"
            && r["value"]["checks"]["kafka"]["required"] == false
            && r["value"]["checks"]["database"]["required"] == true),
        "{readiness:#?}"
    );
    for consumer in status["consumers"].as_array().expect("consumers") {
        assert_eq!(consumer["value"]["state"], "running", "{consumer:#}");
    }
    let outbox = status["outbox"].as_array().expect("outbox");
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0]["pod"], stack.users[0].name.as_str());
    assert!(outbox[0]["value"].is_number(), "{outbox:#?}");

    // From here on as the chart's operator ServiceAccount: what its Role grants suffices.
    let operator = stack.operator.clone();
    // pause reaches both replicas, each says so itself.
    let output = platformctl(&release.args_as(&operator, &["consumer", "pause"])).await;
    println!(
        "$ platformctl consumer pause -n {}\n{}",
        release.namespace,
        text(&output.stdout)
    );
    assert!(output.status.success(), "pause: {}", text(&output.stderr));
    assert!(text(&output.stdout).starts_with("pause: 2 of 2 notification-service pods ok"));
    for pod in &stack.notifications {
        assert_eq!(own_state(pod).await, "paused", "{}", pod.name);
    }

    // While paused, registrations wait in Kafka: status shows the lag per partition.
    register(&stack.users[0], 6).await;
    let (lagging, status) = status_until(release, |s| total_lag(s) == 6).await;
    assert!(
        lagging,
        "status never showed the 6 waiting events as lag: {status:#}"
    );
    let output = platformctl(&release.args_as(&operator, &["status"])).await;
    println!(
        "$ platformctl status -n {}\n{}",
        release.namespace,
        text(&output.stdout)
    );
    assert!(output.status.success());
    let shown = text(&output.stdout);
    for pod in stack.users.iter().chain(&stack.notifications) {
        assert!(
            shown.contains(&pod.name),
            "{} missing from:\n{shown}",
            pod.name
        );
    }
    assert!(shown.contains("total lag: 6"), "{shown}");

    // resume reaches both, and the waiting events are consumed.
    let output = platformctl(&release.args_as(&operator, &["consumer", "resume"])).await;
    println!(
        "$ platformctl consumer resume -n {}\n{}",
        release.namespace,
        text(&output.stdout)
    );
    assert!(output.status.success(), "resume: {}", text(&output.stderr));
    for pod in &stack.notifications {
        assert_eq!(own_state(pod).await, "running", "{}", pod.name);
    }
    let (drained, status) = status_until(release, |s| {
        total_lag(s) == 0 && assigned_partitions(s) == 4
    })
    .await;
    assert!(drained, "lag did not return to 0 after resume: {status:#}");
    let listed = json_of(release, &["consumer", "status"]).await;
    assert_eq!(
        listed["pods"].as_array().map(Vec::len),
        Some(2),
        "{listed:#}"
    );

    // A replica that does not answer makes pause fail, naming it; the other is paused.
    let (healthy, dead) = (
        &stack.notifications[0].name.clone(),
        stack.notifications[1].name.clone(),
    );
    stack.notifications[1].kill();
    let output = platformctl(&release.args(&["consumer", "pause"])).await;
    println!(
        "$ platformctl consumer pause -n {}   # {dead} does not answer\n{}{}",
        release.namespace,
        text(&output.stdout),
        text(&output.stderr)
    );
    assert!(
        !output.status.success(),
        "pause with a dead replica must fail"
    );
    let stderr = text(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains(&dead) && stderr.contains("pause failed on 1 of 2 pods"),
        "{stderr}"
    );
    assert!(!stderr.contains(healthy.as_str()), "{stderr}");
    assert_eq!(own_state(&stack.notifications[0]).await, "paused");
    let output = platformctl(&release.args(&["consumer", "resume"])).await;
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains(&dead));
    assert_eq!(own_state(&stack.notifications[0]).await, "running");
}

#[tokio::test]
async fn a_missing_release_and_an_unreachable_cluster_are_one_line_errors() {
    let kubeconfig = kubeconfig();
    for command in [&["status"][..], &["consumer", "pause"][..]] {
        let mut args = command.to_vec();
        args.extend([
            "-n",
            "default",
            "--release",
            "nope",
            "--kubeconfig",
            &kubeconfig,
        ]);
        let output = platformctl(&args).await;
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("release \"nope\" not found in namespace \"default\""),
            "{stderr}"
        );
    }

    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("kubeconfig");
    let server = format!("https://127.0.0.1:{}", free_port());
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster:\n    server: {server}\n    insecure-skip-tls-verify: true\n\
             users:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: gone\n  context:\n    cluster: gone\n    user: u\ncurrent-context: gone\n"
        ),
    )
    .expect("kubeconfig");
    let path = path.to_str().expect("path");
    for command in [&["status"][..], &["consumer", "resume"][..]] {
        let mut args = command.to_vec();
        args.extend(["--kubeconfig", path]);
        let output = platformctl(&args).await;
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(&format!(
                "cannot reach the Kubernetes API server at {server}"
            )),
            "{stderr}"
        );
    }
}
