//! The prediction-service's own metrics (the HTTP ones come from service-kit). Labels are
//! bounded: `transport` is kafka or http, `outcome` one of [`Outcome`]'s or
//! [`ReloadOutcome`]'s labels.

use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};
use service_kit::metrics::{LATENCY_BUCKETS, Metrics};

/// `transport` label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Kafka,
    Http,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kafka => "kafka",
            Self::Http => "http",
        }
    }
}

/// `outcome` label values of `predictions_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered with a prediction.
    Success,
    /// Answered with an error naming what is wrong with the request.
    Invalid,
    /// Not answerable (no readable request id, not JSON, oversized): dead-lettered.
    DeadLettered,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Invalid => "invalid",
            Self::DeadLettered => "dead_lettered",
        }
    }
}

/// `outcome` label values of `model_reloads_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// A changed model file was loaded and serves.
    Success,
    /// A changed model file was refused; the previous model keeps serving.
    Failure,
}

impl ReloadOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }
}

#[derive(Clone)]
pub struct PredictionMetrics {
    pub registry: Metrics,
    predictions: IntCounterVec,
    latency: HistogramVec,
    pub batch_size: Histogram,
    pub model_info: IntGaugeVec,
    reloads: IntCounterVec,
}

impl PredictionMetrics {
    pub fn new() -> prometheus::Result<Self> {
        let registry = Metrics::new()?;
        let mut buckets = vec![0.0001, 0.00025];
        buckets.extend_from_slice(LATENCY_BUCKETS);
        let metrics = Self {
            predictions: registry.register(IntCounterVec::new(
                Opts::new("predictions_total", "Prediction requests handled, by transport and outcome."),
                &["transport", "outcome"],
            )?)?,
            latency: registry.register(HistogramVec::new(
                HistogramOpts::new(
                    "prediction_latency_seconds",
                    "From a request's arrival (HTTP request read, Kafka message polled) to its answer (sent, or acknowledged by the broker).",
                )
                .buckets(buckets),
                &["transport"],
            )?)?,
            batch_size: registry.register(Histogram::with_opts(
                HistogramOpts::new("prediction_batch_size", "Rows evaluated in one call of the model.")
                    .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0]),
            )?)?,
            model_info: registry.register(IntGaugeVec::new(
                Opts::new("model_info", "The model serving now (value 1)."),
                &["version", "sha256"],
            )?)?,
            reloads: registry.register(IntCounterVec::new(
                Opts::new("model_reloads_total", "Changed model files loaded (success) or refused (failure)."),
                &["outcome"],
            )?)?,
            registry,
        };
        for transport in [Transport::Kafka, Transport::Http] {
            for outcome in [Outcome::Success, Outcome::Invalid, Outcome::DeadLettered] {
                metrics
                    .predictions
                    .with_label_values(&[transport.as_str(), outcome.as_str()]);
            }
        }
        for outcome in [ReloadOutcome::Success, ReloadOutcome::Failure] {
            metrics.reloads.with_label_values(&[outcome.as_str()]);
        }
        Ok(metrics)
    }

    pub fn handled(&self, transport: Transport, outcome: Outcome, latency: std::time::Duration) {
        self.predictions
            .with_label_values(&[transport.as_str(), outcome.as_str()])
            .inc();
        self.latency
            .with_label_values(&[transport.as_str()])
            .observe(latency.as_secs_f64());
    }

    /// Counts one changed model file, loaded or refused.
    pub fn reloaded(&self, outcome: ReloadOutcome) {
        self.reloads.with_label_values(&[outcome.as_str()]).inc();
    }
}
