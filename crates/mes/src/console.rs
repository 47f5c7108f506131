//! Pages: the customer's upload form (MES owns models and materials) and the
//! operators' console.

use crate::api::{intake_error, read_upload};
use crate::intake::{self, IntakeError, Source, Upload};
use crate::orders::{self, MesOrder};
use crate::queue::{self, Filter, QueueError};
use crate::{MesState, materials};
use askama::Template;
use axum::Form;
use axum::extract::{Multipart, OriginalUri, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use domain::{Caller, OrderId, OrderStatus, Role};
use serde::Deserialize;
use web::assets::{Frame, login_redirect, path_of, render};
use web::{ApiError, Lang, MaybeCaller, Texts};

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    t: &'static Texts,
    frame: Frame,
    title: String,
    message: String,
}

fn message(status: StatusCode, frame: Frame, message: &str) -> Response {
    render(
        status,
        MessagePage {
            t: frame.t,
            title: frame.t.error_title.into(),
            message: message.into(),
            frame,
        },
    )
}

pub struct MaterialOption {
    pub code: String,
    pub label: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "upload.html")]
struct UploadPage {
    t: &'static Texts,
    frame: Frame,
    materials: Vec<MaterialOption>,
    error: String,
    max_mib: String,
}

async fn upload_page(
    state: &MesState,
    lang: Lang,
    user: Caller,
    uri: &OriginalUri,
    chosen: &str,
    error: String,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let t = lang.texts();
    let list = materials::list(&state.db).await?;
    let materials = list
        .iter()
        .map(|m| MaterialOption {
            code: m.code.clone(),
            label: format!(
                "{} — {}/{}",
                if lang == Lang::Ru {
                    &m.name_ru
                } else {
                    &m.name_en
                },
                web::fmt::money(m.price_per_gram_minor, lang),
                t.g
            ),
            selected: m.code == chosen,
        })
        .collect();
    let frame = Frame::new(lang, Some(user), path_of(uri));
    let max_mib = format!(
        "{:.0} {}",
        state.limits.max_upload_bytes as f64 / 1048576.0,
        t.mib
    );
    Ok(render(
        status,
        UploadPage {
            t,
            frame,
            materials,
            error,
            max_mib,
        },
    ))
}

pub async fn upload_form(
    State(state): State<MesState>,
    lang: Lang,
    MaybeCaller(user): MaybeCaller,
    uri: OriginalUri,
) -> Result<Response, ApiError> {
    let Some(user) = user else {
        return Ok(login_redirect(&uri));
    };
    if user.role != Role::Customer {
        return Ok(message(
            StatusCode::FORBIDDEN,
            Frame::new(lang, Some(user), path_of(&uri)),
            lang.texts().forbidden,
        ));
    }
    upload_page(&state, lang, user, &uri, "", String::new(), StatusCode::OK).await
}

/// The shop's upload: the same intake as the API, then to the order's page.
pub async fn upload(
    State(state): State<MesState>,
    lang: Lang,
    MaybeCaller(user): MaybeCaller,
    uri: OriginalUri,
    mp: Multipart,
) -> Result<Response, ApiError> {
    let Some(user) = user else {
        return Ok(login_redirect(&uri));
    };
    let t = lang.texts();
    let max = state.limits.max_upload_bytes;
    let raw = match read_upload(mp, max).await {
        Ok(r) => r,
        Err(ApiError::TooLarge { .. }) => {
            let msg = format!(
                "{} {:.0} {}.",
                t.err_too_large,
                max as f64 / 1048576.0,
                t.mib
            );
            return upload_page(
                &state,
                lang,
                user,
                &uri,
                "",
                msg,
                StatusCode::PAYLOAD_TOO_LARGE,
            )
            .await;
        }
        Err(e) => return Err(e),
    };
    let chosen = raw.material.clone();
    let result = match raw.file {
        Some((file_name, bytes)) if !file_name.is_empty() || !bytes.is_empty() => {
            let up = Upload {
                source: Source::Bytes { file_name, bytes },
                material: raw.material,
                idempotency_key: None,
                channel: "shop",
            };
            intake::accept(&state, &user, up).await
        }
        _ => Err(IntakeError::MissingFile),
    };
    match result {
        Ok(done) => Ok(Redirect::to(&format!("/account/orders/{}", done.order_id)).into_response()),
        Err(e) => {
            let text = match &e {
                IntakeError::MissingFile => t.err_missing_file.to_string(),
                IntakeError::EmptyFile => t.err_empty_file.to_string(),
                IntakeError::NotAModel(detail) => format!("{} ({detail})", t.err_not_a_model),
                IntakeError::MissingMaterial(_) | IntakeError::UnknownMaterial { .. } => {
                    t.err_unknown_material.into()
                }
                _ => e.to_string(),
            };
            let status = intake_error(e).status();
            if status == StatusCode::INTERNAL_SERVER_ERROR {
                return Err(ApiError::Internal(anyhow::anyhow!(text)));
            }
            upload_page(&state, lang, user, &uri, &chosen, text, status).await
        }
    }
}

