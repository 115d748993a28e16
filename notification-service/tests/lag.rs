//! `kafka_consumer_lag` describes exactly the partitions this member owns, also after a
//! rebalance hands some of them to another member.

mod helpers;

use std::time::Duration;

use helpers::{Backends, TOKEN, TestApp, spawn_app};
use service_kit::testing::eventually;

/// Lag is reported every 5 s and a rebalance takes a few more.
const WAIT: Duration = Duration::from_secs(90);

async fn lag_series(app: &TestApp) -> usize {
    let text = app.metrics().await;
    text.lines()
        .filter(|l| l.starts_with("kafka_consumer_lag{"))
        .count()
}

async fn owned_partitions(app: &TestApp) -> usize {
    let status: serde_json::Value = app
        .get("/consumer/status", Some(TOKEN))
        .await
        .json()
        .await
        .expect("status");
    status["partitions"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread")]
async fn lag_series_follow_the_assignment_through_a_rebalance() {
    let backends = Backends::new().await;
    let config = backends.config();
    let first = spawn_app(&config).await;
    let all = eventually(WAIT, || async { lag_series(&first).await == 3 }).await;
    assert!(all, "a sole member reports lag for all 3 partitions");

    let second = spawn_app(&config).await;
    let shared = eventually(WAIT, || async {
        let owned = owned_partitions(&first).await;
        (1..3).contains(&owned) && lag_series(&first).await == owned
    })
    .await;
    assert!(
        shared,
        "after the rebalance the first member reports only its own partitions: {} series, {} owned",
        lag_series(&first).await,
        owned_partitions(&first).await
    );
    second.stop().await;
    first.stop().await;
}
