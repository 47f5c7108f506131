use alexandrite::{Application, Config};
use crm::accounts::{Accounts, NewUser};
use domain::Role;
use reqwest::multipart::{Form, Part};
use reqwest::{Client, Response, StatusCode};
use serde_json::Value;
use std::time::Duration;
use tempfile::TempDir;
use tokio::sync::oneshot;

/// A file from the shared test models.
pub fn model(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../../shared/models/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("test model {path}: {e}"))
}

/// Which profile the suite runs on: `embedded` (default) or `production`
/// (PostgreSQL databases made fresh for each test), from `ALEXANDRITE_TEST_PROFILE`.
pub fn production() -> bool {
    match std::env::var("ALEXANDRITE_TEST_PROFILE").as_deref() {
        Ok("production") => true,
        Ok("embedded") | Err(_) => false,
        Ok(other) => panic!("ALEXANDRITE_TEST_PROFILE={other}: expected embedded or production"),
    }
}

/// The PostgreSQL server the production profile's tests use.
pub fn postgres_url() -> String {
    std::env::var("ALEXANDRITE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A fresh, empty PostgreSQL database; its URL. Fails loudly if the server is not there.
pub async fn fresh_database(service: &str) -> String {
    use sqlx::Connection;
    let admin = format!("{}/postgres", postgres_url());
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
        panic!("PostgreSQL at {admin} is needed for ALEXANDRITE_TEST_PROFILE=production (scripts/test starts it): {e}")
    });
    let name = format!("alx_test_{service}_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    format!("{}/{name}", postgres_url())
}

/// The Redis the production profile's cache uses (`scripts/test` starts it).
pub fn redis_url() -> String {
    std::env::var("ALEXANDRITE_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

/// A fresh RabbitMQ vhost (queues of concurrent tests must not meet); its URL.
/// `rabbitmqctl` runs one at a time, under a timeout, retried: concurrent
/// invocations can hang on the CLI's own Erlang distribution ports.
pub fn fresh_vhost() -> String {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let base = std::env::var("ALEXANDRITE_TEST_AMQP_BASE")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672".into());
    let vhost = format!("alx-test-{}", uuid::Uuid::new_v4().simple());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for args in [
        vec!["add_vhost", vhost.as_str()],
        vec![
            "set_permissions",
            "-p",
            vhost.as_str(),
            "guest",
            ".*",
            ".*",
            ".*",
        ],
    ] {
        let mut last = String::new();
        let ok = (0..3).any(|_| {
            let out = std::process::Command::new("timeout")
                .arg("30")
                .arg("rabbitmqctl")
                .args(&args)
                .output()
                .unwrap_or_else(|e| {
                    panic!("rabbitmqctl is needed for ALEXANDRITE_TEST_PROFILE=production: {e}")
                });
            last = format!("{} {}", out.status, String::from_utf8_lossy(&out.stderr));
            out.status.success()
        });
        assert!(ok, "rabbitmqctl {args:?} failed three times: {last}");
    }
    format!("{base}/{vhost}")
}

/// Points a configuration at fresh production-profile stores: PostgreSQL
/// databases, a RabbitMQ vhost, an S3 prefix.
pub async fn use_production_stores(config: &mut Config) {
    config.crm.database_url = Some(fresh_database("crm").await);
    config.mes.database_url = Some(fresh_database("mes").await);
    config.notifier.database_url = Some(fresh_database("notifier").await);
    config.bus.url = Some(fresh_vhost());
    config.cache.url = redis_url();
    let addr = config
        .cache
        .url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or("")
        .to_string();
    if let Err(e) = tokio::net::TcpStream::connect(&addr).await {
        panic!(
            "Redis at {addr} is needed for ALEXANDRITE_TEST_PROFILE=production (scripts/test starts it): {e}"
        );
    }
    config.cache.prefix = format!("alx-test-{}:", uuid::Uuid::new_v4().simple());
    require_s3().await;
    config.mes.objects_url = Some(format!("s3://{}/api-{}", s3_bucket(), uuid::Uuid::new_v4()));
    config.mes.s3_endpoint = Some(s3_endpoint());
    config.mes.s3_region = Some("us-east-1".into());
    config.mes.s3_access_key_id = Some("alexandrite-test".into());
    config.mes.s3_secret_access_key = Some("alexandrite-test-secret".into());
}

impl TestApp {
    /// The app's object storage, whichever profile (to look at what it stored).
    pub fn store(&self) -> std::sync::Arc<dyn object_store::ObjectStore> {
        let c = &self.config;
        adapters::objects::open_with(&c.objects_url(), &c.s3_options())
            .expect("object store")
            .store
    }
}

pub struct TestApp {
    pub base: String,
    pub client: Client,
    /// The demo B2B organisation's key.
    pub b2b_key: String,
    pub accounts: Accounts,
    pub data_dir: TempDir,
    /// The configuration the app runs with (database URLs and all).
    pub config: Config,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    alexandrite::telemetry::init(alexandrite::telemetry::Sink::Test);
    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: data_dir.path().to_path_buf(),
        ..Config::default()
    };
    if production() {
        use_production_stores(&mut config).await;
    }
    adjust(&mut config);
    let app = Application::build(&config)
        .await
        .expect("application builds");
    let base = format!("http://{}", app.local_addr());
    let b2b_key = app
        .demo
        .as_ref()
        .expect("demo accounts on an empty start")
        .b2b_key
        .clone();
    let accounts = app.accounts();
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    TestApp {
        base,
        client: Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        b2b_key,
        accounts,
        data_dir,
        config,
        stop: Some(tx),
        handle: Some(handle),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The app's `/metrics` page (Prometheus text).
    pub async fn metrics_text(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("scrape /metrics")
            .text()
            .await
            .expect("the /metrics body")
    }

    /// A new person and an API key acting as them.
    pub async fn key_for(&self, role: Role, email: &str, name: &str, org: Option<&str>) -> String {
        self.accounts
            .create_user(NewUser {
                email,
                name,
                password: "password-123",
                role,
                org,
            })
            .await
            .expect("user created");
        self.accounts.create_key(email).await.expect("key created")
    }

    pub async fn manager(&self, name: &str) -> String {
        let email = format!("{}@managers.test", name.to_lowercase());
        self.key_for(Role::Manager, &email, name, None).await
    }

    pub async fn operator(&self, name: &str) -> String {
        let email = format!("{}@ops.test", name.to_lowercase());
        self.key_for(Role::Operator, &email, name, None).await
    }

    /// A browser-like client logged in with a password.
    pub async fn login(&self, email: &str, password: &str) -> Client {
        let c = Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let r = c
            .post(self.url("/login"))
            .form(&[("email", email), ("password", password)])
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::SEE_OTHER,
            "login of {email} failed: {}",
            r.text().await.unwrap()
        );
        c
    }

    pub async fn upload(
        &self,
        key: &str,
        file_name: &str,
        bytes: Vec<u8>,
        material: &str,
        idem: Option<&str>,
    ) -> Response {
        let form = Form::new()
            .part("file", Part::bytes(bytes).file_name(file_name.to_string()))
            .text("material", material.to_string());
        let mut req = self
            .client
            .post(self.url("/api/v1/models"))
            .bearer_auth(key)
            .multipart(form);
        if let Some(k) = idem {
            req = req.header("Idempotency-Key", k);
        }
        req.send().await.expect("upload request")
    }

    /// Uploads a shared model and returns the new order's id.
    pub async fn upload_model(&self, key: &str, name: &str, material: &str) -> String {
        let r = self.upload(key, name, model(name), material, None).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let body: Value = r.json().await.unwrap();
        body["order_id"].as_str().unwrap().to_string()
    }

    pub async fn get(&self, key: &str, path: &str) -> (StatusCode, Value) {
        let r = self
            .client
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, key: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.client.post(self.url(path)).bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn order(&self, key: &str, id: &str) -> (StatusCode, Value) {
        self.get(key, &format!("/api/v1/orders/{id}")).await
    }

    /// Polls the B2B API until the order has `status` (panics after 20 s with what it saw).
    pub async fn wait_status(&self, key: &str, id: &str, status: &str) -> Value {
        wait_status(&self.client, &self.base, key, id, status).await
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await
                .expect("server task")
                .expect("server stopped cleanly");
        }
        // A vhost holds quorum queues: leave none behind (scripts/test sweeps the rest).
        let vhost = self
            .config
            .bus
            .url
            .as_deref()
            .and_then(|u| u.strip_prefix("amqp://"))
            .and_then(|u| u.rsplit_once('/'));
        if let Some((_, vhost)) = vhost {
            let _ = std::process::Command::new("timeout")
                .args(["30", "rabbitmqctl", "-q", "delete_vhost", vhost])
                .output();
        }
    }
}

pub async fn wait_status(client: &Client, base: &str, key: &str, id: &str, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut last = Value::Null;
    while tokio::time::Instant::now() < deadline {
        if let Ok(r) = client
            .get(format!("{base}/api/v1/orders/{id}"))
            .bearer_auth(key)
            .send()
            .await
        {
            if r.status() == StatusCode::OK {
                last = r.json().await.unwrap_or(Value::Null);
                if last["status"] == status {
                    return last;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("order {id} did not reach {status}; last seen: {last}");
}

/// The statuses of an order's history, in order.
pub fn history(order: &Value) -> Vec<String> {
    order["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| h["status"].as_str().unwrap().to_string())
        .collect()
}

/// The S3-compatible test server (s3s-fs, started by `scripts/s3-server`).
pub fn s3_endpoint() -> String {
    std::env::var("ALEXANDRITE_TEST_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:8014".into())
}

/// Its bucket; the tests use a fresh prefix in it each.
pub fn s3_bucket() -> String {
    std::env::var("ALEXANDRITE_TEST_S3_BUCKET").unwrap_or_else(|_| "alexandrite-test".into())
}

/// Fails loudly when the S3 server is not running: S3 tests never skip.
pub async fn require_s3() {
    let ep = s3_endpoint();
    let addr = ep.trim_start_matches("http://").trim_end_matches('/');
    if let Err(e) = tokio::net::TcpStream::connect(addr).await {
        panic!(
            "no S3-compatible server at {ep} ({e}): start it with scripts/s3-server \
             (or point ALEXANDRITE_TEST_S3_ENDPOINT at one)"
        );
    }
}

/// The platform with its models in S3 (a fresh prefix of the test bucket); the
/// credentials are explicit settings, so no process-wide AWS_* variable is needed.
pub async fn spawn_on_s3(adjust: impl FnOnce(&mut Config)) -> TestApp {
    require_s3().await;
    spawn_with(|c| {
        c.mes.objects_url = Some(format!("s3://{}/api-{}", s3_bucket(), uuid::Uuid::new_v4()));
        c.mes.s3_endpoint = Some(s3_endpoint());
        c.mes.s3_region = Some("us-east-1".into());
        c.mes.s3_access_key_id = Some("alexandrite-test".into());
        c.mes.s3_secret_access_key = Some("alexandrite-test-secret".into());
        adjust(c);
    })
    .await
}
