//! The application: every service in one process behind the gateway (role
//! `all`, the default, on the embedded profile), or one role per process
//! (`gateway`, `crm`, `mes`, `pricing`, `notifier`) on the production profile.

use crate::config::Config;
use adapters::bus::EmbeddedBus;
use adapters::{Bus, Db};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use crm::{Crm, CrmConfig};
use mes::{Limits, Mes, MesConfig};
use notifier::{Notifier, NotifierConfig};
use pricing::{Pricing, PricingConfig};
use serde_json::{Map, Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use web::IdentityKey;

/// What one process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Every service in this process.
    All,
    /// The API gateway: authenticates and forwards to crm and mes.
    Gateway,
    Crm,
    Mes,
    /// Pricing workers.
    Pricing,
    /// E-mail and B2B webhooks about orders.
    Notifier,
}

impl Role {
    /// The service this process reports as in logs and traces (`service.name`).
    pub fn service(self) -> &'static str {
        match self {
            Role::All => "alexandrite",
            Role::Gateway => "gateway",
            Role::Crm => "crm",
            Role::Mes => "mes",
            Role::Pricing => "pricing",
            Role::Notifier => "notifier",
        }
    }
}

/// A built process, bound to its port, not yet serving.
pub struct Application {
    listener: TcpListener,
    router: Router,
    /// `metrics.listen`: a listener serving only `/metrics`.
    metrics_server: Option<(TcpListener, Router)>,
    /// Who may read `/metrics` on the main listener.
    metrics_access: crate::metrics::Access,
    bus: Option<Arc<dyn Bus>>,
    crm: Option<Crm>,
    mes: Option<Mes>,
    pricing: Option<Pricing>,
    notifier: Option<Notifier>,
    /// Compares CRM and MES periodically (in `all`, and in the gateway between processes).
    reconciler: Option<(crate::reconcile::Source, crate::reconcile::Source)>,
    reconcile: crate::config::ReconcileSection,
    pub demo: Option<crate::demo::DemoAccounts>,
    /// This process's metrics (served on `/metrics`, see [`crate::metrics`]).
    metrics: adapters::metrics::Metrics,
    /// Background tasks, restarted if they die.
    tasks: adapters::tasks::Tasks,
}

/// A dependency the readiness probe checks.
#[derive(Clone)]
enum Check {
    Db(Db),
    Bus(Arc<dyn Bus>),
    Cache(Arc<dyn adapters::Cache>),
    /// This process's supervised background tasks (down between a failure and its restart).
    Tasks(adapters::tasks::Tasks),
    /// Another process's `/health/ready`.
    Upstream(String),
}

async fn ready(State(checks): State<Arc<Vec<(&'static str, Check)>>>) -> impl IntoResponse {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .build()
        .expect("client");
    let mut report = Map::new();
    let mut ok = true;
    for (name, check) in checks.iter() {
        let result: Result<(), String> = match check {
            Check::Db(db) => db.ping().await.map_err(|e| e.to_string()),
            Check::Bus(bus) => bus.depths().await.map(|_| ()).map_err(|e| e.to_string()),
            Check::Cache(cache) => cache.ping().await.map_err(|e| e.to_string()),
            Check::Tasks(tasks) => tasks.check(),
            Check::Upstream(url) => match client.get(format!("{url}/health/ready")).send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("{url} answered {}", r.status())),
                Err(e) => Err(format!("{url} unreachable: {e}")),
            },
        };
        // The cache is an optimisation: without it the queue reads the database.
        let optional = matches!(check, Check::Cache(_));
        ok &= result.is_ok() || optional;
        let result = result.map_err(|e| {
            if optional {
                format!("degraded (the queue reads the database): {e}")
            } else {
                e
            }
        });
        report.insert(
            name.to_string(),
            result.map_or_else(Value::String, |_| json!("ok")),
        );
    }
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "status": if ok { "ready" } else { "not_ready" }, "checks": report })),
    )
}

