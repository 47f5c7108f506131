//! The outbox relay on PostgreSQL: several relays (several processes of one
//! service) draining the same outbox publish every event exactly once.

use adapters::bus::{EmbeddedBus, QueueSpec};
use adapters::outbox::{self, Relay};
use adapters::{Bus, Db, Migration};
use domain::OrderId;
use domain::events::{Actor, Envelope, OrderConfirmed};
use sqlx::Connection;
use std::sync::Arc;

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "outbox",
    sqlite: outbox::SQL,
    postgres: outbox::SQL_PG,
}];

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
