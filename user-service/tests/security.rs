//! Hostile input and access control: every answer is a clear 4xx with security headers,
//! a flood is rate-limited per client, and the admin token can come from a file.

mod helpers;

use helpers::{Backends, TOKEN, spawn_app};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn every_response_carries_security_headers() {
    let backends = Backends::new().await;
    let app = spawn_app(backends.config()).await;
    for response in [
        app.register("Sec", "sec@example.com").await,
        app.get("/nope", None).await,
        app.get("/users/", None).await,
        app.get("/health/live", None).await,
    ] {
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert!(headers.contains_key("content-security-policy"));
        assert!(headers.contains_key("x-request-id"));
    }
    app.stop().await;
}

#[tokio::test]
async fn oversized_targets_and_headers_are_refused() {
    let backends = Backends::new().await;
    let app = spawn_app(backends.config()).await;
    let long = format!("/users/?after={}", "a".repeat(3000));
    assert_eq!(
        app.get(&long, Some(TOKEN)).await.status(),
        StatusCode::URI_TOO_LONG
    );
    let response = app
        .client
        .get(app.url("/health/live"))
        .header("x-padding", "p".repeat(17 * 1024))
        .send()
        .await
        .expect("request");
    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    app.stop().await;
}

#[tokio::test]
async fn a_flood_from_one_client_gets_429_while_others_still_register() {
    let backends = Backends::new().await;
    let mut config = backends.config();
    config.register_rate_limit_per_minute = 60;
    config.register_rate_burst = 5;
    // The test client connects from 127.0.0.1, acting as the trusted gateway.
    config.common.trusted_proxies = vec!["127.0.0.1".parse().expect("ip")];
    let app = spawn_app(config).await;
    let from = |client: &'static str, i: usize| {
        app.client
            .post(app.url("/register/"))
            .header("x-forwarded-for", client)
            .json(
                &json!({"user_name": "Flood", "email": format!("flood-{client}-{i}@example.com")}),
            )
            .send()
    };

    let mut statuses = Vec::new();
    for i in 0..12 {
        statuses.push(from("203.0.113.7", i).await.expect("request").status());
    }
    let other = from("198.51.100.9", 0).await.expect("request");

    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(
        (5..=6).contains(&created),
        "the burst of 5 (plus refill) passes: {statuses:?}"
    );
    assert_eq!(created + limited, 12, "{statuses:?}");
    assert_eq!(
        other.status(),
        StatusCode::CREATED,
        "another client is not affected"
    );
    let limited = from("203.0.113.7", 99).await.expect("request");
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key("retry-after"));
    app.stop().await;
}

/// A gateway keeps its connections to the service alive and reuses one as soon as an
/// answer ends. A 429 is decided from the headers alone; answered before the body has
/// arrived, hyper would close the connection without saying so, and the gateway's next
/// request on it would fail (Traefik answers it 500). The body is therefore read first:
/// each refusal must leave the connection usable, or say `Connection: close`.
#[tokio::test]
async fn a_429_leaves_the_keep_alive_connection_usable() {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let backends = Backends::new().await;
    let mut config = backends.config();
    config.register_rate_limit_per_minute = 1;
    config.register_rate_burst = 1;
    let app = spawn_app(config).await;
    let address = app
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut connection = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    connection.set_nodelay(true).expect("nodelay");
    let mut statuses = Vec::new();
    for i in 0..3 {
        let body = format!(r#"{{"user_name": "Kept", "email": "kept-{i}@example.com"}}"#);
        let head = format!(
            "POST /register/ HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        // The head alone first, as a proxy streaming the body may send it.
        connection
            .write_all(head.as_bytes())
            .await
            .expect("write head");
        let mut answer = vec![0; 8192];
        let early =
            tokio::time::timeout(Duration::from_millis(500), connection.read(&mut answer)).await;
        if let Ok(read) = early {
            let text = String::from_utf8_lossy(&answer[..read.expect("read")]).to_lowercase();
            assert!(
                text.contains("connection: close"),
                "answered before the body arrived, without Connection: close: {text}"
            );
            app.stop().await;
            return;
        }
        connection
            .write_all(body.as_bytes())
            .await
            .expect("write body");
        let read = connection.read(&mut answer).await.expect("read");
        assert!(read > 0, "the connection was closed after {statuses:?}");
        statuses.push(String::from_utf8_lossy(&answer[..12]).into_owned());
    }
    assert_eq!(statuses, ["HTTP/1.1 201", "HTTP/1.1 429", "HTTP/1.1 429"]);
    app.stop().await;
}

#[tokio::test]
async fn the_admin_token_can_come_from_a_mounted_file() {
    let backends = Backends::new().await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("token");
    std::fs::write(&file, "file-token\n").expect("write");
    let mut config = backends.config();
    config.common.admin_token = None;
    config.common.admin_token_file = Some(file);
    let app = spawn_app(config).await;
    assert_eq!(
        app.get("/users/", Some("file-token")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get("/users/", Some(TOKEN)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    app.stop().await;
}

#[tokio::test]
async fn emails_are_stored_with_a_lower_case_domain_and_logs_do_not_need_them() {
    let backends = Backends::new().await;
    let app = spawn_app(backends.config()).await;
    let response = app.register("Case", "Mixed.Case@Example.ORG").await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["email"], "Mixed.Case@example.org");
    assert_eq!(
        app.register("Case", "mixed.case@EXAMPLE.org")
            .await
            .status(),
        StatusCode::CONFLICT
    );
    app.stop().await;
}
