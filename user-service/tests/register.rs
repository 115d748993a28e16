//! POST /register/ as a client sees it.

mod helpers;

use helpers::{Backends, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn problem(response: reqwest::Response) -> Value {
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    response.json().await.expect("problem body")
}

#[tokio::test]
async fn a_valid_registration_answers_201_with_location_and_the_user() {
    let backends = Backends::new().await;
    let app = spawn_app(backends.config()).await;

    let response = app.register("  Ada Lovelace ", "ada@example.com").await;

    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["user_name"], "Ada Lovelace");
    assert_eq!(body["email"], "ada@example.com");
    assert_eq!(
        location,
        format!("/users/{}", body["user_id"].as_str().expect("id"))
    );
    let stored: Value = app
        .get(&location, Some(helpers::TOKEN))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(stored, body);
    assert_eq!(app.metric("users_registered_total").await, 1.0);
    app.stop().await;
}

#[tokio::test]
async fn the_same_email_in_other_letter_case_is_409() {
    let backends = Backends::new().await;
    let app = spawn_app(backends.config()).await;

    assert_eq!(
        app.register("Ada", "ada@example.com").await.status(),
        StatusCode::CREATED
    );
    let response = app.register("Ada Again", "ADA@Example.COM").await;

    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(problem(response).await["status"], 409);
    app.stop().await;
}

#[tokio::test]
async fn concurrent_registrations_of_one_email_create_exactly_one_user() {
    let backends = Backends::new().await;
    let app = spawn_app(backends.config()).await;

    let names: Vec<String> = (0..100).map(|i| format!("Racer {i}")).collect();
    let attempts = names
        .iter()
        .map(|name| app.register(name, "race@example.com"));
    let statuses: Vec<_> = futures::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status())
        .collect();

    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let conflicts = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, conflicts), (1, 99), "{statuses:?}");
    app.stop().await;
}

#[tokio::test]
async fn invalid_fields_are_422_with_an_error_per_field() {
    let backends = Backends::new().await;
    let app = spawn_app(backends.config()).await;

    let cases = [
        (
            json!({"user_name": "Ada", "email": "not-an-email"}),
            vec!["email"],
        ),
        (
            json!({"user_name": "   ", "email": "ada@example.com"}),
            vec!["user_name"],
        ),
        (
            json!({"user_name": "a\u{7}b", "email": "x"}),
            vec!["email", "user_name"],
        ),
        (
            json!({"user_name": "x".repeat(101), "email": format!("{}@e.com", "a".repeat(250))}),
            vec!["email", "user_name"],
        ),
    ];
    for (body, fields) in cases {
        let response = app.post_json("/register/", &body).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}"
        );
        let problem = problem(response).await;
        let mut reported: Vec<_> = problem["errors"]
            .as_object()
            .expect("errors")
            .keys()
            .cloned()
            .collect();
        reported.sort();
        assert_eq!(reported, fields, "{body}");
    }
    assert_eq!(app.metric("users_registered_total").await, 0.0);
    app.stop().await;
}

