//! docs/deployment.md's "docker compose" section, through the published ports.

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, ensure};
use prediction_service::model::onnx::{ModelProto, StringStringEntryProto};
use prost::Message as _;
use serde_json::{Value, json};
use service_kit::testing::eventually;

use crate::docker::{ADMIN_TOKEN, Project};

/// Traefik on the default GATEWAY_PORT.
pub const GATEWAY: &str = "http://127.0.0.1";
const PROMETHEUS: &str = "http://127.0.0.1:9090";
const ADMINER: &str = "http://127.0.0.1:8081";
/// The first wine of scikit-learn's data set, class 0 (docs/deployment.md).
const FIRST_WINE: [f64; 13] = [
    14.23, 1.71, 2.43, 15.6, 127.0, 2.8, 3.06, 0.28, 2.29, 5.64, 1.04, 3.92, 1065.0,
];
const WAIT: Duration = Duration::from_secs(60);

/// The e-mail registered by `register`, whose notification `notification` looks for.
static REGISTERED: OnceLock<String> = OnceLock::new();

/// `POST {base}/api/users/register/` of a new user: the status, and the answer.
pub async fn register_at(
    project: &Project,
    base: &str,
) -> anyhow::Result<(u16, reqwest::Response)> {
    let email = format!("compose-{}@example.com", uuid::Uuid::new_v4());
    let response = project
        .http
        .post(format!("{base}/api/users/register/"))
        .json(&json!({ "user_name": "Compose Walkthrough", "email": email }))
        .send()
        .await?;
    Ok((response.status().as_u16(), response))
}

pub async fn register(project: &Project) -> anyhow::Result<String> {
    let (status, response) = register_at(project, GATEWAY).await?;
    ensure!(status == 201, "POST /api/users/register/ answered {status}");
    let location = response
        .headers()
        .get("location")
        .context("no Location header")?
        .to_str()?
        .to_owned();
    let created: Value = response.json().await?;
    ensure!(
        location.starts_with("/api/users/users/"),
        "Location {location} does not lead back through the gateway"
    );
    let url = format!("{GATEWAY}{location}");
    let anonymous = project.http.get(&url).send().await?.status();
    ensure!(
        anonymous == 401,
        "GET {location} without the token answered {anonymous}"
    );
    let fetched = json_of(project.http.get(&url).bearer_auth(ADMIN_TOKEN)).await?;
    ensure!(
        fetched["email"] == created["email"],
        "GET {location} answered {fetched}"
    );
    let email = created["email"].as_str().context("no email")?.to_owned();
    REGISTERED.get_or_init(|| email);
    Ok(format!("201, Location {location} → 200"))
}

pub async fn notification(project: &Project) -> anyhow::Result<String> {
    let email = REGISTERED.get().context("no user was registered")?;
    let url = format!("{GATEWAY}/api/notifications/notifications?limit=50");
    let listed = eventually(WAIT, || async {
        let response = project.http.get(&url).bearer_auth(ADMIN_TOKEN).send().await;
        match response {
            Ok(r) => r
                .text()
                .await
                .is_ok_and(|body| body.contains(email.as_str())),
            Err(_) => false,
        }
    })
    .await;
    ensure!(
        listed,
        "{email} not among the notifications within {WAIT:?}"
    );
    Ok(String::new())
}

pub async fn prediction(project: &Project) -> anyhow::Result<String> {
    let predict = format!("{GATEWAY}/api/predictions/predict");
    let answer = json_of(
        project
            .http
            .post(predict)
            .json(&json!({ "features": FIRST_WINE })),
    )
    .await?;
    ensure!(
        answer["prediction"] == 0 && answer["status"] == "success",
        "the first wine was answered {answer}"
    );
    let model = model(project).await?;
    Ok(format!(
        "class 0, model {} version {}",
        model["name"], model["version"]
    ))
}

async fn model(project: &Project) -> anyhow::Result<Value> {
    json_of(project.http.get(format!("{GATEWAY}/api/predictions/model"))).await
}

/// The JSON body of a 2xx answer.
async fn json_of(request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    Ok(request.send().await?.error_for_status()?.json().await?)
}

