//! The RabbitMQ bus held to the same contract as the embedded one
//! (`tests/contract`), on a real broker (`ALEXANDRITE_TEST_AMQP_URL`, default
//! guest@127.0.0.1:5672); plus what only a broker can do: go away and come back.
//! Every test uses its own queues and event type and deletes them at the end.

mod contract;

use adapters::Bus;
use adapters::rabbit::{RabbitBus, dlq_name};
use contract::{Opener, Probe, event, unique_queue};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Tests take it shared; the one that stops the broker takes it alone.
static BROKER: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

fn url() -> String {
    std::env::var("ALEXANDRITE_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

struct Rabbit;

impl Opener for Rabbit {
    fn open(&self) -> Pin<Box<dyn Future<Output = Arc<dyn Bus>> + '_>> {
        Box::pin(async {
            let bus: Arc<dyn Bus> = RabbitBus::connect(&url())
                .await
                .expect("RabbitMQ must be running (rabbitmq-server -detached)");
            bus
        })
    }
}

/// Deletes a test's queue and its DLQ, also when the test fails.
struct Cleanup(&'static str);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let name = self.0;
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let conn =
                    lapin::Connection::connect(&url(), lapin::ConnectionProperties::default())
                        .await?;
                let ch = conn.create_channel().await?;
                for q in [name.to_string(), dlq_name(name)] {
                    ch.queue_delete(q.as_str().into(), Default::default())
                        .await?;
                }
                conn.close(200, "OK".into()).await?;
                anyhow::Ok(())
            })
        })
        .join();
        if !matches!(done, Ok(Ok(()))) {
            eprintln!("could not delete test queue {name}: {done:?}");
        }
    }
}

#[tokio::test]
async fn an_event_nobody_is_bound_to_is_an_error_not_a_silent_drop() {
    let _shared = BROKER.read().await;
    contract::unroutable_is_an_error(&Rabbit).await;
}

#[tokio::test]
async fn transient_failures_are_redelivered_until_acked() {
    let _shared = BROKER.read().await;
    let q = unique_queue(3);
    let _clean = Cleanup(q.name);
    contract::transient_failures_are_redelivered_until_acked(&Rabbit, &q).await;
}

#[tokio::test]
async fn past_the_delivery_limit_a_message_is_dead_lettered_and_can_be_replayed() {
    let _shared = BROKER.read().await;
    let q = unique_queue(3);
    let _clean = Cleanup(q.name);
    contract::past_the_limit_a_message_is_dead_lettered_and_replayable(&Rabbit, &q).await;
}

#[tokio::test]
async fn a_rejected_message_goes_straight_to_the_dead_letters() {
    let _shared = BROKER.read().await;
    let q = unique_queue(3);
    let _clean = Cleanup(q.name);
    contract::a_rejected_message_goes_straight_to_the_dead_letters(&Rabbit, &q).await;
}

#[tokio::test]
async fn messages_survive_a_restart_and_are_delivered_to_the_next_process() {
    let _shared = BROKER.read().await;
    let q = unique_queue(3);
    let _clean = Cleanup(q.name);
    contract::messages_survive_a_restart(&Rabbit, &q).await;
}

#[tokio::test]
async fn the_url_scheme_picks_rabbitmq() {
    let _shared = BROKER.read().await;
    let q = unique_queue(3);
    let _clean = Cleanup(q.name);
    let bus = adapters::bus::open(&url()).await.unwrap();
    bus.declare(&q).await.unwrap();
    bus.publish(&event(q.bindings[0])).await.unwrap();
    assert_eq!(bus.depths().await.unwrap(), vec![(q.name.to_string(), 1)]);
    bus.shutdown().await;
}

#[tokio::test]
async fn the_trace_context_travels_in_the_message_headers() {
    let _shared = BROKER.read().await;
    let q = unique_queue(3);
    let _clean = Cleanup(q.name);
    contract::trace_context_travels_in_the_message_headers(&Rabbit, &q).await;
}

