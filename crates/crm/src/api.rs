//! `/api/v1/orders*`: the B2B (and shop) JSON API over the CRM's view of orders.

use crate::CrmState;
use crate::orders::{DecisionError, Order, Page};
use axum::Json;
use axum::extract::{Path, Query, State};
use domain::{Caller, OrderId, OrderStatus, Role};
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;
use web::{ApiError, Authenticated};

fn parse_id(s: &str) -> Result<OrderId, ApiError> {
    // A malformed id names no order: the same 404 as any unknown one.
    s.parse().map_err(|_| ApiError::NotFound("order"))
}

fn customer_facing(caller: &Caller) -> Result<(), ApiError> {
    match caller.role {
        Role::Operator => Err(ApiError::Forbidden(
            "operators use the production API under /mes/api; /api/v1/orders is for customers"
                .into(),
        )),
        _ => Ok(()),
    }
}

/// An order just accepted by MES reaches the CRM a few milliseconds later. A read
/// of a freshly minted id waits for it briefly instead of answering 404.
pub(crate) async fn get_fresh(
    state: &CrmState,
    caller: &Caller,
    id: OrderId,
) -> anyhow::Result<Option<Order>> {
    let fresh = id
        .minted_at_ms()
        .is_some_and(|ms| domain::to_ms(domain::now()) - ms < 30_000);
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
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Order>, ApiError> {
    customer_facing(&caller)?;
    let id = parse_id(&id)?;
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
    Authenticated(caller): Authenticated,
    Query(q): Query<ListQuery>,
) -> Result<Json<Page>, ApiError> {
    customer_facing(&caller)?;
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

pub(crate) fn decision_error(e: DecisionError) -> ApiError {
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

async fn decide(
    state: CrmState,
    caller: Caller,
    id: String,
    to: OrderStatus,
) -> Result<Json<Order>, ApiError> {
    customer_facing(&caller)?;
    let id = parse_id(&id)?;
    get_fresh(&state, &caller, id).await?;
    let done = match to {
        OrderStatus::Confirmed => state.orders.confirm(&caller, id).await,
        _ => state.orders.cancel(&caller, id).await,
    };
    done.map_err(decision_error)?;
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
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Order>, ApiError> {
    decide(state, caller, id, OrderStatus::Confirmed).await
}

/// `POST /api/v1/orders/{id}/cancel`.
pub async fn cancel(
    State(state): State<CrmState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Order>, ApiError> {
    decide(state, caller, id, OrderStatus::Cancelled).await
}
