//! Real processes for the fault tests: the service binaries started as in production, the
//! MariaDB and Kafka of `scripts/deps.sh`, and a client that retries like a careful one.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use service_kit::testing::{Backend, TestDatabase, TestKafka, built_binary, eventually, free_port};
use sqlx::{Connection, Row};
use tokio::sync::Mutex;

pub const TOKEN: &str = "fault-token";
pub const WAIT: Duration = Duration::from_secs(180);

/// The workspace root, where `scripts/deps.sh` lives.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `scripts/deps.sh <command>` (start/stop/kill MariaDB or Kafka).
pub fn deps(command: &str) {
    let status = Command::new("bash")
        .arg(workspace().join("scripts/deps.sh"))
        .arg(command)
        .stdout(Stdio::null())
        .status()
        .expect("run scripts/deps.sh");
    assert!(status.success(), "scripts/deps.sh {command} failed");
}

/// The services' `RUST_LOG`: `warn`, or `FAULT_TESTS_RUST_LOG` to investigate a failure.
pub fn log_level() -> String {
    std::env::var("FAULT_TESTS_RUST_LOG").unwrap_or_else(|_| "warn".into())
}

/// One service process; killed when dropped so a failing test leaves nothing behind.
pub struct Service {
    child: Option<Child>,
    host: Ipv4Addr,
    pub port: u16,
    pub name: &'static str,
    log: PathBuf,
}

