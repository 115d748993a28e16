//! The notification-service's own metrics (the HTTP ones come from service-kit).

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts};
use service_kit::metrics::{LATENCY_BUCKETS, Metrics};

/// `outcome` label values of `events_consumed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    Duplicate,
    Failed,
    DeadLettered,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Duplicate => "duplicate",
            Self::Failed => "failed",
            Self::DeadLettered => "dead_lettered",
        }
    }
}

/// `outcome` label values of `notifications_sent_total`: one per delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    Ok,
    Failed,
}

impl SendOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
        }
    }
}

/// The `event_type` label of a message that could not be decoded: its type is not known.
pub const UNKNOWN_EVENT_TYPE: &str = "unknown";

#[derive(Clone)]
pub struct NotificationMetrics {
    pub registry: Metrics,
    pub events_consumed: IntCounterVec,
    pub end_to_end_latency: Histogram,
    pub consumer_lag: IntGaugeVec,
    pub dlq_messages: IntCounter,
    pub notifications_sent: IntCounterVec,
}

impl NotificationMetrics {
    pub fn new() -> prometheus::Result<Self> {
        let registry = Metrics::new()?;
        Ok(Self {
            events_consumed: registry.register(IntCounterVec::new(
                Opts::new(
                    "events_consumed_total",
                    "Events handled, by type and outcome.",
                ),
                &["event_type", "outcome"],
            )?)?,
            end_to_end_latency: registry.register(Histogram::with_opts(
                HistogramOpts::new(
                    "event_end_to_end_latency_seconds",
                    "Time from the event's time (registration) to delivery of its notification.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
            )?)?,
            consumer_lag: registry.register(IntGaugeVec::new(
                Opts::new(
                    "kafka_consumer_lag",
                    "High watermark minus committed offset.",
                ),
                &["topic", "partition"],
            )?)?,
            dlq_messages: registry.register(IntCounter::new(
                "dlq_messages_total",
                "Messages sent to the dead-letter topic.",
            )?)?,
            notifications_sent: registry.register(IntCounterVec::new(
                Opts::new(
                    "notifications_sent_total",
                    "Delivery attempts, by channel and outcome.",
                ),
                &["channel", "outcome"],
            )?)?,
            registry,
        })
    }

    pub fn consumed(&self, event_type: &str, outcome: Outcome) {
        self.events_consumed
            .with_label_values(&[event_type, outcome.as_str()])
            .inc();
    }

    pub fn sent(&self, channel: &str, outcome: SendOutcome) {
        self.notifications_sent
            .with_label_values(&[channel, outcome.as_str()])
            .inc();
    }
}
