//! What both services share: configuration pieces, telemetry, metrics and the HTTP RED
//! layer, problem+json errors, admin auth, health checks, graceful shutdown, and the
//! Kafka and database setup.

pub mod app;
pub mod auth;
pub mod config;
pub mod db;
pub mod health;
pub mod housekeeping;
pub mod http;
pub mod kafka;
pub mod limits;
pub mod metrics;
pub mod problem;
pub mod runner;
pub mod shutdown;
pub mod startup;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use shutdown::Shutdown;
