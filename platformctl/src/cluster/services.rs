//! What the platform's pods report about themselves, read through the pod proxy:
//! each service's `GET /health/ready`, notification-service's `GET /consumer/status`,
//! user-service's `outbox_backlog` gauge.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Cluster, ClusterError, PodInfo, pod_get};

/// notification-service's `GET /consumer/status`, the fields platformctl shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsumerStatus {
    pub state: String,
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub topic: String,
    #[serde(default)]
    pub total_lag: i64,
    #[serde(default)]
    pub delivered: u64,
    #[serde(default)]
    pub partitions: Vec<PartitionStatus>,
    #[serde(default)]
    pub partitions_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartitionStatus {
    pub topic: String,
    pub partition: i32,
    pub committed_offset: Option<i64>,
    pub high_watermark: i64,
    pub lag: i64,
}

/// A service's `GET /health/ready`, the fields platformctl shows. The pod's Ready
/// condition says whether it gets traffic; this says why, and names a failing dependency
/// that only background work needs (`degraded`), which leaves the pod Ready.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Readiness {
    /// `ready`, `degraded`, `not_ready`, or `starting` (before the database answered).
    pub status: String,
    #[serde(default)]
    pub checks: BTreeMap<String, Check>,
    /// The last start-up error, while `starting`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    pub ok: bool,
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Readiness {
    const STATES: [&str; 4] = ["ready", "degraded", "not_ready", "starting"];

    /// `ready`, or the state with the failing dependencies: `degraded: kafka`,
    /// `not_ready: database`, `starting`.
    pub fn summary(&self) -> String {
        let failing: Vec<&str> = self
            .checks
            .iter()
            .filter(|(_, check)| !check.ok)
            .map(|(name, _)| name.as_str())
            .collect();
        if failing.is_empty() {
            self.status.clone()
        } else {
            format!("{}: {}", self.status, failing.join(","))
        }
    }
}

/// Reads one pod's readiness. A service answers 200 (`ready`, `degraded`) or 503
/// (`not_ready`, `starting`) with its JSON; anything else (the API server's own 503 when
/// it cannot reach the pod, say) is an error naming the pod and the reason.
pub async fn readiness(cluster: &Cluster, pod: &PodInfo) -> Result<Readiness, ClusterError> {
    let response = pod_get(cluster, pod, "/health/ready").await?;
    parse_readiness(response.status.as_u16(), &response.body)
        .ok_or_else(|| pod_error(pod, "GET /health/ready", response.reason()))
}

fn parse_readiness(status: u16, body: &[u8]) -> Option<Readiness> {
    let readiness: Readiness = serde_json::from_slice(body).ok()?;
    let known = Readiness::STATES.contains(&readiness.status.as_str());
    (known && matches!(status, 200 | 503)).then_some(readiness)
}

/// Reads one pod's consumer status; a pod that does not answer 200 with the expected
/// JSON is an error naming the pod and the reason.
pub async fn consumer_status(
    cluster: &Cluster,
    pod: &PodInfo,
) -> Result<ConsumerStatus, ClusterError> {
    let response = pod_get(cluster, pod, "/consumer/status").await?;
    if !response.status.is_success() {
        return Err(pod_error(pod, "GET /consumer/status", response.reason()));
    }
    serde_json::from_slice(&response.body).map_err(|error| {
        pod_error(
            pod,
            "GET /consumer/status",
            format!("unexpected answer: {error}"),
        )
    })
}

/// Reads the `outbox_backlog` gauge from one user-service pod's `/metrics`.
pub async fn outbox_backlog(cluster: &Cluster, pod: &PodInfo) -> Result<f64, ClusterError> {
    let response = pod_get(cluster, pod, "/metrics").await?;
    if !response.status.is_success() {
        return Err(pod_error(pod, "GET /metrics", response.reason()));
    }
    let text = String::from_utf8_lossy(&response.body);
    gauge(&text, "outbox_backlog")
        .ok_or_else(|| pod_error(pod, "GET /metrics", "no outbox_backlog gauge".into()))
}

fn pod_error(pod: &PodInfo, action: &str, detail: String) -> ClusterError {
    ClusterError::Request {
        action: format!("{action} on pod {}", pod.name),
        detail,
    }
}

/// The value of an unlabelled gauge in Prometheus' text format.
pub fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let mut fields = line.split_whitespace();
            (fields.next()? == name)
                .then(|| fields.next()?.parse().ok())
                .flatten()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gauge_is_read_from_the_text_format() {
        let text = "# HELP outbox_backlog Rows waiting.\n# TYPE outbox_backlog gauge\n\
                    outbox_backlog_other 9\noutbox_backlog 42\n";
        assert_eq!(gauge(text, "outbox_backlog"), Some(42.0));
        assert_eq!(gauge(text, "missing"), None);
    }

    #[test]
    fn readiness_names_the_failing_dependencies() {
        let degraded = br#"{"status":"degraded","checks":{
            "database":{"ok":true,"required":true,"latency_ms":1},
            "kafka":{"ok":false,"required":false,"latency_ms":2001,"error":"timed out"}}}"#;
        let readiness = parse_readiness(200, degraded).expect("degraded parses");
        assert_eq!(readiness.summary(), "degraded: kafka");
        assert!(!readiness.checks["kafka"].required);
        assert_eq!(
            readiness.checks["kafka"].error.as_deref(),
            Some("timed out")
        );

        let not_ready = br#"{"status":"not_ready","checks":{
            "database":{"ok":false,"required":true,"latency_ms":1000,"error":"pool timed out"},
            "kafka":{"ok":false,"required":false,"latency_ms":5}}}"#;
        let readiness = parse_readiness(503, not_ready).expect("not_ready parses");
        assert_eq!(readiness.summary(), "not_ready: database,kafka");

        let ready =
            br#"{"status":"ready","checks":{"model":{"ok":true,"required":true,"latency_ms":0}}}"#;
        assert_eq!(
            parse_readiness(200, ready).expect("ready").summary(),
            "ready"
        );

        let starting = br#"{"status":"starting","attempts":4,"error":"connection refused"}"#;
        let readiness = parse_readiness(503, starting).expect("starting parses");
        assert_eq!(readiness.summary(), "starting");
        assert_eq!(readiness.error.as_deref(), Some("connection refused"));
    }

    #[test]
    fn answers_that_are_not_the_service_s_readiness_are_refused() {
        // The API server's own answer when it cannot reach the pod.
        let status =
            br#"{"kind":"Status","status":"Failure","message":"error trying to reach service"}"#;
        assert!(parse_readiness(503, status).is_none());
        assert!(parse_readiness(404, br#"{"status":"ready","checks":{}}"#).is_none());
        assert!(parse_readiness(200, b"not json").is_none());
    }

    #[test]
    fn the_consumer_status_of_the_service_parses() {
        let json = serde_json::json!({
            "group": "notification-service", "topic": "user-events",
            "delivered": 5, "duplicates": 0, "failed": 0, "dead_lettered": 0,
            "last_error": null, "state": "paused",
            "partitions": [{"topic": "user-events", "partition": 0,
                            "committed_offset": null, "high_watermark": 4, "lag": 4}],
            "total_lag": 4, "partitions_error": null
        });
        let status: ConsumerStatus = serde_json::from_value(json).expect("status");
        assert_eq!(status.state, "paused");
        assert_eq!(status.partitions[0].lag, 4);
        assert_eq!(status.partitions[0].committed_offset, None);
    }
}
