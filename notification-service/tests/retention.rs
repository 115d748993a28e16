//! Bounded notifications table: expired rows are deleted in batches, and the window must
//! outlive every message of the topic (the table is the dedupe record).

mod helpers;

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use helpers::{Backends, spawn_app};
use notification_service::retention::{Retention, RetentionSetting};
use notification_service::store::{Notification, NotificationStore};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use service_kit::db::Database;
use service_kit::testing::{Backend, eventually};
use uuid::Uuid;

const MINUTE: Duration = Duration::from_secs(60);

fn delivered(minutes_ago: i64) -> Notification {
    let at = Utc::now() - chrono::Duration::minutes(minutes_ago);
    Notification {
        event_id: Uuid::new_v4(),
        user_id: Uuid::new_v4(),
        user_name: format!("Delivered {minutes_ago} min ago"),
        email: "old@example.com".to_owned(),
        channel: "log".to_owned(),
        event_time: at,
        delivered_at: at,
        recorded_by: Uuid::new_v4(),
    }
}

async fn store_of(backends: &Backends) -> NotificationStore {
    let config = backends.config();
    let db: Database = notification_service::app::connect_and_migrate(&config)
        .await
        .expect("migrated database");
    NotificationStore::new(db)
}

/// Records 10 notifications delivered two hours ago and 5 just now; returns their ids.
async fn old_and_new(store: &NotificationStore) -> (Vec<Uuid>, Vec<Uuid>) {
    let mut ids = (Vec::new(), Vec::new());
    for (minutes_ago, list) in [(120, &mut ids.0), (0, &mut ids.1)] {
        let count = if minutes_ago > 0 { 10 } else { 5 };
        for _ in 0..count {
            let n = delivered(minutes_ago);
            store.record(&n).await.expect("record");
            list.push(n.event_id);
        }
    }
    ids
}

async fn still_recorded(store: &NotificationStore, ids: &[Uuid]) -> HashSet<Uuid> {
    let mut kept = HashSet::new();
    for id in ids {
        if store.recorded_by(*id).await.expect("lookup").is_some() {
            kept.insert(*id);
        }
    }
    kept
}

#[tokio::test]
async fn expired_notifications_are_deleted_in_small_batches_and_the_rest_kept() {
    let backends = Backends::new().await;
    let store = store_of(&backends).await;
    let (old, new) = old_and_new(&store).await;
    // Batches of 3: four statements for ten rows, the last one short.
    let deleted = store
        .forget_delivered_before(60 * MINUTE, 3)
        .await
        .expect("housekeeping");
    assert_eq!(deleted, 10, "every expired row goes, and only those");
    assert!(still_recorded(&store, &old).await.is_empty());
    assert_eq!(still_recorded(&store, &new).await.len(), new.len());
    let again = store
        .forget_delivered_before(60 * MINUTE, 3)
        .await
        .expect("housekeeping");
    assert_eq!(again, 0, "a second round finds nothing");
}

/// A topic of the test's own whose messages live at most 5 + 1 + 5 = 11 minutes.
async fn short_lived_topic(backends: &Backends) -> String {
    let topic = format!("short-lived-{}", Uuid::new_v4().simple());
    let admin: AdminClient<DefaultClientContext> =
        backends.kafka.args.admin_config().create().expect("admin");
    let new = NewTopic::new(&topic, 1, TopicReplication::Fixed(1))
        .set("retention.ms", "300000")
        .set("segment.ms", "60000");
    let created = admin
        .create_topics(&[new], &AdminOptions::new())
        .await
        .expect("create topic");
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    topic
}

#[tokio::test]
async fn the_window_must_outlive_the_topics_messages_and_then_bounds_the_table() {
    let backends = Backends::new().await;
    let Backend::Real { .. } = Backend::from_env() else {
        // librdkafka's mock cluster does not describe topic configurations: the window
        // stays unknown and every row is kept, whatever the setting.
        let mut config = backends.config();
        config.notifications_retention = RetentionSetting::Window(MINUTE);
        let retention = Retention::resolve(
            config.notifications_retention,
            &config.kafka,
            config.housekeeping.clone(),
        )
        .await
        .expect("not refused while the topic's life is unknown");
        assert_eq!(retention.resolved(), None);
        return;
    };
    let mut config = backends.config();
    config.kafka.topic = short_lived_topic(&backends).await;

    config.notifications_retention = RetentionSetting::Window(10 * MINUTE);
    let refused = notification_service::Application::build(&config).await;
    let message = format!(
        "{:#}",
        refused.err().expect("a 10-minute window is refused")
    );
    assert!(
        message.contains("NOTIFICATIONS_RETENTION=10m") && message.contains("(11m:"),
        "{message}"
    );

    let auto = Retention::resolve(RetentionSetting::Auto, &config.kafka, Default::default())
        .await
        .expect("auto is never refused");
    assert_eq!(
        auto.window().await,
        Some(Some(11 * MINUTE + 24 * 60 * MINUTE))
    );

    // Twelve minutes is accepted, and the running service trims the table to it.
    config.notifications_retention = RetentionSetting::Window(12 * MINUTE);
    config.housekeeping.housekeeping_interval = Duration::from_millis(200);
    config.housekeeping.housekeeping_batch_rows = 4;
    let store = store_of(&backends).await;
    let (old, new) = old_and_new(&store).await;
    let app = spawn_app(&config).await;
    let trimmed = eventually(Duration::from_secs(30), || async {
        still_recorded(&store, &old).await.is_empty()
    })
    .await;
    assert!(trimmed, "rows older than the window were not deleted");
    assert_eq!(still_recorded(&store, &new).await.len(), new.len());
    app.stop().await;
}
