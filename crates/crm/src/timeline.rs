//! The order's journey as the CRM keeps it: every status with its time, actor
//! and the trace it happened in.

use domain::events::Actor;
use domain::{OrderId, OrderStatus};
use serde::Serialize;
use sqlx::{Any, Row, Transaction};

/// One step of an order's history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub status: OrderStatus,
    pub at: String,
    pub actor: Actor,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip)]
    pub at_ms: i64,
    /// The trace this step happened in (staff only: not in the customers' API).
    #[serde(skip)]
    pub trace_id: Option<String>,
}

/// Appends a step, in the caller's transaction, with the current trace id,
/// and announces it to the customer (`order.updated`, same transaction).
pub async fn record(
    tx: &mut Transaction<'static, Any>,
    id: OrderId,
    status: OrderStatus,
    actor: &Actor,
    event_id: Option<&str>,
    note: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO order_history (order_id, status, at_ms, actor_kind, actor_name, actor_id, event_id, note, trace_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id.to_string())
    .bind(status.as_str())
    .bind(domain::to_ms(domain::now()))
    .bind(&actor.kind)
    .bind(&actor.name)
    .bind(actor.user_id.map(|u| u.to_string()))
    .bind(event_id)
    .bind(note)
    .bind(adapters::telemetry::trace_id())
    .execute(&mut **tx)
    .await?;
    tracing::info!(order_id = %id, status = %status, actor = %actor.name, "recording status change");
    crate::notify::order_updated(tx, id, status).await
}

/// The whole journey, oldest first.
pub async fn history(pool: &sqlx::AnyPool, id: OrderId) -> anyhow::Result<Vec<HistoryEntry>> {
    let rows = sqlx::query(
        "SELECT status, at_ms, actor_kind, actor_name, actor_id, note, trace_id FROM order_history WHERE order_id = $1 ORDER BY seq",
    )
    .bind(id.to_string())
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let status: String = r.try_get("status")?;
            let at_ms: i64 = r.try_get("at_ms")?;
            let actor_id: Option<String> = r.try_get("actor_id")?;
            Ok(HistoryEntry {
                status: OrderStatus::parse(&status)
                    .ok_or_else(|| anyhow::anyhow!("unknown status {status}"))?,
                at: domain::rfc3339(domain::from_ms(at_ms)),
                actor: Actor {
                    kind: r.try_get("actor_kind")?,
                    name: r.try_get("actor_name")?,
                    user_id: actor_id.and_then(|s| s.parse().ok()),
                },
                note: r.try_get("note")?,
                at_ms,
                trace_id: r.try_get("trace_id")?,
            })
        })
        .collect()
}
