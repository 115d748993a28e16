//! The user-service's own metrics (the HTTP ones come from service-kit).

use prometheus::{Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts};
use service_kit::metrics::{LATENCY_BUCKETS, Metrics};

/// `outcome` label values of `outbox_published_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOutcome {
    /// The broker acknowledged the row's event.
    Ok,
    /// The send failed; the row stays for the next pass.
    Failed,
}

impl PublishOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
        }
    }
}

#[derive(Clone)]
pub struct UserMetrics {
    pub registry: Metrics,
    pub users_registered: IntCounter,
    pub outbox_backlog: IntGauge,
    pub outbox_oldest_age: Gauge,
    outbox_published: IntCounterVec,
    pub outbox_publish_latency: Histogram,
}

impl UserMetrics {
    pub fn new() -> prometheus::Result<Self> {
        let registry = Metrics::new()?;
        Ok(Self {
            users_registered: registry.register(IntCounter::new(
                "users_registered_total",
                "Users registered (user row and outbox row committed).",
            )?)?,
            outbox_backlog: registry.register(IntGauge::new(
                "outbox_backlog",
                "Outbox rows not yet acknowledged by Kafka.",
            )?)?,
            outbox_oldest_age: registry.register(Gauge::new(
                "outbox_oldest_age_seconds",
                "Age of the oldest unpublished outbox row (0 when empty).",
            )?)?,
            outbox_published: registry.register(IntCounterVec::new(
                Opts::new(
                    "outbox_published_total",
                    "Outbox rows sent to Kafka, by outcome.",
                ),
                &["outcome"],
            )?)?,
            outbox_publish_latency: registry.register(Histogram::with_opts(
                HistogramOpts::new(
                    "outbox_publish_latency_seconds",
                    "Time from commit of an outbox row to the broker's acknowledgement.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
            )?)?,
            registry,
        })
    }

    /// Counts one outbox row sent to Kafka.
    pub fn published(&self, outcome: PublishOutcome) {
        self.outbox_published
            .with_label_values(&[outcome.as_str()])
            .inc();
    }
}
