//! Object storage: a local directory (embedded) or any S3-compatible store,
//! behind the `object_store` crate's port.

use object_store::ObjectStore;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::signer::Signer;
use rusty_s3::S3Action;
use std::collections::HashMap;
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
/// (S3 SigV4 query-string signing; the server checks signature and expiry):
/// one PUT, or the parts of a multipart upload.
#[derive(Clone)]
pub struct Presigner {
    s3: Arc<AmazonS3>,
    prefix: Option<ObjectPath>,
    /// Present when the store's credentials are static keys: `object_store`'s
    /// signer signs a method and a path only, not UploadPart's
    /// `partNumber`/`uploadId` query, so multipart uploads are started, their
    /// parts presigned and completed with `rusty-s3`'s signer.
    multipart: Option<Arc<Multipart>>,
}

/// The signer and client for multipart uploads.
struct Multipart {
    bucket: rusty_s3::Bucket,
    credentials: rusty_s3::Credentials,
    http: reqwest::Client,
}

/// What completing a multipart upload found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// The parts were joined into the object.
    Completed,
    /// Not every part is there (or one has the wrong size): nothing was joined.
    Incomplete {
        uploaded: Vec<(u16, u64)>,
        expected: Vec<(u16, u64)>,
    },
    /// S3 knows no such upload: it was completed (or aborted) before.
    Gone,
    /// S3 did not list this part's ETag and the client did not send it.
    EtagMissing(u16),
}

/// One part as S3's ListParts names it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ListedPart {
    number: u16,
    size: u64,
    etag: Option<String>,
}

