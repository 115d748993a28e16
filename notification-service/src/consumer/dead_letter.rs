//! The dead-letter topic: a copy of the message, with why and where it came from in
//! headers.

use std::time::Duration;

use chrono::Utc;
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

/// Where messages that cannot be handled go.
pub struct DeadLetters {
    pub producer: FutureProducer,
    pub topic: String,
}

impl DeadLetters {
    /// Copies `message` (key, payload and headers) to the dead-letter topic with
    /// `reason` and the number of delivery `attempts` in headers.
    pub async fn send(
        &self,
        message: &BorrowedMessage<'_>,
        reason: &str,
        attempts: u32,
    ) -> KafkaResult<()> {
        let headers = message
            .headers()
            .map_or_else(OwnedHeaders::new, |h| h.detach());
        let extra = [
            ("dlq.reason", reason.to_owned()),
            ("dlq.attempts", attempts.to_string()),
            ("dlq.original.topic", message.topic().to_owned()),
            ("dlq.original.partition", message.partition().to_string()),
            ("dlq.original.offset", message.offset().to_string()),
            ("dlq.time", Utc::now().to_rfc3339()),
        ];
        let headers = extra.iter().fold(headers, |h, (key, value)| {
            h.insert(Header {
                key,
                value: Some(value),
            })
        });
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.topic).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        self.producer
            .send(record, Timeout::After(Duration::from_secs(10)))
            .await
            .map(drop)
            .map_err(|(error, _)| error)
    }
}