#[tokio::test]
async fn malformed_unsupported_and_oversized_bodies_get_clear_errors() {
    let backends = Backends::new().await;
    let app = spawn_app(backends.config()).await;

    let malformed = app.post_raw("application/json", "{\"user_name\": ").await;
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(problem(malformed).await["status"], 400);

    let not_json = app.post_raw("text/plain", "user_name=ada").await;
    assert_eq!(not_json.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    problem(not_json).await;

    let huge = format!(
        "{{\"user_name\": \"{}\", \"email\": \"a@b.co\"}}",
        "x".repeat(17 * 1024)
    );
    let too_large = app.post_raw("application/json", huge).await;
    assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
    problem(too_large).await;

    let missing_field = app
        .post_json("/register/", &json!({"user_name": "Ada"}))
        .await;
    assert_eq!(missing_field.status(), StatusCode::UNPROCESSABLE_ENTITY);
    problem(missing_field).await;
    app.stop().await;
}

#[tokio::test]
async fn unknown_fields_are_ignored_and_the_client_cannot_choose_the_id() {
    let backends = Backends::new().await;
    let app = spawn_app(backends.config()).await;
    let chosen = "00000000-0000-7000-8000-000000000001";

    let response = app
        .post_json("/register", &json!({"user_name": "Eve", "email": "eve@example.com", "user_id": chosen, "admin": true}))
        .await;

    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.expect("json");
    assert_ne!(body["user_id"], chosen);
    app.stop().await;
}

#[tokio::test]
async fn unknown_paths_are_problem_json_404() {
    let backends = Backends::new().await;
    let app = spawn_app(backends.config()).await;
    let response = app.get("/nope", None).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    problem(response).await;
    app.stop().await;
}

async fn register_with_key(
    app: &helpers::TestApp,
    key: &str,
    body: &Value,
) -> (StatusCode, Option<String>, String) {
    let response = app
        .client
        .post(app.url("/register/"))
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .expect("request");
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    (status, location, response.text().await.expect("body"))
}

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_gets_the_same_answer_even_after_a_restart() {
    let backends = Backends::new().await;
    let app = spawn_app(backends.config()).await;
    let body = json!({"user_name": "Retry", "email": "retry@example.com"});

    let first = register_with_key(&app, "key-1", &body).await;
    let second = register_with_key(&app, "key-1", &body).await;
    app.stop().await;
    let app = spawn_app(backends.config()).await;
    let after_restart = register_with_key(&app, "key-1", &body).await;

    assert_eq!(first.0, StatusCode::CREATED);
    assert!(first.1.is_some());
    assert_eq!(second, first);
    assert_eq!(after_restart, first);
    let page: Value = app
        .get("/users/", Some(helpers::TOKEN))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        page["users"].as_array().expect("users").len(),
        1,
        "registered once"
    );
    app.stop().await;
}

#[tokio::test]
async fn idempotency_keys_are_forgotten_after_their_time_to_live() {
    let backends = Backends::new().await;
    let mut config = backends.config();
    config.idempotency_key_ttl = std::time::Duration::from_secs(5);
    config.housekeeping.housekeeping_interval = std::time::Duration::from_millis(200);
    config.housekeeping.housekeeping_batch_rows = 2;
    let app = spawn_app(config).await;
    let bodies: Vec<Value> = (0..3)
        .map(|i| json!({"user_name": format!("Expiring {i}"), "email": format!("expiring{i}@example.com")}))
        .collect();
    let mut first = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let answer = register_with_key(&app, &format!("ttl-{i}"), body).await;
        assert_eq!(answer.0, StatusCode::CREATED);
        first.push(answer);
    }
    assert_eq!(register_with_key(&app, "ttl-0", &bodies[0]).await, first[0]);

    // Once forgotten, a retry is a new registration: its email is taken, so 409.
    for (i, body) in bodies.iter().enumerate() {
        let forgotten =
            service_kit::testing::eventually(std::time::Duration::from_secs(30), || async {
                register_with_key(&app, &format!("ttl-{i}"), body).await.0 == StatusCode::CONFLICT
            })
            .await;
        assert!(
            forgotten,
            "key ttl-{i} was still remembered after its time to live"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn concurrent_retries_with_one_key_register_once_and_agree() {
    let backends = Backends::new().await;
    let app = spawn_app(backends.config()).await;
    let body = json!({"user_name": "Storm", "email": "storm@example.com"});

    let attempts = (0..10).map(|_| register_with_key(&app, "storm-key", &body));
    let answers = futures::future::join_all(attempts).await;

    for answer in &answers {
        assert_eq!(answer, &answers[0]);
    }
    assert_eq!(answers[0].0, StatusCode::CREATED);
    assert_eq!(app.metric("users_registered_total").await, 1.0);
    app.stop().await;
}

#[tokio::test]
async fn a_reused_key_with_another_body_is_422_and_a_malformed_key_is_400() {
    let backends = Backends::new().await;
    let app = spawn_app(backends.config()).await;
    let first = register_with_key(
        &app,
        "k",
        &json!({"user_name": "A", "email": "a@example.com"}),
    )
    .await;
    assert_eq!(first.0, StatusCode::CREATED);

    let reused = register_with_key(
        &app,
        "k",
        &json!({"user_name": "B", "email": "b@example.com"}),
    )
    .await;
    assert_eq!(reused.0, StatusCode::UNPROCESSABLE_ENTITY);
    let too_long = register_with_key(
        &app,
        &"x".repeat(256),
        &json!({"user_name": "C", "email": "c@example.com"}),
    )
    .await;
    assert_eq!(too_long.0, StatusCode::BAD_REQUEST);
    assert_eq!(app.metric("users_registered_total").await, 1.0);
    app.stop().await;
}
