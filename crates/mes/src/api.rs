//! MES's JSON API: `/api/v1/models` (upload), `/api/v1/materials`, and the
//! operators' `/mes/api/*`.

use crate::intake::{self, IntakeError, Source, Upload};
use crate::orders::{self, MesOrder};
use crate::queue::{self, Filter, QueueError, QueuePage};
use crate::{MesState, materials};
use axum::Json;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use domain::{Caller, OrderId, OrderStatus, Role};
use serde::Deserialize;
use serde_json::json;
use web::{ApiError, Authenticated};

/// The parts of an upload form.
pub struct RawUpload {
    pub file: Option<(String, Bytes)>,
    pub material: String,
    /// A direct upload named instead of a file (`POST /api/v1/uploads`).
    pub upload_id: Option<String>,
}

pub fn too_large(max: u64) -> ApiError {
    ApiError::TooLarge {
        message: format!(
            "the file is larger than the limit of {max} bytes ({:.1} MiB)",
            max as f64 / 1048576.0
        ),
    }
}

/// Reads `file` and `material` from a multipart body, refusing a file over `max` bytes
/// as soon as it passes the limit (the rest is never buffered).
pub async fn read_upload(mut mp: Multipart, max: u64) -> Result<RawUpload, ApiError> {
    let malformed = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large(max)
        } else {
            ApiError::BadRequest {
                code: "bad_multipart",
                message: format!("malformed multipart body: {e}"),
            }
        }
    };
    let mut out = RawUpload {
        file: None,
        material: String::new(),
        upload_id: None,
    };
    while let Some(mut field) = mp.next_field().await.map_err(malformed)? {
        match field.name() {
            Some("file") => {
                let name = field.file_name().unwrap_or("model").to_string();
                let mut buf = BytesMut::new();
                while let Some(chunk) = field.chunk().await.map_err(malformed)? {
                    if (buf.len() + chunk.len()) as u64 > max {
                        return Err(too_large(max));
                    }
                    buf.extend_from_slice(&chunk);
                }
                out.file = Some((name, buf.freeze()));
            }
            Some("material") => {
                let text = field.text().await.map_err(malformed)?;
                out.material = text.chars().take(64).collect();
            }
            Some("upload_id") => {
                let text = field.text().await.map_err(malformed)?;
                out.upload_id = Some(text.trim().chars().take(64).collect());
            }
            _ => {}
        }
    }
    Ok(out)
}

pub fn intake_error(e: IntakeError) -> ApiError {
    let msg = e.to_string();
    match e {
        IntakeError::NotCustomer => ApiError::Forbidden(msg),
        IntakeError::MissingFile => ApiError::unprocessable("missing_file", "file", msg),
        IntakeError::EmptyFile => ApiError::unprocessable("empty_file", "file", msg),
        IntakeError::NotAModel(_) => ApiError::unprocessable("not_a_model", "file", msg),
        IntakeError::MissingMaterial(_) => {
            ApiError::unprocessable("missing_material", "material", msg)
        }
        IntakeError::UnknownMaterial { .. } => {
            ApiError::unprocessable("unknown_material", "material", msg)
        }
        IntakeError::KeyReused(_) => ApiError::conflict("idempotency_key_reused", msg),
        IntakeError::BadKey => ApiError::BadRequest {
            code: "bad_idempotency_key",
            message: msg,
        },
        IntakeError::UnknownUpload(_) => {
            ApiError::unprocessable("unknown_upload", "upload_id", msg)
        }
        IntakeError::UploadExpired { .. } => {
            ApiError::unprocessable("upload_expired", "upload_id", msg)
        }
        IntakeError::UploadUsed { order, .. } => ApiError::Conflict {
            code: "upload_already_used",
            message: msg,
            details: Some(json!({ "order_id": order })),
        },
        IntakeError::UploadIncomplete { .. } => {
            ApiError::unprocessable("upload_incomplete", "upload_id", msg)
        }
        IntakeError::PartEtagMissing { .. } => {
            ApiError::unprocessable("part_etag_missing", "parts", msg)
        }
        IntakeError::NothingUploaded(_) => {
            ApiError::unprocessable("nothing_uploaded", "upload_id", msg)
        }
        IntakeError::SizeMismatch { .. } => {
            ApiError::unprocessable("upload_size_mismatch", "upload_id", msg)
        }
        IntakeError::FileAndUpload => ApiError::unprocessable("file_and_upload", "upload_id", msg),
        IntakeError::Internal(e) => ApiError::Internal(e),
    }
}

