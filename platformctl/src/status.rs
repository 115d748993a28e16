//! `platformctl status`: a release on a cluster at a glance: its workloads, its pods with
//! each service's own readiness (`degraded` names a failing dependency that leaves the pod
//! Ready), the notification-service consumers' state and lag per partition, and
//! user-service's outbox backlog, the last three read from each pod through the API
//! server's pod proxy.

use std::fmt::Write as _;

use clap::Args;
use futures::future::join_all;
use serde::Serialize;

use crate::cluster::{
    Cluster, ClusterArgs, ClusterError, Component, ConsumerStatus, PodInfo, Readiness, Workload,
    consumer_status, list_pods, list_workloads, outbox_backlog, readiness,
};

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    cluster: ClusterArgs,

    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

/// Everything `status` shows.
#[derive(Debug, Serialize)]
struct Report {
    release: String,
    namespace: String,
    workloads: Vec<Workload>,
    pods: Vec<PodInfo>,
    /// Each running service pod's `GET /health/ready`.
    readiness: Vec<PodResult<Readiness>>,
    consumers: Vec<PodResult<ConsumerStatus>>,
    outbox: Vec<PodResult<f64>>,
}

/// What one pod answered, or why it did not.
#[derive(Debug, Serialize)]
struct PodResult<T> {
    pod: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl<T> PodResult<T> {
    fn new(pod: &PodInfo, result: Result<T, ClusterError>) -> Self {
        match result {
            Ok(value) => Self {
                pod: pod.name.clone(),
                value: Some(value),
                error: None,
            },
            Err(error) => Self {
                pod: pod.name.clone(),
                value: None,
                error: Some(error.to_string()),
            },
        }
    }
}

pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let cluster = Cluster::connect(&args.cluster).await?;
    let report = collect(&cluster).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(())
}

async fn collect(cluster: &Cluster) -> Result<Report, ClusterError> {
    let workloads = list_workloads(cluster).await?;
    let pods = list_pods(cluster, None).await?;
    if workloads.is_empty() && pods.is_empty() {
        return Err(ClusterError::ReleaseNotFound {
            release: cluster.release.clone(),
            namespace: cluster.namespace.clone(),
        });
    }
    let of = |component: Component| {
        pods.iter()
            .filter(move |p| p.component == component.label() && p.phase == "Running")
    };
    let readiness = join_all(
        Component::SERVICES
            .into_iter()
            .flat_map(of)
            .map(|pod| async move { PodResult::new(pod, readiness(cluster, pod).await) }),
    )
    .await;
    let consumers = join_all(
        of(Component::Notification)
            .map(|pod| async move { PodResult::new(pod, consumer_status(cluster, pod).await) }),
    )
    .await;
    let outbox = join_all(
        of(Component::User)
            .map(|pod| async move { PodResult::new(pod, outbox_backlog(cluster, pod).await) }),
    )
    .await;
    Ok(Report {
        release: cluster.release.clone(),
        namespace: cluster.namespace.clone(),
        workloads,
        pods,
        readiness,
        consumers,
        outbox,
    })
}

/// `1d2h`, `3h4m`, `5m6s`, `7s`, as kubectl shows ages.
pub fn age(seconds: Option<i64>) -> String {
    let Some(s) = seconds else {
        return "-".into();
    };
    let (d, h, m) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m{}s", s % 60),
        (0, h, m) => format!("{h}h{m}m"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

/// The report as kubectl-like tables: workloads, pods, consumers, outbox.
fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Release {} in namespace {}\n",
        report.release, report.namespace
    );
    render_workloads(&mut out, report);
    render_pods(&mut out, report);
    render_consumers(&mut out, report);
    render_outbox(&mut out, report);
    out
}

fn render_workloads(out: &mut String, report: &Report) {
    let _ = writeln!(
        out,
        "{:<44} {:<12} {:>7} {:>5} {:>7}",
        "WORKLOAD", "KIND", "DESIRED", "READY", "UPDATED"
    );
    for w in &report.workloads {
        let _ = writeln!(
            out,
            "{:<44} {:<12} {:>7} {:>5} {:>7}",
            w.name, w.kind, w.desired, w.ready, w.updated
        );
    }
}

