//! Calls to a pod's HTTP port through the API server's pod proxy
//! (`/api/v1/namespaces/NS/pods/NAME:PORT/proxy/PATH`): the API server connects to the
//! pod's IP, so this works from outside the cluster network without a port-forward.
//!
//! The API server removes `Authorization` from every request it has authenticated, so the
//! admin token travels in `X-Admin-Token`, which the services also accept.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use kube::client::Body;
use serde::Deserialize;

use super::{Cluster, ClusterError, PodInfo};

/// Header the services read the admin token from when `Authorization` cannot be used.
const ADMIN_TOKEN_HEADER: &str = "x-admin-token";
/// Upper bound of one proxied call, answer included: a pod that hangs is reported, not
/// waited for.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What the pod (or the API server on its behalf) answered.
#[derive(Debug)]
pub struct ProxyResponse {
    pub status: StatusCode,
    pub body: Bytes,
}

impl ProxyResponse {
    /// The reason of a non-2xx answer in a few words: a problem+json `detail`/`title`, a
    /// Kubernetes Status `message`, or the start of the body.
    pub fn reason(&self) -> String {
        #[derive(Deserialize)]
        struct Fields {
            detail: Option<String>,
            title: Option<String>,
            message: Option<String>,
        }
        let text = match serde_json::from_slice::<Fields>(&self.body) {
            Ok(fields) => fields
                .detail
                .or(fields.message)
                .or(fields.title)
                .unwrap_or_default(),
            Err(_) => String::from_utf8_lossy(&self.body).into_owned(),
        };
        let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let text: String = text.chars().take(200).collect();
        if text.is_empty() {
            format!("HTTP {}", self.status.as_u16())
        } else {
            format!("HTTP {}: {text}", self.status.as_u16())
        }
    }
}

/// `GET path` on the pod's HTTP port.
pub async fn pod_get(
    cluster: &Cluster,
    pod: &PodInfo,
    path: &str,
) -> Result<ProxyResponse, ClusterError> {
    call(cluster, pod, Method::GET, path, None).await
}

/// `POST path` on the pod's HTTP port with the admin token.
pub async fn pod_post(
    cluster: &Cluster,
    pod: &PodInfo,
    path: &str,
    admin_token: &str,
) -> Result<ProxyResponse, ClusterError> {
    call(cluster, pod, Method::POST, path, Some(admin_token)).await
}

fn proxy_path(namespace: &str, pod: &str, port: u16, path: &str) -> String {
    format!(
        "/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy/{}",
        path.trim_start_matches('/')
    )
}

async fn call(
    cluster: &Cluster,
    pod: &PodInfo,
    method: Method,
    path: &str,
    admin_token: Option<&str>,
) -> Result<ProxyResponse, ClusterError> {
    let action = format!("{method} {path} on pod {}", pod.name);
    match tokio::time::timeout(CALL_TIMEOUT, send(cluster, pod, method, path, admin_token)).await {
        Ok(result) => result,
        Err(_) => Err(ClusterError::Request {
            action,
            detail: format!("no answer within {} s", CALL_TIMEOUT.as_secs()),
        }),
    }
}

async fn send(
    cluster: &Cluster,
    pod: &PodInfo,
    method: Method,
    path: &str,
    admin_token: Option<&str>,
) -> Result<ProxyResponse, ClusterError> {
    let action = format!("{method} {path} on pod {}", pod.name);
    let mut request = Request::builder().method(method).uri(proxy_path(
        &cluster.namespace,
        &pod.name,
        pod.port,
        path,
    ));
    if let Some(token) = admin_token {
        request = request.header(ADMIN_TOKEN_HEADER, token);
    }
    let request = request
        .body(Body::empty())
        .map_err(|error| ClusterError::Request {
            action: action.clone(),
            detail: error.to_string(),
        })?;
    let response = cluster
        .client
        .send(request)
        .await
        .map_err(|error| ClusterError::from_kube(error, &cluster.server, &action))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect_bytes()
        .await
        .map_err(|error| ClusterError::from_kube(error, &cluster.server, &action))?;
    Ok(ProxyResponse { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_path_names_pod_port_and_path() {
        assert_eq!(
            proxy_path("ns", "p-1", 8001, "/consumer/status"),
            "/api/v1/namespaces/ns/pods/p-1:8001/proxy/consumer/status"
        );
    }

    #[test]
    fn reasons_come_from_problem_json_status_or_text() {
        let problem = ProxyResponse {
            status: StatusCode::UNAUTHORIZED,
            body: Bytes::from_static(
                br#"{"title":"Unauthorized","detail":"A valid token is required."}"#,
            ),
        };
        assert_eq!(problem.reason(), "HTTP 401: A valid token is required.");
        let status = ProxyResponse {
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: Bytes::from_static(br#"{"kind":"Status","message":"error trying to reach service: dial tcp 10.200.0.2:8001: connect: connection refused"}"#),
        };
        assert!(
            status
                .reason()
                .starts_with("HTTP 503: error trying to reach service")
        );
        let text = ProxyResponse {
            status: StatusCode::BAD_GATEWAY,
            body: Bytes::from_static(b"Error trying\nto reach"),
        };
        assert_eq!(text.reason(), "HTTP 502: Error trying to reach");
        let empty = ProxyResponse {
            status: StatusCode::BAD_GATEWAY,
            body: Bytes::new(),
        };
        assert_eq!(empty.reason(), "HTTP 502");
    }
}
