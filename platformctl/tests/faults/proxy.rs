//! A TCP relay between a service and MariaDB that can make one `COMMIT` late: it passes
//! the statement to the server, which commits, and holds the server's answer back for a
//! while, as a network or a server that stalls right after committing would. The client
//! cannot tell a commit that failed from one whose answer is late; this makes that case
//! happen on demand instead of by chance.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// `COM_QUERY` (0x03) followed by the statement text, as a MySQL client sends a plain
/// `COMMIT` (sqlx does, for `Transaction::commit`).
const COMMIT: &[u8] = b"\x03COMMIT";

#[derive(Default)]
struct Plan {
    /// The next `COMMIT` seen gets its answer held.
    armed: AtomicBool,
    /// How many `COMMIT`s had their answers held.
    held: AtomicUsize,
}

pub struct LateCommitProxy {
    pub addr: SocketAddr,
    plan: Arc<Plan>,
    hold: Duration,
    task: tokio::task::JoinHandle<()>,
}

impl LateCommitProxy {
    /// Relays connections to `upstream`; an armed `COMMIT`'s answer waits `hold`.
    pub async fn start(upstream: SocketAddr, hold: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let plan = Arc::new(Plan::default());
        let shared = plan.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let plan = shared.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        relay(client, server, plan, hold).await;
                    }
                });
            }
        });
        Self {
            addr,
            plan,
            hold,
            task,
        }
    }

    /// Holds back the answer to the next `COMMIT` on any connection.
    pub fn arm(&self) {
        self.plan.armed.store(true, Ordering::SeqCst);
    }

    /// `COMMIT`s whose answers were held so far.
    pub fn held(&self) -> usize {
        self.plan.held.load(Ordering::SeqCst)
    }

    pub fn hold(&self) -> Duration {
        self.hold
    }
}

impl Drop for LateCommitProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Client to server as it comes; server to client held while a late `COMMIT` waits.
async fn relay(client: TcpStream, server: TcpStream, plan: Arc<Plan>, hold: Duration) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let (held_until, mut wait) = watch::channel(None::<tokio::time::Instant>);
    let upstream = async move {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let chunk = &buffer[..n];
            let is_commit = chunk.windows(COMMIT.len()).any(|w| w == COMMIT);
            // Set before the statement leaves, so its answer cannot slip through.
            if is_commit && plan.armed.swap(false, Ordering::SeqCst) {
                plan.held.fetch_add(1, Ordering::SeqCst);
                let _ = held_until.send(Some(tokio::time::Instant::now() + hold));
            }
            if server_write.write_all(chunk).await.is_err() {
                return;
            }
        }
    };
    let downstream = async move {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let until = *wait.borrow_and_update();
            if let Some(until) = until {
                tokio::time::sleep_until(until).await;
            }
            if client_write.write_all(&buffer[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::join!(upstream, downstream);
}
