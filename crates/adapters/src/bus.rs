//! The event bus port, and the embedded implementation: durable queues in a
//! SQLite file, delivered in-process. Semantics match a broker's: publishing
//! returns once the event is durable in every bound queue (unroutable is an
//! error), each queue is consumed with manual acks, a delivery limit and a
//! dead-letter list.

use crate::db::{Db, Migration};
use crate::metrics::{Metrics, QueueStats};
use async_trait::async_trait;
use domain::events::Envelope;
use serde::Serialize;
use sqlx::Row;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// A durable queue and the event types routed to it.
#[derive(Debug, Clone)]
pub struct QueueSpec {
    pub name: &'static str,
    pub bindings: &'static [&'static str],
    /// Deliveries before a message is dead-lettered.
    pub delivery_limit: u32,
}

/// How a handler failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// A passing failure: deliver again later.
    #[error("{0:#}")]
    Retry(#[from] anyhow::Error),
    /// The message can never be handled (poison): dead-letter it now.
    #[error("rejected: {0}")]
    Reject(String),
}

/// Consumes messages of one queue. Must be idempotent: delivery is at-least-once.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn handle(&self, env: Envelope) -> Result<(), DeliveryError>;
}

/// A message that ran out of deliveries or was rejected.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub id: i64,
    pub queue: String,
    pub event_id: String,
    pub kind: String,
    pub order_id: String,
    pub reason: String,
    pub deliveries: i64,
    pub dead_at_ms: i64,
}

/// The bus port.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Declares a durable queue and its bindings (idempotent).
    async fn declare(&self, spec: &QueueSpec) -> anyhow::Result<()>;
    /// Returns once the event is durable in every bound queue.
    async fn publish(&self, env: &Envelope) -> anyhow::Result<()>;
    /// Starts `concurrency` consumers of a declared queue.
    async fn consume(
        &self,
        queue: &'static str,
        concurrency: usize,
        handler: Arc<dyn Handler>,
    ) -> anyhow::Result<()>;
    /// Stops taking new deliveries and waits for those in flight.
    async fn shutdown(&self);
    async fn dead_letters(&self) -> anyhow::Result<Vec<DeadLetter>>;
    /// Puts a dead letter back on its queue; false if there is no such id.
    async fn replay(&self, id: i64) -> anyhow::Result<bool>;
    /// Messages waiting per queue.
    async fn depths(&self) -> anyhow::Result<Vec<(String, i64)>>;
    /// Depth, dead letters and (where the bus can tell) the oldest message's
    /// age of every queue, for the metrics.
    async fn stats(&self) -> anyhow::Result<Vec<QueueStats>> {
        let dead = self.dead_letters().await?;
        Ok(self
            .depths()
            .await?
            .into_iter()
            .map(|(queue, depth)| QueueStats {
                dead_letters: dead.iter().filter(|d| d.queue == queue).count() as i64,
                queue,
                depth,
                oldest_age_ms: None,
            })
            .collect())
    }
}

/// Opens the bus a URL names: `sqlite:` is the embedded bus, `amqp:` RabbitMQ.
pub async fn open(url: &str) -> anyhow::Result<Arc<dyn Bus>> {
    let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or_default();
    match scheme {
        "sqlite" => Ok(EmbeddedBus::open(url).await?),
        "amqp" | "amqps" => Ok(crate::rabbit::RabbitBus::connect(url).await?),
        _ => anyhow::bail!("bus URL scheme '{scheme}': expected sqlite://… or amqp://…"),
    }
}

/// [`open`], counting what passes through the bus in `metrics` (see
/// [`crate::metrics::MeteredBus`]).
pub async fn open_with(url: &str, metrics: Metrics) -> anyhow::Result<Arc<dyn Bus>> {
    let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or_default();
    let bus: Arc<dyn Bus> = match scheme {
        "sqlite" => {
            let bus = EmbeddedBus::open(url).await?;
            *bus.metrics.lock().unwrap() = metrics.clone();
            bus
        }
        "amqp" | "amqps" => {
            let bus = crate::rabbit::RabbitBus::connect(url).await?;
            bus.count_in(metrics.clone());
            bus
        }
        _ => return open(url).await,
    };
    Ok(crate::metrics::MeteredBus::wrap(bus, metrics))
}

const SCHEMA: &str = "CREATE TABLE queues (name TEXT PRIMARY KEY, delivery_limit INTEGER NOT NULL);
CREATE TABLE bindings (queue TEXT NOT NULL, kind TEXT NOT NULL, PRIMARY KEY (queue, kind));
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    event_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    order_id TEXT NOT NULL,
    body TEXT NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 0,
    visible_at_ms BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX messages_ready ON messages (queue, visible_at_ms, id);
