//! Gray failures: servers and services that stall instead of dying. A frozen (SIGSTOP)
//! process keeps its connections open and answers nothing; when it resumes, the work it
//! had in flight completes late. Every event is counted by id, and the consumers' metrics
//! must agree with the tables afterwards.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use service_kit::testing::eventually;

use super::{CONCURRENCY, COUNT, DUPLICATES, reached};
use crate::harness::{self, Service, Stack, deps, metric, probe, start_load, status};
use crate::proxy::LateCommitProxy;

const DELIVERED: &str =
    r#"events_consumed_total{event_type="com.platform.user.registered.v1",outcome="delivered"}"#;
/// How long MariaDB stays frozen each time.
const DB_FREEZE: Duration = Duration::from_secs(10);
/// Longer than the producer's delivery timeout (`message.timeout.ms` 15 s) and the
/// consumers' session timeout (10 s).
const BROKER_FREEZE: Duration = Duration::from_secs(20);
/// Longer than the consumers' session timeout (10 s, service-kit's Kafka defaults).
const REPLICA_FREEZE: Duration = Duration::from_secs(16);

/// Sum of `series` over `services`.
async fn total(services: &[&Service], series: &str) -> f64 {
    let mut sum = 0.0;
    for service in services {
        sum += metric(service, series).await;
    }
    sum
}

/// Waits until the consumers' delivered count equals the rows in the table and every
/// message in the topic was counted as delivered or duplicate; returns both counts.
async fn counts_settle(stack: &Stack, consumers: &[&Service], rows: usize) -> (f64, f64) {
    let messages = stack.kafka.messages().await as f64;
    eventually(harness::WAIT, || async {
        let delivered = total(consumers, DELIVERED).await;
        let consumed = delivered + total(consumers, DUPLICATES).await;
        delivered == rows as f64 && consumed >= messages
    })
    .await;
    (
        total(consumers, DELIVERED).await,
        total(consumers, DUPLICATES).await,
    )
}

#[tokio::test]
async fn database_frozen_mid_stream_answers_503_in_time_and_counts_match_the_tables() {
    let stack = Stack::new().await;
    let users = stack.user_service(true).await;
    let notifications = stack.notification_service().await;
    // 16 clients, so that transactions are in flight at every step when MariaDB freezes.
    // A client answered 503 retries with the same Idempotency-Key: one user either way,
    // the stored 201 if the frozen commit completed (counted, printed).
    let (progress, load) = start_load(vec![users.url("")], "db-freeze", COUNT, 16);

    let mut probes = Vec::new();
    for round in 1..=2 {
        reached(&progress, COUNT * round / 4).await;
        deps("mariadb-freeze");
        let frozen = Instant::now();
        probes.push(probe(&users).await);
        let not_ready = eventually(DB_FREEZE, || async {
            harness::not_ready_for_database(&users).await
        })
        .await;
        // The fault's length, not a wait for a condition.
        tokio::time::sleep(DB_FREEZE.saturating_sub(frozen.elapsed())).await;
        deps("mariadb-thaw");
        assert!(not_ready, "/health/ready turns 503 while MariaDB is frozen");
    }
    let report = load.await.expect("load");

    let (rows, notified) = stack.wait_all_notified(&report.created).await;
    let drained = eventually(harness::WAIT, || async { stack.outbox_rows().await == 0 }).await;
    let (delivered, duplicates) = counts_settle(&stack, &[&notifications], rows).await;
    eprintln!(
        "database frozen 2 x {DB_FREEZE:?}: registered {}, 503 answers {} (slowest {:?}), \
         answered 503 but committed and replayed {}, in topic {}, rows {rows}, \
         delivered {delivered}, duplicates {duplicates}, users_registered_total {}, lost {}",
        report.created.len(),
        report.answers.get(&503).copied().unwrap_or(0),
        report.slowest_503,
        report.stored_after_503,
        stack.kafka.messages().await,
        metric(&users, "users_registered_total").await,
        report.created.len() - notified.len()
    );
    for (status, retry_after, took) in probes {
        assert_eq!(status, 503, "a registration while frozen answers 503");
        assert!(retry_after, "the 503 carries Retry-After");
        assert!(
            took < Duration::from_secs(2),
            "503 within 2 s, took {took:?}"
        );
    }
    assert!(
        report.slowest_503 < Duration::from_secs(2),
        "every 503 within 2 s"
    );
    assert_eq!(
        stack.users().await,
        report.created,
        "no user row without a 201, none lost"
    );
    assert!(drained, "every outbox row published");
    assert_eq!(notified, report.created, "every user notified");
    assert_eq!(rows, COUNT, "no user notified twice");
    assert_eq!(delivered, rows as f64, "delivered counts equal the rows");
    assert_eq!(
        delivered + duplicates,
        stack.kafka.messages().await as f64,
        "every message counted once, as delivered or duplicate"
    );
    assert_eq!(status(&users.url("/health/ready")).await, Some(200));
}

