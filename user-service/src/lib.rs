//! user-service: registers users in MySQL (or SQLite) and publishes `UserRegistered`
//! events to Kafka through a transactional outbox.

pub mod api;
pub mod app;
pub mod config;
pub mod domain;
pub mod metrics;
pub mod outbox;
pub mod store;

pub use app::Application;
pub use config::Config;
