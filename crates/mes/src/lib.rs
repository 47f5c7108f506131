//! MES: models in object storage, quotes, production orders, the operators'
//! queue and its status history; the upload form and the operator console.

pub mod api;
mod catalogue;
mod console;
pub mod consumer;
pub mod intake;
mod internal;
mod live;
pub mod materials;
mod migrations;
pub mod orders;
pub mod queue;
pub mod sla;
pub mod uploads;

use adapters::outbox::Relay;
use adapters::{Bus, Db};
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::{get, post};
use object_store::ObjectStore;
use std::sync::Arc;
use web::IdentityKey;

/// MES's schema migrations (for commands that open its database directly).
pub fn migrations() -> &'static [adapters::Migration] {
    migrations::MIGRATIONS
}

/// MES's settings.
#[derive(Debug, Clone)]
pub struct MesConfig {
    pub database_url: String,
    pub database_replica_url: Option<String>,
    pub objects_url: String,
    /// S3 settings over the `AWS_*` variables (used when `objects_url` is `s3://…`).
    pub s3: adapters::objects::S3Options,
    /// How long a presigned upload URL (and its upload record) stays valid.
    pub upload_url_expiry: std::time::Duration,
    /// Direct uploads larger than this are handed out as presigned parts of this size.
    pub multipart_part_bytes: u64,
    /// How often expired, unused direct uploads are removed (zero: never).
    pub upload_sweep_every: std::time::Duration,
    /// How long after its expiry an unused upload is kept.
    pub upload_sweep_grace: std::time::Duration,
    pub limits: Limits,
    /// Deadlines per status: the console's list of late orders.
    pub sla: domain::sla::SlaPolicy,
    /// Where MES's own counters go (e.g. cache hits and misses).
    pub metrics: adapters::metrics::Metrics,
    /// The cache: `memory://` (in-process) or `redis://…`.
    pub cache_url: String,
    /// Put before every cache key and channel (deployments sharing a Redis).
    pub cache_prefix: String,
    /// Mount `GET /mes/api/queue/naive`, the benchmark's baseline (never in production).
    pub bench_naive_queue: bool,
}

/// Upload limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_upload_bytes: u64,
}

/// What every MES handler can reach.
#[derive(Clone)]
pub struct MesState {
    pub db: Db,
    pub store: Arc<dyn ObjectStore>,
    pub relay: Relay,
    pub key: IdentityKey,
    pub limits: Limits,
    /// Present when the store can hand out direct-upload URLs (S3).
    pub presigner: Option<adapters::objects::Presigner>,
    pub upload_url_expiry: std::time::Duration,
    /// Direct uploads larger than this are handed out as presigned parts of this size.
    pub multipart_part_bytes: u64,
    /// The operators' queue: cache, live changes, SLA.
    pub feed: queue::Feed,
}

impl FromRef<MesState> for IdentityKey {
    fn from_ref(s: &MesState) -> IdentityKey {
        s.key.clone()
    }
}

/// The MES service.
pub struct Mes {
    /// Expired direct uploads: how often to sweep, and the grace after expiry.
    upload_sweep: (std::time::Duration, std::time::Duration),
    state: MesState,
    bus: Arc<dyn Bus>,
    sla: domain::sla::SlaPolicy,
    metrics: adapters::metrics::Metrics,
    bench_naive_queue: bool,
}

impl Mes {
    /// Connects to the database (migrating it) and object storage; declares MES's queue.
    pub async fn build(
        config: &MesConfig,
        bus: Arc<dyn Bus>,
        key: IdentityKey,
    ) -> anyhow::Result<Mes> {
        let db = Db::connect_with_replica(
            &config.database_url,
            config.database_replica_url.as_deref(),
            migrations::MIGRATIONS,
        )
        .await?;
        let objects = adapters::objects::open_with(&config.objects_url, &config.s3)?;
        bus.declare(&consumer::QUEUE).await?;
        let relay = Relay::new(db.clone(), bus.clone(), "mes");
        let cache = adapters::cache::open(&config.cache_url, &config.cache_prefix).await?;
        let feed = queue::Feed::new(
            db.clone(),
            cache,
            config.sla.clone(),
            config.metrics.clone(),
        );
        Ok(Mes {
            bench_naive_queue: config.bench_naive_queue,
            upload_sweep: (config.upload_sweep_every, config.upload_sweep_grace),
            state: MesState {
                db,
                store: objects.store,
                relay,
                key,
                limits: config.limits,
                presigner: objects.presigner,
                upload_url_expiry: config.upload_url_expiry,
                multipart_part_bytes: config.multipart_part_bytes,
                feed,
            },
            bus,
            sla: config.sla.clone(),
            metrics: config.metrics.clone(),
        })
    }

