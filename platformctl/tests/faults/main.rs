//! Tests that need the real stack. Fault injection with real processes: the Kafka broker killed, MariaDB stopped, a
//! service killed, replicas rebalanced, each in the middle of a stream of registrations.
//! Every event is counted by id at the end: all delivered, each exactly once. And
//! (`sasl`) the platform on a SASL-authenticated Kafka listener.
//!
//! These tests stop the shared MariaDB and Kafka, so they run one at a time
//! (`--test-threads=1`, as scripts/test.sh does) and only with
//! `--features fault-tests` against the real backends.

mod gray;
mod harness;
#[path = "../cluster/netns.rs"]
mod netns;
mod partition;
mod prediction;
mod proxy;
mod sasl;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use harness::{Stack, deps, metric, probe, register, start_load, status};
use service_kit::testing::eventually;

const COUNT: usize = 2000;
const CONCURRENCY: usize = 8;
const DUPLICATES: &str =
    r#"events_consumed_total{event_type="com.platform.user.registered.v1",outcome="duplicate"}"#;

async fn reached(progress: &AtomicUsize, n: usize) {
    let ok = eventually(harness::WAIT, || async {
        progress.load(Ordering::SeqCst) >= n
    })
    .await;
    assert!(ok, "the load stalled before {n} registrations");
}

#[tokio::test]
async fn kafka_killed_mid_stream_loses_and_duplicates_nothing() {
    let stack = Stack::new().await;
    let users = stack.user_service(true).await;
    let notifications = stack.notification_service().await;
    let (progress, load) = start_load(vec![users.url("")], "kafka-kill", COUNT, CONCURRENCY);

    reached(&progress, COUNT / 4).await;
    deps("kafka-kill");
    // Registrations need only the database: the service stays ready, degraded for Kafka.
    let degraded = eventually(Duration::from_secs(20), || async {
        harness::degraded_for_kafka(&users).await
    })
    .await;
    reached(&progress, COUNT / 2).await;
    deps("kafka-start");
    assert!(
        degraded,
        "/health/ready answers 200 degraded naming Kafka while the broker is down"
    );
    let report = load.await.expect("load");

    let (rows, notified) = stack.wait_all_notified(&report.created).await;
    let duplicates = metric(&notifications, DUPLICATES).await;
    eprintln!(
        "kafka killed: registered {}, in topic {}, delivered {rows}, duplicates suppressed {duplicates}, lost {}",
        report.created.len(),
        stack.kafka.messages().await,
        report.created.len() - notified.len()
    );
    assert_eq!(report.created.len(), COUNT);
    assert_eq!(stack.users().await, report.created);
    assert_eq!(notified, report.created, "every user notified");
    assert_eq!(rows, COUNT, "no user notified twice");
}

#[tokio::test]
async fn database_stopped_mid_stream_answers_503_fast_and_recovers_whole() {
    let stack = Stack::new().await;
    let users = stack.user_service(true).await;
    let notifications = stack.notification_service().await;
    let (progress, load) = start_load(vec![users.url("")], "db-stop", COUNT, CONCURRENCY);

    reached(&progress, COUNT / 4).await;
    deps("mariadb-stop");
    let (probe_status, probe_retry_after, probe_time) = probe(&users).await;
    assert_eq!(probe_status, 503);
    assert!(probe_retry_after, "503 carries Retry-After");
    let not_ready = eventually(Duration::from_secs(10), || async {
        harness::not_ready_for_database(&users).await
    })
    .await;
    assert!(not_ready, "/health/ready turns 503 naming the database");
    deps("mariadb-start");
    let report = load.await.expect("load");

    let (rows, notified) = stack.wait_all_notified(&report.created).await;
    let drained = eventually(harness::WAIT, || async { stack.outbox_rows().await == 0 }).await;
    eprintln!(
        "database stopped: registered {}, 503 answers {} (slowest {:?}, probe {probe_time:?}), delivered {rows}, duplicates suppressed {}, lost {}",
        report.created.len(),
        report.answers.get(&503).copied().unwrap_or(0),
        report.slowest_503,
        metric(&notifications, DUPLICATES).await,
        report.created.len() - notified.len()
    );
    assert!(
        probe_time < Duration::from_secs(2),
        "503 within 2 s, took {probe_time:?}"
    );
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
    assert_eq!(notified, report.created);
    assert_eq!(rows, COUNT);
    assert_eq!(status(&users.url("/health/ready")).await, Some(200));
}

