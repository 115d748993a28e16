//! GET /users/{id} and GET /users/: admin only, keyset pagination.

mod helpers;

use std::collections::HashSet;

use helpers::{Backends, TOKEN, spawn_app};
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn user_endpoints_need_the_admin_token() {
    let backends = Backends::new().await;
    let app = spawn_app(backends.config()).await;

    for path in [
        "/users/",
        "/users",
        "/users/01a20896-c02e-70f0-9bd4-90fc7696cc5e",
    ] {
        let anonymous = app.get(path, None).await;
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
        assert_eq!(
            app.get(path, Some("wrong")).await.status(),
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
    assert_eq!(
        app.get("/users/", Some(TOKEN)).await.status(),
        StatusCode::OK
    );
    app.stop().await;
}

#[tokio::test]
async fn without_a_configured_token_admin_endpoints_are_closed() {
    let backends = Backends::new().await;
    let mut config = backends.config();
    config.common.admin_token = None;
    let app = spawn_app(config).await;

    assert_eq!(
        app.get("/users/", Some("")).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get("/users/", Some("anything")).await.status(),
        StatusCode::FORBIDDEN
    );
    app.stop().await;
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_404_and_400() {
    let backends = Backends::new().await;
    let app = spawn_app(backends.config()).await;
    let unknown = app
        .get("/users/01a20896-c02e-70f0-9bd4-90fc7696cc5e", Some(TOKEN))
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.get("/users/not-a-uuid", Some(TOKEN)).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.get("/users/?limit=abc", Some(TOKEN)).await.status(),
        StatusCode::BAD_REQUEST
    );
    app.stop().await;
}

#[tokio::test]
async fn pages_walk_every_user_once_in_registration_order() {
    let backends = Backends::new().await;
    let app = spawn_app(backends.config()).await;
    let mut registered = Vec::new();
    for i in 0..7 {
        let body: Value = app
            .register(&format!("User {i}"), &format!("u{i}@example.com"))
            .await
            .json()
            .await
            .expect("json");
        registered.push(body["user_id"].as_str().expect("id").to_owned());
    }

    let mut seen = Vec::new();
    let mut path = "/users/?limit=3".to_owned();
    loop {
        let page: Value = app
            .get(&path, Some(TOKEN))
            .await
            .json()
            .await
            .expect("json");
        let users = page["users"].as_array().expect("users");
        assert!(users.len() <= 3);
        seen.extend(
            users
                .iter()
                .map(|u| u["user_id"].as_str().expect("id").to_owned()),
        );
        match page["next_after"].as_str() {
            Some(after) => path = format!("/users/?limit=3&after={after}"),
            None => break,
        }
    }

    assert_eq!(seen, registered);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 7);
    app.stop().await;
}
