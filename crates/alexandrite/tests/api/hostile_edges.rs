//! Hostile input at the edges: cross-site requests, redirect targets, what the
//! framework cannot read, duplicate form fields, made-up order ids and text
//! that does not belong where it is sent. Each test is an attack first.

use crate::helpers::{TestApp, model, spawn_app};
use domain::Role;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A customer with a priced order, and a browser logged in as them.
async fn customer_with_quote(app: &TestApp, email: &str) -> (String, String, reqwest::Client) {
    let key = app
        .key_for(Role::Customer, email, "Eve", Some("Edges Ltd"))
        .await;
    let id = app
        .upload_model(&key, "generated/cube_10mm_12tri.bin.stl", "AU585Y")
        .await;
    app.wait_status(&key, &id, "AWAITING_CONFIRMATION").await;
    let browser = app.login(email, "password-123").await;
    (key, id, browser)
}

fn origin(app: &TestApp) -> String {
    app.base.trim_end_matches('/').to_string()
}

#[tokio::test]
async fn a_form_post_from_another_site_changes_nothing() {
    let app = spawn_app().await;
    let (key, id, browser) = customer_with_quote(&app, "eve@edges.test").await;
    let confirm = app.url(&format!("/account/orders/{id}/confirm"));
    let cancel = app.url(&format!("/account/orders/{id}/cancel"));
    // The ways a browser says a request came from elsewhere.
    let attacks: [(&str, &str); 5] = [
        ("origin", "https://evil.example"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
        ("referer", "https://evil.example/free-ring.html"),
    ];
    for (header, value) in attacks {
        for url in [&confirm, &cancel] {
            let r = browser
                .post(url)
                .header(header, value)
                .header("accept", "text/html")
                .form(&[("x", "1")])
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                StatusCode::FORBIDDEN,
                "{header}: {value} on {url}"
            );
            let page = r.text().await.unwrap();
            assert!(
                page.contains("не с нашей страницы"),
                "a page in Russian: {page}"
            );
        }
        // A program (no text/html) is told in our JSON error.
        let r = browser
            .post(&confirm)
            .header(header, value)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "cross_site_request");
    }
    let (_, order) = app.order(&key, &id).await;
    assert_eq!(order["status"], "AWAITING_CONFIRMATION", "nothing changed");

    // The same form from our own page goes through.
    let r = browser
        .post(&confirm)
        .header("origin", origin(&app))
        .header("sec-fetch-site", "same-origin")
        .form(&[("x", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, order) = app.order(&key, &id).await;
    assert_eq!(order["status"], "CONFIRMED");
    app.stop().await;
}

#[tokio::test]
async fn operators_and_managers_forms_are_guarded_too_and_keys_are_not() {
    let app = spawn_app().await;
    let key = app.b2b_key.clone();
    let id = app
        .upload_model(&key, "generated/cube_10mm_12tri.bin.stl", "AU585Y")
        .await;
    app.wait_status(&key, &id, "AWAITING_CONFIRMATION").await;
    // A bearer key is its own proof: another site's Origin does not matter.
    let r = app
        .client
        .post(app.url(&format!("/api/v1/orders/{id}/confirm")))
        .bearer_auth(&key)
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());

    app.key_for(Role::Operator, "olga@edges.test", "Olga", None)
        .await;
    let olga = app.login("olga@edges.test", "password-123").await;
    let take = app.url(&format!("/mes/orders/{id}/take"));
    // Wait until MES has the confirmation, then attack.
    for _ in 0..400 {
        let (_, q) = app
            .get(&app.operator("Probe").await, "/mes/api/queue")
            .await;
        if q["orders"]
            .as_array()
            .is_some_and(|o| o.iter().any(|o| o["order_id"] == id.as_str()))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let r = olga
        .post(&take)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (_, order) = app.order(&key, &id).await;
    assert_eq!(order["status"], "CONFIRMED", "not taken by a forged form");

    app.key_for(Role::Manager, "maria@edges.test", "Maria", None)
        .await;
    let maria = app.login("maria@edges.test", "password-123").await;
    let r = maria
        .post(app.url("/crm/materials/AU585Y"))
        .header("sec-fetch-site", "cross-site")
        .form(&[
            ("name_ru", "Золото"),
            ("name_en", "Gold"),
            ("density_g_cm3", "13,5"),
            ("price_per_gram", "1"),
            ("active", "on"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (_, list) = app.get(&key, "/api/v1/materials").await;
    let gold = list["materials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["code"] == "AU585Y")
        .unwrap();
    assert_eq!(gold["version"], 1, "the price was not changed: {gold}");
    assert_ne!(gold["price_per_gram_minor"], 100);
    app.stop().await;
}

#[tokio::test]
async fn redirects_go_only_to_our_own_paths() {
    let app = spawn_app().await;
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (next, expected) in [
        ("/account", "/account"),
        ("/%09/evil.example", "/"),
        ("//evil.example", "/"),
        ("/%5Cevil.example", "/"),
        ("https://evil.example/", "/"),
        ("/%0d%0aSet-Cookie:%20alex_session=x", "/"),
        ("/%0a", "/"),
        ("javascript:alert(1)", "/"),
    ] {
        let r = c
            .get(app.url(&format!("/lang/en?next={next}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "next={next}");
        assert_eq!(r.headers()["location"], expected, "next={next}");
    }
    app.key_for(Role::Customer, "nina@edges.test", "Nina", Some("Nina Ltd"))
        .await;
    for (next, expected) in [
        ("/account/orders", "/account/orders"),
        ("/\t/evil.example", "/"),
        ("/\r\nSet-Cookie: x=1", "/"),
        ("https://evil.example", "/account"),
    ] {
        let r = c
            .post(app.url("/login"))
            .form(&[
                ("email", "nina@edges.test"),
                ("password", "password-123"),
                ("next", next),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "next={next:?}");
        assert_eq!(r.headers()["location"], expected, "next={next:?}");
    }
    app.stop().await;
}

async fn json_error(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = r.text().await.unwrap();
    assert!(ct.starts_with("application/json"), "JSON, not {ct}: {text}");
    (status, serde_json::from_str(&text).unwrap())
}

#[tokio::test]
async fn what_the_framework_cannot_read_is_our_json_error() {
    let app = spawn_app().await;
    let key = app.b2b_key.clone();
    let op = app.operator("Oleg").await;
    let manager = app.manager("Mila").await;
    let id = app
        .upload_model(&key, "generated/cube_10mm_12tri.bin.stl", "AU585Y")
        .await;
    let get = |k: &str, path: &str| {
        app.client
            .get(app.url(path))
            .bearer_auth(k.to_string())
            .send()
    };
    for (k, path, code) in [
        (&key, "/api/v1/orders?limit=abc", "bad_query"),
        (
            &key,
            "/api/v1/orders?limit=99999999999999999999",
            "bad_query",
        ),
        (&op, "/mes/api/queue?limit=abc", "bad_query"),
        (&op, "/mes/api/queue?offset=x&limit=1", "bad_query"),
        (&key, "/api/v1/nothing-here", "not_found"),
    ] {
        let (status, body) = json_error(get(k, path).await.unwrap()).await;
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
        assert!(status.is_client_error(), "{path}: {status}");
        assert!(
            body["error"]["message"].as_str().unwrap().len() > 5,
            "a message that helps: {body}"
        );
    }
    let status_url = app.url(&format!("/mes/api/orders/{id}/status"));
    for (body, content_type, code) in [
        ("{not json", "application/json", "bad_json"),
        ("{\"status\": 5}", "application/json", "bad_json"),
        ("[]", "application/json", "bad_json"),
        ("{\"status\": \"PACKED\"}", "text/plain", "bad_json"),
    ] {
        let r = app
            .client
            .post(&status_url)
            .bearer_auth(&op)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, e) = json_error(r).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(e["error"]["code"], code, "{body}: {e}");
    }
    let r = app
        .client
        .put(app.url("/mes/api/materials/AU585Y"))
        .bearer_auth(&manager)
        .header("content-type", "application/json")
        .body("{\"name_en\": ")
        .send()
        .await
        .unwrap();
    let (_, e) = json_error(r).await;
    assert_eq!(e["error"]["code"], "bad_json");
    let r = app
        .client
        .post(app.url("/api/v1/models"))
        .bearer_auth(&key)
        .header("content-type", "multipart/form-data; boundary=XYZ")
        .body("--XYZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc")
        .send()
        .await
        .unwrap();
    let (status, e) = json_error(r).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(e["error"]["code"], "bad_multipart", "{e}");
    // A page nobody has is our 404 page, not the browser's empty one.
    let r = app
        .client
        .get(app.url("/no/such/page"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.text().await.unwrap().contains("Такой страницы нет"));
    app.stop().await;
}

#[tokio::test]
async fn an_upload_with_two_files_is_refused_and_leaves_nothing() {
    let app = spawn_app().await;
    let key = app
        .key_for(Role::Customer, "dup@edges.test", "Dup", Some("Dup Ltd"))
        .await;
    let cube = model("generated/cube_10mm_12tri.bin.stl");
    for fields in [vec!["file", "file"], vec!["file", "material", "material"]] {
        let mut form = Form::new();
        for f in fields.iter() {
            form = match *f {
                "file" => form.part("file", Part::bytes(cube.clone()).file_name("ring.stl")),
                other => form.text(other.to_string(), "AU585Y"),
            };
        }
        if !fields.contains(&"material") {
            form = form.text("material", "AU585Y");
        }
        let r = app
            .client
            .post(app.url("/api/v1/models"))
            .bearer_auth(&key)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let (status, e) = json_error(r).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{fields:?}");
        assert_eq!(e["error"]["code"], "duplicate_field");
        let twice = fields
            .iter()
            .find(|f| fields.iter().filter(|g| g == f).count() > 1)
            .unwrap();
        assert_eq!(e["error"]["field"], *twice);
    }
    let (_, list) = app.get(&key, "/api/v1/orders").await;
    assert_eq!(list["orders"], json!([]), "no order was made");
    app.stop().await;
}

#[tokio::test]
async fn a_made_up_order_id_is_404_at_once() {
    let app = spawn_app().await;
    let key = app.b2b_key.clone();
    // A fresh UUIDv7 — the shape of an id MES minted a moment ago — used to make
    // the CRM wait 10 s for an order that would never arrive.
    let made_up = uuid::Uuid::now_v7().to_string();
    let long = "1".repeat(10_000);
    for id in [made_up.as_str(), "not-an-id", long.as_str(), "%00"] {
        let started = Instant::now();
        let (status, body) = app.get(&key, &format!("/api/v1/orders/{id}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{id}: {body}");
        assert_eq!(body["error"]["code"], "not_found");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "answered without waiting for an order that does not exist ({:?})",
            started.elapsed()
        );
        let (status, _) = app
            .post(&key, &format!("/api/v1/orders/{id}/confirm"), None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    // An order that really was just minted is still found, however fast it is read.
    let id = app
        .upload_model(&key, "generated/cube_10mm_12tri.bin.stl", "AU585Y")
        .await;
    let (status, _) = app.order(&key, &id).await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn text_is_checked_where_it_enters() {
    let app = spawn_app().await;
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let long_password = "p".repeat(100_000);
    let long_name = "я".repeat(101);
    for (email, name, password) in [
        ("\"><img src=x onerror=alert(1)>@x", "Eve", "password-123"),
        (
            "eve@example.com\r\nBcc: all@example.com",
            "Eve",
            "password-123",
        ),
        ("eve@example", "Eve", "password-123"),
        (
            "eve2@example.com",
            "Eve\r\nBcc: all@example.com",
            "password-123",
        ),
        ("eve3@example.com", long_name.as_str(), "password-123"),
        ("eve4@example.com", "Eve", long_password.as_str()),
    ] {
        let r = c
            .post(app.url("/register"))
            .form(&[("email", email), ("name", name), ("password", password)])
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{email:?} {name:?}"
        );
    }
    // A NUL cannot reach PostgreSQL as text: it names no account and no material.
    let r = c
        .post(app.url("/login"))
        .form(&[
            ("email", "eve\u{0}@example.com"),
            ("password", "password-123"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = c
        .post(app.url("/login"))
        .form(&[("email", "eve@example.com"), ("password", &long_password)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = app
        .upload(
            &app.b2b_key,
            "ring.stl",
            model("generated/cube_10mm_12tri.bin.stl"),
            "AU585Y\u{0}",
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    for email in ["eve2@example.com", "eve3@example.com", "eve4@example.com"] {
        assert!(
            app.accounts.find_by_email(email).await.unwrap().is_none(),
            "{email} was not registered"
        );
    }

    // Staff text: tracking numbers and reasons.
    let key = app.b2b_key.clone();
    let id = app
        .upload_model(&key, "generated/cube_10mm_12tri.bin.stl", "AU585Y")
        .await;
    app.wait_status(&key, &id, "AWAITING_CONFIRMATION").await;
    app.post(&key, &format!("/api/v1/orders/{id}/confirm"), None)
        .await;
    let op = app.operator("Tanya").await;
    let mut taken = StatusCode::CONFLICT;
    for _ in 0..400 {
        let (s, _) = app
            .post(&op, &format!("/mes/api/orders/{id}/take"), None)
            .await;
        taken = s;
        if s == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(taken, StatusCode::OK);
    let (s, e) = app
        .post(
            &op,
            &format!("/mes/api/orders/{id}/release"),
            Some(json!({"reason": "a\u{1b}[31mred"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(e["error"]["field"], "reason");
    let status = format!("/mes/api/orders/{id}/status");
    for step in ["MANUFACTURED", "PACKED"] {
        let (s, e) = app.post(&op, &status, Some(json!({"status": step}))).await;
        assert_eq!(s, StatusCode::OK, "{step}: {e}");
    }
    for tracking in [
        "X".repeat(100_000),
        "RA123\r\nBcc: x".into(),
        "<script>".into(),
    ] {
        let (s, e) = app
            .post(
                &op,
                &status,
                Some(json!({"status": "SHIPPED", "tracking_number": tracking})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
        assert_eq!(e["error"]["code"], "bad_tracking_number");
        assert_eq!(e["error"]["field"], "tracking_number");
    }
    let (_, order) = app.get(&op, &format!("/mes/api/orders/{id}")).await;
    assert_eq!(
        order["status"], "PACKED",
        "not shipped with a bad tracking number: {order}"
    );
    let (s, _) = app
        .post(
            &op,
            &status,
            Some(json!({"status": "SHIPPED", "tracking_number": "RA 123-456/78.RU"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    app.stop().await;
}

/// Every route we serve, as its template.
const ROUTES: &[&str] = &[
    "/",
    "/lang/{code}",
    "/login",
    "/logout",
    "/register",
    "/account",
    "/account/orders/{id}",
    "/account/orders/{id}/confirm",
    "/account/orders/{id}/cancel",
    "/crm",
    "/crm/orders/{id}",
    "/crm/overdue",
    "/crm/api/sla",
    "/crm/materials",
    "/crm/materials/{code}",
    "/upload",
    "/mes",
    "/mes/late",
    "/mes/static/queue.js",
    "/mes/orders/{id}",
    "/mes/orders/{id}/take",
    "/mes/orders/{id}/release",
    "/mes/orders/{id}/reassign",
    "/mes/orders/{id}/status",
    "/mes/api/queue",
    "/mes/api/late",
    "/mes/api/operators",
    "/mes/api/materials/{code}",
    "/mes/api/orders/{id}",
    "/mes/api/orders/{id}/take",
    "/mes/api/orders/{id}/release",
    "/mes/api/orders/{id}/reassign",
    "/mes/api/orders/{id}/status",
    "/api/v1/orders",
    "/api/v1/orders/{id}",
    "/api/v1/orders/{id}/confirm",
    "/api/v1/orders/{id}/cancel",
    "/api/v1/models",
    "/api/v1/models/{id}/preview.png",
    "/api/v1/uploads",
    "/api/v1/materials",
    "/api/v1/webhooks",
    "/api/v1/webhooks/deliveries",
    "/internal/identity",
    "/internal/orders/views",
    "/static/app.css",
];

#[tokio::test]
async fn no_input_to_any_endpoint_is_a_server_error() {
    let app = spawn_app().await;
    let customer = app.b2b_key.clone();
    let manager = app.manager("Sweeper").await;
    let operator = app.operator("Sweepy").await;
    let id = app
        .upload_model(&customer, "generated/cube_10mm_12tri.bin.stl", "AU585Y")
        .await;
    app.wait_status(&customer, &id, "AWAITING_CONFIRMATION")
        .await;
    let long = "%E2%98%83".repeat(300);
    let ids = [id.as_str(), "not-an-id", "%FF%FE%00", long.as_str()];
    let codes = ["AU585Y", "%00%0a", long.as_str()];
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let query = "?limit=-1&cursor=%FF&status=..%2F&material=%00&min_weight_g=NaN&min_price_minor=99999999999999999999&next=%0d%0a&lang=zz";
    let bodies: [(&str, Vec<u8>); 5] = [
        ("application/json", b"{\"a\":".to_vec()),
        ("application/json", b"{\"status\":\"SHIPPED\",\"reason\":null,\"operator_id\":[],\"url\":7}".to_vec()),
        ("application/x-www-form-urlencoded", b"a=%ZZ&status=&email=\x00".to_vec()),
        ("multipart/form-data; boundary=B", b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\x01\"\r\n\r\nsolid\r\n--B--".to_vec()),
        ("text/plain", vec![0xff; 70_000]),
    ];
    let mut sent = 0;
    let mut failures = vec![];
    for route in ROUTES {
        let mut paths = vec![];
        if route.contains("{id}") {
            paths.extend(ids.iter().map(|i| route.replace("{id}", i)));
        } else if route.contains("{code}") {
            paths.extend(codes.iter().map(|c| route.replace("{code}", c)));
        } else {
            paths.push(route.to_string());
        }
        for path in paths {
            for key in [None, Some(&customer), Some(&operator), Some(&manager)] {
                for method in ["GET", "POST", "PUT", "DELETE"] {
                    // The live feed streams for as long as it is read.
                    if path == "/mes/api/queue/events" {
                        continue;
                    }
                    let variants: Vec<Option<&(&str, Vec<u8>)>> = if method == "GET" {
                        vec![None]
                    } else {
                        bodies.iter().map(Some).collect()
                    };
                    for body in variants {
                        let url = format!("{}{path}{query}", app.base);
                        let mut req = client.request(method.parse().unwrap(), &url);
                        if let Some(k) = key {
                            req = req.bearer_auth(k);
                        }
                        if let Some((ct, b)) = body {
                            req = req.header("content-type", *ct).body(b.clone());
                        }
                        let r = req.send().await;
                        sent += 1;
                        match r {
                            Ok(r) if r.status().is_server_error() => failures.push(format!(
                                "{method} {path} ({}) -> {}: {}",
                                body.map(|b| b.0).unwrap_or("no body"),
                                r.status(),
                                r.text()
                                    .await
                                    .unwrap_or_default()
                                    .chars()
                                    .take(200)
                                    .collect::<String>()
                            )),
                            Ok(_) => {}
                            Err(e) => failures.push(format!("{method} {path}: {e}")),
                        }
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {sent} requests failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(sent > 3000, "the sweep sent {sent} requests");
    app.stop().await;
}
