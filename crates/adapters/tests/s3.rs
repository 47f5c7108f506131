//! Object storage on a real S3-compatible server (s3s-fs, which checks
//! signatures and presigned-URL expiry). Start it with `scripts/s3-server`.

use adapters::objects::{self, Objects, S3Options};
use object_store::path::Path;
use reqwest::StatusCode;
use std::time::Duration;

const ACCESS_KEY: &str = "alexandrite-test";
const SECRET_KEY: &str = "alexandrite-test-secret";

fn endpoint() -> String {
    std::env::var("ALEXANDRITE_TEST_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:8014".into())
}

fn bucket() -> String {
    std::env::var("ALEXANDRITE_TEST_S3_BUCKET").unwrap_or_else(|_| "alexandrite-test".into())
}

/// Fails loudly when the server is not there: these tests never skip.
async fn require_server() {
    let ep = endpoint();
    let addr = ep
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    if let Err(e) = tokio::net::TcpStream::connect(&addr).await {
        panic!(
            "no S3-compatible server at {ep} ({e}): start it with scripts/s3-server \
             (or point ALEXANDRITE_TEST_S3_ENDPOINT at one)"
        );
    }
}

fn options() -> S3Options {
    S3Options {
        endpoint: Some(endpoint()),
        region: Some("us-east-1".into()),
        access_key_id: Some(ACCESS_KEY.into()),
        secret_access_key: Some(SECRET_KEY.into()),
        allow_http: None,
    }
}

/// A store under a fresh prefix of the test bucket.
async fn fresh_store() -> Objects {
    require_server().await;
    let url = format!("s3://{}/adapters-{}", bucket(), uuid::Uuid::new_v4());
    objects::open_with(&url, &options()).expect("S3 store opens")
}

#[tokio::test]
async fn put_get_head_delete_through_an_s3_url() {
    let objects = fresh_store().await;
    let store = objects.store;
    let key = Path::from("models/ring.stl");
    let bytes = b"solid ring\nendsolid ring\n".to_vec();
    store.put(&key, bytes.clone().into()).await.expect("put");
    let meta = store.head(&key).await.expect("head");
    assert_eq!(meta.size, bytes.len() as u64);
    let got = store.get(&key).await.expect("get").bytes().await.unwrap();
    assert_eq!(&got[..], &bytes[..]);
    store.delete(&key).await.expect("delete");
    match store.head(&key).await {
        Err(object_store::Error::NotFound { .. }) => {}
        other => panic!("a deleted object must be gone, got {other:?}"),
    }
}

#[tokio::test]
async fn wrong_credentials_are_refused_by_the_server() {
    require_server().await;
    let url = format!("s3://{}/adapters-{}", bucket(), uuid::Uuid::new_v4());
    let bad = S3Options {
        secret_access_key: Some("not-the-secret".into()),
        ..options()
    };
    let store = objects::open_with(&url, &bad).unwrap().store;
    let err = store
        .put(&Path::from("x"), b"x".to_vec().into())
        .await
        .expect_err("a wrong secret must be refused");
    assert!(
        err.to_string().contains("403") || err.to_string().contains("Signature"),
        "{err}"
    );
}

#[tokio::test]
async fn presigned_put_works_once_signed_and_fails_when_tampered_or_expired() {
    let objects = fresh_store().await;
    let presigner = objects.presigner.clone().expect("an S3 store presigns");
    let client = reqwest::Client::new();
    let body = b"solid presigned\nendsolid presigned\n".to_vec();

    let key = Path::from("models/direct.stl");
    let url = presigner
        .put_url(&key, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let r = client.put(&url).body(body.clone()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let got = objects
        .store
        .get(&key)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        &got[..],
        &body[..],
        "the object lands under the store's prefix"
    );

    // One character of the signature changed.
    let other = Path::from("models/tampered.stl");
    let url = presigner
        .put_url(&other, Duration::from_secs(60))
        .await
        .unwrap();
    let last = url.chars().last().unwrap();
    let tampered = format!(
        "{}{}",
        &url[..url.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    let r = client
        .put(&tampered)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "{}",
        r.text().await.unwrap()
    );
    // The URL is for one key: it does not write another.
    let moved = url.replace("tampered.stl", "elsewhere.stl");
    let r = client.put(&moved).body(body.clone()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(matches!(
        objects.store.head(&other).await,
        Err(object_store::Error::NotFound { .. })
    ));

    // Expired.
    let late = Path::from("models/late.stl");
    let url = presigner
        .put_url(&late, Duration::from_secs(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = client.put(&url).body(body).send().await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "{}",
        r.text().await.unwrap()
    );
    assert!(matches!(
        objects.store.head(&late).await,
        Err(object_store::Error::NotFound { .. })
    ));
}

#[test]
fn bad_urls_and_half_credentials_say_what_is_wrong() {
    let e = objects::open_with("s3://", &options())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("names no bucket"), "{e}");
    let e = objects::open_with("gs://bucket", &options())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("unsupported object storage URL"), "{e}");
    let half = S3Options {
        secret_access_key: None,
        ..options()
    };
    // AWS_SECRET_ACCESS_KEY may be set in a developer's shell; then this is not "half".
    if std::env::var_os("AWS_SECRET_ACCESS_KEY").is_none() {
        let e = objects::open_with("s3://b", &half)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("no secret access key"), "{e}");
    }
    let local = tempfile::tempdir().unwrap();
    let o = objects::open_with(local.path().to_str().unwrap(), &S3Options::default()).unwrap();
    assert!(
        o.presigner.is_none(),
        "a local directory has no URLs to hand out"
    );
}
