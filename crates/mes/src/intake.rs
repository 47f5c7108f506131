//! Receiving a model: checked by content, stored under a generated key, the
//! order minted and a pricing job queued — all or nothing.

use crate::orders;
use crate::{MesState, materials};
use adapters::outbox;
use bytes::Bytes;
use domain::events::{Actor, Envelope, ModelReceived, PricingRequested};
use domain::{Caller, OrderId, OrderStatus, Role};
use object_store::path::Path as ObjectPath;
use sha2::{Digest, Sha256};
use sqlx::Row;

/// A model as it arrived.
pub struct Upload {
    pub file_name: String,
    pub bytes: Bytes,
    pub material: String,
    pub idempotency_key: Option<String>,
    /// "api" or "shop".
    pub channel: &'static str,
}

/// Why an upload was refused. Nothing is left behind by any of them.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("only customers can upload models")]
    NotCustomer,
    #[error("the multipart field 'file' with the model is missing")]
    MissingFile,
    #[error("the uploaded file is empty")]
    EmptyFile,
    #[error("{0}")]
    NotAModel(String),
    #[error("the field 'material' is missing; one of: {0}")]
    MissingMaterial(String),
    #[error("unknown material '{given}'; one of: {known}")]
    UnknownMaterial { given: String, known: String },
    #[error("Idempotency-Key '{0}' was already used for a different upload")]
    KeyReused(String),
    #[error("Idempotency-Key must be 1 to 200 printable ASCII characters")]
    BadKey,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The answer to an accepted upload.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Accepted {
    pub order_id: OrderId,
    pub status: OrderStatus,
    /// True when an Idempotency-Key named an order made earlier.
    #[serde(skip)]
    pub replayed: bool,
}

fn file_name(raw: &str) -> String {
    // Keep the last path component, printable, bounded: it is shown, never used as a path.
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base.chars().filter(|c| !c.is_control()).take(200).collect();
    if clean.trim().is_empty() {
        "model".into()
    } else {
        clean
    }
}

async fn replay(
    state: &MesState,
    tenant: &str,
    key: &str,
    request_sha: &str,
) -> Result<Option<Accepted>, IntakeError> {
    let row = sqlx::query(
        "SELECT i.request_sha256, i.order_id, o.status FROM idempotency i JOIN orders o ON o.id = i.order_id \
         WHERE i.tenant = $1 AND i.idem_key = $2",
    )
    .bind(tenant)
    .bind(key)
    .fetch_optional(state.db.pool())
    .await
    .map_err(anyhow::Error::from)?;
    let Some(row) = row else { return Ok(None) };
    let sha: String = row.try_get("request_sha256").map_err(anyhow::Error::from)?;
    if sha != request_sha {
        return Err(IntakeError::KeyReused(key.to_string()));
    }
    let id: String = row.try_get("order_id").map_err(anyhow::Error::from)?;
    let status: String = row.try_get("status").map_err(anyhow::Error::from)?;
    Ok(Some(Accepted {
        order_id: id.parse().map_err(anyhow::Error::from)?,
        status: OrderStatus::parse(&status).unwrap_or(OrderStatus::Pricing),
        replayed: true,
    }))
}