fn render_pods(out: &mut String, report: &Report) {
    let _ = writeln!(
        out,
        "\n{:<52} {:<9} {:<5} {:>8} {:>6}  HEALTH",
        "POD", "PHASE", "READY", "RESTARTS", "AGE"
    );
    for p in &report.pods {
        let health = report.readiness.iter().find(|r| r.pod == p.name);
        let _ = writeln!(
            out,
            "{:<52} {:<9} {:<5} {:>8} {:>6}  {}",
            p.name,
            p.phase,
            if p.ready { "1/1" } else { "0/1" },
            p.restarts,
            age(p.age_seconds),
            health.map_or("-".into(), health_cell)
        );
    }
    for line in report.readiness.iter().flat_map(health_notes) {
        let _ = writeln!(out, "{line}");
    }
}

/// The HEALTH cell: the service's readiness with its failing dependencies.
fn health_cell(result: &PodResult<Readiness>) -> String {
    match &result.value {
        Some(readiness) => readiness.summary(),
        None => "unknown".into(),
    }
}

/// Below the pods table, one line per failing dependency (whether it gates the pod's
/// readiness, and its error) and per pod whose readiness could not be read.
fn health_notes(result: &PodResult<Readiness>) -> Vec<String> {
    let Some(readiness) = &result.value else {
        let error = result.error.as_deref().unwrap_or("?");
        return vec![format!("  {}: readiness unknown: {error}", result.pod)];
    };
    let mut notes: Vec<String> = readiness
        .checks
        .iter()
        .filter(|(_, check)| !check.ok)
        .map(|(name, check)| {
            let role = if check.required {
                "required: the pod gets no traffic"
            } else {
                "reported: the pod still serves, its background work waits"
            };
            let error = check.error.as_deref().unwrap_or("no answer");
            format!("  {}: {name} failing ({role}): {error}", result.pod)
        })
        .collect();
    if let (true, Some(error)) = (readiness.checks.is_empty(), &readiness.error) {
        notes.push(format!("  {}: {}: {error}", result.pod, readiness.status));
    }
    notes
}

fn render_consumers(out: &mut String, report: &Report) {
    let _ = writeln!(out, "\nCONSUMERS (notification-service)");
    let rows: Vec<[String; 6]> = report.consumers.iter().flat_map(consumer_rows).collect();
    let width = rows
        .iter()
        .map(|r| r[2].len())
        .chain(std::iter::once("PARTITION".len()))
        .max()
        .unwrap_or(9);
    let _ = writeln!(
        out,
        "{:<52} {:<8} {:<width$} {:>9} {:>9} {:>6}",
        "POD", "STATE", "PARTITION", "COMMITTED", "END", "LAG"
    );
    for r in &rows {
        let _ = writeln!(
            out,
            "{:<52} {:<8} {:<width$} {:>9} {:>9} {:>6}",
            r[0], r[1], r[2], r[3], r[4], r[5]
        );
    }
    let total: i64 = report
        .consumers
        .iter()
        .filter_map(|c| c.value.as_ref())
        .map(|s| s.total_lag)
        .sum();
    let _ = writeln!(out, "total lag: {total}");
}

/// One row per assigned partition; a pod without partitions, or that did not answer, gets
/// one row that says why.
fn consumer_rows(c: &PodResult<ConsumerStatus>) -> Vec<[String; 6]> {
    let note_row = |state: String, note: String| {
        vec![[
            c.pod.clone(),
            state,
            note,
            String::new(),
            String::new(),
            String::new(),
        ]]
    };
    match (&c.value, &c.error) {
        (Some(status), _) if status.partitions.is_empty() => {
            let note = status
                .partitions_error
                .as_deref()
                .unwrap_or("no partitions assigned");
            note_row(status.state.clone(), format!("({note})"))
        }
        (Some(status), _) => status
            .partitions
            .iter()
            .map(|p| {
                [
                    c.pod.clone(),
                    status.state.clone(),
                    format!("{}/{}", p.topic, p.partition),
                    p.committed_offset.map_or("-".into(), |o| o.to_string()),
                    p.high_watermark.to_string(),
                    p.lag.to_string(),
                ]
            })
            .collect(),
        (None, error) => note_row("error".into(), error.clone().unwrap_or_default()),
    }
}

