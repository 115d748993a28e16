//! What can go wrong talking to a cluster, each a one-line message.

use std::error::Error as StdError;

/// An error of a cluster command. Every message is one line.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot load the kubeconfig: {detail}")]
    Kubeconfig { detail: String },

    #[error("cannot reach the Kubernetes API server at {server}: {detail}")]
    Unreachable { server: String, detail: String },

    #[error("the API server refused to {action}: {message} (HTTP {code})")]
    Api {
        action: String,
        code: u16,
        message: String,
    },

    #[error("cannot {action}: {detail}")]
    Request { action: String, detail: String },

    #[error(
        "release {release:?} not found in namespace {namespace:?}: no Deployment, StatefulSet \
         or Pod labelled app.kubernetes.io/instance={release}"
    )]
    ReleaseNotFound { release: String, namespace: String },

    #[error("release {release:?} in namespace {namespace:?} has no {component} pods")]
    NoPods {
        release: String,
        namespace: String,
        component: &'static str,
    },

    #[error("cannot read the admin token: {detail}")]
    AdminToken { detail: String },

    /// Some pods did not do what was asked; each named with its reason.
    #[error("{action} failed on {} of {total} pods: {}", failures.len(), list(failures))]
    Pods {
        action: &'static str,
        total: usize,
        failures: Vec<(String, String)>,
    },
}

fn list(failures: &[(String, String)]) -> String {
    failures
        .iter()
        .map(|(pod, reason)| format!("{pod} ({reason})"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ClusterError {
    /// Maps an error of a call to the API server: refused by it, or not reaching it.
    pub fn from_kube(error: kube::Error, server: &str, action: impl Into<String>) -> Self {
        match error {
            kube::Error::Api(status) => Self::Api {
                action: action.into(),
                code: status.code,
                message: flatten(&status.message),
            },
            kube::Error::HyperError(_) | kube::Error::Service(_) => Self::Unreachable {
                server: server.to_owned(),
                detail: root_cause(&error),
            },
            other => Self::Request {
                action: action.into(),
                detail: one_line(&other),
            },
        }
    }
}

/// The innermost cause of an error (for connection errors: what the socket said).
pub fn root_cause(error: &(dyn StdError + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    flatten(&current.to_string())
}

/// An error and its causes on one line, each cause once.
pub fn one_line(error: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(e) = current {
        let text = flatten(&e.to_string());
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

fn flatten(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn root_cause_is_the_innermost_error_on_one_line() {
        let error = Outer(std::io::Error::other("connection\nrefused"));
        assert_eq!(root_cause(&error), "connection refused");
        assert_eq!(one_line(&error), "outer: connection refused");
    }

    #[test]
    fn pod_failures_name_each_pod() {
        let error = ClusterError::Pods {
            action: "pause",
            total: 2,
            failures: vec![("ns-b".into(), "HTTP 503".into())],
        };
        assert_eq!(
            error.to_string(),
            "pause failed on 1 of 2 pods: ns-b (HTTP 503)"
        );
    }

    #[test]
    fn a_missing_release_says_which_and_where() {
        let error = ClusterError::ReleaseNotFound {
            release: "nope".into(),
            namespace: "platform".into(),
        };
        let text = error.to_string();
        assert!(
            text.contains("\"nope\"") && text.contains("\"platform\""),
            "{text}"
        );
        assert!(!text.contains('\n'));
    }
}
