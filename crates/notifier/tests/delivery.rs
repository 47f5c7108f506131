//! The delivery log on a real database file: a duplicate event is recorded
//! once, a failed webhook is retried after its backoff by a dispatcher that
//! was not running when it failed (a restart), and both attempts are kept.

use adapters::Db;
use adapters::bus::Handler;
use domain::events::{Contact, Envelope, OrderUpdated};
use domain::{Money, OrderId, OrderStatus};
use notifier::consumer::NotifierConsumer;
use notifier::deliveries::{Dispatcher, RetryPolicy};
use notifier::mail::Mailer;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

async fn endpoint(fail_first: usize) -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let seen = seen.clone();
            async move {
                if seen.fetch_add(1, Ordering::SeqCst) < fail_first {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                } else {
                    axum::http::StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, calls)
}

fn dispatcher(db: Db, dir: &std::path::Path) -> Dispatcher {
    Dispatcher {
        db,
        mailer: Arc::new(Mailer::new(None, dir.join("mail"), "a@alexandrite.test").unwrap()),
        retry: RetryPolicy {
            base: Duration::from_millis(300),
            max: Duration::from_secs(1),
            max_attempts: 5,
        },
        allow_private: true,
        webhook_timeout: Duration::from_secs(5),
        metrics: adapters::metrics::Metrics::new(),
        wake: Arc::default(),
    }
}

