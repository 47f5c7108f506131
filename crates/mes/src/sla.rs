//! SLA clocks in the operator console: production orders near or past their
//! deadline in their current status, the most overdue first (`/mes/late`,
//! `/mes/api/late`).

use adapters::Db;
use adapters::sla::{Late, human_duration, late_orders};
use askama::Template;
use axum::extract::{FromRef, OriginalUri, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use domain::Role;
use domain::sla::{Lateness, SlaPolicy};
use serde::Serialize;
use sqlx::Row;
use web::assets::{Frame, login_redirect, path_of, render};
use web::sla::{SlaTexts, when_ms};
use web::{ApiError, IdentityKey, Lang, MaybeCaller, Texts};

/// The most orders the list shows.
const LIST_LIMIT: i64 = 500;

/// What the console shows of a late order besides its clock.
#[derive(Debug, Clone)]
pub struct Work {
    pub order_id: String,
    pub material: String,
    pub customer: String,
    pub operator: Option<String>,
}

/// MES's SLA clocks over its own production orders.
#[derive(Clone)]
pub struct LateOrders {
    pub db: Db,
    pub policy: SlaPolicy,
    pub key: IdentityKey,
}

impl FromRef<LateOrders> for IdentityKey {
    fn from_ref(s: &LateOrders) -> IdentityKey {
        s.key.clone()
    }
}

impl LateOrders {
    /// Orders at risk or overdue at `now_ms`, the most overdue first.
    pub async fn list(&self, now_ms: i64) -> anyhow::Result<Vec<Late<Work>>> {
        late_orders(
            self.db.any_reader(),
            &self.policy,
            now_ms,
            "id, material_code, owner_name, operator_name",
            LIST_LIMIT,
            |r| {
                Ok(Work {
                    order_id: r.try_get("id")?,
                    material: r.try_get("material_code")?,
                    customer: r.try_get("owner_name")?,
                    operator: r.try_get("operator_name")?,
                })
            },
        )
        .await
    }
}

/// `/mes/late` and `/mes/api/late`.
pub fn router(state: LateOrders) -> Router {
    Router::new()
        .route("/mes/late", get(page))
        .route("/mes/api/late", get(api))
        .with_state(state)
}

pub struct LateRow {
    pub order_id: String,
    pub short_id: String,
    pub status: &'static str,
    pub status_label: &'static str,
    pub lateness: &'static str,
    pub lateness_label: &'static str,
    pub material: String,
    pub customer: String,
    pub operator: String,
    pub entered: String,
    pub deadline: String,
    pub clock: String,
}

#[derive(Template)]
#[template(path = "late.html")]
struct LatePage {
    t: &'static Texts,
    s: &'static SlaTexts,
    frame: Frame,
    orders: Vec<LateRow>,
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    t: &'static Texts,
    frame: Frame,
    title: String,
    message: String,
}

async fn page(
    State(state): State<LateOrders>,
    lang: Lang,
    MaybeCaller(user): MaybeCaller,
    uri: OriginalUri,
) -> Result<Response, ApiError> {
    let t = lang.texts();
    let frame = Frame::new(lang, user.clone(), path_of(&uri));
    match &user {
        None => return Ok(login_redirect(&uri)),
        Some(u) if u.role == Role::Customer => {
            return Ok(render(
                StatusCode::FORBIDDEN,
                MessagePage {
                    t,
                    title: t.error_title.into(),
                    message: t.forbidden.into(),
                    frame,
                },
            ));
        }
        Some(_) => {}
    }
    let s = SlaTexts::of(lang);
    let late = state.list(domain::to_ms(domain::now())).await?;
    let orders = late
        .iter()
        .map(|l| LateRow {
            short_id: l.row.order_id.chars().take(8).collect(),
            order_id: l.row.order_id.clone(),
            status: l.status.as_str(),
            status_label: t.status(l.status.as_str()),
            lateness: l.lateness.as_str(),
            lateness_label: s.lateness(l.lateness.as_str()),
            material: l.row.material.clone(),
            customer: l.row.customer.clone(),
            operator: l.row.operator.clone().unwrap_or_default(),
            entered: when_ms(l.entered_ms),
            deadline: when_ms(l.deadline_ms),
            clock: format!(
                "{} {}",
                if l.late_by_ms >= 0 { s.late_by } else { s.left },
                human_duration(l.late_by_ms, s.units)
            ),
        })
        .collect();
    Ok(render(
        StatusCode::OK,
        LatePage {
            t,
            s,
            frame,
            orders,
        },
    ))
}

#[derive(Serialize)]
struct ApiLate {
    order_id: String,
    status: &'static str,
    lateness: &'static str,
    entered_at: String,
    deadline: String,
    /// Seconds past the deadline (negative: seconds left).
    overdue_seconds: i64,
    material: String,
    operator: Option<String>,
}

/// The late list as JSON, for operators and managers.
async fn api(
    State(state): State<LateOrders>,
    MaybeCaller(user): MaybeCaller,
) -> Result<Response, ApiError> {
    match user {
        None => return Err(ApiError::Unauthorized),
        Some(u) if u.role == Role::Customer => {
            return Err(ApiError::Forbidden(
                "only operators and managers see late production orders".into(),
            ));
        }
        Some(_) => {}
    }
    let late = state.list(domain::to_ms(domain::now())).await?;
    let overdue = late
        .iter()
        .filter(|l| l.lateness == Lateness::Overdue)
        .count();
    let orders: Vec<ApiLate> = late
        .iter()
        .map(|l| ApiLate {
            order_id: l.row.order_id.clone(),
            status: l.status.as_str(),
            lateness: l.lateness.as_str(),
            entered_at: domain::rfc3339(domain::from_ms(l.entered_ms)),
            deadline: domain::rfc3339(domain::from_ms(l.deadline_ms)),
            overdue_seconds: l.late_by_ms.div_euclid(1000),
            material: l.row.material.clone(),
            operator: l.row.operator.clone(),
        })
        .collect();
    Ok(Json(serde_json::json!({
        "overdue": overdue,
        "at_risk": late.len() - overdue,
        "orders": orders,
    }))
    .into_response())
}