impl Service {
    /// A service started elsewhere (on a test host), serving on `host`:`port`.
    pub fn running(
        child: Child,
        host: Ipv4Addr,
        port: u16,
        name: &'static str,
        log: PathBuf,
    ) -> Self {
        Self {
            child: Some(child),
            host,
            port,
            name,
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}:{}{}", self.host, self.port, path)
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// SIGKILL: no shutdown hook runs, nothing is flushed or committed.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("wait");
        }
    }

    /// SIGSTOP (`true`) or SIGCONT: the process stalls with its connections open, as one
    /// paused by the scheduler or a stalled disk does.
    pub fn freeze(&self, frozen: bool) {
        let child = self.child.as_ref().expect("running");
        let signal = if frozen { "-STOP" } else { "-CONT" };
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} {}", self.name);
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(mut self) {
        if let Some(mut child) = self.child.take() {
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .expect("kill -TERM");
            let status = child.wait().expect("wait");
            assert!(
                status.success(),
                "{} exited with {status}; log: {}",
                self.name,
                self.log.display()
            );
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Databases and topic of one fault test, and the means to start its services.
pub struct Stack {
    pub users_db: TestDatabase,
    pub notifications_db: TestDatabase,
    pub kafka: TestKafka,
    logs: Logs,
}

/// The services' logs: removed after a passing test, kept after a failing one, with a line
/// saying where, so that a failure in CI can be read afterwards.
struct Logs(Option<tempfile::TempDir>);

impl Logs {
    fn path(&self) -> &Path {
        self.0.as_ref().map_or(Path::new("."), |dir| dir.path())
    }
}

impl Drop for Logs {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(dir) = self.0.take()
        {
            eprintln!("the services' logs are kept in {}", dir.keep().display());
        }
    }
}

impl Stack {
    pub async fn new() -> Self {
        let backend = Backend::from_env();
        assert!(
            matches!(backend, Backend::Real { .. }),
            "fault tests need the real MariaDB and Kafka: run them through scripts/test.sh (PLATFORM_TEST_BACKEND=real)"
        );
        Self {
            users_db: TestDatabase::create(&backend).await,
            notifications_db: TestDatabase::create(&backend).await,
            kafka: TestKafka::create(&backend, 6).await,
            logs: Logs(Some(tempfile::tempdir().expect("log dir"))),
        }
    }

    fn spawn(&self, name: &'static str, envs: &[(&str, String)]) -> Service {
        let port = free_port();
        let log = self.log_path(name, port);
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(built_binary(name))
            .env("HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env(
                "KAFKA_BOOTSTRAP_SERVERS",
                &self.kafka.args.bootstrap_servers,
            )
            .env("KAFKA_TOPIC", &self.kafka.args.topic)
            .env("ADMIN_TOKEN", TOKEN)
            .env("RUST_LOG", log_level())
            .env("LOG_FORMAT", "json")
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .expect("spawn service");
        Service::running(child, Ipv4Addr::LOCALHOST, port, name, log)
    }

    /// Where the service `name` on `port` writes its log.
    pub fn log_path(&self, name: &str, port: u16) -> PathBuf {
        self.logs.path().join(format!("{name}-{port}.log"))
    }

    pub async fn user_service(&self, relay: bool) -> Service {
        self.user_service_on(self.users_db.url.clone(), relay).await
    }

    /// A user-service on its test database reached at `database_url` (through a relay).
    pub async fn user_service_on(&self, database_url: String, relay: bool) -> Service {
        let service = self.spawn(
            "user-service",
            &[
                ("DATABASE_URL", database_url),
                ("OUTBOX_RELAY", relay.to_string()),
                ("OUTBOX_SWEEP_INTERVAL_MS", "200".into()),
            ],
        );
        wait_live(&service).await;
        service
    }

    pub async fn notification_service(&self) -> Service {
        let service = self.spawn(
            "notification-service",
            &[
                ("DATABASE_URL", self.notifications_db.url.clone()),
                ("KAFKA_GROUP_ID", self.kafka.group.clone()),
            ],
        );
        wait_live(&service).await;
        service
    }

    /// A prediction-service on the stack's topic (requests) answering to `results`.
    pub async fn prediction_service(&self, results: &str) -> Service {
        let model = workspace().join("models/wine-forest.onnx");
        let service = self.spawn(
            "prediction-service",
            &[
                ("KAFKA_GROUP_ID", self.kafka.group.clone()),
                ("KAFKA_RESULT_TOPIC", results.to_owned()),
                ("KAFKA_REPLY_TOPIC_PREFIX", results.to_owned()),
                ("MODEL_PATH", model.display().to_string()),
            ],
        );
        wait_live(&service).await;
        service
    }

    /// User ids in the user database.
    pub async fn users(&self) -> HashSet<String> {
        query_column(&self.users_db.url, "SELECT user_id FROM users").await
    }

    pub async fn outbox_rows(&self) -> usize {
        query_column(&self.users_db.url, "SELECT CAST(id AS CHAR) FROM outbox")
            .await
            .len()
    }

    /// (rows, distinct user ids) in the notifications table.
    pub async fn notified(&self) -> (usize, HashSet<String>) {
        let rows = query_column(
            &self.notifications_db.url,
            "SELECT event_id FROM notifications",
        )
        .await
        .len();
        (
            rows,
            query_column(
                &self.notifications_db.url,
                "SELECT user_id FROM notifications",
            )
            .await,
        )
    }

    /// Waits until every user in `expected` has been notified.
    pub async fn wait_all_notified(&self, expected: &HashSet<String>) -> (usize, HashSet<String>) {
        eventually(WAIT, || async {
            self.notified().await.1.len() >= expected.len()
        })
        .await;
        self.notified().await
    }
}

async fn query_column(url: &str, sql: &'static str) -> HashSet<String> {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
    sqlx::query(sql)
        .fetch_all(&mut conn)
        .await
        .expect("query")
        .iter()
        .map(|row| row.try_get::<String, _>(0).expect("text column"))
        .collect()
}

async fn wait_live(service: &Service) {
    let client = reqwest::Client::new();
    let live = eventually(Duration::from_secs(60), || async {
        matches!(client.get(service.url("/health/live")).send().await, Ok(r) if r.status() == 200)
    })
    .await;
    assert!(
        live,
        "{} did not come up; log: {}",
        service.name,
        service.log.display()
    );
}

pub async fn status(url: &str) -> Option<u16> {
    reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

/// `GET url` (a `/health/ready`): its status and JSON body.
pub async fn readiness(url: &str) -> Option<(u16, Value)> {
    let answer = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    let status = answer.status().as_u16();
    Some((status, answer.json().await.unwrap_or(Value::Null)))
}

/// Whether `service` answers `/health/ready` 200 `degraded` with the broker failing: it
/// serves its requests while only its background work waits for Kafka.
pub async fn degraded_for_kafka(service: &Service) -> bool {
    matches!(readiness(&service.url("/health/ready")).await,
        Some((200, body)) if body["status"] == "degraded"
            && body["checks"]["kafka"]["ok"] == false
            && body["checks"]["kafka"]["required"] == false
            && body["checks"]["database"]["ok"] == true)
}

/// Whether `service` answers `/health/ready` 503 `not_ready` naming the database.
pub async fn not_ready_for_database(service: &Service) -> bool {
    matches!(readiness(&service.url("/health/ready")).await,
        Some((503, body)) if body["status"] == "not_ready"
            && body["checks"]["database"]["ok"] == false)
}

pub async fn metric(service: &Service, series: &str) -> f64 {
    let text = reqwest::get(service.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    service_kit::testing::metric_value(&text, series)
}

/// What a load run saw.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Users created (201), by id.
    pub created: HashSet<String>,
    /// Answers by status (0 = no answer: connection refused or timed out).
    pub answers: BTreeMap<u16, usize>,
    /// Slowest 503 answer.
    pub slowest_503: Duration,
    /// Registrations answered 503 whose commit completed all the same: the retry with the
    /// same Idempotency-Key got the stored 201, created before that 503 was answered.
    pub stored_after_503: usize,
}

/// Starts [`register`] in the background; the counter tells how far it got.
pub fn start_load(
    targets: Vec<String>,
    prefix: &str,
    count: usize,
    concurrency: usize,
) -> (Arc<AtomicUsize>, tokio::task::JoinHandle<LoadReport>) {
    let progress = Arc::new(AtomicUsize::new(0));
    let (prefix, counter) = (prefix.to_owned(), progress.clone());
    let load =
        tokio::spawn(async move { register(targets, &prefix, count, concurrency, counter).await });
    (progress, load)
}

/// One registration while the database is down or frozen: its status, whether it carries
/// `Retry-After`, and how long it took.
pub async fn probe(users: &Service) -> (u16, bool, Duration) {
    let started = Instant::now();
    let answer = reqwest::Client::new()
        .post(users.url("/register/"))
        .json(&json!({"user_name": "Probe", "email": "probe@example.com"}))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("an answer while the database is unavailable");
    let retry_after = answer.headers().contains_key("retry-after");
    (answer.status().as_u16(), retry_after, started.elapsed())
}

/// Registers `count` users over `targets` (round-robin) with `concurrency` clients. Every
/// registration carries its own Idempotency-Key and is retried, as a careful client
/// would, until it gets a final answer: so every user ends up registered exactly once,
/// whatever fails in between. `progress` counts finished registrations.
pub async fn register(
    targets: Vec<String>,
    prefix: &str,
    count: usize,
    concurrency: usize,
    progress: Arc<AtomicUsize>,
) -> LoadReport {
    let report = Arc::new(Mutex::new(LoadReport::default()));
    let next = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let workers = (0..concurrency).map(|_| {
        let (targets, next, client, report, progress) = (
            targets.clone(),
            next.clone(),
            client.clone(),
            report.clone(),
            progress.clone(),
        );
        let prefix = prefix.to_owned();
        tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= count {
                    return;
                }
                let target = &targets[i % targets.len()];
                let id = register_one(&client, target, &prefix, i, &report).await;
                report.lock().await.created.insert(id);
                progress.fetch_add(1, Ordering::SeqCst);
            }
        })
    });
    for worker in futures::future::join_all(workers).await {
        worker.expect("load worker");
    }
    Arc::try_unwrap(report).expect("workers done").into_inner()
}

