//! Start-up before the database answers, for the notification-service (the same kit code
//! as the user-service, `service_kit::startup`): live 200 / ready 503 while it retries,
//! never exits, ready once the database answers. Runs `serve`, the code path of the binary.
//!
//! Embedded backend: the SQLite file's directory is missing at first and created later.
//! Real backend: a loopback port where nothing listens, later a TCP proxy to MariaDB.

mod helpers;

use std::net::SocketAddr;
use std::time::Duration;

use futures::FutureExt;
use helpers::Backends;
use serde_json::Value;
use service_kit::Shutdown;
use service_kit::runner::ServiceConfig;
use service_kit::testing::{Backend, eventually, free_port};
use tokio::net::{TcpListener, TcpStream};

/// Forwards every connection on 127.0.0.1:`port` to `target`.
async fn proxy(port: u16, target: String) {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .expect("bind proxy port");
    while let Ok((mut inbound, _)) = listener.accept().await {
        let target = target.clone();
        tokio::spawn(async move {
            if let Ok(mut outbound) = TcpStream::connect(&target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

async fn status_of(client: &reqwest::Client, url: &str) -> Option<(u16, Value)> {
    let response = client.get(url).send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.unwrap_or(Value::Null)))
}

#[tokio::test]
async fn started_before_its_database_it_stays_live_not_ready_then_becomes_ready() {
    let backends = Backends::new().await;
    let mut config = backends.config();
    let dir = tempfile::tempdir().expect("temp dir");
    let open_database: Box<dyn FnOnce() + Send> = match Backend::from_env() {
        Backend::Embedded => {
            let missing = dir.path().join("not-yet");
            let db = missing.join("notifications.db");
            config.database_url = format!("sqlite://{}?mode=rwc", db.display());
            Box::new(move || std::fs::create_dir(&missing).expect("create db dir"))
        }
        Backend::Real { .. } => {
            let real = config.database_url.clone();
            let (auth, rest) = real.rsplit_once('@').expect("mysql url with credentials");
            let (target, db) = rest.split_once('/').expect("mysql url with database");
            let port = free_port();
            config.database_url = format!("{auth}@127.0.0.1:{port}/{db}");
            let target = target.to_owned();
            Box::new(move || {
                tokio::spawn(proxy(port, target));
            })
        }
    };
    config.http_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let base = format!("http://{}", config.http_addr);
    let shutdown = Shutdown::new();
    let serve = config.serve(shutdown.clone());
    let checks = async {
        let result = std::panic::AssertUnwindSafe(async {
            let client = reqwest::Client::new();
            let ready = format!("{base}/health/ready");
            let retried = eventually(Duration::from_secs(20), || async {
                matches!(status_of(&client, &ready).await,
                    Some((503, body)) if body["attempts"].as_u64() >= Some(3))
            })
            .await;
            assert!(
                retried,
                "the service did not keep retrying without its database"
            );
            let (live, _) = status_of(&client, &format!("{base}/health/live"))
                .await
                .expect("live answers");
            assert_eq!(live, 200, "not live while waiting for the database");
            open_database();
            let became_ready = eventually(Duration::from_secs(40), || async {
                matches!(status_of(&client, &ready).await, Some((200, _)))
            })
            .await;
            assert!(became_ready, "not ready once the database answered");
        })
        .catch_unwind()
        .await;
        shutdown.trigger();
        result
    };
    let (served, checked) = tokio::join!(serve, checks);
    if let Err(panic) = checked {
        std::panic::resume_unwind(panic);
    }
    served.expect("the service stops cleanly after start-up");
}
