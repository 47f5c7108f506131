//! The platform on S3 (s3s-fs, which checks signatures and expiry): direct
//! uploads through presigned URLs, their refusals, and the multipart path.

use crate::helpers::{TestApp, model, spawn_on_s3};
use domain::Role;
use reqwest::StatusCode;
use reqwest::multipart::Form;
use serde_json::{Value, json};
use std::time::Duration;

const RING: &str = "ring_showcase_ring.bin.stl";

/// `POST /api/v1/uploads`.
async fn ask_upload(app: &TestApp, key: &str, size: usize, name: &str) -> (StatusCode, Value) {
    app.post(
        key,
        "/api/v1/uploads",
        Some(json!({ "size_bytes": size, "file_name": name })),
    )
    .await
}

/// PUTs bytes to a presigned URL, as a browser or a B2B program would: no credentials.
async fn put(url: &str, bytes: Vec<u8>) -> StatusCode {
    reqwest::Client::new()
        .put(url)
        .body(bytes)
        .send()
        .await
        .expect("PUT to S3")
        .status()
}

/// `POST /api/v1/models` naming an upload (JSON body).
async fn name_upload(
    app: &TestApp,
    key: &str,
    upload_id: &str,
    idem: Option<&str>,
) -> (StatusCode, Value, bool) {
    let mut req = app
        .client
        .post(app.url("/api/v1/models"))
        .bearer_auth(key)
        .json(&json!({ "upload_id": upload_id, "material": "AU585Y" }));
    if let Some(k) = idem {
        req = req.header("Idempotency-Key", k);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let replayed = r.headers().contains_key("idempotent-replayed");
    (status, r.json().await.unwrap_or(Value::Null), replayed)
}

async fn order_count(app: &TestApp, key: &str) -> usize {
    let (_, list) = app.get(key, "/api/v1/orders").await;
    list["orders"].as_array().expect("orders").len()
}

fn code(e: &Value) -> &str {
    e["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn a_b2b_client_uploads_directly_to_s3_and_the_order_is_priced_from_there() {
    let app = spawn_on_s3(|_| {}).await;
    let key = app.b2b_key.clone();
    let bytes = model(RING);

    let (s, up) = ask_upload(&app, &key, bytes.len(), RING).await;
    assert_eq!(s, StatusCode::CREATED, "{up}");
    assert_eq!(up["method"], "PUT");
    assert_eq!(up["size_bytes"], bytes.len());
    assert_eq!(up["file_name"], RING);
    let url = up["url"].as_str().unwrap();
    assert!(url.starts_with(&crate::helpers::s3_endpoint()), "{url}");
    assert!(
        !url.contains(RING),
        "the object key is generated, not the file name: {url}"
    );
    let expires = time::OffsetDateTime::parse(
        up["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = expires - time::OffsetDateTime::now_utc();
    assert!(
        left > time::Duration::minutes(10) && left <= time::Duration::minutes(15),
        "{left}"
    );

    assert_eq!(put(url, bytes.clone()).await, StatusCode::OK);
    let upload_id = up["upload_id"].as_str().unwrap();
    let (s, body, replayed) = name_upload(&app, &key, upload_id, Some("direct-ring-1")).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    assert!(!replayed);
    assert_eq!(body["status"], "PRICING");
    let id = body["order_id"].as_str().unwrap().to_string();

    // Priced by the worker, which read the model back from S3.
    let priced = app.wait_status(&key, &id, "AWAITING_CONFIRMATION").await;
    assert_eq!(priced["geometry"]["triangles"], 11422, "{priced}");
    assert!(priced["price"]["total_minor"].as_i64().unwrap() > 0);

    // A retry with the same Idempotency-Key is the same order, not an "already used".
    let (s, again, replayed) = name_upload(&app, &key, upload_id, Some("direct-ring-1")).await;
    assert_eq!(
        (s, again["order_id"].as_str()),
        (StatusCode::ACCEPTED, Some(id.as_str()))
    );
    assert!(replayed);
    // The same key with another request is a conflict.
    let (s2, up2) = ask_upload(&app, &key, bytes.len(), RING).await;
    assert_eq!(s2, StatusCode::CREATED);
    assert_eq!(
        put(up2["url"].as_str().unwrap(), bytes.clone()).await,
        StatusCode::OK
    );
    let (s, e, _) = name_upload(
        &app,
        &key,
        up2["upload_id"].as_str().unwrap(),
        Some("direct-ring-1"),
    )
    .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::CONFLICT, "idempotency_key_reused"),
        "{e}"
    );

    // The multipart form can name an upload too.
    let form = Form::new()
        .text("upload_id", up2["upload_id"].as_str().unwrap().to_string())
        .text("material", "AG925");
    let r = app
        .client
        .post(app.url("/api/v1/models"))
        .bearer_auth(&key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let second: Value = r.json().await.unwrap();
    let priced = app
        .wait_status(
            &key,
            second["order_id"].as_str().unwrap(),
            "AWAITING_CONFIRMATION",
        )
        .await;
    assert_eq!(priced["geometry"]["triangles"], 11422);
    assert_eq!(order_count(&app, &key).await, 2);
    app.stop().await;
}

#[tokio::test]
async fn bad_direct_uploads_get_a_specific_error_and_make_no_order() {
    let app = spawn_on_s3(|c| c.limits.max_upload_bytes = 2_000_000).await;
    let key = app.b2b_key.clone();
    let bytes = model(RING);

    // Asking: sizes and roles.
    let (s, e) = ask_upload(&app, &key, 2_000_001, RING).await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        "{e}"
    );
    let (s, e) = ask_upload(&app, &key, 0, RING).await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNPROCESSABLE_ENTITY, "empty_file"),
        "{e}"
    );
    let (s, e) = app
        .post(&key, "/api/v1/uploads", Some(json!({ "file_name": RING })))
        .await;
    assert_eq!((s, code(&e)), (StatusCode::BAD_REQUEST, "bad_json"), "{e}");
    let op = app.operator("Olga").await;
    let (s, _) = ask_upload(&app, &op, bytes.len(), RING).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Size mismatch: one byte more declared than sent.
    let (_, up) = ask_upload(&app, &key, bytes.len() + 1, RING).await;
    assert_eq!(
        put(up["url"].as_str().unwrap(), bytes.clone()).await,
        StatusCode::OK
    );
    let id = up["upload_id"].as_str().unwrap();
    let (s, e, _) = name_upload(&app, &key, id, None).await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNPROCESSABLE_ENTITY, "upload_size_mismatch")
    );
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!(
            "is {} bytes, {} were declared",
            bytes.len(),
            bytes.len() + 1
        )),
        "{msg}"
    );

    // Nothing uploaded.
    let (_, up) = ask_upload(&app, &key, bytes.len(), RING).await;
    let id = up["upload_id"].as_str().unwrap();
    let (s, e, _) = name_upload(&app, &key, id, None).await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNPROCESSABLE_ENTITY, "nothing_uploaded"),
        "{e}"
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing was uploaded")
    );

    // Not a model, checked by content like the multipart path.
    let text = b"Dear jeweller, please make me a ring.\n".repeat(10);
    let (_, up) = ask_upload(&app, &key, text.len(), "ring.stl").await;
    assert_eq!(put(up["url"].as_str().unwrap(), text).await, StatusCode::OK);
    let (s, e, _) = name_upload(&app, &key, up["upload_id"].as_str().unwrap(), None).await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNPROCESSABLE_ENTITY, "not_a_model"),
        "{e}"
    );

    // Unknown, and another tenant's: the same answer.
    let (s, e, _) = name_upload(&app, &key, "01999999-0000-7000-8000-000000000000", None).await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown_upload"),
        "{e}"
    );
    let other = app
        .key_for(Role::Customer, "bob@other.test", "Bob", Some("other-brand"))
        .await;
    let (_, theirs) = ask_upload(&app, &other, bytes.len(), RING).await;
    assert_eq!(
        put(theirs["url"].as_str().unwrap(), bytes.clone()).await,
        StatusCode::OK
    );
    let theirs_id = theirs["upload_id"].as_str().unwrap();
    let (s, e, _) = name_upload(&app, &key, theirs_id, None).await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown_upload"),
        "{e}"
    );

    assert_eq!(
        order_count(&app, &key).await,
        0,
        "no refusal may leave an order"
    );

    // Reuse: the owner uses it once; the second time is a conflict naming the order.
    let (s, first, _) = name_upload(&app, &other, theirs_id, None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{first}");
    let (s, e, _) = name_upload(&app, &other, theirs_id, None).await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::CONFLICT, "upload_already_used"),
        "{e}"
    );
    assert_eq!(e["error"]["details"]["order_id"], first["order_id"]);
    // The CRM learns of orders through the bus: once this one is there, a refused
    // request's order (were there one, made earlier) would be there too.
    app.wait_status(
        &other,
        first["order_id"].as_str().unwrap(),
        "AWAITING_CONFIRMATION",
    )
    .await;
    assert_eq!(order_count(&app, &other).await, 1);
    assert_eq!(order_count(&app, &key).await, 0);

    // Both a file and an upload: refused, not guessed.
    let form = Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(RING),
        )
        .text("upload_id", theirs_id.to_string())
        .text("material", "AU585Y");
    let r = app
        .client
        .post(app.url("/api/v1/models"))
        .bearer_auth(&key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(order_count(&app, &key).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn expired_upload_urls_and_records_are_refused() {
    let app = spawn_on_s3(|c| c.mes.upload_url_expiry_secs = Some(1)).await;
    let key = app.b2b_key.clone();
    let bytes = model(RING);

    // Uploaded in time, named too late.
    let (_, in_time) = ask_upload(&app, &key, bytes.len(), RING).await;
    assert_eq!(
        put(in_time["url"].as_str().unwrap(), bytes.clone()).await,
        StatusCode::OK
    );
    // Asked for, used too late: S3 itself refuses the PUT.
    let (_, late) = ask_upload(&app, &key, bytes.len(), RING).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        put(late["url"].as_str().unwrap(), bytes.clone()).await,
        StatusCode::FORBIDDEN
    );
    for up in [&in_time, &late] {
        let (s, e, _) = name_upload(&app, &key, up["upload_id"].as_str().unwrap(), None).await;
        assert_eq!(
            (s, code(&e)),
            (StatusCode::UNPROCESSABLE_ENTITY, "upload_expired"),
            "{e}"
        );
        assert!(e["error"]["message"].as_str().unwrap().contains("expired"));
    }
    assert_eq!(order_count(&app, &key).await, 0);
    app.stop().await;
}

/// The object key of a presigned URL (`…/models/<uuid>?X-Amz-…`), as MES names it.
fn object_key(url: &str) -> object_store::path::Path {
    let path = url.split('?').next().unwrap();
    let at = path.rfind("models/").expect("a generated models/ key");
    object_store::path::Path::from(&path[at..])
}

#[tokio::test]
async fn expired_unused_uploads_are_removed_and_used_ones_kept() {
    let app = spawn_on_s3(|c| {
        c.mes.upload_url_expiry_secs = Some(3);
        c.mes.upload_sweep_secs = Some(1);
        c.mes.upload_sweep_grace_secs = Some(0);
    })
    .await;
    let key = app.b2b_key.clone();
    let bytes = model(RING);
    let store = app.store();

    // One upload becomes an order at once; the other is never named.
    let (_, used) = ask_upload(&app, &key, bytes.len(), RING).await;
    let used_url = used["url"].as_str().unwrap();
    assert_eq!(put(used_url, bytes.clone()).await, StatusCode::OK);
    let (s, body, _) = name_upload(&app, &key, used["upload_id"].as_str().unwrap(), None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    let order = body["order_id"].as_str().unwrap().to_string();
    let (_, unused) = ask_upload(&app, &key, bytes.len(), RING).await;
    let unused_url = unused["url"].as_str().unwrap();
    assert_eq!(put(unused_url, bytes.clone()).await, StatusCode::OK);
    assert!(
        store.head(&object_key(unused_url)).await.is_ok(),
        "uploaded"
    );

    // Expired (3 s) and swept (every second): the unused object goes.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match store.head(&object_key(unused_url)).await {
            Err(object_store::Error::NotFound { .. }) => break,
            other => assert!(
                std::time::Instant::now() < deadline,
                "the expired upload's object is still there: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The order's model stays, and the order is priced from it.
    assert!(
        store.head(&object_key(used_url)).await.is_ok(),
        "the used upload's object was kept"
    );
    app.wait_status(&key, &order, "AWAITING_CONFIRMATION").await;
    // Naming the swept upload is refused as expired, and makes no order.
    let (s, e, _) = name_upload(&app, &key, unused["upload_id"].as_str().unwrap(), None).await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNPROCESSABLE_ENTITY, "upload_expired"),
        "{e}"
    );
    assert_eq!(order_count(&app, &key).await, 1);
    // Counted, and the sweep runs as a supervised task.
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("alexandrite_uploads_removed_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("alexandrite_task_restarts_total{task=\"mes_upload_sweep\"} 0\n"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_multipart_path_still_works_with_s3_as_the_store() {
    let app = spawn_on_s3(|_| {}).await;
    let key = app.b2b_key.clone();
    let id = app.upload_model(&key, RING, "AU585Y").await;
    let priced = app.wait_status(&key, &id, "AWAITING_CONFIRMATION").await;
    assert_eq!(priced["geometry"]["triangles"], 11422);
    // The preview the worker rendered is in S3 too.
    let r = app
        .client
        .get(app.url(&format!("/api/v1/models/{id}/preview.png")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn the_embedded_store_says_direct_uploads_need_s3() {
    // The local directory store, whatever the profile's other stores.
    let app = crate::helpers::spawn_with(|c| c.mes.objects_url = None).await;
    let (s, e) = ask_upload(&app, &app.b2b_key, 1000, RING).await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::NOT_FOUND, "direct_uploads_unavailable"),
        "{e}"
    );
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(msg.contains("s3://") && msg.contains("multipart"), "{msg}");
    app.stop().await;
}

/// A closed torus as binary STL: `2·n·m` triangles (50 bytes each), so its
/// size can be chosen to need several multipart parts.
fn torus_stl(n: usize, m: usize) -> Vec<u8> {
    let (big, small) = (20.0f32, 3.0f32);
    let at = |i: usize, j: usize| {
        let (u, v) = (
            (i % n) as f32 / n as f32 * std::f32::consts::TAU,
            (j % m) as f32 / m as f32 * std::f32::consts::TAU,
        );
        let r = big + small * v.cos();
        [r * u.cos(), r * u.sin(), small * v.sin()]
    };
    let mut out = vec![0u8; 80];
    out.extend_from_slice(&((2 * n * m) as u32).to_le_bytes());
    for i in 0..n {
        for j in 0..m {
            let (a, b, c, d) = (at(i, j), at(i + 1, j), at(i + 1, j + 1), at(i, j + 1));
            for tri in [[a, b, c], [a, c, d]] {
                out.extend_from_slice(&[0u8; 12]);
                for p in tri {
                    for x in p {
                        out.extend_from_slice(&x.to_le_bytes());
                    }
                }
                out.extend_from_slice(&[0u8; 2]);
            }
        }
    }
    out
}

#[tokio::test]
async fn large_models_are_uploaded_in_presigned_parts_and_completed_by_mes() {
    const PART: u64 = 5 << 20;
    let app = spawn_on_s3(|c| c.mes.multipart_part_bytes = Some(PART)).await;
    let key = app.b2b_key.clone();
    let bytes = torus_stl(300, 200); // 120 000 triangles, 6 000 084 bytes
    assert!(bytes.len() as u64 > PART);

    let (s, up) = ask_upload(&app, &key, bytes.len(), "torus.stl").await;
    assert_eq!(s, StatusCode::CREATED, "{up}");
    assert_eq!(up["method"], "PUT_PARTS", "{up}");
    assert_eq!(up["part_size_bytes"], PART);
    let parts = up["parts"].as_array().unwrap().clone();
    assert_eq!(parts.len(), 2, "{up}");
    assert_eq!(parts[0]["size_bytes"], PART);
    assert_eq!(parts[1]["offset"], PART);
    assert_eq!(parts[1]["size_bytes"], bytes.len() as u64 - PART);
    let upload_id = up["upload_id"].as_str().unwrap().to_string();
    let slice = |p: &Value| {
        let (o, n) = (
            p["offset"].as_u64().unwrap() as usize,
            p["size_bytes"].as_u64().unwrap() as usize,
        );
        bytes[o..o + n].to_vec()
    };
    let url = |p: &Value| p["url"].as_str().unwrap().to_string();

    // A part URL is signed for its own part number: another one is refused by S3.
    let forged = url(&parts[0]).replace("partNumber=1", "partNumber=3");
    assert_ne!(forged, url(&parts[0]));
    // (A short body: S3 refuses before reading it, and a long one would meet a closed socket.)
    assert_eq!(
        put(&forged, b"solid x".to_vec()).await,
        StatusCode::FORBIDDEN
    );

    // Only the first part: MES names what is missing and makes no order.
    assert_eq!(put(&url(&parts[0]), slice(&parts[0])).await, StatusCode::OK);
    let (s, e, _) = name_upload(&app, &key, &upload_id, None).await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNPROCESSABLE_ENTITY, "upload_incomplete"),
        "{e}"
    );
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("1 of 2 parts") && msg.contains("part 2"),
        "{msg}"
    );
    // The second part cut short: its size is named.
    assert_eq!(
        put(&url(&parts[1]), b"solid".to_vec()).await,
        StatusCode::OK
    );
    let (s, e, _) = name_upload(&app, &key, &upload_id, None).await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNPROCESSABLE_ENTITY, "upload_incomplete"),
        "{e}"
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("part 2 is 5 bytes"),
        "{e}"
    );
    assert_eq!(order_count(&app, &key).await, 0);

    // Both parts right (a part may be sent again): MES joins them and prices the model.
    let mut etags = vec![];
    for p in &parts {
        let r = reqwest::Client::new()
            .put(url(p))
            .body(slice(p))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let etag = r.headers()["etag"].to_str().unwrap().to_string();
        etags.push(json!({"part_number": p["part_number"], "etag": etag}));
    }
    // s3s-fs leaves the ETags out of its list of parts (AWS lists them), so
    // here the client must name them, as it would for any S3 client library.
    let (s, e, _) = name_upload(&app, &key, &upload_id, None).await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNPROCESSABLE_ENTITY, "part_etag_missing"),
        "{e}"
    );
    let r = app
        .client
        .post(app.url("/api/v1/models"))
        .bearer_auth(&key)
        .header("Idempotency-Key", "torus-1")
        .json(&json!({ "upload_id": upload_id, "material": "AU585Y", "parts": etags }))
        .send()
        .await
        .unwrap();
    let s = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    let id = body["order_id"].as_str().unwrap().to_string();
    let priced = app.wait_status(&key, &id, "AWAITING_CONFIRMATION").await;
    assert_eq!(priced["geometry"]["triangles"], 120_000, "{priced}");
    // The joined object is the file, byte for byte.
    let stored: Vec<_> = futures::TryStreamExt::try_collect(app.store().list(None))
        .await
        .unwrap();
    assert!(
        stored.iter().any(|o| o.size == bytes.len() as u64),
        "no object of the file's size among {stored:?}"
    );
    // A retry after the join (S3 has forgotten the multipart upload) is the same order.
    let (s, again, replayed) = name_upload(&app, &key, &upload_id, Some("torus-1")).await;
    assert_eq!(
        (s, again["order_id"].as_str()),
        (StatusCode::ACCEPTED, Some(id.as_str()))
    );
    assert!(replayed);

    // Small files still get one PUT.
    let (s, small) = ask_upload(&app, &key, 1000, "small.stl").await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(small["method"], "PUT");
    assert!(
        small["url"].is_string() && small.get("parts").is_none(),
        "{small}"
    );
    app.stop().await;
}
