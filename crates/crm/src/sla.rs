//! SLA clocks in the CRM: the managers' list of orders at risk or overdue
//! (`/crm/overdue`, `/crm/api/sla`), and the announcer that tells managers
//! once per order and status that an order is overdue (a warning in the log,
//! remembered in `sla_announcements` so a restart does not repeat it).

use adapters::Db;
use adapters::metrics::Metrics;
use adapters::sla::{Late, human_duration, late_orders};
use askama::Template;
use axum::extract::{FromRef, OriginalUri, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use domain::sla::{Lateness, SlaPolicy};
use serde::Serialize;
use sqlx::Row;
use std::time::Duration;
use web::assets::{Frame, path_of, render};
use web::sla::{SlaTexts, when_ms};
use web::{ApiError, IdentityKey, Lang, Manager, ManagerPage, Texts};

/// The table that remembers which overdue orders were announced.
pub const SQL: &str = "CREATE TABLE sla_announcements (
    order_id TEXT NOT NULL,
    status TEXT NOT NULL,
    deadline_ms BIGINT NOT NULL,
    announced_at_ms BIGINT NOT NULL,
    PRIMARY KEY (order_id, status)
);";

/// The most orders a list shows.
const LIST_LIMIT: i64 = 500;

/// What the CRM shows of a late order besides its clock.
#[derive(Debug, Clone)]
pub struct Who {
    pub order_id: String,
    pub customer: String,
    pub material: String,
    pub announced_at_ms: Option<i64>,
}

/// The CRM's SLA clocks over its own orders.
#[derive(Clone)]
pub struct Sla {
    db: Db,
    policy: SlaPolicy,
    metrics: Metrics,
}

impl Sla {
    pub fn new(db: Db, policy: SlaPolicy, metrics: Metrics) -> Sla {
        Sla {
            db,
            policy,
            metrics,
        }
    }

    pub fn policy(&self) -> &SlaPolicy {
        &self.policy
    }

    /// Orders at risk or overdue at `now_ms`, the most overdue first.
    pub async fn late(&self, now_ms: i64) -> anyhow::Result<Vec<Late<Who>>> {
        late_orders(
            self.db.any_reader(),
            &self.policy,
            now_ms,
            "id, owner_name, owner_email, material, \
             (SELECT a.announced_at_ms FROM sla_announcements a \
              WHERE a.order_id = orders.id AND a.status = orders.status) AS announced_at_ms",
            LIST_LIMIT,
            |r| {
                Ok(Who {
                    order_id: r.try_get("id")?,
                    customer: format!(
                        "{} <{}>",
                        r.try_get::<String, _>("owner_name")?,
                        r.try_get::<String, _>("owner_email")?
                    ),
                    material: r.try_get("material")?,
                    announced_at_ms: r.try_get("announced_at_ms")?,
                })
            },
        )
        .await
    }

    /// Announces every overdue order not announced yet in its current status;
    /// returns how many were announced now. Safe with several CRM processes:
    /// the first to record an announcement is the one that logs it.
    pub async fn announce(&self, now_ms: i64) -> anyhow::Result<usize> {
        let overdue: Vec<_> = late_orders(
            self.db.pool(),
            &self.policy,
            now_ms,
            "id",
            i64::MAX / 2,
            |r| Ok(r.try_get::<String, _>("id")?),
        )
        .await?
        .into_iter()
        .filter(|l| l.lateness == Lateness::Overdue)
        .collect();
        let mut announced = 0;
        for l in overdue {
            let done = sqlx::query(
                "INSERT INTO sla_announcements (order_id, status, deadline_ms, announced_at_ms) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (order_id, status) DO NOTHING",
            )
            .bind(&l.row)
            .bind(l.status.as_str())
            .bind(l.deadline_ms)
            .bind(now_ms)
            .execute(self.db.pool())
            .await?;
            if done.rows_affected() == 1 {
                announced += 1;
                self.metrics.sla_announced(l.status.as_str());
                tracing::warn!(
                    order_id = %l.row,
                    status = %l.status,
                    deadline = %domain::rfc3339(domain::from_ms(l.deadline_ms)),
                    overdue_seconds = l.late_by_ms / 1000,
                    "order overdue: past its SLA deadline in {}",
                    l.status
                );
            }
        }
        Ok(announced)
    }

    /// Announces overdue orders every `every`, until the task is dropped.
    pub async fn run(self, every: Duration) {
        loop {
            if let Err(e) = self.announce(domain::to_ms(domain::now())).await {
                tracing::warn!(error = %format!("{e:#}"), "SLA check could not run");
            }
            tokio::time::sleep(every).await;
        }
    }
}

/// What the SLA pages can reach.
#[derive(Clone)]
pub struct SlaState {
    pub sla: Sla,
    pub key: IdentityKey,
}