/// On the wire: `event_id` and `traceparent` are AMQP message headers; the
/// body is the event without its trace context.
#[tokio::test]
async fn event_id_and_traceparent_are_amqp_headers() {
    let _shared = BROKER.read().await;
    let q = unique_queue(3);
    let _clean = Cleanup(q.name);
    let bus = RabbitBus::connect(&url()).await.unwrap();
    bus.declare(&q).await.unwrap();
    let ev = event(q.bindings[0]);
    bus.publish(&ev).await.unwrap();
    bus.shutdown().await;

    let conn = lapin::Connection::connect(&url(), lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let got = ch
        .basic_get(
            q.name.into(),
            lapin::options::BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
        .expect("the message is on its queue");
    let headers = got
        .delivery
        .properties
        .headers()
        .clone()
        .unwrap_or_default();
    let header = |name: &str| match headers.inner().get(name) {
        Some(lapin::types::AMQPValue::LongString(s)) => {
            Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
        }
        _ => None,
    };
    assert_eq!(header("event_id"), Some(ev.event_id.to_string()));
    assert_eq!(header("traceparent"), ev.traceparent);
    let body: serde_json::Value = serde_json::from_slice(&got.delivery.data).unwrap();
    assert_eq!(body["event_id"], ev.event_id.to_string());
    assert!(body.get("traceparent").is_none(), "{body}");
    conn.close(200, "OK".into()).await.unwrap();
}

/// Stops the broker's application; starts it again when dropped, whatever
/// happened in between.
struct StoppedApp;

impl StoppedApp {
    async fn stop() -> StoppedApp {
        let guard = StoppedApp;
        rabbitmqctl("stop_app");
        guard
    }
}

impl Drop for StoppedApp {
    fn drop(&mut self) {
        rabbitmqctl("start_app");
        rabbitmqctl("await_startup");
    }
}

fn rabbitmqctl(cmd: &str) {
    let status = std::process::Command::new("rabbitmqctl")
        .arg(cmd)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("rabbitmqctl is installed");
    assert!(status.success(), "rabbitmqctl {cmd}: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_fails_while_the_broker_is_down_and_consumers_resume_after() {
    let _alone = BROKER.write().await;
    // The reconnect story is in the log: `--nocapture` shows it.
    contract::tracing_layer();
    let q = unique_queue(5);
    let _clean = Cleanup(q.name);
    let kind = q.bindings[0];
    let bus = RabbitBus::connect(&url()).await.unwrap();
    bus.declare(&q).await.unwrap();
    let probe = Probe::new(0, false);
    bus.consume(q.name, 2, probe.clone()).await.unwrap();
    let first = event(kind);
    bus.publish(&first).await.unwrap();
    contract::until("the first event is acked", || probe.acked().len() == 1).await;

    {
        let _app = StoppedApp::stop().await;
        let started = Instant::now();
        let mut failures = 0;
        while started.elapsed() < Duration::from_secs(3) {
            let err = bus.publish(&event(kind)).await;
            assert!(err.is_err(), "published while the broker was stopped");
            failures += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Each attempt fails fast (refused, or backing off), never hangs.
        assert!(failures >= 10, "only {failures} attempts in 3 s");
    }

    let second = event(kind);
    let started = Instant::now();
    loop {
        match bus.publish(&second).await {
            Ok(()) => break,
            Err(e) if started.elapsed() < Duration::from_secs(60) => {
                eprintln!("still failing after the restart: {e:#}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("publishing did not recover within 60 s: {e:#}"),
        }
    }
    let started = Instant::now();
    while !probe.acked().contains(&second.event_id.to_string()) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the consumer did not resume within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        probe.acked(),
        vec![first.event_id.to_string(), second.event_id.to_string()],
        "nothing published during the outage was delivered"
    );
    bus.shutdown().await;
}
