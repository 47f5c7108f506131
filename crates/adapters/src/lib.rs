//! Infrastructure adapters: one port per concern, one implementation per backend,
//! chosen by URL scheme. Services depend on the ports; the binary picks the backend.

pub mod bus;
pub mod cache;
pub mod db;
pub mod inbox;
pub mod metrics;
pub mod objects;
pub mod outbox;
pub mod private;
pub mod rabbit;
pub mod sla;
pub mod tasks;
pub mod telemetry;
pub mod throttle;
pub mod views;

pub use bus::{Bus, DeliveryError, Handler, QueueSpec};
pub use cache::Cache;
pub use db::{Backend, Db, Migration};
