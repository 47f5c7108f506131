//! The bus port on RabbitMQ. Events go to one durable topic exchange, routed by
//! event type; every queue is a durable quorum queue with an explicit delivery
//! limit and its own dead-letter queue (`<name>.dlq`, fed through a direct
//! dead-letter exchange keyed by queue name, at-least-once). Publishing is
//! persistent, mandatory and confirmed. Consumers ack manually after the
//! handler returned, and come back by themselves after the broker does.
//!
//! Dead letters are listed by fetching every message of each DLQ with
//! `basic.get` (no auto-ack) and then returning them all unacked, so listing
//! never loses one. A letter's id is a stable 63-bit hash of its queue and
//! event id; `replay(id)` republishes that message to its original queue
//! through the default exchange (so no other bound queue gets it twice),
//! waits for the broker's confirm, then acks it from the DLQ.

use crate::bus::{Bus, DeadLetter, DeliveryError, Handler, QueueSpec};
use crate::metrics::{Metrics, QueueStats};
use anyhow::Context;
use async_trait::async_trait;
use domain::events::Envelope;
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The topic exchange all events are published to, routed by event type.
pub const EVENTS_EXCHANGE: &str = "alexandrite.events";
/// The direct exchange dead letters go through, routed by queue name.
pub const DEAD_LETTER_EXCHANGE: &str = "alexandrite.dlx";
/// Message headers: the event's id, and the W3C trace context of the span
/// that published it (the body carries the event alone).
pub const EVENT_ID_HEADER: &str = "event_id";
pub const TRACEPARENT_HEADER: &str = crate::telemetry::TRACEPARENT;
/// Seconds between heartbeats when the URL does not say.
const HEARTBEAT_S: u32 = 10;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);
const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Failure notes kept for dead-letter listings; cleared when this many pile up.
const MAX_NOTES: usize = 10_000;

/// The dead-letter queue of a queue.
pub fn dlq_name(queue: &str) -> String {
    format!("{queue}.dlq")
}

/// The current connection and its confirm-mode publishing channel.
#[derive(Default)]
struct Link {
    conn: Option<Arc<Connection>>,
    publisher: Option<Channel>,
    /// No connection attempt before this instant (backoff after a failure).
    not_before: Option<Instant>,
    backoff: Duration,
}

/// What the consumer of this process knew when a message was dead-lettered:
/// the broker keeps neither the handler's reason nor the source delivery count.
#[derive(Clone)]
struct Note {
    reason: String,
    deliveries: i64,
}

/// The RabbitMQ bus: one connection shared by publishing, consumers and the
/// dead-letter tools, re-established with backoff when it drops.
pub struct RabbitBus {
    url: String,
    link: tokio::sync::Mutex<Link>,
    specs: Mutex<BTreeMap<String, QueueSpec>>,
    notes: Mutex<HashMap<(String, String), Note>>,
    /// Serialises listing and replaying: both hold DLQ messages unacked.
    dlq_lock: tokio::sync::Mutex<()>,
    stop: watch::Sender<bool>,
    workers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    me: std::sync::Weak<RabbitBus>,
    /// Where redeliveries and dead letters are counted.
    metrics: Mutex<Metrics>,
}

impl RabbitBus {
    /// Connects to `amqp://user:pass@host:port/vhost` and declares the exchanges.
    /// A heartbeat of 10 s is added unless the URL sets one.
    pub async fn connect(url: &str) -> anyhow::Result<Arc<RabbitBus>> {
        anyhow::ensure!(
            url.starts_with("amqp://"),
            "bus URL: only amqp:// is supported by this build (no TLS for amqps://)"
        );
        let url = if url.contains("heartbeat=") {
            url.to_string()
        } else if url.contains('?') {
            format!("{url}&heartbeat={HEARTBEAT_S}")
        } else {
            format!("{url}?heartbeat={HEARTBEAT_S}")
        };
        let (stop, _) = watch::channel(false);
        let bus = Arc::new_cyclic(|me| RabbitBus {
            url,
            link: tokio::sync::Mutex::new(Link::default()),
            specs: Mutex::new(BTreeMap::new()),
            notes: Mutex::new(HashMap::new()),
            dlq_lock: tokio::sync::Mutex::new(()),
            stop,
            workers: Mutex::new(vec![]),
            me: me.clone(),
            metrics: Mutex::new(Metrics::new()),
        });
        bus.connection().await?;
        Ok(bus)
    }

