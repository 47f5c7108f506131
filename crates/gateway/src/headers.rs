//! The security headers of every response the platform sends: a Content
//! Security Policy that allows no inline script or style (every script and
//! style sheet is a static file served from the binary), no MIME sniffing, no
//! framing, no referrer beyond our own origin, no caching of anything a
//! caller with credentials was shown, and HSTS where the platform is served
//! over HTTPS.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum_extra::extract::CookieJar;
use web::identity::SESSION_COOKIE;

/// Our pages load scripts, styles, images and data only from our own origin
/// (previews may also be `data:`/`blob:` URLs), post forms only to it, and
/// may be framed by no one.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; \
base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// A year, and only for this host: we do not know what else the domain serves.
pub const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000";

#[derive(Clone, Copy)]
struct Edge {
    hsts: bool,
}

/// Adds the security headers to every response of `router`; with `hsts`
/// (the session cookie is marked Secure, so the platform is behind HTTPS)
/// also `Strict-Transport-Security`.
pub fn secure(router: Router, hsts: bool) -> Router {
    router.layer(middleware::from_fn_with_state(Edge { hsts }, stamp))
}

/// A request that carries a session cookie or an API key: what it is
/// answered may be someone's own data. (Presence is enough: a stale cookie's
/// answer is not worth storing either.)
fn carries_credentials(headers: &HeaderMap) -> bool {
    headers.contains_key(header::AUTHORIZATION)
        || CookieJar::from_headers(headers)
            .get(SESSION_COOKIE)
            .is_some()
}

async fn stamp(State(edge): State<Edge>, req: Request, next: Next) -> Response {
    let credentials = carries_credentials(req.headers());
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    let set = |h: &mut HeaderMap, name, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(h, header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "same-origin");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    if edge.hsts {
        set(
            h,
            header::STRICT_TRANSPORT_SECURITY,
            STRICT_TRANSPORT_SECURITY,
        );
    }
    // A handler that chose its own caching (static files: public; a model's
    // preview: private to the browser) keeps it; anything else answered to
    // credentials is never stored, by the browser or anything between.
    if credentials && !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request as HttpRequest;
    use axum::routing::get;
    use tower::ServiceExt;

    fn app(hsts: bool) -> Router {
        let routes = Router::new()
            .route("/page", get(|| async { "page" }))
            .route(
                "/static/x.css",
                get(|| async { ([(header::CACHE_CONTROL, "public, max-age=300")], "x") }),
            );
        secure(routes, hsts)
    }

    async fn get_with(app: Router, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut req = HttpRequest::get(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap()
    }

    fn value<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
        r.headers().get(name).map(|v| v.to_str().unwrap())
    }

    #[tokio::test]
    async fn every_response_gets_the_policy_and_anonymous_ones_are_not_forced_uncached() {
        for path in ["/page", "/nowhere"] {
            let r = get_with(app(false), path, &[]).await;
            assert_eq!(
                value(&r, "content-security-policy"),
                Some(CONTENT_SECURITY_POLICY)
            );
            assert_eq!(value(&r, "x-content-type-options"), Some("nosniff"));
            assert_eq!(value(&r, "referrer-policy"), Some("same-origin"));
            assert_eq!(value(&r, "x-frame-options"), Some("DENY"));
            assert_eq!(value(&r, "strict-transport-security"), None);
            assert_eq!(value(&r, "cache-control"), None, "{path}");
        }
        let script_src = CONTENT_SECURITY_POLICY
            .split(';')
            .find(|d| d.trim().starts_with("script-src"))
            .unwrap();
        assert!(!script_src.contains("unsafe"), "{script_src}");
    }

    #[tokio::test]
    async fn answers_to_credentials_are_not_stored_unless_the_handler_chose_caching() {
        for creds in [
            ("cookie", "lang=en; alex_session=whatever"),
            ("authorization", "Bearer k"),
        ] {
            let r = get_with(app(false), "/page", &[creds]).await;
            assert_eq!(value(&r, "cache-control"), Some("no-store"), "{creds:?}");
            let r = get_with(app(false), "/static/x.css", &[creds]).await;
            assert_eq!(
                value(&r, "cache-control"),
                Some("public, max-age=300"),
                "{creds:?}"
            );
        }
        let r = get_with(app(false), "/page", &[("cookie", "lang=en")]).await;
        assert_eq!(value(&r, "cache-control"), None, "no session cookie");
    }

    #[tokio::test]
    async fn hsts_only_when_served_over_https() {
        let r = get_with(app(true), "/page", &[]).await;
        assert_eq!(
            value(&r, "strict-transport-security"),
            Some(STRICT_TRANSPORT_SECURITY)
        );
    }
}
