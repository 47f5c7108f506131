//! Integration tests of the geometry crate (one binary, several modules).

mod bomb_kit;
mod bombs;
mod common;
mod errors;
mod generated;
mod props;
mod real;
mod winding;