#[tokio::test]
async fn notification_service_killed_mid_stream_redelivers_and_dedupes() {
    let stack = Stack::new().await;
    let users = stack.user_service(true).await;
    let first = stack.notification_service().await;
    let (_, load) = start_load(vec![users.url("")], "consumer-kill", COUNT, CONCURRENCY);

    let flowing = eventually(harness::WAIT, || async {
        stack.notified().await.0 >= COUNT / 3
    })
    .await;
    assert!(flowing, "deliveries started");
    first.kill();
    let second = stack.notification_service().await;
    let report = load.await.expect("load");

    let (rows, notified) = stack.wait_all_notified(&report.created).await;
    let duplicates = metric(&second, DUPLICATES).await;
    eprintln!(
        "consumer killed: registered {}, delivered {rows}, redelivered and suppressed {duplicates}, lost {}",
        report.created.len(),
        report.created.len() - notified.len()
    );
    assert_eq!(notified, report.created);
    assert_eq!(rows, COUNT, "no event delivered twice");
    assert!(
        duplicates >= 1.0,
        "Kafka redelivered the uncommitted events and they were counted as duplicates"
    );
}

#[tokio::test]
async fn user_service_killed_before_its_relay_ran_publishes_everything_after_restart() {
    let stack = Stack::new().await;
    let without_relay = stack.user_service(false).await;
    let notifications = stack.notification_service().await;
    let report = register(
        vec![without_relay.url("")],
        "relay-kill",
        COUNT,
        CONCURRENCY,
        Arc::default(),
    )
    .await;
    without_relay.kill();
    assert_eq!(
        stack.outbox_rows().await,
        COUNT,
        "every 201 left its outbox row"
    );
    assert_eq!(stack.kafka.messages().await, 0, "nothing published yet");

    let users = stack.user_service(true).await;
    let (rows, notified) = stack.wait_all_notified(&report.created).await;
    eprintln!(
        "user-service killed before relay: registered {}, published after restart {}, delivered {rows}, duplicates suppressed {}, lost {}",
        report.created.len(),
        stack.kafka.messages().await,
        metric(&notifications, DUPLICATES).await,
        report.created.len() - notified.len()
    );
    assert_eq!(notified, report.created);
    assert_eq!(rows, COUNT);
    assert_eq!(
        stack.kafka.messages().await,
        COUNT as i64,
        "each row published exactly once"
    );
    drop(users);
}

#[tokio::test]
async fn two_replicas_each_publish_and_consume_once_through_a_rebalance() {
    let stack = Stack::new().await;
    let users = [
        stack.user_service(true).await,
        stack.user_service(true).await,
    ];
    let consumer_a = stack.notification_service().await;
    let consumer_b = stack.notification_service().await;
    let targets = users.iter().map(|u| u.url("")).collect();
    let (progress, load) = start_load(targets, "replicas", COUNT, CONCURRENCY);

    reached(&progress, COUNT / 2).await;
    consumer_a.terminate();
    let report = load.await.expect("load");

    let (rows, notified) = stack.wait_all_notified(&report.created).await;
    let published: Vec<f64> = futures::future::join_all(
        users
            .iter()
            .map(|u| metric(u, r#"outbox_published_total{outcome="ok"}"#)),
    )
    .await;
    eprintln!(
        "two replicas + rebalance: registered {}, published by relay A {} and B {}, in topic {}, delivered {rows}, duplicates suppressed {}, lost {}",
        report.created.len(),
        published[0],
        published[1],
        stack.kafka.messages().await,
        metric(&consumer_b, DUPLICATES).await,
        report.created.len() - notified.len()
    );
    assert!(published.iter().all(|p| *p > 0.0), "both relays published");
    assert_eq!(
        stack.kafka.messages().await,
        COUNT as i64,
        "no row published by both relays"
    );
    assert_eq!(notified, report.created);
    assert_eq!(rows, COUNT);
}
