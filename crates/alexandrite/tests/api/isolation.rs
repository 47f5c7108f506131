//! A caller never sees another tenant's order: it answers 404, as if it did not exist.

use crate::helpers::spawn_app;
use domain::Role;
use reqwest::StatusCode;

#[tokio::test]
async fn another_tenants_order_is_404_everywhere() {
    let app = spawn_app().await;
    let owner = app.b2b_key.clone();
    let rival = app
        .key_for(Role::Customer, "dev@rival.example", "Rival", Some("rival"))
        .await;
    // A colleague in the same organisation sees the organisation's orders.
    let colleague = app
        .key_for(
            Role::Customer,
            "ops@brand.example",
            "Colleague",
            Some("brand-demo"),
        )
        .await;
    let id = app
        .upload_model(&owner, "generated/cube_10mm_12tri.bin.stl", "AG925")
        .await;
    app.wait_status(&owner, &id, "AWAITING_CONFIRMATION").await;

    for path in [format!("/api/v1/orders/{id}")] {
        let (s, e) = app.get(&rival, &path).await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{path}"
        );
    }
    for action in ["confirm", "cancel"] {
        let (s, _) = app
            .post(&rival, &format!("/api/v1/orders/{id}/{action}"), None)
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{action}");
    }
    let (_, list) = app.get(&rival, "/api/v1/orders").await;
    assert!(list["orders"].as_array().unwrap().is_empty());
    let (s, o) = app.get(&colleague, &format!("/api/v1/orders/{id}")).await;
    assert_eq!(
        (s, o["status"].as_str()),
        (StatusCode::OK, Some("AWAITING_CONFIRMATION"))
    );

    // A B2C customer's pages answer 404 too, and their list is theirs alone.
    let anna = app.login("anna@example.com", "anna-demo-2026").await;
    let r = anna
        .get(app.url(&format!("/account/orders/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = anna
        .post(app.url(&format!("/account/orders/{id}/confirm")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let html = anna
        .get(app.url("/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains(&id));

    // Roles: customers have no production API, operators no customer API.
    let (s, _) = app.get(&rival, &format!("/mes/api/orders/{id}")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app
        .post(&rival, &format!("/mes/api/orders/{id}/take"), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let op = app.operator("Ivan").await;
    let (s, _) = app.get(&op, &format!("/api/v1/orders/{id}")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Unknown and malformed ids are plain 404s.
    let (s, _) = app.get(&owner, "/api/v1/orders/not-an-id").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .get(
            &owner,
            "/api/v1/orders/00000000-0000-7000-8000-000000000000",
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Nobody can forge an identity header past the gateway.
    let r = app
        .client
        .get(app.url(&format!("/api/v1/orders/{id}")))
        .header("x-alexandrite-identity", "e30.0")
        .header("x-alexandrite-signature", "00")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    app.stop().await;
}