/// Prometheus' own API: every scrape job of prometheus.yml has its target up.
pub async fn prometheus_targets(project: &Project) -> anyhow::Result<String> {
    let jobs = [
        "notification-service",
        "prediction-service",
        "prometheus",
        "traefik",
        "user-service",
    ];
    let last = std::sync::Mutex::new(Value::Null);
    let all_up = eventually(Duration::from_secs(90), || async {
        let Ok(response) = project
            .http
            .get(format!("{PROMETHEUS}/api/v1/targets"))
            .send()
            .await
        else {
            return false;
        };
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        let targets = answer["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        *last.lock().expect("lock") = answer;
        let mut up: Vec<&str> = targets
            .iter()
            .filter(|t| t["health"] == "up")
            .filter_map(|t| t["labels"]["job"].as_str())
            .collect();
        up.sort_unstable();
        up == jobs && targets.len() == jobs.len()
    })
    .await;
    ensure!(
        all_up,
        "not every target up: {}",
        last.lock().expect("lock")
    );
    Ok(jobs.join(", "))
}

pub async fn generate_test_data(project: &Project) -> anyhow::Result<String> {
    let out = project.run("./generate-test-data.sh", &["40"], &[]).await?;
    Ok(out.lines().last().unwrap_or("").to_owned())
}

/// The committed model with another version property (new bytes, the same trees),
/// written beside it and renamed over it, as a retraining would.
pub async fn model_swap(project: &Project) -> anyhow::Result<String> {
    let path = project.path("models/wine-forest.onnx");
    let staged = project.path("models/.wine-forest.onnx.new");
    let committed = std::fs::read(&path)?;
    let mut proto = ModelProto::decode(committed.as_slice())?;
    proto.metadata_props.retain(|p| p.key != "version");
    proto.metadata_props.push(StringStringEntryProto {
        key: "version".into(),
        value: "compose-swap".into(),
    });
    std::fs::write(&staged, proto.encode_to_vec())?;
    std::fs::rename(&staged, &path)?;
    let swapped = serves_version(project, "compose-swap").await;
    std::fs::write(&staged, &committed)?;
    std::fs::rename(&staged, &path)?;
    ensure!(swapped, "the swapped model was not served within {WAIT:?}");
    let committed_version = ModelProto::decode(committed.as_slice())?
        .metadata_props
        .into_iter()
        .find(|p| p.key == "version")
        .map(|p| p.value)
        .context("the committed model has no version")?;
    let restored = serves_version(project, &committed_version).await;
    ensure!(
        restored,
        "the committed model (version {committed_version}) did not come back"
    );
    Ok(format!(
        "version compose-swap served, then {committed_version} again"
    ))
}

async fn serves_version(project: &Project, version: &str) -> bool {
    eventually(WAIT, || async {
        model(project).await.is_ok_and(|m| m["version"] == version)
    })
    .await
}

/// Adminer's login form with server mysql, user root: the database list shows.
pub async fn adminer(project: &Project) -> anyhow::Result<String> {
    project
        .compose(&["--profile", "tools", "up", "-d", "--wait", "adminer"])
        .await?;
    let jar = project.path("adminer-cookies.txt");
    let jar = jar.to_str().context("path")?;
    // A first visit gets the session cookie the login form needs.
    project
        .run(
            "curl",
            &["-sS", "-c", jar, "-b", jar, "-o", "/dev/null", ADMINER],
            &[],
        )
        .await?;
    let page = project
        .run(
            "curl",
            &[
                "-sS",
                "-L",
                "-c",
                jar,
                "-b",
                jar,
                "--data-urlencode",
                "auth[driver]=server",
                "--data-urlencode",
                "auth[server]=mysql",
                "--data-urlencode",
                "auth[username]=root",
                "--data-urlencode",
                "auth[password]=root_pw",
                "--data-urlencode",
                "auth[db]=",
                ADMINER,
            ],
            &[],
        )
        .await?;
    ensure!(
        page.contains("db=users") && page.contains("db=notifications"),
        "no database list after the login: {}",
        crate::docker::tail(&page)
    );
    Ok("databases users and notifications listed".into())
}