/// One row of the console's tables.
pub struct Row {
    pub id: String,
    pub short_id: String,
    pub status: String,
    pub label: &'static str,
    pub material: String,
    pub file_name: String,
    pub customer: String,
    pub weight: String,
    pub price: String,
    pub confirmed: String,
    pub operator: String,
    pub tracking: String,
}

fn ago(rfc: Option<&str>, t: &Texts) -> String {
    let Some(s) = rfc else { return String::new() };
    let Ok(at) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
    else {
        return String::new();
    };
    let mins = (domain::now() - at).whole_minutes().max(0);
    let ru = t.lang == "ru";
    match mins {
        0 => {
            if ru {
                "только что".into()
            } else {
                "just now".into()
            }
        }
        m if m < 60 => {
            if ru {
                format!("{m} мин назад")
            } else {
                format!("{m} min ago")
            }
        }
        m if m < 48 * 60 => {
            if ru {
                format!("{} ч назад", m / 60)
            } else {
                format!("{} h ago", m / 60)
            }
        }
        m => {
            if ru {
                format!("{} дн назад", m / 1440)
            } else {
                format!("{} days ago", m / 1440)
            }
        }
    }
}

impl Row {
    fn new(o: &MesOrder, t: &'static Texts) -> Row {
        let id = o.order_id.to_string();
        Row {
            short_id: format!("{}…{}", &id[..8], &id[32..]),
            status: o.status.as_str().into(),
            label: t.status(o.status.as_str()),
            material: o.material.clone(),
            file_name: o.file_name.clone(),
            customer: o.customer.clone(),
            weight: o
                .geometry
                .as_ref()
                .map(|g| format!("{} {}", web::fmt::number(g.weight_g, 2, t.language()), t.g))
                .unwrap_or_default(),
            price: o
                .price
                .as_ref()
                .map(|q| web::fmt::money(q.total_minor, t.language()))
                .unwrap_or_default(),
            confirmed: ago(o.confirmed_at.as_deref(), t),
            operator: o
                .operator
                .as_ref()
                .map(|op| op.name.clone())
                .unwrap_or_default(),
            tracking: o.tracking_number.clone().unwrap_or_default(),
            id,
        }
    }
    /// The next production step's status code, and its button label.
    pub fn next_step(&self, t: &'static Texts) -> Option<(&'static str, &'static str)> {
        match self.status.as_str() {
            "MANUFACTURING_STARTED" => Some(("MANUFACTURED", t.mark_manufactured)),
            "MANUFACTURED" => Some(("PACKED", t.mark_packed)),
            "PACKED" => Some(("SHIPPED", t.mark_shipped)),
            _ => None,
        }
    }
}

#[derive(Template)]
#[template(path = "console.html")]
struct ConsolePage {
    t: &'static Texts,
    frame: Frame,
    queue: Vec<Row>,
    mine: Vec<Row>,
    materials: Vec<MaterialOption>,
    next_cursor: Option<String>,
    notice: String,
    error: String,
    is_operator: bool,
}

#[derive(Deserialize, Default)]
pub struct ConsoleQuery {
    material: Option<String>,
    cursor: Option<String>,
    notice: Option<String>,
}

fn staff_only(lang: Lang, user: Option<Caller>, uri: &OriginalUri) -> Result<Caller, Response> {
    match user {
        None => Err(login_redirect(uri)),
        Some(u) if u.role != Role::Customer => Ok(u),
        Some(u) => Err(message(
            StatusCode::FORBIDDEN,
            Frame::new(lang, Some(u), path_of(uri)),
            lang.texts().forbidden,
        )),
    }
}

async fn console_page(
    state: &MesState,
    lang: Lang,
    user: Caller,
    uri: &OriginalUri,
    q: ConsoleQuery,
    error: String,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let t = lang.texts();
    let material = q.material.filter(|m| !m.is_empty());
    let cursor = q.cursor.as_deref().and_then(web::paging::decode);
    let page = queue::list(
        state,
        &Filter {
            material: material.clone(),
        },
        cursor,
        50,
    )
    .await?;
    let mine = queue::in_work(state, &user).await?;
    let materials = materials::list(&state.db)
        .await?
        .into_iter()
        .map(|m| MaterialOption {
            selected: material.as_deref() == Some(m.code.as_str()),
            label: if lang == Lang::Ru {
                m.name_ru
            } else {
                m.name_en
            },
            code: m.code,
        })
        .collect();
    let notice = match q.notice.as_deref() {
        Some("taken") => t.taken_ok.to_string(),
        Some("updated") => t.status_changed_ok.to_string(),
        _ => String::new(),
    };
    let page = ConsolePage {
        t,
        queue: page.orders.iter().map(|o| Row::new(o, t)).collect(),
        mine: mine.iter().map(|o| Row::new(o, t)).collect(),
        materials,
        next_cursor: page.next_cursor,
        notice,
        error,
        is_operator: user.role == Role::Operator,
        frame: Frame::new(lang, Some(user), path_of(uri)),
    };
    Ok(render(status, page))
}

