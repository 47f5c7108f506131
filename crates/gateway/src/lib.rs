//! The API gateway: every external request passes here. It gives the request an
//! id, authenticates it (session cookie for browsers, bearer API key for
//! programs) and passes the caller on to the services in a signed header. In the
//! all-in-one process it wraps the merged router; it is not a second hop.

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
use web::{ApiError, Authenticator, IdentityKey};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(Clone)]
struct Gate {
    auth: Arc<dyn Authenticator>,
    key: IdentityKey,
}

/// Authenticates one request and stamps the signed identity on it.
async fn authenticate(State(gate): State<Gate>, mut req: Request, next: Next) -> Response {
    let caller = match req.headers().get(header::AUTHORIZATION) {
        Some(value) => {
            let key = value.to_str().ok().and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            });
            match key.map(str::trim) {
                Some(k) if !k.is_empty() => match gate.auth.by_api_key(k).await {
                    Ok(c) => Some(c),
                    Err(()) => return ApiError::BadKey.into_response(),
                },
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
            Some(c) => gate.auth.by_session(c.value()).await,
            None => None,
        },
    };
    gate.key.stamp(req.headers_mut(), caller.as_ref());
    if let Some(c) = &caller {
        tracing::Span::current().record("user_id", tracing::field::display(c.user_id));
    }
    next.run(req).await
}

/// Wraps the services' routes with request ids, tracing and authentication.
pub fn wrap(services: Router, auth: Arc<dyn Authenticator>, key: IdentityKey) -> Router {
    let gate = Gate { auth, key };
    services
        .layer(middleware::from_fn_with_state(gate, authenticate))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
                tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id,
                    user_id = tracing::field::Empty)
            }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}