CREATE TABLE dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    event_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    order_id TEXT NOT NULL,
    body TEXT NOT NULL,
    reason TEXT NOT NULL,
    deliveries INTEGER NOT NULL,
    dead_at_ms BIGINT NOT NULL
);";

/// Message headers: the trace context travels beside the body, as on a broker.
const HEADERS: &str = "ALTER TABLE messages ADD COLUMN traceparent TEXT;
ALTER TABLE dead_letters ADD COLUMN traceparent TEXT;";

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "embedded bus",
        sqlite: SCHEMA,
        postgres: SCHEMA,
    },
    Migration {
        version: 2,
        description: "trace context header",
        sqlite: HEADERS,
        postgres: HEADERS,
    },
];

/// What travels in a message's body: the envelope without its trace context,
/// which is a header (`traceparent`, stamped from the current span if the
/// envelope has none).
pub(crate) fn body_and_traceparent(env: &Envelope) -> (Envelope, Option<String>) {
    let traceparent = env
        .traceparent
        .clone()
        .or_else(crate::telemetry::traceparent);
    (
        Envelope {
            traceparent: None,
            ..env.clone()
        },
        traceparent,
    )
}

/// The span a delivery is handled in: a child of the span that published the
/// message (its `traceparent` header), so one trace crosses the bus.
pub(crate) fn consume_span(queue: &str, env: &Envelope, deliveries: i64) -> tracing::Span {
    let span = tracing::info_span!("bus.consume", queue, kind = %env.kind, event_id = %env.event_id,
        order_id = %env.order_id, deliveries);
    crate::telemetry::set_parent(&span, env.traceparent.as_deref());
    span
}

/// How long a claimed message stays invisible to other consumers.
const LEASE_MS: i64 = 60_000;

/// Durable in-process delivery, kept in its own SQLite file.
pub struct EmbeddedBus {
    db: Db,
    wakers: Mutex<HashMap<String, Arc<Notify>>>,
    stop: watch::Sender<bool>,
    workers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    me: std::sync::Weak<EmbeddedBus>,
    /// Where redeliveries and dead letters are counted.
    metrics: Mutex<Metrics>,
}

impl EmbeddedBus {
    /// Opens (or creates) the bus file. Leases from a previous process are void:
    /// nothing of it is still running.
    pub async fn open(url: &str) -> anyhow::Result<Arc<EmbeddedBus>> {
        let bus = Self::attach(url).await?;
        sqlx::query("UPDATE messages SET visible_at_ms = 0")
            .execute(bus.db.pool())
            .await?;
        Ok(bus)
    }

    /// Opens the bus file for inspection (dead letters, depths) beside a running
    /// process, leaving its deliveries in flight alone.
    pub async fn attach(url: &str) -> anyhow::Result<Arc<EmbeddedBus>> {
        let db = Db::connect(url, MIGRATIONS).await?;
        let (stop, _) = watch::channel(false);
        Ok(Arc::new_cyclic(|me| EmbeddedBus {
            db,
            wakers: Mutex::new(HashMap::new()),
            stop,
            workers: Mutex::new(vec![]),
            me: me.clone(),
            metrics: Mutex::new(Metrics::new()),
        }))
    }

    fn waker(&self, queue: &str) -> Arc<Notify> {
        self.wakers
            .lock()
            .unwrap()
            .entry(queue.to_string())
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone()
    }

    fn metrics(&self) -> Metrics {
        self.metrics.lock().unwrap().clone()
    }

    async fn claim(&self, queue: &str) -> anyhow::Result<Option<(i64, i64, Envelope)>> {
        let now = domain::to_ms(domain::now());
        let row = sqlx::query(
            "UPDATE messages SET deliveries = deliveries + 1, visible_at_ms = $1 \
             WHERE id = (SELECT id FROM messages WHERE queue = $2 AND visible_at_ms <= $3 ORDER BY id LIMIT 1) \
             RETURNING id, deliveries, body, traceparent",
        )
        .bind(now + LEASE_MS)
        .bind(queue)
        .bind(now)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let id: i64 = row.try_get("id")?;
        let deliveries: i64 = row.try_get("deliveries")?;
        let body: String = row.try_get("body")?;
        let header: Option<String> = row.try_get("traceparent")?;
        match serde_json::from_str::<Envelope>(&body) {
            Ok(mut env) => {
                if header.is_some() {
                    env.traceparent = header;
                }
                if deliveries > 1 {
                    self.metrics().event_redelivered(queue, &env.kind);
                }
                Ok(Some((id, deliveries, env)))
            }
            Err(e) => {
                self.dead_letter(id, &format!("unreadable message: {e}"))
                    .await?;
                self.metrics().event_dead_lettered(queue, "unreadable");
                Ok(None)
            }
        }
    }

