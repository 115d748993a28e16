//! The release's objects, found by the chart's labels (`platform.labels` in
//! charts/platform/templates/_helpers.tpl): `app.kubernetes.io/instance=<release>` and
//! `app.kubernetes.io/part-of=platform`, narrowed by `app.kubernetes.io/component`.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use serde::Serialize;

use super::{Cluster, ClusterError};

const INSTANCE: &str = "app.kubernetes.io/instance";
const PART_OF: &str = "app.kubernetes.io/part-of=platform";
const COMPONENT: &str = "app.kubernetes.io/component";

/// One of the platform's own services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    User,
    Notification,
    Prediction,
}

impl Component {
    /// The platform's own services, each with `/health/ready`.
    pub const SERVICES: [Self; 3] = [Self::User, Self::Notification, Self::Prediction];

    /// The `app.kubernetes.io/component` label value (also the container name).
    pub fn label(self) -> &'static str {
        match self {
            Self::User => "user-service",
            Self::Notification => "notification-service",
            Self::Prediction => "prediction-service",
        }
    }

    /// The service's HTTP port when the pod spec names none.
    fn default_port(self) -> u16 {
        match self {
            Self::User => 8000,
            Self::Notification => 8001,
            Self::Prediction => 8002,
        }
    }

    /// The service a pod's component label names, if it is one of the platform's own.
    pub fn of_label(label: &str) -> Option<Self> {
        Self::SERVICES.into_iter().find(|c| c.label() == label)
    }
}

pub fn selector(release: &str, component: Option<Component>) -> String {
    match component {
        Some(component) => format!(
            "{INSTANCE}={release},{PART_OF},{COMPONENT}={}",
            component.label()
        ),
        None => format!("{INSTANCE}={release},{PART_OF}"),
    }
}

/// A Deployment or StatefulSet of the release.
#[derive(Debug, Clone, Serialize)]
pub struct Workload {
    pub kind: &'static str,
    pub name: String,
    pub component: String,
    pub desired: i32,
    pub ready: i32,
    pub updated: i32,
    pub available: i32,
}

/// A pod of the release as `kubectl get pods` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PodInfo {
    pub name: String,
    pub component: String,
    pub phase: String,
    pub ready: bool,
    pub restarts: i32,
    /// Seconds since the pod was created.
    pub age_seconds: Option<i64>,
    pub ip: Option<String>,
    /// The service's HTTP port (the container port named `http`).
    #[serde(skip)]
    pub port: u16,
    #[serde(skip)]
    spec_container: Option<Container>,
}

fn component_of(labels: Option<&std::collections::BTreeMap<String, String>>) -> String {
    labels
        .and_then(|l| l.get(COMPONENT))
        .cloned()
        .unwrap_or_default()
}

/// The release's Deployments and StatefulSets, sorted by name.
pub async fn list_workloads(cluster: &Cluster) -> Result<Vec<Workload>, ClusterError> {
    let params = ListParams::default().labels(&cluster.selector(None));
    let ns = &cluster.namespace;
    let deployments = Api::<Deployment>::namespaced(cluster.client.clone(), ns)
        .list(&params)
        .await
        .map_err(|e| {
            ClusterError::from_kube(e, &cluster.server, format!("list Deployments in {ns}"))
        })?;
    let statefulsets = Api::<StatefulSet>::namespaced(cluster.client.clone(), ns)
        .list(&params)
        .await
        .map_err(|e| {
            ClusterError::from_kube(e, &cluster.server, format!("list StatefulSets in {ns}"))
        })?;
    let mut workloads: Vec<Workload> = deployments
        .items
        .iter()
        .map(deployment_summary)
        .chain(statefulsets.items.iter().map(statefulset_summary))
        .collect();
    workloads.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(workloads)
}

fn deployment_summary(d: &Deployment) -> Workload {
    let status = d.status.clone().unwrap_or_default();
    Workload {
        kind: "Deployment",
        name: d.metadata.name.clone().unwrap_or_default(),
        component: component_of(d.metadata.labels.as_ref()),
        desired: d.spec.replicas.unwrap_or(1),
        ready: status.ready_replicas.unwrap_or(0),
        updated: status.updated_replicas.unwrap_or(0),
        available: status.available_replicas.unwrap_or(0),
    }
}

fn statefulset_summary(s: &StatefulSet) -> Workload {
    let status = s.status.clone().unwrap_or_default();
    Workload {
        kind: "StatefulSet",
        name: s.metadata.name.clone().unwrap_or_default(),
        component: component_of(s.metadata.labels.as_ref()),
        desired: s.spec.replicas.unwrap_or(1),
        ready: status.ready_replicas.unwrap_or(0),
        updated: status.updated_replicas.unwrap_or(0),
        available: status.available_replicas.unwrap_or(0),
    }
}

/// The release's pods (of one component, or all), sorted by name.
pub async fn list_pods(
    cluster: &Cluster,
    component: Option<Component>,
) -> Result<Vec<PodInfo>, ClusterError> {
    let ns = &cluster.namespace;
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), ns)
        .list(&ListParams::default().labels(&cluster.selector(component)))
        .await
        .map_err(|e| ClusterError::from_kube(e, &cluster.server, format!("list Pods in {ns}")))?;
    let now = Timestamp::now();
    let mut pods: Vec<PodInfo> = pods.items.iter().map(|p| pod_info(p, now)).collect();
    pods.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(pods)
}

