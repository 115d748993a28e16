//! notification-service: consumes `UserRegistered` events, delivers a welcome
//! notification once per event, and counts them in Prometheus.

pub mod api;
pub mod app;
pub mod config;
pub mod consumer;
pub mod delivery;
pub mod metrics;
pub mod retention;
pub mod spans;
pub mod store;

pub use app::Application;
pub use config::Config;
