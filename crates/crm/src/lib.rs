//! The CRM: customers, organisations, users and API keys; the customer-facing
//! view of every order and its timeline; the shop and the back office.

pub mod accounts;
mod api;
pub mod consumer;
mod internal;
mod migrations;
pub mod notify;
pub mod orders;
mod shop;
pub mod sla;
pub mod throttle;
pub mod timeline;
mod views;

use accounts::Accounts;
use adapters::outbox::Relay;
use adapters::{Bus, Db};
use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post};
use orders::Orders;
use std::sync::Arc;
use web::IdentityKey;

/// The CRM's schema migrations (for commands that open its database directly).
pub fn migrations() -> &'static [adapters::Migration] {
    migrations::MIGRATIONS
}

/// The CRM's settings.
#[derive(Debug, Clone)]
pub struct CrmConfig {
    pub database_url: String,
    pub database_replica_url: Option<String>,
    /// Mark the session cookie `Secure` (behind HTTPS).
    pub cookie_secure: bool,
    /// A trace viewer's page for one trace, `{trace_id}` replaced (the
    /// journey's links in the back office); None shows trace ids as text.
    pub trace_url: Option<String>,
    /// Deadlines per status: the overdue list and the managers' announcements.
    pub sla: domain::sla::SlaPolicy,
    pub metrics: adapters::metrics::Metrics,
    /// The shared cache the login throttle counts in (`memory://`, `redis://…`).
    pub cache_url: String,
    pub cache_prefix: String,
    /// How failed logins are throttled.
    pub abuse: adapters::throttle::AbusePolicy,
}

/// What every CRM handler can reach.
#[derive(Clone)]
pub struct CrmState {
    pub accounts: Accounts,
    pub orders: Orders,
    pub key: IdentityKey,
    pub cookie_secure: bool,
    pub trace_url: Option<String>,
    pub logins: throttle::Logins,
}

impl FromRef<CrmState> for IdentityKey {
    fn from_ref(s: &CrmState) -> IdentityKey {
        s.key.clone()
    }
}

/// The CRM service.
pub struct Crm {
    state: CrmState,
    db: Db,
    relay: Relay,
    bus: Arc<dyn Bus>,
    sla: sla::Sla,
}

impl Crm {
    /// Connects to the database (migrating it) and declares the CRM's queue.
    pub async fn build(
        config: &CrmConfig,
        bus: Arc<dyn Bus>,
        key: IdentityKey,
    ) -> anyhow::Result<Crm> {
        let db = Db::connect_with_replica(
            &config.database_url,
            config.database_replica_url.as_deref(),
            migrations::MIGRATIONS,
        )
        .await?;
        bus.declare(&consumer::QUEUE).await?;
        let relay = Relay::new(db.clone(), bus.clone(), "crm");
        // Opened lazily: a Redis down at start degrades the throttle, not the CRM.
        let cache = adapters::cache::open(&config.cache_url, &config.cache_prefix).await?;
        let logins = throttle::Logins::new(
            adapters::throttle::Throttle::new(cache, config.metrics.clone()),
            config.abuse.clone(),
        );
        let state = CrmState {
            accounts: Accounts::new(db.clone()),
            orders: Orders::new(db.clone(), relay.clone()),
            key,
            cookie_secure: config.cookie_secure,
            trace_url: config.trace_url.clone(),
            logins,
        };
        let sla = sla::Sla::new(db.clone(), config.sla.clone(), config.metrics.clone());
        Ok(Crm {
            state,
            db,
            relay,
            bus,
            sla,
        })
    }

    pub fn accounts(&self) -> Accounts {
        self.state.accounts.clone()
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The SLA clocks over the CRM's orders.
    pub fn sla(&self) -> &sla::Sla {
        &self.sla
    }

    /// Starts the outbox relay and the overdue announcer (supervised by
    /// `tasks`: restarted if they die) and the event consumer. Dropping the
    /// returned handles stops the two tasks.
    pub async fn start(
        &self,
        tasks: &adapters::tasks::Tasks,
    ) -> anyhow::Result<Vec<adapters::tasks::Supervised>> {
        let every = std::time::Duration::from_secs(self.sla.policy().check_interval_seconds.max(1));
        let relay = self.relay.clone();
        let announcer = self.sla.clone();
        let running = vec![
            tasks.spawn("crm_outbox_relay", move || relay.clone().run()),
            tasks.spawn("crm_sla_announcer", move || announcer.clone().run(every)),
        ];
        self.bus
            .consume(
                consumer::QUEUE.name,
                1,
                Arc::new(consumer::CrmConsumer {
                    db: self.db.clone(),
                }),
            )
            .await?;
        Ok(running)
    }

    /// Endpoints for our own processes (the gateway's identity lookups); mounted
    /// only when the CRM runs as its own process.
    pub fn internal_router(&self) -> Router {
        Router::new()
            .route("/internal/identity", post(internal::identity))
            .route("/internal/orders/views", post(internal::views))
            .with_state(self.state.clone())
    }

    /// The shop, the back office and `/api/v1/orders*`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(shop::home))
            .route("/lang/{code}", get(shop::switch_lang))
            .route("/login", get(shop::login_form).post(shop::login))
            .route("/logout", post(shop::logout))
            .route("/register", get(shop::register_form).post(shop::register))
            .route("/account", get(shop::account))
            .route("/account/orders/{id}", get(shop::order))
            .route("/account/orders/{id}/confirm", post(shop::confirm))
            .route("/account/orders/{id}/cancel", post(shop::cancel))
            .route("/crm", get(shop::backoffice))
            .route("/crm/orders/{id}", get(shop::backoffice_order))
            .route("/api/v1/orders", get(api::list_orders))
            .route("/api/v1/orders/{id}", get(api::get_order))
            .route("/api/v1/orders/{id}/confirm", post(api::confirm))
            .route("/api/v1/orders/{id}/cancel", post(api::cancel))
            .with_state(self.state.clone())
            .merge(sla::router(sla::SlaState {
                sla: self.sla.clone(),
                key: self.state.key.clone(),
            }))
    }
}
