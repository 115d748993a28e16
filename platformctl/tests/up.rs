//! `platformctl up` as a newcomer runs it: one process, both services, Ctrl-C stops it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use service_kit::testing::{Backend, TestDatabase, eventually, metric_value};

const TOKEN: &str = "up-test-token";

/// Starts the binary on free ports and reads the two service URLs from its banner.
/// The rest of the output is drained by a thread and returned when the process ends.
fn start(
    extra: &[String],
    data_dir: &std::path::Path,
) -> (Child, String, String, std::thread::JoinHandle<String>) {
    // From the workspace root, as `cargo run --release` runs it: the committed model is
    // found at its default path, models/wine-forest.onnx.
    let mut child = Command::new(env!("CARGO_BIN_EXE_platformctl"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .env_remove("MODEL_PATH")
        .args([
            "up",
            "--user-addr",
            "127.0.0.1:0",
            "--notification-addr",
            "127.0.0.1:0",
            "--prediction-addr",
            "127.0.0.1:0",
            "--admin-token",
            TOKEN,
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn platformctl");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut urls = Vec::new();
    for line in stdout.by_ref() {
        let line = line.expect("line");
        let service = line.trim_start();
        let names_a_service =
            service.starts_with("user-service") || service.starts_with("notification-service");
        if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://"))
            && names_a_service
        {
            urls.push(url.to_owned());
        }
        if urls.len() == 2 {
            break;
        }
    }
    assert_eq!(urls.len(), 2, "the banner names both services");
    let rest =
        std::thread::spawn(move || stdout.map_while(Result::ok).collect::<Vec<_>>().join("\n"));
    (child, urls[0].clone(), urls[1].clone(), rest)
}

async fn real_backend_flags() -> Vec<String> {
    match Backend::from_env() {
        Backend::Embedded => Vec::new(),
        Backend::Real { kafka_brokers, .. } => {
            let backend = Backend::from_env();
            let users = TestDatabase::create(&backend).await;
            let notifications = TestDatabase::create(&backend).await;
            let topic = format!("up-{}", uuid::Uuid::new_v4().simple());
            vec![
                format!("--users-database-url={}", users.url),
                format!("--notifications-database-url={}", notifications.url),
                format!("--kafka-bootstrap-servers={kafka_brokers}"),
                format!("--kafka-topic={topic}"),
            ]
        }
    }
}

#[tokio::test]
async fn up_serves_both_services_and_stops_cleanly_on_ctrl_c() {
    let data = tempfile::tempdir().expect("tempdir");
    let (mut child, users, notifications, output) = start(&real_backend_flags().await, data.path());
    let http = reqwest::Client::new();
    let register = |name: String, email: String, http: reqwest::Client, users: String| async move {
        http.post(format!("{users}/register/"))
            .json(&json!({"user_name": name, "email": email}))
            .send()
            .await
            .expect("request")
    };

    for i in 0..25 {
        let response = register(
            format!("User {i}"),
            format!("user{i}@example.com"),
            http.clone(),
            users.clone(),
        )
        .await;
        assert_eq!(response.status(), 201);
    }
    let duplicate = register(
        "Again".into(),
        "USER1@Example.com".into(),
        http.clone(),
        users.clone(),
    )
    .await;
    assert_eq!(duplicate.status(), 409);
    let bad_email = register(
        "Bad".into(),
        "not-an-email".into(),
        http.clone(),
        users.clone(),
    )
    .await;
    assert_eq!(bad_email.status(), 422);
    let broken = http
        .post(format!("{users}/register/"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .expect("request");
    assert_eq!(broken.status(), 400);
    let text = http
        .post(format!("{users}/register/"))
        .header("content-type", "text/plain")
        .body("hi")
        .send()
        .await
        .expect("request");
    assert_eq!(text.status(), 415);
    assert_eq!(
        http.get(format!("{users}/users/"))
            .send()
            .await
            .expect("request")
            .status(),
        401
    );

    let delivered = r#"events_consumed_total{event_type="com.platform.user.registered.v1",outcome="delivered"}"#;
    let all = eventually(Duration::from_secs(60), || async {
        let text = http
            .get(format!("{notifications}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        metric_value(&text, delivered) == 25.0
    })
    .await;
    assert!(all, "all 25 registrations delivered exactly once");
    let list: Vec<Value> = http
        .get(format!("{notifications}/notifications?limit=100"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(list.len(), 25);

    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(interrupted.success());
    let status = child.wait().expect("wait");
    assert!(status.success(), "clean exit on Ctrl-C: {status}");
    assert!(output.join().expect("output").contains("platform stopped"));
}
