//! `platformctl status`: a release on a cluster at a glance: its workloads, its pods, the
//! notification-service consumers' state and lag per partition, and user-service's outbox
//! backlog, the last two read from each pod through the API server's pod proxy.

use std::fmt::Write as _;

use clap::Args;
use futures::future::join_all;
use serde::Serialize;

use crate::cluster::{
    Cluster, ClusterArgs, ClusterError, Component, ConsumerStatus, PodInfo, Workload,
    consumer_status, list_pods, list_workloads, outbox_backlog,
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
    let consumers = join_all(
        of(Component::NotificationService)
            .map(|pod| async move { PodResult::new(pod, consumer_status(cluster, pod).await) }),
    )
    .await;
    let outbox = join_all(
        of(Component::UserService)
            .map(|pod| async move { PodResult::new(pod, outbox_backlog(cluster, pod).await) }),
    )
    .await;
    Ok(Report {
        release: cluster.release.clone(),
        namespace: cluster.namespace.clone(),
        workloads,
        pods,
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
        "\n{:<52} {:<9} {:<5} {:>8} {:>6}",
        "POD", "PHASE", "READY", "RESTARTS", "AGE"
    );
    for p in &report.pods {
        let _ = writeln!(
            out,
            "{:<52} {:<9} {:<5} {:>8} {:>6}",
            p.name,
            p.phase,
            if p.ready { "1/1" } else { "0/1" },
            p.restarts,
            age(p.age_seconds)
        );
    }
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

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(age(None), "-");
        assert_eq!(age(Some(7)), "7s");
        assert_eq!(age(Some(125)), "2m5s");
        assert_eq!(age(Some(3 * 3600 + 4 * 60 + 5)), "3h4m");
        assert_eq!(age(Some(86_400 + 2 * 3600)), "1d2h");
    }
}