impl FromRef<SlaState> for IdentityKey {
    fn from_ref(s: &SlaState) -> IdentityKey {
        s.key.clone()
    }
}

/// `/crm/overdue` and `/crm/api/sla`.
pub fn router(state: SlaState) -> Router {
    Router::new()
        .route("/crm/overdue", get(page))
        .route("/crm/api/sla", get(api))
        .with_state(state)
}

/// One late order on a page.
pub struct LateRow {
    pub order_id: String,
    pub short_id: String,
    pub status: &'static str,
    pub status_label: &'static str,
    pub lateness: &'static str,
    pub lateness_label: &'static str,
    pub customer: String,
    pub material: String,
    pub entered: String,
    pub deadline: String,
    /// "Overdue by 5 min 03 s" or "Left 12 min 00 s".
    pub clock: String,
    pub announced: String,
}

fn rows(late: &[Late<Who>], t: &'static Texts, s: &'static SlaTexts) -> Vec<LateRow> {
    late.iter()
        .map(|l| LateRow {
            short_id: l.row.order_id.chars().take(8).collect(),
            order_id: l.row.order_id.clone(),
            status: l.status.as_str(),
            status_label: t.status(l.status.as_str()),
            lateness: l.lateness.as_str(),
            lateness_label: s.lateness(l.lateness.as_str()),
            customer: l.row.customer.clone(),
            material: l.row.material.clone(),
            entered: when_ms(l.entered_ms),
            deadline: when_ms(l.deadline_ms),
            clock: format!(
                "{} {}",
                if l.late_by_ms >= 0 { s.late_by } else { s.left },
                human_duration(l.late_by_ms, s.units)
            ),
            announced: l.row.announced_at_ms.map(when_ms).unwrap_or_default(),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "overdue.html")]
struct OverduePage {
    t: &'static Texts,
    s: &'static SlaTexts,
    frame: Frame,
    orders: Vec<LateRow>,
    banner: String,
    limits: Vec<(&'static str, String)>,
}

/// The SLA limit of every status that has a clock, as people read it.
pub fn limits(
    policy: &SlaPolicy,
    t: &'static Texts,
    s: &'static SlaTexts,
) -> Vec<(&'static str, String)> {
    domain::OrderStatus::ALL
        .iter()
        .filter(|st| !st.is_final())
        .map(|st| {
            (
                t.status(st.as_str()),
                policy
                    .limit_ms(*st)
                    .map(|ms| human_duration(ms, s.units))
                    .unwrap_or_else(|| s.no_limit.to_string()),
            )
        })
        .collect()
}

async fn page(
    State(state): State<SlaState>,
    lang: Lang,
    ManagerPage(user): ManagerPage,
    uri: OriginalUri,
) -> Result<Response, ApiError> {
    let t = lang.texts();
    let s = SlaTexts::of(lang);
    let frame = Frame::new(lang, Some(user), path_of(&uri));
    let late = state.sla.late(domain::to_ms(domain::now())).await?;
    let (overdue, at_risk) = counts(&late);
    let page = OverduePage {
        t,
        s,
        orders: rows(&late, t, s),
        banner: s.banner(lang, overdue, at_risk).unwrap_or_default(),
        limits: limits(state.sla.policy(), t, s),
        frame,
    };
    Ok(render(StatusCode::OK, page))
}

fn counts<T>(late: &[Late<T>]) -> (i64, i64) {
    let overdue = late
        .iter()
        .filter(|l| l.lateness == Lateness::Overdue)
        .count() as i64;
    (overdue, late.len() as i64 - overdue)
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
    customer: String,
    material: String,
    announced_at: Option<String>,
}

/// Counts (for the managers' banner) and the list, for managers.
async fn api(
    State(state): State<SlaState>,
    lang: Lang,
    Manager(_user): Manager,
) -> Result<Response, ApiError> {
    let late = state.sla.late(domain::to_ms(domain::now())).await?;
    let (overdue, at_risk) = counts(&late);
    let s = SlaTexts::of(lang);
    let orders: Vec<ApiLate> = late
        .iter()
        .map(|l| ApiLate {
            order_id: l.row.order_id.clone(),
            status: l.status.as_str(),
            lateness: l.lateness.as_str(),
            entered_at: domain::rfc3339(domain::from_ms(l.entered_ms)),
            deadline: domain::rfc3339(domain::from_ms(l.deadline_ms)),
            overdue_seconds: l.late_by_ms.div_euclid(1000),
            customer: l.row.customer.clone(),
            material: l.row.material.clone(),
            announced_at: l
                .row
                .announced_at_ms
                .map(|ms| domain::rfc3339(domain::from_ms(ms))),
        })
        .collect();
    Ok(Json(serde_json::json!({
        "overdue": overdue,
        "at_risk": at_risk,
        "banner": s.banner(lang, overdue, at_risk),
        "href": "/crm/overdue",
        "orders": orders,
    }))
    .into_response())
}