fn health(checks: Vec<(&'static str, Check)>) -> Router {
    Router::new()
        .route(
            "/health/live",
            get(|| async { Json(json!({ "status": "live" })) }),
        )
        .route("/health/ready", get(ready))
        .with_state(Arc::new(checks))
}

async fn open_bus(
    config: &Config,
    role: Role,
    metrics: &adapters::metrics::Metrics,
) -> anyhow::Result<Arc<dyn Bus>> {
    let url = config.bus_url();
    anyhow::ensure!(
        role == Role::All || !url.starts_with("sqlite:"),
        "running the {role:?} role as its own process needs a shared broker: set bus.url \
         (ALEXANDRITE_BUS__URL) to amqp://…; the embedded bus serves only `--role all`"
    );
    adapters::bus::open_with(&url, metrics.clone()).await
}

/// The bus for administration commands (`dlq`), beside running processes: the
/// embedded bus is attached without touching deliveries in flight.
pub async fn admin_bus(config: &Config) -> anyhow::Result<Arc<dyn Bus>> {
    let url = config.bus_url();
    let bus: Arc<dyn Bus> = if url.starts_with("sqlite:") {
        EmbeddedBus::attach(&url).await?
    } else {
        adapters::bus::open(&url).await?
    };
    // The platform's queues (declaring is idempotent): a broker lists only queues it was told of.
    for q in [
        &crm::consumer::QUEUE,
        &mes::consumer::QUEUE,
        &pricing::QUEUE,
        &notifier::QUEUE,
    ] {
        bus.declare(q).await?;
    }
    Ok(bus)
}

fn crm_config(config: &Config, metrics: &adapters::metrics::Metrics) -> CrmConfig {
    CrmConfig {
        database_url: config.crm_database_url(),
        database_replica_url: config.crm.database_replica_url.clone(),
        cookie_secure: config.cookie_secure,
        trace_url: config.telemetry.trace_url.clone(),
        sla: config.sla.clone(),
        metrics: metrics.clone(),
        cache_url: config.cache.url.clone(),
        cache_prefix: config.cache.prefix.clone(),
        abuse: config.abuse.clone(),
    }
}

/// The gateway's edge: client addresses and the API-key throttle, counting
/// in the shared cache.
async fn edge(
    config: &Config,
    metrics: &adapters::metrics::Metrics,
) -> anyhow::Result<gateway::Edge> {
    let cache = adapters::cache::open(&config.cache.url, &config.cache.prefix).await?;
    gateway::Edge::new(cache, &config.abuse, metrics.clone())
}

fn mes_config(config: &Config, metrics: &adapters::metrics::Metrics) -> MesConfig {
    MesConfig {
        sla: config.sla.clone(),
        metrics: metrics.clone(),
        database_url: config.mes_database_url(),
        database_replica_url: config.mes.database_replica_url.clone(),
        objects_url: config.objects_url(),
        s3: config.s3_options(),
        upload_url_expiry: config.upload_url_expiry(),
        multipart_part_bytes: config.multipart_part_bytes(),
        upload_sweep_every: config.upload_sweep_every(),
        upload_sweep_grace: config.upload_sweep_grace(),
        limits: Limits {
            max_upload_bytes: config.limits.max_upload_bytes,
        },
        cache_url: config.cache.url.clone(),
        cache_prefix: config.cache.prefix.clone(),
        bench_naive_queue: config.mes.bench_naive_queue,
    }
}

fn pricing_config(config: &Config, metrics: &adapters::metrics::Metrics) -> PricingConfig {
    PricingConfig {
        metrics: metrics.clone(),
        objects_url: config.objects_url(),
        s3: config.s3_options(),
        workers: config.pricing.workers,
        rules: config.pricing.rules.clone(),
        memory_budget_mib: config.pricing.memory_budget_mib,
        casting: config.pricing.casting.clone(),
        limits: geometry::Limits {
            max_bytes: config.limits.max_upload_bytes,
            max_triangles: config.limits.max_triangles,
        },
    }
}

fn notifier_config(config: &Config, metrics: &adapters::metrics::Metrics) -> NotifierConfig {
    use secrecy::ExposeSecret;
    let n = &config.notifier;
    NotifierConfig {
        database_url: config.notifier_database_url(),
        smtp_url: n.smtp_url.as_ref().map(|s| s.expose_secret().to_string()),
        mail_dir: config.mail_dir(),
        mail_from: n.mail_from.clone(),
        allow_private_webhooks: n.allow_private_webhooks,
        retry: notifier::deliveries::RetryPolicy {
            base: std::time::Duration::from_millis(n.retry_base_ms),
            max: std::time::Duration::from_millis(n.retry_max_ms),
            max_attempts: n.max_attempts,
        },
        webhook_timeout: std::time::Duration::from_millis(n.webhook_timeout_ms),
        metrics: metrics.clone(),
    }
}

impl Application {
    /// Every service in one process (role `all`).
    pub async fn build(config: &Config) -> anyhow::Result<Application> {
        Self::build_role(config, Role::All).await
    }

    /// Opens what the role needs, migrates, declares queues, seeds demo accounts
    /// on an empty start (where the CRM runs), and binds the listener (port 0
    /// picks a free one).
    pub async fn build_role(config: &Config, role: Role) -> anyhow::Result<Application> {
        // Keys, databases and customers' files: the directory is ours alone
        // when we make it.
        adapters::private::create_dir(&config.data_dir)
            .map_err(|e| anyhow::anyhow!("creating data dir {}: {e}", config.data_dir.display()))?;
        let key = IdentityKey::new(&config.identity_secret()?);
        let metrics = adapters::metrics::Metrics::new();
        let bus = match role {
            Role::Gateway => None,
            _ => Some(open_bus(config, role, &metrics).await?),
        };
        let runs = |r: Role| role == Role::All || role == r;
        let crm = match (runs(Role::Crm), &bus) {
            (true, Some(bus)) => {
                Some(Crm::build(&crm_config(config, &metrics), bus.clone(), key.clone()).await?)
            }
            _ => None,
        };
        let mes = match (runs(Role::Mes), &bus) {
            (true, Some(bus)) => {
                Some(Mes::build(&mes_config(config, &metrics), bus.clone(), key.clone()).await?)
            }
            _ => None,
        };
        let pricing = match (runs(Role::Pricing), &bus) {
            (true, Some(bus)) => {
                Some(Pricing::build(&pricing_config(config, &metrics), bus.clone()).await?)
            }
            _ => None,
        };
        let notifier = match (runs(Role::Notifier), &bus) {
            (true, Some(bus)) => Some(
                Notifier::build(&notifier_config(config, &metrics), bus.clone(), key.clone())
                    .await?,
            ),
            _ => None,
        };
        // The CRM publishes order.updated whether or not a notifier process is
        // up yet: its queue exists from the CRM's start, so the CRM's outbox
        // never waits on it (the events wait in the queue instead).
        if let (true, Some(bus)) = (runs(Role::Crm), &bus) {
            bus.declare(&notifier::QUEUE).await?;
        }
        let demo = match (&crm, config.demo) {
            (Some(crm), true) => crate::demo::ensure(&crm.accounts(), &config.data_dir).await?,
            _ => None,
        };

        let tasks = adapters::tasks::Tasks::new(metrics.clone());
        let mut checks: Vec<(&'static str, Check)> = vec![("tasks", Check::Tasks(tasks.clone()))];
        if let Some(bus) = &bus {
            checks.push(("bus", Check::Bus(bus.clone())));
        }
        let mut services = Router::new();
        if let Some(crm) = &crm {
            checks.push(("crm_database", Check::Db(crm.db().clone())));
            services = services.merge(crm.router()).merge(web::assets::router());
        }
        if let Some(mes) = &mes {
            checks.push(("mes_database", Check::Db(mes.state().db.clone())));
            checks.push(("cache", Check::Cache(mes.state().feed.cache.clone())));
            services = services.merge(mes.router());
        }
        if let Some(notifier) = &notifier {
            checks.push(("notifier_database", Check::Db(notifier.db().clone())));
            services = services.merge(notifier.router());
        }
        // A path no service owns: the 404 page to a browser, our JSON error to a program.
        let not_found_key = key.clone();
        services = services.fallback(
            move |uri: axum::extract::OriginalUri, headers: axum::http::HeaderMap| {
                let key = not_found_key.clone();
                async move { web::extract::not_found(&key, &headers, &uri) }
            },
        );
        let router = match role {
            Role::All => {
                let auth = Arc::new(crm.as_ref().expect("all runs the crm").accounts());
                let edge = edge(config, &metrics).await?;
                gateway::wrap_with(services, auth, key.clone(), edge).merge(health(checks))
            }
            Role::Gateway => {
                let (crm_url, mes_url) = (&config.gateway.crm_url, &config.gateway.mes_url);
                let notifier_url = &config.gateway.notifier_url;
                checks.push((
                    "crm",
                    Check::Upstream(crm_url.trim_end_matches('/').to_string()),
                ));
                checks.push((
                    "mes",
                    Check::Upstream(mes_url.trim_end_matches('/').to_string()),
                ));
                // The notifier is not checked: without it the platform still
                // takes and makes orders (only /api/v1/webhooks* answer 502).
                let auth = Arc::new(gateway::HttpAuthenticator::new(crm_url, key.clone()));
                gateway::wrap_with(
                    gateway::proxy_router(crm_url, mes_url, notifier_url),
                    auth,
                    key.clone(),
                    edge(config, &metrics).await?,
                )
                .merge(health(checks))
            }
            // A service's own routes are reached through the gateway, which has
            // already authenticated the caller and signed the identity.
            // Each request is a span continuing the gateway's trace.
            Role::Crm => {
                let internal = crm.as_ref().expect("crm role").internal_router();
                gateway::traced(services.merge(internal)).merge(health(checks))
            }
            Role::Mes => {
                let internal = mes.as_ref().expect("mes role").internal_router();
                gateway::traced(services.merge(internal)).merge(health(checks))
            }
            Role::Notifier => gateway::traced(services).merge(health(checks)),
            Role::Pricing => services.merge(health(checks)),
        };
        let mut databases = vec![];
        if let Some(crm) = &crm {
            databases.push(("crm", crm.db().clone()));
        }
        if let Some(mes) = &mes {
            databases.push(("mes", mes.state().db.clone()));
        }
        let scrape = Arc::new(crate::metrics::Scrape {
            metrics: metrics.clone(),
            databases,
            bus: bus.clone(),
            sla: config.sla.clone(),
        });
        let listener = TcpListener::bind(&config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
        let metrics_listener =
            match &config.metrics.listen {
                Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
                    anyhow::anyhow!("cannot listen on {addr} (metrics.listen): {e}")
                })?),
                None => None,
            };
        use crate::metrics::Access;
        let access = Access::on_main(
            role,
            listener.local_addr()?,
            metrics_listener.is_some(),
            config.metrics.token.as_ref(),
        );
        let metrics_server = metrics_listener.map(|l| {
            let only_metrics = crate::metrics::router(scrape.clone(), Access::Open, key.clone());
            (
                l,
                crate::metrics::track(only_metrics, metrics.clone(), role),
            )
        });
        let router = crate::metrics::track(
            router.merge(crate::metrics::router(scrape, access.clone(), key.clone())),
            metrics.clone(),
            role,
        );
        // Security headers on every response this listener sends.
        let router = gateway::headers::secure(router, config.cookie_secure);
        use crate::reconcile::Source;
        let reconciler = match (role, &crm, &mes) {
            (Role::All, Some(c), Some(m)) => Some((
                Source::Local(c.db().clone()),
                Source::Local(m.state().db.clone()),
            )),
            (Role::Gateway, _, _) => Some((
                Source::Remote {
                    url: config.gateway.crm_url.clone(),
                    key: key.clone(),
                },
                Source::Remote {
                    url: config.gateway.mes_url.clone(),
                    key: key.clone(),
                },
            )),
            _ => None,
        };
        Ok(Application {
            listener,
            router,
            metrics_server,
            metrics_access: access,
            bus,
            crm,
            mes,
            pricing,
            notifier,
            reconciler,
            reconcile: config.reconcile.clone(),
            demo,
            metrics,
            tasks,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound")
    }

    /// The people registry, where the CRM runs in this process.
    pub fn accounts(&self) -> crm::accounts::Accounts {
        self.crm
            .as_ref()
            .expect("the CRM runs in this process")
            .accounts()
    }

    /// This process's metrics.
    pub fn metrics(&self) -> adapters::metrics::Metrics {
        self.metrics.clone()
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// Where this process's `/metrics` can be read, for the start-up message.
    pub fn metrics_where(&self) -> String {
        use crate::metrics::Access;
        let main = self.local_addr();
        match (self.metrics_addr(), &self.metrics_access) {
            (Some(m), _) => format!("Metrics on http://{m}/metrics"),
            (None, Access::Open) => format!("Metrics on http://{main}/metrics"),
            (None, Access::Token(_)) => {
                format!("Metrics on http://{main}/metrics (Authorization: Bearer <metrics.token>)")
            }
            (None, Access::Refused) => {
                "Metrics: not served (set metrics.listen or metrics.token)".into()
            }
        }
    }

    /// Where `metrics.listen` serves `/metrics`, if it is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_server
            .as_ref()
            .map(|(l, _)| l.local_addr().expect("bound"))
    }

    /// Serves until `shutdown` resolves, then stops accepting, drains the consumers
    /// and returns.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let mut running = vec![];
        if let Some(crm) = &self.crm {
            running.extend(crm.start(&self.tasks).await?);
        }
        if let Some(mes) = &self.mes {
            running.extend(mes.start(&self.tasks).await?);
        }
        if let Some(pricing) = &self.pricing {
            pricing.start().await?;
        }
        if let Some(notifier) = &self.notifier {
            running.push(notifier.start(&self.tasks).await?);
        }
        let addr = self.local_addr();
        if let (Some((c, m)), secs) = (self.reconciler, self.reconcile.interval_seconds) {
            if secs > 0 {
                let every = std::time::Duration::from_secs(secs);
                let grace = std::time::Duration::from_secs(self.reconcile.grace_seconds);
                let metrics = self.metrics.clone();
                running.push(self.tasks.spawn("reconciliation", move || {
                    crate::reconcile::periodically(
                        c.clone(),
                        m.clone(),
                        every,
                        grace,
                        metrics.clone(),
                    )
                }));
            }
        }
        tracing::info!(%addr, "serving");
        let metrics_server = self.metrics_server.map(|(listener, router)| {
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router).await {
                    tracing::error!(error = %e, "the metrics listener stopped");
                }
            })
        });
        // Each request knows its TCP peer: the throttles count by client address.
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, service)
            .with_graceful_shutdown(shutdown)
            .await?;
        if let Some(m) = metrics_server {
            m.abort();
        }
        tracing::info!("HTTP stopped; draining consumers");
        if let Some(bus) = &self.bus {
            bus.shutdown().await;
        }
        for task in running {
            task.abort();
        }
        tracing::info!("stopped");
        Ok(())
    }

    /// Serves until SIGINT or SIGTERM.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
