//! `/metrics` over HTTP while orders move, the SLA clocks (at risk, overdue,
//! listed in the CRM and the console, announced once), and the shipped
//! Prometheus rules and Grafana dashboards naming only metrics we export.

use crate::helpers::{TestApp, spawn_app, spawn_with};
use alexandrite::Config;
use alexandrite::app::{Application, Role};
use reqwest::StatusCode;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// One sample of the text exposition.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The samples and the declared families (`# TYPE name kind`).
struct Exposition {
    samples: Vec<Sample>,
    types: BTreeMap<String, String>,
}

fn parse(text: &str) -> Exposition {
    let mut samples = vec![];
    let mut types = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("series value");
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}').expect("closing brace")),
            None => (series, ""),
        };
        let mut map = BTreeMap::new();
        // Label values here never contain `",` (route templates, statuses, queues).
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once("=\"").expect("label=\"value\"");
            map.insert(k.to_string(), v.trim_end_matches('"').to_string());
        }
        samples.push(Sample {
            name: name.to_string(),
            labels: map,
            value: value.parse().unwrap_or_else(|_| panic!("value in {line}")),
        });
    }
    Exposition { samples, types }
}

impl Exposition {
    /// The sum of the samples named `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let hits: Vec<f64> = self
            .samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .collect();
        (!hits.is_empty()).then(|| hits.iter().sum())
    }

    /// The cumulative count of a histogram's bucket `le`.
    fn bucket(&self, name: &str, le: f64) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels
                        .get("le")
                        .and_then(|v| v.parse::<f64>().ok())
                        .is_some_and(|v| v == le)
            })
            .map(|s| s.value)
    }

    /// Every series name the exposition can contain (histograms: `_bucket`,
    /// `_count`, `_sum`), whether or not it has samples yet.
    fn names(&self) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self.samples.iter().map(|s| s.name.clone()).collect();
        for (name, kind) in &self.types {
            out.insert(name.clone());
            if kind == "histogram" {
                for suffix in ["_bucket", "_count", "_sum"] {
                    out.insert(format!("{name}{suffix}"));
                }
            }
        }
        out
    }
}

async fn scrape(client: &reqwest::Client, base: &str) -> Exposition {
    let r = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(r.status(), StatusCode::OK);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    parse(&r.text().await.unwrap())
}

