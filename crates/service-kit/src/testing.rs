//! Test backends: the same black-box tests run against the embedded backends (SQLite and
//! librdkafka's mock cluster, the default) or the real MariaDB and Kafka when
//! `PLATFORM_TEST_BACKEND=real` (set by `scripts/test.sh`, with `TEST_MYSQL_URL` and
//! `TEST_KAFKA_BROKERS`). A real backend that is asked for but missing fails the test with
//! a message saying what is missing; nothing is skipped.

pub mod schema;

use std::time::Duration;

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use sqlx::Connection;
use uuid::Uuid;

use crate::kafka::{KafkaArgs, ensure_topics};

/// Which backends the tests use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Real {
        mysql_url: String,
        kafka_brokers: String,
    },
}

impl Backend {
    /// Reads the backend from the environment; panics with a clear message when the real
    /// backend is requested without its settings.
    pub fn from_env() -> Self {
        match std::env::var("PLATFORM_TEST_BACKEND").as_deref() {
            Ok("real") => Self::Real {
                mysql_url: required("TEST_MYSQL_URL"),
                kafka_brokers: required("TEST_KAFKA_BROKERS"),
            },
            Ok("embedded") | Err(_) => Self::Embedded,
            Ok(other) => panic!("PLATFORM_TEST_BACKEND={other}: expected `embedded` or `real`"),
        }
    }
}

fn required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("PLATFORM_TEST_BACKEND=real needs {name}: run the tests through scripts/test.sh, which starts MariaDB and Kafka")
    })
}

/// A database that exists only for one test.
pub struct TestDatabase {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    pub async fn create(backend: &Backend) -> Self {
        match backend {
            Backend::Embedded => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
                Self {
                    url,
                    _dir: Some(dir),
                }
            }
            Backend::Real { mysql_url, .. } => Self {
                url: fresh_mysql_database(mysql_url).await,
                _dir: None,
            },
        }
    }
}

async fn fresh_mysql_database(server_url: &str) -> String {
    sqlx::any::install_default_drivers();
    let name = format!("test_{}", Uuid::new_v4().simple());
    let mut conn = sqlx::AnyConnection::connect(server_url)
        .await
        .unwrap_or_else(|e| panic!("cannot reach MariaDB at TEST_MYSQL_URL: {e}"));
    let create = format!("CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci");
    sqlx::query(sqlx::AssertSqlSafe(create))
        .execute(&mut conn)
        .await
        .expect("create test database");
    format!("{}/{name}", server_url.trim_end_matches('/'))
}

/// A Kafka cluster with a topic (and its dead-letter topic) that exists only for one test,
/// and a consumer group name of its own: tests running side by side on one broker must not
/// share a group, or each one's join and leave rebalances the others.
pub struct TestKafka {
    pub args: KafkaArgs,
    pub group: String,
    _mock: Option<MockCluster<'static, DefaultProducerContext>>,
}

impl TestKafka {
    pub async fn create(backend: &Backend, partitions: i32) -> Self {
        let topic = format!("test-{}", Uuid::new_v4().simple());
        let topics = [topic.clone(), events::dlq_topic(&topic)];
        let group = format!("group-{}", Uuid::new_v4().simple());
        match backend {
            Backend::Embedded => {
                let mock = MockCluster::new(1).expect("librdkafka mock cluster");
                for t in &topics {
                    mock.create_topic(t, partitions, 1).expect("mock topic");
                }
                let args = KafkaArgs::new(mock.bootstrap_servers(), topic);
                Self {
                    args,
                    group,
                    _mock: Some(mock),
                }
            }
            Backend::Real { kafka_brokers, .. } => {
                let args = KafkaArgs::new(kafka_brokers.clone(), topic);
                let names: Vec<&str> = topics.iter().map(String::as_str).collect();
                tokio::time::timeout(
                    Duration::from_secs(30),
                    ensure_topics(&args, &names, partitions, 1),
                )
                .await
                .expect("topic creation timed out: is Kafka up at TEST_KAFKA_BROKERS?")
                .expect("create test topics");
                Self {
                    args,
                    group,
                    _mock: None,
                }
            }
        }
    }

    /// Creates more topics of the test's own (e.g. a service's answer topic) on the same
    /// cluster.
    pub async fn create_topics(&self, topics: &[&str], partitions: i32) {
        if let Some(mock) = &self._mock {
            for topic in topics {
                mock.create_topic(topic, partitions, 1).expect("mock topic");
            }
            return;
        }
        tokio::time::timeout(
            Duration::from_secs(30),
            ensure_topics(&self.args, topics, partitions, 1),
        )
        .await
        .expect("topic creation timed out: is Kafka up at TEST_KAFKA_BROKERS?")
        .expect("create test topics");
    }

