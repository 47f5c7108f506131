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
