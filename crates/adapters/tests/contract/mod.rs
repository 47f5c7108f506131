//! The behaviour every bus implementation must have, written once against
//! `Arc<dyn Bus>` and run on each backend. Queue names and event types are
//! unique per test so tests can share one broker, in parallel and repeatedly.

use adapters::Bus;
use adapters::bus::{DeliveryError, Handler, QueueSpec};
use async_trait::async_trait;
use domain::OrderId;
use domain::events::{Actor, Envelope, OrderConfirmed};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Opens (or reopens, as a new process would) the bus under test.
pub trait Opener: Send + Sync {
    fn open(&self) -> Pin<Box<dyn Future<Output = Arc<dyn Bus>> + '_>>;
}

/// A queue with a unique name bound to a unique event type.
pub fn unique_queue(limit: u32) -> QueueSpec {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let name: &'static str = Box::leak(format!("test.{tag}").into_boxed_str());
    let kind: &'static str = Box::leak(format!("test.{tag}.happened").into_boxed_str());
    let bindings: &'static [&'static str] = Box::leak(vec![kind].into_boxed_slice());
    QueueSpec {
        name,
        bindings,
        delivery_limit: limit,
    }
}

/// An event of the given type.
pub fn event(kind: &str) -> Envelope {
    let mut env = Envelope::new(
        "test",
        &OrderConfirmed {
            order_id: OrderId::new(),
            actor: Actor::system("t"),
        },
    );
    env.kind = kind.to_string();
    env.traceparent = Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
    env
}

/// The test process's subscriber (once): spans get OpenTelemetry trace and
/// span ids, as in the binary (nothing is exported); the adapters log.
pub fn tracing_layer() {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let tracer = provider.tracer("contract");
        // The adapters' own log lines too (`--nocapture` shows them).
        let log = tracing_subscriber::fmt::layer()
            .with_test_writer()
            .with_filter(tracing_subscriber::EnvFilter::new("adapters=info"));
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(tracer))
            .with(log);
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    });
}

/// What a handler saw of one delivery's trace context.
#[derive(Debug, Clone)]
pub struct Seen {
    pub event_id: String,
    /// The envelope's `traceparent` as delivered (from the message header).
    pub traceparent: Option<String>,
    /// The trace the handler ran in.
    pub trace_id: Option<String>,
    /// The handler's own span context: must be a new span, not the publisher's.
    pub span_traceparent: Option<String>,
}

/// Fails the first `fail` deliveries (or rejects), records what it acked.
pub struct Probe {
    pub calls: AtomicUsize,
    fail: usize,
    reject: bool,
    pub acked: Mutex<Vec<String>>,
    pub seen: Mutex<Vec<Seen>>,
}

impl Probe {
    pub fn new(fail: usize, reject: bool) -> Arc<Probe> {
        Arc::new(Probe {
            calls: AtomicUsize::new(0),
            fail,
            reject,
            acked: Mutex::new(vec![]),
            seen: Mutex::new(vec![]),
        })
    }

    pub fn acked(&self) -> Vec<String> {
        self.acked.lock().unwrap().clone()
    }
}

#[async_trait]
impl Handler for Probe {
    async fn handle(&self, env: Envelope) -> Result<(), DeliveryError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        self.seen.lock().unwrap().push(Seen {
            event_id: env.event_id.to_string(),
            traceparent: env.traceparent.clone(),
            trace_id: adapters::telemetry::trace_id(),
            span_traceparent: adapters::telemetry::traceparent(),
        });
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

/// Waits up to 20 s for a condition.
pub async fn until(what: &str, mut ok: impl FnMut() -> bool) {
    for _ in 0..400 {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not reached in 20 s: {what}");
}

pub async fn unroutable_is_an_error(o: &dyn Opener) {
    let bus = o.open().await;
    let q = unique_queue(3);
    let err = bus.publish(&event(q.bindings[0])).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "unroutable: no queue is bound to event type '{}'",
            q.bindings[0]
        )
    );
    bus.shutdown().await;
}