/// Accepts an upload: the bytes to object storage, the order and its events in one transaction.
#[tracing::instrument(skip_all, fields(order_id, channel = up.channel, size = up.bytes.len()))]
pub async fn accept(
    state: &MesState,
    caller: &Caller,
    up: Upload,
) -> Result<Accepted, IntakeError> {
    if caller.role != Role::Customer {
        return Err(IntakeError::NotCustomer);
    }
    if let Some(k) = &up.idempotency_key {
        if k.is_empty() || k.len() > 200 || !k.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(IntakeError::BadKey);
        }
    }
    if up.material.trim().is_empty() {
        let known = materials::list(&state.db)
            .await?
            .into_iter()
            .map(|m| m.code)
            .collect::<Vec<_>>()
            .join(", ");
        return Err(IntakeError::MissingMaterial(known));
    }
    let Some(material) = materials::find(&state.db, &up.material).await? else {
        let known = materials::list(&state.db)
            .await?
            .into_iter()
            .map(|m| m.code)
            .collect::<Vec<_>>()
            .join(", ");
        return Err(IntakeError::UnknownMaterial {
            given: up.material.chars().take(40).collect(),
            known,
        });
    };
    if up.bytes.is_empty() {
        return Err(IntakeError::EmptyFile);
    }
    let format = geometry::detect(&up.bytes).map_err(|e| IntakeError::NotAModel(e.to_string()))?;
    let content_sha = hex::encode(Sha256::digest(&up.bytes));
    let tenant = caller.tenant();
    let request_sha = hex::encode(Sha256::digest(format!("{content_sha}:{}", material.code)));
    if let Some(key) = &up.idempotency_key {
        if let Some(done) = replay(state, &tenant, key, &request_sha).await? {
            return Ok(done);
        }
    }

    let order_id = OrderId::new();
    tracing::Span::current().record("order_id", tracing::field::display(order_id));
    let object_key = format!("models/{}", uuid::Uuid::new_v4());
    let size = up.bytes.len() as u64;
    state
        .store
        .put(
            &ObjectPath::from(object_key.as_str()),
            up.bytes.clone().into(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("storing the model: {e}"))?;

    let owner = Actor {
        kind: "customer".into(),
        name: caller.name.clone(),
        user_id: Some(caller.user_id),
    };
    let file_name = file_name(&up.file_name);
    let result: anyhow::Result<bool> = async {
        let now = domain::to_ms(domain::now());
        let mut tx = state.db.begin_write().await?;
        if let Some(key) = &up.idempotency_key {
            let fresh = sqlx::query(
                "INSERT INTO idempotency (tenant, idem_key, request_sha256, order_id, created_at_ms) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(&tenant)
            .bind(key)
            .bind(&request_sha)
            .bind(order_id.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if fresh.rows_affected() == 0 {
                return Ok(false); // a concurrent request with the same key won
            }
        }
        sqlx::query(
            "INSERT INTO orders (id, tenant, owner_id, owner_name, owner_email, channel, material_code, material_json, \
             status, object_key, file_name, size_bytes, content_sha256, format, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(order_id.to_string())
        .bind(&tenant)
        .bind(caller.user_id.to_string())
        .bind(&caller.name)
        .bind(&caller.email)
        .bind(up.channel)
        .bind(&material.code)
        .bind(serde_json::to_string(&material)?)
        .bind(OrderStatus::Pricing.as_str())
        .bind(&object_key)
        .bind(&file_name)
        .bind(size as i64)
        .bind(&content_sha)
        .bind(format.label())
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        orders::record(&mut tx, order_id, OrderStatus::Pricing, &owner, None).await?;
        let received = ModelReceived {
            order_id,
            tenant: tenant.clone(),
            owner: owner.clone(),
            owner_email: caller.email.clone(),
            material: material.code.clone(),
            file_name: file_name.clone(),
            size_bytes: size,
            channel: up.channel.to_string(),
        };
        outbox::enqueue(&mut tx, &Envelope::new("mes", &received)).await?;
        let job = PricingRequested {
            order_id,
            object_key: object_key.clone(),
            content_sha256: content_sha.clone(),
            material: material.clone(),
        };
        outbox::enqueue(&mut tx, &Envelope::new("mes", &job)).await?;
        tx.commit().await?;
        Ok(true)
    }
    .await;

    if let Ok(true) = result {
        state.relay.kick();
        tracing::info!(%order_id, material = %material.code, format = format.label(), size, "model received");
        return Ok(Accepted {
            order_id,
            status: OrderStatus::Pricing,
            replayed: false,
        });
    }
    // Nothing half-written: the stored bytes go too.
    if let Err(e) = state
        .store
        .delete(&ObjectPath::from(object_key.as_str()))
        .await
    {
        tracing::warn!(error = %e, object_key, "could not delete the stored model of a failed upload");
    }
    match result {
        Err(e) => Err(IntakeError::Internal(e)),
        _ => {
            // A concurrent request with the same Idempotency-Key made the order.
            let key = up.idempotency_key.as_deref().unwrap_or_default();
            replay(state, &tenant, key, &request_sha)
                .await?
                .ok_or_else(|| {
                    IntakeError::Internal(anyhow::anyhow!("idempotency record vanished"))
                })
        }
    }
}
