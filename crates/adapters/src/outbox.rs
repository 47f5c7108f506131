//! The transactional outbox: an event is written in the same transaction as the
//! state change it announces; a relay publishes it and marks it sent only after
//! the bus has accepted it.

use crate::bus::Bus;
use crate::db::{Backend, Db};
use crate::telemetry;
use domain::events::Envelope;
use sqlx::{Any, Row, Transaction};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// The outbox table, the same in every service that publishes.
pub const SQL: &str = "CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    order_id TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    sent_at_ms BIGINT
);
CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent_at_ms IS NULL;";

/// PostgreSQL form of [`SQL`].
pub const SQL_PG: &str = "CREATE TABLE outbox (
    seq BIGSERIAL PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    order_id TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    sent_at_ms BIGINT
);
CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent_at_ms IS NULL;";

/// The later column every outbox has: the `traceparent` of the span that
/// wrote the row (services add it in their own migration, with this text).
pub const SQL_TRACEPARENT: &str = "ALTER TABLE outbox ADD COLUMN traceparent TEXT;\n";

/// Adds an event to the outbox inside the caller's transaction, with the
/// trace context of the current span (unless the envelope names one).
pub async fn enqueue(tx: &mut Transaction<'static, Any>, env: &Envelope) -> sqlx::Result<()> {
    let traceparent = env.traceparent.clone().or_else(telemetry::traceparent);
    let body = Envelope {
        traceparent: None,
        ..env.clone()
    };
    sqlx::query(
        "INSERT INTO outbox (event_id, kind, order_id, body, created_at_ms, traceparent) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(env.event_id.to_string())
    .bind(&env.kind)
    .bind(env.order_id.to_string())
    .bind(serde_json::to_string(&body).expect("envelope serialises"))
    .bind(domain::to_ms(domain::now()))
    .bind(traceparent)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Publishes a service's outbox rows in order. Wake it after a commit with [`Relay::kick`].
#[derive(Clone)]
pub struct Relay {
    db: Db,
    bus: Arc<dyn Bus>,
    producer: &'static str,
    wake: Arc<Notify>,
}

impl Relay {
    pub fn new(db: Db, bus: Arc<dyn Bus>, producer: &'static str) -> Relay {
        Relay {
            db,
            bus,
            producer,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Asks the relay to look at the outbox now.
    pub fn kick(&self) {
        self.wake.notify_one();
    }

    /// Runs until the task is dropped: publishes, then waits for a kick or a poll tick.
    pub async fn run(self) {
        loop {
            match self.publish_pending().await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(producer = self.producer, error = %e, "outbox relay: will retry")
                }
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    /// Publishes up to a batch of unsent rows, oldest first; returns how many were sent.
    /// A row that fails stops the batch so events leave in the order they were written.
    pub async fn publish_pending(&self) -> anyhow::Result<usize> {
        // One process per SQLite file: a plain read is enough. On PostgreSQL several
        // relays (several processes of a service) may run: each claims its rows with
        // FOR UPDATE SKIP LOCKED for as long as it publishes them, never "id > last seen".
        let claim = match self.db.backend() {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        };
        let mut tx = match self.db.backend() {
            Backend::Sqlite => None,
            Backend::Postgres => Some(self.db.pool().begin().await?),
        };
        let sql = format!(
            "SELECT seq, body, traceparent FROM outbox WHERE sent_at_ms IS NULL ORDER BY seq LIMIT 100{claim}"
        );
        let rows = match tx.as_mut() {
            Some(tx) => sqlx::query(&sql).fetch_all(&mut **tx).await?,
            None => sqlx::query(&sql).fetch_all(self.db.pool()).await?,
        };
        let mut sent = 0;
        let mut failure = None;
        for row in rows {
            let seq: i64 = row.try_get("seq")?;
            let body: String = row.try_get("body")?;
            let mut env: Envelope = serde_json::from_str(&body)?;
            // The publication is a span of the trace that wrote the row; the
            // event carries this span's context to its consumers.
            let span = tracing::info_span!("outbox.publish", producer = self.producer,
                kind = %env.kind, event_id = %env.event_id, order_id = %env.order_id);
            let stored: Option<String> = row.try_get("traceparent")?;
            telemetry::set_parent(&span, stored.as_deref().or(env.traceparent.as_deref()));
            env.traceparent = telemetry::traceparent_of(&span);
            let error = tracing::Instrument::instrument(self.bus.publish(&env), span.clone())
                .await
                .err();
            let q = match &error {
                None => sqlx::query(
                    "UPDATE outbox SET sent_at_ms = $1, attempts = attempts + 1 WHERE seq = $2",
                )
                .bind(domain::to_ms(domain::now())),
                Some(e) => sqlx::query(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = $1 WHERE seq = $2",
                )
                .bind(format!("{e:#}")),
            }
            .bind(seq);
            match tx.as_mut() {
                Some(tx) => q.execute(&mut **tx).await?,
                None => q.execute(self.db.pool()).await?,
            };
            match error {
                None => {
                    sent += 1;
                    span.in_scope(|| tracing::debug!("event published"));
                }
                Some(e) => {
                    // Stop here so events leave in the order they were written.
                    failure = Some(e.context(format!("publishing {} {}", env.kind, env.event_id)));
                    break;
                }
            }
        }
        if let Some(tx) = tx {
            tx.commit().await?;
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(sent),
        }
    }
}

/// Unsent rows and the age of the oldest, for health and metrics.
pub async fn backlog(db: &Db) -> sqlx::Result<(i64, Option<i64>)> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n, MIN(created_at_ms) AS oldest FROM outbox WHERE sent_at_ms IS NULL",
    )
    .fetch_one(db.pool())
    .await?;
    Ok((row.try_get("n")?, row.try_get::<Option<i64>, _>("oldest")?))
}
