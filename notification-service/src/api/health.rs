//! `GET /health/ready`: ready only when the database and Kafka both answer.

use rdkafka::consumer::Consumer;
use service_kit::health::{self, Readiness};

use super::AppState;

impl health::Ready for AppState {
    async fn readiness(&self) -> Readiness {
        let consumer = self.consumer.clone();
        health::database_and_kafka(&self.db, self.topic.clone(), move |topic, timeout| {
            consumer.client().fetch_metadata(Some(topic), timeout)
        })
        .await
    }
}
