//! The operators' queue: confirmed orders newest first, taken into work by
//! exactly one operator, then made, packed and shipped.

use crate::MesState;
use crate::orders::{self, COLUMNS, MesOrder};
use adapters::outbox;
use domain::events::{Actor, Envelope, OrderStatusChanged};
use domain::{Caller, OrderId, OrderStatus, Role};
use serde::Serialize;
use sqlx::Row;

/// Why an operator's action was refused.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("order not found")]
    NotFound,
    #[error("only operators can do this")]
    NotOperator,
    #[error("already taken by {name}")]
    AlreadyTaken { name: String, at: Option<String> },
    #[error("this order is assigned to {0}")]
    NotYours(String),
    #[error(transparent)]
    Transition(#[from] domain::TransitionError),
    #[error("{0} is not a production status: use MANUFACTURED, PACKED or SHIPPED")]
    NotProductionStatus(OrderStatus),
    #[error("a tracking number is required to ship")]
    TrackingRequired,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for QueueError {
    fn from(e: sqlx::Error) -> Self {
        QueueError::Internal(e.into())
    }
}

/// Filters on the first page.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub material: Option<String>,
}

/// A page of the queue.
#[derive(Debug, Serialize)]
pub struct QueuePage {
    pub orders: Vec<MesOrder>,
    pub next_cursor: Option<String>,
}

/// Confirmed orders not yet taken, newest confirmation first (keyset pagination).
pub async fn list(
    state: &MesState,
    filter: &Filter,
    cursor: Option<(i64, String)>,
    limit: i64,
) -> anyhow::Result<QueuePage> {
    let mut sql = format!("SELECT {COLUMNS} FROM orders WHERE status = 'CONFIRMED'");
    let mut n = 0;
    let mut p = || {
        n += 1;
        format!("${n}")
    };
    if filter.material.is_some() {
        sql += &format!(" AND material_code = {}", p());
    }
    if cursor.is_some() {
        let (a, b, c) = (p(), p(), p());
        sql += &format!(" AND (confirmed_at_ms < {a} OR (confirmed_at_ms = {b} AND id < {c}))");
    }
    sql += &format!(" ORDER BY confirmed_at_ms DESC, id DESC LIMIT {}", p());
    let mut q = sqlx::query(&sql);
    if let Some(m) = &filter.material {
        q = q.bind(m.to_ascii_uppercase());
    }
    if let Some((ms, id)) = cursor {
        q = q.bind(ms).bind(ms).bind(id);
    }
    let rows = q.bind(limit + 1).fetch_all(state.db.pool()).await?;
    let mut orders = rows
        .iter()
        .map(orders::from_row)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let next_cursor = if orders.len() as i64 > limit {
        orders.truncate(limit as usize);
        orders
            .last()
            .map(|o| web::paging::encode(o.confirmed_at_ms.unwrap_or(0), &o.order_id))
    } else {
        None
    };
    Ok(QueuePage {
        orders,
        next_cursor,
    })
}

/// Orders an operator has in work, most recently taken first.
pub async fn in_work(state: &MesState, operator: &Caller) -> anyhow::Result<Vec<MesOrder>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM orders WHERE operator_id = $1 AND status IN ('MANUFACTURING_STARTED', 'MANUFACTURED', 'PACKED') \
         ORDER BY taken_at_ms DESC LIMIT 200"
    ))
    .bind(operator.user_id.to_string())
    .fetch_all(state.db.pool())
    .await?;
    rows.iter().map(orders::from_row).collect()
}

fn actor(op: &Caller) -> Actor {
    Actor {
        kind: "operator".into(),
        name: op.name.clone(),
        user_id: Some(op.user_id),
    }
}

