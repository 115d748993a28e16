//! Start-up before the database and Kafka answer (a pod started before MySQL and the
//! broker): the service keeps retrying with backoff, answers live 200 / ready 503
//! meanwhile, never exits, is ready (200, `degraded`) once the database answers, and
//! `ready` once the broker answers too. Runs `serve`, the code path of the binary. Kafka
//! goes through a loopback proxy port that starts forwarding after the database is up.
//!
//! Embedded backend: the SQLite file's directory is missing at first (opening fails) and
//! is created later. Real backend: the service is pointed at a loopback port where nothing
//! listens; later a TCP proxy on that port starts forwarding to the real MariaDB.

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

/// A database URL that does not work yet, and what makes it work.
struct LateDatabase {
    url: String,
    open: Box<dyn FnOnce() + Send>,
    _dir: Option<tempfile::TempDir>,
}

fn late_database(backends: &Backends) -> LateDatabase {
    match Backend::from_env() {
        Backend::Embedded => {
            let dir = tempfile::tempdir().expect("temp dir");
            let missing = dir.path().join("not-yet");
            let url = format!("sqlite://{}?mode=rwc", missing.join("users.db").display());
            LateDatabase {
                url,
                open: Box::new(move || std::fs::create_dir(&missing).expect("create db dir")),
                _dir: Some(dir),
            }
        }
        Backend::Real { .. } => {
            // mysql://user:password@host:port/db -> the same through a proxy port.
            let real = &backends.db.url;
            let (scheme_auth, rest) = real.rsplit_once('@').expect("mysql url with credentials");
            let (target, db) = rest.split_once('/').expect("mysql url with database");
            let target = target.to_owned();
            let port = free_port();
            let url = format!("{scheme_auth}@127.0.0.1:{port}/{db}");
            LateDatabase {
                url,
                open: Box::new(move || {
                    tokio::spawn(proxy(port, target));
                }),
                _dir: None,
            }
        }
    }
}

/// Forwards every connection on 127.0.0.1:`port` to `target`.
async fn proxy(port: u16, target: String) {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .expect("bind proxy port");
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            return;
        };
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
async fn started_before_its_database_and_kafka_it_stays_live_not_ready_then_becomes_ready() {
    let backends = Backends::new().await;
    let late = late_database(&backends);
    let mut config = backends.config();
    config.database_url = late.url.clone();
    // Kafka is not reachable at first either: the bootstrap address is a proxy port
    // that starts forwarding only after the database is up.
    let kafka_target = config
        .kafka
        .bootstrap_servers
        .split(',')
        .next()
        .expect("a bootstrap server")
        .to_owned();
    let kafka_port = free_port();
    config.kafka.bootstrap_servers = format!("127.0.0.1:{kafka_port}");
    let open_kafka: Box<dyn FnOnce() + Send> = Box::new(move || {
        tokio::spawn(proxy(kafka_port, kafka_target));
    });
    config.http_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let base = format!("http://{}", config.http_addr);
    let shutdown = Shutdown::new();
    // `serve` is what the binary runs; polled here beside the checks (not spawned).
    let serve = config.serve(shutdown.clone());
    let checks = async {
        let result = std::panic::AssertUnwindSafe(check_start_up(&base, late.open, open_kafka))
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

async fn check_start_up(
    base: &str,
    open_database: Box<dyn FnOnce() + Send>,
    open_kafka: Box<dyn FnOnce() + Send>,
) {
    let client = reqwest::Client::new();
    let live = format!("{base}/health/live");
    let ready = format!("{base}/health/ready");

    // Several failed attempts (so it retried rather than exited), live all along.
    let retried = eventually(Duration::from_secs(20), || async {
        matches!(status_of(&client, &ready).await,
            Some((503, body)) if body["attempts"].as_u64() >= Some(3))
    })
    .await;
    assert!(
        retried,
        "the service did not keep retrying while the database was unreachable"
    );
    let (status, body) = status_of(&client, &ready).await.expect("ready answers");
    assert_eq!(
        status, 503,
        "ready while the database is unreachable: {body}"
    );
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "the not-ready answer names the error: {body}"
    );
    let (status, _) = status_of(&client, &live).await.expect("live answers");
    assert_eq!(status, 200, "not live while waiting for the database");
    let early = client
        .post(format!("{base}/register/"))
        .json(&serde_json::json!({"user_name": "early", "email": "early@example.com"}))
        .send()
        .await
        .expect("request");
    assert_eq!(
        early.status().as_u16(),
        503,
        "API answered before start-up finished"
    );

    open_database();

    // Started on the database: it serves registrations, so it is ready (200), degraded
    // while the broker does not answer.
    let degraded = eventually(Duration::from_secs(40), || async {
        matches!(status_of(&client, &ready).await,
            Some((200, body)) if body["status"] == "degraded"
                && body["checks"]["database"]["ok"] == true
                && body["checks"]["kafka"]["ok"] == false)
    })
    .await;
    assert!(
        degraded,
        "once the database answered, the service did not report ready and degraded for Kafka"
    );
    let (status, _) = status_of(&client, &live).await.expect("live answers");
    assert_eq!(status, 200, "not live while waiting for Kafka");
    let before_kafka = client
        .post(format!("{base}/register/"))
        .json(&serde_json::json!({"user_name": "no broker", "email": "no.broker@example.com"}))
        .send()
        .await
        .expect("request");
    assert_eq!(
        before_kafka.status().as_u16(),
        201,
        "a degraded service did not take a registration"
    );

    open_kafka();

    let became_ready = eventually(Duration::from_secs(40), || async {
        matches!(status_of(&client, &ready).await,
            Some((200, body)) if body["status"] == "ready")
    })
    .await;
    assert!(
        became_ready,
        "the service did not become ready once the broker answered"
    );
    let registered = client
        .post(format!("{base}/register/"))
        .json(&serde_json::json!({"user_name": "late", "email": "late@example.com"}))
        .send()
        .await
        .expect("request");
    assert_eq!(
        registered.status().as_u16(),
        201,
        "registration after start-up"
    );
}
