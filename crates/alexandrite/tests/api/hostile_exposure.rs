//! Trust at the edges: what the platform writes about people and keeps about
//! itself. A customer's name with a line break is e-mailed with sane headers;
//! `alexandrite config` shows no secret wherever it was put; keys, databases
//! and credentials are readable by this account only.

use crate::helpers::{TestApp, production, spawn_with};
use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;

/// A name that tries to add a `Bcc:` header.
const HOSTILE: &str = "Eve\r\nBcc: victim@evil.test\r\n\r\nInjected";

/// Registers a shop customer through the shop's form; returns the logged-in
/// browser and whether the name was taken as given.
async fn register(app: &TestApp, email: &str, name: &str) -> (reqwest::Client, bool) {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = |name: &str| {
        vec![
            ("email".to_string(), email.to_string()),
            ("name".to_string(), name.to_string()),
            ("password".to_string(), "password-123".to_string()),
        ]
    };
    let r = browser
        .post(app.url("/register?lang=en"))
        .form(&form(name))
        .send()
        .await
        .unwrap();
    if r.status() == StatusCode::SEE_OTHER {
        return (browser, true);
    }
    // Refused upstream (a name with a line break may be): registered plainly,
    // the name is made hostile in the CRM's database below.
    assert!(r.status().is_client_error(), "{}", r.status());
    let r = browser
        .post(app.url("/register?lang=en"))
        .form(&form("Eve"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    (browser, false)
}

async fn wait_order(app: &TestApp, browser: &reqwest::Client, id: &str, status: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut last = Value::Null;
    while tokio::time::Instant::now() < deadline {
        let r = browser
            .get(app.url(&format!("/api/v1/orders/{id}")))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::OK {
            last = r.json().await.unwrap();
            if last["status"] == status {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("order {id} did not reach {status}: {last}");
}

/// The `.eml` file about `order` in `status`, as written.
async fn wait_mail(app: &TestApp, order: &str, status: &str) -> String {
    let dir = app.config.mail_dir();
    let prefix = format!("{order}-{status}-");
    for _ in 0..600 {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let n = e.file_name().to_string_lossy().to_string();
                if n.starts_with(&prefix) && n.ends_with(".eml") {
                    return std::fs::read_to_string(e.path()).unwrap();
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no e-mail about {order} {status} in {}", dir.display());
}

/// The message's header lines, unfolded: each is one of ours, there is one
/// `To` (the customer's address), and none is a `Bcc`.
fn assert_sane_headers(mail: &str, to: &str) {
    let (head, body) = mail.split_once("\r\n\r\n").expect("headers, then a body");
    let mut lines: Vec<String> = vec![];
    for line in head.split("\r\n") {
        assert!(!line.contains('\r') && !line.contains('\n'), "{line:?}");
        if line.starts_with([' ', '\t']) {
            lines
                .last_mut()
                .expect("a folded line continues one")
                .push_str(line);
        } else {
            lines.push(line.to_string());
        }
    }
    let known = [
        "From",
        "To",
        "Subject",
        "Content-Language",
        "Content-Type",
        "Content-Transfer-Encoding",
        "MIME-Version",
        "Date",
    ];
    for l in &lines {
        let name = l.split(':').next().unwrap();
        assert!(
            known.contains(&name),
            "a header line we did not write: {l:?}\n{mail}"
        );
    }
    let tos: Vec<_> = lines.iter().filter(|l| l.starts_with("To:")).collect();
    assert_eq!(tos.len(), 1, "{mail}");
    assert!(tos[0].ends_with(&format!("<{to}>")), "{}", tos[0]);
    assert!(!mail.to_ascii_lowercase().contains("\r\nbcc:"), "{mail}");
    // The name stays on the greeting's line.
    let first = body.split("\r\n").next().unwrap();
    assert!(first.starts_with("Hello Eve"), "{body}");
    assert!(!body.contains("\r\nInjected"), "{body}");
}

#[tokio::test]
async fn a_customer_whose_name_holds_a_line_break_is_mailed_with_sane_headers() {
    let app = spawn_with(|_| {}).await;
    let email = "eve@shop.test";
    let (browser, taken) = register(&app, email, HOSTILE).await;
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(crate::helpers::model("ring_showcase_ring.bin.stl"))
                .file_name("ring_showcase_ring.bin.stl"),
        )
        .text("material", "AU585Y");
    let r = browser
        .post(app.url("/api/v1/models"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::ACCEPTED,
        "{}",
        r.text().await.unwrap()
    );
    let id = r.json::<Value>().await.unwrap()["order_id"]
        .as_str()
        .unwrap()
        .to_string();
    if taken {
        // Accepted at the door: the name went all the way to the first e-mail.
        assert_sane_headers(&wait_mail(&app, &id, "PRICING").await, email);
    }
    wait_order(&app, &browser, &id, "AWAITING_CONFIRMATION").await;
    // Whatever upstream lets through, the notifier must be safe: the name is
    // made hostile where the CRM reads it for the next notification.
    let crm = adapters::Db::connect(&app.config.crm_database_url(), crm::migrations())
        .await
        .unwrap();
    let updated = sqlx::query("UPDATE orders SET owner_name = $1 WHERE id = $2")
        .bind(HOSTILE)
        .bind(&id)
        .execute(crm.pool())
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 1);
    crm.close().await;
    let r = browser
        .post(app.url(&format!("/api/v1/orders/{id}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let mail = wait_mail(&app, &id, "CANCELLED").await;
    assert_sane_headers(&mail, email);
    assert!(
        mail.contains(&format!("Order {id} is cancelled.")),
        "{mail}"
    );

    // Nothing about the order is left pending or abandoned.
    let notifier =
        adapters::Db::connect(&app.config.notifier_database_url(), notifier::migrations())
            .await
            .unwrap();
    let states: Vec<(String, String)> =
        sqlx::query_as("SELECT status, state FROM deliveries WHERE order_id = $1 ORDER BY status")
            .bind(&id)
            .fetch_all(notifier.pool())
            .await
            .unwrap();
    assert!(states.iter().any(|(s, _)| s == "CANCELLED"), "{states:?}");
    for (status, state) in &states {
        assert_eq!(state, "sent", "{status}");
    }
    notifier.close().await;
    app.stop().await;
}

#[test]
fn config_masks_every_secret_wherever_it_is_put() {
    let dir = tempfile::tempdir().unwrap();
    // Every secret is `pw-<n>-x`; none may appear, the rest of each URL stays.
    let vars = [
        (
            "CRM__DATABASE_URL",
            "postgres://crm:pw-1-x@db:5432/crm?sslmode=require&sslpassword=pw-2-x",
        ),
        (
            "CRM__DATABASE_REPLICA_URL",
            "postgres://reader:pw-3-x@replica:5433/crm",
        ),
        (
            "MES__DATABASE_URL",
            "postgresql://mes@db/mes?password=pw-4-x",
        ),
        (
            "MES__DATABASE_REPLICA_URL",
            "postgres://reader@replica/mes?passwd=pw-5-x&pwd=pw-6-x",
        ),
        (
            "NOTIFIER__DATABASE_URL",
            "postgres://n:pw-7-x@db/n?application_name=notifier",
        ),
        ("NOTIFIER__SMTP_URL", "smtp://mailer:pw-8-x@mail.test:2525"),
        ("BUS__URL", "amqp://guest:pw-9-x@mq:5672/%2f?token=pw-10-x"),
        ("CACHE__URL", "redis://:pw-11-x@cache:6379/0"),
        (
            "MES__OBJECTS_URL",
            "s3://bucket/prefix?access_key=pw-12-x&secret_access_key=pw-13-x",
        ),
        (
            "MES__S3_ENDPOINT",
            "http://s3user:pw-14-x@s3.test:9000/?secret=pw-15-x&key=pw-16-x",
        ),
        ("MES__S3_ACCESS_KEY_ID", "AKIApw-17-x"),
        ("MES__S3_SECRET_ACCESS_KEY", "pw-18-x"),
        ("IDENTITY_SECRET", "pw-19-x-0123456789abcdef0123456789"),
        ("GATEWAY__CRM_URL", "http://svc:pw-20-x@crm:8081"),
        (
            "PUBLIC_URL",
            "https://admin:pw-21-x@shop.test/?api_key=pw-22-x",
        ),
        (
            "TELEMETRY__TRACE_URL",
            "https://tempo.test/trace/{trace_id}?access_token=pw-23-x",
        ),
    ];
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_alexandrite"));
    for (k, _) in std::env::vars() {
        if k.starts_with("ALEXANDRITE_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in vars {
        cmd.env(format!("ALEXANDRITE_{k}"), v);
    }
    let out = cmd
        .arg("config")
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stdout.contains("pw-"), "a secret is shown:\n{stdout}");
    assert!(!stderr.contains("pw-"), "a secret is logged:\n{stderr}");
    let shown: Value = serde_json::from_str(&stdout).expect("the configuration as JSON");
    // What is not secret still tells the operator where things are.
    for (path, expected) in [
        (
            "/crm/database_url",
            "postgres://crm:***@db:5432/crm?sslmode=require&sslpassword=***",
        ),
        (
            "/crm/database_replica_url",
            "postgres://reader:***@replica:5433/crm",
        ),
        ("/mes/database_url", "postgresql://mes@db/mes?password=***"),
        (
            "/mes/database_replica_url",
            "postgres://reader@replica/mes?passwd=***&pwd=***",
        ),
        (
            "/notifier/database_url",
            "postgres://n:***@db/n?application_name=notifier",
        ),
        ("/notifier/smtp_url", "smtp://mailer:***@mail.test:2525"),
        ("/bus/url", "amqp://guest:***@mq:5672/%2f?token=***"),
        ("/cache/url", "redis://:***@cache:6379/0"),
        (
            "/mes/objects_url",
            "s3://bucket/prefix?access_key=***&secret_access_key=***",
        ),
        (
            "/mes/s3_endpoint",
            "http://s3user:***@s3.test:9000/?secret=***&key=***",
        ),
        ("/mes/s3_access_key_id", "AKIA***"),
        ("/mes/s3_secret_access_key", "***"),
        ("/identity_secret", "***"),
        ("/gateway/crm_url", "http://svc:***@crm:8081"),
        ("/public_url", "https://admin:***@shop.test/?api_key=***"),
        (
            "/telemetry/trace_url",
            "https://tempo.test/trace/{trace_id}?access_token=***",
        ),
    ] {
        assert_eq!(
            shown.pointer(path).and_then(Value::as_str),
            Some(expected),
            "{path}"
        );
    }
}

#[cfg(unix)]
#[tokio::test]
async fn keys_databases_and_credentials_are_readable_by_this_account_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    // A data directory the platform makes itself (and its parent).
    let app = spawn_with(|c| c.data_dir = c.data_dir.join("fresh/data")).await;
    let data = app.config.data_dir.clone();
    assert!(data.ends_with("fresh/data"));
    // An order, so that a model is stored and an e-mail written.
    let id = app
        .upload_model(&app.b2b_key.clone(), "ring_showcase_ring.bin.stl", "AU585Y")
        .await;
    app.wait_status(&app.b2b_key.clone(), &id, "AWAITING_CONFIRMATION")
        .await;
    wait_mail(&app, &id, "AWAITING_CONFIRMATION").await;

    let mut dirs = vec![
        data.clone(),
        data.parent().unwrap().to_path_buf(),
        app.config.mail_dir(),
    ];
    let mut files = vec![data.join("identity.key"), data.join("demo-credentials.txt")];
    if !production() {
        dirs.push(data.join("objects"));
        for db in ["crm", "mes", "notifier", "bus"] {
            let f = data.join(format!("{db}.sqlite"));
            assert!(f.exists(), "{}", f.display());
            files.push(f);
        }
        // SQLite's write-ahead log and shared memory, while the databases are open.
        let wal: Vec<_> = std::fs::read_dir(&data)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let n = p.to_string_lossy();
                n.ends_with("-wal") || n.ends_with("-shm")
            })
            .collect();
        assert!(wal.len() >= 4, "{wal:?}");
        files.extend(wal);
    }
    for f in std::fs::read_dir(app.config.mail_dir()).unwrap().flatten() {
        files.push(f.path());
    }
    for d in &dirs {
        assert_eq!(mode(d), 0o700, "{}", d.display());
    }
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
    // The key is kept: a second start reads it, and a file others could read
    // is narrowed.
    let key = std::fs::read_to_string(data.join("identity.key")).unwrap();
    assert_eq!(key.len(), 64);
    std::fs::set_permissions(
        data.join("identity.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let secret = app.config.identity_secret().unwrap();
    assert_eq!(secret, key.as_bytes());
    assert_eq!(mode(&data.join("identity.key")), 0o600);
    app.stop().await;
}
