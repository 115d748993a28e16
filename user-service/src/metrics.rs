//! The user-service's own metrics (the HTTP ones come from service-kit).

use prometheus::{Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts};
use service_kit::metrics::{LATENCY_BUCKETS, Metrics};

#[derive(Clone)]
pub struct UserMetrics {
    pub registry: Metrics,
    pub users_registered: IntCounter,
    pub outbox_backlog: IntGauge,
    pub outbox_oldest_age: Gauge,
    pub outbox_published: IntCounterVec,
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
}
