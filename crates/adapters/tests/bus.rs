//! The embedded bus behaves like a broker: durable until acked, routed by
//! binding (unroutable is an error), redelivered on failure up to a limit,
//! then dead-lettered and replayable; a restart redelivers what was in flight.
//! The bodies are the shared contract, also run on RabbitMQ (`tests/rabbit.rs`).

mod contract;

use adapters::Bus;
use adapters::bus::EmbeddedBus;
use contract::Opener;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A bus file in a fresh directory; each `open` is a new "process" on it.
struct Embedded(tempfile::TempDir);

impl Embedded {
    fn new() -> Embedded {
        Embedded(tempfile::tempdir().unwrap())
    }
}

impl Opener for Embedded {
    fn open(&self) -> Pin<Box<dyn Future<Output = Arc<dyn Bus>> + '_>> {
        let url = adapters::db::sqlite_url(&self.0.path().join("bus.sqlite"));
        Box::pin(async move {
            let bus: Arc<dyn Bus> = EmbeddedBus::open(&url).await.unwrap();
            bus
        })
    }
}

#[tokio::test]
async fn an_event_nobody_is_bound_to_is_an_error_not_a_silent_drop() {
    contract::unroutable_is_an_error(&Embedded::new()).await;
}

#[tokio::test]
async fn transient_failures_are_redelivered_until_acked() {
    contract::transient_failures_are_redelivered_until_acked(
        &Embedded::new(),
        &contract::unique_queue(3),
    )
    .await;
}

#[tokio::test]
async fn past_the_delivery_limit_a_message_is_dead_lettered_and_can_be_replayed() {
    contract::past_the_limit_a_message_is_dead_lettered_and_replayable(
        &Embedded::new(),
        &contract::unique_queue(3),
    )
    .await;
}

#[tokio::test]
async fn a_rejected_message_goes_straight_to_the_dead_letters() {
    contract::a_rejected_message_goes_straight_to_the_dead_letters(
        &Embedded::new(),
        &contract::unique_queue(3),
    )
    .await;
}

#[tokio::test]
async fn messages_survive_a_restart_and_are_delivered_to_the_next_process() {
    contract::messages_survive_a_restart(&Embedded::new(), &contract::unique_queue(3)).await;
}

#[tokio::test]
async fn the_trace_context_travels_in_the_message_headers() {
    contract::trace_context_travels_in_the_message_headers(
        &Embedded::new(),
        &contract::unique_queue(3),
    )
    .await;
}

/// The embedded bus keeps the trace context as a header column beside the
/// body, like a broker's message headers.
#[tokio::test]
async fn the_embedded_bus_stores_the_trace_context_beside_the_body() {
    let dir = tempfile::tempdir().unwrap();
    let url = adapters::db::sqlite_url(&dir.path().join("bus.sqlite"));
    let bus = EmbeddedBus::open(&url).await.unwrap();
    let q = contract::unique_queue(3);
    bus.declare(&q).await.unwrap();
    let ev = contract::event(q.bindings[0]);
    bus.publish(&ev).await.unwrap();
    let db = adapters::Db::connect(&url, &[]).await.unwrap();
    let row = sqlx::query("SELECT body, traceparent FROM messages WHERE event_id = $1")
        .bind(ev.event_id.to_string())
        .fetch_one(db.pool())
        .await
        .unwrap();
    use sqlx::Row;
    let tp: Option<String> = row.try_get("traceparent").unwrap();
    assert_eq!(tp, ev.traceparent);
    let body: serde_json::Value =
        serde_json::from_str(&row.try_get::<String, _>("body").unwrap()).unwrap();
    assert!(body.get("traceparent").is_none(), "{body}");
}

#[tokio::test]
async fn the_url_scheme_picks_the_implementation() {
    let dir = tempfile::tempdir().unwrap();
    let url = adapters::db::sqlite_url(&dir.path().join("bus.sqlite"));
    let bus = adapters::bus::open(&url).await.unwrap();
    assert!(bus.depths().await.unwrap().is_empty());
    let err = adapters::bus::open("kafka://secret@host")
        .await
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "bus URL scheme 'kafka': expected sqlite://… or amqp://…"
    );
}
