//! Operators: exactly one wins a take; production steps follow the table.

use crate::helpers::spawn_app;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn of_many_operators_taking_one_order_exactly_one_wins() {
    let app = spawn_app().await;
    let key = app.b2b_key.clone();
    let id = app
        .upload_model(&key, "generated/cube_10mm_12tri.bin.stl", "AU585Y")
        .await;
    app.wait_status(&key, &id, "AWAITING_CONFIRMATION").await;
    app.post(&key, &format!("/api/v1/orders/{id}/confirm"), None)
        .await;
    let mut ops = vec![];
    for i in 0..8 {
        ops.push((format!("Op{i}"), app.operator(&format!("Op{i}")).await));
    }
    // Wait until MES has applied the confirmation.
    for _ in 0..400 {
        let (_, q) = app.get(&ops[0].1, "/mes/api/queue").await;
        if q["orders"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["order_id"] == id.as_str())
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let path = format!("/mes/api/orders/{id}/take");
    let results =
        futures::future::join_all(ops.iter().map(|(_, k)| app.post(k, &path, None))).await;
    let winners: Vec<_> = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one take succeeds: {results:?}");
    let winner = winners[0].1["operator"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    for (status, body) in results.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(*status, StatusCode::CONFLICT);
        assert_eq!(body["error"]["code"], "already_taken");
        assert_eq!(
            body["error"]["message"],
            format!("already taken by {winner}")
        );
        assert_eq!(body["error"]["details"]["taken_by"], winner.as_str());
    }

    // Only the winner moves it on, and only along the table.
    let loser = ops.iter().find(|(n, _)| *n != winner).unwrap();
    let win_key = &ops.iter().find(|(n, _)| *n == winner).unwrap().1;
    let status_path = format!("/mes/api/orders/{id}/status");
    let (s, e) = app
        .post(
            &loser.1,
            &status_path,
            Some(json!({"status": "MANUFACTURED"})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("assigned_to_another_operator"))
    );
    let (s, e) = app
        .post(win_key, &status_path, Some(json!({"status": "PACKED"})))
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(
        e["error"]["message"],
        "order is MANUFACTURING_STARTED: it cannot become PACKED"
    );
    let (s, e) = app
        .post(win_key, &status_path, Some(json!({"status": "CONFIRMED"})))
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("bad_status"))
    );
    let (s, _) = app
        .post(
            win_key,
            &status_path,
            Some(json!({"status": "MANUFACTURED"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .post(win_key, &status_path, Some(json!({"status": "PACKED"})))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, e) = app
        .post(
            win_key,
            &status_path,
            Some(json!({"status": "SHIPPED", "tracking_number": "  "})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("tracking_number_required")
        )
    );
    app.stop().await;
}

#[tokio::test]
async fn the_operator_console_takes_an_order_and_names_who_has_it() {
    let app = spawn_app().await;
    let key = app.b2b_key.clone();
    let id = app
        .upload_model(&key, "generated/cube_10mm_12tri.bin.stl", "AU585Y")
        .await;
    app.wait_status(&key, &id, "AWAITING_CONFIRMATION").await;
    app.post(&key, &format!("/api/v1/orders/{id}/confirm"), None)
        .await;
    app.operator("Second").await;
    let oleg = app
        .login("oleg@alexandrite.local", "operator-demo-2026")
        .await;
    let second = app.login("second@ops.test", "password-123").await;
    let mut listed = false;
    for _ in 0..400 {
        let page = oleg
            .get(app.url("/mes"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if page.contains(&format!("data-order=\"{id}\"")) {
            listed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(listed, "the confirmed order is on the console");
    let r = oleg
        .post(app.url(&format!("/mes/orders/{id}/take")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = second
        .post(app.url(&format!("/mes/orders/{id}/take")))
        .header("accept-language", "en")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("This order has already been taken by Олег Иванов"),
        "{html}"
    );
    let r = second
        .post(app.url(&format!("/mes/orders/{id}/take")))
        .header("accept-language", "ru")
        .send()
        .await
        .unwrap();
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Заказ уже взял в работу Олег Иванов")
    );
    app.stop().await;
}
