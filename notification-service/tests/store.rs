//! The consumer's batch statements and its own connection, on the test backend.

use std::collections::HashSet;

use chrono::Utc;
use notification_service::store::{Notification, NotificationStore, ROWS_PER_INSERT};
use service_kit::db::{Database, DbError, OwnConnection};
use service_kit::kafka::KafkaArgs;
use service_kit::testing::{Backend, TestDatabase};
use uuid::Uuid;

async fn database() -> (TestDatabase, Database) {
    let test_db = TestDatabase::create(&Backend::from_env()).await;
    let config = notification_service::Config::new(
        test_db.url.clone(),
        KafkaArgs::new("unused:9092", "unused"),
    );
    let db = notification_service::app::connect_and_migrate(&config)
        .await
        .expect("migrated database");
    (test_db, db)
}

fn notification(i: usize) -> Notification {
    Notification {
        event_id: Uuid::new_v4(),
        user_id: Uuid::new_v4(),
        user_name: format!("Batch {i}"),
        email: format!("batch-{i}@example.com"),
        channel: "log".to_owned(),
        event_time: Utc::now(),
        delivered_at: Utc::now(),
        recorded_by: Uuid::new_v4(),
    }
}

/// `record_all` on a pooled connection, returned before the test reads (on SQLite the
/// pool has one).
async fn record_all(db: &Database, rows: &[Notification]) -> Result<(), DbError> {
    let mut conn = db.pool().acquire().await.expect("connection");
    NotificationStore::new(db.clone())
        .record_all(&mut conn, rows)
        .await
}

async fn recorded(store: &NotificationStore) -> HashSet<Uuid> {
    let latest = store.latest(10_000).await.expect("latest");
    latest.iter().map(|n| n.event_id).collect()
}

#[tokio::test]
async fn batch_dedupe_finds_exactly_the_recorded_ids_at_every_batch_size() {
    let (_test_db, db) = database().await;
    let store = NotificationStore::new(db.clone());
    let mut conn = db.pool().acquire().await.expect("connection");
    // Every third event recorded; batch sizes cross the padded sizes (1, 2, 4, … 128).
    let events: Vec<Notification> = (0..130).map(notification).collect();
    let done: Vec<Notification> = events.iter().step_by(3).cloned().collect();
    store.record_all(&mut conn, &done).await.expect("record");
    let done_ids: HashSet<Uuid> = done.iter().map(|n| n.event_id).collect();

    for size in [1, 2, 3, 5, 8, 9, 17, 63, 64, 65, 127, 130] {
        let ids: Vec<Uuid> = events[..size].iter().map(|n| n.event_id).collect();
        let found = store
            .recorded_among(&mut conn, &ids)
            .await
            .expect("dedupe")
            .into_keys()
            .collect::<HashSet<Uuid>>();
        let expected: HashSet<Uuid> = ids
            .iter()
            .filter(|id| done_ids.contains(id))
            .copied()
            .collect();
        assert_eq!(found, expected, "batch of {size}");
    }
}

#[tokio::test]
async fn a_batch_longer_than_one_insert_is_recorded_whole_or_not_at_all() {
    let (_test_db, db) = database().await;
    let store = NotificationStore::new(db.clone());
    let size = 2 * ROWS_PER_INSERT + 22;
    let first: Vec<Notification> = (0..size).map(notification).collect();
    record_all(&db, &first).await.expect("record");
    let expected: HashSet<Uuid> = first.iter().map(|n| n.event_id).collect();
    assert_eq!(recorded(&store).await, expected);

    // One event of the second batch, in its last statement, was recorded already: the
    // batch fails as a whole and leaves none of its new rows behind.
    let mut second: Vec<Notification> = (0..size).map(notification).collect();
    second[size - 1] = first[0].clone();
    let error = record_all(&db, &second)
        .await
        .expect_err("a recorded event id");
    assert!(error.is_unique_violation(), "{error}");
    assert_eq!(
        recorded(&store).await,
        expected,
        "nothing of the failed batch"
    );
}

#[tokio::test]
async fn a_connection_given_up_mid_transaction_is_replaced_and_a_kept_one_reused() {
    let (_test_db, db) = database().await;
    let store = NotificationStore::new(db.clone());
    let own = OwnConnection::new(db.clone());
    let abandoned = notification(1);

    let mut conn = own.lock().await.expect("connection");
    sqlx::raw_sql("BEGIN")
        .execute(&mut *conn)
        .await
        .expect("begin");
    store
        .record_all(&mut conn, std::slice::from_ref(&abandoned))
        .await
        .expect("insert inside the transaction");
    drop(conn); // as after an error: not kept

    // Had the same connection come back, it would still be inside the transaction and
    // see its own uncommitted row.
    let mut conn = own.lock().await.expect("connection");
    let found = store
        .recorded_among(&mut conn, &[abandoned.event_id])
        .await
        .expect("dedupe")
        .into_keys()
        .collect::<HashSet<Uuid>>();
    assert!(found.is_empty(), "the abandoned transaction is gone");
    let kept = notification(2);
    store
        .record_all(&mut conn, std::slice::from_ref(&kept))
        .await
        .expect("record");
    conn.keep();

    let mut conn = own.lock().await.expect("kept connection");
    let found = store
        .recorded_among(&mut conn, &[kept.event_id])
        .await
        .expect("dedupe")
        .into_keys()
        .collect::<HashSet<Uuid>>();
    assert_eq!(found, HashSet::from([kept.event_id]));
    conn.keep();
    assert_eq!(recorded(&store).await, HashSet::from([kept.event_id]));
}

#[tokio::test]
async fn a_connection_kept_after_a_failed_multi_statement_batch_is_outside_its_transaction() {
    let (_test_db, db) = database().await;
    let store = NotificationStore::new(db.clone());
    let own = OwnConnection::new(db.clone());
    let first = notification(0);
    record_all(&db, std::slice::from_ref(&first))
        .await
        .expect("record");

    // As the consumer does: a unique violation keeps the connection. The batch is longer
    // than one INSERT, so it failed inside a transaction that must be rolled back.
    let mut conn = own.lock().await.expect("connection");
    let mut batch: Vec<Notification> = (1..=ROWS_PER_INSERT + 1).map(notification).collect();
    batch.push(first.clone());
    let error = store
        .record_all(&mut conn, &batch)
        .await
        .expect_err("a recorded event id");
    assert!(error.is_unique_violation(), "{error}");
    conn.keep();

    // The next write on the kept connection commits on its own: another connection sees
    // it, and none of the failed batch.
    let next = notification(99);
    let mut conn = own.lock().await.expect("kept connection");
    store
        .record_all(&mut conn, std::slice::from_ref(&next))
        .await
        .expect("record on the kept connection");
    conn.keep();
    assert_eq!(
        recorded(&store).await,
        HashSet::from([first.event_id, next.event_id])
    );
}
