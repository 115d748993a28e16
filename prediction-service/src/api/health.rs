//! `GET /health/ready`: `POST /predict` needs only the model, so only the model gates
//! readiness. Kafka is reported: without it the requests sent over Kafka wait in their
//! topic while the REST API keeps answering (`degraded`).

use rdkafka::consumer::Consumer;
use service_kit::health::{Check, Readiness, Ready};
use service_kit::metrics::Metrics;

use super::AppState;

impl Ready for AppState {
    async fn readiness(&self) -> Readiness {
        let consumer = self.consumer.clone();
        let kafka = service_kit::kafka::probe(self.request_topic.clone(), move |topic, timeout| {
            consumer.client().fetch_metadata(Some(topic), timeout)
        });
        // The service does not start without a model, and a refused reload keeps the old one.
        let model = async {
            let _serving = self.model.current();
            Ok::<(), String>(())
        };
        let (kafka, model) = tokio::join!(Check::reported(kafka), Check::required(model));
        Readiness::from_checks([("kafka", kafka), ("model", model)])
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics.registry
    }
}
