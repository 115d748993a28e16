//! Logs and traces, set up once per process.
//!
//! Logs go to stdout (JSON or pretty, filtered by `RUST_LOG`). Traces are exported with
//! OTLP/HTTP (protobuf) when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; without it no
//! OpenTelemetry layer is installed at all, so spans cost what plain `tracing` spans
//! cost. The trace context crosses process boundaries as a W3C `traceparent`: in the
//! HTTP request, in the outbox row, and in the Kafka message headers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::dispatcher::WeakDispatch;
use tracing::{Dispatch, Span, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::Layer;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::LogFormat;

/// The W3C trace-context header, in HTTP requests and Kafka messages alike; the event
/// contract names it, as a header of every event.
pub use events::TRACEPARENT;

/// Crates whose spans are exported. Library spans (sqlx, hyper, the exporter's own
/// HTTP client) are left out: they add noise, and exporting the exporter would loop.
const TRACED_CRATES: &[&str] = &[
    "service_kit",
    "user_service",
    "notification_service",
    "platformctl",
];

/// Whether this process exports spans (set once by [`init`]).
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Keeps the tracer provider of the process; [`Telemetry::shutdown`] exports what is
/// still buffered.
#[must_use = "call shutdown() at exit, or buffered spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exports_traces(&self) -> bool {
        self.provider.is_some()
    }

    /// Flushes buffered spans (bounded by the exporter's timeout) and stops the exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "trace exporter shutdown failed");
        }
    }
}

/// Installs the global subscriber: `RUST_LOG` filters the logs (default `info`), `format`
/// chooses JSON or pretty output, and with an `otlp_endpoint` spans of this platform's
/// crates are exported under the resource `service.name` (`OTEL_SERVICE_NAME` wins when
/// set). A second call in the same process is a no-op (the embedded platform runs both
/// services in one process and initialises once).
pub fn init(format: LogFormat, otlp_endpoint: Option<&str>, service_name: &str) -> Telemetry {
    // An empty value (`OTEL_EXPORTER_OTLP_ENDPOINT=` in a compose file) means off.
    let otlp_endpoint = otlp_endpoint.map(str::trim).filter(|e| !e.is_empty());
    let provider = match otlp_endpoint.map(|e| tracer_provider(e, service_name)) {
        Some(Ok(provider)) => Some(provider),
        Some(Err(error)) => {
            eprintln!("tracing disabled: {error:#}");
            None
        }
        None => None,
    };
    let otel = provider.as_ref().map(|provider| {
        let targets = TRACED_CRATES.iter().fold(Targets::new(), |t, name| {
            t.with_target(*name, LevelFilter::INFO)
        });
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("platform"))
            .with_filter(targets)
    });
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let dispatch = Arc::new(OnceLock::new());
    let logs = match format {
        LogFormat::Json => fmt::layer()
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines {
                dispatch: dispatch.clone(),
            })
            .with_filter(filter)
            .boxed(),
        LogFormat::Pretty => fmt::layer().compact().with_filter(filter).boxed(),
    };
    let installed = tracing_subscriber::registry()
        .with(otel)
        .with(logs)
        // Filtered to nothing: it only needs the dispatch, never a span or an event.
        .with(DispatchCapture(dispatch).with_filter(LevelFilter::OFF))
        .try_init()
        .is_ok();
    if !installed {
        // Already initialised by another service in this process: keep the first.
        if let Some(provider) = provider {
            let _ = provider.shutdown();
        }
        return Telemetry { provider: None };
    }
    EXPORTING.store(provider.is_some(), Ordering::Relaxed);
    Telemetry { provider }
}

/// `make()` when this process exports spans, otherwise a disabled span. For the spans of
/// one Kafka message, which exist for traces: without an exporter the log layer would
/// still format their fields, a third of the consumer's CPU while catching up
/// (docs/benchmarks.md).
pub fn exported_span(make: impl FnOnce() -> Span) -> Span {
    if EXPORTING.load(Ordering::Relaxed) {
        make()
    } else {
        Span::none()
    }
}

fn tracer_provider(endpoint: &str, service_name: &str) -> anyhow::Result<SdkTracerProvider> {
    let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_http();
    // The per-signal variable, when set, is a full URL and takes precedence.
    if std::env::var_os("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none() {
        exporter = exporter.with_endpoint(traces_url(endpoint));
    }
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service_name.to_owned());
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter.build()?)
        .with_resource(resource.build())
        .build())
}

/// `OTEL_EXPORTER_OTLP_ENDPOINT` is a base URL: OTLP/HTTP appends the signal's path.
fn traces_url(endpoint: &str) -> String {
    format!("{}/v1/traces", endpoint.trim_end_matches('/'))
}

/// Makes `span` continue the trace of a W3C `traceparent` (from a request or a message).
/// Call it right after creating the span. Does nothing for a missing or invalid value,
/// or when traces are off.
pub fn continue_trace(span: &Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent else {
        return;
    };
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// The `traceparent` of `span`, to hand its context on; `None` when traces are off.
pub fn traceparent(span: &Span) -> Option<String> {
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Hands the subscriber to [`JsonLines`], which needs it to read a span's trace id.
struct DispatchCapture(Arc<OnceLock<WeakDispatch>>);

impl<S: Subscriber> Layer<S> for DispatchCapture {
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.0.set(subscriber.downgrade());
    }
}

/// One JSON object per line: time, level, target, the event's fields, the current span
/// (name and fields) and, when traces are on, `trace_id` and `span_id`, so a log line
/// leads to its trace and back.
struct JsonLines {
    dispatch: Arc<OnceLock<WeakDispatch>>,
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut line = serde_json::Map::new();
        let mut time = String::new();
        SystemTime.format_time(&mut Writer::new(&mut time))?;
        line.insert("timestamp".into(), time.into());
        let meta = event.metadata();
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        event.record(&mut JsonVisitor(&mut line));
        if let Some(span) = ctx.lookup_current() {
            if let Some((trace_id, span_id)) = self.ids(&span.id()) {
                line.insert("trace_id".into(), trace_id.into());
                line.insert("span_id".into(), span_id.into());
            }
            let mut fields = span
                .extensions()
                .get::<FormattedFields<N>>()
                .and_then(|f| serde_json::from_str::<serde_json::Value>(f).ok())
                .unwrap_or_else(|| serde_json::json!({}));
            if let Some(fields) = fields.as_object_mut() {
                fields.insert("name".into(), span.name().into());
            }
            line.insert("span".into(), fields);
        }
        writeln!(writer, "{}", serde_json::Value::Object(line))
    }
}

impl JsonLines {
    /// Trace and span id of a span, if the OpenTelemetry layer tracks it.
    fn ids(&self, id: &tracing::span::Id) -> Option<(String, String)> {
        let dispatch = self.dispatch.get()?.upgrade()?;
        let context = tracing_opentelemetry::get_otel_context(id, &dispatch)?;
        let span = context.span();
        let span_context = span.span_context();
        span_context.is_valid().then(|| {
            (
                span_context.trace_id().to_string(),
                span_context.span_id().to_string(),
            )
        })
    }
}

struct JsonVisitor<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl tracing::field::Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signal_path_is_appended_to_the_base_endpoint() {
        assert_eq!(
            traces_url("http://collector:4318/"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318"),
            "http://collector:4318/v1/traces"
        );
    }

    #[test]
    fn without_the_layer_there_is_no_context_to_hand_on() {
        let span = tracing::info_span!("untraced");
        continue_trace(
            &span,
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        assert_eq!(traceparent(&span), None);
    }
}
