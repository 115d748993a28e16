//! `platformctl load --verify` against both services built in this process: 200
//! registrations, each notified exactly once. And the prediction targets: every request
//! answered with scikit-learn's class, over HTTP and over Kafka request/reply.

use std::process::Stdio;

use serde_json::Value;
use service_kit::testing::{Backend, TestDatabase, TestKafka, TestServer};

const TOKEN: &str = "load-token";

async fn user_service(db: &TestDatabase, kafka: &TestKafka) -> TestServer {
    let mut config = user_service::Config::new(db.url.clone(), kafka.args.clone());
    config.common.admin_token = Some(TOKEN.into());
    config.outbox_sweep_interval_ms = 100;
    let app = user_service::Application::build(&config)
        .await
        .expect("user-service");
    TestServer::start(app.local_addr(), |s| app.run(s))
}

async fn notification_service(db: &TestDatabase, kafka: &TestKafka) -> TestServer {
    let mut config = notification_service::Config::new(db.url.clone(), kafka.args.clone());
    config.common.admin_token = Some(TOKEN.into());
    config.group_id = kafka.group.clone();
    let app = notification_service::Application::build(&config)
        .await
        .expect("notification-service");
    TestServer::start(app.local_addr(), |s| app.run(s))
}

/// Runs `platformctl load …` against the two event services and returns its report.
async fn load(users: &TestServer, notifications: &TestServer, extra: &[&str]) -> Value {
    let url = users.url("");
    let notifications_url = notifications.url("");
    let mut args = vec!["--url", &url, "--notifications-url", &notifications_url];
    args.extend(["--admin-token", TOKEN]);
    args.extend(extra);
    platformctl_load(&args).await
}

/// Runs `platformctl load ARGS` and returns its JSON report.
async fn platformctl_load(args: &[&str]) -> Value {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_platformctl"))
        .arg("load")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run platformctl load");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "platformctl load failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_load_run_notifies_every_user_exactly_once() {
    let backend = Backend::from_env();
    let users_db = TestDatabase::create(&backend).await;
    let notifications_db = TestDatabase::create(&backend).await;
    let kafka = TestKafka::create(&backend, 3).await;
    let users = user_service(&users_db, &kafka).await;
    let notifications = notification_service(&notifications_db, &kafka).await;

    let args = ["--count", "200", "--concurrency", "8", "--verify", "--json"];
    let report = load(&users, &notifications, &args).await;

    assert_eq!(report["requests"], 200, "{report:#}");
    assert_eq!(report["created"], 200, "{report:#}");
    assert_eq!(report["errors"], 0, "{report:#}");
    assert!(report["throughput_per_second"].as_f64() > Some(0.0));
    assert!(report["latency_ms"]["p99"].as_f64() >= report["latency_ms"]["p50"].as_f64());
    let verify = &report["verify"];
    assert_eq!(verify["delivered"], 200, "{report:#}");
    assert_eq!(verify["missing"], 0, "{report:#}");
    assert_eq!(verify["duplicated"], 0, "{report:#}");
    assert_eq!(verify["exactly_once"], true, "{report:#}");
    users.stop().await;
    notifications.stop().await;
}

#[tokio::test]
async fn a_run_id_that_would_break_the_request_body_is_refused() {
    // No service is needed: the run id is checked before the first request.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_platformctl"))
        .args(["load", "--url", "http://127.0.0.1:9", "--count", "1"])
        .args(["--run-id", r#"x","email":"evil@example.com"#])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run platformctl load");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "accepted: {stderr}");
    assert!(stderr.contains("--run-id must be"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prediction_load_gets_every_answer_right_over_http_and_kafka() {
    let kafka = TestKafka::create(&Backend::from_env(), 3).await;
    let results = format!("{}.results", kafka.args.topic);
    kafka.create_topics(&[results.as_str()], 3).await;
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/wine-forest.onnx");
    let mut config = prediction_service::Config::new(&kafka.args, model);
    config.group_id = kafka.group.clone();
    config.result_topic = results.clone();
    config.reply_topic_prefix = results.clone();
    let app = prediction_service::Application::build(&config)
        .await
        .expect("prediction-service");
    let service = TestServer::start(app.local_addr(), |s| app.run(s));

    let url = service.url("");
    let brokers = kafka.args.bootstrap_servers.clone();
    let runs = [
        ("predict-http", vec!["--url", url.as_str()]),
        (
            "predict-kafka",
            vec![
                "--brokers",
                brokers.as_str(),
                "--request-topic",
                kafka.args.topic.as_str(),
                "--reply-topic",
                results.as_str(),
            ],
        ),
    ];
    for (target, mut args) in runs {
        args.extend(["--target", target, "--count", "300", "-c", "8", "--json"]);
        let report = platformctl_load(&args).await;
        assert_eq!(report["target"], target, "{report:#}");
        assert_eq!(report["requests"], 300, "{report:#}");
        assert_eq!(
            report["created"], 300,
            "every answer with the right class: {report:#}"
        );
        assert_eq!(report["errors"], 0, "{report:#}");
        assert!(report["latency_ms"]["p99"].as_f64() >= report["latency_ms"]["p50"].as_f64());
    }
    service.stop().await;
}
