//! `GET /health/ready`: ready only with a model loaded and Kafka answering.

use rdkafka::consumer::Consumer;
use service_kit::health::{Check, Readiness, Ready};

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
        let (kafka, model) = tokio::join!(Check::run(kafka), Check::run(model));
        Readiness::from_checks([("kafka", kafka), ("model", model)])
    }
}
