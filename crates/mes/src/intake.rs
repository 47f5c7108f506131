//! Receiving a model: checked by content, stored under a generated key, the
//! order minted and a pricing job queued — all or nothing.

use crate::orders;
use crate::{MesState, materials};
use adapters::objects::Completion;
use adapters::outbox;
use bytes::Bytes;
use domain::events::{Actor, Envelope, ModelReceived, PricingRequested};
use domain::price::MaterialSnapshot;
use domain::{Caller, OrderId, OrderStatus, Role};
use object_store::path::Path as ObjectPath;
use sha2::{Digest, Sha256};
use sqlx::Row;

/// Where a model's bytes are.
pub enum Source {
    /// Sent in the request: MES stores them under a generated key.
    Bytes { file_name: String, bytes: Bytes },
    /// Already written to object storage through a presigned URL (`POST /api/v1/uploads`).
    Direct {
        upload_id: String,
        /// Part number → the ETag the client's PUT of it answered (parts only).
        etags: std::collections::HashMap<u16, String>,
    },
}

/// A model as it arrived.
pub struct Upload {
    pub source: Source,
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
    #[error("there is no upload '{0}' of yours; ask POST /api/v1/uploads for one")]
    UnknownUpload(String),
    #[error("upload '{id}' expired at {at}; ask POST /api/v1/uploads for a new one")]
    UploadExpired { id: String, at: String },
    #[error("upload '{id}' was already used by order {order}")]
    UploadUsed { id: String, order: String },
    #[error("upload '{id}' is incomplete ({detail}); PUT the missing parts to their URLs")]
    UploadIncomplete { id: String, detail: String },
    #[error(
        "the store does not list the ETag of part {part} of upload '{id}': send \
         \"parts\": [{{\"part_number\": N, \"etag\": \"…\"}}] with what each part's PUT answered"
    )]
    PartEtagMissing { id: String, part: u16 },
    #[error("nothing was uploaded for upload '{0}': PUT the file to its URL first")]
    NothingUploaded(String),
    #[error("upload '{id}' is {actual} bytes, {declared} were declared")]
    SizeMismatch {
        id: String,
        actual: u64,
        declared: u64,
    },
    #[error("send either the multipart field 'file' or 'upload_id', not both")]
    FileAndUpload,
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

/// The model, checked and in object storage, ready to become an order.
struct Stored {
    object_key: String,
    file_name: String,
    size: u64,
    content_sha: String,
    format: geometry::Format,
    /// The direct upload it came from (marked used in the order's transaction).
    upload_id: Option<String>,
}

/// Accepts a model — sent in the request or uploaded directly — and makes the order:
/// the order and its events in one transaction, nothing left behind on failure.
#[tracing::instrument(skip_all, fields(order_id, channel = up.channel))]
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
    let tenant = caller.tenant();
    let (stored, request_sha) = match up.source {
        Source::Bytes {
            file_name: name,
            bytes,
        } => {
            if bytes.is_empty() {
                return Err(IntakeError::EmptyFile);
            }
            let format =
                geometry::detect(&bytes).map_err(|e| IntakeError::NotAModel(e.to_string()))?;
            let content_sha = hex::encode(Sha256::digest(&bytes));
            let request_sha =
                hex::encode(Sha256::digest(format!("{content_sha}:{}", material.code)));
            if let Some(key) = &up.idempotency_key {
                if let Some(done) = replay(state, &tenant, key, &request_sha).await? {
                    return Ok(done);
                }
            }
            let object_key = format!("models/{}", uuid::Uuid::new_v4());
            let size = bytes.len() as u64;
            state
                .store
                .put(&ObjectPath::from(object_key.as_str()), bytes.into())
                .await
                .map_err(|e| anyhow::anyhow!("storing the model: {e}"))?;
            let stored = Stored {
                object_key,
                file_name: web::text::file_name(&name),
                size,
                content_sha,
                format,
                upload_id: None,
            };
            (stored, request_sha)
        }
        Source::Direct { upload_id, etags } => {
            // The same upload named again with the same key is a retry: same order.
            let request_sha = hex::encode(Sha256::digest(format!(
                "upload:{upload_id}:{}",
                material.code
            )));
            if let Some(key) = &up.idempotency_key {
                if let Some(done) = replay(state, &tenant, key, &request_sha).await? {
                    return Ok(done);
                }
            }
            (
                direct(state, caller, &upload_id, &etags).await?,
                request_sha,
            )
        }
    };
    create_order(
        state,
        caller,
        &up.idempotency_key,
        up.channel,
        &material,
        &tenant,
        &request_sha,
        stored,
    )
    .await
}

