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

#[derive(Deserialize)]
struct Lookup {
    session: Option<String>,
    api_key: Option<String>,
}

/// `POST /internal/identity` with `{"session": …}` or `{"api_key": …}`, signed:
/// 200 with the caller, 404 if the credentials name nobody.
pub async fn identity(State(state): State<CrmState>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match web::internal::verified(&state.key, &headers, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Ok(lookup) = serde_json::from_slice::<Lookup>(body) else {
        return (
            StatusCode::BAD_REQUEST,
            "expected {\"session\": …} or {\"api_key\": …}",
        )
            .into_response();
    };
    let caller = match (lookup.session, lookup.api_key) {
        (Some(s), _) => state.accounts.by_session(&s).await.map_err(|_| ()),
        (None, Some(k)) => match state.accounts.by_api_key(&k).await {
            Ok(c) => Ok(Some(c)),
            Err(web::identity::KeyRefused::Invalid) => Ok(None),
            Err(web::identity::KeyRefused::Unavailable) => Err(()),
        },
        (None, None) => Ok(None),
    };
    // The registry could not be asked: say so, so the gateway answers 503, not 401.
    let Ok(caller) = caller else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the registry of people is unavailable",
        )
            .into_response();
    };
    match caller {
        Some(c) => Json(c).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `POST /internal/orders/views` with a signed `ViewFilter`: the CRM's view of orders.
pub async fn views(State(state): State<CrmState>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match web::internal::verified(&state.key, &headers, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Ok(filter) = serde_json::from_slice::<domain::reconcile::ViewFilter>(body) else {
        return (
            StatusCode::BAD_REQUEST,
            "expected \"open\" or {\"ids\": […]}",
        )
            .into_response();
    };
    match adapters::views::list(state.orders.db(), &filter).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => web::ApiError::Internal(e).into_response(),
    }
}
