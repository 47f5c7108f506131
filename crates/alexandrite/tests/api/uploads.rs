//! Bad uploads get a specific error and leave nothing behind; Idempotency-Key
//! returns the same order.

use crate::helpers::{TestApp, model, spawn_app, spawn_with};
use reqwest::StatusCode;
use serde_json::Value;

/// Objects in the app's storage (local directory or S3 prefix).
async fn stored_objects(app: &TestApp) -> usize {
    use futures::TryStreamExt;
    let all: Vec<_> = app
        .store()
        .list(None)
        .try_collect()
        .await
        .expect("listing objects");
    all.len()
}

async fn assert_nothing_left(app: &TestApp) {
    let (_, list) = app.get(&app.b2b_key, "/api/v1/orders").await;
    assert_eq!(
        list["orders"].as_array().unwrap().len(),
        0,
        "no order may be left: {list}"
    );
    let op = app.operator("Checker").await;
    let (_, queue) = app.get(&op, "/mes/api/queue").await;
    assert_eq!(queue["orders"].as_array().unwrap().len(), 0);
    assert_eq!(stored_objects(app).await, 0, "no stored model may be left");
}

async fn error_of(r: reqwest::Response) -> (StatusCode, Value) {
    let s = r.status();
    (s, r.json().await.unwrap())
}

#[tokio::test]
async fn bad_uploads_are_refused_specifically_and_leave_nothing() {
    let app = spawn_with(|c| c.limits.max_upload_bytes = 100_000).await;
    let key = app.b2b_key.clone();

    let (s, e) = error_of(app.upload(&key, "empty.stl", vec![], "AU585Y", None).await).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("empty_file"))
    );
    assert_eq!(e["error"]["field"], "file");

    let text = b"Dear jeweller, please make me a ring.\n".repeat(10);
    let (s, e) = error_of(app.upload(&key, "ring.stl", text, "AU585Y", None).await).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("not_a_model"))
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not an STL/OBJ/PLY/3MF"),
        "{e}"
    );

    let png = [
        &[0x89u8, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a][..],
        &[0u8; 200],
    ]
    .concat();
    let (s, e) = error_of(app.upload(&key, "photo.stl", png, "AU585Y", None).await).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("not_a_model"))
    );

    // 571 184 bytes against a limit of 100 000.
    let (s, e) = error_of(
        app.upload(
            &key,
            "ring.stl",
            model("ring_showcase_ring.bin.stl"),
            "AU585Y",
            None,
        )
        .await,
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("too_large"))
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("100000 bytes"),
        "{e}"
    );

    let cube = model("generated/cube_10mm_12tri.bin.stl");
    let (s, e) = error_of(
        app.upload(&key, "cube.stl", cube.clone(), "UNOBTAINIUM", None)
            .await,
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_material"))
    );
    assert_eq!(e["error"]["field"], "material");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("AU585Y"),
        "the error lists the known codes: {e}"
    );

    let (s, e) = error_of(app.upload(&key, "cube.stl", cube.clone(), "", None).await).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("missing_material"))
    );

    let form = reqwest::multipart::Form::new().text("material", "AU585Y");
    let r = app
        .client
        .post(app.url("/api/v1/models"))
        .bearer_auth(&key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (s, e) = error_of(r).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("missing_file"))
    );

    let r = app
        .client
        .post(app.url("/api/v1/models"))
        .bearer_auth("alx_not_a_key")
        .body("x")
        .send()
        .await
        .unwrap();
    let (s, e) = error_of(r).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_api_key"))
    );

    let r = app
        .client
        .post(app.url("/api/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    assert_nothing_left(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_returns_the_same_order_and_never_a_second_one() {
    let app = spawn_app().await;
    let key = app.b2b_key.clone();
    let cube = model("generated/cube_10mm_12tri.bin.stl");

    // The same key sent three times at once, then again later: one order.
    let sends =
        (0..3).map(|_| app.upload(&key, "cube.stl", cube.clone(), "AG925", Some("order-42")));
    let responses = futures::future::join_all(sends).await;
    let mut ids = vec![];
    for r in responses {
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        ids.push(
            r.json::<Value>().await.unwrap()["order_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let again = app
        .upload(&key, "cube.stl", cube.clone(), "AG925", Some("order-42"))
        .await;
    assert_eq!(again.headers().get("idempotent-replayed").unwrap(), "true");
    ids.push(
        again.json::<Value>().await.unwrap()["order_id"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    ids.dedup();
    assert_eq!(ids.len(), 1, "one order for one key: {ids:?}");

    // The same key with another file is a client error, not a new order.
    let r = app
        .upload(
            &key,
            "ring.stl",
            model("ring_showcase_ring.bin.stl"),
            "AG925",
            Some("order-42"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "idempotency_key_reused"
    );

    app.wait_status(&key, &ids[0], "AWAITING_CONFIRMATION")
        .await;
    let (_, list) = app.get(&key, "/api/v1/orders").await;
    assert_eq!(list["orders"].as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn the_order_list_pages_with_a_cursor_newest_first() {
    let app = spawn_app().await;
    let key = app.b2b_key.clone();
    let mut ids = vec![];
    for _ in 0..5 {
        ids.push(
            app.upload_model(&key, "generated/cube_10mm_12tri.bin.stl", "AG925")
                .await,
        );
    }
    for id in &ids {
        app.order(&key, id).await; // waits until the CRM has it
    }
    let mut seen = vec![];
    let mut path = "/api/v1/orders?limit=2".to_string();
    loop {
        let (status, page) = app.get(&key, &path).await;
        assert_eq!(status, StatusCode::OK);
        let orders = page["orders"].as_array().unwrap();
        assert!(orders.len() <= 2);
        seen.extend(
            orders
                .iter()
                .map(|o| o["order_id"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/orders?limit=2&cursor={c}"),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "every order once, newest first");
    let (status, e) = app.get(&key, "/api/v1/orders?cursor=garbage").await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("bad_cursor"))
    );
    app.stop().await;
}
