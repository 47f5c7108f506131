//! What a browser is told about every response (security headers, caching),
//! that no page carries inline script, style or event handlers for the
//! Content-Security-Policy to refuse, and who may read `/metrics`.

use crate::helpers::{production, spawn_app, spawn_with, use_production_stores};
use alexandrite::app::Role;
use alexandrite::{Application, Config};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use std::time::Duration;

const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";
const BRAND: (&str, &str) = ("api@brand.example", "brand-demo-2026");
const OPERATOR: (&str, &str) = ("oleg@alexandrite.local", "operator-demo-2026");
const MANAGER: (&str, &str) = ("maria@alexandrite.local", "manager-demo-2026");
const TOKEN: &str = "metrics-token-for-prometheus-only";

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).map(|v| v.to_str().expect("ascii header"))
}

/// The headers every response carries, whoever asked.
fn assert_secured(h: &HeaderMap, what: &str) {
    assert_eq!(header(h, "content-security-policy"), Some(POLICY), "{what}");
    let script_src = POLICY
        .split(';')
        .map(str::trim)
        .find(|d| d.starts_with("script-src"))
        .unwrap();
    assert_eq!(script_src, "script-src 'self'", "{what}: no inline script");
    assert!(!POLICY.contains("unsafe-"), "{what}");
    assert_eq!(
        header(h, "x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(header(h, "referrer-policy"), Some("same-origin"), "{what}");
    assert_eq!(header(h, "x-frame-options"), Some("DENY"), "{what}");
    assert_eq!(
        header(h, "strict-transport-security"),
        None,
        "{what}: HTTP only, no HSTS"
    );
}

#[tokio::test]
async fn pages_api_answers_and_errors_carry_the_security_headers_and_credentials_are_never_cached()
{
    let app = spawn_app().await;
    let key = app.b2b_key.clone();
    let id = app
        .upload_model(&key, "generated/cube_10mm_12tri.bin.stl", "AG925")
        .await;
    app.wait_status(&key, &id, "AWAITING_CONFIRMATION").await;

    // Anonymous: a page, a static file, an unknown path, the health probe.
    for path in ["/", "/login", "/no/such/page", "/health/ready"] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert!(r.status() == 200 || r.status() == 404, "{path}");
        assert_secured(r.headers(), path);
        assert_eq!(header(r.headers(), "cache-control"), None, "{path}");
    }

    // A program with its API key: JSON, never stored.
    for path in ["/api/v1/orders", &format!("/api/v1/orders/{id}")] {
        let r = app
            .client
            .get(app.url(path))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(
            header(r.headers(), "content-type")
                .unwrap()
                .starts_with("application/json")
        );
        assert_secured(r.headers(), path);
        assert_eq!(
            header(r.headers(), "cache-control"),
            Some("no-store"),
            "{path}"
        );
    }
    // Refused by the gateway itself: still secured, still not stored.
    for auth in ["Bearer not-a-key", "Basic dXNlcjpwdw=="] {
        let r = app
            .client
            .get(app.url("/api/v1/orders"))
            .header("authorization", auth)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{auth}: {}", r.status());
        assert_secured(r.headers(), auth);
        assert_eq!(
            header(r.headers(), "cache-control"),
            Some("no-store"),
            "{auth}"
        );
    }

    // A person signed in: their pages are never stored; the static files
    // their browser fetches with the same cookie keep their public caching,
    // and their model's picture its private one.
    let customer = app.login(BRAND.0, BRAND.1).await;
    for path in ["/account", &format!("/account/orders/{id}"), "/upload"] {
        let r = customer.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_secured(r.headers(), path);
        assert_eq!(
            header(r.headers(), "cache-control"),
            Some("no-store"),
            "{path}"
        );
    }
    for (path, kind) in [
        ("/static/app.css", "text/css"),
        ("/static/app.js", "text/javascript"),
        ("/mes/static/queue.js", "text/javascript"),
    ] {
        let r = customer.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_secured(r.headers(), path);
        assert!(
            header(r.headers(), "content-type")
                .unwrap()
                .starts_with(kind),
            "{path}"
        );
        assert_eq!(
            header(r.headers(), "cache-control"),
            Some("public, max-age=300"),
            "{path}"
        );
    }
    let preview = format!("/api/v1/models/{id}/preview.png");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let r = loop {
        let r = customer.get(app.url(&preview)).send().await.unwrap();
        if r.status() == StatusCode::OK || tokio::time::Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(r.status(), StatusCode::OK, "{preview}");
    assert_secured(r.headers(), &preview);
    assert_eq!(
        header(r.headers(), "cache-control"),
        Some("private, max-age=86400")
    );
    app.stop().await;
}

#[tokio::test]
async fn with_a_secure_cookie_every_response_asks_for_https_from_now_on() {
    let app = spawn_with(|c| c.cookie_secure = true).await;
    for path in [
        "/login",
        "/api/v1/orders",
        "/static/app.css",
        "/no/such/page",
    ] {
        let r = app
            .client
            .get(app.url(path))
            .bearer_auth(&app.b2b_key)
            .send()
            .await
            .unwrap();
        assert_eq!(
            header(r.headers(), "strict-transport-security"),
            Some("max-age=31536000"),
            "{path}"
        );
        assert_eq!(header(r.headers(), "x-frame-options"), Some("DENY"));
    }
    app.stop().await;
}

/// Inline script, style or event handlers in a page: what the policy would refuse.
fn inline_code(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut found = vec![];
    let mut rest = lower.as_str();
    while let Some(at) = rest.find('<') {
        rest = &rest[at + 1..];
        let end = rest.find('>').unwrap_or(rest.len());
        let tag = &rest[..end];
        let name: String = tag
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        let attrs: Vec<&str> = tag.split_whitespace().skip(1).collect();
        if name == "script" && !attrs.iter().any(|a| a.starts_with("src=")) {
            found.push(format!("inline <script>: <{tag}>"));
        }
        if name == "style" {
            found.push("a <style> element".into());
        }
        for a in &attrs {
            let attr = a.split('=').next().unwrap_or("");
            if attr == "style" || (attr.starts_with("on") && a.contains('=')) {
                found.push(format!("attribute {a} in <{name}>"));
            }
            if a.contains("javascript:") {
                found.push(format!("javascript: URL in <{name}>"));
            }
        }
        rest = &rest[end..];
    }
    found
}

#[test]
fn the_inline_code_finder_finds_what_the_policy_refuses() {
    let page = r#"<html><head><script src="/static/app.js" defer></script><script>alert(1)</script>
<style>p{}</style></head><body><img src="x" onerror="this.remove()"><p style="color:red">
<a href="javascript:alert(1)">x</a><img data-optional src="y"></body></html>"#;
    assert_eq!(inline_code(page).len(), 5, "{:?}", inline_code(page));
    assert!(inline_code(r#"<p class="onion" data-one="1">on=</p>"#).is_empty());
}

#[tokio::test]
async fn no_page_carries_inline_script_style_or_event_handlers() {
    let app = spawn_app().await;
    let key = app.b2b_key.clone();
    let id = app
        .upload_model(&key, "generated/cube_10mm_12tri.bin.stl", "AG925")
        .await;
    app.wait_status(&key, &id, "AWAITING_CONFIRMATION").await;
    let (status, _) = app
        .post(&key, &format!("/api/v1/orders/{id}/confirm"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    app.wait_status(&key, &id, "CONFIRMED").await;

    let anonymous = reqwest::Client::new();
    let tours = [
        (anonymous, vec!["/", "/login", "/register"]),
        (
            app.login(BRAND.0, BRAND.1).await,
            vec!["/account", "/upload", "/account/orders/{id}"],
        ),
        (
            app.login(OPERATOR.0, OPERATOR.1).await,
            vec![
                "/mes",
                "/mes?fragment=queue",
                "/mes/late",
                "/mes/orders/{id}",
            ],
        ),
        (
            app.login(MANAGER.0, MANAGER.1).await,
            vec![
                "/crm",
                "/crm/orders/{id}",
                "/crm/materials",
                "/crm/overdue",
                "/lang/en?next=/crm",
            ],
        ),
    ];
    let mut pages = 0;
    for (client, paths) in tours {
        for path in paths {
            let path = path.replace("{id}", &id);
            let r = client.get(app.url(&path)).send().await.unwrap();
            let r = if r.status().is_redirection() {
                let to = header(r.headers(), "location").unwrap().to_string();
                client.get(app.url(&to)).send().await.unwrap()
            } else {
                r
            };
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert!(
                header(r.headers(), "content-type")
                    .unwrap()
                    .starts_with("text/html"),
                "{path}"
            );
            assert_secured(r.headers(), &path);
            let html = r.text().await.unwrap();
            assert_eq!(inline_code(&html), Vec::<String>::new(), "{path}");
            if path == "/mes" || path.starts_with("/mes/orders/") {
                assert!(html.contains("data-optional"), "{path}: the picture");
            }
            pages += 1;
        }
    }
    assert_eq!(pages, 15);
    app.stop().await;
}

/// A process built from `config`, serving until [`Running::stop`].
struct Running {
    main: std::net::SocketAddr,
    metrics: Option<std::net::SocketAddr>,
    config: Config,
    stop: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Running {
    async fn start(adjust: impl FnOnce(&mut Config), role: Role, stores: bool) -> Running {
        alexandrite::telemetry::init(alexandrite::telemetry::Sink::Test);
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            listen: "127.0.0.1:0".into(),
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        if stores && production() {
            use_production_stores(&mut config).await;
        }
        adjust(&mut config);
        let app = Application::build_role(&config, role).await.unwrap();
        let (main, metrics) = (app.local_addr(), app.metrics_addr());
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        Running {
            main,
            metrics,
            config,
            stop,
            handle,
            _dir: dir,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.handle.await.unwrap().unwrap();
        // Leave no RabbitMQ vhost behind (as helpers' TestApp::stop).
        if let Some((_, vhost)) = self
            .config
            .bus
            .url
            .as_deref()
            .and_then(|u| u.strip_prefix("amqp://"))
            .and_then(|u| u.rsplit_once('/'))
        {
            let _ = std::process::Command::new("timeout")
                .args(["30", "rabbitmqctl", "-q", "delete_vhost", vhost])
                .output();
        }
    }
}

/// `/metrics` at `base`, with an optional Authorization header: status and body.
async fn scrape(base: &str, auth: Option<&str>) -> (StatusCode, String) {
    let mut req = reqwest::Client::new().get(format!("{base}/metrics"));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let r = req.send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

fn is_exposition(body: &str) -> bool {
    body.contains("# TYPE alexandrite_http_requests_total")
}

/// A test app's address over loopback (it may be bound to every interface).
fn over_loopback(app: &crate::helpers::TestApp) -> String {
    let port = app.base.rsplit(':').next().unwrap();
    format!("http://127.0.0.1:{port}")
}

#[tokio::test]
async fn the_all_in_one_process_on_loopback_serves_metrics_on_its_own_port() {
    let app = spawn_app().await;
    let (status, body) = scrape(&app.base, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(is_exposition(&body));
    app.stop().await;
}

#[tokio::test]
async fn on_a_public_listener_metrics_are_not_found_without_the_token() {
    // Bound to every interface: reached here over loopback, but public.
    let app = spawn_with(|c| c.listen = "0.0.0.0:0".into()).await;
    let base = over_loopback(&app);
    for auth in [
        None,
        Some(format!("Bearer {TOKEN}")),
        Some(format!("Bearer {}", app.b2b_key)),
    ] {
        let (status, body) = scrape(&base, auth.as_deref()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{auth:?}");
        assert!(!is_exposition(&body));
    }
    // Answered as an unknown path is: nothing tells that metrics are here.
    let kind = |r: &reqwest::Response| header(r.headers(), "content-type").map(str::to_string);
    let refused = reqwest::get(format!("{base}/metrics")).await.unwrap();
    let unknown = reqwest::get(format!("{base}/metricz")).await.unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(kind(&refused), kind(&unknown));
    let r = reqwest::get(format!("{base}/login")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the rest of the site is served");
    app.stop().await;
}

#[tokio::test]
async fn on_a_public_listener_metrics_answer_the_token_and_nothing_else() {
    let app = spawn_with(|c| {
        c.listen = "0.0.0.0:0".into();
        c.metrics.token = Some(TOKEN.into());
    })
    .await;
    let base = over_loopback(&app);
    for wrong in [
        None,
        Some(format!("Bearer {}", &TOKEN[..TOKEN.len() - 1])),
        Some(format!("Bearer {TOKEN}x")),
        Some(format!("Basic {TOKEN}")),
        Some(format!("Bearer {}", app.b2b_key)),
        Some(TOKEN.to_string()),
    ] {
        let (status, body) = scrape(&base, wrong.as_deref()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{wrong:?}");
        assert!(!is_exposition(&body));
    }
    let (status, body) = scrape(&base, Some(&format!("Bearer {TOKEN}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(is_exposition(&body));
    // The token is no API key: the API does not take it.
    let r = app
        .client
        .get(format!("{base}/api/v1/orders"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    app.stop().await;
}

#[tokio::test]
async fn a_metrics_listener_takes_metrics_off_the_main_one() {
    let app = Running::start(
        |c| c.metrics.listen = Some("127.0.0.1:0".into()),
        Role::All,
        true,
    )
    .await;
    let (status, body) = scrape(&format!("http://{}", app.main), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!is_exposition(&body));
    let metrics = app.metrics.expect("a metrics listener");
    let (status, body) = scrape(&format!("http://{metrics}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(is_exposition(&body));
    assert!(body.contains("alexandrite_orders"), "the platform's gauges");
    // Only /metrics there: no page, no API.
    for path in ["/", "/login", "/api/v1/orders", "/health/ready"] {
        let r = reqwest::get(format!("http://{metrics}{path}"))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    app.stop().await;
}

fn lone_gateway(c: &mut Config) {
    // In front of services that are not running.
    c.gateway.crm_url = "http://127.0.0.1:1".into();
    c.gateway.mes_url = "http://127.0.0.1:1".into();
    c.gateway.notifier_url = "http://127.0.0.1:1".into();
    c.reconcile.interval_seconds = 0;
}

#[tokio::test]
async fn a_role_process_serves_metrics_only_on_its_metrics_listener() {
    let app = Running::start(lone_gateway, Role::Gateway, false).await;
    assert_eq!(
        app.metrics, None,
        "no metrics listener unless one is configured"
    );
    // Even on loopback; and not forwarded to a service (that would be a 502 here).
    let (status, _) = scrape(&format!("http://{}", app.main), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;

    let app = Running::start(
        |c| {
            lone_gateway(c);
            c.metrics.listen = Some("127.0.0.1:0".into());
        },
        Role::Gateway,
        false,
    )
    .await;
    let (status, _) = scrape(&format!("http://{}", app.main), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = scrape(&format!("http://{}", app.metrics.unwrap()), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("service=\"gateway\""), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn the_command_line_puts_metrics_on_their_own_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_alexandrite"))
        .args([
            "serve",
            "--role",
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("ALEXANDRITE_GATEWAY__CRM_URL", "http://127.0.0.1:1")
        .env("ALEXANDRITE_GATEWAY__MES_URL", "http://127.0.0.1:1")
        .env("ALEXANDRITE_GATEWAY__NOTIFIER_URL", "http://127.0.0.1:1")
        .env("ALEXANDRITE_RECONCILE__INTERVAL_SECONDS", "0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // The addresses it prints (the ports are picked at start); the rest of
    // its output is read too, or its next line would meet a closed pipe.
    let (tx, printed) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let (mut metrics, mut tx) = (None, Some(tx));
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let Ok(line) = line else { break };
            if let Some(url) = line.strip_prefix("Metrics on ") {
                metrics = Some(url.trim().to_string());
            }
            if let Some(url) = line.trim().strip_prefix("shop")
                && let Some(tx) = tx.take()
            {
                let _ = tx.send((metrics.clone(), Some(url.trim().to_string())));
            }
        }
    });
    let printed = tokio::time::timeout(Duration::from_secs(60), printed).await;
    let check = async {
        let (metrics, shop) = printed
            .expect("started within a minute")
            .expect("the shop's address is printed");
        let metrics = metrics.expect("the metrics address is printed");
        let shop = shop.expect("the shop's address is printed");
        assert!(metrics.ends_with("/metrics"), "{metrics}");
        let get = |url: String| async move {
            for _ in 0..100 {
                if let Ok(r) = reqwest::get(&url).await {
                    return r.status();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("{url} never answered");
        };
        assert_eq!(get(metrics.clone()).await, StatusCode::OK, "{metrics}");
        assert_eq!(
            get(format!("{shop}metrics")).await,
            StatusCode::NOT_FOUND,
            "{shop}"
        );
    };
    let result = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(check)).await;
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