    async fn dead_letter(&self, id: i64, reason: &str) -> anyhow::Result<()> {
        let mut tx = self.db.begin_write().await?;
        sqlx::query(
            "INSERT INTO dead_letters (queue, event_id, kind, order_id, body, reason, deliveries, dead_at_ms, traceparent) \
             SELECT queue, event_id, kind, order_id, body, $1, deliveries, $2, traceparent FROM messages WHERE id = $3",
        )
        .bind(reason)
        .bind(domain::to_ms(domain::now()))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM messages WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn settle(
        &self,
        queue: &str,
        id: i64,
        deliveries: i64,
        limit: i64,
        env: &Envelope,
        result: Result<(), DeliveryError>,
    ) -> anyhow::Result<()> {
        match result {
            Ok(()) => {
                sqlx::query("DELETE FROM messages WHERE id = $1")
                    .bind(id)
                    .execute(self.db.pool())
                    .await?;
            }
            Err(DeliveryError::Reject(reason)) => {
                tracing::error!(queue, event_id = %env.event_id, kind = %env.kind, order_id = %env.order_id,
                    reason = %reason, "message rejected: dead-lettered");
                self.dead_letter(id, &reason).await?;
            }
            Err(DeliveryError::Retry(e)) if deliveries >= limit => {
                tracing::error!(queue, event_id = %env.event_id, kind = %env.kind, order_id = %env.order_id,
                    deliveries, error = %format!("{e:#}"), "delivery limit reached: dead-lettered");
                self.dead_letter(
                    id,
                    &format!("delivery limit {limit} reached; last error: {e:#}"),
                )
                .await?;
                self.metrics().event_dead_lettered(queue, "delivery_limit");
            }
            Err(DeliveryError::Retry(e)) => {
                let backoff = (50i64 << deliveries.clamp(0, 8)).min(10_000);
                tracing::warn!(queue, event_id = %env.event_id, kind = %env.kind, order_id = %env.order_id,
                    deliveries, retry_in_ms = backoff, error = %format!("{e:#}"), "delivery failed: will retry");
                sqlx::query("UPDATE messages SET visible_at_ms = $1 WHERE id = $2")
                    .bind(domain::to_ms(domain::now()) + backoff)
                    .bind(id)
                    .execute(self.db.pool())
                    .await?;
            }
        }
        Ok(())
    }

    async fn worker(self: Arc<Self>, queue: &'static str, limit: i64, handler: Arc<dyn Handler>) {
        let wake = self.waker(queue);
        let mut stop = self.stop.subscribe();
        while !*stop.borrow() {
            let claimed = match self.claim(queue).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(queue, error = %e, "bus: claim failed");
                    None
                }
            };
            let Some((id, deliveries, env)) = claimed else {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    _ = stop.changed() => {}
                }
                continue;
            };
            let h = handler.clone();
            let e2 = env.clone();
            let span = consume_span(queue, &env, deliveries);
            // A panicking handler is a failed delivery, not a dead worker.
            let handled = tracing::Instrument::instrument(async move { h.handle(e2).await }, span);
            let result = match tokio::spawn(handled).await {
                Ok(r) => r,
                Err(join) => Err(DeliveryError::Retry(anyhow::anyhow!(
                    "handler panicked: {join}"
                ))),
            };
            if let Err(e) = self
                .settle(queue, id, deliveries, limit, &env, result)
                .await
            {
                tracing::warn!(queue, error = %e, "bus: could not settle a delivery; it will be redelivered");
            }
        }
    }
}

