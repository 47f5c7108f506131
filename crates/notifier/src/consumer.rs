//! The notifier's consumer of `order.updated`: records what to tell whom, in
//! the same transaction as the event's inbox row. Sending happens after, in
//! the dispatcher, so a slow endpoint never holds a delivery from the bus.

use crate::deliveries::{self, EMAIL, WEBHOOK};
use adapters::bus::{DeliveryError, Handler, QueueSpec};
use adapters::{Db, inbox};
use async_trait::async_trait;
use domain::events::{Envelope, Event, OrderUpdated, RegistrationAttempted};
use std::sync::Arc;
use tokio::sync::Notify;

/// The notifier's queue and what is routed to it.
pub const QUEUE: QueueSpec = QueueSpec {
    name: "notifier.events",
    bindings: &[OrderUpdated::TYPE, RegistrationAttempted::TYPE],
    delivery_limit: 20,
};

const CONSUMER: &str = "notifier";

/// The longest organisation name kept in the delivery log.
const MAX_ORG_BYTES: usize = 200;

/// Whether `text` can be a key in the delivery log as it is: bounded, and no
/// control characters (PostgreSQL's text refuses NUL).
fn storable(text: &str, max_bytes: usize) -> bool {
    text.len() <= max_bytes && !text.chars().any(char::is_control)
}

/// The delivery log's target for an e-mail address. One that cannot be an
/// address at all is still recorded (to be abandoned with its reason, not
/// forgotten), under a bounded name that says so.
fn email_target(email: &str) -> String {
    if storable(email, crate::mail::MAX_ADDRESS_BYTES) {
        return email.to_string();
    }
    use sha2::Digest;
    format!(
        "invalid:{}",
        hex::encode(sha2::Sha256::digest(email.as_bytes()))
    )
}

pub struct NotifierConsumer {
    pub db: Db,
    /// Wakes the dispatcher once something new is recorded.
    pub wake: Arc<Notify>,
}

#[async_trait]
impl Handler for NotifierConsumer {
    #[tracing::instrument(name = "notifier.consume", skip_all, fields(order_id = %env.order_id, kind = %env.kind, event_id = %env.event_id))]
    async fn handle(&self, env: Envelope) -> Result<(), DeliveryError> {
        if env.is::<RegistrationAttempted>() {
            return crate::notices::consume(&self.db, &self.wake, CONSUMER, &env).await;
        }
        if env.kind != OrderUpdated::TYPE {
            return Err(DeliveryError::Reject(format!(
                "the notifier does not handle events of type {}",
                env.kind
            )));
        }
        let ev: OrderUpdated = env
            .decode()
            .map_err(|e| DeliveryError::Reject(e.to_string()))?;
        let mut tx = self.db.begin_write().await.map_err(anyhow::Error::from)?;
        if !inbox::first_time(&mut tx, CONSUMER, &env.event_id)
            .await
            .map_err(anyhow::Error::from)?
        {
            tracing::info!("duplicate event ignored");
            return Ok(());
        }
        let status = ev.status.as_str();
        let mut new = 0;
        let email = ev.contact.email.trim().to_lowercase();
        // An organisation name no webhook can have (too long, control
        // characters PostgreSQL refuses in text) is no organisation here.
        let org = ev
            .contact
            .organisation
            .as_deref()
            .filter(|o| storable(o, MAX_ORG_BYTES));
        if !email.is_empty() {
            new += deliveries::record(&mut tx, &env, status, EMAIL, &email_target(&email), org)
                .await
                .map_err(anyhow::Error::from)? as usize;
        }
        if let Some(org) = org
            && crate::webhooks::exists(&mut tx, org)
                .await
                .map_err(anyhow::Error::from)?
        {
            new += deliveries::record(
                &mut tx,
                &env,
                status,
                WEBHOOK,
                &format!("org:{org}"),
                Some(org),
            )
            .await
            .map_err(anyhow::Error::from)? as usize;
        }
        tx.commit().await.map_err(anyhow::Error::from)?;
        if new == 0 {
            tracing::info!(status, "already told: nothing new to send");
        } else {
            self.wake.notify_one();
        }
        Ok(())
    }
}