/// Reads the parts out of a ListPartsResult document. Written against the
/// document rather than with `rusty-s3`'s parser, which requires an ETag that
/// some S3-compatible servers (s3s-fs) leave out.
fn parse_parts(xml: &str) -> anyhow::Result<Vec<ListedPart>> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut parts = Vec::new();
    let mut current: Option<(Option<u16>, Option<u64>, Option<String>)> = None;
    let mut field = String::new();
    loop {
        match reader.read_event()? {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if name == "Part" {
                    current = Some((None, None, None));
                }
                field = name;
            }
            Event::Text(t) => {
                if let Some((number, size, etag)) = current.as_mut() {
                    let text = t.unescape()?.trim().to_string();
                    match field.as_str() {
                        "PartNumber" => *number = Some(text.parse()?),
                        "Size" => *size = Some(text.parse()?),
                        "ETag" if !text.is_empty() => *etag = Some(text),
                        _ => {}
                    }
                }
            }
            Event::End(e) => {
                if e.local_name().as_ref() == b"Part" {
                    if let Some((Some(number), Some(size), etag)) = current.take() {
                        parts.push(ListedPart { number, size, etag });
                    } else {
                        anyhow::bail!("a <Part> without a PartNumber or Size");
                    }
                }
                field.clear();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(parts)
}

/// The sizes of the parts of a `size`-byte object cut into `part_bytes` pieces.
pub fn part_sizes(size: u64, part_bytes: u64) -> Vec<(u16, u64)> {
    let part_bytes = part_bytes.max(1);
    (0..size.div_ceil(part_bytes))
        .map(|i| {
            let offset = i * part_bytes;
            ((i + 1) as u16, part_bytes.min(size - offset))
        })
        .collect()
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

    /// The key in the bucket of `key` in the opened store.
    fn full_key(&self, key: &ObjectPath) -> String {
        match &self.prefix {
            Some(p) => p
                .parts()
                .chain(key.parts())
                .collect::<ObjectPath>()
                .to_string(),
            None => key.to_string(),
        }
    }

    /// Whether multipart uploads can be presigned (they need static S3 keys).
    pub fn multipart_available(&self) -> bool {
        self.multipart.is_some()
    }

    fn multipart(&self) -> anyhow::Result<&Multipart> {
        self.multipart
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("multipart uploads need static S3 credentials"))
    }

    /// Starts a multipart upload of `key`; returns S3's upload id.
    pub async fn start_multipart(&self, key: &ObjectPath) -> anyhow::Result<String> {
        let m = self.multipart()?;
        let full = self.full_key(key);
        let url = m
            .bucket
            .create_multipart_upload(Some(&m.credentials), &full)
            .sign(SIGNED_REQUEST_LIFETIME);
        let body = m
            .send(
                m.http.post(url),
                &format!("starting a multipart upload of '{full}'"),
            )
            .await?;
        let answer = rusty_s3::actions::CreateMultipartUpload::parse_response(&body)
            .map_err(|e| anyhow::anyhow!("S3's answer to starting a multipart upload: {e}"))?;
        Ok(answer.upload_id().to_string())
    }

    /// A URL accepting one `PUT` of part `part_number` (from 1) of an upload.
    pub fn part_url(
        &self,
        key: &ObjectPath,
        upload_id: &str,
        part_number: u16,
        expires_in: Duration,
    ) -> anyhow::Result<String> {
        let m = self.multipart()?;
        let full = self.full_key(key);
        Ok(m.bucket
            .upload_part(Some(&m.credentials), &full, part_number, upload_id)
            .sign(expires_in)
            .to_string())
    }

    /// Joins the parts of an upload into the object, if exactly the `expected`
    /// parts (number, size) are there; otherwise joins nothing. Each part's
    /// ETag comes from S3's list of parts, or else from `client_etags` (what
    /// the client's PUT of that part answered).
    pub async fn complete_multipart(
        &self,
        key: &ObjectPath,
        upload_id: &str,
        expected: &[(u16, u64)],
        client_etags: &HashMap<u16, String>,
    ) -> anyhow::Result<Completion> {
        let m = self.multipart()?;
        let full = self.full_key(key);
        let url = m
            .bucket
            .list_parts(Some(&m.credentials), &full, upload_id)
            .sign(SIGNED_REQUEST_LIFETIME);
        let response = m
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("listing the parts of '{full}': {e}"))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(Completion::Gone);
        }
        let body = Multipart::body(response, &format!("listing the parts of '{full}'")).await?;
        let mut listed = parse_parts(&body)
            .map_err(|e| anyhow::anyhow!("S3's list of the parts of '{full}': {e}"))?;
        listed.sort_by_key(|p| p.number);
        let uploaded: Vec<(u16, u64)> = listed.iter().map(|p| (p.number, p.size)).collect();
        if uploaded != expected {
            return Ok(Completion::Incomplete {
                uploaded,
                expected: expected.to_vec(),
            });
        }
        let mut etags = Vec::with_capacity(listed.len());
        for p in &listed {
            match p.etag.as_ref().or_else(|| client_etags.get(&p.number)) {
                Some(e) => etags.push(e.clone()),
                None => return Ok(Completion::EtagMissing(p.number)),
            }
        }
        let action = m.bucket.complete_multipart_upload(
            Some(&m.credentials),
            &full,
            upload_id,
            etags.iter().map(String::as_str),
        );
        let url = action.sign(SIGNED_REQUEST_LIFETIME);
        let body = m
            .send(
                m.http.post(url).body(action.body()),
                &format!("completing the multipart upload of '{full}'"),
            )
            .await?;
        // S3 may answer 200 with an error document when the join fails late.
        anyhow::ensure!(
            !body.contains("<Error>"),
            "completing the multipart upload of '{full}': {body}"
        );
        Ok(Completion::Completed)
    }

    /// Drops an unfinished multipart upload and its parts.
    pub async fn abort_multipart(&self, key: &ObjectPath, upload_id: &str) -> anyhow::Result<()> {
        let m = self.multipart()?;
        let full = self.full_key(key);
        let url = m
            .bucket
            .abort_multipart_upload(Some(&m.credentials), &full, upload_id)
            .sign(SIGNED_REQUEST_LIFETIME);
        m.send(
            m.http.delete(url),
            &format!("aborting the multipart upload of '{full}'"),
        )
        .await?;
        Ok(())
    }
}

