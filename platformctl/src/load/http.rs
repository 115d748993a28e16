//! The load generator's HTTP/1.1 client: one keep-alive connection per request in flight,
//! bodies written straight into a buffer. It shares the machine with what it measures, so
//! it is kept lean: a general-purpose client (pool checkout, JSON values, redirects) cost
//! more CPU per request than the registration it drove (docs/benchmarks.md).

use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Longest wait for one answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Posts JSON to one endpoint over reused connections.
pub struct Client {
    host: String,
    port: u16,
    authority: String,
    path: String,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

impl Client {
    /// A client for `endpoint`, an `http://host:port/path` URL.
    pub fn new(endpoint: &str) -> anyhow::Result<Self> {
        let uri: Uri = endpoint.parse().context("invalid --url")?;
        anyhow::ensure!(
            uri.scheme_str() == Some("http"),
            "--url must be an http:// URL, not {endpoint}"
        );
        let authority = uri.authority().context("--url has no host")?;
        Ok(Self {
            host: authority.host().trim_matches(['[', ']']).to_owned(),
            port: authority.port_u16().unwrap_or(80),
            authority: authority.to_string(),
            path: uri.path().to_owned(),
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Posts `body`: the answer's status and body, or `None` when none came (within
    /// [`REQUEST_TIMEOUT`]).
    pub async fn post(&self, body: String) -> Option<(StatusCode, Bytes)> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(body))
            .await
            .ok()
            .flatten()
    }

    async fn exchange(&self, body: String) -> Option<(StatusCode, Bytes)> {
        let mut sender = self.connection().await.ok()?;
        let request = Request::post(self.path.as_str())
            .header(HOST, self.authority.as_str())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)));
        let response = sender.send_request(request.ok()?).await.ok()?;
        let status = response.status();
        let body = response.into_body().collect().await.ok()?;
        // Only a connection whose answer was read completely is reused.
        self.give_back(sender);
        Some((status, body.to_bytes()))
    }

    /// An idle connection, or a new one.
    async fn connection(&self) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        if let Some(mut sender) = idle
            && sender.ready().await.is_ok()
        {
            return Ok(sender);
        }
        let stream = TcpStream::connect((self.host.as_str(), self.port)).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(sender)
    }

    fn give_back(&self, sender: SendRequest<Full<Bytes>>) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(sender);
        }
    }
}
