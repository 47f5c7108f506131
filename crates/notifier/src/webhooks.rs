//! `/api/v1/webhooks*`: a B2B organisation's webhook (its URL and signing
//! secret) and the log of what was delivered to it. Only the organisation's
//! own API callers see or change it; anyone else is told there is none.

use crate::{NotifierState, deliveries, guard, signature};
use adapters::Db;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use domain::{Caller, Role};
use serde::{Deserialize, Serialize};
use sqlx::{Any, Row, Transaction};
use web::{ApiError, Authenticated};

/// An organisation's webhook.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub org: String,
    pub url: String,
    pub secret: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// The organisation's webhook, if it has one.
pub async fn find(db: &Db, org: &str) -> anyhow::Result<Option<Webhook>> {
    let row = sqlx::query(
        "SELECT org, url, secret, created_at_ms, updated_at_ms FROM webhooks WHERE org = $1",
    )
    .bind(org)
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| -> anyhow::Result<Webhook> {
        Ok(Webhook {
            org: r.try_get("org")?,
            url: r.try_get("url")?,
            secret: r.try_get("secret")?,
            created_at_ms: r.try_get("created_at_ms")?,
            updated_at_ms: r.try_get("updated_at_ms")?,
        })
    })
    .transpose()
}

/// Whether the organisation has a webhook (inside a transaction).
pub async fn exists(tx: &mut Transaction<'static, Any>, org: &str) -> sqlx::Result<bool> {
    Ok(sqlx::query("SELECT 1 AS one FROM webhooks WHERE org = $1")
        .bind(org)
        .fetch_optional(&mut **tx)
        .await?
        .is_some())
}

/// The organisation a caller manages webhooks for: B2B customers only.
fn organisation(caller: &Caller) -> Result<&str, ApiError> {
    match (&caller.role, caller.org.as_deref()) {
        (Role::Customer, Some(org)) => Ok(org),
        _ => Err(ApiError::Forbidden(
            "webhooks belong to B2B organisations: call with an API key of a member of one".into(),
        )),
    }
}

/// The webhook as the API shows it (the secret only when just made).
#[derive(Debug, Serialize)]
pub struct WebhookView {
    pub url: String,
    /// Shown once, when created or rotated; keep it to check signatures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// The first characters of the secret, to tell which one is in use.
    pub secret_prefix: String,
    pub created_at: String,
    pub updated_at: String,
}

impl WebhookView {
    fn of(h: &Webhook, show_secret: bool) -> WebhookView {
        WebhookView {
            url: h.url.clone(),
            secret: show_secret.then(|| h.secret.clone()),
            secret_prefix: h.secret.chars().take(12).collect(),
            created_at: domain::rfc3339(domain::from_ms(h.created_at_ms)),
            updated_at: domain::rfc3339(domain::from_ms(h.updated_at_ms)),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutWebhook {
    pub url: Option<String>,
    /// Make a new signing secret (the old one stops working at once).
    #[serde(default)]
    pub rotate_secret: bool,
}

fn refused(e: guard::UrlRefused) -> ApiError {
    ApiError::Unprocessable {
        code: e.code(),
        message: e.to_string(),
        field: Some("url"),
    }
}

/// `PUT /api/v1/webhooks`: sets the URL; a new secret on first use or when asked.
pub async fn put(
    State(state): State<NotifierState>,
    Authenticated(caller): Authenticated,
    body: Result<Json<PutWebhook>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let org = organisation(&caller)?;
    let Json(req) = body.map_err(|e| ApiError::BadRequest {
        code: "bad_json",
        message: format!(
            "the body must be JSON like {{\"url\": \"https://…\"}}: {}",
            e.body_text()
        ),
    })?;
    let url = req
        .url
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ApiError::unprocessable("webhook_url_missing", "url", "url is required"))?;
    if url.len() > 2048 {
        return Err(ApiError::unprocessable(
            "webhook_url_invalid",
            "url",
            "the URL is longer than 2048 characters",
        ));
    }
    let checked = guard::check(url, state.allow_private)
        .await
        .map_err(refused)?;
    let url = checked.url.to_string();
    let now = domain::to_ms(domain::now());
    let existing = find(&state.db, org).await?;
    let (status, show) = match &existing {
        None => (StatusCode::CREATED, true),
        Some(_) => (StatusCode::OK, req.rotate_secret),
    };
    let secret = match (&existing, show) {
        (Some(h), false) => h.secret.clone(),
        _ => signature::new_secret(),
    };
    // One statement, so a concurrent PUT of the same organisation cannot fail.
    sqlx::query(
        "INSERT INTO webhooks (org, url, secret, created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $4, $4) \
         ON CONFLICT (org) DO UPDATE SET url = excluded.url, secret = excluded.secret, \
         updated_at_ms = excluded.updated_at_ms",
    )
    .bind(org)
    .bind(&url)
    .bind(&secret)
    .bind(now)
    .execute(state.db.pool())
    .await?;
    let hook = find(&state.db, org)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the webhook vanished after it was written"))?;
    tracing::info!(%url, rotated = show, "webhook set");
    Ok((status, Json(WebhookView::of(&hook, show))))
}

/// `GET /api/v1/webhooks`.
pub async fn get(
    State(state): State<NotifierState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<WebhookView>, ApiError> {
    let org = organisation(&caller)?;
    find(&state.db, org)
        .await?
        .map(|h| Json(WebhookView::of(&h, false)))
        .ok_or(ApiError::NotFound("webhook"))
}

/// `DELETE /api/v1/webhooks`: no more webhooks (pending ones are abandoned).
pub async fn delete(
    State(state): State<NotifierState>,
    Authenticated(caller): Authenticated,
) -> Result<StatusCode, ApiError> {
    let org = organisation(&caller)?;
    let done = sqlx::query("DELETE FROM webhooks WHERE org = $1")
        .bind(org)
        .execute(state.db.pool())
        .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::NotFound("webhook"));
    }
    tracing::info!("webhook removed");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub struct DeliveriesQuery {
    pub order_id: Option<String>,
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct DeliveriesPage {
    pub deliveries: Vec<deliveries::Delivery>,
}

/// `GET /api/v1/webhooks/deliveries`: the organisation's webhook notifications,
/// newest first, each with its attempts.
pub async fn list_deliveries(
    State(state): State<NotifierState>,
    Authenticated(caller): Authenticated,
    q: Result<Query<DeliveriesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DeliveriesPage>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest {
        code: "bad_query",
        message: format!("{}; expected ?order_id=…&limit=1..200", e.body_text()),
    })?;
    let org = organisation(&caller)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::BadRequest {
            code: "bad_limit",
            message: "limit must be between 1 and 200".into(),
        });
    }
    let order = match q.order_id.as_deref() {
        None => None,
        Some(o) => Some(
            o.parse::<domain::OrderId>()
                .map_err(|_| ApiError::BadRequest {
                    code: "bad_order_id",
                    message: format!("'{o}' is not an order id"),
                })?
                .to_string(),
        ),
    };
    let deliveries = deliveries::list_for_org(&state.db, org, order.as_deref(), limit).await?;
    Ok(Json(DeliveriesPage { deliveries }))
}
