//! The platform's behaviour over HTTP, against the real all-in-one application
//! on a random port with a temporary data directory.

mod helpers;

mod catalogue;
mod cli;
mod durability;
mod hostile_abuse;
mod hostile_edges;
mod hostile_exposure;
mod hostile_geometry;
mod hostile_headers;
mod hostile_money;
mod isolation;
mod journey;
mod lifecycle;
mod notifications;
mod observability;
mod operators;
mod queue;
mod s3;
mod traces;
mod uploads;
