//! `GET /health/ready`: the notification-service serves `/notifications` and its admin
//! API from the database, so only the database gates readiness. Kafka is reported:
//! without it the consumer waits and its events stay in the topic (`degraded`).

use rdkafka::consumer::Consumer;
use service_kit::health::{self, Readiness};
use service_kit::metrics::Metrics;

use super::AppState;

impl health::Ready for AppState {
    async fn readiness(&self) -> Readiness {
        let consumer = self.consumer.clone();
        health::database_and_kafka(&self.db, self.topic.clone(), move |topic, timeout| {
            consumer.client().fetch_metadata(Some(topic), timeout)
        })
        .await
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics.registry
    }
}
