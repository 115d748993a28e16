//! Both services together: every registration becomes exactly one notification, also
//! when either service restarts mid-stream.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use service_kit::testing::{Backend, TestDatabase, TestKafka, TestServer, eventually};

const TOKEN: &str = "e2e-token";
const WAIT: Duration = Duration::from_secs(60);
const DELIVERED: &str =
    r#"events_consumed_total{event_type="com.platform.user.registered.v1",outcome="delivered"}"#;

struct Platform {
    users_db: TestDatabase,
    notifications_db: TestDatabase,
    kafka: TestKafka,
}

impl Platform {
    async fn new() -> Self {
        let backend = Backend::from_env();
        Self {
            users_db: TestDatabase::create(&backend).await,
            notifications_db: TestDatabase::create(&backend).await,
            kafka: TestKafka::create(&backend, 3).await,
        }
    }

    async fn user_service(&self) -> TestServer {
        let mut config =
            user_service::Config::new(self.users_db.url.clone(), self.kafka.args.clone());
        config.common.admin_token = Some(TOKEN.into());
        config.outbox_sweep_interval_ms = 100;
        let app = user_service::Application::build(&config)
            .await
            .expect("user-service");
        TestServer::start(app.local_addr(), |s| app.run(s))
    }

    async fn notification_service(&self) -> TestServer {
        let mut config = notification_service::Config::new(
            self.notifications_db.url.clone(),
            self.kafka.args.clone(),
        );
        config.common.admin_token = Some(TOKEN.into());
        config.group_id = self.kafka.group.clone();
        let app = notification_service::Application::build(&config)
            .await
            .expect("notification-service");
        TestServer::start(app.local_addr(), |s| app.run(s))
    }
}

async fn register(
    users: &TestServer,
    prefix: &str,
    range: std::ops::Range<usize>,
) -> HashSet<String> {
    let mut ids = HashSet::new();
    for i in range {
        let response = users
            .post_json("/register/", &json!({"user_name": format!("{prefix} {i}"), "email": format!("{prefix}.{i}@example.com")}))
            .await;
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.expect("json");
        ids.insert(body["user_id"].as_str().expect("id").to_owned());
    }
    ids
}

async fn delivered_users(notifications: &TestServer) -> Vec<String> {
    let list: Vec<Value> = notifications
        .get("/notifications?limit=1000", Some(TOKEN))
        .await
        .json()
        .await
        .expect("json");
    list.iter()
        .map(|n| n["user_id"].as_str().expect("id").to_owned())
        .collect()
}

/// Waits until `expected` users are recorded, then checks each exactly once.
async fn assert_each_delivered_once(notifications: &TestServer, expected: &HashSet<String>) {
    let arrived = eventually(WAIT, || async {
        delivered_users(notifications).await.len() >= expected.len()
    })
    .await;
    let delivered = delivered_users(notifications).await;
    assert!(
        arrived,
        "only {} of {} delivered",
        delivered.len(),
        expected.len()
    );
    let unique: HashSet<_> = delivered.iter().cloned().collect();
    assert_eq!(delivered.len(), unique.len(), "a user was notified twice");
    assert_eq!(&unique, expected);
}

#[tokio::test]
async fn registrations_become_exactly_one_notification_each() {
    let platform = Platform::new().await;
    let users = platform.user_service().await;
    let notifications = platform.notification_service().await;

    let ids = register(&users, "e2e", 0..25).await;

    assert_each_delivered_once(&notifications, &ids).await;
    let counted = eventually(WAIT, || async {
        notifications.metric(DELIVERED).await == 25.0
    })
    .await;
    assert!(
        counted,
        "events_consumed_total{{outcome=\"delivered\"}} = 25"
    );
    users.stop().await;
    notifications.stop().await;
}

#[tokio::test]
async fn restarting_either_service_mid_stream_loses_and_duplicates_nothing() {
    let platform = Platform::new().await;
    let users = platform.user_service().await;
    let notifications = platform.notification_service().await;
    let mut ids = register(&users, "before", 0..20).await;
    // The consumer stops while events are still flowing...
    notifications.stop().await;
    ids.extend(register(&users, "while-consumer-down", 0..20).await);
    // ...and the user-service (with its relay) restarts too.
    users.stop().await;
    let users = platform.user_service().await;
    ids.extend(register(&users, "after", 0..20).await);
    let notifications = platform.notification_service().await;

    assert_each_delivered_once(&notifications, &ids).await;
    users.stop().await;
    notifications.stop().await;
}
