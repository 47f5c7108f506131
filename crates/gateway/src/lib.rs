//! The API gateway: every external request passes here. It gives the request an
//! id, authenticates it (session cookie for browsers, bearer API key for
//! programs) and passes the caller on to the services in a signed header. In the
//! all-in-one process it wraps the merged router; it is not a second hop.

pub mod headers;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use std::sync::Arc;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use web::identity::SESSION_COOKIE;
use web::identity::{KeyRefused, Unavailable};
use web::{ApiError, Authenticator, IdentityKey};

pub mod csrf;
pub mod throttle;
pub use throttle::Edge;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(Clone)]
struct Gate {
    auth: Arc<CachedKeys>,
    key: IdentityKey,
    edge: Edge,
}

/// 503 with Retry-After: the caller is not at fault and should try again.
fn unavailable() -> Response {
    let mut r =
        ApiError::Unavailable("authentication is unavailable for a moment; try again".into())
            .into_response();
    r.headers_mut().insert(
        header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("1"),
    );
    r
}

/// Authenticates one request and stamps the signed identity on it.
async fn authenticate(State(gate): State<Gate>, mut req: Request, next: Next) -> Response {
    let client = gate.edge.client(&req);
    let caller = match req.headers().get(header::AUTHORIZATION) {
        Some(value) => {
            let key = value.to_str().ok().and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            });
            match key.map(str::trim) {
                Some(k) if !k.is_empty() => {
                    match gate
                        .edge
                        .api_key(&gate.auth, req.headers(), client, k)
                        .await
                    {
                        Ok(c) => Some(c),
                        Err(refused) => return refused,
                    }
                }
                _ => {
                    return ApiError::BadRequest {
                        code: "bad_authorization",
                        message: "the Authorization header must be 'Bearer <API key>'".into(),
                    }
                    .into_response();
                }
            }
        }
        None => match CookieJar::from_headers(req.headers()).get(SESSION_COOKIE) {
            Some(c) => match gate.auth.by_session(c.value()).await {
                Ok(caller) => caller,
                Err(Unavailable) => return unavailable(),
            },
            None => None,
        },
    };
    gate.key.stamp(req.headers_mut(), caller.as_ref());
    web::client::stamp(&gate.key, req.headers_mut(), client);
    if let Some(c) = &caller {
        tracing::Span::current().record("user_id", tracing::field::display(c.user_id));
    }
    next.run(req).await
}

/// The span of one HTTP request: a child of the caller's W3C `traceparent`
/// when there is one (the gateway's, between processes), else a new trace.
pub fn http_span(req: &Request) -> tracing::Span {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let span = tracing::info_span!("http", otel.name = %format!("{} {}", req.method(), req.uri().path()),
        otel.kind = "server", method = %req.method(), path = %req.uri().path(), request_id = %id,
        user_id = tracing::field::Empty);
    adapters::telemetry::extract(&span, req.headers());
    span
}

/// Serves every request of `router` in its [`http_span`] (a service's own
/// process, behind the gateway).
pub fn traced(router: Router) -> Router {
    router.layer(TraceLayer::new_for_http().make_span_with(http_span))
}

/// Wraps the services' routes with request ids, tracing and authentication.
pub fn wrap(services: Router, auth: Arc<dyn Authenticator>, key: IdentityKey) -> Router {
    wrap_with(services, auth, key, Edge::in_process())
}

