//! The notifier: signed B2B webhooks (retried, listed, told once), e-mail in
//! the customer's language, the SSRF guard and tenant isolation, against the
//! real application and a webhook receiver on 127.0.0.1.

use crate::helpers::{TestApp, spawn_app, spawn_with};
use axum::body::Bytes;
use axum::http::HeaderMap;
use domain::Role;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the webhook body is JSON")
    }
}

/// A webhook endpoint on 127.0.0.1 that answers 500 to the first `fail_times`
/// requests about `fail_status` (any status when None) and 200 otherwise,
/// keeping every request.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

async fn receiver(fail_status: Option<&'static str>, fail_times: usize) -> Receiver {
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/hooks/alexandrite",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let seen = seen.clone();
            async move {
                let mut all = seen.lock().unwrap();
                let r = Received { headers, body };
                let matches =
                    |r: &Received| fail_status.is_none_or(|s| r.json()["payload"]["status"] == s);
                let earlier = all.iter().filter(|x| matches(x)).count();
                let fail = matches(&r) && earlier < fail_times;
                all.push(r);
                if fail {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/hooks/alexandrite",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { url, got }
}

impl Receiver {
    fn all(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// The successfully answered requests about `order` in `status`.
    fn about(&self, order: &str, status: &str) -> Vec<Received> {
        self.all()
            .into_iter()
            .filter(|r| {
                let v = r.json();
                v["order_id"] == order && v["payload"]["status"] == status
            })
            .collect()
    }

    async fn wait_for(&self, order: &str, status: &str, n: usize) -> Vec<Received> {
        for _ in 0..400 {
            let got = self.about(order, status);
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the receiver never got {n} webhook(s) for {order} {status}; got {:?}",
            self.all().iter().map(Received::json).collect::<Vec<_>>()
        );
    }
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

async fn put_webhook(app: &TestApp, key: &str, body: Value) -> (StatusCode, Value) {
    let r = app
        .client
        .put(app.url("/api/v1/webhooks"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn delete_webhook(app: &TestApp, key: &str) -> StatusCode {
    app.client
        .delete(app.url("/api/v1/webhooks"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
}

/// The sum of a counter's samples whose labels include `labels`.
async fn counter(app: &TestApp, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = app.metrics_text().await;
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_b2b_webhook_is_signed_retried_listed_and_told_once() {
    let app = spawn_with(|c| {
        c.notifier.allow_private_webhooks = true;
        c.notifier.retry_base_ms = 200;
        c.notifier.retry_max_ms = 1_000;
    })
    .await;
    let key = app.b2b_key.clone();
    // The first request about the order's first status fails: it must be tried again.
    let hook = receiver(Some("PRICING"), 1).await;
    let (status, set) = put_webhook(&app, &key, json!({ "url": hook.url })).await;
    assert_eq!(status, StatusCode::CREATED, "{set}");
    assert_eq!(set["url"], hook.url.as_str());
    let secret = set["secret"]
        .as_str()
        .expect("the secret, shown once")
        .to_string();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let (status, shown) = app.get(&key, "/api/v1/webhooks").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["url"], hook.url.as_str());
    assert!(
        shown.get("secret").is_none(),
        "the secret is shown only once: {shown}"
    );
    assert_eq!(shown["secret_prefix"], &secret[..12]);

    // A real ring, priced from its geometry.
    let id = app
        .upload_model(&key, "ring_showcase_ring.bin.stl", "AU585Y")
        .await;
    let priced = app.wait_status(&key, &id, "AWAITING_CONFIRMATION").await;
    let got = hook.wait_for(&id, "AWAITING_CONFIRMATION", 1).await;
    let r = got.last().unwrap();
    let sig = r.headers["x-alexandrite-signature"].to_str().unwrap();
    assert_eq!(sig, format!("sha256={}", hmac_hex(&secret, &r.body)));
    assert_ne!(
        sig,
        format!("sha256={}", hmac_hex("whsec_other", &r.body)),
        "the signature depends on the secret"
    );
    let event = r.json();
    assert_eq!(event["type"], "order.updated");
    assert_eq!(event["version"], 1);
    assert_eq!(
        r.headers["x-alexandrite-event-id"].to_str().unwrap(),
        event["event_id"].as_str().unwrap()
    );
    assert_eq!(r.headers["content-type"], "application/json");
    let p = &event["payload"];
    assert_eq!(p["order_id"], id.as_str());
    assert_eq!(p["price_total"]["minor"], priced["price"]["total_minor"]);
    assert_eq!(p["price_total"]["currency"], "RUB");
    assert_eq!(p["contact"]["organisation"], "brand-demo");
    assert_eq!(p["contact"]["email"], "api@brand.example");
    assert_eq!(p["file_name"], "ring_showcase_ring.bin.stl");

    // The order's first status (PRICING) met the failing endpoint, and was
    // told again after a short wait: both attempts are in the log.
    hook.wait_for(&id, "PRICING", 2).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let (list, pricing) = loop {
        let (status, list) = app.get(&key, "/api/v1/webhooks/deliveries").await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let pricing = list["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["order_id"] == id.as_str() && d["status"] == "PRICING")
            .cloned();
        if let Some(p) = &pricing
            && p["state"] == "sent"
        {
            break (list, p.clone());
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the PRICING webhook was never sent: {list}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(pricing["attempts"], 2, "{pricing}");
    let log = pricing["attempt_log"].as_array().unwrap();
    assert_eq!(
        log.iter()
            .map(|a| a["status_code"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![500, 200]
    );
    assert_eq!(
        log[0]["error"],
        "the endpoint answered 500 Internal Server Error"
    );
    assert!(pricing["next_retry_at"].is_null() && pricing["sent_at"].is_string());
    let priced_delivery = list["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["order_id"] == id.as_str() && d["status"] == "AWAITING_CONFIRMATION")
        .expect("the priced delivery is listed");
    assert_eq!(priced_delivery["event_id"], event["event_id"]);
    let (_, one) = app
        .get(
            &key,
            &format!("/api/v1/webhooks/deliveries?order_id={id}&limit=1"),
        )
        .await;
    assert_eq!(one["deliveries"].as_array().unwrap().len(), 1);
    let (status, bad) = app.get(&key, "/api/v1/webhooks/deliveries?limit=0").await;
    assert_eq!(
        (status, bad["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_limit"))
    );

    // The same event delivered again, and the same status in a new event:
    // both reach the notifier (acked), neither is told a second time.
    let acked = |app: &TestApp| {
        let app_base = app.base.clone();
        let client = app.client.clone();
        async move {
            let text = client
                .get(format!("{app_base}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            text.lines()
                .filter(|l| {
                    l.starts_with("alexandrite_events_acked_total{")
                        && l.contains("queue=\"notifier.events\"")
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
        }
    };
    let before = acked(&app).await;
    let bus = alexandrite::app::admin_bus(&app.config).await.unwrap();
    let env: domain::events::Envelope = serde_json::from_value(event.clone()).unwrap();
    adapters::Bus::publish(&*bus, &env).await.unwrap();
    let again: domain::events::OrderUpdated = env.decode().unwrap();
    let same_status = domain::events::Envelope::new("crm", &again);
    assert_ne!(same_status.event_id, env.event_id);
    adapters::Bus::publish(&*bus, &same_status).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while acked(&app).await < before + 2.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the notifier never handled the two duplicates"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Give a (wrong) second sending every chance to happen.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        hook.about(&id, "AWAITING_CONFIRMATION").len(),
        1,
        "told once"
    );
    let (_, list) = app
        .get(&key, &format!("/api/v1/webhooks/deliveries?order_id={id}"))
        .await;
    let statuses: Vec<&str> = list["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == "AWAITING_CONFIRMATION")
            .count(),
        1
    );
    assert_eq!(statuses.iter().filter(|s| **s == "PRICING").count(), 1);

    // The customer's decision is told as well.
    let (status, _) = app
        .post(&key, &format!("/api/v1/orders/{id}/confirm"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    hook.wait_for(&id, "CONFIRMED", 1).await;

    // Rotating the secret: a new one, shown once; later webhooks use it.
    let (status, rotated) = put_webhook(
        &app,
        &key,
        json!({ "url": hook.url, "rotate_secret": true }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(new_secret, secret);
    let (status, same) = put_webhook(&app, &key, json!({ "url": hook.url })).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        same.get("secret").is_none(),
        "not rotated, not shown: {same}"
    );
    let op = app.operator("Olga").await;
    let mut taken = false;
    for _ in 0..400 {
        let (s, _) = app
            .post(&op, &format!("/mes/api/orders/{id}/take"), None)
            .await;
        if s == StatusCode::OK {
            taken = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(taken, "the operator could not take the order");
    let got = hook.wait_for(&id, "MANUFACTURING_STARTED", 1).await;
    let r = &got[0];
    assert_eq!(
        r.headers["x-alexandrite-signature"].to_str().unwrap(),
        format!("sha256={}", hmac_hex(&new_secret, &r.body))
    );

    // Counted by channel.
    assert!(
        counter(
            &app,
            "alexandrite_notifications_sent_total",
            &[("channel", "webhook")]
        )
        .await
            >= 4.0
    );
    assert!(
        counter(
            &app,
            "alexandrite_notifications_failed_total",
            &[("channel", "webhook")]
        )
        .await
            >= 1.0
    );
    assert!(
        counter(
            &app,
            "alexandrite_notifications_sent_total",
            &[("channel", "email")]
        )
        .await
            >= 1.0
    );

    // Removed: nothing more is sent, and the API says there is none.
    assert_eq!(delete_webhook(&app, &key).await, StatusCode::NO_CONTENT);
    let (status, _) = app.get(&key, "/api/v1/webhooks").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(delete_webhook(&app, &key).await, StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn an_endpoint_that_keeps_failing_is_abandoned_after_the_configured_attempts() {
    let app = spawn_with(|c| {
        c.notifier.allow_private_webhooks = true;
        c.notifier.retry_base_ms = 50;
        c.notifier.retry_max_ms = 100;
        c.notifier.max_attempts = 3;
    })
    .await;
    let key = app.b2b_key.clone();
    let hook = receiver(None, usize::MAX).await;
    let (status, _) = put_webhook(&app, &key, json!({ "url": hook.url })).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = app
        .upload_model(&key, "ring_showcase_ring.bin.stl", "AU585Y")
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let pricing = loop {
        let (_, list) = app
            .get(&key, &format!("/api/v1/webhooks/deliveries?order_id={id}"))
            .await;
        let found = list["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["status"] == "PRICING" && d["state"] == "abandoned")
            .cloned();
        if let Some(d) = found {
            break d;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never abandoned: {list}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(pricing["attempts"], 3);
    assert_eq!(pricing["attempt_log"].as_array().unwrap().len(), 3);
    assert_eq!(pricing["last_status_code"], 500);
    assert!(pricing["next_retry_at"].is_null());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        hook.about(&id, "PRICING").len(),
        3,
        "no attempt after the last"
    );
    assert!(
        counter(
            &app,
            "alexandrite_notifications_abandoned_total",
            &[("channel", "webhook")]
        )
        .await
            >= 1.0
    );
    app.stop().await;
}

/// Registers a shop customer through the shop's form, in `lang`; returns the
/// logged-in browser.
async fn shop_customer(app: &TestApp, email: &str, name: &str, lang: &str) -> reqwest::Client {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = browser
        .post(app.url(&format!("/register?lang={lang}")))
        .form(&[
            ("email", email),
            ("name", name),
            ("password", "password-123"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "{}",
        r.text().await.unwrap()
    );
    browser
}

/// The e-mail about `order` in `status`, once its file is written, its lines
/// joined with spaces.
async fn wait_mail(app: &TestApp, order: &str, status: &str) -> String {
    let dir = app.config.mail_dir();
    let prefix = format!("{order}-{status}-");
    for _ in 0..400 {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let found: Vec<_> = entries
                .flatten()
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().to_string();
                    n.starts_with(&prefix) && n.ends_with(".eml")
                })
                .collect();
            if let Some(e) = found.first() {
                assert_eq!(found.len(), 1, "one message per order and status");
                // Lines are wrapped at spaces: joined again, sentences are whole.
                return std::fs::read_to_string(e.path())
                    .unwrap()
                    .replace("\r\n", " ");
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no e-mail about {order} {status} in {}", dir.display());
}

#[tokio::test]
async fn shop_customers_are_written_to_in_the_language_they_registered_in() {
    let app = spawn_app().await;
    let mut orders = vec![];
    for (email, name, lang) in [
        ("olga@shop.test", "Ольга", "ru"),
        ("emma@shop.test", "Emma", "en"),
    ] {
        let browser = shop_customer(&app, email, name, lang).await;
        let form = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(crate::helpers::model(
                    "ring_showcase_ring.bin.stl",
                ))
                .file_name("ring_showcase_ring.bin.stl"),
            )
            .text("material", "AU585Y");
        let r = browser
            .post(app.url("/api/v1/models"))
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let id = r.json::<Value>().await.unwrap()["order_id"]
            .as_str()
            .unwrap()
            .to_string();
        orders.push((browser, id, email, lang));
    }
    for (browser, id, email, lang) in &orders {
        let mail = wait_mail(&app, id, "AWAITING_CONFIRMATION").await;
        let order: Value = browser
            .get(app.url(&format!("/api/v1/orders/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let total = domain::Money::rub(order["price"]["total_minor"].as_i64().unwrap());
        assert!(mail.contains(email), "{mail}");
        assert!(
            mail.contains(&format!("Content-Language: {lang}")),
            "{mail}"
        );
        assert!(mail.contains("Content-Transfer-Encoding: 8bit"));
        if *lang == "ru" {
            assert!(mail.contains("Здравствуйте, Ольга!"), "{mail}");
            assert!(
                mail.contains(&format!(
                    "Заказ {id} (модель «ring_showcase_ring.bin.stl», материал AU585Y) оценён: {}.",
                    total.display()
                )),
                "{mail}"
            );
            assert!(!mail.contains("Your order"));
        } else {
            assert!(mail.contains("Hello Emma,"), "{mail}");
            assert!(mail.contains(&format!("Order {id} (model \"ring_showcase_ring.bin.stl\", material AU585Y) is priced at ")), "{mail}");
            assert!(mail.contains(&notifier::mail::money_en(&total)), "{mail}");
            assert!(!mail.contains("Здравствуйте"));
        }
        // The first status was written about too, once.
        let first = wait_mail(&app, id, "PRICING").await;
        assert!(
            first.contains(if *lang == "ru" {
                "рассчитываем стоимость"
            } else {
                "are pricing order"
            }),
            "{first}"
        );
    }
    // A decision in the shop is written about as well.
    let (browser, id, _, _) = &orders[1];
    let r = browser
        .post(app.url(&format!("/api/v1/orders/{id}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let mail = wait_mail(&app, id, "CANCELLED").await;
    assert!(
        mail.contains(&format!("Order {id} is cancelled.")),
        "{mail}"
    );
    app.stop().await;
}

#[tokio::test]
async fn webhook_urls_that_reach_inside_are_refused_and_other_tenants_see_nothing() {
    let app = spawn_app().await;
    let key = app.b2b_key.clone();
    for (url, code) in [
        ("http://127.0.0.1:9/hook", "webhook_url_loopback"),
        ("http://localhost/hook", "webhook_url_loopback"),
        ("http://[::1]/hook", "webhook_url_loopback"),
        ("http://10.0.0.8/hook", "webhook_url_private"),
        ("http://192.168.1.1/hook", "webhook_url_private"),
        (
            "http://169.254.169.254/latest/meta-data",
            "webhook_url_link_local",
        ),
        ("http://0.0.0.0:8080/", "webhook_url_unspecified"),
        ("ftp://example.com/hook", "webhook_url_scheme"),
        ("file:///etc/passwd", "webhook_url_scheme"),
        ("not a url", "webhook_url_invalid"),
    ] {
        let (status, body) = put_webhook(&app, &key, json!({ "url": url })).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {body}");
        assert_eq!(body["error"]["code"], code, "{url}: {body}");
        assert_eq!(body["error"]["field"], "url");
    }
    let (_, body) = put_webhook(&app, &key, json!({ "url": "http://127.0.0.1:9/hook" })).await;
    assert_eq!(
        body["error"]["message"],
        "the webhook host 127.0.0.1 resolves to 127.0.0.1, a loopback address; webhooks go to public addresses only"
    );
    let (_, body) = put_webhook(&app, &key, json!({ "url": "ftp://example.com/hook" })).await;
    assert_eq!(
        body["error"]["message"],
        "webhook URLs must be http:// or https://, not ftp://"
    );
    let (status, body) = put_webhook(&app, &key, json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("webhook_url_missing")
        )
    );
    let r = app
        .client
        .put(app.url("/api/v1/webhooks"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "bad_json"
    );
    // Nothing was stored by any of them.
    let (status, _) = app.get(&key, "/api/v1/webhooks").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A public address is accepted (registration does not call it).
    let (status, mine) = put_webhook(
        &app,
        &key,
        json!({ "url": "https://93.184.216.34/brand-hook" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{mine}");

    // Another organisation sees none, cannot remove it, and its own is its own.
    let rival = app
        .key_for(Role::Customer, "dev@rival.test", "Rival", Some("rival"))
        .await;
    let (status, _) = app.get(&rival, "/api/v1/webhooks").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(delete_webhook(&app, &rival).await, StatusCode::NOT_FOUND);
    let (status, list) = app.get(&rival, "/api/v1/webhooks/deliveries").await;
    assert_eq!(status, StatusCode::OK);
    assert!(list["deliveries"].as_array().unwrap().is_empty());
    let (status, theirs) = put_webhook(
        &app,
        &rival,
        json!({ "url": "https://93.184.216.35/rival" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(theirs["secret"], mine["secret"]);
    let (_, still) = app.get(&key, "/api/v1/webhooks").await;
    assert_eq!(still["url"], "https://93.184.216.34/brand-hook");

    // Only B2B organisations' callers have webhooks.
    let op = app.operator("Ivan").await;
    let (status, body) = app.get(&op, "/api/v1/webhooks").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = put_webhook(
        &app,
        &app.manager("Mila").await,
        json!({ "url": "https://93.184.216.34/" }),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let r = app
        .client
        .get(app.url("/api/v1/webhooks"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    app.stop().await;
}
