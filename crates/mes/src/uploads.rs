//! Direct uploads: a customer asks for a presigned URL, writes the model straight
//! into object storage (S3), then names the upload in `POST /api/v1/models`.
//! MES keeps a record of every upload it handed out (tenant, generated key,
//! declared size, expiry, the order that used it).

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
}

/// Finds an upload of the caller's tenant (another tenant's upload is not found).
pub async fn find(
    state: &MesState,
    caller: &Caller,
    id: &str,
) -> anyhow::Result<Option<UploadRecord>> {
    let row = sqlx::query(
        "SELECT id, object_key, size_bytes, file_name, expires_at_ms, used_by_order FROM uploads \
         WHERE id = $1 AND tenant = $2",
    )
    .bind(id)
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
        return Err(ApiError::NotImplemented {
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
    let file_name = crate::intake::file_name(body.file_name.as_deref().unwrap_or("model"));
    let id = uuid::Uuid::now_v7().to_string();
    tracing::Span::current().record("upload_id", id.as_str());
    // A generated key: nothing the client sends ends up in the object's name.
    let object_key = format!("models/{}", uuid::Uuid::new_v4());
    let now = domain::now();
    let expires_at = now + state.upload_url_expiry;
    let url = presigner
        .put_url(
            &ObjectPath::from(object_key.as_str()),
            state.upload_url_expiry,
        )
        .await?;
    sqlx::query(
        "INSERT INTO uploads (id, tenant, owner_id, object_key, size_bytes, file_name, created_at_ms, expires_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(caller.tenant())
    .bind(caller.user_id.to_string())
    .bind(&object_key)
    .bind(body.size_bytes as i64)
    .bind(&file_name)
    .bind(domain::to_ms(now))
    .bind(domain::to_ms(expires_at))
    .execute(state.db.pool())
    .await?;
    tracing::info!(upload_id = %id, size = body.size_bytes, "direct upload handed out");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "upload_id": id,
            "method": "PUT",
            "url": url,
            "headers": {},
            "size_bytes": body.size_bytes,
            "file_name": file_name,
            "expires_at": domain::rfc3339(expires_at),
        })),
    )
        .into_response())
}
