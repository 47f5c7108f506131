//! Money at the edges: a model too large, too small for the casting process
//! is rejected with a reason in both languages and cannot be confirmed; a
//! manager's out-of-range material numbers are a 422 naming the field, and
//! nothing is saved.

use crate::helpers::{TestApp, spawn_app};
use domain::Role;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

/// A closed cube of `side` mm as binary STL (12 triangles, facing out).
fn cube_stl(side: f32) -> Vec<u8> {
    let v = |i: usize| {
        [
            (i & 1) as f32 * side,
            (i >> 1 & 1) as f32 * side,
            (i >> 2 & 1) as f32 * side,
        ]
    };
    // Two triangles per face, counter-clockwise seen from outside.
    const FACES: [[usize; 4]; 6] = [
        [0, 2, 3, 1], // z = 0
        [4, 5, 7, 6], // z = side
        [0, 1, 5, 4], // y = 0
        [2, 6, 7, 3], // y = side
        [0, 4, 6, 2], // x = 0
        [1, 3, 7, 5], // x = side
    ];
    let mut out = vec![0u8; 80];
    out.extend_from_slice(&12u32.to_le_bytes());
    for [a, b, c, d] in FACES {
        for tri in [[a, b, c], [a, c, d]] {
            out.extend_from_slice(&[0u8; 12]);
            for p in tri {
                for x in v(p) {
                    out.extend_from_slice(&x.to_le_bytes());
                }
            }
            out.extend_from_slice(&[0u8; 2]);
        }
    }
    out
}

async fn upload(app: &TestApp, key: &str, name: &str, bytes: Vec<u8>, material: &str) -> String {
    let r = app.upload(key, name, bytes, material, None).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let body: Value = r.json().await.unwrap();
    body["order_id"].as_str().unwrap().to_string()
}

