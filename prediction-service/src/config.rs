//! prediction-service settings: every one an environment variable and a flag (`--help`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use service_kit::config::CommonArgs;
use service_kit::kafka::KafkaArgs;

use crate::kafka::Topics;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "prediction-service",
    version,
    about = "Classifies wines with a mounted ONNX random forest, over Kafka request/reply and HTTP."
)]
pub struct Config {
    /// Address to serve HTTP on.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8002")]
    pub http_addr: SocketAddr,

    /// The ONNX model file (TreeEnsembleClassifier over 13 float features); reloaded when
    /// it changes.
    #[arg(long, env = "MODEL_PATH", default_value = "models/wine-forest.onnx")]
    pub model_path: PathBuf,

    /// How often the model file is checked for changes, in milliseconds.
    #[arg(long, env = "MODEL_POLL_INTERVAL_MS", default_value_t = 2000)]
    pub model_poll_interval_ms: u64,

    /// Kafka bootstrap servers, comma-separated host:port.
    #[arg(
        long,
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092"
    )]
    pub kafka_bootstrap_servers: String,

    /// Extra librdkafka properties as key=value, comma-separated (TLS, SASL, tuning).
    #[arg(
        long = "kafka-property",
        env = "KAFKA_PROPERTIES",
        value_delimiter = ',',
        value_parser = service_kit::kafka::parse_property,
        hide_env_values = true
    )]
    pub kafka_properties: Vec<(String, String)>,

    /// Topic of prediction requests (dead letters go to `<topic>.dlq`).
    #[arg(
        long = "kafka-topic",
        env = "KAFKA_TOPIC",
        default_value = "prediction_requests"
    )]
    pub request_topic: String,

    /// Topic of answers to requests without a `reply-to` header.
    #[arg(long, env = "KAFKA_RESULT_TOPIC", default_value = "prediction_results")]
    pub result_topic: String,

    /// A request's `reply-to` topic must start with this (else the answer is an error on
    /// the result topic), so that clients cannot make the service write to any topic.
    #[arg(
        long,
        env = "KAFKA_REPLY_TOPIC_PREFIX",
        default_value = "prediction_results"
    )]
    pub reply_topic_prefix: String,

    /// Kafka consumer group.
    #[arg(long, env = "KAFKA_GROUP_ID", default_value = "prediction-service")]
    pub group_id: String,

    /// Most requests in one HTTP batch, and in one model call from Kafka.
    #[arg(long, env = "PREDICT_MAX_BATCH", default_value_t = 256)]
    pub max_batch: usize,

    /// Largest request, in bytes: a larger Kafka message is dead-lettered; an HTTP body
    /// may be up to PREDICT_MAX_BATCH times this.
    #[arg(long, env = "PREDICT_MAX_REQUEST_BYTES", default_value_t = 4096)]
    pub max_request_bytes: usize,

    #[command(flatten)]
    pub common: CommonArgs,
}

impl Default for Config {
    /// The settings of a process started without flags or environment variables.
    fn default() -> Self {
        service_kit::config::defaults()
    }
}

impl Config {
    /// Settings for a service on `kafka` (its topic is the request topic) serving
    /// `model_path`, everything else default, HTTP on a free loopback port.
    pub fn new(kafka: &KafkaArgs, model_path: impl Into<PathBuf>) -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            model_path: model_path.into(),
            kafka_bootstrap_servers: kafka.bootstrap_servers.clone(),
            kafka_properties: kafka.properties.clone(),
            request_topic: kafka.topic.clone(),
            ..Self::default()
        }
    }

    /// The kit's Kafka settings (client configs) for the request topic.
    pub fn kafka(&self) -> KafkaArgs {
        let mut args = KafkaArgs::new(&self.kafka_bootstrap_servers, &self.request_topic);
        args.properties = self.kafka_properties.clone();
        args
    }

    pub fn topics(&self) -> Topics {
        Topics {
            requests: self.request_topic.clone(),
            results: self.result_topic.clone(),
            dead_letters: format!("{}.dlq", self.request_topic),
            reply_prefix: self.reply_topic_prefix.clone(),
        }
    }

    pub fn model_poll_interval(&self) -> Duration {
        Duration::from_millis(self.model_poll_interval_ms.max(10))
    }

    pub fn max_batch(&self) -> usize {
        self.max_batch.max(1)
    }

    /// The HTTP body limit of `POST /predict`.
    pub fn max_body_bytes(&self) -> usize {
        self.max_batch()
            .saturating_mul(self.max_request_bytes.max(256))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_is_the_flags_defaults_with_its_own_kafka_model_and_port() {
        let config = Config::new(&KafkaArgs::new("broker:9092", "requests"), "model.onnx");
        let flags: Config = service_kit::config::from_flags(&[
            "--http-addr=127.0.0.1:0",
            "--model-path=model.onnx",
            "--kafka-bootstrap-servers=broker:9092",
            "--kafka-topic=requests",
        ])
        .expect("flags");
        // Debug shows every field, so equal text is equal settings.
        assert_eq!(format!("{config:?}"), format!("{flags:?}"));
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let config = Config::default();
        assert_eq!(config.http_addr, SocketAddr::from(([0, 0, 0, 0], 8002)));
        assert_eq!(config.model_poll_interval(), Duration::from_secs(2));
        assert_eq!(config.request_topic, "prediction_requests");
        assert_eq!(config.group_id, "prediction-service");
        assert_eq!(config.max_batch(), 256);
        assert_eq!(config.max_request_bytes, 4096);
    }
}
