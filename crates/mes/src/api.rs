//! MES's JSON API: `/api/v1/models` (upload), `/api/v1/materials`, and the
//! operators' `/mes/api/*`.

use crate::intake::{self, IntakeError, Source, Upload};
use crate::orders::{self, MesOrder};
use crate::queue::{self, Filter, QueueError, QueuePage};
use crate::{MesState, materials};
use axum::Json;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use domain::OrderStatus;
use serde::Deserialize;
use serde_json::json;
use web::{ApiError, ApiJson, ApiQuery, Authenticated, Customer, Manager, OrderIdPath, Staff};

/// The parts of an upload form.
pub struct RawUpload {
    pub file: Option<(String, Bytes)>,
    pub material: String,
    /// A direct upload named instead of a file (`POST /api/v1/uploads`).
    pub upload_id: Option<String>,
}

/// A form field sent twice: which one counts would be a guess.
fn duplicate_field(name: &str) -> ApiError {
    let field = match name {
        "file" => "file",
        "material" => "material",
        _ => "upload_id",
    };
    ApiError::unprocessable(
        "duplicate_field",
        field,
        format!("the field '{field}' was sent more than once; send it once"),
    )
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
    let mut seen: Vec<String> = Vec::new();
    while let Some(mut field) = mp.next_field().await.map_err(malformed)? {
        let name = field.name().unwrap_or("").to_string();
        if matches!(name.as_str(), "file" | "material" | "upload_id") {
            if seen.contains(&name) {
                return Err(duplicate_field(&name));
            }
            seen.push(name.clone());
        }
        match name.as_str() {
            "file" => {
                let name = web::text::file_name(field.file_name().unwrap_or("model"));
                let mut buf = BytesMut::new();
                while let Some(chunk) = field.chunk().await.map_err(malformed)? {
                    if (buf.len() + chunk.len()) as u64 > max {
                        return Err(too_large(max));
                    }
                    buf.extend_from_slice(&chunk);
                }
                out.file = Some((name, buf.freeze()));
            }
            "material" => {
                let text = field.text().await.map_err(malformed)?;
                out.material = text.chars().take(64).collect();
            }
            "upload_id" => {
                let text = field.text().await.map_err(malformed)?;
                out.upload_id = Some(text.trim().chars().take(64).collect());
            }
            _ => {}
        }
    }
    Ok(out)
}

