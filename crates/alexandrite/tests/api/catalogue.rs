//! Previews of models, and the versioned materials catalogue.

use crate::helpers::spawn_app;
use domain::Role;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn every_priced_model_has_a_preview_only_its_owner_and_staff_can_see() {
    let app = spawn_app().await;
    let key = app.b2b_key.clone();
    let id = app.upload_model(&key, "jewelry_ring.obj", "AU585Y").await;
    app.wait_status(&key, &id, "AWAITING_CONFIRMATION").await;
    let r = app
        .client
        .get(app.url(&format!("/api/v1/models/{id}/preview.png")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/png");
    let png = r.bytes().await.unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 5_000,
        "a real picture: {} bytes",
        png.len()
    );
    let op = app.operator("Viewer").await;
    let r = app
        .client
        .get(app.url(&format!("/api/v1/models/{id}/preview.png")))
        .bearer_auth(&op)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let rival = app
        .key_for(Role::Customer, "x@rival.test", "Rival", Some("rival"))
        .await;
    let r = app
        .client
        .get(app.url(&format!("/api/v1/models/{id}/preview.png")))
        .bearer_auth(&rival)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn a_new_material_price_makes_a_new_version_and_leaves_given_quotes_alone() {
    let app = spawn_app().await;
    let key = app.b2b_key.clone();
    let manager = app
        .key_for(Role::Manager, "boss@alexandrite.test", "Boss", None)
        .await;
    let first = app
        .upload_model(&key, "generated/cube_10mm_12tri.bin.stl", "AG925")
        .await;
    let before = app.wait_status(&key, &first, "AWAITING_CONFIRMATION").await;
    assert_eq!(before["price"]["material_version"], 1);
    assert_eq!(
        before["price"]["breakdown"]["lines"][0]["amount_minor"],
        134_784
    ); // 10.4 g × 120 ₽ × 1.08

    // Silver doubles: 240,00 ₽ per gram.
    let edit = json!({"name_en": "925 sterling silver", "name_ru": "Серебро 925", "density_g_cm3": 10.4, "price_per_gram_minor": 24_000});
    let (s, m) = app
        .client
        .put(app.url("/mes/api/materials/AG925"))
        .bearer_auth(&manager)
        .json(&edit)
        .send()
        .await
        .map(|r| (r.status(), r))
        .unwrap();
    let m: serde_json::Value = m.json().await.unwrap();
    assert_eq!((s, m["version"].as_i64()), (StatusCode::OK, Some(2)));

    let second = app
        .upload_model(&key, "generated/cube_10mm_12tri.ascii.stl", "AG925")
        .await;
    let after = app
        .wait_status(&key, &second, "AWAITING_CONFIRMATION")
        .await;
    assert_eq!(after["price"]["material_version"], 2);
    assert_eq!(
        after["price"]["breakdown"]["lines"][0]["amount_minor"],
        269_568
    );
    let (_, again) = app.order(&key, &first).await;
    assert_eq!(
        again["price"], before["price"],
        "the first quote never changes"
    );

    // Only managers, only sensible values.
    let op = app.operator("Nope").await;
    let r = app
        .client
        .put(app.url("/mes/api/materials/AG925"))
        .bearer_auth(&op)
        .json(&edit)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let bad =
        json!({"name_en": "x", "name_ru": "x", "density_g_cm3": 0.0, "price_per_gram_minor": 1});
    let r = app
        .client
        .put(app.url("/mes/api/materials/AG925"))
        .bearer_auth(&manager)
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["error"]["field"], "density_g_cm3");

    // The back-office page shows the versions.
    let maria = app
        .login("maria@alexandrite.local", "manager-demo-2026")
        .await;
    let html = maria
        .get(app.url("/crm/materials"))
        .header("accept-language", "en")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Version history") && html.contains("Boss") && html.contains("240,00"),
        "{html}"
    );
    let r = maria
        .post(app.url("/crm/materials"))
        .form(&[
            ("code", "au999"),
            ("name_ru", "Золото 999"),
            ("name_en", "999 gold"),
            ("density_g_cm3", "19,3"),
            ("price_per_gram", "11 000,00"),
            ("active", "true"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, list) = app.get(&key, "/api/v1/materials").await;
    let added = list["materials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["code"] == "AU999")
        .expect("new material listed");
    assert_eq!(
        (
            added["density_g_cm3"].as_f64(),
            added["price_per_gram_minor"].as_i64()
        ),
        (Some(19.3), Some(1_100_000))
    );
    app.stop().await;
}