/// [`wrap`], with the edge's client addresses and API-key throttle.
pub fn wrap_with(
    services: Router,
    auth: Arc<dyn Authenticator>,
    key: IdentityKey,
    edge: Edge,
) -> Router {
    let auth = Arc::new(CachedKeys::new(auth, KEY_TTL));
    let gate = Gate { auth, key, edge };
    let services = services
        .layer(middleware::from_fn_with_state(gate, authenticate))
        .layer(middleware::from_fn(csrf::guard));
    traced(services)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// How long a resolved API key is believed without asking the registry again.
pub const KEY_TTL: std::time::Duration = std::time::Duration::from_secs(5);
/// At most this many API keys are remembered at once.
const KEYS_REMEMBERED: usize = 10_000;

/// Remembers which caller an API key names for [`KEY_TTL`], in front of the
/// registry of people. Programs (B2B clients, operators' scripts) send their
/// key with every request, and asking the CRM's database each time — or the
/// CRM's process, between processes — cost more than the rest of a cached
/// request. Only keys that resolved are remembered: an invalid key, or a
/// registry that cannot be asked, is asked again next time. Sessions are not
/// remembered, so signing out takes effect at once.
pub struct CachedKeys {
    inner: Arc<dyn Authenticator>,
    ttl: std::time::Duration,
    keys: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, domain::Caller)>>,
}

impl CachedKeys {
    pub fn new(inner: Arc<dyn Authenticator>, ttl: std::time::Duration) -> CachedKeys {
        CachedKeys {
            inner,
            ttl,
            keys: Default::default(),
        }
    }
}

impl CachedKeys {
    /// The caller `key` resolved to within its time, without asking anyone.
    pub fn remembered(&self, key: &str) -> Option<domain::Caller> {
        let keys = self.keys.lock().expect("keys");
        let (at, caller) = keys.get(key)?;
        (at.elapsed() < self.ttl).then(|| caller.clone())
    }
}

#[async_trait::async_trait]
impl Authenticator for CachedKeys {
    async fn by_session(&self, token: &str) -> Result<Option<domain::Caller>, Unavailable> {
        self.inner.by_session(token).await
    }
    async fn by_api_key(&self, key: &str) -> Result<domain::Caller, KeyRefused> {
        if let Some((at, caller)) = self.keys.lock().expect("keys").get(key)
            && at.elapsed() < self.ttl
        {
            return Ok(caller.clone());
        }
        let caller = self.inner.by_api_key(key).await?;
        let mut keys = self.keys.lock().expect("keys");
        if keys.len() >= KEYS_REMEMBERED {
            keys.retain(|_, (at, _)| at.elapsed() < self.ttl);
            if keys.len() >= KEYS_REMEMBERED {
                keys.clear();
            }
        }
        keys.insert(key.to_string(), (std::time::Instant::now(), caller.clone()));
        Ok(caller)
    }
}

/// Resolves credentials by asking the CRM process (`POST /internal/identity`),
/// for a gateway running as its own process.
pub struct HttpAuthenticator {
    crm: String,
    key: IdentityKey,
    client: reqwest::Client,
}

impl HttpAuthenticator {
    pub fn new(crm_url: &str, key: IdentityKey) -> Self {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()
            .expect("client");
        HttpAuthenticator {
            crm: crm_url.trim_end_matches('/').to_string(),
            key,
            client,
        }
    }

    async fn resolve(
        &self,
        body: serde_json::Value,
    ) -> Result<Option<domain::Caller>, Unavailable> {
        let bytes = serde_json::to_vec(&body).expect("json");
        let mut headers = reqwest::header::HeaderMap::new();
        adapters::telemetry::inject(&mut headers);
        let resp = self
            .client
            .post(format!("{}/internal/identity", self.crm))
            .headers(headers)
            .header(web::internal::SIGNATURE, self.key.sign_bytes(&bytes))
            .header("content-type", "application/json")
            .body(bytes)
            .send()
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "identity lookup at the CRM failed");
                Unavailable
            })?;
        match resp.status().as_u16() {
            200 => resp.json().await.map(Some).map_err(|_| Unavailable),
            404 => Ok(None),
            s => {
                tracing::error!(status = s, "identity lookup at the CRM failed");
                Err(Unavailable)
            }
        }
    }
}

#[async_trait::async_trait]
impl Authenticator for HttpAuthenticator {
    async fn by_session(&self, token: &str) -> Result<Option<domain::Caller>, Unavailable> {
        self.resolve(serde_json::json!({ "session": token })).await
    }
    async fn by_api_key(&self, key: &str) -> Result<domain::Caller, KeyRefused> {
        match self.resolve(serde_json::json!({ "api_key": key })).await {
            Ok(Some(c)) => Ok(c),
            Ok(None) => Err(KeyRefused::Invalid),
            Err(Unavailable) => Err(KeyRefused::Unavailable),
        }
    }
}