async fn register_one(
    client: &reqwest::Client,
    target: &str,
    prefix: &str,
    i: usize,
    report: &Mutex<LoadReport>,
) -> String {
    let body =
        json!({"user_name": format!("{prefix} {i}"), "email": format!("{prefix}.{i}@example.com")});
    let key = format!("{prefix}-{i}");
    let mut first_503 = None;
    for _ in 0..600 {
        let started = Instant::now();
        let answer = client
            .post(format!("{target}/register/"))
            .header("idempotency-key", &key)
            .json(&body)
            .send()
            .await;
        let status = answer.as_ref().map_or(0, |r| r.status().as_u16());
        {
            let mut report = report.lock().await;
            *report.answers.entry(status).or_default() += 1;
            if status == 503 {
                report.slowest_503 = report.slowest_503.max(started.elapsed());
                first_503.get_or_insert_with(chrono::Utc::now);
            }
        }
        if status == 201 {
            let created: Value = answer.expect("answer").json().await.expect("json");
            let created_at: chrono::DateTime<chrono::Utc> =
                serde_json::from_value(created["created_at"].clone()).expect("created_at");
            if first_503.is_some_and(|answered| created_at < answered) {
                report.lock().await.stored_after_503 += 1;
            }
            return created["user_id"].as_str().expect("user_id").to_owned();
        }
        assert!(
            status == 0 || status == 503,
            "registration {i} got {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("registration {i} never succeeded");
}
