//! Direct uploads: a customer asks for a presigned URL, writes the model straight
//! into object storage (S3), then names the upload in `POST /api/v1/models`.
//! MES keeps a record of every upload it handed out (tenant, generated key,
//! declared size, expiry, the order that used it), and removes the objects of
//! those that expired without becoming an order ([`sweep_expired`]).

use crate::MesState;
use crate::api::too_large;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::{Caller, Role};
use object_store::path::Path as ObjectPath;
use serde::Deserialize;
use serde_json::json;
use sqlx::Row;
use web::{ApiError, Authenticated};

/// An upload MES handed out.
#[derive(Debug, Clone)]
pub struct UploadRecord {
    pub id: String,
    pub object_key: String,
    pub size_bytes: u64,
    pub file_name: String,
    pub expires_at_ms: i64,
    pub used_by_order: Option<String>,
    /// S3's multipart upload id, when the upload was handed out in parts.
    pub multipart_id: Option<String>,
    pub part_bytes: Option<u64>,
}

/// Finds an upload of the caller's tenant (another tenant's upload is not found).
pub async fn find(
    state: &MesState,
    caller: &Caller,
    id: &str,
) -> anyhow::Result<Option<UploadRecord>> {
    // Upload ids are UUIDs we handed out: anything else names no upload (and a
    // NUL would not even reach PostgreSQL as text).
    let Ok(id) = uuid::Uuid::parse_str(id.trim()) else {
        return Ok(None);
    };
    let id = id.to_string();
    let row = sqlx::query(
        "SELECT id, object_key, size_bytes, file_name, expires_at_ms, used_by_order, multipart_id, part_bytes \
         FROM uploads \
         WHERE id = $1 AND tenant = $2",
    )
    .bind(&id)
    .bind(caller.tenant())
    .fetch_optional(state.db.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(UploadRecord {
        id: row.try_get("id")?,
        object_key: row.try_get("object_key")?,
        size_bytes: row.try_get::<i64, _>("size_bytes")? as u64,
        file_name: row.try_get("file_name")?,
        expires_at_ms: row.try_get("expires_at_ms")?,
        used_by_order: row.try_get("used_by_order")?,
        multipart_id: row.try_get("multipart_id")?,
        part_bytes: row
            .try_get::<Option<i64>, _>("part_bytes")?
            .map(|b| b as u64),
    }))
}

/// The body of `POST /api/v1/uploads`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUpload {
    /// The exact size the client will upload; checked after the upload.
    pub size_bytes: u64,
    #[serde(default)]
    pub file_name: Option<String>,
}

