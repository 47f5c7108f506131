//! The `alexandrite` binary's library: configuration, the all-in-one
//! application and demo data, so integration tests can start the platform.

pub mod analyze;
pub mod app;
pub mod config;
pub mod demo;
pub mod metrics;
pub mod reconcile;
pub mod seed;
pub mod telemetry;

pub use app::Application;
pub use config::Config;
