//! Endpoints for our own processes only (never routed by the gateway).

use crate::MesState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// `POST /internal/orders/views` with a signed `ViewFilter`: MES's view of orders.
pub async fn views(State(state): State<MesState>, headers: HeaderMap, body: Bytes) -> Response {
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
    match adapters::views::list(&state.db, &filter).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => web::ApiError::Internal(e).into_response(),
    }
}