#[async_trait]
impl Bus for EmbeddedBus {
    async fn declare(&self, spec: &QueueSpec) -> anyhow::Result<()> {
        let mut tx = self.db.begin_write().await?;
        sqlx::query(
            "INSERT INTO queues (name, delivery_limit) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET delivery_limit = excluded.delivery_limit",
        )
        .bind(spec.name)
        .bind(spec.delivery_limit as i64)
        .execute(&mut *tx)
        .await?;
        for kind in spec.bindings {
            sqlx::query(
                "INSERT INTO bindings (queue, kind) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(spec.name)
            .bind(*kind)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn publish(&self, env: &Envelope) -> anyhow::Result<()> {
        let (body, traceparent) = body_and_traceparent(env);
        let body = serde_json::to_string(&body)?;
        let now = domain::to_ms(domain::now());
        let mut tx = self.db.begin_write().await?;
        let queues: Vec<String> =
            sqlx::query("SELECT queue FROM bindings WHERE kind = $1 ORDER BY queue")
                .bind(&env.kind)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(|r| r.try_get::<String, _>("queue"))
                .collect::<Result<_, _>>()?;
        anyhow::ensure!(
            !queues.is_empty(),
            "unroutable: no queue is bound to event type '{}'",
            env.kind
        );
        for q in &queues {
            sqlx::query(
                "INSERT INTO messages (queue, event_id, kind, order_id, body, visible_at_ms, created_at_ms, traceparent) \
                 VALUES ($1, $2, $3, $4, $5, 0, $6, $7)",
            )
            .bind(q)
            .bind(env.event_id.to_string())
            .bind(&env.kind)
            .bind(env.order_id.to_string())
            .bind(&body)
            .bind(now)
            .bind(&traceparent)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        for q in &queues {
            self.waker(q).notify_waiters();
        }
        Ok(())
    }

    async fn consume(
        &self,
        queue: &'static str,
        concurrency: usize,
        handler: Arc<dyn Handler>,
    ) -> anyhow::Result<()> {
        let limit: i64 = sqlx::query("SELECT delivery_limit FROM queues WHERE name = $1")
            .bind(queue)
            .fetch_optional(self.db.pool())
            .await?
            .ok_or_else(|| anyhow::anyhow!("queue '{queue}' is not declared"))?
            .try_get("delivery_limit")?;
        let me = self
            .me
            .upgrade()
            .expect("the bus is alive while it is used");
        let mut workers = self.workers.lock().unwrap();
        for _ in 0..concurrency.max(1) {
            workers.push(tokio::spawn(me.clone().worker(
                queue,
                limit,
                handler.clone(),
            )));
        }
        Ok(())
    }

    async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let workers: Vec<_> = std::mem::take(&mut *self.workers.lock().unwrap());
        for w in workers {
            let _ = w.await;
        }
    }

    async fn dead_letters(&self) -> anyhow::Result<Vec<DeadLetter>> {
        let rows = sqlx::query(
            "SELECT id, queue, event_id, kind, order_id, reason, deliveries, dead_at_ms FROM dead_letters ORDER BY id",
        )
        .fetch_all(self.db.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(DeadLetter {
                    id: r.try_get("id")?,
                    queue: r.try_get("queue")?,
                    event_id: r.try_get("event_id")?,
                    kind: r.try_get("kind")?,
                    order_id: r.try_get("order_id")?,
                    reason: r.try_get("reason")?,
                    deliveries: r.try_get("deliveries")?,
                    dead_at_ms: r.try_get("dead_at_ms")?,
                })
            })
            .collect()
    }

    async fn replay(&self, id: i64) -> anyhow::Result<bool> {
        let mut tx = self.db.begin_write().await?;
        let moved = sqlx::query(
            "INSERT INTO messages (queue, event_id, kind, order_id, body, visible_at_ms, created_at_ms, traceparent) \
             SELECT queue, event_id, kind, order_id, body, 0, $1, traceparent FROM dead_letters WHERE id = $2",
        )
        .bind(domain::to_ms(domain::now()))
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("DELETE FROM dead_letters WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if moved > 0 {
            for n in self.wakers.lock().unwrap().values() {
                n.notify_waiters();
            }
        }
        Ok(moved > 0)
    }

    async fn stats(&self) -> anyhow::Result<Vec<QueueStats>> {
        let now = domain::to_ms(domain::now());
        let rows = sqlx::query(
            "SELECT q.name AS name, \
             (SELECT COUNT(*) FROM messages m WHERE m.queue = q.name) AS n, \
             (SELECT MIN(created_at_ms) FROM messages m WHERE m.queue = q.name) AS oldest, \
             (SELECT COUNT(*) FROM dead_letters d WHERE d.queue = q.name) AS dead \
             FROM queues q ORDER BY q.name",
        )
        .fetch_all(self.db.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(QueueStats {
                    queue: r.try_get("name")?,
                    depth: r.try_get("n")?,
                    oldest_age_ms: Some(
                        r.try_get::<Option<i64>, _>("oldest")?
                            .map_or(0, |t| now - t),
                    ),
                    dead_letters: r.try_get("dead")?,
                })
            })
            .collect()
    }

    async fn depths(&self) -> anyhow::Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT q.name AS name, (SELECT COUNT(*) FROM messages m WHERE m.queue = q.name) AS n \
             FROM queues q ORDER BY q.name",
        )
        .fetch_all(self.db.pool())
        .await?;
        rows.into_iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("n")?)))
            .collect()
    }
}
