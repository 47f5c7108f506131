//! The whole life of an order, checked in the B2B API, the CRM and MES at each step.

use crate::helpers::{history, spawn_app};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_real_ring_goes_from_upload_to_shipment() {
    let app = spawn_app().await;
    let key = app.b2b_key.clone();
    let op = app.operator("Olga").await;
    let manager = app
        .login("maria@alexandrite.local", "manager-demo-2026")
        .await;

    // Upload: 202 at once, and the CRM knows the order immediately.
    let id = app
        .upload_model(&key, "ring_showcase_ring.bin.stl", "AU585Y")
        .await;
    let (status, first) = app.order(&key, &id).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        ["PRICING", "AWAITING_CONFIRMATION"].contains(&first["status"].as_str().unwrap()),
        "{first}"
    );
    assert_eq!(history(&first)[0], "PRICING");

    // Priced from its geometry: V = 1182.3 mm³ (MANIFEST), 585 gold at 13.1 g/cm³.
    let priced = app.wait_status(&key, &id, "AWAITING_CONFIRMATION").await;
    let g = &priced["geometry"];
    assert_eq!(g["triangles"], 11422);
    assert!(
        (g["volume_mm3"].as_f64().unwrap() - 1182.3).abs() < 0.1,
        "{g}"
    );
    assert_eq!(g["watertight"], true);
    assert!((g["weight_g"].as_f64().unwrap() - 1182.3 * 13.1 / 1000.0).abs() < 0.01);
    let price = &priced["price"];
    assert_eq!(price["currency"], "RUB");
    let lines = price["breakdown"]["lines"].as_array().unwrap();
    let sum: i64 = lines
        .iter()
        .map(|l| l["amount_minor"].as_i64().unwrap())
        .sum();
    assert_eq!(
        sum,
        price["total_minor"].as_i64().unwrap(),
        "the breakdown adds up to the total"
    );
    assert_eq!(lines[0]["code"], "metal");

    // The B2B list shows it, newest first.
    let (_, list) = app.get(&key, "/api/v1/orders").await;
    assert_eq!(list["orders"][0]["order_id"], id.as_str());

    // The operator's queue does not show an unconfirmed order.
    let (_, queue) = app.get(&op, "/mes/api/queue").await;
    assert!(
        queue["orders"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["order_id"] != id.as_str())
    );

    // Confirm.
    let (status, confirmed) = app
        .post(&key, &format!("/api/v1/orders/{id}/confirm"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");
    assert_eq!(confirmed["status"], "CONFIRMED");

    // MES sees it on top of the queue once the event arrives.
    let mut seen = false;
    for _ in 0..400 {
        let (_, queue) = app.get(&op, "/mes/api/queue").await;
        if queue["orders"][0]["order_id"] == id.as_str() {
            assert_eq!(queue["orders"][0]["status"], "CONFIRMED");
            assert_eq!(
                queue["orders"][0]["price"]["total_minor"],
                price["total_minor"]
            );
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(
        seen,
        "the confirmed order never reached the operators' queue"
    );

    // Take into work, then make, pack and ship.
    let (status, taken) = app
        .post(&op, &format!("/mes/api/orders/{id}/take"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{taken}");
    assert_eq!(taken["operator"]["name"], "Olga");
    let after_take = app.wait_status(&key, &id, "MANUFACTURING_STARTED").await;
    assert_eq!(
        after_take["history"].as_array().unwrap().last().unwrap()["actor"]["name"],
        "Olga"
    );
    let (_, queue) = app.get(&op, "/mes/api/queue").await;
    assert!(
        queue["orders"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["order_id"] != id.as_str()),
        "taken orders leave the queue"
    );

    for next in ["MANUFACTURED", "PACKED"] {
        let (status, body) = app
            .post(
                &op,
                &format!("/mes/api/orders/{id}/status"),
                Some(json!({ "status": next })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        app.wait_status(&key, &id, next).await;
    }
    let (status, body) = app
        .post(
            &op,
            &format!("/mes/api/orders/{id}/status"),
            Some(json!({ "status": "SHIPPED", "tracking_number": "RA123456789RU" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let shipped = app.wait_status(&key, &id, "SHIPPED").await;
    assert_eq!(shipped["tracking_number"], "RA123456789RU");
    assert_eq!(
        history(&shipped),
        [
            "PRICING",
            "AWAITING_CONFIRMATION",
            "CONFIRMED",
            "MANUFACTURING_STARTED",
            "MANUFACTURED",
            "PACKED",
            "SHIPPED"
        ]
    );
    let times: Vec<&str> = shipped["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["at"].as_str().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "history moves forward in time: {times:?}"
    );

    // MES keeps the same history.
    let (_, mes_view) = app.get(&op, &format!("/mes/api/orders/{id}")).await;
    assert_eq!(history(&mes_view), history(&shipped));

    // The CRM back office shows the order and its timeline.
    let page = manager
        .get(app.url(&format!("/crm/orders/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("RA123456789RU")
            && html.contains("data-status=\"SHIPPED\"")
            && html.contains("Olga")
    );
    let list = manager
        .get(app.url("/crm?status=SHIPPED"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(list.contains(&id));

    app.stop().await;
}

#[tokio::test]
async fn an_open_model_is_rejected_with_a_reason_a_person_can_act_on() {
    let app = spawn_app().await;
    // The trimesh teapot has 64 open edges (MANIFEST): it cannot be cast.
    let id = app
        .upload_model(&app.b2b_key, "trimesh_teapot_open.bin.stl", "AG925")
        .await;
    let rejected = app.wait_status(&app.b2b_key, &id, "REJECTED").await;
    assert_eq!(rejected["rejection"]["code"], "not_watertight");
    let reason = rejected["rejection"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("not watertight: ") && reason.contains("open edges"),
        "{reason}"
    );
    assert_eq!(rejected["price"], serde_json::Value::Null);
    let (status, body) = app
        .post(&app.b2b_key, &format!("/api/v1/orders/{id}/confirm"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["details"]["current_status"], "REJECTED");
    app.stop().await;
}

#[tokio::test]
async fn a_quote_can_be_cancelled_only_before_confirmation() {
    let app = spawn_app().await;
    let key = app.b2b_key.clone();
    let a = app
        .upload_model(&key, "generated/cube_10mm_12tri.bin.stl", "AG925")
        .await;
    let b = app
        .upload_model(&key, "generated/cube_10mm_12tri.ascii.stl", "AG925")
        .await;
    app.wait_status(&key, &a, "AWAITING_CONFIRMATION").await;
    app.wait_status(&key, &b, "AWAITING_CONFIRMATION").await;

    let (status, body) = app
        .post(&key, &format!("/api/v1/orders/{a}/cancel"), None)
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("CANCELLED"))
    );
    let (status, body) = app
        .post(&key, &format!("/api/v1/orders/{a}/confirm"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "invalid_transition");
    assert_eq!(
        body["error"]["message"],
        "order is CANCELLED: it cannot become CONFIRMED"
    );

    app.post(&key, &format!("/api/v1/orders/{b}/confirm"), None)
        .await;
    let (status, body) = app
        .post(&key, &format!("/api/v1/orders/{b}/cancel"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["details"]["current_status"], "CONFIRMED");
    app.stop().await;
}

#[tokio::test]
async fn materials_are_listed_with_density_and_price() {
    let app = spawn_app().await;
    let (status, body) = app.get(&app.b2b_key, "/api/v1/materials").await;
    assert_eq!(status, StatusCode::OK);
    let codes: Vec<&str> = body["materials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["AG925", "AU585Y", "AU750Y", "PT950"]);
    assert_eq!(body["materials"][1]["density_g_cm3"], 13.1);
    assert_eq!(body["materials"][1]["name_ru"], "Золото 585 жёлтое");
    app.stop().await;
}
