//! Consumer control: pause stops deliveries while the consumer keeps its partitions,
//! resume delivers what waited, each event once.

mod helpers;

use std::collections::HashSet;
use std::time::Duration;

use helpers::{Backends, TOKEN, TestApp, WAIT, event, spawn_app};
use reqwest::StatusCode;
use serde_json::Value;
use service_kit::testing::eventually;

async fn status(app: &TestApp) -> Value {
    app.get("/consumer/status", None)
        .await
        .json()
        .await
        .expect("status json")
}

async fn control(app: &TestApp, action: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = app.client.post(app.url(&format!("/consumer/{action}")));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("request")
}

async fn publish(backends: &Backends, range: std::ops::Range<usize>) -> HashSet<String> {
    let producer = backends.producer();
    let mut ids = HashSet::new();
    for i in range {
        let (attributes, body) = event(i);
        ids.insert(attributes.id.to_string());
        producer.publish(&attributes, &body).await;
    }
    ids
}

fn event_ids(notifications: &[Value]) -> Vec<String> {
    notifications
        .iter()
        .map(|n| n["event_id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn pause_and_resume_need_the_admin_token_and_are_documented() {
    let backends = Backends::new().await;
    let app = spawn_app(&backends.config()).await;
    for action in ["pause", "resume"] {
        assert_eq!(
            control(&app, action, None).await.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            control(&app, action, Some("wrong")).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(status(&app).await["state"], "running");
    let openapi: Value = app
        .get("/openapi.json", None)
        .await
        .json()
        .await
        .expect("openapi");
    for path in ["/consumer/pause", "/consumer/resume", "/consumer/status"] {
        assert!(openapi["paths"][path].is_object(), "{path} documented");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_paused_consumer_delivers_nothing_and_resume_delivers_each_event_once() {
    let backends = Backends::new().await;
    let app = spawn_app(&backends.config()).await;
    let mut expected = publish(&backends, 0..1).await;
    assert!(app.wait_delivered(1.0).await, "running before the pause");
    let assigned = eventually(WAIT, || async {
        status(&app).await["partitions"]
            .as_array()
            .is_some_and(|p| p.len() == 3)
    })
    .await;
    assert!(assigned, "3 partitions assigned");
    // Let the first event's offset be committed, so lag counts only what follows.
    let committed = eventually(WAIT, || async { status(&app).await["total_lag"] == 0 }).await;
    assert!(committed, "lag 0 before the pause");

    let paused = control(&app, "pause", Some(TOKEN)).await;
    assert_eq!(paused.status(), StatusCode::OK);
    assert_eq!(
        paused.json::<Value>().await.expect("json")["state"],
        "paused"
    );
    expected.extend(publish(&backends, 1..11).await);

    let waiting = eventually(WAIT, || async {
        let s = status(&app).await;
        s["state"] == "paused"
            && s["total_lag"] == 10
            && s["partitions"].as_array().map(Vec::len) == Some(3)
    })
    .await;
    assert!(waiting, "lag 10 while paused: {}", status(&app).await);
    let delivered_while_paused = eventually(Duration::from_secs(2), || async {
        app.delivered().await > 1.0
    })
    .await;
    assert!(!delivered_while_paused, "nothing delivered while paused");
    assert_eq!(status(&app).await["delivered"], 1);

    let resumed = control(&app, "resume", Some(TOKEN)).await;
    assert_eq!(resumed.status(), StatusCode::OK);
    assert_eq!(
        resumed.json::<Value>().await.expect("json")["state"],
        "running"
    );
    assert!(
        app.wait_delivered(11.0).await,
        "the 10 waiting events delivered"
    );
    let drained = eventually(WAIT, || async { status(&app).await["total_lag"] == 0 }).await;
    assert!(drained, "lag back to 0 after resume");
    let ids = event_ids(&app.notifications().await);
    assert_eq!(ids.len(), 11, "each event once");
    assert_eq!(ids.into_iter().collect::<HashSet<_>>(), expected);
    assert_eq!(app.duplicates().await, 0.0);
    assert_eq!(status(&app).await["state"], "running");
    app.stop().await;
}

#[tokio::test]
async fn partitions_assigned_by_a_later_rebalance_stay_paused() {
    let backends = Backends::new().await;
    let config = backends.config();
    let first = spawn_app(&config).await;
    let assigned = eventually(WAIT, || async {
        status(&first).await["partitions"]
            .as_array()
            .is_some_and(|p| p.len() == 3)
    })
    .await;
    assert!(assigned, "the first instance owns all 3 partitions");
    assert_eq!(
        control(&first, "pause", Some(TOKEN)).await.status(),
        StatusCode::OK
    );
    // A second member joins and leaves: two rebalances hand partitions back to `first`.
    let second = spawn_app(&config).await;
    let shared = eventually(WAIT, || async {
        let p = status(&second).await["partitions"].as_array().map(Vec::len);
        p.is_some_and(|n| n > 0)
    })
    .await;
    assert!(shared, "the second instance gets partitions");
    second.stop().await;
    let back = eventually(WAIT, || async {
        status(&first).await["partitions"]
            .as_array()
            .is_some_and(|p| p.len() == 3)
    })
    .await;
    assert!(back, "all 3 partitions back with the first instance");

    let expected = publish(&backends, 0..6).await;
    let waiting = eventually(WAIT, || async { status(&first).await["total_lag"] == 6 }).await;
    assert!(waiting, "lag 6 while paused: {}", status(&first).await);
    let delivered_while_paused = eventually(Duration::from_secs(2), || async {
        first.delivered().await > 0.0
    })
    .await;
    assert!(
        !delivered_while_paused,
        "reassigned partitions stayed paused"
    );

    assert_eq!(
        control(&first, "resume", Some(TOKEN)).await.status(),
        StatusCode::OK
    );
    assert!(first.wait_delivered(6.0).await, "delivered after resume");
    let ids = event_ids(&first.notifications().await);
    assert_eq!(ids.len(), 6);
    assert_eq!(ids.into_iter().collect::<HashSet<_>>(), expected);
    first.stop().await;
}

/// Through the Kubernetes API server's pod proxy the `Authorization` header never arrives
/// (the API server removes it), so the token is also accepted in `X-Admin-Token`.
#[tokio::test]
async fn the_admin_token_is_also_accepted_in_x_admin_token() {
    let backends = Backends::new().await;
    let app = spawn_app(&backends.config()).await;
    let pause = |token: &'static str| {
        app.client
            .post(app.url("/consumer/pause"))
            .header("x-admin-token", token)
            .send()
    };
    assert_eq!(
        pause("wrong").await.expect("request").status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(status(&app).await["state"], "running");
    assert_eq!(
        pause(TOKEN).await.expect("request").status(),
        StatusCode::OK
    );
    assert_eq!(status(&app).await["state"], "paused");
    app.stop().await;
}
