//! The delivery log and its dispatcher. A notification is one row, unique per
//! (order, status, channel, target): however often an event arrives, a status
//! is told at most once to each address. The dispatcher takes rows that are
//! due, tries them, records every attempt, and retries failures with
//! exponential backoff until a configured number of attempts, all in the
//! database, so a restart loses nothing.

use crate::mail::{Mailer, SendError, render};
use crate::{guard, signature};
use adapters::metrics::{Metrics, Notified};
use adapters::{Backend, Db};
use domain::events::{Envelope, OrderUpdated};
use serde::Serialize;
use sqlx::{Any, Row, Transaction};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

pub const EMAIL: &str = "email";
pub const WEBHOOK: &str = "webhook";

/// How failed notifications are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait after the first failure; doubled after each further one.
    pub base: Duration,
    /// The longest wait between attempts.
    pub max: Duration,
    /// Attempts before a notification is abandoned.
    pub max_attempts: u32,
}

impl RetryPolicy {
    /// The wait after the `failures`-th failed attempt (1-based).
    pub fn backoff(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(31));
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// Records a notification to make, unless the same one is already recorded.
/// Returns whether it was new.
pub async fn record(
    tx: &mut Transaction<'static, Any>,
    env: &Envelope,
    status: &str,
    channel: &str,
    target: &str,
    org: Option<&str>,
) -> sqlx::Result<bool> {
    let now = domain::to_ms(domain::now());
    let body = serde_json::to_string(&Envelope {
        traceparent: None,
        ..env.clone()
    })
    .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let done = sqlx::query(
        "INSERT INTO deliveries (id, order_id, status, channel, target, org, event_id, body, state, \
         next_attempt_at_ms, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9, $10) \
         ON CONFLICT (order_id, status, channel, target) DO NOTHING",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(env.order_id.to_string())
    .bind(status)
    .bind(channel)
    .bind(target)
    .bind(org)
    .bind(env.event_id.to_string())
    .bind(body)
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// One attempt, as the deliveries API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub attempt: i64,
    pub at: String,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// One notification, as the deliveries API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub id: String,
    pub event_id: String,
    pub order_id: String,
    pub status: String,
    /// pending, sent or abandoned.
    pub state: String,
    pub attempts: i64,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    /// Why it was abandoned (`max_attempts`, `invalid_address`, …).
    pub abandoned_reason: Option<String>,
    pub next_retry_at: Option<String>,
    pub created_at: String,
    pub sent_at: Option<String>,
    pub attempt_log: Vec<Attempt>,
}

fn time(ms: Option<i64>) -> Option<String> {
    ms.map(|ms| domain::rfc3339(domain::from_ms(ms)))
}

/// An organisation's webhook notifications, newest first.
pub async fn list_for_org(
    db: &Db,
    org: &str,
    order_id: Option<&str>,
    limit: i64,
) -> anyhow::Result<Vec<Delivery>> {
    let mut sql = String::from(
        "SELECT id, event_id, order_id, status, state, attempts, last_status_code, last_error, \
         abandoned_reason, next_attempt_at_ms, created_at_ms, sent_at_ms FROM deliveries WHERE org = $1 AND channel = $2",
    );
    if order_id.is_some() {
        sql += " AND order_id = $4";
    }
    sql += " ORDER BY created_at_ms DESC, id DESC LIMIT $3";
    let mut q = sqlx::query(&sql).bind(org).bind(WEBHOOK).bind(limit);
    if let Some(o) = order_id {
        q = q.bind(o);
    }
    let rows = q.fetch_all(db.pool()).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id: String = r.try_get("id")?;
        let state: String = r.try_get("state")?;
        let attempts = sqlx::query(
            "SELECT attempt, at_ms, status_code, error, duration_ms FROM delivery_attempts \
             WHERE delivery_id = $1 ORDER BY attempt",
        )
        .bind(&id)
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(|a| -> anyhow::Result<Attempt> {
            Ok(Attempt {
                attempt: a.try_get::<i64, _>("attempt")?,
                at: domain::rfc3339(domain::from_ms(a.try_get("at_ms")?)),
                status_code: a.try_get::<Option<i64>, _>("status_code")?,
                error: a.try_get("error")?,
                duration_ms: a.try_get("duration_ms")?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
        out.push(Delivery {
            event_id: r.try_get("event_id")?,
            order_id: r.try_get("order_id")?,
            status: r.try_get("status")?,
            attempts: r.try_get::<i64, _>("attempts")?,
            last_status_code: r.try_get::<Option<i64>, _>("last_status_code")?,
            last_error: r.try_get("last_error")?,
            abandoned_reason: r.try_get("abandoned_reason")?,
            next_retry_at: if state == "pending" {
                time(r.try_get("next_attempt_at_ms")?)
            } else {
                None
            },
            created_at: time(Some(r.try_get("created_at_ms")?)).unwrap_or_default(),
            sent_at: time(r.try_get("sent_at_ms")?),
            state,
            attempt_log: attempts,
            id,
        });
    }
    Ok(out)
}

/// What one attempt came to.
struct Outcome {
    ok: bool,
    status_code: Option<i64>,
    error: Option<String>,
    /// Nothing can make another attempt succeed (e.g. the webhook was
    /// removed, the address is no address): why, as the metrics label it.
    give_up: Option<&'static str>,
}

impl Outcome {
    fn sent(status_code: Option<i64>) -> Outcome {
        Outcome {
            ok: true,
            status_code,
            error: None,
            give_up: None,
        }
    }

    fn failed(error: impl Into<String>) -> Outcome {
        Outcome {
            ok: false,
            status_code: None,
            error: Some(error.into()),
            give_up: None,
        }
    }

    fn abandon(reason: &'static str, error: impl Into<String>) -> Outcome {
        Outcome {
            give_up: Some(reason),
            ..Outcome::failed(error)
        }
    }
}

/// The text of a panic's payload.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// Takes due notifications and makes them.
#[derive(Clone)]
pub struct Dispatcher {
    pub db: Db,
    pub mailer: Arc<Mailer>,
    pub retry: RetryPolicy,
    pub allow_private: bool,
    pub webhook_timeout: Duration,
    pub metrics: Metrics,
    pub wake: Arc<Notify>,
}

/// Rows taken at once.
const BATCH: i64 = 16;

impl Dispatcher {
    /// Runs until the task is dropped: makes what is due, then waits for a
    /// kick (a new notification) or a poll tick (a retry coming due).
    pub async fn run(self) {
        loop {
            match self.dispatch_due().await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "notifier: will retry"),
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }

    /// How long a taken row is left to this process before another may take
    /// it (a process that died mid-attempt).
    fn lease(&self) -> Duration {
        self.webhook_timeout * 2 + Duration::from_secs(30)
    }

    /// Takes up to a batch of due rows (each process its own, on PostgreSQL
    /// with `FOR UPDATE SKIP LOCKED`) and attempts them together.
    pub async fn dispatch_due(&self) -> anyhow::Result<usize> {
        let now = domain::to_ms(domain::now());
        let lock = match self.db.backend() {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        };
        let mut tx = self.db.begin_write().await?;
        let ids: Vec<String> = sqlx::query(&format!(
            "SELECT id FROM deliveries WHERE state = 'pending' AND next_attempt_at_ms <= $1 \
             ORDER BY next_attempt_at_ms, id LIMIT $2{lock}"
        ))
        .bind(now)
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()?;
        let until = now + self.lease().as_millis() as i64;
        for id in &ids {
            sqlx::query("UPDATE deliveries SET next_attempt_at_ms = $1 WHERE id = $2")
                .bind(until)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        let taken = ids.len();
        let mut set = tokio::task::JoinSet::new();
        let mut tasks = std::collections::HashMap::new();
        for id in ids {
            let me = self.clone();
            let row = id.clone();
            let task = set.spawn(async move {
                if let Err(e) = me.attempt(&row).await {
                    tracing::warn!(delivery = %row, error = %format!("{e:#}"), "notification attempt not recorded");
                }
            });
            tasks.insert(task.id(), id);
        }
        while let Some(done) = set.join_next_with_id().await {
            // An attempt that panicked (a bug, a library's) is given up, not
            // left to panic again on every retry.
            if let Err(e) = done
                && e.is_panic()
            {
                let task = e.id();
                let text = panic_text(&*e.into_panic());
                if let Some(id) = tasks.get(&task) {
                    tracing::error!(delivery = %id, panic = %text, "a notification attempt panicked");
                    if let Err(e) = self.give_up_after_panic(id, &text).await {
                        tracing::warn!(delivery = %id, error = %format!("{e:#}"), "the panicked attempt was not recorded");
                    }
                }
            }
        }
        Ok(taken)
    }

    /// Records that an attempt of `id` panicked, and abandons it.
    async fn give_up_after_panic(&self, id: &str, text: &str) -> anyhow::Result<()> {
        let row = sqlx::query(
            "SELECT channel, attempts FROM deliveries WHERE id = $1 AND state = 'pending'",
        )
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else { return Ok(()) };
        let channel: String = row.try_get("channel")?;
        let attempts = row.try_get::<i64, _>("attempts")? as u32;
        let outcome = Outcome::abandon("panic", format!("the attempt panicked: {text}"));
        self.settle(id, &channel, attempts + 1, outcome, Duration::ZERO)
            .await
    }

    #[tracing::instrument(name = "notifier.attempt", skip(self), fields(order_id = tracing::field::Empty, channel = tracing::field::Empty))]
    async fn attempt(&self, id: &str) -> anyhow::Result<()> {
        let row = sqlx::query(
            "SELECT channel, target, org, body, attempts FROM deliveries WHERE id = $1 AND state = 'pending'",
        )
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else { return Ok(()) };
        let channel: String = row.try_get("channel")?;
        let target: String = row.try_get("target")?;
        let org: Option<String> = row.try_get("org")?;
        let body: String = row.try_get("body")?;
        let attempts = row.try_get::<i64, _>("attempts")? as u32;
        let span = tracing::Span::current();
        span.record("channel", channel.as_str());
        let started = Instant::now();
        let outcome = match serde_json::from_str::<Envelope>(&body) {
            Err(e) => Outcome::abandon(
                "unreadable_event",
                format!("the stored event is unreadable: {e}"),
            ),
            Ok(env) => {
                span.record("order_id", tracing::field::display(env.order_id));
                match channel.as_str() {
                    EMAIL if env.is::<domain::events::RegistrationAttempted>() => {
                        let sent =
                            crate::notices::email(&self.mailer, &env, &target, id, attempts + 1);
                        match sent.await {
                            Ok(()) => Outcome::sent(None),
                            Err((Some(reason), e)) => Outcome::abandon(reason, e),
                            Err((None, e)) => Outcome::failed(e),
                        }
                    }
                    EMAIL => self.email(&env, &target, id, attempts + 1).await,
                    WEBHOOK => self.webhook(&env, &body, org.as_deref()).await,
                    other => {
                        Outcome::abandon("unknown_channel", format!("unknown channel {other}"))
                    }
                }
            }
        };
        self.settle(id, &channel, attempts + 1, outcome, started.elapsed())
            .await
    }

    /// Records attempt number `attempt` of `id` and what it came to: sent,
    /// due again after its backoff, or abandoned with its reason.
    async fn settle(
        &self,
        id: &str,
        channel: &str,
        attempt: u32,
        outcome: Outcome,
        took: Duration,
    ) -> anyhow::Result<()> {
        let now = domain::to_ms(domain::now());
        let (state, next, reason) = if outcome.ok {
            ("sent", None, None)
        } else if let Some(reason) = outcome.give_up {
            ("abandoned", None, Some(reason))
        } else if attempt >= self.retry.max_attempts {
            ("abandoned", None, Some("max_attempts"))
        } else {
            (
                "pending",
                Some(now + self.retry.backoff(attempt).as_millis() as i64),
                None,
            )
        };
        let mut tx = self.db.begin_write().await?;
        sqlx::query(
            "INSERT INTO delivery_attempts (delivery_id, attempt, at_ms, status_code, error, duration_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(attempt as i64)
        .bind(now)
        .bind(outcome.status_code)
        .bind(&outcome.error)
        .bind(took.as_millis() as i64)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE deliveries SET state = $1, attempts = $2, last_status_code = $3, last_error = $4, \
             next_attempt_at_ms = $5, sent_at_ms = $6, abandoned_reason = $8 WHERE id = $7",
        )
        .bind(state)
        .bind(attempt as i64)
        .bind(outcome.status_code)
        .bind(&outcome.error)
        .bind(next)
        .bind(outcome.ok.then_some(now))
        .bind(id)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        match (state, reason) {
            ("sent", _) => {
                self.metrics.notification(channel, Notified::Sent);
                tracing::info!(attempt, "notification sent");
            }
            ("abandoned", Some(reason)) => {
                self.metrics.notification(channel, Notified::Failed);
                self.metrics
                    .notification(channel, Notified::Abandoned(reason));
                tracing::warn!(attempt, reason, error = ?outcome.error, status_code = ?outcome.status_code, "notification abandoned");
            }
            _ => {
                self.metrics.notification(channel, Notified::Failed);
                tracing::info!(attempt, error = ?outcome.error, status_code = ?outcome.status_code, "notification failed; will retry");
            }
        }
        Ok(())
    }

    async fn email(&self, env: &Envelope, to: &str, id: &str, attempt: u32) -> Outcome {
        let ev: OrderUpdated = match env.decode() {
            Ok(ev) => ev,
            Err(e) => return Outcome::abandon("unreadable_event", e.to_string()),
        };
        let lang = web::Lang::parse(&ev.contact.language).unwrap_or(web::Lang::Ru);
        // Nothing here should panic on any text; should a library, the
        // message is given up with its reason instead of taking the
        // dispatcher with it.
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let rendered = render(&ev, lang);
            self.mailer.message(to, &ev.contact.name, lang, &rendered)
        }));
        let message = match built {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => return Outcome::abandon(e.reason(), e.to_string()),
            Err(panic) => {
                return Outcome::abandon(
                    "panic",
                    format!("building the message panicked: {}", panic_text(&*panic)),
                );
            }
        };
        // One file per attempt: order, status, the row's id and the attempt, so
        // a message sent again (its success was not recorded) is a second file,
        // as it would be a second e-mail.
        let name = format!("{}-{}-{id}-{attempt}", ev.order_id, ev.status);
        match self.mailer.send(&name, message).await {
            Ok(()) => Outcome::sent(None),
            Err(SendError::Permanent(e)) => {
                Outcome::abandon("permanent_failure", format!("the server refused it: {e}"))
            }
            Err(SendError::Transient(e)) => Outcome::failed(e),
        }
    }

    async fn webhook(&self, env: &Envelope, body: &str, org: Option<&str>) -> Outcome {
        let Some(org) = org else {
            return Outcome::abandon(
                "no_organisation",
                "a webhook notification without an organisation",
            );
        };
        let hook = match crate::webhooks::find(&self.db, org).await {
            Ok(Some(h)) => h,
            Ok(None) => {
                return Outcome::abandon(
                    "webhook_removed",
                    "the organisation has removed its webhook",
                );
            }
            Err(e) => return Outcome::failed(format!("reading the webhook: {e:#}")),
        };
        // Checked again now: the name may point elsewhere than at registration.
        let checked = match guard::check(&hook.url, self.allow_private).await {
            Ok(c) => c,
            Err(e) => return Outcome::failed(format!("refused: {e}")),
        };
        let client = match reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from HTTP(S)_PROXY would resolve the host itself and undo
            // the pinning below (DNS rebinding, internal addresses).
            .no_proxy()
            .timeout(self.webhook_timeout)
            // Connect to exactly the addresses that were checked.
            .resolve_to_addrs(&checked.host, &checked.addrs)
            .build()
        {
            Ok(c) => c,
            Err(e) => return Outcome::failed(format!("{e}")),
        };
        let result = client
            .post(checked.url.clone())
            .header("content-type", "application/json")
            .header("user-agent", "Alexandrite-Webhooks/1")
            .header(
                signature::HEADER,
                signature::sign(&hook.secret, body.as_bytes()),
            )
            .header(signature::EVENT_ID_HEADER, env.event_id.to_string())
            .header(signature::EVENT_TYPE_HEADER, env.kind.as_str())
            .body(body.to_string())
            .send()
            .await;
        match result {
            Ok(r) if r.status().is_success() => Outcome::sent(Some(r.status().as_u16() as i64)),
            Ok(r) => Outcome {
                status_code: Some(r.status().as_u16() as i64),
                ..Outcome::failed(format!("the endpoint answered {}", r.status()))
            },
            Err(e) if e.is_timeout() => Outcome::failed(format!(
                "no answer within {} ms",
                self.webhook_timeout.as_millis()
            )),
            Err(e) => Outcome::failed(format!("{e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        let p = RetryPolicy {
            base: Duration::from_secs(2),
            max: Duration::from_secs(60),
            max_attempts: 8,
        };
        let waits: Vec<u64> = (1..=7).map(|n| p.backoff(n).as_secs()).collect();
        assert_eq!(waits, vec![2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(p.backoff(0), Duration::from_secs(2));
        assert_eq!(p.backoff(u32::MAX), Duration::from_secs(60));
    }
}