async fn html(client: &Client, url: String) -> String {
    let r = client.get(url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.text().await.unwrap()
}

#[tokio::test]
async fn a_100_m_gold_cube_is_rejected_as_too_large_to_cast_and_cannot_be_confirmed() {
    let app = spawn_app().await;
    let key = app.b2b_key.clone();
    // A control in the same run: the 10 mm cube is quoted as before.
    let ok = upload(&app, &key, "cube_10mm.stl", cube_stl(10.0), "AU585Y").await;
    let quoted = app.wait_status(&key, &ok, "AWAITING_CONFIRMATION").await;
    assert_eq!(
        quoted["price"]["breakdown"]["lines"][0]["amount_minor"],
        10_611_000
    );

    // 100 m on a side: 1.31e16 mg of gold, whose price used to overflow,
    // go negative and be topped up to the 3 000 ₽ minimum.
    let id = upload(&app, &key, "cube_100m.stl", cube_stl(100_000.0), "AU585Y").await;
    let rejected = app.wait_status(&key, &id, "REJECTED").await;
    assert_eq!(rejected["rejection"]["code"], "too_large_to_cast");
    let reason = rejected["rejection"]["reason"].as_str().unwrap();
    let en = "too large to cast: 100,000 × 100,000 × 100,000 mm, this process takes at most 120 × 120 × 80 mm";
    let ru = "слишком большая для литья: 100\u{a0}000 × 100\u{a0}000 × 100\u{a0}000 мм, \
              этот процесс принимает не более 120 × 120 × 80 мм";
    assert_eq!(reason, format!("{en} / {ru}"));
    assert_eq!(rejected["price"], Value::Null);
    assert_eq!(rejected["geometry"]["bbox_mm"]["x"], 100_000.0);

    let (status, body) = app
        .post(&key, &format!("/api/v1/orders/{id}/confirm"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["details"]["current_status"], "REJECTED");
    let (_, again) = app.order(&key, &id).await;
    assert_eq!(again["status"], "REJECTED");

    // The back office shows the reason on its page, in either language.
    let maria = app
        .login("maria@alexandrite.local", "manager-demo-2026")
        .await;
    for lang in ["ru", "en"] {
        let page = html(&maria, app.url(&format!("/crm/orders/{id}?lang={lang}"))).await;
        assert!(
            page.contains("id=\"reject-reason\"") && page.contains(en) && page.contains(ru),
            "{lang}: {page}"
        );
    }
    // MES's order page for operators, too.
    let page = html(&maria, app.url(&format!("/mes/orders/{id}"))).await;
    assert!(page.contains(en) && page.contains(ru), "{page}");
    app.stop().await;
}

#[tokio::test]
async fn a_model_below_the_minimum_size_is_rejected_as_too_small() {
    let app = spawn_app().await;
    let key = app.b2b_key.clone();
    let id = upload(&app, &key, "speck.stl", cube_stl(0.2), "AG925").await;
    let rejected = app.wait_status(&key, &id, "REJECTED").await;
    assert_eq!(rejected["rejection"]["code"], "too_small_to_cast");
    let reason = rejected["rejection"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(
            "too small to cast: 0.2 × 0.2 × 0.2 mm, this process needs at least 1 × 1 × 0.5 mm / "
        ) && reason.ends_with(
            "слишком маленькая для литья: 0,2 × 0,2 × 0,2 мм, этому процессу нужно не менее 1 × 1 × 0,5 мм"
        ),
        "{reason}"
    );
    let (status, _) = app
        .post(&key, &format!("/api/v1/orders/{id}/confirm"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    app.stop().await;
}

/// The catalogue entry of `code` in the customers' list.
async fn listed(app: &TestApp, code: &str) -> Option<Value> {
    let (_, list) = app.get(&app.b2b_key, "/api/v1/materials").await;
    list["materials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["code"] == code)
        .cloned()
}

#[tokio::test]
async fn out_of_range_material_numbers_are_422_naming_the_field_and_nothing_is_saved() {
    let app = spawn_app().await;
    let manager = app
        .key_for(Role::Manager, "boss@alexandrite.test", "Boss", None)
        .await;
    let before = listed(&app, "AG925").await.unwrap();
    assert_eq!(before["version"], 1);
    let silver = |density: Value, price: Value| {
        json!({"name_en": "925 sterling silver", "name_ru": "Серебро 925",
               "density_g_cm3": density, "price_per_gram_minor": price})
    };
    let cases = [
        (silver(json!(10.4), json!(i64::MAX)), "price_per_gram_minor"),
        (silver(json!(10.4), json!(0)), "price_per_gram_minor"),
        (silver(json!(10.4), json!(-12_000)), "price_per_gram_minor"),
        (
            silver(json!(10.4), json!(10_000_001)),
            "price_per_gram_minor",
        ),
        (silver(json!(0.0), json!(12_000)), "density_g_cm3"),
        (silver(json!(-10.4), json!(12_000)), "density_g_cm3"),
        (silver(json!(1e300), json!(12_000)), "density_g_cm3"),
        (
            json!({"name_en": "x".repeat(101), "name_ru": "Серебро", "density_g_cm3": 10.4, "price_per_gram_minor": 12_000}),
            "name_en",
        ),
        (
            json!({"name_en": "Silver", "name_ru": "Сер\u{7}ебро", "density_g_cm3": 10.4, "price_per_gram_minor": 12_000}),
            "name_ru",
        ),
    ];
    for code in ["AG925", "NEW-METAL"] {
        for (body, field) in &cases {
            let r = app
                .client
                .put(app.url(&format!("/mes/api/materials/{code}")))
                .bearer_auth(&manager)
                .json(body)
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "{code} {body}"
            );
            let e: Value = r.json().await.unwrap();
            assert_eq!(e["error"]["field"], *field, "{code} {body}: {e}");
        }
    }
    // The largest allowed values are accepted (a new version), the next are not.
    let (s, saved) = {
        let r = app
            .client
            .put(app.url("/mes/api/materials/AU999"))
            .bearer_auth(&manager)
            .json(&json!({"name_en": "999 gold", "name_ru": "Золото 999",
                           "density_g_cm3": 25.0, "price_per_gram_minor": 10_000_000}))
            .send()
            .await
            .unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    };
    assert_eq!((s, saved["version"].as_i64()), (StatusCode::OK, Some(1)));

    // The back-office form: kopecks beyond the range, densities out of it.
    let maria = app
        .login("maria@alexandrite.local", "manager-demo-2026")
        .await;
    let form = |code: &'static str, density: &'static str, price: &'static str| {
        vec![
            ("code", code),
            ("name_ru", "Серебро 925"),
            ("name_en", "925 sterling silver"),
            ("density_g_cm3", density),
            ("price_per_gram", price),
            ("active", "true"),
        ]
    };
    let forms = [
        // i64::MAX kopecks, typed in roubles.
        (
            form("AG925", "10,4", "92 233 720 368 547 758,07"),
            "Цена за грамм",
            "price per gram",
        ),
        (form("AG925", "0", "120,00"), "Плотность", "density"),
        (form("AG925", "-10,4", "120,00"), "Плотность", "density"),
        (form("AG925", "1e300", "120,00"), "Плотность", "density"),
        (
            form("PD500", "12,0", "100 000,01"),
            "Цена за грамм",
            "price per gram",
        ),
    ];
    for (fields, ru, en) in &forms {
        for (lang, text) in [("ru", ru), ("en", en)] {
            let r = maria
                .post(app.url(&format!("/crm/materials?lang={lang}")))
                .header("accept-language", lang)
                .form(fields)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{fields:?}");
            let page = r.text().await.unwrap();
            let error = page
                .split("id=\"materials-error\">")
                .nth(1)
                .and_then(|s| s.split("</div>").next())
                .unwrap_or_else(|| panic!("no error shown: {page}"));
            assert!(error.contains(*text), "{lang} {fields:?}: {error}");
        }
    }

    // Nothing was saved: the same version and numbers, no new material, no
    // new row in the history.
    let after = listed(&app, "AG925").await.unwrap();
    assert_eq!(after, before);
    assert!(listed(&app, "NEW-METAL").await.is_none());
    assert!(listed(&app, "PD500").await.is_none());
    let history = html(&maria, app.url("/crm/materials?lang=en")).await;
    assert!(
        !history.contains("NEW-METAL") && !history.contains("PD500"),
        "{history}"
    );
    app.stop().await;
}

#[test]
fn the_casting_envelope_is_configuration_per_material_group() {
    let dir = tempfile::tempdir().unwrap();
    let cube = format!(
        "{}/../../../shared/models/generated/cube_10mm_12tri.bin.stl",
        env!("CARGO_MANIFEST_DIR")
    );
    let analyze = |material: &str, env: &[(&str, &str)]| -> Value {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_alexandrite"))
            .args(["analyze", "--json", "--material", material, &cube])
            .arg("--data-dir")
            .arg(dir.path())
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // 1000 mm³ of platinum: 20.8 g.
    let priced = analyze("PT950", &[]);
    assert_eq!(priced["weight_g"], 20.8);
    assert!(
        priced["price"]["total_minor"].as_i64().unwrap() > 0,
        "{priced}"
    );
    let heavy = [(
        "ALEXANDRITE_PRICING__CASTING__GROUPS__PT__MAX_METAL_G",
        "20",
    )];
    let refused = analyze("PT950", &heavy);
    assert_eq!(refused["price"], Value::Null);
    assert!(
        refused["rejection"].as_str().unwrap().starts_with(
            "too heavy to cast: 20.8 g of metal, this process takes at most 20 g / \
             слишком тяжёлая для литья: 20,8 г металла"
        ),
        "{refused}"
    );
    // Another group is not touched; a flatter gold flask is refused a cube
    // whatever the order its sizes are given in.
    assert!(analyze("AU585Y", &heavy)["price"].is_object());
    let flat = [(
        "ALEXANDRITE_PRICING__CASTING__GROUPS__AU__MAX_MM",
        "[9, 40, 40]",
    )];
    assert!(analyze("AG925", &flat)["price"].is_object());
    let refused = analyze("AU585Y", &flat);
    assert!(
        refused["rejection"].as_str().unwrap().starts_with(
            "too large to cast: 10 × 10 × 10 mm, this process takes at most 40 × 40 × 9 mm"
        ),
        "{refused}"
    );
}