/// A pod as `status` lists it, its age counted up to `now`.
pub(crate) fn pod_info(pod: &Pod, now: Timestamp) -> PodInfo {
    let component = component_of(pod.metadata.labels.as_ref());
    let status = pod.status.clone().unwrap_or_default();
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let restarts = status
        .container_statuses
        .iter()
        .flatten()
        .map(|c| c.restart_count)
        .sum();
    let container = pod.spec.as_ref().and_then(|spec| {
        spec.containers
            .iter()
            .find(|c| c.name == component)
            .or(spec.containers.first())
            .cloned()
    });
    let default_port = Component::of_label(&component)
        .unwrap_or(Component::Notification)
        .default_port();
    let port = container
        .as_ref()
        .and_then(|c| c.ports.as_ref())
        .and_then(|ports| ports.iter().find(|p| p.name.as_deref() == Some("http")))
        .and_then(|p| u16::try_from(p.container_port).ok())
        .unwrap_or(default_port);
    PodInfo {
        name: pod.metadata.name.clone().unwrap_or_default(),
        component,
        phase: status.phase.unwrap_or_else(|| "Unknown".into()),
        ready,
        restarts,
        age_seconds: pod
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| (now.as_second() - t.0.as_second()).max(0)),
        ip: status.pod_ip,
        port,
        spec_container: container,
    }
}

/// The admin token the pod runs with: its `ADMIN_TOKEN` env var, read from the Secret
/// that the pod spec names (the chart's Secret, or `secrets.existingSecret`).
pub async fn admin_token(cluster: &Cluster, pod: &PodInfo) -> Result<String, ClusterError> {
    let missing = |detail: String| ClusterError::AdminToken { detail };
    let env = pod
        .spec_container
        .as_ref()
        .and_then(|c| c.env.as_ref())
        .and_then(|env| env.iter().find(|e| e.name == "ADMIN_TOKEN"))
        .ok_or_else(|| missing(format!("pod {} has no ADMIN_TOKEN env var", pod.name)))?;
    if let Some(value) = env.value.as_ref().filter(|v| !v.is_empty()) {
        return Ok(value.clone());
    }
    let key_ref = env
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .ok_or_else(|| {
            missing(format!(
                "ADMIN_TOKEN of pod {} is not from a Secret",
                pod.name
            ))
        })?;
    let ns = &cluster.namespace;
    let secret = Api::<Secret>::namespaced(cluster.client.clone(), ns)
        .get(&key_ref.name)
        .await
        .map_err(|e| {
            ClusterError::from_kube(
                e,
                &cluster.server,
                format!("get Secret {ns}/{}", key_ref.name),
            )
        })?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|data| data.get(&key_ref.key))
        .ok_or_else(|| {
            missing(format!(
                "Secret {ns}/{} has no key {:?}",
                key_ref.name, key_ref.key
            ))
        })?;
    let token = String::from_utf8(bytes.0.clone()).map_err(|_| {
        missing(format!(
            "Secret {ns}/{} key {:?} is not UTF-8",
            key_ref.name, key_ref.key
        ))
    })?;
    if token.is_empty() {
        return Err(missing(format!(
            "Secret {ns}/{} key {:?} is empty",
            key_ref.name, key_ref.key
        )));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_follow_the_chart_labels() {
        assert_eq!(
            selector("prod", None),
            "app.kubernetes.io/instance=prod,app.kubernetes.io/part-of=platform"
        );
        assert_eq!(
            selector("prod", Some(Component::Notification)),
            "app.kubernetes.io/instance=prod,app.kubernetes.io/part-of=platform,\
             app.kubernetes.io/component=notification-service"
        );
    }

    fn pod_json() -> serde_json::Value {
        serde_json::json!({
            "metadata": {
                "name": "platform-notification-service-abc",
                "labels": {"app.kubernetes.io/component": "notification-service"},
                "creationTimestamp": "2026-01-01T00:00:00Z"
            },
            "spec": {"containers": [{
                "name": "notification-service",
                "ports": [{"name": "http", "containerPort": 8101}],
                "env": [{"name": "ADMIN_TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "admin-token"}}}]
            }]},
            "status": {
                "phase": "Running",
                "podIP": "10.200.1.2",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "notification-service", "restartCount": 3, "ready": true, "image": "i", "imageID": "", "started": true}]
            }
        })
    }

    #[test]
    fn pod_info_reads_phase_readiness_restarts_age_and_port() {
        let pod: Pod = serde_json::from_value(pod_json()).expect("pod");
        let now: Timestamp = "2026-01-01T00:02:05Z".parse().expect("time");
        let info = pod_info(&pod, now);
        assert_eq!(info.phase, "Running");
        assert!(info.ready);
        assert_eq!(info.restarts, 3);
        assert_eq!(info.age_seconds, Some(125));
        assert_eq!(info.port, 8101);
        assert_eq!(info.ip.as_deref(), Some("10.200.1.2"));
    }

    #[test]
    fn a_pod_without_status_is_unknown_and_not_ready() {
        let mut json = pod_json();
        json.as_object_mut().expect("object").remove("status");
        let pod: Pod = serde_json::from_value(json).expect("pod");
        let info = pod_info(&pod, Timestamp::now());
        assert_eq!(info.phase, "Unknown");
        assert!(!info.ready);
        assert_eq!(info.restarts, 0);
    }
}
