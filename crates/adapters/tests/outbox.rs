//! The outbox relay on PostgreSQL: several relays (several processes of one
//! service) draining the same outbox publish every event exactly once.

#[allow(dead_code)]
mod contract;

use adapters::bus::{EmbeddedBus, QueueSpec};
use adapters::outbox::{self, Relay};
use adapters::{Bus, Db, Migration};
use domain::OrderId;
use domain::events::{Actor, Envelope, OrderConfirmed};
use sqlx::Connection;
use std::sync::Arc;

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "outbox",
        sqlite: outbox::SQL,
        postgres: outbox::SQL_PG,
    },
    Migration {
        version: 2,
        description: "outbox trace context",
        sqlite: outbox::SQL_TRACEPARENT,
        postgres: outbox::SQL_TRACEPARENT,
    },
];

async fn fresh_postgres() -> String {
    let base = std::env::var("ALEXANDRITE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let mut conn = sqlx::PgConnection::connect(&format!("{base}/postgres"))
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL at {base} is needed for this test (scripts/test starts it): {e}")
        });
    let name = format!("alx_test_outbox_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    format!("{base}/{name}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_on_one_postgres_outbox_publish_each_event_once() {
    let db = Db::connect(&fresh_postgres().await, MIGRATIONS)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bus = EmbeddedBus::open(&adapters::db::sqlite_url(&dir.path().join("bus.sqlite")))
        .await
        .unwrap();
    bus.declare(&QueueSpec {
        name: "sink",
        bindings: &["order.confirmed"],
        delivery_limit: 3,
    })
    .await
    .unwrap();
    const N: usize = 300;
    for _ in 0..N {
        let mut tx = db.begin_write().await.unwrap();
        let env = Envelope::new(
            "test",
            &OrderConfirmed {
                order_id: OrderId::new(),
                actor: Actor::system("t"),
            },
        );
        outbox::enqueue(&mut tx, &env).await.unwrap();
        tx.commit().await.unwrap();
    }
    let bus: Arc<dyn Bus> = bus;
    let relays: Vec<Relay> = (0..3)
        .map(|_| Relay::new(db.clone(), bus.clone(), "test"))
        .collect();
    let drains = relays.into_iter().map(|r| {
        tokio::spawn(async move {
            let mut total = 0;
            loop {
                let n = r.publish_pending().await.unwrap();
                if n == 0 {
                    return total;
                }
                total += n;
            }
        })
    });
    let counts: Vec<usize> = futures::future::join_all(drains)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        counts.iter().sum::<usize>(),
        N,
        "rows published per relay: {counts:?}"
    );
    assert_eq!(outbox::backlog(&db).await.unwrap().0, 0);
    assert_eq!(
        bus.depths().await.unwrap(),
        vec![("sink".to_string(), N as i64)],
        "each event on the bus once"
    );
}

/// An event leaves the outbox in the trace of the span that wrote it: the row
/// keeps that span's `traceparent`; the relay publishes in a child span whose
/// context the message carries to the consumer.
#[tokio::test]
async fn an_event_is_published_in_the_trace_of_the_span_that_wrote_it() {
    contract::tracing_layer();
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(
        &adapters::db::sqlite_url(&dir.path().join("svc.sqlite")),
        MIGRATIONS,
    )
    .await
    .unwrap();
    let bus: Arc<dyn Bus> =
        EmbeddedBus::open(&adapters::db::sqlite_url(&dir.path().join("bus.sqlite")))
            .await
            .unwrap();
    let q = contract::unique_queue(3);
    bus.declare(&q).await.unwrap();
    let probe = contract::Probe::new(0, false);
    bus.consume(q.name, 1, probe.clone()).await.unwrap();

    let mut env = contract::event(q.bindings[0]);
    env.traceparent = None;
    let writer = tracing::info_span!("test.writer");
    let writer_tp = adapters::telemetry::traceparent_of(&writer).unwrap();
    tracing::Instrument::instrument(
        async {
            let mut tx = db.begin_write().await.unwrap();
            outbox::enqueue(&mut tx, &env).await.unwrap();
            tx.commit().await.unwrap();
        },
        writer,
    )
    .await;
    use sqlx::Row;
    let stored: Option<String> = sqlx::query("SELECT traceparent FROM outbox")
        .fetch_one(db.pool())
        .await
        .unwrap()
        .try_get("traceparent")
        .unwrap();
    assert_eq!(stored.as_deref(), Some(writer_tp.as_str()));

    let relay = Relay::new(db.clone(), bus.clone(), "test");
    assert_eq!(relay.publish_pending().await.unwrap(), 1);
    contract::until("delivered", || probe.acked().len() == 1).await;
    let seen = probe.seen.lock().unwrap()[0].clone();
    let carried = seen.traceparent.unwrap();
    let trace = &writer_tp[3..35];
    assert!(
        carried.starts_with(&format!("00-{trace}-")) && carried != writer_tp,
        "the relay's own span in the writer's trace: {carried}"
    );
    assert_eq!(seen.trace_id.as_deref(), Some(trace));
    bus.shutdown().await;
}
