//! The all-in-one application: every service in one process, behind the
//! gateway, on the embedded profile by default.

use crate::config::Config;
use adapters::Bus;
use adapters::bus::EmbeddedBus;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use crm::{Crm, CrmConfig};
use mes::{Limits, Mes, MesConfig};
use pricing::{Pricing, PricingConfig};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use web::IdentityKey;

/// A built platform, bound to its port, not yet serving.
pub struct Application {
    listener: TcpListener,
    router: Router,
    bus: Arc<dyn Bus>,
    crm: Crm,
    mes: Mes,
    pricing: Pricing,
    pub demo: Option<crate::demo::DemoAccounts>,
}

#[derive(Clone)]
struct Health {
    crm: adapters::Db,
    mes: adapters::Db,
    bus: Arc<dyn Bus>,
}

async fn ready(State(h): State<Health>) -> impl IntoResponse {
    let crm = h.crm.ping().await;
    let mes = h.mes.ping().await;
    let bus = h.bus.depths().await;
    let ok = crm.is_ok() && mes.is_ok() && bus.is_ok();
    let show = |r: Result<(), String>| match r {
        Ok(()) => json!("ok"),
        Err(e) => json!(e),
    };
    let body = json!({
        "status": if ok { "ready" } else { "not_ready" },
        "checks": {
            "crm_database": show(crm.map_err(|e| e.to_string())),
            "mes_database": show(mes.map_err(|e| e.to_string())),
            "bus": show(bus.map(|_| ()).map_err(|e| e.to_string())),
        }
    });
    (
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(body),
    )
}

impl Application {
    /// Opens every store, migrates, declares queues, seeds demo accounts on an
    /// empty start, and binds the listener (port 0 picks a free one).
    pub async fn build(config: &Config) -> anyhow::Result<Application> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| anyhow::anyhow!("creating data dir {}: {e}", config.data_dir.display()))?;
        let key = IdentityKey::new(&config.identity_secret()?);
        let bus_url = config.bus_url();
        anyhow::ensure!(
            bus_url.starts_with("sqlite:"),
            "bus URL '{bus_url}': only the embedded bus (sqlite://…) is available"
        );
        let bus: Arc<dyn Bus> = EmbeddedBus::open(&bus_url).await?;
        let crm = Crm::build(
            &CrmConfig {
                database_url: config.crm_database_url(),
                cookie_secure: config.cookie_secure,
            },
            bus.clone(),
            key.clone(),
        )
        .await?;
        let mes = Mes::build(
            &MesConfig {
                database_url: config.mes_database_url(),
                objects_url: config.objects_url(),
                s3: config.s3_options(),
                upload_url_expiry: config.upload_url_expiry(),
                limits: Limits {
                    max_upload_bytes: config.limits.max_upload_bytes,
                },
            },
            bus.clone(),
            key.clone(),
        )
        .await?;
        let pricing = Pricing::build(
            &PricingConfig {
                objects_url: config.objects_url(),
                s3: config.s3_options(),
                workers: config.pricing.workers,
                rules: config.pricing.rules.clone(),
                limits: geometry::Limits {
                    max_bytes: config.limits.max_upload_bytes,
                    max_triangles: config.limits.max_triangles,
                },
            },
            bus.clone(),
        )
        .await?;
        let demo = if config.demo {
            crate::demo::ensure(&crm.accounts(), &config.data_dir).await?
        } else {
            None
        };
        let health = Health {
            crm: crm.db().clone(),
            mes: mes.state().db.clone(),
            bus: bus.clone(),
        };
        let services = Router::new()
            .merge(crm.router())
            .merge(mes.router())
            .merge(web::assets::router())
            .merge(
                Router::new()
                    .route(
                        "/health/live",
                        get(|| async { Json(json!({ "status": "live" })) }),
                    )
                    .route("/health/ready", get(ready))
                    .with_state(health),
            );
        let router = gateway::wrap(services, Arc::new(crm.accounts()), key);
        let listener = TcpListener::bind(&config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
        Ok(Application {
            listener,
            router,
            bus,
            crm,
            mes,
            pricing,
            demo,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound")
    }

    /// The people registry (tests and commands create accounts through it).
    pub fn accounts(&self) -> crm::accounts::Accounts {
        self.crm.accounts()
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// Serves until `shutdown` resolves, then stops accepting, drains the consumers
    /// and returns.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let crm_relay = self.crm.start().await?;
        let mes_relay = self.mes.start().await?;
        self.pricing.start().await?;
        tracing::info!(addr = %self.local_addr(), "serving");
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await?;
        tracing::info!("HTTP stopped; draining consumers");
        self.bus.shutdown().await;
        crm_relay.abort();
        mes_relay.abort();
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
