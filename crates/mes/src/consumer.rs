//! MES's consumer: pricing results and the customer's decisions, applied exactly
//! once per event (inbox) in the same transaction as their effect.

use crate::orders;
use adapters::bus::{DeliveryError, Handler, QueueSpec};
use adapters::{Db, inbox, outbox};
use async_trait::async_trait;
use domain::events::{
    Actor, Envelope, Event, OrderCancelled, OrderConfirmed, OrderPriced, OrderRejected,
    PricingCompleted, PricingFailed,
};
use domain::{OrderId, OrderStatus};
use sqlx::{Any, Transaction};

/// MES's queue and what is routed to it.
pub const QUEUE: QueueSpec = QueueSpec {
    name: "mes.events",
    bindings: &[
        PricingCompleted::TYPE,
        PricingFailed::TYPE,
        OrderConfirmed::TYPE,
        OrderCancelled::TYPE,
    ],
    delivery_limit: 20,
};

const CONSUMER: &str = "mes";

pub struct MesConsumer {
    pub db: Db,
    pub relay: adapters::outbox::Relay,
    /// Told of confirmations and cancellations (cache and live consoles).
    pub feed: Option<crate::queue::Feed>,
}

fn internal(e: impl Into<anyhow::Error>) -> DeliveryError {
    DeliveryError::Retry(e.into())
}

/// Whether to apply a move to `to`: Ok(false) when it was already applied.
async fn should_apply(
    tx: &mut Transaction<'static, Any>,
    id: OrderId,
    to: OrderStatus,
) -> Result<bool, DeliveryError> {
    let Some(current) = orders::status_in(tx, id).await.map_err(internal)? else {
        return Err(DeliveryError::Reject(format!(
            "order {id} does not exist in MES"
        )));
    };
    if current.is_release(to) {
        // Only an operator releases an order; a customer's late confirmation never does.
        Ok(false)
    } else if current.can_become(to) {
        Ok(true)
    } else if to.rank() <= current.rank() {
        Ok(false)
    } else {
        Err(DeliveryError::Retry(anyhow::anyhow!(
            "order {id} is {current}: cannot become {to} yet"
        )))
    }
}

impl MesConsumer {
    /// Applies one event in the caller's transaction.
    async fn apply(
        &self,
        env: &Envelope,
        tx: &mut Transaction<'static, Any>,
    ) -> Result<Option<&'static str>, DeliveryError> {
        let now = domain::to_ms(domain::now());
        let poison = |e: domain::events::DecodeError| DeliveryError::Reject(e.to_string());
        match env.kind.as_str() {
            PricingCompleted::TYPE => {
                let ev: PricingCompleted = env.decode().map_err(poison)?;
                let to = OrderStatus::AwaitingConfirmation;
                if should_apply(tx, ev.order_id, to).await? {
                    sqlx::query(
                        "UPDATE orders SET status = $1, price_minor = $2, currency = $3, weight_g = $4, quote_json = $5, \
                         geometry_json = $6, updated_at_ms = $7 WHERE id = $8",
                    )
                    .bind(to.as_str())
                    .bind(ev.quote.total.minor)
                    .bind(ev.quote.total.currency.code())
                    .bind(ev.geometry.weight_g)
                    .bind(serde_json::to_string(&ev.quote).map_err(internal)?)
                    .bind(serde_json::to_string(&ev.geometry).map_err(internal)?)
                    .bind(now)
                    .bind(ev.order_id.to_string())
                    .execute(&mut **tx)
                    .await
                    .map_err(internal)?;
                    orders::record(tx, ev.order_id, to, &Actor::system("pricing"), None)
                        .await
                        .map_err(internal)?;
                    let out = OrderPriced {
                        order_id: ev.order_id,
                        geometry: ev.geometry,
                        quote: ev.quote,
                    };
                    outbox::enqueue(tx, &Envelope::new("mes", &out))
                        .await
                        .map_err(internal)?;
                }
                Ok(None)
            }
            PricingFailed::TYPE => {
                let ev: PricingFailed = env.decode().map_err(poison)?;
                let to = OrderStatus::Rejected;
                if should_apply(tx, ev.order_id, to).await? {
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
                    .map_err(internal)?;
                    orders::record(
                        tx,
                        ev.order_id,
                        to,
                        &Actor::system("pricing"),
                        Some(&ev.reason),
                    )
                    .await
                    .map_err(internal)?;
                    let out = OrderRejected {
                        order_id: ev.order_id,
                        code: ev.code,
                        reason: ev.reason,
                        geometry: ev.geometry,
                    };
                    outbox::enqueue(tx, &Envelope::new("mes", &out))
                        .await
                        .map_err(internal)?;
                }
                Ok(None)
            }
            OrderConfirmed::TYPE => {
                let ev: OrderConfirmed = env.decode().map_err(poison)?;
                let to = OrderStatus::Confirmed;
                if should_apply(tx, ev.order_id, to).await? {
                    sqlx::query("UPDATE orders SET status = $1, confirmed_at_ms = $2, updated_at_ms = $2 WHERE id = $3")
                        .bind(to.as_str())
                        .bind(now)
                        .bind(ev.order_id.to_string())
                        .execute(&mut **tx)
                        .await
                        .map_err(internal)?;
                    orders::record(tx, ev.order_id, to, &ev.actor, None)
                        .await
                        .map_err(internal)?;
                    return Ok(Some("confirmed"));
                }
                Ok(None)
            }
            OrderCancelled::TYPE => {
                let ev: OrderCancelled = env.decode().map_err(poison)?;
                let to = OrderStatus::Cancelled;
                if should_apply(tx, ev.order_id, to).await? {
                    sqlx::query("UPDATE orders SET status = $1, updated_at_ms = $2 WHERE id = $3")
                        .bind(to.as_str())
                        .bind(now)
                        .bind(ev.order_id.to_string())
                        .execute(&mut **tx)
                        .await
                        .map_err(internal)?;
                    orders::record(tx, ev.order_id, to, &ev.actor, ev.reason.as_deref())
                        .await
                        .map_err(internal)?;
                }
                Ok(None)
            }
            other => Err(DeliveryError::Reject(format!(
                "MES does not handle events of type {other}"
            ))),
        }
    }
}

#[async_trait]
impl Handler for MesConsumer {
    #[tracing::instrument(name = "mes.consume", skip_all, fields(order_id = %env.order_id, kind = %env.kind, event_id = %env.event_id))]
    async fn handle(&self, env: Envelope) -> Result<(), DeliveryError> {
        let mut tx = self.db.begin_write().await.map_err(internal)?;
        if !inbox::first_time(&mut tx, CONSUMER, &env.event_id)
            .await
            .map_err(internal)?
        {
            tracing::info!("duplicate event ignored");
            return Ok(());
        }
        let applied = self.apply(&env, &mut tx).await?;
        tx.commit().await.map_err(internal)?;
        self.relay.kick();
        if let (Some(feed), Some(kind)) = (&self.feed, applied) {
            feed.changed(kind, env.order_id, None).await;
        }
        Ok(())
    }
}
