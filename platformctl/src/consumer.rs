//! `platformctl consumer pause|resume|status` against a cluster. Through a Service a
//! pause would reach one replica only, so this finds every notification-service pod of
//! the release by its labels, reads the admin token from the Secret the pods take it
//! from, and calls each pod through the API server's pod proxy. Any pod that did not end
//! in the asked state is an error naming it (non-zero exit), after the per-pod report.

use std::fmt::Write as _;

use clap::{Args, ValueEnum};
use futures::future::join_all;
use serde::Serialize;

use crate::cluster::{
    Cluster, ClusterArgs, ClusterError, Component, PodInfo, admin_token, consumer_status,
    list_pods, list_workloads, pod_post,
};

#[derive(Debug, Args)]
pub struct ConsumerArgs {
    /// `pause` or `resume` every notification-service replica, or show each one's `status`.
    #[arg(value_enum)]
    action: Action,

    #[command(flatten)]
    cluster: ClusterArgs,

    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Action {
    Pause,
    Resume,
    Status,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Status => "status",
        }
    }

    /// Whether a pod's reported state is what this action asked for.
    fn reached(self, state: &str) -> bool {
        match self {
            Self::Pause => state == "paused",
            Self::Resume => state == "running",
            Self::Status => true,
        }
    }
}

/// One pod's outcome.
#[derive(Debug, Serialize)]
struct PodOutcome {
    pod: String,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_lag: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct Report {
    action: &'static str,
    release: String,
    namespace: String,
    pods: Vec<PodOutcome>,
}

pub async fn run(args: ConsumerArgs) -> anyhow::Result<()> {
    let cluster = Cluster::connect(&args.cluster).await?;
    let report = execute(&cluster, args.action).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    let failures: Vec<(String, String)> = report
        .pods
        .iter()
        .filter(|p| !p.ok)
        .map(|p| (p.pod.clone(), p.error.clone().unwrap_or_default()))
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(ClusterError::Pods {
            action: args.action.name(),
            total: report.pods.len(),
            failures,
        }
        .into())
    }
}

async fn execute(cluster: &Cluster, action: Action) -> Result<Report, ClusterError> {
    let pods = list_pods(cluster, Some(Component::Notification)).await?;
    let Some(first) = pods.first() else {
        return Err(missing(cluster).await);
    };
    let token = match action {
        Action::Status => None,
        Action::Pause | Action::Resume => Some(admin_token(cluster, first).await?),
    };
    let outcomes = join_all(
        pods.iter()
            .map(|pod| on_pod(cluster, pod, action, token.as_deref())),
    )
    .await;
    Ok(Report {
        action: action.name(),
        release: cluster.release.clone(),
        namespace: cluster.namespace.clone(),
        pods: outcomes,
    })
}

/// No notification-service pod: either no such release, or a release without them.
async fn missing(cluster: &Cluster) -> ClusterError {
    let release_exists = match list_workloads(cluster).await {
        Ok(workloads) => !workloads.is_empty(),
        Err(error) => return error,
    };
    if release_exists {
        ClusterError::NoPods {
            release: cluster.release.clone(),
            namespace: cluster.namespace.clone(),
            component: Component::Notification.label(),
        }
    } else {
        ClusterError::ReleaseNotFound {
            release: cluster.release.clone(),
            namespace: cluster.namespace.clone(),
        }
    }
}

/// Asks one pod, then reads its status back to check it reached the asked state.
async fn on_pod(
    cluster: &Cluster,
    pod: &PodInfo,
    action: Action,
    token: Option<&str>,
) -> PodOutcome {
    let failed = |error: String| PodOutcome {
        pod: pod.name.clone(),
        ok: false,
        state: None,
        total_lag: None,
        error: Some(error),
    };
    if let Some(token) = token {
        let path = format!("/consumer/{}", action.name());
        match pod_post(cluster, pod, &path, token).await {
            Ok(response) if response.status.is_success() => {}
            Ok(response) => return failed(format!("POST {path}: {}", response.reason())),
            Err(error) => return failed(error.to_string()),
        }
    }
    match consumer_status(cluster, pod).await {
        Ok(status) => {
            let ok = action.reached(&status.state);
            PodOutcome {
                pod: pod.name.clone(),
                ok,
                error: (!ok).then(|| {
                    format!(
                        "consumer state is {:?} after {}",
                        status.state,
                        action.name()
                    )
                }),
                state: Some(status.state),
                total_lag: Some(status.total_lag),
            }
        }
        Err(error) => failed(error.to_string()),
    }
}

fn render(report: &Report) -> String {
    let mut out = String::new();
    let done = report.pods.iter().filter(|p| p.ok).count();
    let _ = writeln!(
        out,
        "{}: {done} of {} notification-service pods ok (release {}, namespace {})",
        report.action,
        report.pods.len(),
        report.release,
        report.namespace
    );
    let _ = writeln!(
        out,
        "{:<52} {:<6} {:<8} {:>6}",
        "POD", "RESULT", "STATE", "LAG"
    );
    for p in &report.pods {
        let _ = writeln!(
            out,
            "{:<52} {:<6} {:<8} {:>6}{}",
            p.pod,
            if p.ok { "ok" } else { "FAILED" },
            p.state.as_deref().unwrap_or("-"),
            p.total_lag.map_or("-".into(), |l| l.to_string()),
            p.error
                .as_deref()
                .map_or(String::new(), |e| format!("  {e}"))
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_and_resume_check_the_state_reached() {
        assert!(Action::Pause.reached("paused"));
        assert!(!Action::Pause.reached("running"));
        assert!(Action::Resume.reached("running"));
        assert!(!Action::Resume.reached("paused"));
        assert!(Action::Status.reached("starting"));
    }

    #[test]
    fn the_report_names_a_failed_pod_and_why() {
        let report = Report {
            action: "pause",
            release: "platform".into(),
            namespace: "ns".into(),
            pods: vec![
                PodOutcome {
                    pod: "a".into(),
                    ok: true,
                    state: Some("paused".into()),
                    total_lag: Some(3),
                    error: None,
                },
                PodOutcome {
                    pod: "b".into(),
                    ok: false,
                    state: None,
                    total_lag: None,
                    error: Some("HTTP 502: connection refused".into()),
                },
            ],
        };
        let text = render(&report);
        assert!(
            text.starts_with("pause: 1 of 2 notification-service pods ok"),
            "{text}"
        );
        assert!(text.contains("FAILED") && text.contains("HTTP 502: connection refused"));
    }
}