impl From<IntakeError> for ApiError {
    fn from(e: IntakeError) -> ApiError {
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
            IntakeError::FileAndUpload => {
                ApiError::unprocessable("file_and_upload", "upload_id", msg)
            }
            IntakeError::Internal(e) => ApiError::Internal(e),
        }
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
    caller: Result<Customer, ApiError>,
    headers: HeaderMap,
    req: Request,
) -> Result<Response, ApiError> {
    // Staff are told what intake says of them, not the generic refusal.
    let caller = match caller {
        Ok(Customer(c)) => c,
        Err(ApiError::Forbidden(_)) => return Err(IntakeError::NotCustomer.into()),
        Err(e) => return Err(e),
    };
    let is_json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    let (source, material) = if is_json {
        let ApiJson(body) = ApiJson::<NamedUpload>::from_request(req, &state)
            .await
            .map_err(|e| match e {
                ApiError::BadRequest { code, message } => ApiError::BadRequest {
                    code,
                    message: format!(
                        "{message}; expected {{\"upload_id\": \"…\", \"material\": \"AU585Y\"}}"
                    ),
                },
                e => e,
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
            (Some(_), Some(_)) => return Err(ApiError::from(IntakeError::FileAndUpload)),
            (Some((file_name, bytes)), None) => Source::Bytes { file_name, bytes },
            (None, Some(upload_id)) => Source::Direct {
                upload_id,
                etags: Default::default(),
            },
            (None, None) => return Err(ApiError::from(IntakeError::MissingFile)),
        };
        (source, raw.material)
    };
    let idempotency_key = headers
        .get("idempotency-key")
        .map(|v| v.to_str().map(str::to_string))
        .transpose()
        .map_err(|_| ApiError::from(IntakeError::BadKey))?;
    let up = Upload {
        source,
        material,
        idempotency_key,
        channel: "api",
    };
    let done = intake::accept(&state, &caller, up)
        .await
        .map_err(ApiError::from)?;
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

#[derive(Deserialize)]
pub struct QueueQuery {
    pub cursor: Option<String>,
    pub limit: Option<i64>,
    pub material: Option<String>,
    /// Grams, e.g. `2.5`.
    pub min_weight_g: Option<String>,
    /// Minor units (kopecks).
    pub min_price_minor: Option<String>,
    /// Only for the naive baseline: rows to skip.
    pub offset: Option<i64>,
}

/// The queue's filters from a query string; bad values are 422 `bad_filter`.
pub fn parse_filter(
    material: Option<&str>,
    min_weight_g: Option<&str>,
    min_price_minor: Option<&str>,
) -> Result<Filter, ApiError> {
    let material = material
        .map(|m| m.trim().to_ascii_uppercase())
        .filter(|m| !m.is_empty());
    if let Some(m) = &material
        && !materials::plausible_code(m)
    {
        return Err(ApiError::unprocessable(
            "unknown_material",
            "material",
            format!("unknown material '{m}': see GET /api/v1/materials"),
        ));
    }
    let min_weight_g = match min_weight_g.map(str::trim).filter(|w| !w.is_empty()) {
        None => None,
        Some(w) => match w.replace(',', ".").parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Some(v),
            _ => {
                return Err(ApiError::unprocessable(
                    "bad_filter",
                    "min_weight_g",
                    format!("min_weight_g must be a number of grams ≥ 0, e.g. 2.5 (got '{w}')"),
                ));
            }
        },
    };
    let min_price_minor = match min_price_minor.map(str::trim).filter(|p| !p.is_empty()) {
        None => None,
        Some(p) => match p.parse::<i64>() {
            Ok(v) if v >= 0 => Some(v),
            _ => {
                return Err(ApiError::unprocessable(
                    "bad_filter",
                    "min_price_minor",
                    format!(
                        "min_price_minor must be a whole number of kopecks ≥ 0, e.g. 500000 (got '{p}')"
                    ),
                ));
            }
        },
    };
    Ok(Filter {
        material,
        min_weight_g,
        min_price_minor,
    })
}

/// An empty page filtered by a material nobody has heard of is a mistake, not an empty queue.
async fn check_material(state: &MesState, filter: &Filter) -> Result<(), ApiError> {
    let Some(m) = &filter.material else {
        return Ok(());
    };
    let known = materials::list(&state.db).await?;
    if known.iter().any(|k| &k.code == m) {
        Ok(())
    } else {
        Err(ApiError::unprocessable(
            "unknown_material",
            "material",
            format!("unknown material '{m}': see GET /api/v1/materials"),
        ))
    }
}

/// `GET /api/v1/models/{order_id}/preview.png`: the model's picture, for the
/// order's customer and for staff.
pub async fn preview(
    State(state): State<MesState>,
    Authenticated(caller): Authenticated,
    OrderIdPath(id): OrderIdPath,
) -> Result<Response, ApiError> {
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

/// `GET /mes/api/queue`: confirmed orders, newest first. The first page comes
/// from the cache (`x-cache: hit|miss|bypass`); later pages from the database
/// (the replica once it has the caller's own last write).
pub async fn get_queue(
    State(state): State<MesState>,
    Staff(caller): Staff,
    ApiQuery(q): ApiQuery<QueueQuery>,
) -> Result<Response, ApiError> {
    let (limit, cursor) =
        web::paging::parse(q.limit, queue::DEFAULT_LIMIT, 200, q.cursor.as_deref())?;
    let filter = parse_filter(
        q.material.as_deref(),
        q.min_weight_g.as_deref(),
        q.min_price_minor.as_deref(),
    )?;
    let (body, outcome) = match cursor {
        None => state.feed.first_page(&filter, limit).await?,
        Some(c) => {
            let pool = state.db.reader(&caller.user_id.to_string()).await;
            let page = queue::list(&state.feed, pool, &filter, Some(c), limit).await?;
            (
                serde_json::to_vec(&page)
                    .map_err(anyhow::Error::from)?
                    .into(),
                queue::CacheOutcome::Bypass,
            )
        }
    };
    if body.starts_with(b"{\"orders\":[]") {
        check_material(&state, &filter).await?;
    }
    Ok((
        [
            ("content-type", "application/json"),
            ("x-cache", outcome.as_str()),
        ],
        body,
    )
        .into_response())
}

/// `GET /mes/api/queue/naive` (only with `mes.bench_naive_queue`): the
/// benchmark's baseline — OFFSET paging, no index, no cache.
pub async fn get_queue_naive(
    State(state): State<MesState>,
    Staff(_caller): Staff,
    ApiQuery(q): ApiQuery<QueueQuery>,
) -> Result<Json<QueuePage>, ApiError> {
    let filter = parse_filter(q.material.as_deref(), None, None)?;
    let limit = q.limit.unwrap_or(queue::DEFAULT_LIMIT).clamp(1, 200);
    let offset = q.offset.unwrap_or(0).max(0);
    Ok(Json(
        queue::list_naive(&state.feed, &filter, offset, limit).await?,
    ))
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> ApiError {
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
            QueueError::NotProductionStatus(_) => {
                ApiError::unprocessable("bad_status", "status", msg)
            }
            QueueError::TrackingRequired => {
                ApiError::unprocessable("tracking_number_required", "tracking_number", msg)
            }
            QueueError::BadTracking => {
                ApiError::unprocessable("bad_tracking_number", "tracking_number", msg)
            }
            QueueError::ReleaseNotOperator | QueueError::NotManager => ApiError::Forbidden(msg),
            QueueError::ReasonRequired => ApiError::unprocessable("reason_required", "reason", msg),
            QueueError::NotInWork(status) => ApiError::Conflict {
                code: "not_in_work",
                message: msg,
                details: Some(json!({ "current_status": status })),
            },
            QueueError::AlreadyAssigned(name) => ApiError::Conflict {
                code: "already_assigned",
                message: msg,
                details: Some(json!({ "operator": name })),
            },
            QueueError::UnknownOperator(_) => {
                ApiError::unprocessable("unknown_operator", "operator_id", msg)
            }
            QueueError::Internal(e) => ApiError::Internal(e),
        }
    }
}

/// `GET /mes/api/orders/{id}`: one production order with its history.
pub async fn get_order(
    State(state): State<MesState>,
    Staff(caller): Staff,
    OrderIdPath(id): OrderIdPath,
) -> Result<Json<MesOrder>, ApiError> {
    orders::get(&state.db, &caller, id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("order"))
}

/// `POST /mes/api/orders/{id}/take`.
pub async fn take(
    State(state): State<MesState>,
    Authenticated(caller): Authenticated,
    OrderIdPath(id): OrderIdPath,
) -> Result<Json<MesOrder>, ApiError> {
    queue::take(&state, &caller, id).await?;
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
    OrderIdPath(id): OrderIdPath,
    ApiJson(body): ApiJson<StatusBody>,
) -> Result<Json<MesOrder>, ApiError> {
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
        .map_err(ApiError::from)?;
    orders::get(&state.db, &caller, id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("order"))
}

#[derive(Deserialize)]
pub struct ReleaseBody {
    #[serde(default)]
    pub reason: String,
}

/// `POST /mes/api/orders/{id}/release` with `{"reason": "…"}`: the assigned
/// operator gives the order back to the queue (→ CONFIRMED).
pub async fn release(
    State(state): State<MesState>,
    Authenticated(caller): Authenticated,
    OrderIdPath(id): OrderIdPath,
    ApiJson(b): ApiJson<ReleaseBody>,
) -> Result<Json<MesOrder>, ApiError> {
    queue::release(&state, &caller, id, &b.reason)
        .await
        .map_err(ApiError::from)?;
    orders::get(&state.db, &caller, id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("order"))
}

#[derive(Deserialize)]
pub struct ReassignBody {
    pub operator_id: String,
    #[serde(default)]
    pub operator_name: Option<String>,
    #[serde(default)]
    pub reason: String,
}

/// `POST /mes/api/orders/{id}/reassign` with `{"operator_id", "operator_name"?, "reason"}`:
/// a manager hands an order in work to another operator.
pub async fn reassign(
    State(state): State<MesState>,
    Manager(caller): Manager,
    OrderIdPath(id): OrderIdPath,
    ApiJson(b): ApiJson<ReassignBody>,
) -> Result<Json<MesOrder>, ApiError> {
    let to: uuid::Uuid = b.operator_id.trim().parse().map_err(|_| {
        ApiError::unprocessable(
            "unknown_operator",
            "operator_id",
            format!(
                "operator_id must be a user id (UUID), got '{}'",
                b.operator_id
            ),
        )
    })?;
    queue::reassign(
        &state,
        &caller,
        id,
        to,
        b.operator_name.as_deref(),
        &b.reason,
    )
    .await
    .map_err(ApiError::from)?;
    orders::get(&state.db, &caller, id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("order"))
}

/// `GET /mes/api/operators`: operators MES has seen at work (for reassigning).
pub async fn operators(
    State(state): State<MesState>,
    Staff(_caller): Staff,
) -> Result<Json<serde_json::Value>, ApiError> {
    let list = queue::known_operators(&state).await?;
    Ok(Json(
        json!({ "operators": list.iter().map(|(id, name)| json!({"id": id, "name": name})).collect::<Vec<_>>() }),
    ))
}