pub async fn transient_failures_are_redelivered_until_acked(o: &dyn Opener, q: &QueueSpec) {
    let bus = o.open().await;
    bus.declare(q).await.unwrap();
    let probe = Probe::new(2, false);
    bus.consume(q.name, 1, probe.clone()).await.unwrap();
    let ev = event(q.bindings[0]);
    bus.publish(&ev).await.unwrap();
    until("acked once", || probe.acked().len() == 1).await;
    assert_eq!(probe.calls.load(Ordering::SeqCst), 3);
    assert_eq!(probe.acked()[0], ev.event_id.to_string());
    // The handler has returned; the bus settles the delivery just after it.
    let mut depths = vec![];
    for _ in 0..400 {
        depths = bus.depths().await.unwrap();
        if depths == vec![(q.name.to_string(), 0)] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(depths, vec![(q.name.to_string(), 0)]);
    assert!(bus.dead_letters().await.unwrap().is_empty());
    bus.shutdown().await;
}

pub async fn past_the_limit_a_message_is_dead_lettered_and_replayable(
    o: &dyn Opener,
    q: &QueueSpec,
) {
    assert_eq!(q.delivery_limit, 3);
    let bus = o.open().await;
    bus.declare(q).await.unwrap();
    let probe = Probe::new(usize::MAX, false);
    bus.consume(q.name, 1, probe.clone()).await.unwrap();
    let ev = event(q.bindings[0]);
    bus.publish(&ev).await.unwrap();
    let mut dead = vec![];
    for _ in 0..200 {
        dead = bus.dead_letters().await.unwrap();
        if !dead.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(dead.len(), 1, "dead-lettered within 20 s");
    assert_eq!(dead[0].event_id, ev.event_id.to_string());
    assert_eq!(dead[0].queue, q.name);
    assert_eq!(dead[0].kind, q.bindings[0]);
    assert_eq!(dead[0].order_id, ev.order_id.to_string());
    assert_eq!(dead[0].deliveries, 3);
    assert!(
        dead[0]
            .reason
            .starts_with("delivery limit 3 reached; last error: transient failure"),
        "{}",
        dead[0].reason
    );
    assert!(dead[0].dead_at_ms > 0);
    assert_eq!(probe.calls.load(Ordering::SeqCst), 3);
    // Listing does not consume: the letter is still there.
    assert_eq!(bus.dead_letters().await.unwrap().len(), 1);
    assert_eq!(bus.depths().await.unwrap(), vec![(q.name.to_string(), 0)]);
    bus.shutdown().await;
    drop(bus);

    // Replayed onto its queue, it is delivered to a healthy consumer.
    let bus = o.open().await;
    bus.declare(q).await.unwrap();
    let healthy = Probe::new(0, false);
    bus.consume(q.name, 1, healthy.clone()).await.unwrap();
    assert!(bus.replay(dead[0].id).await.unwrap());
    assert!(
        !bus.replay(dead[0].id).await.unwrap(),
        "a replayed letter is gone from the list"
    );
    until("the replayed message is acked", || {
        healthy.acked().len() == 1
    })
    .await;
    assert_eq!(healthy.acked(), vec![ev.event_id.to_string()]);
    assert!(bus.dead_letters().await.unwrap().is_empty());
    bus.shutdown().await;
}

pub async fn a_rejected_message_goes_straight_to_the_dead_letters(o: &dyn Opener, q: &QueueSpec) {
    let bus = o.open().await;
    bus.declare(q).await.unwrap();
    let probe = Probe::new(0, true);
    bus.consume(q.name, 1, probe.clone()).await.unwrap();
    bus.publish(&event(q.bindings[0])).await.unwrap();
    until("handled once", || probe.calls.load(Ordering::SeqCst) == 1).await;
    let mut dead = vec![];
    for _ in 0..100 {
        dead = bus.dead_letters().await.unwrap();
        if !dead.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        (dead.len(), dead[0].reason.as_str(), dead[0].deliveries),
        (1, "poison", 1)
    );
    assert_eq!(probe.calls.load(Ordering::SeqCst), 1, "never redelivered");
    bus.shutdown().await;
}

pub async fn messages_survive_a_restart(o: &dyn Opener, q: &QueueSpec) {
    let ids: Vec<String>;
    {
        let bus = o.open().await;
        bus.declare(q).await.unwrap();
        let evs: Vec<Envelope> = (0..5).map(|_| event(q.bindings[0])).collect();
        for e in &evs {
            bus.publish(e).await.unwrap();
        }
        ids = evs.iter().map(|e| e.event_id.to_string()).collect();
        // No consumer ran: the process "dies" with everything queued.
    }
    let bus = o.open().await;
    let probe = Probe::new(0, false);
    bus.consume(q.name, 1, probe.clone()).await.unwrap();
    until("all five acked", || probe.acked().len() == 5).await;
    assert_eq!(probe.acked(), ids, "delivered once each, in publish order");
    bus.shutdown().await;
}

/// The trace context travels as a message header (the body carries the event
/// alone): the handler gets the publisher's `traceparent` and runs in a span
/// of that trace, a child of the publishing span. With no context on the
/// envelope, publishing stamps the current span's.
pub async fn trace_context_travels_in_the_message_headers(o: &dyn Opener, q: &QueueSpec) {
    tracing_layer();
    let bus = o.open().await;
    bus.declare(q).await.unwrap();
    let probe = Probe::new(0, false);
    bus.consume(q.name, 1, probe.clone()).await.unwrap();

    let explicit = event(q.bindings[0]);
    bus.publish(&explicit).await.unwrap();

    let mut stamped = event(q.bindings[0]);
    stamped.traceparent = None;
    let publisher = tracing::info_span!("test.publisher");
    let publisher_tp = adapters::telemetry::traceparent_of(&publisher).expect("a span context");
    tracing::Instrument::instrument(bus.publish(&stamped), publisher.clone())
        .await
        .unwrap();

    until("both acked", || probe.acked().len() == 2).await;
    let seen = probe.seen.lock().unwrap().clone();
    let by_id = |id: &str| seen.iter().find(|s| s.event_id == id).unwrap().clone();

    let a = by_id(&explicit.event_id.to_string());
    assert_eq!(a.traceparent, explicit.traceparent);
    assert_eq!(
        a.trace_id.as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736"),
        "the consumer's span continues the publisher's trace"
    );
    let own = a.span_traceparent.unwrap();
    assert!(
        own.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")
            && !own.contains("00f067aa0ba902b7"),
        "the consumer has a span of its own in that trace: {own}"
    );

    let b = by_id(&stamped.event_id.to_string());
    assert_eq!(b.traceparent.as_deref(), Some(publisher_tp.as_str()));
    assert_eq!(b.trace_id.as_deref(), Some(&publisher_tp[3..35]));
    bus.shutdown().await;
}