/// Which service answers a path (the gateway's routing table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    Crm,
    Mes,
    Notifier,
}

/// MES owns models, materials and the production console (including the
/// back office's materials page); the notifier the B2B webhooks; the CRM
/// everything else a person sees.
pub fn route(path: &str) -> Option<Upstream> {
    const MES: &[&str] = &[
        "/api/v1/models",
        "/api/v1/materials",
        "/api/v1/uploads",
        "/upload",
        "/mes",
        "/crm/materials",
    ];
    if path.starts_with("/internal/") {
        return None;
    }
    let under = |p: &str, prefix: &str| p == prefix || p.starts_with(&format!("{prefix}/"));
    Some(if under(path, "/api/v1/webhooks") {
        Upstream::Notifier
    } else if MES.iter().any(|m| under(path, m)) {
        Upstream::Mes
    } else {
        Upstream::Crm
    })
}

#[derive(Clone)]
struct Proxy {
    crm: String,
    mes: String,
    notifier: String,
    client: reqwest::Client,
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "host",
    "content-length",
];

async fn forward(State(proxy): State<Proxy>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let Some(upstream) = route(&path) else {
        return ApiError::NotFound("page").into_response();
    };
    let (base, name) = match upstream {
        Upstream::Crm => (&proxy.crm, "crm"),
        Upstream::Mes => (&proxy.mes, "mes"),
        Upstream::Notifier => (&proxy.notifier, "notifier"),
    };
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut out = proxy
        .client
        .request(req.method().clone(), format!("{base}{pq}"));
    let mut headers = req.headers().clone();
    for h in HOP_BY_HOP {
        headers.remove(*h);
    }
    // The upstream's request span is a child of this hop's span.
    let span = tracing::info_span!("proxy", otel.name = %format!("proxy {name}"), otel.kind = "client",
        upstream = name);
    span.in_scope(|| adapters::telemetry::inject(&mut headers));
    out = out.headers(headers);
    let body = reqwest::Body::wrap_stream(req.into_body().into_data_stream());
    match tracing::Instrument::instrument(out.body(body).send(), span).await {
        Ok(resp) => {
            let mut builder = Response::builder().status(resp.status().as_u16());
            for (k, v) in resp.headers() {
                if !HOP_BY_HOP.contains(&k.as_str()) {
                    builder = builder.header(k, v);
                }
            }
            builder
                .body(axum::body::Body::from_stream(resp.bytes_stream()))
                .unwrap_or_else(|_| {
                    ApiError::Internal(anyhow::anyhow!("bad response from {name}")).into_response()
                })
        }
        Err(e) => {
            tracing::error!(upstream = name, error = %e, "upstream unreachable");
            let body = serde_json::json!({ "error": { "code": "upstream_unavailable",
                "message": format!("the {name} service is not reachable; try again shortly") } });
            (axum::http::StatusCode::BAD_GATEWAY, axum::Json(body)).into_response()
        }
    }
}

/// Every request, authenticated, forwarded to the service that owns its path.
pub fn proxy_router(crm_url: &str, mes_url: &str, notifier_url: &str) -> Router {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    let proxy = Proxy {
        crm: crm_url.trim_end_matches('/').into(),
        mes: mes_url.trim_end_matches('/').into(),
        notifier: notifier_url.trim_end_matches('/').into(),
        client,
    };
    Router::new().fallback(forward).with_state(proxy)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn paths_go_to_the_service_that_owns_them() {
        for p in [
            "/api/v1/models",
            "/api/v1/models/x/preview.png",
            "/api/v1/materials",
            "/upload",
            "/mes",
            "/mes/api/queue",
            "/crm/materials/AG925",
        ] {
            assert_eq!(route(p), Some(Upstream::Mes), "{p}");
        }
        for p in [
            "/",
            "/login",
            "/account/orders/x",
            "/api/v1/orders",
            "/crm",
            "/crm/orders/x",
            "/static/app.css",
            "/mesh",
            "/uploads",
        ] {
            assert_eq!(route(p), Some(Upstream::Crm), "{p}");
        }
        for p in ["/api/v1/webhooks", "/api/v1/webhooks/deliveries"] {
            assert_eq!(route(p), Some(Upstream::Notifier), "{p}");
        }
        assert_eq!(route("/api/v1/webhooksx"), Some(Upstream::Crm));
        assert_eq!(
            route("/internal/identity"),
            None,
            "internal endpoints are never exposed"
        );
    }
}