    /// Messages in the test topic: high minus low watermark summed over its partitions,
    /// asked of the broker itself (not of a service's view of its assignment).
    pub async fn messages(&self) -> i64 {
        let args = self.args.clone();
        tokio::task::spawn_blocking(move || {
            use rdkafka::consumer::{BaseConsumer, Consumer};
            let wait = Duration::from_secs(30);
            let consumer: BaseConsumer = args
                .consumer_config(&format!("watermarks-{}", Uuid::new_v4().simple()))
                .create()
                .expect("consumer");
            // A partition can be without a leader for a moment (a broker that just
            // resumed, or restarted, re-registers first): ask again, for up to a minute.
            let mut last_error = None;
            for _ in 0..120 {
                let sizes = consumer
                    .fetch_metadata(Some(&args.topic), wait)
                    .and_then(|metadata| {
                        metadata.topics()[0]
                            .partitions()
                            .iter()
                            .map(|p| consumer.fetch_watermarks(&args.topic, p.id(), wait))
                            .map(|w| w.map(|(low, high)| high - low))
                            .sum::<Result<i64, _>>()
                    });
                match sizes {
                    Ok(total) => return total,
                    Err(error) => last_error = Some(error),
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            panic!("watermarks of {}: {last_error:?}", args.topic)
        })
        .await
        .expect("watermarks task")
    }
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes; returns whether it held.
pub async fn eventually<F, Fut>(timeout: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if condition().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A fresh database and topic for one test.
pub struct TestBackends {
    pub db: TestDatabase,
    pub kafka: TestKafka,
}

impl TestBackends {
    pub async fn new(partitions: i32) -> Self {
        let backend = Backend::from_env();
        Self {
            db: TestDatabase::create(&backend).await,
            kafka: TestKafka::create(&backend, partitions).await,
        }
    }
}

/// Declares a service's test type around one of the kit's (`TestServer`, `TestBackends`):
/// the service adds its own helper methods to it (a foreign type takes none), and the
/// kit's stay reachable through `Deref`.
#[macro_export]
macro_rules! test_wrapper {
    ($(#[$meta:meta])* $vis:vis struct $name:ident($inner:ty);) => {
        $(#[$meta])*
        $vis struct $name(pub $inner);

        impl ::std::ops::Deref for $name {
            type Target = $inner;
            fn deref(&self) -> &$inner {
                &self.0
            }
        }
    };
}

/// Declares a service's `TestApp`, its [`TestServer`] wrapped by [`test_wrapper!`], and
/// `spawn_app`, which builds the service's `$application` on a `$config` (given or lent)
/// and runs it in the test process.
#[macro_export]
macro_rules! test_app {
    // With `connect`: also `spawn_app_sharing_database`, the service on a pool the
    // test holds too, so that it can take the database away (close the pool).
    ($application:ty, $config:ty, connect: $connect:path) => {
        $crate::test_app!($application, $config);

        pub async fn spawn_app_sharing_database(
            config: &$config,
        ) -> (TestApp, $crate::db::Database) {
            let db = $connect(config).await.expect("database");
            let app = <$application>::with_database(config, db.clone())
                .await
                .expect("build the service");
            let server =
                $crate::testing::TestServer::start(app.local_addr(), |shutdown| app.run(shutdown));
            (TestApp(server), db)
        }
    };
    ($application:ty, $config:ty) => {
        $crate::test_wrapper!(
            /// The service running in the test process.
            pub struct TestApp($crate::testing::TestServer);
        );

        impl TestApp {
            /// Graceful stop, as on SIGTERM; fails the test if the service did not stop
            /// cleanly.
            pub async fn stop(self) {
                self.0.stop().await;
            }

            /// Abrupt stop, like a killed process.
            pub fn abort(self) {
                self.0.abort();
            }
        }

        pub async fn spawn_app(config: impl ::std::borrow::Borrow<$config>) -> TestApp {
            let app = <$application>::build(config.borrow())
                .await
                .expect("build the service");
            TestApp($crate::testing::TestServer::start(
                app.local_addr(),
                |shutdown| app.run(shutdown),
            ))
        }
    };
}

/// A service running in the test process, reached over real HTTP.
pub struct TestServer {
    pub addr: std::net::SocketAddr,
    pub client: reqwest::Client,
    shutdown: crate::Shutdown,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestServer {
    /// Runs `service` (an application's `run`) until [`TestServer::stop`].
    pub fn start<F>(addr: std::net::SocketAddr, service: impl FnOnce(crate::Shutdown) -> F) -> Self
    where
        F: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let shutdown = crate::Shutdown::new();
        let task = tokio::spawn(service(shutdown.clone()));
        Self {
            addr,
            client: reqwest::Client::new(),
            shutdown,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request")
    }

    /// The service's `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.get("/metrics", None)
            .await
            .text()
            .await
            .expect("metrics")
    }

    /// The `dependency_up` series of `/metrics`, as `dependency=value`.
    pub async fn dependency_gauges(&self) -> Vec<String> {
        dependency_gauges(&self.metrics().await)
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// Current value of the first series that starts with `series` in `/metrics`.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self
            .get("/metrics", None)
            .await
            .text()
            .await
            .expect("metrics");
        metric_value(&text, series)
    }

    /// Graceful stop, as on SIGTERM; fails the test if the service did not stop cleanly.
    pub async fn stop(self) {
        self.shutdown.trigger();
        self.task
            .await
            .expect("service task")
            .expect("clean shutdown");
    }

    /// Abrupt stop: the task is dropped mid-work, like a killed process (nothing is
    /// flushed or committed).
    pub fn abort(self) {
        self.task.abort();
    }
}

/// The value of the first series whose name-and-labels text starts with `series`
/// (0 when absent).
pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// The `dependency_up` series of a `/metrics` text as `dependency=value`, sorted (empty
/// when the gauge has no series).
pub fn dependency_gauges(text: &str) -> Vec<String> {
    let mut gauges: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("dependency_up{dependency=\""))
        .filter_map(|l| {
            let (dependency, value) = l.split_once("\"} ")?;
            Some(format!("{dependency}={value}"))
        })
        .collect();
    gauges.sort();
    gauges
}

/// A binary of the workspace built next to the running test binary (`target/<profile>/`),
/// for tests that start the services as separate processes.
pub fn built_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the services first with `cargo build --workspace` (scripts/test.sh does)",
        path.display()
    );
    path
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}