/// Checks a direct upload (the caller's, unused, unexpired, present, of the declared
/// size, a model by content) and reads it.
async fn direct(
    state: &MesState,
    caller: &Caller,
    id: &str,
    etags: &std::collections::HashMap<u16, String>,
) -> Result<Stored, IntakeError> {
    let id: String = id.chars().take(64).collect();
    let Some(rec) = crate::uploads::find(state, caller, &id).await? else {
        return Err(IntakeError::UnknownUpload(id));
    };
    if let Some(order) = rec.used_by_order {
        return Err(IntakeError::UploadUsed { id, order });
    }
    if domain::to_ms(domain::now()) > rec.expires_at_ms {
        return Err(IntakeError::UploadExpired {
            id,
            at: domain::rfc3339(domain::from_ms(rec.expires_at_ms)),
        });
    }
    let path = ObjectPath::from(rec.object_key.as_str());
    if let (Some(upload), Some(part_bytes), Some(presigner)) =
        (&rec.multipart_id, rec.part_bytes, &state.presigner)
    {
        let expected = adapters::objects::part_sizes(rec.size_bytes, part_bytes);
        match presigner
            .complete_multipart(&path, upload, &expected, etags)
            .await
            .map_err(|e| anyhow::anyhow!("completing upload {id}: {e}"))?
        {
            Completion::Completed | Completion::Gone => {}
            Completion::EtagMissing(part) => {
                return Err(IntakeError::PartEtagMissing { id, part });
            }
            Completion::Incomplete { uploaded, expected } => {
                return Err(IntakeError::UploadIncomplete {
                    id,
                    detail: describe_parts(&uploaded, &expected),
                });
            }
        }
    }
    let meta = match state.store.head(&path).await {
        Ok(m) => m,
        Err(object_store::Error::NotFound { .. }) => return Err(IntakeError::NothingUploaded(id)),
        Err(e) => return Err(anyhow::anyhow!("checking upload {id}: {e}").into()),
    };
    if meta.size != rec.size_bytes {
        return Err(IntakeError::SizeMismatch {
            id,
            actual: meta.size,
            declared: rec.size_bytes,
        });
    }
    let bytes = state
        .store
        .get(&path)
        .await
        .map_err(|e| anyhow::anyhow!("reading upload {id}: {e}"))?
        .bytes()
        .await
        .map_err(|e| anyhow::anyhow!("reading upload {id}: {e}"))?;
    if bytes.len() as u64 != rec.size_bytes {
        // Overwritten between HEAD and GET (the URL is still valid): judge what we read.
        return Err(IntakeError::SizeMismatch {
            id,
            actual: bytes.len() as u64,
            declared: rec.size_bytes,
        });
    }
    let format = geometry::detect(&bytes).map_err(|e| IntakeError::NotAModel(e.to_string()))?;
    Ok(Stored {
        object_key: rec.object_key,
        file_name: rec.file_name,
        size: rec.size_bytes,
        content_sha: hex::encode(Sha256::digest(&bytes)),
        format,
        upload_id: Some(rec.id),
    })
}

/// Says which parts of a multipart upload are missing or of the wrong size.
fn describe_parts(uploaded: &[(u16, u64)], expected: &[(u16, u64)]) -> String {
    let mut problems = Vec::new();
    for &(n, size) in expected {
        match uploaded.iter().find(|(m, _)| *m == n) {
            None => problems.push(format!("part {n} ({size} bytes) is missing")),
            Some(&(_, got)) if got != size => {
                problems.push(format!("part {n} is {got} bytes, {size} were expected"))
            }
            Some(_) => {}
        }
    }
    for &(n, _) in uploaded {
        if !expected.iter().any(|(m, _)| *m == n) {
            problems.push(format!("part {n} was not handed out"));
        }
    }
    format!(
        "{} of {} parts uploaded: {}",
        uploaded.len().min(expected.len()),
        expected.len(),
        problems.join("; ")
    )
}

