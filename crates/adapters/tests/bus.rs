//! The embedded bus behaves like a broker: durable until acked, routed by
//! binding (unroutable is an error), redelivered on failure up to a limit,
//! then dead-lettered and replayable; a restart redelivers what was in flight.

use adapters::Bus;
use adapters::bus::{DeliveryError, EmbeddedBus, Handler, QueueSpec};
use async_trait::async_trait;
use domain::OrderId;
use domain::events::{Actor, Envelope, OrderConfirmed};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const Q: QueueSpec = QueueSpec {
    name: "test.q",
    bindings: &["order.confirmed"],
    delivery_limit: 3,
};

fn event() -> Envelope {
    Envelope::new(
        "test",
        &OrderConfirmed {
            order_id: OrderId::new(),
            actor: Actor::system("t"),
        },
    )
}

/// Fails the first `fail` deliveries (or rejects), records what it acked.
struct Probe {
    calls: AtomicUsize,
    fail: usize,
    reject: bool,
    acked: Mutex<Vec<String>>,
}

impl Probe {
    fn new(fail: usize, reject: bool) -> Arc<Probe> {
        Arc::new(Probe {
            calls: AtomicUsize::new(0),
            fail,
            reject,
            acked: Mutex::new(vec![]),
        })
    }
}

#[async_trait]
impl Handler for Probe {
    async fn handle(&self, env: Envelope) -> Result<(), DeliveryError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if self.reject {
            return Err(DeliveryError::Reject("poison".into()));
        }
        if n < self.fail {
            return Err(DeliveryError::Retry(anyhow::anyhow!(
                "transient failure {n}"
            )));
        }
        self.acked.lock().unwrap().push(env.event_id.to_string());
        Ok(())
    }
}

async fn until(mut ok: impl FnMut() -> bool) {
    for _ in 0..400 {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached in 4 s");
}

fn url(dir: &tempfile::TempDir) -> String {
    adapters::db::sqlite_url(&dir.path().join("bus.sqlite"))
}

#[tokio::test]
async fn an_event_nobody_is_bound_to_is_an_error_not_a_silent_drop() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EmbeddedBus::open(&url(&dir)).await.unwrap();
    let err = bus.publish(&event()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "unroutable: no queue is bound to event type 'order.confirmed'"
    );
}

#[tokio::test]
async fn transient_failures_are_redelivered_until_acked() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EmbeddedBus::open(&url(&dir)).await.unwrap();
    bus.declare(&Q).await.unwrap();
    let probe = Probe::new(2, false);
    bus.consume(Q.name, 1, probe.clone()).await.unwrap();
    let ev = event();
    bus.publish(&ev).await.unwrap();
    until(|| probe.acked.lock().unwrap().len() == 1).await;
    assert_eq!(probe.calls.load(Ordering::SeqCst), 3);
    assert_eq!(probe.acked.lock().unwrap()[0], ev.event_id.to_string());
    assert_eq!(bus.depths().await.unwrap(), vec![("test.q".to_string(), 0)]);
    assert!(bus.dead_letters().await.unwrap().is_empty());
    bus.shutdown().await;
}

#[tokio::test]
async fn past_the_delivery_limit_a_message_is_dead_lettered_and_can_be_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EmbeddedBus::open(&url(&dir)).await.unwrap();
    bus.declare(&Q).await.unwrap();
    let probe = Probe::new(usize::MAX, false);
    bus.consume(Q.name, 1, probe.clone()).await.unwrap();
    let ev = event();
    bus.publish(&ev).await.unwrap();
    let b = bus.clone();
    let mut dead = vec![];
    for _ in 0..400 {
        dead = b.dead_letters().await.unwrap();
        if !dead.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].event_id, ev.event_id.to_string());
    assert_eq!(dead[0].deliveries, 3);
    assert!(
        dead[0]
            .reason
            .starts_with("delivery limit 3 reached; last error: transient failure"),
        "{}",
        dead[0].reason
    );
    assert_eq!(probe.calls.load(Ordering::SeqCst), 3);
    bus.shutdown().await;

    // Replayed onto its queue, it is delivered to a healthy consumer.
    let bus = EmbeddedBus::open(&url(&dir)).await.unwrap();
    bus.declare(&Q).await.unwrap();
    let healthy = Probe::new(0, false);
    bus.consume(Q.name, 1, healthy.clone()).await.unwrap();
    assert!(bus.replay(dead[0].id).await.unwrap());
    assert!(
        !bus.replay(dead[0].id).await.unwrap(),
        "a replayed letter is gone from the list"
    );
    until(|| healthy.acked.lock().unwrap().len() == 1).await;
    assert!(bus.dead_letters().await.unwrap().is_empty());
    bus.shutdown().await;
}

#[tokio::test]
async fn a_rejected_message_goes_straight_to_the_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EmbeddedBus::open(&url(&dir)).await.unwrap();
    bus.declare(&Q).await.unwrap();
    let probe = Probe::new(0, true);
    bus.consume(Q.name, 1, probe.clone()).await.unwrap();
    bus.publish(&event()).await.unwrap();
    until(|| probe.calls.load(Ordering::SeqCst) == 1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let dead = bus.dead_letters().await.unwrap();
    assert_eq!(
        (dead.len(), dead[0].reason.as_str(), dead[0].deliveries),
        (1, "poison", 1)
    );
    bus.shutdown().await;
}

#[tokio::test]
async fn messages_survive_a_restart_and_are_delivered_to_the_next_process() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<String>;
    {
        let bus = EmbeddedBus::open(&url(&dir)).await.unwrap();
        bus.declare(&Q).await.unwrap();
        let evs: Vec<Envelope> = (0..5).map(|_| event()).collect();
        for e in &evs {
            bus.publish(e).await.unwrap();
        }
        ids = evs.iter().map(|e| e.event_id.to_string()).collect();
        // No consumer ran: the process "dies" with everything queued.
    }
    let bus = EmbeddedBus::open(&url(&dir)).await.unwrap();
    let probe = Probe::new(0, false);
    bus.consume(Q.name, 1, probe.clone()).await.unwrap();
    until(|| probe.acked.lock().unwrap().len() == 5).await;
    assert_eq!(
        *probe.acked.lock().unwrap(),
        ids,
        "delivered once each, in publish order"
    );
    bus.shutdown().await;
}