#[tokio::test]
async fn broker_frozen_past_the_delivery_and_session_timeouts_loses_and_double_counts_nothing() {
    let stack = Stack::new().await;
    let users = stack.user_service(true).await;
    let notifications = stack.notification_service().await;
    let (progress, load) = start_load(vec![users.url("")], "kafka-freeze", COUNT, CONCURRENCY);

    reached(&progress, COUNT / 4).await;
    deps("kafka-freeze");
    let frozen = Instant::now();
    // Registrations go on: they only need the database. So the user-service stays ready
    // (200), degraded, naming the broker.
    let degraded = eventually(BROKER_FREEZE, || async {
        harness::degraded_for_kafka(&users).await
    })
    .await;
    reached(&progress, COUNT / 2).await;
    tokio::time::sleep(BROKER_FREEZE.saturating_sub(frozen.elapsed())).await;
    deps("kafka-thaw");
    assert!(
        degraded,
        "/health/ready answers 200 degraded naming Kafka while the broker is frozen"
    );
    let report = load.await.expect("load");

    let (rows, notified) = stack.wait_all_notified(&report.created).await;
    let drained = eventually(harness::WAIT, || async { stack.outbox_rows().await == 0 }).await;
    let (delivered, duplicates) = counts_settle(&stack, &[&notifications], rows).await;
    eprintln!(
        "broker frozen {BROKER_FREEZE:?}: registered {}, in topic {}, published ok {} failed {}, \
         rows {rows}, delivered {delivered}, duplicates {duplicates}, lost {}",
        report.created.len(),
        stack.kafka.messages().await,
        metric(&users, r#"outbox_published_total{outcome="ok"}"#).await,
        metric(&users, r#"outbox_published_total{outcome="failed"}"#).await,
        report.created.len() - notified.len()
    );
    assert_eq!(report.created.len(), COUNT);
    assert!(drained, "every outbox row published after the broker woke");
    assert_eq!(notified, report.created, "every user notified");
    assert_eq!(rows, COUNT, "no user notified twice");
    assert_eq!(delivered, rows as f64, "delivered counts equal the rows");
    assert!(
        delivered + duplicates >= stack.kafka.messages().await as f64,
        "every message counted"
    );
}

#[tokio::test]
async fn a_replica_frozen_past_its_session_timeout_loses_its_partitions_and_counts_stay_exact() {
    let stack = Stack::new().await;
    let users = stack.user_service(true).await;
    let frozen = stack.notification_service().await;
    let other = stack.notification_service().await;
    let (progress, load) = start_load(vec![users.url("")], "replica-freeze", COUNT, CONCURRENCY);

    reached(&progress, COUNT / 4).await;
    frozen.freeze(true);
    let started = Instant::now();
    let took_over = eventually(harness::WAIT, || async {
        assigned(&other).await == Some(6)
    })
    .await;
    let takeover = started.elapsed();
    // Past the session timeout even if the rebalance was quicker.
    tokio::time::sleep(REPLICA_FREEZE.saturating_sub(started.elapsed())).await;
    frozen.freeze(false);
    let report = load.await.expect("load");

    let (rows, notified) = stack.wait_all_notified(&report.created).await;
    let consumers = [&frozen, &other];
    let (delivered, duplicates) = counts_settle(&stack, &consumers, rows).await;
    let sent = total(
        &consumers,
        r#"notifications_sent_total{channel="log",outcome="ok"}"#,
    )
    .await;
    eprintln!(
        "replica frozen {REPLICA_FREEZE:?} (other took all partitions after {takeover:?}): \
         registered {}, in topic {}, rows {rows}, delivered {delivered} (frozen {}, other {}), \
         duplicates {duplicates}, sent {sent}, lost {}",
        report.created.len(),
        stack.kafka.messages().await,
        metric(&frozen, DELIVERED).await,
        metric(&other, DELIVERED).await,
        report.created.len() - notified.len()
    );
    assert!(took_over, "the other replica took every partition over");
    assert_eq!(notified, report.created, "every user notified");
    assert_eq!(rows, COUNT, "no user notified twice");
    assert_eq!(delivered, rows as f64, "delivered counts equal the rows");
    assert!(
        delivered + duplicates >= stack.kafka.messages().await as f64,
        "every message counted"
    );
    let lag_gone = eventually(harness::WAIT, || async {
        lag(&frozen).await + lag(&other).await == 0.0
    })
    .await;
    assert!(
        lag_gone,
        "the committed offsets reach the end of every partition"
    );
}

/// Partitions assigned to `consumer`, from its `/consumer/status`.
async fn assigned(consumer: &Service) -> Option<usize> {
    let status: serde_json::Value = reqwest::get(consumer.url("/consumer/status"))
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    status["partitions"].as_array().map(Vec::len)
}

/// `kafka_consumer_lag` summed over the partitions `consumer` reports.
async fn lag(consumer: &Service) -> f64 {
    let Ok(answer) = reqwest::get(consumer.url("/metrics")).await else {
        return f64::NAN;
    };
    let text = answer.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("kafka_consumer_lag{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `url` (mysql://user:password@host:port/database) with its address replaced by `addr`,
/// in plain text so that the relay can read the statements.
fn through(url: &str, addr: std::net::SocketAddr) -> String {
    let (credentials, rest) = url.rsplit_once('@').expect("mysql url with credentials");
    let (_, database) = rest.split_once('/').expect("mysql url with a database");
    format!("{credentials}@{addr}/{database}?ssl-mode=disabled")
}

/// One registration with `key`: status, `Retry-After` present, body, time taken.
async fn register_with_key(users: &Service, key: &str) -> (u16, bool, Value, Duration) {
    let started = Instant::now();
    let answer = reqwest::Client::new()
        .post(users.url("/register/"))
        .header("idempotency-key", key)
        .json(&json!({"user_name": "Late Commit", "email": "late.commit@example.com"}))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("an answer");
    let status = answer.status().as_u16();
    let retry_after = answer.headers().contains_key("retry-after");
    let body = answer.json().await.unwrap_or(Value::Null);
    (status, retry_after, body, started.elapsed())
}

#[tokio::test]
async fn a_commit_answered_after_the_deadline_is_a_503_and_the_retry_gets_the_stored_201() {
    let stack = Stack::new().await;
    let mariadb = stack.users_db.url.rsplit_once('@').expect("credentials").1;
    let upstream = mariadb.split_once('/').expect("database").0;
    let upstream = upstream.parse().expect("MariaDB address");
    // Longer than the request deadline (1 s), short enough for the test.
    let proxy = LateCommitProxy::start(upstream, Duration::from_secs(4)).await;
    // No relay: the registration's transaction is the only one that commits.
    let users = stack
        .user_service_on(through(&stack.users_db.url, proxy.addr), false)
        .await;
    let ready = eventually(Duration::from_secs(30), || async {
        status(&users.url("/health/ready")).await == Some(200)
    })
    .await;
    assert!(ready, "the user-service is ready through the relay");

    proxy.arm();
    let (first, retry_after, _, took) = register_with_key(&users, "late-commit").await;
    assert_eq!(proxy.held(), 1, "the registration's COMMIT reached MariaDB");
    assert_eq!(
        first, 503,
        "a commit not answered within the deadline is a 503"
    );
    assert!(retry_after, "the 503 carries Retry-After");
    assert!(
        took < proxy.hold(),
        "answered before the commit's answer came back: {took:?}"
    );
    // MariaDB committed all the same: the user is there although the client saw 503.
    let committed = eventually(Duration::from_secs(10), || async {
        stack.users().await.len() == 1
    })
    .await;
    assert!(committed, "the held COMMIT completed on the server");

    // The client retries with the same key and gets the stored answer, not a new user.
    let (retried, _, body, _) = register_with_key(&users, "late-commit").await;
    assert_eq!(retried, 201, "the retry gets the stored 201: {body}");
    let user_id = body["user_id"].as_str().expect("user_id").to_owned();
    assert_eq!(
        stack.users().await,
        [user_id.clone()].into(),
        "one user, the stored one"
    );
    assert_eq!(
        stack.outbox_rows().await,
        1,
        "one event for it, nothing half-written"
    );
    let (again, _, body, _) = register_with_key(&users, "late-commit").await;
    assert_eq!(
        (again, body["user_id"].as_str()),
        (201, Some(user_id.as_str()))
    );
    eprintln!(
        "late commit: 503 after {took:?} (commit answer held {:?}), retry 201 with the stored user {user_id}",
        proxy.hold()
    );
}
