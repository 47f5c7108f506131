//! `/api/v1/orders*`: the B2B (and shop) JSON API over the CRM's view of orders.

use crate::CrmState;
use crate::orders::{DecisionError, Order, Page};
use axum::Json;
use axum::extract::State;
use domain::{Caller, OrderId, OrderStatus};
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;
use web::{ApiError, ApiQuery, CustomerFacing, OrderIdPath};

/// An order just accepted by MES reaches the CRM a few milliseconds later. A read
/// of a freshly minted id waits for it briefly instead of answering 404.
pub(crate) async fn get_fresh(
    state: &CrmState,
    caller: &Caller,
    id: OrderId,
) -> anyhow::Result<Option<Order>> {
    // Only an id our MES minted moments ago is worth waiting for: one a stranger
    // made up (with a fresh timestamp, to make us wait) is answered 404 at once.
    let fresh = id
        .minted_at_ms()
        .is_some_and(|ms| domain::to_ms(domain::now()) - ms < 30_000)
        && state.key.minted(&id);
    // Generous: under load (a broker creating queues, a busy database) delivery can take seconds.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(o) = state.orders.get(caller, id).await? {
            return Ok(Some(o));
        }
        if !fresh || tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        if state.orders.exists(caller, id).await? {
            // There now: either another tenant's (still None) or it arrived
            // between the two reads (found this time).
            return state.orders.get(caller, id).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tracing::instrument(skip(state, caller), fields(order_id = %id))]
pub async fn get_order(
    State(state): State<CrmState>,
    CustomerFacing(caller): CustomerFacing,
    OrderIdPath(id): OrderIdPath,
) -> Result<Json<Order>, ApiError> {
    get_fresh(&state, &caller, id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("order"))
}

#[derive(Deserialize)]
pub struct ListQuery {
    pub cursor: Option<String>,
    pub limit: Option<i64>,
    pub status: Option<String>,
}

pub async fn list_orders(
    State(state): State<CrmState>,
    CustomerFacing(caller): CustomerFacing,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Page>, ApiError> {
    let (limit, cursor) = web::paging::parse(q.limit, 20, 100, q.cursor.as_deref())?;
    let status = match q.status.as_deref() {
        Some(s) => Some(OrderStatus::parse(s).ok_or_else(|| {
            ApiError::unprocessable("bad_status", "status", format!("unknown status '{s}'"))
        })?),
        None => None,
    };
    Ok(Json(
        state.orders.list(&caller, status, cursor, limit).await?,
    ))
}

impl From<DecisionError> for ApiError {
    fn from(e: DecisionError) -> ApiError {
        match e {
            DecisionError::NotFound => ApiError::NotFound("order"),
            DecisionError::NotCustomer => ApiError::Forbidden(e.to_string()),
            DecisionError::Transition(t) => ApiError::Conflict {
                code: "invalid_transition",
                message: t.to_string(),
                details: Some(json!({ "current_status": t.from, "requested_status": t.to })),
            },
            DecisionError::Db(e) => ApiError::Internal(e.into()),
        }
    }
}

async fn decide(
    state: CrmState,
    caller: Caller,
    id: OrderId,
    to: OrderStatus,
) -> Result<Json<Order>, ApiError> {
    get_fresh(&state, &caller, id).await?;
    let done = match to {
        OrderStatus::Confirmed => state.orders.confirm(&caller, id).await,
        _ => state.orders.cancel(&caller, id).await,
    };
    done?;
    state
        .orders
        .get(&caller, id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("order"))
}

/// `POST /api/v1/orders/{id}/confirm`.
pub async fn confirm(
    State(state): State<CrmState>,
    CustomerFacing(caller): CustomerFacing,
    OrderIdPath(id): OrderIdPath,
) -> Result<Json<Order>, ApiError> {
    decide(state, caller, id, OrderStatus::Confirmed).await
}

/// `POST /api/v1/orders/{id}/cancel`.
pub async fn cancel(
    State(state): State<CrmState>,
    CustomerFacing(caller): CustomerFacing,
    OrderIdPath(id): OrderIdPath,
) -> Result<Json<Order>, ApiError> {
    decide(state, caller, id, OrderStatus::Cancelled).await
}
