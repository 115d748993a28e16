//! The one simulated part: a stand-in for the kubelet. For each Pod that the
//! controller-manager created from the release's Deployments it does what a kubelet does
//! for it: resolves the container's environment from the pod spec (values, ConfigMap and
//! Secret references, `envFrom`), runs the container's program (the real service binary)
//! on a test host of its own, and reports the Pod's status through the status subresource
//! (phase Running, podIP, containerStatuses), Ready once the readiness probe's endpoint
//! answers 200.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use service_kit::testing::{built_binary, eventually};

use super::netns::TestHost;

/// A pod's program running on its test host.
pub struct RunningPod {
    pub name: String,
    pub component: String,
    pub ip: Ipv4Addr,
    pub port: u16,
    pub log: PathBuf,
    child: Option<Child>,
    _host: TestHost,
}

impl RunningPod {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}:{}{path}", self.ip, self.port)
    }

    /// Kills the program (the Pod object still says Running and Ready, as it would until
    /// a kubelet noticed).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RunningPod {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Where the stand-in puts its test hosts.
pub struct Kubelet {
    pub client: Client,
    pub namespace: String,
    /// Short id for namespace and link names.
    pub id: String,
    /// Third octet of this run's 10.200.X.0/24.
    pub subnet: u8,
    /// Host loopback ports each test host reaches (MariaDB, Kafka).
    pub forwarded_ports: Vec<u16>,
    pub logs: PathBuf,
}

impl Kubelet {
    /// Runs `pod` as test host number `index` and reports it Ready.
    pub async fn run(&self, pod: &Pod, index: u8) -> RunningPod {
        let name = pod.metadata.name.clone().expect("pod name");
        let spec = pod.spec.as_ref().expect("pod spec");
        let container = spec.containers.first().expect("a container");
        let env = self.environment(container).await;
        let port = container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some("http"))
            .map(|p| u16::try_from(p.container_port).expect("port"))
            .expect("http port");
        let base = 4 * index;
        let host_ip = Ipv4Addr::new(10, 200, self.subnet, base + 1);
        let pod_ip = Ipv4Addr::new(10, 200, self.subnet, base + 2);
        let mut host = TestHost::create(
            &format!("pctl-{}-{index}", self.id),
            &format!("pc{}{index}", self.id),
            host_ip,
            pod_ip,
        );
        for port in &self.forwarded_ports {
            host.forward_loopback(*port);
        }
        let log = self.logs.join(format!("{name}.log"));
        let binary = program(container);
        let child = host.spawn(&binary, &env, &log);
        let running = RunningPod {
            name: name.clone(),
            component: container.name.clone(),
            ip: pod_ip,
            port,
            log,
            child: Some(child),
            _host: host,
        };
        self.report(&running, container, host_ip, false).await;
        let client = reqwest::Client::new();
        let ready = eventually(Duration::from_secs(90), || async {
            matches!(client.get(running.url("/health/ready")).send().await, Ok(r) if r.status() == 200)
        })
        .await;
        assert!(
            ready,
            "{name} did not become ready; its log: {}\n{}",
            running.log.display(),
            std::fs::read_to_string(&running.log).unwrap_or_default()
        );
        self.report(&running, container, host_ip, true).await;
        running
    }

    /// The container's environment as the kubelet builds it: `envFrom` first, then `env`.
    async fn environment(&self, container: &Container) -> Vec<(String, String)> {
        let mut env = BTreeMap::new();
        for source in container.env_from.iter().flatten() {
            if let Some(map) = &source.config_map_ref {
                let data = self.config_map(&map.name).await;
                env.extend(data);
            }
            if let Some(secret) = &source.secret_ref {
                env.extend(self.secret(&secret.name).await);
            }
        }
        for var in container.env.iter().flatten() {
            if let Some(value) = &var.value {
                env.insert(var.name.clone(), value.clone());
                continue;
            }
            let Some(from) = &var.value_from else {
                continue;
            };
            let value = if let Some(key) = &from.secret_key_ref {
                self.secret(&key.name).await.remove(&key.key)
            } else if let Some(key) = &from.config_map_key_ref {
                self.config_map(&key.name).await.remove(&key.key)
            } else {
                None
            };
            // An optional reference to a missing key leaves the variable out.
            if let Some(value) = value {
                env.insert(var.name.clone(), value);
            }
        }
        env.into_iter().collect()
    }

    async fn config_map(&self, name: &str) -> BTreeMap<String, String> {
        Api::<ConfigMap>::namespaced(self.client.clone(), &self.namespace)
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("ConfigMap {name}: {e}"))
            .data
            .unwrap_or_default()
    }

    async fn secret(&self, name: &str) -> BTreeMap<String, String> {
        Api::<Secret>::namespaced(self.client.clone(), &self.namespace)
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("Secret {name}: {e}"))
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v.0).expect("UTF-8 secret value")))
            .collect()
    }

    /// Writes the Pod's status as a kubelet does: Running with its IP, Ready or not.
    async fn report(
        &self,
        pod: &RunningPod,
        container: &Container,
        host_ip: Ipv4Addr,
        ready: bool,
    ) {
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let flag = if ready { "True" } else { "False" };
        let condition = |kind: &str, status: &str| json!({"type": kind, "status": status, "lastTransitionTime": now});
        let status = json!({
            "status": {
                "phase": "Running",
                "hostIP": host_ip.to_string(),
                "hostIPs": [{"ip": host_ip.to_string()}],
                "podIP": pod.ip.to_string(),
                "podIPs": [{"ip": pod.ip.to_string()}],
                "startTime": now,
                "conditions": [
                    condition("PodScheduled", "True"),
                    condition("Initialized", "True"),
                    condition("ContainersReady", flag),
                    condition("Ready", flag),
                ],
                "containerStatuses": [{
                    "name": container.name,
                    "image": container.image.clone().unwrap_or_default(),
                    "imageID": "",
                    "ready": ready,
                    "started": true,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": now}},
                }],
            }
        });
        Api::<Pod>::namespaced(self.client.clone(), &self.namespace)
            .patch_status(&pod.name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap_or_else(|e| panic!("status of Pod {}: {e}", pod.name));
    }
}

/// The program of a container: the service binary its name stands for (the image would
/// hold the same binary).
fn program(container: &Container) -> PathBuf {
    let path = built_binary(&container.name);
    assert!(
        Path::new(&path).is_file(),
        "{} is not a file",
        path.display()
    );
    path
}
