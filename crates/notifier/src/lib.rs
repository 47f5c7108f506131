//! The notifier: tells customers what became of their orders. It consumes
//! `order.updated` (from the CRM), records in its own delivery log what to tell
//! whom — at most once per order, status, channel and target — and sends it:
//! e-mail in the customer's language, and signed webhooks to B2B organisations
//! that registered one, retried with backoff until delivered or abandoned.

pub mod consumer;
pub mod deliveries;
pub mod guard;
pub mod mail;
mod migrations;
pub mod notices;
pub mod signature;
pub mod webhooks;

use adapters::{Bus, Db};
use axum::Router;
use axum::extract::FromRef;
use axum::routing::get;
use deliveries::{Dispatcher, RetryPolicy};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use web::IdentityKey;

pub use consumer::QUEUE;

/// The notifier's schema migrations.
pub fn migrations() -> &'static [adapters::Migration] {
    migrations::MIGRATIONS
}

/// The notifier's settings.
#[derive(Debug, Clone)]
pub struct NotifierConfig {
    pub database_url: String,
    /// `smtp://[user:password@]host[:port]`; None writes `.eml` files to `mail_dir`.
    pub smtp_url: Option<String>,
    pub mail_dir: PathBuf,
    /// The sender of every e-mail.
    pub mail_from: String,
    /// Let webhooks reach loopback and private addresses (tests, private networks).
    pub allow_private_webhooks: bool,
    pub retry: RetryPolicy,
    /// How long a webhook endpoint has to answer.
    pub webhook_timeout: Duration,
    pub metrics: adapters::metrics::Metrics,
}

/// What the webhooks API can reach.
#[derive(Clone)]
pub struct NotifierState {
    pub db: Db,
    pub key: IdentityKey,
    pub allow_private: bool,
}

impl FromRef<NotifierState> for IdentityKey {
    fn from_ref(s: &NotifierState) -> IdentityKey {
        s.key.clone()
    }
}

/// The notifier service.
pub struct Notifier {
    state: NotifierState,
    bus: Arc<dyn Bus>,
    dispatcher: Dispatcher,
}

impl Notifier {
    /// Connects to its database (migrating it), checks the mail settings and
    /// declares its queue.
    pub async fn build(
        config: &NotifierConfig,
        bus: Arc<dyn Bus>,
        key: IdentityKey,
    ) -> anyhow::Result<Notifier> {
        anyhow::ensure!(
            config.retry.max_attempts >= 1,
            "notifier.max_attempts must be at least 1"
        );
        let mailer = mail::Mailer::new(
            config.smtp_url.as_deref(),
            config.mail_dir.clone(),
            &config.mail_from,
        )?;
        let db = Db::connect(&config.database_url, migrations::MIGRATIONS).await?;
        bus.declare(&QUEUE).await?;
        let dispatcher = Dispatcher {
            db: db.clone(),
            mailer: Arc::new(mailer),
            retry: config.retry,
            allow_private: config.allow_private_webhooks,
            webhook_timeout: config.webhook_timeout,
            metrics: config.metrics.clone(),
            wake: Arc::new(Notify::new()),
        };
        Ok(Notifier {
            state: NotifierState {
                db,
                key,
                allow_private: config.allow_private_webhooks,
            },
            bus,
            dispatcher,
        })
    }

    pub fn db(&self) -> &Db {
        &self.state.db
    }

    /// Starts the dispatcher (supervised by `tasks`: restarted if it dies) and
    /// the consumer. Dropping the returned handle stops the dispatcher.
    pub async fn start(
        &self,
        tasks: &adapters::tasks::Tasks,
    ) -> anyhow::Result<adapters::tasks::Supervised> {
        let dispatcher = self.dispatcher.clone();
        let running = tasks.spawn("notifier_dispatcher", move || dispatcher.clone().run());
        self.bus
            .consume(
                QUEUE.name,
                2,
                Arc::new(consumer::NotifierConsumer {
                    db: self.state.db.clone(),
                    wake: self.dispatcher.wake.clone(),
                }),
            )
            .await?;
        Ok(running)
    }

    /// `/api/v1/webhooks*`.
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/api/v1/webhooks",
                get(webhooks::get)
                    .put(webhooks::put)
                    .delete(webhooks::delete),
            )
            .route(
                "/api/v1/webhooks/deliveries",
                get(webhooks::list_deliveries),
            )
            .with_state(self.state.clone())
    }
}