/// How long the requests MES itself signs for S3 stay valid.
const SIGNED_REQUEST_LIFETIME: Duration = Duration::from_secs(60);

impl Multipart {
    async fn send(&self, request: reqwest::RequestBuilder, what: &str) -> anyhow::Result<String> {
        let response = request
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
        Multipart::body(response, what).await
    }

    async fn body(response: reqwest::Response, what: &str) -> anyhow::Result<String> {
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
        anyhow::ensure!(status.is_success(), "{what}: S3 answered {status}: {body}");
        Ok(body)
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
    // Customers' models: readable by this account only (when we make the directory).
    crate::private::create_dir(Path::new(dir))
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
    let multipart = multipart_signer(&b, bucket)?;
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
        presigner: Some(Presigner {
            s3,
            prefix,
            multipart,
        }),
    })
}

/// The multipart signer for the same bucket, endpoint, region and keys as the
/// store; `None` without static keys (instance credentials rotate).
fn multipart_signer(b: &AmazonS3Builder, bucket: &str) -> anyhow::Result<Option<Arc<Multipart>>> {
    let get = |k: AmazonS3ConfigKey| b.get_config_value(&k).filter(|v| !v.is_empty());
    let (Some(key), Some(secret)) = (
        get(AmazonS3ConfigKey::AccessKeyId),
        get(AmazonS3ConfigKey::SecretAccessKey),
    ) else {
        return Ok(None);
    };
    let credentials = match get(AmazonS3ConfigKey::Token) {
        Some(token) => rusty_s3::Credentials::new_with_token(key, secret, token),
        None => rusty_s3::Credentials::new(key, secret),
    };
    let region = get(AmazonS3ConfigKey::Region).unwrap_or_else(|| "us-east-1".into());
    let virtual_hosted = get(AmazonS3ConfigKey::VirtualHostedStyleRequest)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let (endpoint, style) = match get(AmazonS3ConfigKey::Endpoint) {
        Some(e) if virtual_hosted => (e, rusty_s3::UrlStyle::VirtualHost),
        Some(e) => (e, rusty_s3::UrlStyle::Path),
        None => (
            format!("https://s3.{region}.amazonaws.com"),
            rusty_s3::UrlStyle::VirtualHost,
        ),
    };
    let endpoint: url::Url = endpoint
        .parse()
        .map_err(|e| anyhow::anyhow!("S3 endpoint '{endpoint}': {e}"))?;
    let bucket = rusty_s3::Bucket::new(endpoint.clone(), style, bucket.to_string(), region)
        .map_err(|e| anyhow::anyhow!("S3 bucket '{bucket}' at '{endpoint}': {e}"))?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    Ok(Some(Arc::new(Multipart {
        bucket,
        credentials,
        http,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_cut_at_the_part_size_with_the_rest_last() {
        assert_eq!(part_sizes(10, 4), vec![(1, 4), (2, 4), (3, 2)]);
        assert_eq!(part_sizes(8, 4), vec![(1, 4), (2, 4)]);
        assert_eq!(part_sizes(3, 4), vec![(1, 3)]);
    }

    #[test]
    fn listed_parts_are_read_with_or_without_etags() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListPartsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>b</Bucket><Key>k</Key><UploadId>u</UploadId>
  <Part><PartNumber>2</PartNumber><LastModified>2026-11-27T09:00:00.000Z</LastModified><Size>5</Size></Part>
  <Part><PartNumber>1</PartNumber><ETag>&quot;abc&quot;</ETag><Size>5242880</Size></Part>
</ListPartsResult>"#;
        assert_eq!(
            parse_parts(xml).unwrap(),
            vec![
                ListedPart {
                    number: 2,
                    size: 5,
                    etag: None
                },
                ListedPart {
                    number: 1,
                    size: 5_242_880,
                    etag: Some("\"abc\"".into())
                },
            ]
        );
        assert!(
            parse_parts("<ListPartsResult><Part><Size>1</Size></Part></ListPartsResult>").is_err()
        );
    }
}