/// `POST /api/v1/uploads`: 201 with a presigned PUT URL for one model.
#[tracing::instrument(skip_all, fields(upload_id))]
pub async fn create(
    State(state): State<MesState>,
    Authenticated(caller): Authenticated,
    body: Result<Json<NewUpload>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    if caller.role != Role::Customer {
        return Err(ApiError::Forbidden(
            "only customers can upload models".into(),
        ));
    }
    let Some(presigner) = &state.presigner else {
        return Err(ApiError::NotOffered {
            code: "direct_uploads_unavailable",
            message: "direct uploads need S3 object storage (mes.objects_url = s3://bucket); \
                      this deployment keeps models in a local directory: send the file in the \
                      multipart field 'file' of POST /api/v1/models instead"
                .into(),
        });
    };
    let Json(body) = body.map_err(|e| ApiError::BadRequest {
        code: "bad_json",
        message: format!(
            "{}; expected {{\"size_bytes\": N, \"file_name\": \"ring.stl\"}}",
            e.body_text()
        ),
    })?;
    if body.size_bytes == 0 {
        return Err(ApiError::unprocessable(
            "empty_file",
            "size_bytes",
            "size_bytes must be the model's size in bytes, more than 0",
        ));
    }
    let max = state.limits.max_upload_bytes;
    if body.size_bytes > max {
        return Err(too_large(max));
    }
    let file_name = web::text::file_name(body.file_name.as_deref().unwrap_or("model"));
    let id = uuid::Uuid::now_v7().to_string();
    tracing::Span::current().record("upload_id", id.as_str());
    // A generated key: nothing the client sends ends up in the object's name.
    let object_key = format!("models/{}", uuid::Uuid::new_v4());
    let now = domain::now();
    let expires_at = now + state.upload_url_expiry;
    let key = ObjectPath::from(object_key.as_str());
    // Large files go in parts (S3 takes one PUT of up to 5 GiB, but a part can
    // be retried alone and several sent at once); small ones in one PUT.
    let multipart = body.size_bytes > state.multipart_part_bytes && presigner.multipart_available();
    let (multipart_id, transfer) = if multipart {
        let upload = presigner.start_multipart(&key).await?;
        let parts = adapters::objects::part_sizes(body.size_bytes, state.multipart_part_bytes)
            .into_iter()
            .map(|(n, size)| {
                Ok(json!({
                    "part_number": n,
                    "method": "PUT",
                    "url": presigner.part_url(&key, &upload, n, state.upload_url_expiry)?,
                    "offset": u64::from(n - 1) * state.multipart_part_bytes,
                    "size_bytes": size,
                }))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        (
            Some(upload),
            json!({"method": "PUT_PARTS", "part_size_bytes": state.multipart_part_bytes, "parts": parts}),
        )
    } else {
        let url = presigner.put_url(&key, state.upload_url_expiry).await?;
        (None, json!({"method": "PUT", "url": url, "headers": {}}))
    };
    let recorded = sqlx::query(
        "INSERT INTO uploads (id, tenant, owner_id, object_key, size_bytes, file_name, created_at_ms, expires_at_ms, \
         multipart_id, part_bytes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&id)
    .bind(caller.tenant())
    .bind(caller.user_id.to_string())
    .bind(&object_key)
    .bind(body.size_bytes as i64)
    .bind(&file_name)
    .bind(domain::to_ms(now))
    .bind(domain::to_ms(expires_at))
    .bind(multipart_id.as_deref())
    .bind(multipart.then_some(state.multipart_part_bytes as i64))
    .execute(state.db.pool())
    .await;
    if let Err(e) = recorded {
        // Nothing half-made: S3 forgets the upload MES could not record.
        if let Some(upload) = &multipart_id {
            if let Err(abort) = presigner.abort_multipart(&key, upload).await {
                tracing::warn!(error = %abort, upload_id = %id, "could not abort an unrecorded multipart upload");
            }
        }
        return Err(anyhow::Error::from(e).into());
    }
    tracing::info!(upload_id = %id, size = body.size_bytes, multipart, "direct upload handed out");
    let mut answer = json!({
        "upload_id": id,
        "size_bytes": body.size_bytes,
        "file_name": file_name,
        "expires_at": domain::rfc3339(expires_at),
    });
    if let (Some(a), Some(t)) = (answer.as_object_mut(), transfer.as_object()) {
        a.extend(t.clone());
    }
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// Removes the objects of direct uploads that expired more than `grace` ago
/// and never became an order (and aborts S3's multipart upload of those handed
/// out in parts, so its parts stop being stored). Each row is claimed first
/// (`removed_at_ms`), and naming an upload claims it only while unclaimed, so a
/// naming and a sweep never both win and a used upload is never touched.
/// Returns how many were removed.
pub async fn sweep_expired(state: &MesState, grace: std::time::Duration) -> anyhow::Result<usize> {
    let now = domain::to_ms(domain::now());
    let before = now - grace.as_millis() as i64;
    let rows = sqlx::query(
        "SELECT id, object_key, multipart_id FROM uploads \
         WHERE used_by_order IS NULL AND removed_at_ms IS NULL AND expires_at_ms < $1 \
         ORDER BY expires_at_ms LIMIT 500",
    )
    .bind(before)
    .fetch_all(state.db.pool())
    .await?;
    let mut removed = 0;
    for row in rows {
        let id: String = row.try_get("id")?;
        let object_key: String = row.try_get("object_key")?;
        let multipart_id: Option<String> = row.try_get("multipart_id")?;
        let claimed = sqlx::query(
            "UPDATE uploads SET removed_at_ms = $1 \
             WHERE id = $2 AND used_by_order IS NULL AND removed_at_ms IS NULL",
        )
        .bind(now)
        .bind(&id)
        .execute(state.db.pool())
        .await?;
        if claimed.rows_affected() == 0 {
            continue; // named (or swept by another MES process) meanwhile
        }
        let path = ObjectPath::from(object_key.as_str());
        let deleted = match state.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = deleted {
            // Unclaim it so the next sweep tries again; naming it stays refused (expired).
            tracing::warn!(upload_id = %id, error = %e, "sweep: could not remove an expired upload's object; will retry");
            sqlx::query("UPDATE uploads SET removed_at_ms = NULL WHERE id = $1")
                .bind(&id)
                .execute(state.db.pool())
                .await?;
            continue;
        }
        if let (Some(upload), Some(presigner)) = (&multipart_id, &state.presigner) {
            if let Err(e) = presigner.abort_multipart(&path, upload).await {
                tracing::warn!(upload_id = %id, error = %e, "sweep: could not abort an expired multipart upload");
            }
        }
        tracing::info!(upload_id = %id, object_key, "sweep: removed an expired, unused direct upload");
        removed += 1;
    }
    Ok(removed)
}

/// Sweeps every `every` until dropped, counting removals in
/// `alexandrite_uploads_removed_total`.
pub async fn sweep_forever(
    state: MesState,
    every: std::time::Duration,
    grace: std::time::Duration,
    metrics: adapters::metrics::Metrics,
) {
    loop {
        tokio::time::sleep(every).await;
        match sweep_expired(&state, grace).await {
            Ok(n) => metrics.uploads_removed(n),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "sweep of expired uploads failed; will retry")
            }
        }
    }
}
