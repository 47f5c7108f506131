//! The operators' queue: the cached first page and its filters, live changes
//! over server-sent events, twenty operators racing for a hundred orders,
//! release and reassignment, and a cache that cannot be reached.

use crate::helpers::{TestApp, spawn_app, spawn_with};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

const CUBE: &str = "generated/cube_10mm_12tri.bin.stl";

/// Uploads `n` models, confirms them all and waits until MES has every one in its queue.
async fn confirmed_orders(app: &TestApp, n: usize, material: &str) -> Vec<String> {
    let key = app.b2b_key.clone();
    let ids: Vec<String> = futures::stream::iter(0..n)
        .map(|_| app.upload_model(&key, CUBE, material))
        .buffer_unordered(16)
        .collect()
        .await;
    futures::stream::iter(ids.iter())
        .map(|id| {
            let key = key.clone();
            async move {
                awaiting(app, &key, id).await;
                let (s, b) = app
                    .post(&key, &format!("/api/v1/orders/{id}/confirm"), None)
                    .await;
                assert_eq!(s, StatusCode::OK, "{b}");
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    let watcher = app
        .operator(&format!("Watcher{}", uuid::Uuid::new_v4().simple()))
        .await;
    let want: HashSet<&str> = ids.iter().map(String::as_str).collect();
    for _ in 0..1200 {
        let queued = queued(app, &watcher, "").await;
        if want.iter().all(|id| queued.iter().any(|q| q == id)) {
            return ids;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not every confirmed order reached MES's queue");
}

/// Waits until an order is priced: a hundred at once on a loaded machine take
/// longer than one (the helpers' 20 s), so this waits up to three minutes.
async fn awaiting(app: &TestApp, key: &str, id: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let (s, o) = app.order(key, id).await;
        if s == StatusCode::OK && o["status"] == "AWAITING_CONFIRMATION" {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order {id} was not priced within 3 minutes: {o}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every order id in the queue (all pages), newest first.
async fn queued(app: &TestApp, key: &str, filter: &str) -> Vec<String> {
    let mut out = vec![];
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => format!("/mes/api/queue?limit=200{filter}"),
            Some(c) => format!("/mes/api/queue?limit=200&cursor={c}{filter}"),
        };
        let (s, page) = app.get(key, &path).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        out.extend(
            page["orders"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["order_id"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

#[tokio::test]
async fn twenty_operators_race_for_a_hundred_orders_and_each_is_taken_once() {
    let app = spawn_app().await;
    let ids = confirmed_orders(&app, 100, "AG925").await;
    let mut ops = vec![];
    for i in 0..20 {
        let name = format!("Racer{i:02}");
        ops.push((name.clone(), app.operator(&name).await));
    }
    // Every operator presses "take" on every order, each in its own order.
    let results: Vec<(String, String, StatusCode, Value)> =
        futures::future::join_all(ops.iter().enumerate().map(|(i, (name, key))| {
            let mut mine = ids.clone();
            mine.rotate_left(i * 5);
            let app = &app;
            async move {
                let mut seen = vec![];
                for id in mine {
                    let (s, b) = app
                        .post(key, &format!("/mes/api/orders/{id}/take"), None)
                        .await;
                    seen.push((name.clone(), id, s, b));
                }
                seen
            }
        }))
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(results.len(), 20 * 100);
    let mut winner: HashMap<&str, &str> = HashMap::new();
    for (name, id, s, _) in &results {
        if *s == StatusCode::OK {
            assert!(
                winner.insert(id, name).is_none(),
                "order {id} was taken twice"
            );
        }
    }
    assert_eq!(winner.len(), 100, "every order was taken by someone");
    for (name, id, s, b) in &results {
        if *s == StatusCode::OK {
            continue;
        }
        let w = winner[id.as_str()];
        assert_eq!(*s, StatusCode::CONFLICT, "{name} on {id}: {b}");
        assert_eq!(b["error"]["code"], "already_taken", "{b}");
        assert_eq!(b["error"]["message"], format!("already taken by {w}"));
    }
    // MES's view agrees: each order in work with its one winner, none left queued.
    for (id, w) in &winner {
        let (_, o) = app.get(&ops[0].1, &format!("/mes/api/orders/{id}")).await;
        assert_eq!(o["status"], "MANUFACTURING_STARTED");
        assert_eq!(o["operator"]["name"], *w);
        let takes = o["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["status"] == "MANUFACTURING_STARTED")
            .count();
        assert_eq!(takes, 1, "one take in {id}'s history");
    }
    let left = queued(&app, &ops[0].1, "").await;
    assert!(ids.iter().all(|id| !left.contains(id)));
    app.stop().await;
}

#[tokio::test]
async fn the_first_page_is_cached_filtered_and_invalidated_by_a_take() {
    let app = spawn_app().await;
    let silver = confirmed_orders(&app, 2, "AG925").await;
    let gold = confirmed_orders(&app, 1, "AU750Y").await;
    let op = app.operator("Olga").await;
    let get = |path: String| {
        let app = &app;
        let op = op.clone();
        async move {
            let r = app
                .client
                .get(app.url(&path))
                .bearer_auth(&op)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let cache = r
                .headers()
                .get("x-cache")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            (
                status,
                cache,
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (s, _, first) = get("/mes/api/queue".into()).await;
    assert_eq!(s, StatusCode::OK);
    let (_, cache, again) = get("/mes/api/queue".into()).await;
    assert_eq!(
        cache, "hit",
        "the second read of the same first page is cached"
    );
    assert_eq!(first, again);
    // Newest first, with what an operator decides by.
    let top = &first["orders"][0];
    assert_eq!(top["order_id"], gold[0].as_str());
    assert_eq!(top["material"], "AU750Y");
    assert!(top["geometry"]["weight_g"].as_f64().unwrap() > 0.0);
    assert!(top["price"]["total_minor"].as_i64().unwrap() > 0);
    assert_eq!(
        top["preview_url"],
        format!("/api/v1/models/{}/preview.png", gold[0])
    );
    // Deadline = confirmation + sla.confirmed_seconds (4 h by default).
    let at = |v: &Value| {
        time::OffsetDateTime::parse(
            v.as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    assert_eq!(
        at(&top["deadline"]) - at(&top["confirmed_at"]),
        time::Duration::hours(4)
    );

    // Filters: material, minimum weight (g), minimum price (kopecks).
    let only = |page: &Value| -> Vec<String> {
        page["orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["order_id"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, _, p) = get("/mes/api/queue?material=ag925".into()).await;
    let mut got = only(&p);
    got.sort();
    let mut want = silver.clone();
    want.sort();
    assert_eq!(got, want);
    let gold_weight = top["geometry"]["weight_g"].as_f64().unwrap();
    let silver_weight = first["orders"][1]["geometry"]["weight_g"].as_f64().unwrap();
    assert!(
        gold_weight > silver_weight,
        "the same cube weighs more in gold"
    );
    let (_, _, p) = get(format!(
        "/mes/api/queue?min_weight_g={}",
        gold_weight - 0.001
    ))
    .await;
    assert_eq!(only(&p), gold);
    let gold_price = top["price"]["total_minor"].as_i64().unwrap();
    let (_, _, p) = get(format!("/mes/api/queue?min_price_minor={gold_price}")).await;
    assert_eq!(only(&p), gold);
    let (_, _, p) = get(format!("/mes/api/queue?min_price_minor={}", gold_price + 1)).await;
    assert_eq!(only(&p), Vec::<String>::new());
    let (_, _, p) = get("/mes/api/queue?material=AG925&min_weight_g=0.5&limit=1".into()).await;
    assert_eq!(p["orders"].as_array().unwrap().len(), 1);
    let (_, _, p2) = get(format!(
        "/mes/api/queue?material=AG925&min_weight_g=0.5&limit=1&cursor={}",
        p["next_cursor"].as_str().unwrap()
    ))
    .await;
    let mut both = [only(&p), only(&p2)].concat();
    both.sort();
    assert_eq!(both, want, "keyset pages under a filter");

    // Bad filters are specific 422s.
    for (q, code, field) in [
        ("min_weight_g=-1", "bad_filter", "min_weight_g"),
        ("min_weight_g=heavy", "bad_filter", "min_weight_g"),
        ("min_price_minor=1.5", "bad_filter", "min_price_minor"),
        ("material=UNOBTAINIUM", "unknown_material", "material"),
        ("material=../x", "unknown_material", "material"),
    ] {
        let (s, _, e) = get(format!("/mes/api/queue?{q}")).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{q}: {e}");
        assert_eq!(e["error"]["code"], code, "{q}");
        assert_eq!(e["error"]["field"], field, "{q}");
    }

    // A take invalidates every cached first page: the taker's next first
    // page no longer has the order, and a filter's page cached before the
    // take is read again.
    let (_, _, gold_page) = get("/mes/api/queue?material=AU750Y".into()).await;
    assert_eq!(only(&gold_page), gold);
    let (_, cache, _) = get("/mes/api/queue?material=AU750Y".into()).await;
    assert_eq!(cache, "hit");
    let (s, _) = app
        .post(&op, &format!("/mes/api/orders/{}/take", gold[0]), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, _, after) = get("/mes/api/queue".into()).await;
    assert_eq!(only(&after), {
        let mut v = only(&first);
        v.retain(|id| id != &gold[0]);
        v
    });
    let (_, cache, gold_after) = get("/mes/api/queue?material=AU750Y".into()).await;
    assert_ne!(cache, "hit", "invalidated by the take");
    assert_eq!(only(&gold_after), Vec::<String>::new());
    app.stop().await;
}

/// Reads server-sent events from a streaming response until `want` arrives.
async fn next_event<B: AsRef<[u8]>>(
    stream: &mut (impl futures::Stream<Item = reqwest::Result<B>> + Unpin),
    buf: &mut String,
    want: &str,
    order: &str,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let mut event = "";
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event:") {
                    event = e.trim();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data += d.trim();
                }
            }
            if event == want {
                let v: Value = serde_json::from_str(&data).unwrap();
                if v["order_id"] == order {
                    return v;
                }
            }
        }
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("no '{want}' event for {order} within 20 s"))
            .expect("the stream stays open")
            .unwrap();
        buf.push_str(&String::from_utf8_lossy(chunk.as_ref()));
    }
}

#[tokio::test]
async fn every_open_console_hears_confirmations_and_takes_live() {
    let app = spawn_app().await;
    let watcher = app.operator("Vera").await;
    let taker = app.operator("Timur").await;
    // Two consoles open before anything happens.
    let mut consoles = vec![];
    for key in [&watcher, &taker] {
        let r = app
            .client
            .get(app.url("/mes/api/queue/events"))
            .bearer_auth(key)
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let mut s = Box::pin(r.bytes_stream());
        let mut buf = String::new();
        // Connected: the ready event comes first.
        let chunk = tokio::time::timeout(Duration::from_secs(10), s.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        assert!(buf.contains("event: ready"), "{buf}");
        buf.clear();
        consoles.push((s, buf));
    }
    // Customers see nothing of it.
    let (s, _) = app.get(&app.b2b_key, "/mes/api/queue/events").await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let id = confirmed_orders(&app, 1, "AU585Y").await.remove(0);
    for (s, buf) in consoles.iter_mut() {
        let ev = next_event(s, buf, "confirmed", &id).await;
        assert_eq!(ev["kind"], "confirmed");
    }
    let (s, _) = app
        .post(&taker, &format!("/mes/api/orders/{id}/take"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    for (s, buf) in consoles.iter_mut() {
        let ev = next_event(s, buf, "taken", &id).await;
        assert_eq!(ev["operator"], "Timur");
    }
    drop(consoles);
    app.stop().await;
}

#[tokio::test]
async fn an_operator_releases_with_a_reason_and_a_manager_reassigns() {
    let app = spawn_app().await;
    let id = confirmed_orders(&app, 1, "AG925").await.remove(0);
    let anna = app.operator("Anya").await;
    let boris = app.operator("Boris").await;
    let boss = app.manager("Mila").await;
    let take = format!("/mes/api/orders/{id}/take");
    let release = format!("/mes/api/orders/{id}/release");
    let reassign = format!("/mes/api/orders/{id}/reassign");

    // Only a taken order can be released, only by its operator, only with a reason.
    let (s, e) = app
        .post(&anna, &release, Some(json!({"reason": "x"})))
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("invalid_transition"))
    );
    assert_eq!(app.post(&anna, &take, None).await.0, StatusCode::OK);
    let (s, e) = app
        .post(&boris, &release, Some(json!({"reason": "mine now"})))
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("assigned_to_another_operator"))
    );
    assert_eq!(e["error"]["details"]["operator"], "Anya");
    let (s, e) = app
        .post(&boss, &release, Some(json!({"reason": "x"})))
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (s, e) = app
        .post(&anna, &release, Some(json!({"reason": "  "})))
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("reason_required"))
    );
    let (s, e) = app.post(&anna, &release, None).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_json"))
    );
    let (s, o) = app
        .post(
            &anna,
            &release,
            Some(json!({"reason": "no AG925 casting today"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{o}");
    assert_eq!(o["status"], "CONFIRMED");
    assert!(o["operator"].is_null());
    let last = o["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["status"], "CONFIRMED");
    assert_eq!(last["actor"]["name"], "Anya");
    assert_eq!(last["note"], "no AG925 casting today");
    // Back in the queue at once, and the customer's view follows.
    assert!(queued(&app, &boris, "").await.contains(&id));
    // CONFIRMED is also the status before the take: wait for the release itself.
    let mut steps: Vec<String> = vec![];
    for _ in 0..400 {
        let seen = app.wait_status(&app.b2b_key, &id, "CONFIRMED").await;
        steps = seen["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["status"].as_str().unwrap().to_string())
            .collect();
        if steps.iter().any(|s| s == "MANUFACTURING_STARTED") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        &steps[steps.len() - 2..],
        ["MANUFACTURING_STARTED", "CONFIRMED"]
    );

    // Taken again, then a manager hands it to Boris.
    assert_eq!(app.post(&anna, &take, None).await.0, StatusCode::OK);
    let (_, ops) = app.get(&boss, "/mes/api/operators").await;
    let id_of = |name: &str| -> String {
        ops["operators"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == name)
            .map(|o| o["id"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("{name} among {ops}"))
    };
    let anna_id = id_of("Anya");
    let (s, e) = app
        .post(
            &anna,
            &reassign,
            Some(json!({"operator_id": anna_id, "reason": "x"})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (s, e) = app
        .post(
            &boss,
            &reassign,
            Some(json!({"operator_id": anna_id, "reason": "x"})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_assigned"))
    );
    let stranger = uuid::Uuid::new_v4().to_string();
    let (s, e) = app
        .post(
            &boss,
            &reassign,
            Some(json!({"operator_id": stranger, "reason": "x"})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_operator"))
    );
    // Boris has never worked here: the manager names him.
    let boris_id = app
        .accounts
        .find_by_email("boris@ops.test")
        .await
        .unwrap()
        .expect("Boris exists")
        .user_id
        .to_string();
    let (s, o) = app
        .post(
            &boss,
            &reassign,
            Some(
                json!({"operator_id": boris_id, "operator_name": "Boris", "reason": "Anya is ill"}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{o}");
    assert_eq!(o["status"], "MANUFACTURING_STARTED");
    assert_eq!(o["operator"]["name"], "Boris");
    let last = o["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["actor"]["name"], "Mila");
    assert_eq!(last["actor"]["kind"], "manager");
    assert_eq!(last["note"], "reassigned from Anya to Boris: Anya is ill");
    // Now Boris moves it on and Anya cannot.
    let status = format!("/mes/api/orders/{id}/status");
    let (s, _) = app
        .post(&anna, &status, Some(json!({"status": "MANUFACTURED"})))
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = app
        .post(&boris, &status, Some(json!({"status": "MANUFACTURED"})))
        .await;
    assert_eq!(s, StatusCode::OK);
    // An order not in work cannot be reassigned.
    let other = confirmed_orders(&app, 1, "AG925").await.remove(0);
    let (s, e) = app
        .post(
            &boss,
            &format!("/mes/api/orders/{other}/reassign"),
            Some(json!({"operator_id": boris_id, "reason": "x"})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_in_work"))
    );
    assert_eq!(e["error"]["details"]["current_status"], "CONFIRMED");
    app.stop().await;
}

#[tokio::test]
async fn the_console_releases_and_reassigns_with_buttons_in_both_languages() {
    let app = spawn_app().await;
    let id = confirmed_orders(&app, 1, "AG925").await.remove(0);
    app.operator("Oleg2").await; // key unused: the console logs in with a password
    let browser = app.login("oleg2@ops.test", "password-123").await;
    let r = browser
        .post(app.url(&format!("/mes/orders/{id}/take")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let page = browser
        .get(app.url("/mes"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&format!("/mes/orders/{id}/release")));
    assert!(page.contains("Вернуть в очередь"), "Russian by default");
    assert!(page.contains("/mes/static/queue.js"));
    // Without a reason: the page says so, in English when asked.
    let r = browser
        .post(app.url(&format!("/mes/orders/{id}/release")))
        .header("accept-language", "en")
        .form(&[("reason", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("Say why"));
    let r = browser
        .post(app.url(&format!("/mes/orders/{id}/release")))
        .form(&[("reason", "сломался станок")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // The live fragment has it back.
    let frag = browser
        .get(app.url("/mes?fragment=queue"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(frag.contains(&format!("data-order=\"{id}\"")));
    assert!(!frag.contains("<html"), "a fragment, not a page");
    // A manager's console offers reassignment.
    app.key_for(domain::Role::Manager, "mila@managers.test", "Mila", None)
        .await;
    let r = browser
        .post(app.url(&format!("/mes/orders/{id}/take")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let boss = app.login("mila@managers.test", "password-123").await;
    let page = boss
        .get(app.url("/mes"))
        .header("accept-language", "en")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&format!("/mes/orders/{id}/reassign")));
    assert!(page.contains("Reassign"));
    let r = boss
        .post(app.url(&format!("/mes/orders/{id}/reassign")))
        .header("accept-language", "en")
        .form(&[("operator_id", ""), ("reason", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("Pick an operator"));
    app.stop().await;
}

#[tokio::test]
async fn an_unreachable_cache_degrades_to_the_database() {
    // Nothing listens on port 1: every cache call fails.
    let app = spawn_with(|c| c.cache.url = "redis://127.0.0.1:1/0".into()).await;
    let id = confirmed_orders(&app, 1, "AG925").await.remove(0);
    let op = app.operator("Petr").await;
    let r = app
        .client
        .get(app.url("/mes/api/queue"))
        .bearer_auth(&op)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-cache"], "bypass");
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["orders"][0]["order_id"], id.as_str());
    let (s, _) = app
        .post(&op, &format!("/mes/api/orders/{id}/take"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(!queued(&app, &op, "").await.contains(&id));
    let (s, ready) = app.get(&op, "/health/ready").await;
    assert_eq!(s, StatusCode::OK, "the cache is optional: {ready}");
    assert!(
        ready["checks"]["cache"]
            .as_str()
            .unwrap()
            .starts_with("degraded"),
        "{ready}"
    );
    app.stop().await;
}

async fn count_by_status(url: &str, table: &str) -> HashMap<String, i64> {
    let db = adapters::Db::connect(url, &[]).await.unwrap();
    let rows = sqlx::query(&format!(
        "SELECT status, COUNT(*) AS n FROM {table} GROUP BY status"
    ))
    .fetch_all(db.pool())
    .await
    .unwrap();
    use sqlx::Row;
    let out = rows
        .iter()
        .map(|r| (r.get::<String, _>("status"), r.get::<i64, _>("n")))
        .collect();
    db.close().await;
    out
}

#[tokio::test]
async fn seed_fills_both_services_alike_and_the_queue_serves_them() {
    let app = spawn_app().await;
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_alexandrite"))
            .args(args)
            .arg("--data-dir")
            .arg(app.data_dir.path())
            .env(
                "ALEXANDRITE_CRM__DATABASE_URL",
                app.config.crm_database_url(),
            )
            .env(
                "ALEXANDRITE_MES__DATABASE_URL",
                app.config.mes_database_url(),
            )
            .env("ALEXANDRITE_BUS__URL", app.config.bus_url())
            .output()
            .unwrap()
    };
    let help = run(&["seed", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("--orders"));
    let out = run(&["seed", "--orders", "1500", "--seed", "7", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["orders"], 1500);
    let by_status = report["by_status"].as_object().unwrap();
    for s in [
        "PRICING",
        "AWAITING_CONFIRMATION",
        "REJECTED",
        "CONFIRMED",
        "CANCELLED",
        "MANUFACTURING_STARTED",
        "MANUFACTURED",
        "PACKED",
        "SHIPPED",
    ] {
        assert!(by_status[s].as_i64().unwrap() > 0, "some {s} orders");
    }
    // The same counts in both services (the demo data adds nothing to orders).
    let crm = count_by_status(&app.config.crm_database_url(), "orders").await;
    let mes = count_by_status(&app.config.mes_database_url(), "orders").await;
    assert_eq!(crm, mes);
    for (s, n) in by_status {
        assert_eq!(crm[s.as_str()], n.as_i64().unwrap(), "{s}");
    }
    // Histories alike too: one row per step in each service.
    let crm_h = count_by_status(&app.config.crm_database_url(), "order_history").await;
    let mes_h = count_by_status(&app.config.mes_database_url(), "status_history").await;
    assert_eq!(crm_h, mes_h);
    assert_eq!(
        crm_h.values().sum::<i64>(),
        report["history_rows"].as_i64().unwrap()
    );
    assert_eq!(crm_h["PRICING"], 1500, "every order starts being priced");
    // Reconciliation finds no difference.
    let out = run(&["reconcile", "--json"]);
    let rec: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert!(
        out.status.success(),
        "{rec} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(rec["differences"].as_array().unwrap().len(), 0);
    assert!(rec["checked"].as_u64().unwrap() > 0);
    // The queue serves exactly the seeded CONFIRMED orders, newest first.
    let op = app.operator("Seeder").await;
    let ids = queued(&app, &op, "").await;
    assert_eq!(ids.len() as i64, by_status["CONFIRMED"].as_i64().unwrap());
    // Their customers see them too (a seeded B2B order of the demo brand).
    let (_, page) = app.get(&app.b2b_key, "/api/v1/orders?limit=5").await;
    assert!(!page["orders"].as_array().unwrap().is_empty(), "{page}");
    app.stop().await;
}
