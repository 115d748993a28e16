//! Access to a Kubernetes cluster for the cluster commands (`status`, `consumer` without
//! `--url`), on the `kube` crate: the user's kubeconfig and context as kubectl reads them,
//! the release's objects found by the chart's labels, and calls to the services' pods
//! through the API server's pod proxy (no port-forward, works against minikube).

mod error;
mod proxy;
mod release;
mod services;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

pub use error::{ClusterError, one_line};
pub use proxy::{pod_get, pod_post};
#[cfg(test)]
pub(crate) use release::pod_info;
pub use release::{Component, PodInfo, Workload, admin_token, list_pods, list_workloads};
pub use services::{ConsumerStatus, Readiness, consumer_status, outbox_backlog, readiness};

/// How long to wait for the API server to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for an answer, the proxied service's included.
const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// Which cluster, namespace and release a cluster command works on.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, as kubectl).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// Kubeconfig context (default: its current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,

    /// Namespace of the release (default: the context's namespace, then `default`).
    #[arg(short = 'n', long, value_name = "NS")]
    pub namespace: Option<String>,

    /// Helm release name of the platform.
    #[arg(long, value_name = "NAME", default_value = "platform")]
    pub release: String,
}

/// A connected client and the release it works on.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    pub namespace: String,
    pub release: String,
    /// The API server's URL, for error messages.
    pub server: String,
}

impl Cluster {
    /// Reads the kubeconfig like kubectl does and builds a client; does not contact the
    /// API server yet (the first call does, and says so when it cannot).
    pub async fn connect(args: &ClusterArgs) -> Result<Self, ClusterError> {
        let options = KubeConfigOptions {
            context: args.context.clone(),
            cluster: None,
            user: None,
        };
        let loaded = match &args.kubeconfig {
            Some(path) => match Kubeconfig::read_from(path) {
                Ok(kubeconfig) => Config::from_custom_kubeconfig(kubeconfig, &options).await,
                Err(error) => Err(error),
            },
            None => Config::from_kubeconfig(&options).await,
        };
        let mut config = loaded.map_err(|error| ClusterError::Kubeconfig {
            detail: one_line(&error),
        })?;
        config.connect_timeout = Some(CONNECT_TIMEOUT);
        config.read_timeout = Some(READ_TIMEOUT);
        // kube retries 429/503/504 answers up to 15 times with growing delays, POSTs
        // included. Through the pod proxy a 503 is the pod's answer (or the API server
        // saying the pod cannot be reached), and a pause must not be sent again blindly:
        // a command reports at once instead.
        config.default_retry = false;
        let namespace = args
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let server = config.cluster_url.to_string();
        let client = Client::try_from(config).map_err(|error| ClusterError::Kubeconfig {
            detail: one_line(&error),
        })?;
        Ok(Self {
            client,
            namespace,
            release: args.release.clone(),
            server,
        })
    }

    /// Label selector of the release's objects (the chart's `platform.labels`), optionally
    /// narrowed to one component.
    pub fn selector(&self, component: Option<Component>) -> String {
        release::selector(&self.release, component)
    }
}
