//! prediction-service: answers wine-classification requests from Kafka (request/reply)
//! and HTTP with an ONNX random forest loaded from `MODEL_PATH` and reloaded when the
//! file changes.

pub mod api;
pub mod app;
pub mod config;
pub mod kafka;
pub mod metrics;
pub mod model;
pub mod request;

pub use app::Application;
pub use config::Config;