fn render_outbox(out: &mut String, report: &Report) {
    let _ = writeln!(out, "\nOUTBOX (user-service)");
    let _ = writeln!(out, "{:<52} {:>7}", "POD", "BACKLOG");
    for o in &report.outbox {
        match (&o.value, &o.error) {
            (Some(backlog), _) => {
                let _ = writeln!(out, "{:<52} {:>7}", o.pod, backlog);
            }
            (None, error) => {
                let _ = writeln!(
                    out,
                    "{:<52} error: {}",
                    o.pod,
                    error.as_deref().unwrap_or("?")
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, component: &str) -> PodInfo {
        serde_json::from_value::<k8s_openapi::api::core::v1::Pod>(serde_json::json!({
            "metadata": {"name": name, "labels": {"app.kubernetes.io/component": component}},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .map(|p| crate::cluster::pod_info(&p, k8s_openapi::jiff::Timestamp::now()))
        .expect("pod")
    }

    fn readiness_of(pod: &str, json: serde_json::Value) -> PodResult<Readiness> {
        PodResult {
            pod: pod.into(),
            value: Some(serde_json::from_value(json).expect("readiness")),
            error: None,
        }
    }

    #[test]
    fn the_pods_table_shows_a_degraded_service_and_its_failing_dependency() {
        let report = Report {
            release: "platform".into(),
            namespace: "platform".into(),
            workloads: vec![],
            pods: vec![
                pod("platform-mysql-0", "mysql"),
                pod("platform-notification-service-b", "notification-service"),
                pod("platform-user-service-a", "user-service"),
            ],
            readiness: vec![
                readiness_of(
                    "platform-user-service-a",
                    serde_json::json!({"status": "degraded", "checks": {
                        "database": {"ok": true, "required": true, "latency_ms": 1},
                        "kafka": {"ok": false, "required": false, "latency_ms": 2000,
                                  "error": "Meta data fetch error: OperationTimedOut"}}}),
                ),
                PodResult {
                    pod: "platform-notification-service-b".into(),
                    value: None,
                    error: Some("GET /health/ready on pod b: HTTP 503: connection refused".into()),
                },
            ],
            consumers: vec![],
            outbox: vec![],
        };
        let shown = render(&report);
        let line = |name: &str| {
            shown
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("{name} missing from\n{shown}"))
                .to_owned()
        };
        assert!(
            line("platform-user-service-a").ends_with("  degraded: kafka"),
            "{shown}"
        );
        assert!(
            line("platform-notification-service-b").ends_with("  unknown"),
            "{shown}"
        );
        assert!(line("platform-mysql-0").ends_with("  -"), "{shown}");
        assert!(
            shown.contains(
                "  platform-user-service-a: kafka failing (reported: the pod still serves, \
                 its background work waits): Meta data fetch error: OperationTimedOut"
            ),
            "{shown}"
        );
        assert!(
            shown.contains(
                "  platform-notification-service-b: readiness unknown: GET /health/ready"
            ),
            "{shown}"
        );
        let json = serde_json::to_value(&report.readiness).expect("json");
        assert_eq!(json[0]["value"]["status"], "degraded");
        assert_eq!(json[0]["value"]["checks"]["kafka"]["required"], false);
    }

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(age(None), "-");
        assert_eq!(age(Some(7)), "7s");
        assert_eq!(age(Some(125)), "2m5s");
        assert_eq!(age(Some(3 * 3600 + 4 * 60 + 5)), "3h4m");
        assert_eq!(age(Some(86_400 + 2 * 3600)), "1d2h");
    }
}
