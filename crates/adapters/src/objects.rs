//! Object storage: a local directory (embedded) or any S3-compatible store,
//! behind the `object_store` crate's port.

use object_store::ObjectStore;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::signer::Signer;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// S3 settings that override the standard `AWS_*` environment variables
/// (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_ALLOW_HTTP`, …), which are read first.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// e.g. `http://127.0.0.1:8014` for a local S3-compatible server.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Plain HTTP to the endpoint; implied by an `http://` endpoint.
    pub allow_http: Option<bool>,
}

/// An opened store and, where the backend has one, its URL presigner.
#[derive(Clone)]
pub struct Objects {
    pub store: Arc<dyn ObjectStore>,
    /// `None` for the local directory: it has no URLs to hand out.
    pub presigner: Option<Presigner>,
}

/// Hands out time-limited URLs that let a client write one object directly
/// (S3 SigV4 query-string signing; the server checks signature and expiry).
#[derive(Clone)]
pub struct Presigner {
    s3: Arc<AmazonS3>,
    prefix: Option<ObjectPath>,
}

impl std::fmt::Debug for Presigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presigner")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Presigner {
    /// A URL accepting one `PUT` of `key` (a key of the opened store, under its prefix)
    /// for `expires_in`.
    ///
    /// Only single PUTs: `object_store`'s signer signs a method and a path, not the
    /// `partNumber`/`uploadId` query of S3's UploadPart, and it cannot start a
    /// multipart upload whose id a client could use, so presigned multipart part
    /// URLs are not offered (a single PUT takes up to 5 GiB, above our upload limit).
    pub async fn put_url(&self, key: &ObjectPath, expires_in: Duration) -> anyhow::Result<String> {
        let full = match &self.prefix {
            Some(p) => p.parts().chain(key.parts()).collect::<ObjectPath>(),
            None => key.clone(),
        };
        let url = self
            .s3
            .signed_url(http::Method::PUT, &full, expires_in)
            .await
            .map_err(|e| anyhow::anyhow!("presigning a PUT of '{full}': {e}"))?;
        Ok(url.to_string())
    }
}

/// Opens the store a URL names: `file:///abs/dir` or a plain directory path, or
/// `s3://bucket[/prefix]` configured from the `AWS_*` environment variables.
pub fn open(url: &str) -> anyhow::Result<Arc<dyn ObjectStore>> {
    Ok(open_with(url, &S3Options::default())?.store)
}

/// Like [`open`], with explicit S3 settings taking precedence over `AWS_*`.
pub fn open_with(url: &str, s3: &S3Options) -> anyhow::Result<Objects> {
    if let Some(rest) = url.strip_prefix("s3://") {
        return open_s3(url, rest, s3);
    }
    let dir = url.strip_prefix("file://").unwrap_or(url);
    anyhow::ensure!(
        !url.contains("://") || url.starts_with("file://"),
        "unsupported object storage URL '{url}': expected s3://bucket[/prefix], file:///dir or a directory"
    );
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("creating object directory {dir}: {e}"))?;
    let store = LocalFileSystem::new_with_prefix(Path::new(dir))?;
    Ok(Objects {
        store: Arc::new(store),
        presigner: None,
    })
}

fn open_s3(url: &str, rest: &str, opts: &S3Options) -> anyhow::Result<Objects> {
    let (bucket, prefix) = match rest.split_once('/') {
        Some((b, p)) => (b, p.trim_matches('/')),
        None => (rest, ""),
    };
    anyhow::ensure!(
        !bucket.is_empty(),
        "object storage URL '{url}' names no bucket: expected s3://bucket[/prefix]"
    );
    let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(e) = opts.endpoint.as_deref().filter(|e| !e.is_empty()) {
        b = b.with_endpoint(e);
    }
    if let Some(r) = opts.region.as_deref().filter(|r| !r.is_empty()) {
        b = b.with_region(r);
    }
    if let Some(k) = opts.access_key_id.as_deref().filter(|k| !k.is_empty()) {
        b = b.with_access_key_id(k);
    }
    if let Some(s) = opts.secret_access_key.as_deref().filter(|s| !s.is_empty()) {
        b = b.with_secret_access_key(s);
    }
    let endpoint = b.get_config_value(&AmazonS3ConfigKey::Endpoint);
    let plain_http = endpoint
        .as_deref()
        .is_some_and(|e| e.starts_with("http://"));
    if let Some(allow) = opts.allow_http {
        b = b.with_allow_http(allow);
    } else if plain_http && std::env::var_os("AWS_ALLOW_HTTP").is_none() {
        // An http:// endpoint is a deliberate choice (a local server): no second switch needed.
        b = b.with_allow_http(true);
    }
    let key_id = b.get_config_value(&AmazonS3ConfigKey::AccessKeyId);
    let secret = b.get_config_value(&AmazonS3ConfigKey::SecretAccessKey);
    match (key_id.is_some(), secret.is_some()) {
        (true, false) => anyhow::bail!(
            "S3 store '{url}': an access key id is set but no secret access key \
             (AWS_SECRET_ACCESS_KEY or mes.s3_secret_access_key)"
        ),
        (false, true) => anyhow::bail!(
            "S3 store '{url}': a secret access key is set but no access key id \
             (AWS_ACCESS_KEY_ID or mes.s3_access_key_id)"
        ),
        _ => {}
    }
    let s3 = Arc::new(b.build().map_err(|e| {
        anyhow::anyhow!(
            "S3 store '{url}' (endpoint {}): {e}",
            endpoint.as_deref().unwrap_or("AWS default")
        )
    })?);
    let prefix = (!prefix.is_empty()).then(|| ObjectPath::from(prefix));
    let store: Arc<dyn ObjectStore> = match &prefix {
        Some(p) => Arc::new(PrefixStore::new(s3.as_ref().clone(), p.clone())),
        None => s3.clone(),
    };
    Ok(Objects {
        store,
        presigner: Some(Presigner { s3, prefix }),
    })
}