    pub fn state(&self) -> &MesState {
        &self.state
    }

    /// The metrics MES counts in.
    pub fn metrics(&self) -> &adapters::metrics::Metrics {
        &self.metrics
    }

    /// Starts the outbox relay and the queue's listener (supervised by
    /// `tasks`: restarted if they die) and the event consumer. Dropping the
    /// returned handles stops the tasks.
    pub async fn start(
        &self,
        tasks: &adapters::tasks::Tasks,
    ) -> anyhow::Result<Vec<adapters::tasks::Supervised>> {
        let (relay, feed) = (self.state.relay.clone(), self.state.feed.clone());
        let mut running = vec![
            tasks.spawn("mes_outbox_relay", move || relay.clone().run()),
            tasks.spawn("mes_queue_listener", move || feed.clone().listen()),
        ];
        let (every, grace) = self.upload_sweep;
        if !every.is_zero() {
            let (state, metrics) = (self.state.clone(), self.metrics.clone());
            running.push(tasks.spawn("mes_upload_sweep", move || {
                uploads::sweep_forever(state.clone(), every, grace, metrics.clone())
            }));
        }
        let consumer = consumer::MesConsumer {
            db: self.state.db.clone(),
            relay: self.state.relay.clone(),
            feed: Some(self.state.feed.clone()),
        };
        self.bus
            .consume(consumer::QUEUE.name, 1, Arc::new(consumer))
            .await?;
        Ok(running)
    }

    /// Endpoints for our own processes (reconciliation); mounted only when MES
    /// runs as its own process.
    pub fn internal_router(&self) -> Router {
        Router::new()
            .route("/internal/orders/views", post(internal::views))
            .with_state(self.state.clone())
    }

    /// `/api/v1/models`, `/api/v1/materials`, `/upload`, `/mes/*`.
    pub fn router(&self) -> Router {
        // Room for the multipart envelope around the largest allowed file.
        let body_limit =
            DefaultBodyLimit::max(self.state.limits.max_upload_bytes as usize + 1024 * 1024);
        let router = Router::new()
            .route(
                "/api/v1/models",
                post(api::upload_model).layer(body_limit.clone()),
            )
            .route("/api/v1/uploads", post(uploads::create))
            .route("/api/v1/models/{id}/preview.png", get(api::preview))
            .route("/api/v1/materials", get(api::list_materials))
            .route(
                "/upload",
                get(console::upload_form)
                    .post(console::upload)
                    .layer(body_limit),
            )
            .route(
                "/crm/materials",
                get(catalogue::show).post(catalogue::create),
            )
            .route("/crm/materials/{code}", post(catalogue::update))
            .route(
                "/mes/api/materials/{code}",
                axum::routing::put(catalogue::put),
            )
            .route("/mes", get(console::console))
            .route("/mes/static/queue.js", get(live::script))
            .route("/mes/orders/{id}", get(console::order))
            .route("/mes/orders/{id}/take", post(console::take))
            .route("/mes/orders/{id}/release", post(console::release))
            .route("/mes/orders/{id}/reassign", post(console::reassign))
            .route("/mes/orders/{id}/status", post(console::set_status))
            .route("/mes/api/queue", get(api::get_queue))
            .route("/mes/api/queue/events", get(live::events))
            .route("/mes/api/operators", get(api::operators))
            .route("/mes/api/orders/{id}", get(api::get_order))
            .route("/mes/api/orders/{id}/take", post(api::take))
            .route("/mes/api/orders/{id}/release", post(api::release))
            .route("/mes/api/orders/{id}/reassign", post(api::reassign))
            .route("/mes/api/orders/{id}/status", post(api::set_status));
        // The benchmark's baseline: only when asked for (scripts/bench-queue).
        let router = if self.bench_naive_queue {
            router.route("/mes/api/queue/naive", get(api::get_queue_naive))
        } else {
            router
        };
        router
            .with_state(self.state.clone())
            .merge(sla::router(sla::LateOrders {
                db: self.state.db.clone(),
                policy: self.sla.clone(),
                key: self.state.key.clone(),
            }))
    }
}
