//! The `UserRegistered` event contract shared by the producer (user-service) and the
//! consumer (notification-service).
//!
//! Kafka messages use the CloudEvents 1.0 Kafka *binary* binding: the JSON body is the
//! event data, the CloudEvents attributes travel as `ce_*` headers, and the W3C
//! `traceparent` header carries the trace context. The Kafka key is the user id, so all
//! events of one user land on one partition, in order.

mod headers;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use headers::{DecodeError, Header, TRACEPARENT};

/// Default topic for user events.
pub const TOPIC: &str = "user-events";
/// Suffix of the dead-letter topic of a topic (`user-events.dlq`).
pub const DLQ_SUFFIX: &str = ".dlq";
/// CloudEvents `type` of [`UserRegistered`].
pub const USER_REGISTERED_TYPE: &str = "com.platform.user.registered.v1";
/// CloudEvents `source` of events published by the user-service.
pub const USER_SERVICE_SOURCE: &str = "/user-service";
/// CloudEvents spec version used on every event.
pub const SPEC_VERSION: &str = "1.0";

/// The name of the dead-letter topic that belongs to `topic`.
pub fn dlq_topic(topic: &str) -> String {
    format!("{topic}{DLQ_SUFFIX}")
}

/// Body of the event published once a user has registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "UserRegistered", description = "A user account was created.")]
pub struct UserRegistered {
    /// The new user's id; also the Kafka message key.
    pub user_id: Uuid,
    /// Display name, trimmed, 1-100 characters.
    pub user_name: String,
    /// Email address as registered.
    pub email: String,
    /// When the user row was committed (RFC 3339, UTC).
    pub registered_at: DateTime<Utc>,
}

/// CloudEvents attributes of one event plus the trace context that travels with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    pub id: Uuid,
    pub source: String,
    pub event_type: String,
    pub time: DateTime<Utc>,
    /// W3C trace context of the request that caused the event, if it was traced.
    pub traceparent: Option<String>,
}

impl Attributes {
    /// Attributes of a new `UserRegistered` event emitted now-ish at `time`.
    pub fn user_registered(id: Uuid, time: DateTime<Utc>, traceparent: Option<String>) -> Self {
        Self {
            id,
            source: USER_SERVICE_SOURCE.to_owned(),
            event_type: USER_REGISTERED_TYPE.to_owned(),
            time,
            traceparent,
        }
    }
}

/// A decoded event: its attributes and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub attributes: Attributes,
    pub body: UserRegistered,
}

impl UserRegistered {
    /// JSON body bytes of the event.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising a struct of strings, a UUID and a timestamp cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Decodes a Kafka message (payload and header pairs) into an [`Event`].
///
/// Anything that does not satisfy the contract is a [`DecodeError`]: such a message can
/// never be handled and belongs in the dead-letter topic.
pub fn decode<'a>(
    payload: Option<&[u8]>,
    headers: impl IntoIterator<Item = Header<'a>>,
) -> Result<Event, DecodeError> {
    let attributes = headers::attributes_from(headers)?;
    if attributes.event_type != USER_REGISTERED_TYPE {
        return Err(DecodeError::UnknownType(attributes.event_type));
    }
    let payload = payload.ok_or(DecodeError::EmptyPayload)?;
    let body: UserRegistered =
        serde_json::from_slice(payload).map_err(|e| DecodeError::Body(e.to_string()))?;
    Ok(Event { attributes, body })
}

/// The JSON Schema of the event body, as checked in at `schema/user-registered.schema.json`.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(UserRegistered);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests;