/// Scrapes until `ok` holds (the gauges follow events by a few milliseconds).
async fn scrape_until(app: &TestApp, what: &str, ok: impl Fn(&Exposition) -> bool) -> Exposition {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = scrape(&app.client, &app.base).await;
        if ok(&m) {
            return m;
        }
        assert!(Instant::now() < deadline, "waited 20 s for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn metrics_move_as_an_order_is_priced_and_confirmed() {
    let app = spawn_app().await;
    let key = app.b2b_key.clone();
    let before = scrape(&app.client, &app.base).await;
    assert_eq!(
        before.value(
            "alexandrite_orders",
            &[("service", "crm"), ("status", "AWAITING_CONFIRMATION")]
        ),
        Some(0.0),
        "every status is reported, zero included"
    );
    assert_eq!(
        before.types["alexandrite_http_request_duration_seconds"],
        "histogram"
    );
    assert_eq!(
        before.types["alexandrite_pricing_duration_seconds"],
        "histogram"
    );
    assert_eq!(before.types["alexandrite_http_requests_total"], "counter");
    assert!(!before.types.values().any(|k| k == "summary"));

    let id = app
        .upload_model(&key, "ring_showcase_ring.bin.stl", "AU585Y")
        .await;
    app.wait_status(&key, &id, "AWAITING_CONFIRMATION").await;
    let m = scrape_until(&app, "the CRM and MES to count the priced order", |m| {
        ["crm", "mes"].iter().all(|svc| {
            m.value(
                "alexandrite_orders",
                &[("service", svc), ("status", "AWAITING_CONFIRMATION")],
            ) == Some(1.0)
        })
    })
    .await;
    assert_eq!(
        m.value(
            "alexandrite_orders",
            &[("service", "crm"), ("status", "PRICING")]
        ),
        Some(0.0)
    );

    // HTTP: by route template, never by raw path.
    let upload = [
        ("service", "mes"),
        ("method", "POST"),
        ("route", "/api/v1/models"),
        ("status", "202"),
    ];
    assert_eq!(
        m.value("alexandrite_http_requests_total", &upload),
        Some(1.0)
    );
    let polls = m
        .value(
            "alexandrite_http_requests_total",
            &[
                ("route", "/api/v1/orders/{id}"),
                ("method", "GET"),
                ("status", "200"),
            ],
        )
        .expect("the order's page is counted under its template");
    assert!(polls >= 1.0);
    assert!(
        !m.samples
            .iter()
            .any(|s| s.labels.get("route").is_some_and(|r| r.contains(&id))),
        "no series carries an order id"
    );
    let latency = [
        ("service", "mes"),
        ("route", "/api/v1/models"),
        ("method", "POST"),
    ];
    assert_eq!(
        m.value("alexandrite_http_request_duration_seconds_count", &latency),
        Some(1.0)
    );
    assert_eq!(
        m.value(
            "alexandrite_http_request_duration_seconds_bucket",
            &[latency[0], latency[1], latency[2], ("le", "+Inf")]
        ),
        Some(1.0)
    );

    // Pricing: one job, timed in explicit buckets; the model's size and triangles.
    assert_eq!(
        m.value(
            "alexandrite_pricing_duration_seconds_count",
            &[("outcome", "priced")]
        ),
        Some(1.0)
    );
    let buckets = m
        .samples
        .iter()
        .filter(|s| s.name == "alexandrite_pricing_duration_seconds_bucket")
        .count();
    assert!(buckets >= 14, "{buckets} pricing buckets");
    assert_eq!(
        m.value("alexandrite_pricing_model_triangles_count", &[]),
        Some(1.0)
    );
    assert_eq!(
        m.bucket("alexandrite_pricing_model_triangles_bucket", 6400.0),
        Some(0.0),
        "11422 triangles are above 6400"
    );
    assert_eq!(
        m.bucket("alexandrite_pricing_model_triangles_bucket", 25600.0),
        Some(1.0)
    );
    assert_eq!(
        m.value(
            "alexandrite_cache_misses_total",
            &[("cache", "measurements")]
        ),
        Some(1.0)
    );

    // Events: model.received, pricing.requested/completed, order.priced.
    for kind in [
        "model.received",
        "pricing.requested",
        "pricing.completed",
        "order.priced",
    ] {
        assert_eq!(
            m.value("alexandrite_events_published_total", &[("type", kind)]),
            Some(1.0),
            "{kind}"
        );
    }
    assert_eq!(
        m.value(
            "alexandrite_events_acked_total",
            &[("queue", "pricing.jobs"), ("type", "pricing.requested")]
        ),
        Some(1.0)
    );
    assert!(m.value("alexandrite_events_consumed_total", &[]).unwrap() >= 4.0);
    assert_eq!(
        m.value(
            "alexandrite_event_delivery_lag_seconds_count",
            &[("queue", "pricing.jobs")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value("alexandrite_bus_queue_depth", &[("queue", "pricing.jobs")]),
        Some(0.0)
    );
    assert_eq!(
        m.value("alexandrite_bus_dead_letters", &[("queue", "pricing.jobs")]),
        Some(0.0)
    );
    // The embedded bus knows its oldest message; RabbitMQ does not say.
    assert_eq!(
        m.value(
            "alexandrite_bus_queue_oldest_message_age_seconds",
            &[("queue", "crm.events")]
        )
        .is_some(),
        !crate::helpers::production()
    );
    assert!(
        m.value("alexandrite_outbox_backlog", &[("service", "mes")])
            .is_some()
    );
    assert!(
        m.value("alexandrite_db_pool_max_connections", &[("service", "crm")])
            .unwrap()
            >= 1.0
    );
    assert!(
        m.value(
            "alexandrite_db_pool_connections",
            &[("service", "mes"), ("state", "idle")]
        )
        .is_some()
    );
    assert_eq!(
        m.value("alexandrite_sla_limit_seconds", &[("status", "CONFIRMED")]),
        Some(14400.0)
    );

    // Confirming moves the order and the counters on; the same ring again is
    // measured from the cache.
    let (status, _) = app
        .post(&key, &format!("/api/v1/orders/{id}/confirm"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let again = app
        .upload_model(&key, "ring_showcase_ring.bin.stl", "AU585Y")
        .await;
    app.wait_status(&key, &again, "AWAITING_CONFIRMATION").await;
    let m = scrape_until(&app, "MES to count the confirmed order", |m| {
        m.value(
            "alexandrite_orders",
            &[("service", "mes"), ("status", "CONFIRMED")],
        ) == Some(1.0)
    })
    .await;
    assert_eq!(
        m.value(
            "alexandrite_orders",
            &[("service", "crm"), ("status", "CONFIRMED")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value("alexandrite_cache_hits_total", &[("cache", "measurements")]),
        Some(1.0)
    );
    // The operators' first page: a filter nobody asked for yet misses, then hits.
    let op = app.operator("Olga").await;
    let count = |m: &Exposition, name: &str| m.value(name, &[("cache", "queue")]).unwrap_or(0.0);
    let (hits, misses) = (
        count(&m, "alexandrite_cache_hits_total"),
        count(&m, "alexandrite_cache_misses_total"),
    );
    for _ in 0..2 {
        let (s, page) = app.get(&op, "/mes/api/queue?material=PT950").await;
        assert_eq!(s, reqwest::StatusCode::OK, "{page}");
    }
    let m = scrape(&app.client, &app.base).await;
    assert_eq!(count(&m, "alexandrite_cache_misses_total"), misses + 1.0);
    assert_eq!(count(&m, "alexandrite_cache_hits_total"), hits + 1.0);
    assert_eq!(
        m.value(
            "alexandrite_events_published_total",
            &[("type", "order.confirmed")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value(
            "alexandrite_http_requests_total",
            &[("route", "/api/v1/orders/{id}/confirm"), ("status", "200")]
        ),
        Some(1.0)
    );
    app.stop().await;
}

#[tokio::test]
async fn the_gateway_role_serves_its_own_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    // Nothing listens on port 1: the services behind the gateway are down.
    config.gateway.crm_url = "http://127.0.0.1:1".into();
    config.gateway.mes_url = "http://127.0.0.1:1".into();
    // A process of one role serves /metrics on its metrics listener only.
    config.metrics.listen = Some("127.0.0.1:0".into());
    let app = Application::build_role(&config, Role::Gateway)
        .await
        .unwrap();
    let base = format!("http://{}", app.local_addr());
    let metrics_base = format!("http://{}", app.metrics_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    let client = reqwest::Client::new();
    // The CRM behind it is not running: 502, counted under the route it goes to.
    let r = client
        .get(format!("{base}/api/v1/orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let _ = scrape(&client, &metrics_base).await;
    let m = scrape(&client, &metrics_base).await;
    assert_eq!(
        m.value(
            "alexandrite_http_requests_total",
            &[
                ("service", "gateway"),
                ("route", "proxy:crm"),
                ("status", "502")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value(
            "alexandrite_http_errors_total",
            &[("service", "gateway"), ("route", "proxy:crm")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value(
            "alexandrite_http_requests_total",
            &[("service", "gateway"), ("route", "/metrics")]
        ),
        Some(1.0)
    );
    assert!(
        m.value("alexandrite_orders", &[]).is_none(),
        "the gateway owns no orders"
    );
    let _ = tx.send(());
    handle.await.unwrap().unwrap();
}

/// Polls the CRM's SLA overview as a manager until `ok` holds.
async fn sla_until(
    manager: &reqwest::Client,
    app: &TestApp,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = manager
            .get(app.url("/crm/api/sla?lang=en"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        if ok(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "waited 20 s for {what}: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn lateness_of(v: &Value, id: &str) -> Option<String> {
    v["orders"]
        .as_array()?
        .iter()
        .find(|o| o["order_id"] == id)
        .map(|o| o["lateness"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn an_order_left_waiting_becomes_at_risk_then_overdue_and_is_announced_once() {
    // A quote may wait 4 s; at risk after 1 s; the announcer looks every second.
    let app = spawn_with(|c| {
        c.sla.awaiting_confirmation_seconds = Some(4);
        c.sla.at_risk_permille = 250;
        c.sla.check_interval_seconds = 1;
    })
    .await;
    let key = app.b2b_key.clone();
    let op = app.operator("Olga").await;
    let manager = app
        .login("maria@alexandrite.local", "manager-demo-2026")
        .await;

    let first = app
        .upload_model(&key, "ring_showcase_ring.bin.stl", "AU585Y")
        .await;
    app.wait_status(&key, &first, "AWAITING_CONFIRMATION").await;
    let v = sla_until(&manager, &app, "the first order to be at risk", |v| {
        lateness_of(v, &first).is_some()
    })
    .await;
    assert_eq!(
        lateness_of(&v, &first).as_deref(),
        Some("at_risk"),
        "at risk before overdue: {v}"
    );
    let o = &v["orders"][0];
    assert_eq!(o["status"], "AWAITING_CONFIRMATION");
    assert!(o["overdue_seconds"].as_i64().unwrap() < 0, "time left: {o}");
    assert!(
        o["announced_at"].is_null(),
        "not announced while only at risk"
    );
    assert!(v["banner"].as_str().unwrap().contains("at risk"), "{v}");

    // A second, younger order.
    let second = app
        .upload_model(&key, "ring_showcase_ring.bin.stl", "AU585Y")
        .await;
    app.wait_status(&key, &second, "AWAITING_CONFIRMATION")
        .await;

    // Both end overdue; the longest waiting first.
    let v = sla_until(
        &manager,
        &app,
        "both orders to be overdue and announced",
        |v| {
            v["overdue"] == 2
                && v["orders"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|o| !o["announced_at"].is_null())
        },
    )
    .await;
    let ids: Vec<&str> = v["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [first.as_str(), second.as_str()], "sorted by lateness");
    assert_eq!(v["at_risk"], 0);
    assert_eq!(v["banner"], "Deadlines: 2 orders overdue, 0 at risk.");
    let ru: Value = manager
        .get(app.url("/crm/api/sla?lang=ru"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        ru["banner"],
        "Сроки: просрочено заказов — 2, под угрозой — 0."
    );

    // Counted in the metrics, announced exactly once per order however often
    // the announcer looks.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let m = scrape(&app.client, &app.base).await;
    for svc in ["crm", "mes"] {
        assert_eq!(
            m.value(
                "alexandrite_orders_overdue",
                &[("service", svc), ("status", "AWAITING_CONFIRMATION")]
            ),
            Some(2.0),
            "{svc}"
        );
        assert_eq!(
            m.value(
                "alexandrite_orders_at_risk",
                &[("service", svc), ("status", "AWAITING_CONFIRMATION")]
            ),
            Some(0.0),
            "{svc}"
        );
        assert!(
            m.value(
                "alexandrite_orders_oldest_age_seconds",
                &[("service", svc), ("status", "AWAITING_CONFIRMATION")]
            )
            .unwrap()
                >= 4.0
        );
    }
    assert_eq!(
        m.value(
            "alexandrite_sla_overdue_announced_total",
            &[("status", "AWAITING_CONFIRMATION")]
        ),
        Some(2.0)
    );

    // The CRM's page, in both languages, sorted the same way.
    let page = manager
        .get(app.url("/crm/overdue?lang=en"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("Orders at risk and overdue"), "{html}");
    let (a, b) = (html.find(&first).unwrap(), html.find(&second).unwrap());
    assert!(a < b, "the most overdue first");
    assert!(html.contains(r#"data-lateness="overdue""#));
    let ru = manager
        .get(app.url("/crm/overdue?lang=ru"))
        .send()
        .await
        .unwrap();
    let html = ru.text().await.unwrap();
    assert!(html.contains("Заказы под угрозой и просроченные"), "{html}");
    assert!(html.contains("просрочен"));

    // Every page a manager sees carries the banner's hook.
    let home = manager
        .get(app.url("/crm"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(home.contains(r#"id="sla-banner""#) && home.contains(r#"data-src="/crm/api/sla""#));

    // The operator console lists them too (operators and managers, not customers).
    let (status, late) = app.get(&op, "/mes/api/late").await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = late["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [first.as_str(), second.as_str()], "{late}");
    assert_eq!(late["overdue"], 2);
    let page = app
        .client
        .get(app.url("/mes/late?lang=en"))
        .bearer_auth(&op)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Orders running late") && html.contains(&first),
        "{html}"
    );

    // Customers see neither.
    let (status, err) = app.get(&key, "/crm/api/sla").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{err}");
    assert_eq!(err["error"]["code"], "forbidden");
    let (status, _) = app.get(&key, "/mes/api/late").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Confirming one order stops its clock in that status: it leaves the lists.
    let (status, _) = app
        .post(&key, &format!("/api/v1/orders/{first}/confirm"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let v = sla_until(
        &manager,
        &app,
        "the confirmed order to leave the list",
        |v| lateness_of(v, &first).is_none(),
    )
    .await;
    assert_eq!(v["overdue"], 1);
    app.stop().await;
}

/// Every `alexandrite_*` name in the shipped alert rules, their tests and the
/// dashboards is a series the platform exports.
#[tokio::test]
async fn the_shipped_rules_and_dashboards_name_only_exported_metrics() {
    let app = spawn_app().await;
    let exported = scrape(&app.client, &app.base).await.names();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/observability");
    let mut files = vec![];
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if matches!(
                p.extension().and_then(|x| x.to_str()),
                Some("yml" | "yaml" | "json")
            ) {
                files.push(p);
            }
        }
    }
    assert!(
        files.len() >= 4,
        "rules, their tests, two dashboards: {files:?}"
    );
    let mut used = BTreeSet::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let bytes = text.as_bytes();
        let mut i = 0;
        while let Some(at) = text[i..].find("alexandrite_") {
            let start = i + at;
            let before = start.checked_sub(1).map(|j| bytes[j]);
            let mut end = start;
            while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
                end += 1;
            }
            // Skip words that merely contain the prefix (e.g. job names like `x_alexandrite_y`).
            if !before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_') {
                used.insert((text[start..end].to_string(), f.clone()));
            }
            i = end;
        }
    }
    assert!(used.len() >= 15, "{used:?}");
    let unknown: Vec<_> = used
        .iter()
        .filter(|(name, _)| !exported.contains(name))
        .collect();
    assert!(
        unknown.is_empty(),
        "named in deploy/observability but not exported: {unknown:?}\nexported: {exported:?}"
    );

    // Every dashboard query is PromQL that Prometheus accepts: promtool checks
    // them as recording rules.
    let mut rules = String::from("groups:\n  - name: dashboards\n    rules:\n");
    let mut n = 0;
    for f in files
        .iter()
        .filter(|f| f.extension().is_some_and(|x| x == "json"))
    {
        let board: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        for panel in board["panels"].as_array().unwrap() {
            for t in panel["targets"].as_array().into_iter().flatten() {
                n += 1;
                let expr = t["expr"].as_str().unwrap();
                rules += &format!(
                    "      - record: dashboard:query_{n}\n        expr: {}\n",
                    serde_json::to_string(expr).unwrap()
                );
            }
        }
    }
    assert!(n >= 30, "{n} dashboard queries");
    let checked = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(checked.path(), rules).unwrap();
    let out = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(checked.path())
        .output()
        .expect("promtool (Debian package prometheus; scripts/test installs it)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    app.stop().await;
}
