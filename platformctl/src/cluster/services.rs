//! What the platform's pods report about themselves, read through the pod proxy:
//! notification-service's `GET /consumer/status`, user-service's `outbox_backlog` gauge.

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
