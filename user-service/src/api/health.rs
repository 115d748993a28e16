//! `GET /health/ready`: the user-service serves its requests from the database alone, so
//! only the database gates readiness. Kafka is reported: without it registrations go on
//! into the outbox and the relay publishes them once the broker answers (`degraded`).

use rdkafka::producer::Producer;
use service_kit::health::{self, Readiness};
use service_kit::metrics::Metrics;

use super::AppState;

impl health::Ready for AppState {
    async fn readiness(&self) -> Readiness {
        let producer = self.producer.clone();
        health::database_and_kafka(&self.db, self.topic.clone(), move |topic, timeout| {
            producer.client().fetch_metadata(Some(topic), timeout)
        })
        .await
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics.registry
    }
}