    /// Counts redeliveries and dead letters in `metrics` from now on.
    pub fn count_in(&self, metrics: Metrics) {
        *self.metrics.lock().unwrap() = metrics;
    }

    fn metrics(&self) -> Metrics {
        self.metrics.lock().unwrap().clone()
    }

    /// The live connection, connecting if there is none. Fails at once while a
    /// previous attempt's backoff runs, so callers never spin on a dead broker.
    async fn connection(&self) -> anyhow::Result<Arc<Connection>> {
        let mut link = self.link.lock().await;
        self.ensure_connected(&mut link).await
    }

    async fn ensure_connected(&self, link: &mut Link) -> anyhow::Result<Arc<Connection>> {
        if let Some(conn) = &link.conn {
            if conn.status().connected() {
                return Ok(conn.clone());
            }
            tracing::warn!("bus: connection to RabbitMQ lost");
            link.conn = None;
            link.publisher = None;
        }
        if let Some(t) = link.not_before {
            let now = Instant::now();
            if now < t {
                anyhow::bail!(
                    "RabbitMQ is unavailable; next connection attempt in {} ms",
                    (t - now).as_millis()
                );
            }
        }
        match self.open().await {
            Ok(conn) => {
                tracing::info!("bus: connected to RabbitMQ");
                let conn = Arc::new(conn);
                link.conn = Some(conn.clone());
                link.not_before = None;
                link.backoff = Duration::ZERO;
                Ok(conn)
            }
            Err(e) => {
                link.backoff = (link.backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
                link.not_before = Some(Instant::now() + link.backoff);
                tracing::warn!(error = %format!("{e:#}"), retry_in_ms = link.backoff.as_millis() as u64,
                    "bus: cannot connect to RabbitMQ");
                Err(e)
            }
        }
    }

    async fn open(&self) -> anyhow::Result<Connection> {
        let conn = tokio::time::timeout(
            CONNECT_TIMEOUT,
            Connection::connect(
                &self.url,
                ConnectionProperties::default().with_connection_name("alexandrite".into()),
            ),
        )
        .await
        .context("connecting to RabbitMQ timed out")?
        .context("connecting to RabbitMQ")?;
        let ch = conn.create_channel().await?;
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.exchange_declare(
            EVENTS_EXCHANGE.into(),
            lapin::ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await?;
        ch.exchange_declare(
            DEAD_LETTER_EXCHANGE.into(),
            lapin::ExchangeKind::Direct,
            durable,
            FieldTable::default(),
        )
        .await?;
        ch.close(200, "OK".into()).await?;
        Ok(conn)
    }

    /// The shared confirm-mode channel publishing goes through.
    async fn publisher(&self) -> anyhow::Result<Channel> {
        let mut link = self.link.lock().await;
        let conn = self.ensure_connected(&mut link).await?;
        if let Some(ch) = &link.publisher
            && ch.status().connected()
        {
            return Ok(ch.clone());
        }
        let ch = conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        link.publisher = Some(ch.clone());
        Ok(ch)
    }

    /// A fresh channel for one administrative job: a failed declaration closes
    /// its channel, which must not take the publisher down with it.
    async fn admin_channel(&self) -> anyhow::Result<Channel> {
        Ok(self.connection().await?.create_channel().await?)
    }

    fn note(&self, queue: &str, event_id: &str, reason: String, deliveries: i64) {
        let mut notes = self.notes.lock().unwrap();
        if notes.len() >= MAX_NOTES {
            notes.clear();
        }
        notes.insert(
            (queue.to_string(), event_id.to_string()),
            Note { reason, deliveries },
        );
    }

    /// Keeps one consumer subscription alive until shutdown, resubscribing
    /// with backoff whenever the channel or connection is lost.
    async fn supervise(
        self: Arc<Self>,
        queue: &'static str,
        concurrency: usize,
        limit: Option<u32>,
        handler: Arc<dyn Handler>,
    ) {
        let mut stop = self.stop.subscribe();
        let mut backoff = MIN_BACKOFF;
        while !*stop.borrow() {
            match self
                .consume_once(queue, concurrency, limit, &handler, &mut stop, &mut backoff)
                .await
            {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(queue, error = %format!("{e:#}"), retry_in_ms = backoff.as_millis() as u64,
                        "bus: consumer lost; resubscribing");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Ok when stopped; Err when the subscription was lost.
    async fn consume_once(
        &self,
        queue: &'static str,
        concurrency: usize,
        limit: Option<u32>,
        handler: &Arc<dyn Handler>,
        stop: &mut watch::Receiver<bool>,
        backoff: &mut Duration,
    ) -> anyhow::Result<()> {
        let ch = self.admin_channel().await?;
        let prefetch = u16::try_from(concurrency.max(1)).unwrap_or(u16::MAX);
        ch.basic_qos(prefetch, BasicQosOptions::default()).await?;
        let mut consumer = ch
            .basic_consume(
                queue.into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let tag = consumer.tag();
        tracing::info!(queue, concurrency, "bus: consuming");
        *backoff = MIN_BACKOFF;
        let mut inflight = JoinSet::new();
        let me = self
            .me
            .upgrade()
            .expect("the bus is alive while it is used");
        // A subscription whose connection died without its stream ending (seen
        // in a 5,000-order chaos run: one consumer of four never heard of a
        // broker restart and stayed silent for ever) is noticed here.
        let mut health = tokio::time::interval(Duration::from_secs(2));
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let outcome = loop {
            tokio::select! {
                _ = stop.changed() => break Ok(()),
                _ = health.tick() => {
                    if !ch.status().connected() {
                        break Err(anyhow::anyhow!("the channel is no longer connected"));
                    }
                }
                Some(done) = inflight.join_next(), if !inflight.is_empty() => {
                    // A settlement that panicked left its message unacked on this
                    // channel for ever: resubscribe, and closing the channel hands it
                    // back to the queue.
                    if let Err(e) = done {
                        if e.is_panic() {
                            break Err(anyhow::anyhow!("a delivery panicked before it was settled: {e}"));
                        }
                    }
                }
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => {
                        inflight.spawn(me.clone().deliver(queue, limit, delivery, handler.clone(), stop.clone()));
                    }
                    Some(Err(e)) => break Err(anyhow::Error::new(e).context("delivery stream failed")),
                    None => break Err(anyhow::anyhow!("the broker cancelled the consumer")),
                },
            }
        };
        if outcome.is_ok() {
            // Stop new deliveries, then let the ones in flight finish and ack.
            if let Err(e) = ch.basic_cancel(tag, BasicCancelOptions::default()).await {
                tracing::warn!(queue, error = %e, "bus: cancelling the consumer failed");
            }
        }
        if outcome.is_ok() {
            while inflight.join_next().await.is_some() {}
        } else {
            // A lost channel cannot settle what is in flight: their messages go
            // back to the queue with it. Give the handlers a moment to finish
            // their transactions, then resubscribe whatever they are waiting on.
            let drained = tokio::time::timeout(Duration::from_secs(10), async {
                while inflight.join_next().await.is_some() {}
            })
            .await;
            if drained.is_err() {
                tracing::warn!(
                    queue,
                    left = inflight.len(),
                    "bus: deliveries of a lost subscription did not settle in 10 s; resubscribing without them"
                );
                inflight.abort_all();
            }
        }
        if ch.status().connected() {
            let _ = tokio::time::timeout(Duration::from_secs(5), ch.close(200, "OK".into())).await;
        }
        outcome
    }

    /// Runs the handler on one delivery and settles it with the broker.
    async fn deliver(
        self: Arc<Self>,
        queue: &'static str,
        limit: Option<u32>,
        delivery: Delivery,
        handler: Arc<dyn Handler>,
        mut stop: watch::Receiver<bool>,
    ) {
        // The quorum queue counts earlier failed deliveries in this header.
        let before = header_i64(&delivery, "x-delivery-count").unwrap_or(0);
        let deliveries = before + 1;
        let env = match serde_json::from_slice::<Envelope>(&delivery.data) {
            Ok(mut env) => {
                if let Some(tp) = header_string(&delivery, TRACEPARENT_HEADER) {
                    env.traceparent = Some(tp);
                }
                env
            }
            Err(e) => {
                let id = delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                tracing::error!(queue, message_id = %id, error = %e, "bus: unreadable message: dead-lettered");
                self.metrics().event_dead_lettered(queue, "unreadable");
                self.note(queue, &id, format!("unreadable message: {e}"), deliveries);
                settle(
                    queue,
                    &delivery,
                    BasicNackOptions {
                        requeue: false,
                        ..Default::default()
                    },
                )
                .await;
                return;
            }
        };
        if before > 0 {
            self.metrics().event_redelivered(queue, &env.kind);
        }
        let span = crate::bus::consume_span(queue, &env, deliveries);
        let event_id = env.event_id.to_string();
        let h = handler.clone();
        // A panicking handler is a failed delivery, not a dead consumer.
        let result = match tokio::spawn(tracing::Instrument::instrument(
            async move { h.handle(env).await },
            span.clone(),
        ))
        .await
        {
            Ok(r) => r,
            Err(join) => Err(DeliveryError::Retry(anyhow::anyhow!(
                "handler panicked: {join}"
            ))),
        };
        // Settle inside the consumer's span, never holding `span.enter()` across
        // an await: a guard held over a suspension point is dropped on another
        // poll's stack and made tracing-subscriber 0.3.23 panic ("tried to clone
        // a span that already closed", tokio-rs/tracing#3514), killing the task.
        tracing::Instrument::instrument(
            async move {
            match result {
                Ok(()) => {
                    self.notes
                        .lock()
                        .unwrap()
                        .remove(&(queue.to_string(), event_id));
                    if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
                        tracing::warn!(error = %e, "bus: ack failed; the message will be redelivered");
                    }
                }
                Err(DeliveryError::Reject(reason)) => {
                    tracing::error!(reason = %reason, "message rejected: dead-lettered");
                    self.note(queue, &event_id, reason, deliveries);
                    settle(
                        queue,
                        &delivery,
                        BasicNackOptions {
                            requeue: false,
                            ..Default::default()
                        },
                    )
                    .await;
                }
                Err(DeliveryError::Retry(e)) => {
                    let error = format!("{e:#}");
                    let last = limit.is_some_and(|l| deliveries >= i64::from(l));
                    if last {
                        tracing::error!(error = %error, "delivery limit reached: dead-lettered");
                        self.metrics().event_dead_lettered(queue, "delivery_limit");
                    } else {
                        tracing::warn!(error = %error, "delivery failed: will retry");
                    }
                    let limit = limit.map(|l| format!(" {l}")).unwrap_or_default();
                    self.note(
                        queue,
                        &event_id,
                        format!("delivery limit{limit} reached; last error: {error}"),
                        deliveries,
                    );
                    // Hold the message a little before returning it, so a passing
                    // outage does not burn through the delivery limit in a moment.
                    let backoff = Duration::from_millis((50u64 << before.clamp(0, 7)).min(5_000));
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => {}
                    }
                    settle(
                        queue,
                        &delivery,
                        BasicNackOptions {
                            requeue: true,
                            ..Default::default()
                        },
                    )
                    .await;
                }
            }
            },
            span,
        )
        .await;
    }

    /// Declared queue names, sorted.
    fn declared(&self) -> Vec<QueueSpec> {
        self.specs.lock().unwrap().values().cloned().collect()
    }

    /// Every message of one DLQ, fetched unacked on `ch` (closing or nacking
    /// returns them).
    async fn fetch_all(ch: &Channel, dlq: &str) -> anyhow::Result<Vec<Delivery>> {
        let mut out = vec![];
        while let Some(m) = ch
            .basic_get(dlq.into(), BasicGetOptions { no_ack: false })
            .await?
        {
            out.push(m.delivery);
        }
        Ok(out)
    }

    fn letter(&self, queue: &str, d: &Delivery) -> DeadLetter {
        let env = serde_json::from_slice::<Envelope>(&d.data).ok();
        let event_id = env
            .as_ref()
            .map(|e| e.event_id.to_string())
            .or_else(|| d.properties.message_id().as_ref().map(|s| s.to_string()))
            .unwrap_or_default();
        let death = d
            .properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get("x-death"))
            .and_then(|v| v.as_array())
            .and_then(|a| a.as_slice().first())
            .and_then(|v| v.as_field_table())
            .cloned()
            .unwrap_or_default();
        let broker_reason = death
            .inner()
            .get("reason")
            .map(value_string)
            .unwrap_or_default();
        let dead_at_ms = death
            .inner()
            .get("time")
            .and_then(|v| v.as_timestamp())
            .map(|s| i64::try_from(s).unwrap_or(i64::MAX).saturating_mul(1000))
            .unwrap_or(0);
        let limit = self
            .specs
            .lock()
            .unwrap()
            .get(queue)
            .map(|s| s.delivery_limit);
        let note = self
            .notes
            .lock()
            .unwrap()
            .get(&(queue.to_string(), event_id.clone()))
            .cloned();
        let (reason, deliveries) = match (note, broker_reason.as_str()) {
            (Some(n), _) => (n.reason, n.deliveries),
            (None, "delivery_limit") => match limit {
                Some(l) => (format!("delivery limit {l} reached"), i64::from(l)),
                None => ("delivery limit reached".to_string(), 0),
            },
            (None, "rejected") => (
                "rejected by the consumer (its reason is in that process's log)".to_string(),
                0,
            ),
            (None, other) => (other.to_string(), 0),
        };
        DeadLetter {
            id: letter_id(queue, &event_id),
            queue: queue.to_string(),
            event_id,
            kind: env.as_ref().map(|e| e.kind.clone()).unwrap_or_default(),
            order_id: env
                .as_ref()
                .map(|e| e.order_id.to_string())
                .unwrap_or_default(),
            reason,
            deliveries,
            dead_at_ms,
        }
    }
}

/// Nacks a delivery, logging (not failing) when the channel is gone: the
/// broker then returns the message by itself.
async fn settle(queue: &str, delivery: &Delivery, options: BasicNackOptions) {
    if let Err(e) = delivery.acker.nack(options).await {
        tracing::warn!(queue, error = %e, "bus: nack failed; the broker will return the message");
    }
}

fn header_i64(d: &Delivery, name: &str) -> Option<i64> {
    let v = d.properties.headers().as_ref()?.inner().get(name)?;
    match v {
        AMQPValue::ShortShortInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortShortUInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortUInt(n) => Some(i64::from(*n)),
        AMQPValue::LongInt(n) => Some(i64::from(*n)),
        AMQPValue::LongUInt(n) => Some(i64::from(*n)),
        AMQPValue::LongLongInt(n) => Some(*n),
        _ => None,
    }
}

fn header_string(d: &Delivery, name: &str) -> Option<String> {
    match d.properties.headers().as_ref()?.inner().get(name)? {
        v @ (AMQPValue::LongString(_) | AMQPValue::ShortString(_)) => Some(value_string(v)),
        _ => None,
    }
}

fn value_string(v: &AMQPValue) -> String {
    match v {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.as_str().to_string(),
        other => format!("{other:?}"),
    }
}

/// A stable id for a dead letter: FNV-1a of queue and event id, kept positive.
fn letter_id(queue: &str, event_id: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in queue.bytes().chain([0]).chain(event_id.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    i64::try_from(h >> 1).unwrap_or(i64::MAX)
}

fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

/// Routes an event to the queue it came from, not to every bound queue.
async fn confirmed(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    props: BasicProperties,
) -> anyhow::Result<()> {
    let confirm = ch
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            body,
            props,
        )
        .await?;
    let confirmation = tokio::time::timeout(CONFIRM_TIMEOUT, confirm)
        .await
        .context("no publisher confirm from RabbitMQ in time")??;
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
            anyhow::bail!(
                "unroutable: returned by RabbitMQ ({} {})",
                returned.reply_code,
                returned.reply_text
            )
        }
        Confirmation::Nack(None) => anyhow::bail!("RabbitMQ refused the message (nack)"),
        Confirmation::NotRequested => anyhow::bail!("publisher confirms are not enabled"),
    }
}

