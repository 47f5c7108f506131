//! The CRM's consumer of MES events: keeps the customer-facing projection and
//! timeline up to date, exactly once per event (inbox), whatever the delivery.

use crate::timeline;
use adapters::bus::{DeliveryError, Handler, QueueSpec};
use adapters::{Db, inbox};
use async_trait::async_trait;
use domain::events::{
    Actor, Envelope, Event, ModelReceived, OrderPriced, OrderRejected, OrderStatusChanged,
};
use domain::{OrderId, OrderStatus};
use sqlx::{Any, Row, Transaction};

/// The CRM's queue and what is routed to it.
pub const QUEUE: QueueSpec = QueueSpec {
    name: "crm.events",
    bindings: &[
        ModelReceived::TYPE,
        OrderPriced::TYPE,
        OrderRejected::TYPE,
        OrderStatusChanged::TYPE,
    ],
    delivery_limit: 20,
};

const CONSUMER: &str = "crm";

pub struct CrmConsumer {
    pub db: Db,
}

fn poison(e: impl std::fmt::Display) -> DeliveryError {
    DeliveryError::Reject(e.to_string())
}

async fn current_status(
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

/// What to do with an incoming status, given the projection's current one.
enum Step {
    Apply,
    /// Already applied (a redelivery, or an older event): nothing to do.
    Stale,
}

fn step(current: Option<OrderStatus>, to: OrderStatus, id: OrderId) -> Result<Step, DeliveryError> {
    let Some(current) = current else {
        // model.received has not arrived yet: try again shortly.
        return Err(DeliveryError::Retry(anyhow::anyhow!(
            "order {id} is not known to the CRM yet"
        )));
    };
    if current.can_become(to) {
        Ok(Step::Apply)
    } else if to.rank() <= current.rank() {
        Ok(Step::Stale)
    } else {
        // A step was skipped: an earlier event is still on its way.
        Err(DeliveryError::Retry(anyhow::anyhow!(
            "order {id} is {current}: waiting for the step before {to}"
        )))
    }
}

impl CrmConsumer {
    async fn apply(
        &self,
        env: &Envelope,
        tx: &mut Transaction<'static, Any>,
    ) -> Result<(), DeliveryError> {
        let now = domain::to_ms(domain::now());
        let eid = env.event_id.to_string();
        match env.kind.as_str() {
            ModelReceived::TYPE => {
                let ev: ModelReceived = env.decode().map_err(poison)?;
                let created = ev.order_id.minted_at_ms().unwrap_or(now);
                let inserted = sqlx::query(
                    "INSERT INTO orders (id, tenant, owner_id, owner_name, owner_email, channel, material, file_name, \
                     size_bytes, status, created_at_ms, updated_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (id) DO NOTHING",
                )
                .bind(ev.order_id.to_string())
                .bind(&ev.tenant)
                .bind(ev.owner.user_id.map(|u| u.to_string()))
                .bind(&ev.owner.name)
                .bind(&ev.owner_email)
                .bind(&ev.channel)
                .bind(&ev.material)
                .bind(&ev.file_name)
                .bind(ev.size_bytes as i64)
                .bind(OrderStatus::Pricing.as_str())
                .bind(created)
                .bind(now)
                .execute(&mut **tx)
                .await
                .map_err(anyhow::Error::from)?;
                if inserted.rows_affected() == 1 {
                    timeline::record(
                        tx,
                        ev.order_id,
                        OrderStatus::Pricing,
                        &ev.owner,
                        Some(&eid),
                        None,
                    )
                    .await
                    .map_err(anyhow::Error::from)?;
                }
            }
            OrderPriced::TYPE => {
                let ev: OrderPriced = env.decode().map_err(poison)?;
                let to = OrderStatus::AwaitingConfirmation;
                if let Step::Apply = step(
                    current_status(tx, ev.order_id)
                        .await
                        .map_err(anyhow::Error::from)?,
                    to,
                    ev.order_id,
                )? {
                    sqlx::query(
                        "UPDATE orders SET status = $1, price_minor = $2, currency = $3, quote_json = $4, \
                         geometry_json = $5, updated_at_ms = $6 WHERE id = $7",
                    )
                    .bind(to.as_str())
                    .bind(ev.quote.total.minor)
                    .bind(ev.quote.total.currency.code())
                    .bind(serde_json::to_string(&ev.quote).map_err(anyhow::Error::from)?)
                    .bind(serde_json::to_string(&ev.geometry).map_err(anyhow::Error::from)?)
                    .bind(now)
                    .bind(ev.order_id.to_string())
                    .execute(&mut **tx)
                    .await
                    .map_err(anyhow::Error::from)?;
                    timeline::record(
                        tx,
                        ev.order_id,
                        to,
                        &Actor::system("pricing"),
                        Some(&eid),
                        None,
                    )
                    .await
                    .map_err(anyhow::Error::from)?;
                }
            }
            OrderRejected::TYPE => {
                let ev: OrderRejected = env.decode().map_err(poison)?;
                let to = OrderStatus::Rejected;
                if let Step::Apply = step(
                    current_status(tx, ev.order_id)
                        .await
                        .map_err(anyhow::Error::from)?,
                    to,
                    ev.order_id,
                )? {
                    sqlx::query(
                        "UPDATE orders SET status = $1, reject_code = $2, reject_reason = $3, geometry_json = $4, \
                         updated_at_ms = $5 WHERE id = $6",
                    )
                    .bind(to.as_str())
                    .bind(&ev.code)
                    .bind(&ev.reason)
                    .bind(ev.geometry.as_ref().map(|g| serde_json::to_string(g).unwrap_or_default()))
                    .bind(now)
                    .bind(ev.order_id.to_string())
                    .execute(&mut **tx)
                    .await
                    .map_err(anyhow::Error::from)?;
                    timeline::record(
                        tx,
                        ev.order_id,
                        to,
                        &Actor::system("pricing"),
                        Some(&eid),
                        Some(&ev.reason),
                    )
                    .await
                    .map_err(anyhow::Error::from)?;
                }
            }
            OrderStatusChanged::TYPE => {
                let ev: OrderStatusChanged = env.decode().map_err(poison)?;
                if let Step::Apply = step(
                    current_status(tx, ev.order_id)
                        .await
                        .map_err(anyhow::Error::from)?,
                    ev.status,
                    ev.order_id,
                )? {
                    sqlx::query(
                        "UPDATE orders SET status = $1, tracking_number = COALESCE($2, tracking_number), \
                         updated_at_ms = $3 WHERE id = $4",
                    )
                    .bind(ev.status.as_str())
                    .bind(&ev.tracking_number)
                    .bind(now)
                    .bind(ev.order_id.to_string())
                    .execute(&mut **tx)
                    .await
                    .map_err(anyhow::Error::from)?;
                    // A release back to the queue carries the operator's reason.
                    let note = ev.tracking_number.as_deref().or(ev.note.as_deref());
                    timeline::record(tx, ev.order_id, ev.status, &ev.actor, Some(&eid), note)
                        .await
                        .map_err(anyhow::Error::from)?;
                }
            }
            other => {
                return Err(DeliveryError::Reject(format!(
                    "the CRM does not handle events of type {other}"
                )));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Handler for CrmConsumer {
    #[tracing::instrument(name = "crm.consume", skip_all, fields(order_id = %env.order_id, kind = %env.kind, event_id = %env.event_id))]
    async fn handle(&self, env: Envelope) -> Result<(), DeliveryError> {
        let mut tx = self.db.begin_write().await.map_err(anyhow::Error::from)?;
        if !inbox::first_time(&mut tx, CONSUMER, &env.event_id)
            .await
            .map_err(anyhow::Error::from)?
        {
            tracing::info!("duplicate event ignored");
            return Ok(());
        }
        self.apply(&env, &mut tx).await?;
        tx.commit().await.map_err(anyhow::Error::from)?;
        Ok(())
    }
}
