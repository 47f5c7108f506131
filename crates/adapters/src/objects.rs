//! Object storage: a local directory (embedded) or any S3-compatible store,
//! behind the `object_store` crate's port.

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use std::path::Path;
use std::sync::Arc;

/// Opens the store a URL names: `file:///abs/dir` or a plain directory path.
pub fn open(url: &str) -> anyhow::Result<Arc<dyn ObjectStore>> {
    let dir = url.strip_prefix("file://").unwrap_or(url);
    anyhow::ensure!(
        !url.contains("://") || url.starts_with("file://"),
        "unsupported object storage URL '{url}': expected file:///dir or a directory"
    );
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("creating object directory {dir}: {e}"))?;
    let store = LocalFileSystem::new_with_prefix(Path::new(dir))?;
    Ok(Arc::new(store))
}