#[cfg(test)]
mod auth_tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request as HttpRequest, StatusCode};
    use tower::ServiceExt;

    /// The registry of people, down (a restarting CRM or database).
    struct Down;

    #[async_trait::async_trait]
    impl Authenticator for Down {
        async fn by_session(&self, _: &str) -> Result<Option<domain::Caller>, Unavailable> {
            Err(Unavailable)
        }
        async fn by_api_key(&self, _: &str) -> Result<domain::Caller, KeyRefused> {
            Err(KeyRefused::Unavailable)
        }
    }

    /// A registry that counts its lookups and knows one key.
    #[derive(Default)]
    struct Counting(std::sync::atomic::AtomicUsize);

    #[async_trait::async_trait]
    impl Authenticator for Counting {
        async fn by_session(&self, _: &str) -> Result<Option<domain::Caller>, Unavailable> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(None)
        }
        async fn by_api_key(&self, key: &str) -> Result<domain::Caller, KeyRefused> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            match key {
                "alx_good" => Ok(domain::Caller {
                    user_id: uuid::Uuid::now_v7(),
                    role: domain::Role::Operator,
                    org: None,
                    name: "Olga".into(),
                    email: "olga@example.test".into(),
                }),
                _ => Err(KeyRefused::Invalid),
            }
        }
    }

    #[tokio::test]
    async fn a_resolved_key_is_remembered_for_its_time_and_nothing_else_is() {
        let registry = Arc::new(Counting::default());
        let asked = || registry.0.load(std::sync::atomic::Ordering::SeqCst);
        let keys = CachedKeys::new(registry.clone(), std::time::Duration::from_millis(300));
        let first = keys.by_api_key("alx_good").await.unwrap();
        assert_eq!(keys.by_api_key("alx_good").await.unwrap(), first);
        assert_eq!(
            asked(),
            1,
            "the second use of a key is answered from memory"
        );
        for _ in 0..2 {
            assert!(matches!(
                keys.by_api_key("alx_bad").await,
                Err(KeyRefused::Invalid)
            ));
        }
        assert_eq!(asked(), 3, "an invalid key is asked about every time");
        for _ in 0..2 {
            keys.by_session("s").await.unwrap();
        }
        assert_eq!(asked(), 5, "sessions are never remembered");
        tokio::time::sleep(std::time::Duration::from_millis(350)).await;
        keys.by_api_key("alx_good").await.unwrap();
        assert_eq!(asked(), 6, "after its time the key is asked about again");
    }

    #[tokio::test]
    async fn an_unavailable_registry_is_a_503_to_retry_never_an_invalid_key() {
        let app = wrap(
            Router::new().route("/x", axum::routing::get(|| async { "ok" })),
            Arc::new(Down),
            IdentityKey::new(b"k"),
        );
        for header in [
            ("authorization", "Bearer alx_whatever"),
            ("cookie", "alex_session=abc"),
        ] {
            let req = HttpRequest::get("/x")
                .header(header.0, header.1)
                .body(Body::empty())
                .unwrap();
            let resp = app.clone().oneshot(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE, "{header:?}");
            assert_eq!(resp.headers()["retry-after"], "1");
        }
        let anonymous = HttpRequest::get("/x").body(Body::empty()).unwrap();
        assert_eq!(
            app.oneshot(anonymous).await.unwrap().status(),
            StatusCode::OK
        );
    }
}
