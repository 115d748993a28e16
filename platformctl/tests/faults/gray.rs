//! Gray failures: servers and services that stall instead of dying. A frozen (SIGSTOP)
//! process keeps its connections open and answers nothing; when it resumes, the work it
//! had in flight completes late. Every event is counted by id, and the consumers' metrics
//! must agree with the tables afterwards.

use std::time::{Duration, Instant};

use service_kit::testing::eventually;

use super::{CONCURRENCY, COUNT, DUPLICATES, reached};
use crate::harness::{self, Service, Stack, deps, metric, probe, start_load, status};

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
            status(&users.url("/health/ready")).await == Some(503)
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
    // Registrations go on: they only need the database.
    reached(&progress, COUNT / 2).await;
    tokio::time::sleep(BROKER_FREEZE.saturating_sub(frozen.elapsed())).await;
    deps("kafka-thaw");
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
