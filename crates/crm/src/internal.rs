//! Endpoints for our own processes only (never routed by the gateway): the
//! gateway resolves a session or an API key here when it runs on its own.

use crate::CrmState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use web::Authenticator;

/// The header carrying the HMAC of the body (the gateway's `INTERNAL_SIGNATURE`).
const SIGNATURE: &str = "x-alexandrite-internal";

#[derive(Deserialize)]
struct Lookup {
    session: Option<String>,
    api_key: Option<String>,
}

/// `POST /internal/identity` with `{"session": …}` or `{"api_key": …}`, signed:
/// 200 with the caller, 404 if the credentials name nobody.
pub async fn identity(State(state): State<CrmState>, headers: HeaderMap, body: Bytes) -> Response {
    let signed = headers
        .get(SIGNATURE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|s| state.key.verify_bytes(&body, s));
    if !signed {
        return (StatusCode::FORBIDDEN, "internal calls must be signed").into_response();
    }
    let Ok(lookup) = serde_json::from_slice::<Lookup>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            "expected {\"session\": …} or {\"api_key\": …}",
        )
            .into_response();
    };
    let caller = match (lookup.session, lookup.api_key) {
        (Some(s), _) => state.accounts.by_session(&s).await,
        (None, Some(k)) => state.accounts.by_api_key(&k).await.ok(),
        (None, None) => None,
    };
    match caller {
        Some(c) => Json(c).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