#[tokio::test]
async fn a_failed_webhook_is_retried_after_a_restart_and_a_duplicate_is_told_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = adapters::db::sqlite_url(&dir.path().join("notifier.sqlite"));
    let db = Db::connect(&url, notifier::migrations()).await.unwrap();
    let (hook, calls) = endpoint(1).await;
    sqlx::query(
        "INSERT INTO webhooks (org, url, secret, created_at_ms, updated_at_ms) VALUES ('acme', $1, 'whsec_t', 0, 0)",
    )
    .bind(&hook)
    .execute(db.pool())
    .await
    .unwrap();
    let event = OrderUpdated {
        order_id: OrderId::new(),
        status: OrderStatus::AwaitingConfirmation,
        at: "2026-12-07T00:00:00.000Z".into(),
        contact: Contact {
            email: "Dev@Acme.test".into(),
            name: "Dev".into(),
            language: "en".into(),
            organisation: Some("acme".into()),
        },
        file_name: "ring.stl".into(),
        material: "AU585Y".into(),
        price_total: Some(Money::rub(100_00)),
        rejection: None,
        tracking_number: None,
    };
    let env = Envelope::new("crm", &event);
    let consumer = NotifierConsumer {
        db: db.clone(),
        wake: Arc::default(),
    };
    consumer.handle(env.clone()).await.unwrap();
    consumer.handle(env.clone()).await.unwrap();
    consumer.handle(Envelope::new("crm", &event)).await.unwrap();
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT channel, target FROM deliveries ORDER BY channel")
            .fetch_all(db.pool())
            .await
            .unwrap();
    assert_eq!(
        rows,
        vec![
            ("email".to_string(), "dev@acme.test".to_string()),
            ("webhook".to_string(), "org:acme".to_string())
        ]
    );

    // The first attempts: the e-mail is written, the webhook answers 503.
    assert_eq!(
        dispatcher(db.clone(), dir.path())
            .dispatch_due()
            .await
            .unwrap(),
        2
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Not due yet: nothing is taken.
    assert_eq!(
        dispatcher(db.clone(), dir.path())
            .dispatch_due()
            .await
            .unwrap(),
        0
    );
    db.close().await;

    // "Restarted": a new pool on the same file, a new dispatcher.
    let db = Db::connect(&url, notifier::migrations()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        dispatcher(db.clone(), dir.path())
            .dispatch_due()
            .await
            .unwrap(),
        1
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let list = notifier::deliveries::list_for_org(&db, "acme", None, 10)
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    let d = &list[0];
    assert_eq!((d.state.as_str(), d.attempts), ("sent", 2));
    assert_eq!(
        d.attempt_log
            .iter()
            .map(|a| a.status_code)
            .collect::<Vec<_>>(),
        vec![Some(503), Some(204)]
    );
    assert_eq!(d.event_id, env.event_id.to_string());
    let mails: Vec<_> = std::fs::read_dir(dir.path().join("mail"))
        .unwrap()
        .collect();
    assert_eq!(mails.len(), 1, "one e-mail");
}

/// A delivery log row: order, target, state, reason, last error, attempts.
type Row = (String, String, String, Option<String>, Option<String>, i64);

/// An `order.updated` for a shop customer with this name and address.
fn shop_event(name: &str, email: &str) -> OrderUpdated {
    OrderUpdated {
        order_id: OrderId::new(),
        status: OrderStatus::AwaitingConfirmation,
        at: "2026-12-07T00:00:00.000Z".into(),
        contact: Contact {
            email: email.into(),
            name: name.into(),
            language: "en".into(),
            organisation: None,
        },
        file_name: "ring.stl".into(),
        material: "AU585Y".into(),
        price_total: Some(Money::rub(10_000)),
        rejection: None,
        tracking_number: None,
    }
}

#[tokio::test]
async fn hostile_names_are_mailed_with_sane_headers_and_unusable_addresses_are_abandoned_with_a_reason()
 {
    let dir = tempfile::tempdir().unwrap();
    let url = adapters::db::sqlite_url(&dir.path().join("notifier.sqlite"));
    let db = Db::connect(&url, notifier::migrations()).await.unwrap();
    let consumer = NotifierConsumer {
        db: db.clone(),
        wake: Arc::default(),
    };
    let sendable = [
        ("Eve\r\nBcc: victim@evil.test", "crlf@shop.test"),
        ("Bcc: x@evil", "bcc@shop.test"),
        ("Анна\u{0}Смирнова", "nul@shop.test"),
        ("Ирина 🌸 \u{202e}Смирнова\u{2028}", "unicode@shop.test"),
    ];
    let long_name = "x".repeat(10 * 1024);
    let unusable = [
        "not an address".to_string(),
        "a@b@c".to_string(),
        format!("{}@shop.test", "a".repeat(10 * 1024)),
        "nul\u{0}@shop.test".to_string(),
    ];
    let mut events = vec![];
    for (name, email) in sendable {
        events.push((shop_event(name, email), true));
    }
    events.push((shop_event(&long_name, "long@shop.test"), true));
    for email in &unusable {
        events.push((shop_event("Eve", email), false));
    }
    for (ev, _) in &events {
        consumer.handle(Envelope::new("crm", ev)).await.unwrap();
    }
    let d = dispatcher(db.clone(), dir.path());
    while d.dispatch_due().await.unwrap() > 0 {}

    let rows: Vec<Row> = sqlx::query_as(
        "SELECT order_id, target, state, abandoned_reason, last_error, attempts FROM deliveries",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    assert_eq!(rows.len(), events.len(), "every notification is recorded");
    for (ev, sendable) in &events {
        let (_, target, state, reason, error, attempts) = rows
            .iter()
            .find(|r| r.0 == ev.order_id.to_string())
            .unwrap();
        assert_eq!(*attempts, 1, "{target}: one attempt, no retry");
        if *sendable {
            assert_eq!(state, "sent", "{target}: {error:?}");
            assert_eq!(reason, &None);
        } else {
            assert_eq!(state, "abandoned", "{target}: never left pending");
            assert_eq!(reason.as_deref(), Some("invalid_address"), "{target}");
            assert!(
                error
                    .as_deref()
                    .unwrap_or("")
                    .contains("not an e-mail address"),
                "{error:?}"
            );
            assert!(target.len() <= 254, "the target is bounded");
        }
    }
    let text = d.metrics.encode();
    assert!(
        text.contains(&format!(
            r#"alexandrite_notifications_abandoned_total{{channel="email",reason="invalid_address"}} {}"#,
            unusable.len()
        )),
        "{text}"
    );

    // The messages that left: one To, no Bcc, no line the name made.
    let mails: Vec<String> = std::fs::read_dir(dir.path().join("mail"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert_eq!(mails.len(), sendable.len() + 1);
    for mail in &mails {
        let head = mail.split("\r\n\r\n").next().unwrap();
        for line in head.split("\r\n") {
            let name = line.split(':').next().unwrap();
            assert!(
                line.starts_with([' ', '\t'])
                    || [
                        "From",
                        "To",
                        "Subject",
                        "Content-Language",
                        "Content-Type",
                        "Content-Transfer-Encoding",
                        "MIME-Version",
                        "Date"
                    ]
                    .contains(&name),
                "a header line the name made: {line:?}\n{mail}"
            );
        }
        assert!(!mail.contains('\0'));
        assert!(
            mail.len() < 8 * 1024,
            "the 10 KB name is cut: {}",
            mail.len()
        );
        let body = mail.split("\r\n\r\n").nth(1).unwrap();
        assert!(body.starts_with("Hello"), "{body}");
        assert!(
            !body.contains("Bcc: victim") || body.lines().next().unwrap().contains("Bcc: victim"),
            "the name stays on the greeting's line: {body}"
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("mail")), 0o700);
        for e in std::fs::read_dir(dir.path().join("mail"))
            .unwrap()
            .flatten()
        {
            assert_eq!(mode(&e.path()), 0o600, "{}", e.path().display());
        }
    }
}
