//! One trace follows a registration through Kafka: the user-service's HTTP server span,
//! its outbox produce span, the notification-service's consume span and its delivery
//! span, exported over OTLP/HTTP to a collector running in this test.
//!
//! The services run as separate processes (the binaries next to this test binary), as in
//! production: the OpenTelemetry tracer provider is global to a process, and each process
//! must export under its own `service.name`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use serde_json::{Value, json};
use service_kit::testing::{Backend, TestDatabase, TestKafka, built_binary, eventually, free_port};

const WAIT: Duration = Duration::from_secs(90);
const INCOMING_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const INCOMING_SPAN: &str = "00f067aa0ba902b7";
const LATER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const LATER_SPAN: &str = "b7ad6b7169203331";

/// One span as the collector received it.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    kind: i32,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: HashMap<String, String>,
}

type Spans = Arc<Mutex<Vec<Received>>>;

/// A minimal OTLP/HTTP (protobuf) trace receiver.
struct Collector {
    endpoint: String,
    spans: Spans,
}

impl Collector {
    async fn start() -> Self {
        let spans = Spans::default();
        let app = Router::new()
            .route("/v1/traces", post(receive))
            .with_state(spans.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("collector port");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { endpoint, spans }
    }

    fn trace(&self, trace_id: &str) -> Vec<Received> {
        let spans = self.spans.lock().expect("spans");
        spans
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect()
    }

    /// Trace id of the server span of a `POST /register/` that has no remote parent.
    fn registration_trace_started_here(&self) -> Option<String> {
        let spans = self.spans.lock().expect("spans");
        spans
            .iter()
            .find(|s| {
                s.kind == SpanKind::Server as i32
                    && s.attributes.get("http.route").map(String::as_str) == Some("/register/")
                    && s.parent_span_id.is_empty()
            })
            .map(|s| s.trace_id.clone())
    }
}

async fn receive(State(spans): State<Spans>, body: Bytes) -> impl IntoResponse {
    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
    let mut received = spans.lock().expect("spans");
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .map(|r| attributes(&r.attributes))
            .and_then(|mut a| a.remove("service.name"))
            .unwrap_or_default();
        for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
            received.push(Received {
                service: service.clone(),
                name: span.name,
                kind: span.kind,
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent_span_id: hex(&span.parent_span_id),
                attributes: attributes(&span.attributes),
            });
        }
    }
    (
        [(CONTENT_TYPE, "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

fn attributes(pairs: &[KeyValue]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A service process exporting traces to the collector; killed when dropped.
struct Service {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Service {
    fn spawn(
        name: &str,
        collector: &Collector,
        kafka: &TestKafka,
        logs: &Path,
        envs: &[(&str, String)],
    ) -> Self {
        let port = free_port();
        let log = logs.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(built_binary(name))
            .env("HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("KAFKA_BOOTSTRAP_SERVERS", &kafka.args.bootstrap_servers)
            .env("KAFKA_TOPIC", &kafka.args.topic)
            .env("ADMIN_TOKEN", "tracing-token")
            .env("RUST_LOG", "info")
            .env("LOG_FORMAT", "json")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint)
            // Export within a fraction of a second instead of the default 5 s.
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .env_remove("OTEL_SERVICE_NAME")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .expect("spawn service");
        Self { child, port, log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    async fn wait_live(&self) {
        let client = reqwest::Client::new();
        let live = eventually(WAIT, || async {
            client
                .get(self.url("/health/live"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        assert!(live, "service did not come up; log: {}", self.log.display());
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn register(users: &Service, name: &str, traceparent: Option<&str>) -> String {
    let mut request = reqwest::Client::new().post(users.url("/register/")).json(
        &json!({"user_name": name, "email": format!("{}@example.com", name.replace(' ', "."))}),
    );
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    let response = request.send().await.expect("register");
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.expect("json");
    body["user_id"].as_str().expect("user_id").to_owned()
}

/// The four spans of one registration's trace, checked for kind, service and parent.
fn assert_chain(collector: &Collector, trace_id: &str, remote_parent: &str) {
    let spans = collector.trace(trace_id);
    let find = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no span {name} in trace {trace_id}: {spans:#?}"))
            .clone()
    };
    let http = find("POST /register/");
    let publish = find("outbox.publish");
    let consume = find("event.consume");
    let deliver = find("notification.deliver");

    assert_eq!(http.service, "user-service");
    assert_eq!(http.kind, SpanKind::Server as i32);
    assert_eq!(http.parent_span_id, remote_parent);
    assert_eq!(http.attributes["http.response.status_code"], "201");

    assert_eq!(publish.service, "user-service");
    assert_eq!(publish.kind, SpanKind::Producer as i32);
    assert_eq!(
        publish.parent_span_id, http.span_id,
        "produce span under HTTP span"
    );
    assert_eq!(publish.attributes["messaging.system"], "kafka");

    assert_eq!(consume.service, "notification-service");
    assert_eq!(consume.kind, SpanKind::Consumer as i32);
    assert_eq!(
        consume.parent_span_id, publish.span_id,
        "consume span under produce span"
    );
    assert_eq!(
        consume.attributes["messaging.destination.name"],
        publish.attributes["messaging.destination.name"]
    );

    assert_eq!(deliver.service, "notification-service");
    assert_eq!(
        deliver.parent_span_id, consume.span_id,
        "delivery span under consume span"
    );
    assert_eq!(deliver.attributes["notification.channel"], "log");
}

/// Whether the JSON log has the delivery line of `user_id` with `trace_id`.
fn logged_with_trace(log: &Path, user_id: &str, trace_id: &str) -> bool {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .any(|line| {
            line["message"] == "welcome notification delivered"
                && line["user_id"] == user_id
                && line["trace_id"] == trace_id
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registration_is_one_trace_from_http_through_kafka_to_delivery() {
    let backend = Backend::from_env();
    let users_db = TestDatabase::create(&backend).await;
    let notifications_db = TestDatabase::create(&backend).await;
    let kafka = TestKafka::create(&backend, 3).await;
    let logs = tempfile::tempdir().expect("log dir");
    let collector = Collector::start().await;

    let users = Service::spawn(
        "user-service",
        &collector,
        &kafka,
        logs.path(),
        &[
            ("DATABASE_URL", users_db.url.clone()),
            ("OUTBOX_SWEEP_INTERVAL_MS", "200".into()),
        ],
    );
    users.wait_live().await;

    // Registered before the consumer runs, so that it finds both events waiting and
    // runs them through its pipeline as one batch; a later one arrives as a batch of one.
    // Without an incoming traceparent the trace starts at the server span.
    let ada = register(&users, "Ada Lovelace", None).await;
    // With one, the server span continues the caller's trace.
    let incoming = format!("00-{INCOMING_TRACE}-{INCOMING_SPAN}-01");
    register(&users, "Grace Hopper", Some(&incoming)).await;
    let notifications = Service::spawn(
        "notification-service",
        &collector,
        &kafka,
        logs.path(),
        &[
            ("DATABASE_URL", notifications_db.url.clone()),
            (
                "KAFKA_GROUP_ID",
                format!("tracing-{}", uuid::Uuid::new_v4().simple()),
            ),
        ],
    );
    notifications.wait_live().await;

    let complete = |trace_id: &str| collector.trace(trace_id).len() >= 4;
    let exported = eventually(WAIT, || async {
        collector
            .registration_trace_started_here()
            .is_some_and(|t| complete(&t))
            && complete(INCOMING_TRACE)
    })
    .await;
    assert!(
        exported,
        "spans of both registrations did not arrive: {:#?}; logs in {}",
        collector.spans.lock().expect("spans"),
        logs.path().display()
    );

    let started_here = collector
        .registration_trace_started_here()
        .expect("trace of the first registration");
    assert_ne!(started_here, INCOMING_TRACE);
    assert_chain(&collector, &started_here, "");
    assert_chain(&collector, INCOMING_TRACE, INCOMING_SPAN);

    let later = format!("00-{LATER_TRACE}-{LATER_SPAN}-01");
    register(&users, "Edsger Dijkstra", Some(&later)).await;
    let exported = eventually(WAIT, || async { complete(LATER_TRACE) }).await;
    assert!(exported, "spans of the later registration did not arrive");
    assert_chain(&collector, LATER_TRACE, LATER_SPAN);

    let correlated = eventually(WAIT, || async {
        logged_with_trace(&notifications.log, &ada, &started_here)
    })
    .await;
    assert!(
        correlated,
        "the delivery log line of {ada} does not carry trace id {started_here}: {}",
        notifications.log.display()
    );
}