/// The JSON form of `POST /api/v1/models`: a direct upload named.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedUpload {
    pub upload_id: String,
    #[serde(default)]
    pub material: String,
    /// For an upload in parts: the ETag each part's PUT answered. Needed only
    /// where the store does not list them itself.
    #[serde(default)]
    pub parts: Vec<PartEtag>,
}

/// A part of a multipart direct upload and the ETag its PUT answered.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartEtag {
    pub part_number: u16,
    pub etag: String,
}

/// `POST /api/v1/models`: 202 with the new order's id; pricing follows. The model
/// comes in the multipart field `file`, or names a direct upload: multipart field
/// `upload_id`, or a JSON body `{"upload_id": "…", "material": "…"}`.
pub async fn upload_model(
    State(state): State<MesState>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    req: Request,
) -> Result<Response, ApiError> {
    if caller.role != Role::Customer {
        return Err(intake_error(IntakeError::NotCustomer));
    }
    let is_json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    let (source, material) = if is_json {
        let Json(body) = Json::<NamedUpload>::from_request(req, &state)
            .await
            .map_err(|e| ApiError::BadRequest {
                code: "bad_json",
                message: format!(
                    "{}; expected {{\"upload_id\": \"…\", \"material\": \"AU585Y\"}}",
                    e.body_text()
                ),
            })?;
        let source = Source::Direct {
            upload_id: body.upload_id,
            etags: body
                .parts
                .into_iter()
                .map(|p| (p.part_number, p.etag))
                .collect(),
        };
        (source, body.material.chars().take(64).collect())
    } else {
        let mp = Multipart::from_request(req, &state)
            .await
            .map_err(|e| ApiError::BadRequest {
                code: "bad_multipart",
                message: format!(
                    "{}; send multipart/form-data with 'file' (or 'upload_id') and 'material', \
                     or JSON naming an upload",
                    e.body_text()
                ),
            })?;
        let raw = read_upload(mp, state.limits.max_upload_bytes).await?;
        let source = match (raw.file, raw.upload_id) {
            (Some(_), Some(_)) => return Err(intake_error(IntakeError::FileAndUpload)),
            (Some((file_name, bytes)), None) => Source::Bytes { file_name, bytes },
            (None, Some(upload_id)) => Source::Direct {
                upload_id,
                etags: Default::default(),
            },
            (None, None) => return Err(intake_error(IntakeError::MissingFile)),
        };
        (source, raw.material)
    };
    let idempotency_key = headers
        .get("idempotency-key")
        .map(|v| v.to_str().map(str::to_string))
        .transpose()
        .map_err(|_| intake_error(IntakeError::BadKey))?;
    let up = Upload {
        source,
        material,
        idempotency_key,
        channel: "api",
    };
    let done = intake::accept(&state, &caller, up)
        .await
        .map_err(intake_error)?;
    let location = format!("/api/v1/orders/{}", done.order_id);
    let mut resp = (
        StatusCode::ACCEPTED,
        Json(json!({ "order_id": done.order_id, "status": done.status })),
    )
        .into_response();
    resp.headers_mut()
        .insert("location", location.parse().expect("ascii"));
    if done.replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", "true".parse().expect("ascii"));
    }
    Ok(resp)
}

/// `GET /api/v1/materials`: what a model can be made of.
pub async fn list_materials(
    State(state): State<MesState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let list = materials::list(&state.db).await?;
    Ok(Json(json!({ "materials": list.iter().map(|m| json!({
        "code": m.code, "name_en": m.name_en, "name_ru": m.name_ru, "density_g_cm3": m.density_g_cm3,
        "price_per_gram_minor": m.price_per_gram_minor, "currency": m.currency, "version": m.version,
    })).collect::<Vec<_>>() })))
}

pub fn staff(caller: &Caller) -> Result<(), ApiError> {
    match caller.role {
        Role::Customer => Err(ApiError::Forbidden(
            "the production API is for operators and managers".into(),
        )),
        _ => Ok(()),
    }
}

#[derive(Deserialize)]
pub struct QueueQuery {
    pub cursor: Option<String>,
    pub limit: Option<i64>,
    pub material: Option<String>,
}