/// How the order's transaction ended.
enum Outcome {
    Created,
    /// A concurrent request with the same Idempotency-Key made the order.
    KeyRaced,
    /// A concurrent request used the same direct upload.
    UploadRaced,
}

/// The one place an order is made, whichever way its model arrived.
#[allow(clippy::too_many_arguments)]
async fn create_order(
    state: &MesState,
    caller: &Caller,
    idempotency_key: &Option<String>,
    channel: &'static str,
    material: &MaterialSnapshot,
    tenant: &str,
    request_sha: &str,
    stored: Stored,
) -> Result<Accepted, IntakeError> {
    let order_id = state.key.mint_order_id();
    tracing::Span::current().record("order_id", tracing::field::display(order_id));
    let Stored {
        object_key,
        file_name,
        size,
        content_sha,
        format,
        upload_id,
    } = stored;
    let owner = Actor {
        kind: "customer".into(),
        name: caller.name.clone(),
        user_id: Some(caller.user_id),
    };
    let result: anyhow::Result<Outcome> = async {
        let now = domain::to_ms(domain::now());
        let mut tx = state.db.begin_write().await?;
        if let Some(key) = idempotency_key {
            let fresh = sqlx::query(
                "INSERT INTO idempotency (tenant, idem_key, request_sha256, order_id, created_at_ms) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(tenant)
            .bind(key)
            .bind(request_sha)
            .bind(order_id.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if fresh.rows_affected() == 0 {
                return Ok(Outcome::KeyRaced);
            }
        }
        if let Some(id) = &upload_id {
            let claimed = sqlx::query(
                "UPDATE uploads SET used_by_order = $1 \
                 WHERE id = $2 AND used_by_order IS NULL AND removed_at_ms IS NULL",
            )
            .bind(order_id.to_string())
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if claimed.rows_affected() == 0 {
                return Ok(Outcome::UploadRaced);
            }
        }
        sqlx::query(
            "INSERT INTO orders (id, tenant, owner_id, owner_name, owner_email, channel, material_code, material_json, \
             status, object_key, file_name, size_bytes, content_sha256, format, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(order_id.to_string())
        .bind(tenant)
        .bind(caller.user_id.to_string())
        .bind(&caller.name)
        .bind(&caller.email)
        .bind(channel)
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
            tenant: tenant.to_string(),
            owner: owner.clone(),
            owner_email: caller.email.clone(),
            material: material.code.clone(),
            file_name: file_name.clone(),
            size_bytes: size,
            channel: channel.to_string(),
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
        Ok(Outcome::Created)
    }
    .await;

    if let Ok(Outcome::Created) = result {
        state.relay.kick();
        tracing::info!(%order_id, material = %material.code, format = format.label(), size, direct = upload_id.is_some(), "model received");
        return Ok(Accepted {
            order_id,
            status: OrderStatus::Pricing,
            replayed: false,
        });
    }
    // Nothing half-written: bytes MES stored go too. A direct upload's object stays
    // with its unused upload record (the client may retry until it expires).
    if upload_id.is_none() {
        if let Err(e) = state
            .store
            .delete(&ObjectPath::from(object_key.as_str()))
            .await
        {
            tracing::warn!(error = %e, object_key, "could not delete the stored model of a failed upload");
        }
    }
    match result {
        Err(e) => Err(IntakeError::Internal(e)),
        Ok(Outcome::UploadRaced) => {
            let id = upload_id.unwrap_or_default();
            let rec = crate::uploads::find(state, caller, &id).await?;
            match rec {
                // The sweep removed it (it had expired) just before.
                Some(r) if r.used_by_order.is_none() => Err(IntakeError::UploadExpired {
                    id,
                    at: domain::rfc3339(domain::from_ms(r.expires_at_ms)),
                }),
                r => Err(IntakeError::UploadUsed {
                    id,
                    order: r.and_then(|r| r.used_by_order).unwrap_or_default(),
                }),
            }
        }
        _ => {
            let key = idempotency_key.as_deref().unwrap_or_default();
            replay(state, tenant, key, request_sha)
                .await?
                .ok_or_else(|| {
                    IntakeError::Internal(anyhow::anyhow!("idempotency record vanished"))
                })
        }
    }
}
