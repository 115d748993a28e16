//! The spans of event handling. The consume span continues the trace whose context the
//! message carries in its `traceparent` header (the user-service's produce span), so one
//! trace runs from `POST /register/` to the delivered notification.

use rdkafka::message::{BorrowedMessage, Headers, Message};
use service_kit::telemetry;
use tracing::Span;

/// The consumer span of one message (only when spans are exported).
pub fn consume(message: &BorrowedMessage<'_>) -> Span {
    telemetry::exported_span(|| {
        let span = tracing::info_span!(
            "event.consume",
            otel.kind = "consumer",
            messaging.system = "kafka",
            messaging.operation.type = "process",
            messaging.destination.name = message.topic(),
            messaging.destination.partition.id = message.partition(),
            messaging.kafka.offset = message.offset(),
            service.name = "notification-service",
        );
        telemetry::continue_trace(&span, traceparent(message));
        span
    })
}

/// The span of delivering one notification through `channel` (only when spans are
/// exported).
pub fn deliver(channel: &str) -> Span {
    telemetry::exported_span(|| {
        tracing::info_span!(
            "notification.deliver",
            otel.kind = "client",
            notification.channel = channel,
            service.name = "notification-service",
        )
    })
}

fn traceparent<'m>(message: &'m BorrowedMessage<'_>) -> Option<&'m str> {
    message
        .headers()?
        .iter()
        .find(|h| h.key == telemetry::TRACEPARENT)
        .and_then(|h| std::str::from_utf8(h.value?).ok())
}
