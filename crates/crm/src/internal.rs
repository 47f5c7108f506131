//! Endpoints for our own processes only (never routed by the gateway): the
//! gateway resolves a session or an API key here when it runs on its own.

use crate::CrmState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use web::internal::Signed;
use web::{ApiError, Authenticator};

#[derive(Deserialize)]
pub struct Lookup {
    session: Option<String>,
    api_key: Option<String>,
}

/// `POST /internal/identity` with `{"session": …}` or `{"api_key": …}`, signed:
/// 200 with the caller, 404 if the credentials name nobody.
pub async fn identity(
    State(state): State<CrmState>,
    Signed(lookup): Signed<Lookup>,
) -> Result<Response, ApiError> {
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
        return Err(ApiError::Unavailable(
            "the registry of people is unavailable".into(),
        ));
    };
    Ok(match caller {
        Some(c) => Json(c).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    })
}

/// `POST /internal/orders/views` with a signed `ViewFilter`: the CRM's view of orders.
pub async fn views(
    State(state): State<CrmState>,
    Signed(filter): Signed<domain::reconcile::ViewFilter>,
) -> Result<Response, ApiError> {
    Ok(Json(adapters::views::list(state.orders.db(), &filter).await?).into_response())
}
