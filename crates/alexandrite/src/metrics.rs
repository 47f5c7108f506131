//! `/metrics` on every role (Prometheus text), and the middleware that counts
//! every HTTP request by route template, method and status.
//!
//! Who may read it: on the `metrics.listen` listener, anyone who reaches it
//! (only Prometheus should); on the main listener, the holder of
//! `metrics.token`, or anyone if this is the all-in-one process on a loopback
//! address with no metrics listener of its own (`cargo run`); anyone else is
//! answered 404, like any unknown path.
//!
//! Counters and histograms are recorded as things happen; the gauges that
//! describe state — orders by status, their age and SLA standing, outbox
//! backlogs, queue depths and dead letters, database pools — are queried from
//! this process's own databases and bus at scrape time.

use crate::app::Role;
use adapters::metrics::{CONTENT_TYPE, Metrics};
use adapters::{Bus, Db};
use axum::Router;
use axum::extract::{MatchedPath, OriginalUri, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use domain::sla::SlaPolicy;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::Instant;

/// What one process's `/metrics` reports on besides its counters.
pub struct Scrape {
    pub metrics: Metrics,
    /// Each service's database in this process, by service name.
    pub databases: Vec<(&'static str, Db)>,
    pub bus: Option<Arc<dyn Bus>>,
    pub sla: SlaPolicy,
}

/// Who may read `/metrics` on a listener.
#[derive(Clone)]
pub enum Access {
    /// Anyone who reaches the listener.
    Open,
    /// Only `Authorization: Bearer <token>`.
    Token(Arc<SecretString>),
    /// No one (404).
    Refused,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Access::Open => "Open",
            Access::Token(_) => "Token(***)",
            Access::Refused => "Refused",
        })
    }
}

impl Access {
    /// `/metrics` on the main listener, bound to `main`: with a token, for its
    /// holder; open only in the all-in-one process on loopback without a
    /// metrics listener of its own; otherwise refused. A process run as one
    /// role serves metrics on `metrics.listen` (or to the token) only.
    pub fn on_main(
        role: Role,
        main: std::net::SocketAddr,
        metrics_listener: bool,
        token: Option<&SecretString>,
    ) -> Access {
        match token {
            Some(t) => Access::Token(Arc::new(t.clone())),
            None if role == Role::All && !metrics_listener && main.ip().is_loopback() => {
                Access::Open
            }
            None => Access::Refused,
        }
    }

    fn admits(&self, headers: &HeaderMap) -> bool {
        match self {
            Access::Open => true,
            Access::Refused => false,
            Access::Token(token) => headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
                .is_some_and(|given| {
                    same(given.trim().as_bytes(), token.expose_secret().as_bytes())
                }),
        }
    }
}

/// Equal, in a time that does not depend on where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET /metrics`, for whom `access` admits; anyone else gets what an
/// unknown path answers (`key` checks the identity its page frame shows).
pub fn router(scrape: Arc<Scrape>, access: Access, key: web::IdentityKey) -> Router {
    Router::new()
        .route("/metrics", get(serve))
        .with_state((scrape, access, key))
}

async fn serve(
    State((s, access, key)): State<(Arc<Scrape>, Access, web::IdentityKey)>,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    if !access.admits(&headers) {
        // Not "forbidden": the public is not told there is anything here.
        return web::extract::not_found(&key, &headers, &uri);
    }
    let text = s.metrics.scrape(|m| fill(s.clone(), m)).await;
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}

/// Sets the scrape-time gauges; a source that cannot answer is logged and
/// left out (its gauges disappear), the rest is still reported.
async fn fill(s: Arc<Scrape>, m: Metrics) {
    let now = domain::to_ms(domain::now());
    let limits: Vec<(&str, i64)> = domain::OrderStatus::ALL
        .iter()
        .filter_map(|st| s.sla.limit_ms(*st).map(|ms| (st.as_str(), ms)))
        .collect();
    m.set_sla_limits(&limits);
    for (service, db) in &s.databases {
        match adapters::sla::status_stats(db.any_reader(), &s.sla, now).await {
            Ok(stats) => m.set_orders(service, now, &stats),
            Err(e) => {
                tracing::warn!(service, error = %format!("{e:#}"), "metrics: orders not counted")
            }
        }
        match adapters::outbox::backlog(db).await {
            Ok((n, oldest)) => m.set_outbox(service, now, n, oldest),
            Err(e) => tracing::warn!(service, error = %e, "metrics: outbox not counted"),
        }
        let pool = db.pool();
        m.set_pool(
            service,
            pool.size(),
            pool.num_idle(),
            pool.options().get_max_connections(),
        );
    }
    if let Some(bus) = &s.bus {
        match bus.stats().await {
            Ok(queues) => m.set_queues(&queues),
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "metrics: queues not counted"),
        }
    }
}