/// `GET /api/v1/models/{order_id}/preview.png`: the model's picture, for the
/// order's customer and for staff.
pub async fn preview(
    State(state): State<MesState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let Some(sha) = orders::content_hash(&state.db, &caller, id).await? else {
        return Err(ApiError::NotFound("order"));
    };
    let key = object_store::path::Path::from(format!("previews/{sha}.png"));
    match state.store.get(&key).await {
        Ok(got) => {
            let bytes = got
                .bytes()
                .await
                .map_err(|e| ApiError::Internal(e.into()))?;
            Ok((
                [
                    ("content-type", "image/png"),
                    ("cache-control", "private, max-age=86400"),
                ],
                bytes,
            )
                .into_response())
        }
        Err(object_store::Error::NotFound { .. }) => Err(ApiError::NotFound("preview")),
        Err(e) => Err(ApiError::Internal(e.into())),
    }
}

/// `GET /mes/api/queue`: confirmed orders, newest first.
pub async fn get_queue(
    State(state): State<MesState>,
    Authenticated(caller): Authenticated,
    Query(q): Query<QueueQuery>,
) -> Result<Json<QueuePage>, ApiError> {
    staff(&caller)?;
    let (limit, cursor) = web::paging::parse(q.limit, 50, 200, q.cursor.as_deref())?;
    let filter = Filter {
        material: q.material.filter(|m| !m.is_empty()),
    };
    Ok(Json(queue::list(&state, &filter, cursor, limit).await?))
}

fn parse_id(s: &str) -> Result<OrderId, ApiError> {
    s.parse().map_err(|_| ApiError::NotFound("order"))
}

pub fn queue_error(e: QueueError) -> ApiError {
    let msg = e.to_string();
    match e {
        QueueError::NotFound => ApiError::NotFound("order"),
        QueueError::NotOperator => ApiError::Forbidden(msg),
        QueueError::AlreadyTaken { name, at } => ApiError::Conflict {
            code: "already_taken",
            message: msg,
            details: Some(json!({ "taken_by": name, "taken_at": at })),
        },
        QueueError::NotYours(name) => ApiError::Conflict {
            code: "assigned_to_another_operator",
            message: msg,
            details: Some(json!({ "operator": name })),
        },
        QueueError::Transition(t) => ApiError::Conflict {
            code: "invalid_transition",
            message: t.to_string(),
            details: Some(json!({ "current_status": t.from, "requested_status": t.to })),
        },
        QueueError::NotProductionStatus(_) => ApiError::unprocessable("bad_status", "status", msg),
        QueueError::TrackingRequired => {
            ApiError::unprocessable("tracking_number_required", "tracking_number", msg)
        }
        QueueError::Internal(e) => ApiError::Internal(e),
    }
}

/// `GET /mes/api/orders/{id}`: one production order with its history.
pub async fn get_order(
    State(state): State<MesState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<MesOrder>, ApiError> {
    staff(&caller)?;
    let id = parse_id(&id)?;
    orders::get(&state.db, &caller, id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("order"))
}

/// `POST /mes/api/orders/{id}/take`.
pub async fn take(
    State(state): State<MesState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<MesOrder>, ApiError> {
    let id = parse_id(&id)?;
    queue::take(&state, &caller, id)
        .await
        .map_err(queue_error)?;
    orders::get(&state.db, &caller, id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("order"))
}

#[derive(Deserialize)]
pub struct StatusBody {
    pub status: String,
    #[serde(default)]
    pub tracking_number: Option<String>,
}

/// `POST /mes/api/orders/{id}/status` with `{"status": "MANUFACTURED" | "PACKED" | "SHIPPED", "tracking_number": …}`.
pub async fn set_status(
    State(state): State<MesState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    body: Result<Json<StatusBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<MesOrder>, ApiError> {
    let id = parse_id(&id)?;
    let Json(body) = body.map_err(|e| ApiError::BadRequest {
        code: "bad_json",
        message: e.body_text(),
    })?;
    let to = OrderStatus::parse(&body.status).ok_or_else(|| {
        ApiError::unprocessable(
            "bad_status",
            "status",
            format!(
                "unknown status '{}': use MANUFACTURED, PACKED or SHIPPED",
                body.status
            ),
        )
    })?;
    queue::advance(&state, &caller, id, to, body.tracking_number)
        .await
        .map_err(queue_error)?;
    orders::get(&state.db, &caller, id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("order"))
}