/// Takes an order into work. Among any number of operators at once, exactly one wins:
/// the update only matches while the order is still CONFIRMED.
#[tracing::instrument(skip(state, op), fields(order_id = %id, operator = %op.name))]
pub async fn take(state: &MesState, op: &Caller, id: OrderId) -> Result<(), QueueError> {
    if op.role != Role::Operator {
        return Err(QueueError::NotOperator);
    }
    let now = domain::to_ms(domain::now());
    let mut tx = state.db.begin_write().await?;
    let won = sqlx::query(
        "UPDATE orders SET status = 'MANUFACTURING_STARTED', operator_id = $1, operator_name = $2, taken_at_ms = $3, \
         updated_at_ms = $3 WHERE id = $4 AND status = 'CONFIRMED'",
    )
    .bind(op.user_id.to_string())
    .bind(&op.name)
    .bind(now)
    .bind(id.to_string())
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !won {
        drop(tx);
        let row =
            sqlx::query("SELECT status, operator_name, taken_at_ms FROM orders WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(state.db.pool())
                .await?
                .ok_or(QueueError::NotFound)?;
        let status = OrderStatus::parse(&row.try_get::<String, _>("status")?)
            .unwrap_or(OrderStatus::Pricing);
        let name: Option<String> = row.try_get("operator_name")?;
        return Err(match name {
            Some(name) => QueueError::AlreadyTaken {
                name,
                at: row
                    .try_get::<Option<i64>, _>("taken_at_ms")?
                    .map(|ms| domain::rfc3339(domain::from_ms(ms))),
            },
            None => match status.transition(OrderStatus::ManufacturingStarted) {
                Err(e) => QueueError::Transition(e),
                // Confirmed again by now (a release in between): the operator may simply retry.
                Ok(_) => QueueError::Internal(anyhow::anyhow!(
                    "the order changed while it was being taken; try again"
                )),
            },
        });
    }
    let to = OrderStatus::ManufacturingStarted;
    orders::record(&mut tx, id, to, &actor(op), None).await?;
    let ev = OrderStatusChanged {
        order_id: id,
        status: to,
        actor: actor(op),
        tracking_number: None,
    };
    outbox::enqueue(&mut tx, &Envelope::new("mes", &ev)).await?;
    tx.commit().await?;
    state.relay.kick();
    tracing::info!(order_id = %id, operator = %op.name, "order taken into work");
    Ok(())
}

/// Moves an order in work to MANUFACTURED, PACKED or SHIPPED (with a tracking number).
#[tracing::instrument(skip(state, op, tracking), fields(order_id = %id, to = %to))]
pub async fn advance(
    state: &MesState,
    op: &Caller,
    id: OrderId,
    to: OrderStatus,
    tracking: Option<String>,
) -> Result<(), QueueError> {
    if op.role != Role::Operator {
        return Err(QueueError::NotOperator);
    }
    if !matches!(
        to,
        OrderStatus::Manufactured | OrderStatus::Packed | OrderStatus::Shipped
    ) {
        return Err(QueueError::NotProductionStatus(to));
    }
    let tracking = tracking
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    if to == OrderStatus::Shipped && tracking.is_none() {
        return Err(QueueError::TrackingRequired);
    }
    let mut tx = state.db.begin_write().await?;
    let row = sqlx::query("SELECT status, operator_id, operator_name FROM orders WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(QueueError::NotFound)?;
    let from =
        OrderStatus::parse(&row.try_get::<String, _>("status")?).unwrap_or(OrderStatus::Pricing);
    from.transition(to)?;
    let owner: Option<String> = row.try_get("operator_id")?;
    if owner.as_deref() != Some(op.user_id.to_string().as_str()) {
        let name: Option<String> = row.try_get("operator_name")?;
        return Err(QueueError::NotYours(name.unwrap_or_default()));
    }
    sqlx::query(
        "UPDATE orders SET status = $1, tracking_number = COALESCE($2, tracking_number), updated_at_ms = $3 \
         WHERE id = $4 AND status = $5",
    )
    .bind(to.as_str())
    .bind(&tracking)
    .bind(domain::to_ms(domain::now()))
    .bind(id.to_string())
    .bind(from.as_str())
    .execute(&mut *tx)
    .await?;
    orders::record(&mut tx, id, to, &actor(op), tracking.as_deref()).await?;
    let ev = OrderStatusChanged {
        order_id: id,
        status: to,
        actor: actor(op),
        tracking_number: tracking,
    };
    outbox::enqueue(&mut tx, &Envelope::new("mes", &ev)).await?;
    tx.commit().await?;
    state.relay.kick();
    tracing::info!(order_id = %id, status = %to, "production status changed");
    Ok(())
}
