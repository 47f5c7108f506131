//! Production orders as MES keeps them, their status history, and the JSON view.

use adapters::Db;
use domain::events::{Actor, GeometrySummary, PriceView, Quote};
use domain::{Caller, OrderId, OrderStatus, Role};
use serde::{Deserialize, Serialize};
use sqlx::{Any, Row, Transaction};

/// A production order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MesOrder {
    pub order_id: OrderId,
    pub status: OrderStatus,
    pub material: String,
    pub file_name: String,
    pub size_bytes: i64,
    pub format: String,
    pub customer: String,
    pub created_at: String,
    pub confirmed_at: Option<String>,
    pub price: Option<PriceView>,
    pub geometry: Option<GeometrySummary>,
    pub rejection: Option<String>,
    pub operator: Option<OperatorRef>,
    pub taken_at: Option<String>,
    pub tracking_number: Option<String>,
    /// In the queue: when the order is due to be taken (confirmation + `sla.confirmed_seconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    /// In the queue: the model's picture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<Step>>,
    #[serde(skip)]
    pub tenant: String,
    #[serde(skip)]
    pub confirmed_at_ms: Option<i64>,
    #[serde(skip)]
    pub object_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OperatorRef {
    pub id: Option<String>,
    pub name: String,
}

/// One status change in MES's history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    pub status: OrderStatus,
    pub at: String,
    pub actor: Actor,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The trace the change happened in (staff pages and API only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

pub const COLUMNS: &str = "id, tenant, owner_name, material_code, file_name, size_bytes, format, status, object_key, \
    quote_json, geometry_json, reject_reason, operator_id, operator_name, taken_at_ms, tracking_number, created_at_ms, \
    confirmed_at_ms";

pub fn from_row(r: &sqlx::any::AnyRow) -> anyhow::Result<MesOrder> {
    let id: String = r.try_get("id")?;
    let status: String = r.try_get("status")?;
    let confirmed: Option<i64> = r.try_get("confirmed_at_ms")?;
    let taken: Option<i64> = r.try_get("taken_at_ms")?;
    let op_name: Option<String> = r.try_get("operator_name")?;
    Ok(MesOrder {
        order_id: id.parse()?,
        status: OrderStatus::parse(&status)
            .ok_or_else(|| anyhow::anyhow!("unknown status {status}"))?,
        material: r.try_get("material_code")?,
        file_name: r.try_get("file_name")?,
        size_bytes: r.try_get("size_bytes")?,
        format: r.try_get("format")?,
        customer: r.try_get("owner_name")?,
        created_at: domain::rfc3339(domain::from_ms(r.try_get("created_at_ms")?)),
        confirmed_at: confirmed.map(|ms| domain::rfc3339(domain::from_ms(ms))),
        price: r
            .try_get::<Option<String>, _>("quote_json")?
            .map(|j| serde_json::from_str::<Quote>(&j).map(|q| q.view()))
            .transpose()?,
        geometry: r
            .try_get::<Option<String>, _>("geometry_json")?
            .map(|j| serde_json::from_str(&j))
            .transpose()?,
        rejection: r.try_get("reject_reason")?,
        operator: op_name.map(|name| OperatorRef {
            id: r.try_get("operator_id").ok().flatten(),
            name,
        }),
        taken_at: taken.map(|ms| domain::rfc3339(domain::from_ms(ms))),
        tracking_number: r.try_get("tracking_number")?,
        deadline: None,
        preview_url: None,
        history: None,
        tenant: r.try_get("tenant")?,
        confirmed_at_ms: confirmed,
        object_key: r.try_get("object_key")?,
    })
}

/// Appends a status change, in the caller's transaction.
pub async fn record(
    tx: &mut Transaction<'static, Any>,
    id: OrderId,
    status: OrderStatus,
    actor: &Actor,
    note: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO status_history (order_id, status, at_ms, actor_kind, actor_name, actor_id, note, trace_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id.to_string())
    .bind(status.as_str())
    .bind(domain::to_ms(domain::now()))
    .bind(&actor.kind)
    .bind(&actor.name)
    .bind(actor.user_id.map(|u| u.to_string()))
    .bind(note)
    .bind(adapters::telemetry::trace_id())
    .execute(&mut **tx)
    .await?;
    tracing::info!(order_id = %id, status = %status, actor = %actor.name, "recording status change");
    Ok(())
}

/// The order's status in a transaction.
pub async fn status_in(
    tx: &mut Transaction<'static, Any>,
    id: OrderId,
) -> sqlx::Result<Option<OrderStatus>> {
    let row = sqlx::query("SELECT status FROM orders WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row
        .and_then(|r| r.try_get::<String, _>("status").ok())
        .and_then(|s| OrderStatus::parse(&s)))
}

/// The content hash of an order's model, if the caller may see the order.
pub async fn content_hash(db: &Db, caller: &Caller, id: OrderId) -> anyhow::Result<Option<String>> {
    let row = sqlx::query("SELECT tenant, content_sha256 FROM orders WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(db.pool())
        .await?;
    let Some(row) = row else { return Ok(None) };
    let tenant: String = row.try_get("tenant")?;
    if caller.role == Role::Customer && tenant != caller.tenant() {
        return Ok(None);
    }
    Ok(Some(row.try_get("content_sha256")?))
}

/// One order with its history. Staff see every order; a customer only their tenant's.
pub async fn get(db: &Db, caller: &Caller, id: OrderId) -> anyhow::Result<Option<MesOrder>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM orders WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(db.pool())
        .await?;
    let Some(row) = row else { return Ok(None) };
    let mut o = from_row(&row)?;
    if caller.role == Role::Customer && o.tenant != caller.tenant() {
        return Ok(None);
    }
    let rows = sqlx::query(
        "SELECT status, at_ms, actor_kind, actor_name, actor_id, note, trace_id FROM status_history WHERE order_id = $1 ORDER BY seq",
    )
    .bind(id.to_string())
    .fetch_all(db.pool())
    .await?;
    o.history = Some(
        rows.iter()
            .map(|r| {
                let s: String = r.try_get("status")?;
                let actor_id: Option<String> = r.try_get("actor_id")?;
                Ok(Step {
                    status: OrderStatus::parse(&s)
                        .ok_or_else(|| anyhow::anyhow!("unknown status {s}"))?,
                    at: domain::rfc3339(domain::from_ms(r.try_get("at_ms")?)),
                    actor: Actor {
                        kind: r.try_get("actor_kind")?,
                        name: r.try_get("actor_name")?,
                        user_id: actor_id.and_then(|u| u.parse().ok()),
                    },
                    note: r.try_get("note")?,
                    trace_id: r.try_get("trace_id")?,
                })
            })
            .collect::<anyhow::Result<_>>()?,
    );
    Ok(Some(o))
}