/// Which service a request belongs to, for the `service` label: the role of
/// a single-role process; in the all-in-one process, the service the gateway
/// would route the path to.
fn service_of(role: Role, path: &str) -> &'static str {
    match role {
        Role::Gateway => "gateway",
        Role::Crm => "crm",
        Role::Mes => "mes",
        Role::Pricing => "pricing",
        Role::Notifier => "notifier",
        Role::All if path == "/metrics" || path.starts_with("/health/") => "platform",
        Role::All => match gateway::route(path) {
            Some(gateway::Upstream::Mes) => "mes",
            Some(gateway::Upstream::Crm) => "crm",
            Some(gateway::Upstream::Notifier) => "notifier",
            None => "platform",
        },
    }
}

/// The route template of a request (never the raw path, whose ids would make
/// a series per order): the matched route, or where the gateway forwards it.
fn route_of(role: Role, matched: Option<&MatchedPath>, path: &str) -> String {
    match (matched, role) {
        (Some(m), _) => m.as_str().to_string(),
        (None, Role::Gateway) => match gateway::route(path) {
            Some(gateway::Upstream::Crm) => "proxy:crm".into(),
            Some(gateway::Upstream::Mes) => "proxy:mes".into(),
            Some(gateway::Upstream::Notifier) => "proxy:notifier".into(),
            None => "unmatched".into(),
        },
        (None, _) => "unmatched".into(),
    }
}

#[derive(Clone)]
struct Counting {
    metrics: Metrics,
    role: Role,
}

async fn count(State(c): State<Counting>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let route = route_of(c.role, req.extensions().get::<MatchedPath>(), &path);
    let method = req.method().as_str().to_string();
    let started = Instant::now();
    let resp = next.run(req).await;
    c.metrics.http_request(
        service_of(c.role, &path),
        &method,
        &route,
        resp.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    resp
}

/// Counts every request `router` answers (add it last, over every route).
pub fn track(router: Router, metrics: Metrics, role: Role) -> Router {
    router.layer(middleware::from_fn_with_state(
        Counting { metrics, role },
        count,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_labelled_by_service_and_never_by_raw_path() {
        assert_eq!(service_of(Role::All, "/api/v1/models"), "mes");
        assert_eq!(service_of(Role::All, "/api/v1/orders/x"), "crm");
        assert_eq!(service_of(Role::All, "/metrics"), "platform");
        assert_eq!(service_of(Role::Pricing, "/metrics"), "pricing");
        assert_eq!(route_of(Role::Gateway, None, "/mes/api/queue"), "proxy:mes");
        assert_eq!(route_of(Role::Crm, None, "/no/such/page"), "unmatched");
    }

    #[test]
    fn metrics_are_open_only_on_the_all_in_one_loopback_listener_or_to_the_token() {
        let local: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let local6: std::net::SocketAddr = "[::1]:8080".parse().unwrap();
        let public: std::net::SocketAddr = "0.0.0.0:80".parse().unwrap();
        let open = |a: &Access| matches!(a, Access::Open);
        assert!(open(&Access::on_main(Role::All, local, false, None)));
        assert!(open(&Access::on_main(Role::All, local6, false, None)));
        for (role, addr, listener) in [
            (Role::All, public, false),
            (Role::All, local, true),
            (Role::Gateway, local, false),
            (Role::Crm, local, false),
            (Role::Pricing, public, false),
        ] {
            let a = Access::on_main(role, addr, listener, None);
            assert!(
                matches!(a, Access::Refused),
                "{role:?} {addr} {listener}: {a:?}"
            );
        }
        let token = SecretString::from("a-long-metrics-token");
        let a = Access::on_main(Role::All, local, false, Some(&token));
        assert_eq!(format!("{a:?}"), "Token(***)");
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, v.parse().unwrap());
            h
        };
        assert!(a.admits(&with("Bearer a-long-metrics-token")));
        for wrong in [
            "Bearer a-long-metrics-toke",
            "Bearer a-long-metrics-tokenx",
            "Bearer ",
            "Basic a-long-metrics-token",
            "a-long-metrics-token",
        ] {
            assert!(!a.admits(&with(wrong)), "{wrong}");
        }
        assert!(!a.admits(&HeaderMap::new()));
        assert!(!Access::Refused.admits(&with("Bearer a-long-metrics-token")));
    }
}
