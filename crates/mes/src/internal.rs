//! Endpoints for our own processes only (never routed by the gateway).

use crate::MesState;
use axum::Json;
use axum::extract::State;
use web::ApiError;
use web::internal::Signed;

/// `POST /internal/orders/views` with a signed `ViewFilter`: MES's view of orders.
pub async fn views(
    State(state): State<MesState>,
    Signed(filter): Signed<domain::reconcile::ViewFilter>,
) -> Result<Json<Vec<domain::reconcile::View>>, ApiError> {
    Ok(Json(adapters::views::list(&state.db, &filter).await?))
}
