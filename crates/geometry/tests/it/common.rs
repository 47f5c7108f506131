//! Helpers shared by the test modules.

use std::path::PathBuf;

use geometry::{Analysis, Limits};

/// `shared/models` relative to the crate.
pub fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models")
}

pub fn read_model(rel: &str) -> Vec<u8> {
    let path = models_dir().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn analyze_model(rel: &str) -> Analysis {
    geometry::analyze(&read_model(rel), &Limits::default()).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

pub fn rel_err(got: f64, want: f64) -> f64 {
    ((got - want) / want).abs()
}