#[async_trait]
impl Bus for RabbitBus {
    async fn declare(&self, spec: &QueueSpec) -> anyhow::Result<()> {
        let ch = self.admin_channel().await?;
        let durable = QueueDeclareOptions::durable();
        let dlq = dlq_name(spec.name);
        let mut dlq_args = FieldTable::default();
        dlq_args.insert("x-queue-type".into(), long("quorum"));
        ch.queue_declare(dlq.as_str().into(), durable, dlq_args)
            .await
            .with_context(|| format!("declaring queue '{dlq}'"))?;
        ch.queue_bind(
            dlq.as_str().into(),
            DEAD_LETTER_EXCHANGE.into(),
            spec.name.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), long("quorum"));
        // RabbitMQ counts returns, not deliveries: with x-delivery-limit = n a
        // message is handled n + 1 times (seen on 3.10.8). Our limit counts
        // deliveries, so the broker gets one less.
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(i64::from(spec.delivery_limit.saturating_sub(1))),
        );
        args.insert("x-dead-letter-exchange".into(), long(DEAD_LETTER_EXCHANGE));
        // Keyed by queue name: the original key (the event type) would reach
        // every DLQ whose queue is bound to that type.
        args.insert("x-dead-letter-routing-key".into(), long(spec.name));
        args.insert("x-dead-letter-strategy".into(), long("at-least-once"));
        args.insert("x-overflow".into(), long("reject-publish"));
        ch.queue_declare(spec.name.into(), durable, args)
            .await
            .with_context(|| format!("declaring queue '{}'", spec.name))?;
        for kind in spec.bindings {
            ch.queue_bind(
                spec.name.into(),
                EVENTS_EXCHANGE.into(),
                (*kind).into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        }
        let _ = ch.close(200, "OK".into()).await;
        self.specs
            .lock()
            .unwrap()
            .insert(spec.name.to_string(), spec.clone());
        Ok(())
    }

    async fn publish(&self, env: &Envelope) -> anyhow::Result<()> {
        let (body, traceparent) = crate::bus::body_and_traceparent(env);
        let body = serde_json::to_vec(&body)?;
        let event_id = env.event_id.to_string();
        let mut headers = FieldTable::default();
        headers.insert(EVENT_ID_HEADER.into(), long(&event_id));
        if let Some(tp) = &traceparent {
            headers.insert(TRACEPARENT_HEADER.into(), long(tp));
        }
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(ShortString::from(event_id.as_str()))
            .with_type(ShortString::from(env.kind.as_str()))
            .with_headers(headers);
        let ch = self.publisher().await?;
        match confirmed(&ch, EVENTS_EXCHANGE, &env.kind, &body, props).await {
            Err(e) if e.to_string().starts_with("unroutable") => {
                anyhow::bail!("unroutable: no queue is bound to event type '{}'", env.kind)
            }
            other => other,
        }
    }

    async fn consume(
        &self,
        queue: &'static str,
        concurrency: usize,
        handler: Arc<dyn Handler>,
    ) -> anyhow::Result<()> {
        let known = self.specs.lock().unwrap().get(queue).cloned();
        let limit = match known {
            Some(spec) => Some(spec.delivery_limit),
            None => {
                // Declared by an earlier process: check that it exists. The
                // broker enforces the limit; this copy only words reasons.
                let ch = self.admin_channel().await?;
                ch.queue_declare(
                    queue.into(),
                    QueueDeclareOptions::durable().passive(),
                    FieldTable::default(),
                )
                .await
                .map_err(|_| anyhow::anyhow!("queue '{queue}' is not declared"))?;
                let _ = ch.close(200, "OK".into()).await;
                None
            }
        };
        let me = self
            .me
            .upgrade()
            .expect("the bus is alive while it is used");
        let task = tokio::spawn(me.supervise(queue, concurrency, limit, handler));
        self.workers.lock().unwrap().push(task);
        Ok(())
    }

    async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let workers: Vec<_> = std::mem::take(&mut *self.workers.lock().unwrap());
        for w in workers {
            let _ = w.await;
        }
        let mut link = self.link.lock().await;
        if let Some(ch) = link.publisher.take()
            && ch.status().connected()
        {
            let _ = ch.close(200, "OK".into()).await;
        }
        if let Some(conn) = link.conn.take()
            && conn.status().connected()
        {
            let _ = conn.close(200, "OK".into()).await;
        }
    }

    async fn dead_letters(&self) -> anyhow::Result<Vec<DeadLetter>> {
        let _one = self.dlq_lock.lock().await;
        let mut out = vec![];
        for spec in self.declared() {
            let ch = self.admin_channel().await?;
            let taken = Self::fetch_all(&ch, &dlq_name(spec.name)).await;
            // Closing the channel returns every fetched message to the DLQ.
            let _ = ch.close(200, "OK".into()).await;
            out.extend(taken?.iter().map(|d| self.letter(spec.name, d)));
        }
        Ok(out)
    }

    async fn replay(&self, id: i64) -> anyhow::Result<bool> {
        let _one = self.dlq_lock.lock().await;
        for spec in self.declared() {
            let ch = self.admin_channel().await?;
            let result = async {
                let taken = Self::fetch_all(&ch, &dlq_name(spec.name)).await?;
                let Some(d) = taken
                    .iter()
                    .find(|d| self.letter(spec.name, d).id == id)
                else {
                    return Ok(false);
                };
                ch.confirm_select(ConfirmSelectOptions::default()).await?;
                // A fresh start: drop the broker's death and delivery records.
                let mut headers = d.properties.headers().clone().unwrap_or_default();
                let kept: BTreeMap<_, _> = headers
                    .inner()
                    .iter()
                    .filter(|(k, _)| !k.as_str().starts_with("x-"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                headers = FieldTable::from(kept);
                let props = d.properties.clone().with_headers(headers);
                confirmed(&ch, "", spec.name, &d.data, props).await?;
                d.acker.ack(BasicAckOptions::default()).await?;
                let letter = self.letter(spec.name, d);
                self.notes
                    .lock()
                    .unwrap()
                    .remove(&(spec.name.to_string(), letter.event_id.clone()));
                tracing::info!(queue = spec.name, event_id = %letter.event_id, "bus: dead letter replayed");
                anyhow::Ok(true)
            }
            .await;
            // Closing returns the other fetched messages to the DLQ.
            let _ = ch.close(200, "OK".into()).await;
            if result? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Depths of each queue and of its dead-letter queue (passive declares:
    /// nothing is fetched). RabbitMQ does not tell the oldest message's age.
    async fn stats(&self) -> anyhow::Result<Vec<QueueStats>> {
        let ch = self.admin_channel().await?;
        let mut out = vec![];
        for spec in self.declared() {
            let count = |name: String| {
                let ch = ch.clone();
                async move {
                    ch.queue_declare(
                        name.as_str().into(),
                        QueueDeclareOptions::durable().passive(),
                        FieldTable::default(),
                    )
                    .await
                    .map(|q| i64::from(q.message_count()))
                    .with_context(|| format!("queue '{name}'"))
                }
            };
            let depth = count(spec.name.to_string()).await?;
            let dead_letters = count(dlq_name(spec.name)).await?;
            out.push(QueueStats {
                queue: spec.name.to_string(),
                depth,
                oldest_age_ms: None,
                dead_letters,
            });
        }
        let _ = ch.close(200, "OK".into()).await;
        Ok(out)
    }

    async fn depths(&self) -> anyhow::Result<Vec<(String, i64)>> {
        let ch = self.admin_channel().await?;
        let mut out = vec![];
        for spec in self.declared() {
            let q = ch
                .queue_declare(
                    spec.name.into(),
                    QueueDeclareOptions::durable().passive(),
                    FieldTable::default(),
                )
                .await
                .with_context(|| format!("queue '{}'", spec.name))?;
            out.push((spec.name.to_string(), i64::from(q.message_count())));
        }
        let _ = ch.close(200, "OK".into()).await;
        Ok(out)
    }
}
