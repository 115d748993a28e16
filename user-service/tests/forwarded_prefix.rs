//! Behind the gateway: the prefix Traefik strips (`X-Forwarded-Prefix`) comes back in the
//! links the service hands out, from trusted proxies only; the API docs use relative URLs.

mod helpers;

use helpers::{Backends, spawn_app};
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use serde_json::{Value, json};

async fn register_behind(
    app: &helpers::TestApp,
    prefix: &str,
    email: &str,
) -> (StatusCode, String, String) {
    let response = app
        .client
        .post(app.url("/register/"))
        .header("x-forwarded-prefix", prefix)
        .json(&json!({"user_name": "Behind", "email": email}))
        .send()
        .await
        .expect("request");
    let status = response.status();
    let location = response.headers()[LOCATION]
        .to_str()
        .expect("ascii")
        .to_owned();
    let body: Value = response.json().await.expect("json");
    (
        status,
        location,
        body["user_id"].as_str().expect("id").to_owned(),
    )
}

async fn servers(app: &helpers::TestApp, prefix: Option<&str>) -> Value {
    let mut request = app.client.get(app.url("/openapi.json"));
    if let Some(prefix) = prefix {
        request = request.header("x-forwarded-prefix", prefix);
    }
    let document: Value = request
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    document["servers"].clone()
}

#[tokio::test]
async fn a_trusted_gateway_prefix_leads_the_location_and_the_servers() {
    let backends = Backends::new().await;
    let mut config = backends.config();
    // The test client connects from 127.0.0.1, acting as the gateway.
    config.common.trusted_proxies = vec!["127.0.0.0/8".parse().expect("net")];
    let app = spawn_app(config).await;

    let (status, location, id) = register_behind(&app, "/api/users", "behind@example.com").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(location, format!("/api/users/users/{id}"));
    // A trailing slash is not doubled.
    let (_, location, id) = register_behind(&app, "/api/users/", "slash@example.com").await;
    assert_eq!(location, format!("/api/users/users/{id}"));
    // Without the header: the service's own path.
    let direct = app.register("Direct", "direct@example.com").await;
    assert_eq!(direct.status(), StatusCode::CREATED);
    let location = direct.headers()[LOCATION]
        .to_str()
        .expect("ascii")
        .to_owned();
    let body: Value = direct.json().await.expect("json");
    assert_eq!(
        location,
        format!("/users/{}", body["user_id"].as_str().expect("id"))
    );

    // Anything but a plain absolute path is no prefix.
    for bad in [
        "api/users",
        "/api/../admin",
        "//evil.example",
        "/a b",
        "/api/%2e%2e",
        "https://evil.example/x",
    ] {
        let (status, location, id) =
            register_behind(&app, bad, &format!("bad-{}@example.com", bad.len())).await;
        assert_eq!(status, StatusCode::CREATED, "{bad}");
        assert_eq!(
            location,
            format!("/users/{id}"),
            "prefix {bad:?} must be ignored"
        );
    }

    assert_eq!(
        servers(&app, Some("/api/users")).await,
        json!([{"url": "/api/users"}])
    );
    assert_eq!(servers(&app, None).await, Value::Null);
    app.stop().await;
}

#[tokio::test]
async fn the_prefix_of_an_untrusted_peer_is_ignored() {
    let backends = Backends::new().await;
    let app = spawn_app(backends.config()).await; // no TRUSTED_PROXIES
    let (status, location, id) = register_behind(&app, "/api/users", "untrusted@example.com").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(location, format!("/users/{id}"));
    assert_eq!(servers(&app, Some("/api/users")).await, Value::Null);
    app.stop().await;
}

#[tokio::test]
async fn the_swagger_ui_uses_relative_urls() {
    let backends = Backends::new().await;
    let app = spawn_app(backends.config()).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let redirect = client.get(app.url("/docs")).send().await.expect("request");
    assert_eq!(redirect.status(), StatusCode::SEE_OTHER);
    assert_eq!(redirect.headers()[LOCATION], "docs/");
    let page = app
        .client
        .get(app.url("/docs/"))
        .send()
        .await
        .expect("request");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.text()
            .await
            .expect("text")
            .contains("swagger-initializer.js")
    );
    let init = app
        .client
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("text");
    assert!(init.contains("\"../openapi.json\""), "{init}");
    assert!(!init.contains("\"/openapi.json\""), "{init}");
    let missing = app
        .client
        .get(app.url("/docs/no-such-file.js"))
        .send()
        .await
        .expect("request");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    app.stop().await;
}
