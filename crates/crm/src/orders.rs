//! Customer-facing orders: the CRM's projection of each order, fed by MES
//! events, and the customer's decision (confirm / cancel) that it publishes.

use crate::timeline::{self, HistoryEntry};
use adapters::Db;
use adapters::outbox;
use domain::events::{
    Actor, Envelope, GeometrySummary, OrderCancelled, OrderConfirmed, PriceView, Quote,
};
use domain::{Caller, OrderId, OrderStatus, Role};
use serde::Serialize;
use sqlx::Row;

/// An order as the customer, the B2B API and the back office see it.
#[derive(Debug, Clone, Serialize)]
pub struct Order {
    pub order_id: OrderId,
    pub status: OrderStatus,
    pub material: String,
    pub file_name: String,
    pub size_bytes: i64,
    pub channel: String,
    pub customer: CustomerRef,
    pub created_at: String,
    pub updated_at: String,
    pub price: Option<PriceView>,
    pub geometry: Option<GeometrySummary>,
    pub rejection: Option<Rejection>,
    pub tracking_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryEntry>>,
    #[serde(skip)]
    pub tenant: String,
    #[serde(skip)]
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CustomerRef {
    pub name: String,
    pub email: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rejection {
    pub code: String,
    pub reason: String,
}

/// Why a customer's decision was refused.
#[derive(Debug, thiserror::Error)]
pub enum DecisionError {
    #[error("order not found")]
    NotFound,
    #[error("only the customer who placed the order can do this")]
    NotCustomer,
    #[error(transparent)]
    Transition(#[from] domain::TransitionError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

const COLUMNS: &str = "id, tenant, owner_name, owner_email, channel, material, file_name, size_bytes, status, \
    price_minor, currency, quote_json, geometry_json, reject_code, reject_reason, tracking_number, created_at_ms, updated_at_ms";

fn order_from_row(row: &sqlx::any::AnyRow) -> anyhow::Result<Order> {
    let id: String = row.try_get("id")?;
    let status: String = row.try_get("status")?;
    let quote: Option<Quote> = row
        .try_get::<Option<String>, _>("quote_json")?
        .map(|j| serde_json::from_str(&j))
        .transpose()?;
    let geometry = row
        .try_get::<Option<String>, _>("geometry_json")?
        .map(|j| serde_json::from_str(&j))
        .transpose()?;
    let reject_code: Option<String> = row.try_get("reject_code")?;
    let created: i64 = row.try_get("created_at_ms")?;
    let updated: i64 = row.try_get("updated_at_ms")?;
    Ok(Order {
        order_id: id.parse()?,
        status: OrderStatus::parse(&status)
            .ok_or_else(|| anyhow::anyhow!("unknown status {status}"))?,
        material: row.try_get("material")?,
        file_name: row.try_get("file_name")?,
        size_bytes: row.try_get("size_bytes")?,
        channel: row.try_get("channel")?,
        customer: CustomerRef {
            name: row.try_get("owner_name")?,
            email: row.try_get("owner_email")?,
        },
        created_at: domain::rfc3339(domain::from_ms(created)),
        updated_at: domain::rfc3339(domain::from_ms(updated)),
        price: quote.map(|q| q.view()),
        geometry,
        rejection: reject_code.map(|code| Rejection {
            code,
            reason: row.try_get("reject_reason").unwrap_or_default(),
        }),
        tracking_number: row.try_get("tracking_number")?,
        history: None,
        tenant: row.try_get("tenant")?,
        created_at_ms: created,
    })
}

/// Which orders a caller may see: a tenant's own, or all for managers.
fn scope(caller: &Caller) -> Option<String> {
    match caller.role {
        Role::Manager => None,
        _ => Some(caller.tenant()),
    }
}

/// Whose writes a read must see (see [`adapters::Db::reader`]): the caller's own.
fn reader_key(caller: &Caller) -> String {
    format!("user:{}", caller.user_id)
}

/// A page of orders, newest first.
#[derive(Debug, Serialize)]
pub struct Page {
    pub orders: Vec<Order>,
    pub next_cursor: Option<String>,
}

#[derive(Clone)]
pub struct Orders {
    db: Db,
    relay: adapters::outbox::Relay,
}

impl Orders {
    pub fn new(db: Db, relay: adapters::outbox::Relay) -> Self {
        Orders { db, relay }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// One order, if the caller may see it (otherwise None, as if it did not exist).
    pub async fn get(&self, caller: &Caller, id: OrderId) -> anyhow::Result<Option<Order>> {
        let pool = self.db.reader(&reader_key(caller)).await;
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM orders WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut order = order_from_row(&row)?;
        if scope(caller).is_some_and(|t| t != order.tenant) {
            return Ok(None);
        }
        order.history = Some(timeline::history(pool, id).await?);
        Ok(Some(order))
    }

    /// Whether the CRM knows the order at all (whoever owns it), read where
    /// `caller`'s reads go (so a replica that lags says "not yet", not "not yours").
    pub async fn exists(&self, caller: &Caller, id: OrderId) -> anyhow::Result<bool> {
        let row = sqlx::query("SELECT 1 AS one FROM orders WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.db.reader(&reader_key(caller)).await)
            .await?;
        Ok(row.is_some())
    }

    /// Orders newest first, after `cursor`, optionally of one status.
    pub async fn list(
        &self,
        caller: &Caller,
        status: Option<OrderStatus>,
        cursor: Option<(i64, String)>,
        limit: i64,
    ) -> anyhow::Result<Page> {
        let mut sql = format!("SELECT {COLUMNS} FROM orders WHERE 1 = 1");
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        let tenant = scope(caller);
        if tenant.is_some() {
            sql += &format!(" AND tenant = {}", next());
        }
        if status.is_some() {
            sql += &format!(" AND status = {}", next());
        }
        if cursor.is_some() {
            let (a, b, c) = (next(), next(), next());
            sql += &format!(" AND (created_at_ms < {a} OR (created_at_ms = {b} AND id < {c}))");
        }
        sql += &format!(" ORDER BY created_at_ms DESC, id DESC LIMIT {}", next());
        let mut q = sqlx::query(&sql);
        if let Some(t) = tenant {
            q = q.bind(t);
        }
        if let Some(s) = status {
            q = q.bind(s.as_str());
        }
        if let Some((ms, id)) = cursor {
            q = q.bind(ms).bind(ms).bind(id);
        }
        let pool = self.db.reader(&reader_key(caller)).await;
        let rows = q.bind(limit + 1).fetch_all(pool).await?;
        let mut orders = rows
            .iter()
            .map(order_from_row)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let next_cursor = if orders.len() as i64 > limit {
            orders.truncate(limit as usize);
            orders
                .last()
                .map(|o| web::paging::encode(o.created_at_ms, &o.order_id))
        } else {
            None
        };
        Ok(Page {
            orders,
            next_cursor,
        })
    }

    /// The customer accepts the quote (AWAITING_CONFIRMATION → CONFIRMED).
    pub async fn confirm(&self, caller: &Caller, id: OrderId) -> Result<(), DecisionError> {
        self.decide(caller, id, OrderStatus::Confirmed).await
    }

    /// The customer declines the quote (AWAITING_CONFIRMATION → CANCELLED).
    pub async fn cancel(&self, caller: &Caller, id: OrderId) -> Result<(), DecisionError> {
        self.decide(caller, id, OrderStatus::Cancelled).await
    }

    #[tracing::instrument(skip(self, caller), fields(order_id = %id, to = %to))]
    async fn decide(
        &self,
        caller: &Caller,
        id: OrderId,
        to: OrderStatus,
    ) -> Result<(), DecisionError> {
        let mut tx = self.db.begin_write().await?;
        let row = sqlx::query("SELECT tenant, status FROM orders WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(DecisionError::NotFound)?;
        let tenant: String = row.try_get("tenant")?;
        if scope(caller).is_some_and(|t| t != tenant) {
            return Err(DecisionError::NotFound);
        }
        if caller.role != Role::Customer {
            return Err(DecisionError::NotCustomer);
        }
        let status: String = row.try_get("status")?;
        let from = OrderStatus::parse(&status).unwrap_or(OrderStatus::Pricing);
        from.transition(to)?;
        let actor = Actor {
            kind: "customer".into(),
            name: caller.name.clone(),
            user_id: Some(caller.user_id),
        };
        let env = if to == OrderStatus::Confirmed {
            Envelope::new(
                "crm",
                &OrderConfirmed {
                    order_id: id,
                    actor: actor.clone(),
                },
            )
        } else {
            Envelope::new(
                "crm",
                &OrderCancelled {
                    order_id: id,
                    actor: actor.clone(),
                    reason: None,
                },
            )
        };
        let changed = sqlx::query(
            "UPDATE orders SET status = $1, updated_at_ms = $2 WHERE id = $3 AND status = $4",
        )
        .bind(to.as_str())
        .bind(domain::to_ms(domain::now()))
        .bind(id.to_string())
        .bind(from.as_str())
        .execute(&mut *tx)
        .await?;
        if changed.rows_affected() == 0 {
            // Another decision won since the read (PostgreSQL's read committed lets
            // a confirm and a cancel both read AWAITING_CONFIRMATION): this one is
            // refused from the status it lost to, and records nothing.
            drop(tx);
            let now: String = sqlx::query("SELECT status FROM orders WHERE id = $1")
                .bind(id.to_string())
                .fetch_one(self.db.pool())
                .await?
                .try_get("status")?;
            let now = OrderStatus::parse(&now).unwrap_or(from);
            return Err(DecisionError::Transition(domain::TransitionError {
                from: now,
                to,
            }));
        }
        timeline::record(
            &mut tx,
            id,
            to,
            &actor,
            Some(&env.event_id.to_string()),
            None,
        )
        .await?;
        outbox::enqueue(&mut tx, &env).await?;
        tx.commit().await?;
        self.db.wrote(&reader_key(caller)).await;
        self.relay.kick();
        tracing::info!(order_id = %id, status = %to, "customer decision recorded");
        Ok(())
    }
}