pub async fn console(
    State(state): State<MesState>,
    lang: Lang,
    MaybeCaller(user): MaybeCaller,
    uri: OriginalUri,
    Query(q): Query<ConsoleQuery>,
) -> Result<Response, ApiError> {
    let user = match staff_only(lang, user, &uri) {
        Ok(u) => u,
        Err(r) => return Ok(r),
    };
    console_page(&state, lang, user, &uri, q, String::new(), StatusCode::OK).await
}

fn queue_message(e: &QueueError, t: &Texts) -> String {
    match e {
        QueueError::AlreadyTaken { name, .. } => format!("{} {name}.", t.taken_by),
        QueueError::NotYours(name) => format!("{} {name}.", t.err_not_yours),
        QueueError::TrackingRequired => t.err_tracking_required.into(),
        QueueError::Transition(tr) => format!(
            "{} «{}».",
            t.err_invalid_transition,
            t.status(tr.from.as_str())
        ),
        QueueError::NotFound => t.not_found.into(),
        QueueError::NotOperator => t.forbidden.into(),
        other => other.to_string(),
    }
}

async fn after_action(
    state: MesState,
    lang: Lang,
    user: Caller,
    result: Result<(), QueueError>,
    notice: &str,
) -> Result<Response, ApiError> {
    match result {
        Ok(()) => Ok(Redirect::to(&format!("/mes?notice={notice}")).into_response()),
        Err(QueueError::Internal(e)) => Err(ApiError::Internal(e)),
        Err(e) => {
            let status = match &e {
                QueueError::NotFound => StatusCode::NOT_FOUND,
                QueueError::NotOperator => StatusCode::FORBIDDEN,
                QueueError::TrackingRequired => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::CONFLICT,
            };
            let text = queue_message(&e, lang.texts());
            let uri = OriginalUri("/mes".parse().expect("valid"));
            console_page(
                &state,
                lang,
                user,
                &uri,
                ConsoleQuery::default(),
                text,
                status,
            )
            .await
        }
    }
}

pub async fn take(
    State(state): State<MesState>,
    lang: Lang,
    MaybeCaller(user): MaybeCaller,
    uri: OriginalUri,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let user = match staff_only(lang, user, &uri) {
        Ok(u) => u,
        Err(r) => return Ok(r),
    };
    let result = match id.parse::<OrderId>() {
        Ok(id) => queue::take(&state, &user, id).await,
        Err(_) => Err(QueueError::NotFound),
    };
    after_action(state, lang, user, result, "taken").await
}

#[derive(Deserialize)]
pub struct StatusForm {
    status: String,
    #[serde(default)]
    tracking_number: Option<String>,
}

pub async fn set_status(
    State(state): State<MesState>,
    lang: Lang,
    MaybeCaller(user): MaybeCaller,
    uri: OriginalUri,
    Path(id): Path<String>,
    Form(f): Form<StatusForm>,
) -> Result<Response, ApiError> {
    let user = match staff_only(lang, user, &uri) {
        Ok(u) => u,
        Err(r) => return Ok(r),
    };
    let result = match (id.parse::<OrderId>(), OrderStatus::parse(&f.status)) {
        (Ok(id), Some(to)) => queue::advance(&state, &user, id, to, f.tracking_number).await,
        (Err(_), _) => Err(QueueError::NotFound),
        (_, None) => Err(QueueError::NotProductionStatus(OrderStatus::Pricing)),
    };
    after_action(state, lang, user, result, "updated").await
}

pub struct StepView {
    pub status: String,
    pub label: &'static str,
    pub at: String,
    pub actor: String,
    pub note: String,
}

#[derive(Template)]
#[template(path = "mes_order.html")]
struct OrderPage {
    t: &'static Texts,
    frame: Frame,
    o: Row,
    steps: Vec<StepView>,
    reason: String,
}

pub async fn order(
    State(state): State<MesState>,
    lang: Lang,
    MaybeCaller(user): MaybeCaller,
    uri: OriginalUri,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let user = match staff_only(lang, user, &uri) {
        Ok(u) => u,
        Err(r) => return Ok(r),
    };
    let t = lang.texts();
    let found = match id.parse::<OrderId>() {
        Ok(id) => orders::get(&state.db, &user, id).await?,
        Err(_) => None,
    };
    let frame = Frame::new(lang, Some(user), path_of(&uri));
    let Some(o) = found else {
        return Ok(message(StatusCode::NOT_FOUND, frame, t.not_found));
    };
    let steps = o
        .history
        .iter()
        .flatten()
        .map(|s| StepView {
            status: s.status.as_str().into(),
            label: t.status(s.status.as_str()),
            at: s
                .at
                .get(..16)
                .map(|x| format!("{} UTC", x.replace('T', " ")))
                .unwrap_or_default(),
            actor: if s.actor.kind == "system" {
                t.actor_pricing.to_string()
            } else {
                s.actor.name.clone()
            },
            note: s.note.clone().unwrap_or_default(),
        })
        .collect();
    let reason = o.rejection.clone().unwrap_or_default();
    Ok(render(
        StatusCode::OK,
        OrderPage {
            t,
            frame,
            o: Row::new(&o, t),
            steps,
            reason,
        },
    ))
}
