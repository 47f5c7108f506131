//! Pages: the customer's upload form (MES owns models and materials) and the
//! operators' console.

use crate::api::read_upload;
use crate::intake::{self, IntakeError, Source, Upload};
use crate::orders::{self, MesOrder};
use crate::queue::{self, Filter, QueueError};
use crate::{MesState, materials};
use askama::Template;
use axum::extract::{Multipart, OriginalUri, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use domain::{Caller, OrderStatus, Role};
use serde::Deserialize;
use web::assets::{Frame, path_of, render};
use web::{
    ApiError, ApiForm, ApiQuery, CustomerPage, Lang, PageOrderId, SignedInPage, StaffPage, Texts,
};

fn message(status: StatusCode, frame: Frame, message: &str) -> Response {
    let title = frame.t.error_title;
    web::page::message(status, frame, title, message)
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
    CustomerPage(user): CustomerPage,
    uri: OriginalUri,
) -> Result<Response, ApiError> {
    upload_page(&state, lang, user, &uri, "", String::new(), StatusCode::OK).await
}

/// The shop's upload: the same intake as the API, then to the order's page.
pub async fn upload(
    State(state): State<MesState>,
    lang: Lang,
    SignedInPage(user): SignedInPage,
    uri: OriginalUri,
    mp: Multipart,
) -> Result<Response, ApiError> {
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
        Err(e @ ApiError::Internal(_)) => return Err(e),
        Err(e) => {
            let status = e.status();
            return upload_page(&state, lang, user, &uri, "", e.to_string(), status).await;
        }
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
            let status = ApiError::from(e).status();
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
    /// When the order is due to be taken, as `YYYY-MM-DD HH:MM UTC`.
    pub deadline: String,
    /// `on_time`, `at_risk` or `overdue` (a CSS class), and its words.
    pub lateness: &'static str,
    pub lateness_label: &'static str,
}

/// `2026-11-27T10:40:00Z` → `2026-11-27 10:40 UTC`.
fn utc_minutes(rfc: &str) -> String {
    rfc.get(..16)
        .map(|x| format!("{} UTC", x.replace('T', " ")))
        .unwrap_or_default()
}

/// The console's texts for the live queue, release and reassignment.
pub struct QueueTexts {
    pub min_weight: &'static str,
    pub min_price: &'static str,
    pub at_risk: &'static str,
    pub overdue: &'static str,
    pub release: &'static str,
    pub reason_placeholder: &'static str,
    pub released_ok: &'static str,
    pub reassign: &'static str,
    pub reassigned_ok: &'static str,
    pub in_work_all: &'static str,
    pub in_work_none: &'static str,
    pub pick_operator: &'static str,
    pub live_hint: &'static str,
    pub err_reason_required: &'static str,
    pub err_not_in_work: &'static str,
    pub err_already_assigned: &'static str,
    pub err_unknown_operator: &'static str,
    pub err_release_forbidden: &'static str,
    pub err_reassign_forbidden: &'static str,
    pub err_bad_filter: &'static str,
}

pub static QUEUE_RU: QueueTexts = QueueTexts {
    min_weight: "Вес от, г",
    min_price: "Цена от, ₽",
    at_risk: "скоро срок",
    overdue: "просрочен",
    release: "Вернуть в очередь",
    reason_placeholder: "причина",
    released_ok: "Заказ возвращён в очередь.",
    reassign: "Передать",
    reassigned_ok: "Заказ передан другому оператору.",
    in_work_all: "Заказы в работе",
    in_work_none: "Сейчас в работе нет заказов.",
    pick_operator: "оператор…",
    live_hint: "Очередь обновляется сама: новые заказы появляются, взятые исчезают.",
    err_reason_required: "Укажите причину (до 500 символов).",
    err_not_in_work: "Передать можно только заказ в работе; сейчас он:",
    err_already_assigned: "Заказ уже у этого оператора:",
    err_unknown_operator: "Выберите оператора из списка.",
    err_release_forbidden: "Вернуть заказ в очередь может только оператор, у которого он в работе.",
    err_reassign_forbidden: "Передавать заказы могут только менеджеры.",
    err_bad_filter: "Фильтр: вес — число граммов, цена — сумма в рублях, не меньше нуля.",
};

pub static QUEUE_EN: QueueTexts = QueueTexts {
    min_weight: "Weight from, g",
    min_price: "Price from, ₽",
    at_risk: "due soon",
    overdue: "overdue",
    release: "Release to queue",
    reason_placeholder: "reason",
    released_ok: "The order is back in the queue.",
    reassign: "Reassign",
    reassigned_ok: "The order now belongs to another operator.",
    in_work_all: "Orders in work",
    in_work_none: "No orders are in work now.",
    pick_operator: "operator…",
    live_hint: "The queue updates itself: new orders appear, taken ones disappear.",
    err_reason_required: "Say why (up to 500 characters).",
    err_not_in_work: "Only an order in work can be reassigned; it is now:",
    err_already_assigned: "The order is already with this operator:",
    err_unknown_operator: "Pick an operator from the list.",
    err_release_forbidden: "Only the operator who has the order in work can release it.",
    err_reassign_forbidden: "Only managers can reassign orders.",
    err_bad_filter: "Filter: weight in grams, price in roubles, neither below zero.",
};

fn queue_texts(lang: Lang) -> &'static QueueTexts {
    if lang == Lang::Ru {
        &QUEUE_RU
    } else {
        &QUEUE_EN
    }
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
            deadline: o.deadline.as_deref().map(utc_minutes).unwrap_or_default(),
            lateness: "",
            lateness_label: "",
            id,
        }
    }

    /// The row with its SLA standing now (the queue's deadline is confirmation + the limit).
    fn with_lateness(mut self, o: &MesOrder, sla: &domain::sla::SlaPolicy, q: &QueueTexts) -> Row {
        let confirmed_ms = o.confirmed_at_ms.or_else(|| {
            o.confirmed_at.as_deref().and_then(|s| {
                time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                    .ok()
                    .map(domain::to_ms)
            })
        });
        if let Some(ms) = confirmed_ms {
            let l = sla.lateness(OrderStatus::Confirmed, ms, domain::to_ms(domain::now()));
            self.lateness = l.as_str();
            self.lateness_label = match l {
                domain::sla::Lateness::OnTime => "",
                domain::sla::Lateness::AtRisk => q.at_risk,
                domain::sla::Lateness::Overdue => q.overdue,
            };
        }
        self
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
    q: &'static QueueTexts,
    frame: Frame,
    queue: Vec<Row>,
    mine: Vec<Row>,
    /// Every order in work (managers: to reassign).
    in_work: Vec<Row>,
    operators: Vec<(String, String)>,
    materials: Vec<MaterialOption>,
    min_weight: String,
    min_price: String,
    filter_qs: String,
    next_cursor: Option<String>,
    notice: String,
    error: String,
    is_operator: bool,
    is_manager: bool,
}

/// Just the queue's table: what the live console swaps in.
#[derive(Template)]
#[template(path = "console_queue.html")]
struct QueueFragment {
    t: &'static Texts,
    queue: Vec<Row>,
    filter_qs: String,
    next_cursor: Option<String>,
    is_operator: bool,
}

#[derive(Deserialize, Default)]
pub struct ConsoleQuery {
    material: Option<String>,
    min_weight: Option<String>,
    /// Roubles (the page speaks roubles; the API kopecks).
    min_price: Option<String>,
    cursor: Option<String>,
    notice: Option<String>,
    fragment: Option<String>,
}

/// Roubles as typed on the page (`1500`, `1 500,50`) → kopecks.
fn rubles_to_minor(text: &str) -> Option<String> {
    let t: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '\u{a0}')
        .collect::<String>()
        .replace(',', ".");
    if t.is_empty() {
        return None;
    }
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Some(((v * 100.0).round() as i64).to_string()),
        _ => Some(format!("invalid:{t}")),
    }
}

async fn console_page(
    state: &MesState,
    lang: Lang,
    user: Caller,
    uri: &OriginalUri,
    cq: ConsoleQuery,
    error: String,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let t = lang.texts();
    let qt = queue_texts(lang);
    let material = cq.material.clone().filter(|m| !m.is_empty());
    let min_weight = cq.min_weight.clone().unwrap_or_default();
    let min_price = cq.min_price.clone().unwrap_or_default();
    let price_minor = rubles_to_minor(&min_price);
    let (filter, error, status) = match crate::api::parse_filter(
        material.as_deref(),
        Some(min_weight.as_str()),
        price_minor.as_deref(),
    ) {
        Ok(f) => (f, error, status),
        // A filter that does not parse filters nothing: the whole queue, and why.
        Err(_) => (
            Filter::default(),
            qt.err_bad_filter.to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    };
    let mut filter_qs = String::new();
    for (k, v) in [
        ("material", material.clone().unwrap_or_default()),
        ("min_weight", min_weight.clone()),
        ("min_price", min_price.clone()),
    ] {
        if !v.is_empty() {
            filter_qs += &format!("{k}={}&", form_urlencode(&v));
        }
    }
    let cursor = cq.cursor.as_deref().and_then(web::paging::decode);
    let page = match cursor {
        None => {
            let (bytes, _) = state.feed.first_page(&filter, queue::DEFAULT_LIMIT).await?;
            serde_json::from_slice::<queue::QueuePage>(&bytes).map_err(anyhow::Error::from)?
        }
        Some(c) => {
            let pool = state.db.reader(&user.user_id.to_string()).await;
            queue::list(&state.feed, pool, &filter, Some(c), queue::DEFAULT_LIMIT).await?
        }
    };
    let rows: Vec<Row> = page
        .orders
        .iter()
        .map(|o| Row::new(o, t).with_lateness(o, &state.feed.sla, qt))
        .collect();
    if cq.fragment.as_deref() == Some("queue") {
        return Ok(render(
            StatusCode::OK,
            QueueFragment {
                t,
                queue: rows,
                filter_qs,
                next_cursor: page.next_cursor,
                is_operator: user.role == Role::Operator,
            },
        ));
    }
    let mine = queue::in_work(state, &user).await?;
    let is_manager = user.role == Role::Manager;
    let (in_work, operators) = if is_manager {
        (
            queue::all_in_work(state).await?,
            queue::known_operators(state).await?,
        )
    } else {
        (vec![], vec![])
    };
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
    let notice = match cq.notice.as_deref() {
        Some("taken") => t.taken_ok.to_string(),
        Some("updated") => t.status_changed_ok.to_string(),
        Some("released") => qt.released_ok.to_string(),
        Some("reassigned") => qt.reassigned_ok.to_string(),
        _ => String::new(),
    };
    let page = ConsolePage {
        t,
        q: qt,
        queue: rows,
        mine: mine.iter().map(|o| Row::new(o, t)).collect(),
        in_work: in_work.iter().map(|o| Row::new(o, t)).collect(),
        operators,
        materials,
        min_weight,
        min_price,
        filter_qs,
        next_cursor: page.next_cursor,
        notice,
        error,
        is_operator: user.role == Role::Operator,
        is_manager,
        frame: Frame::new(lang, Some(user), path_of(uri)),
    };
    Ok(render(status, page))
}

/// Percent-encodes a query value.
fn form_urlencode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn console(
    State(state): State<MesState>,
    lang: Lang,
    StaffPage(user): StaffPage,
    uri: OriginalUri,
    ApiQuery(q): ApiQuery<ConsoleQuery>,
) -> Result<Response, ApiError> {
    console_page(&state, lang, user, &uri, q, String::new(), StatusCode::OK).await
}

fn queue_message(e: &QueueError, t: &Texts) -> String {
    match e {
        QueueError::AlreadyTaken { name, .. } => format!("{} {name}.", t.taken_by),
        QueueError::NotYours(name) => format!("{} {name}.", t.err_not_yours),
        QueueError::TrackingRequired => t.err_tracking_required.into(),
        QueueError::BadTracking => t.err_bad_tracking.into(),
        QueueError::Transition(tr) => format!(
            "{} «{}».",
            t.err_invalid_transition,
            t.status(tr.from.as_str())
        ),
        QueueError::NotFound => t.not_found.into(),
        QueueError::NotOperator => t.forbidden.into(),
        other => {
            let q = queue_texts(t.language());
            match other {
                QueueError::ReasonRequired => q.err_reason_required.into(),
                QueueError::NotInWork(s) => {
                    format!("{} «{}».", q.err_not_in_work, t.status(s.as_str()))
                }
                QueueError::AlreadyAssigned(name) => format!("{} {name}.", q.err_already_assigned),
                QueueError::UnknownOperator(_) => q.err_unknown_operator.into(),
                QueueError::ReleaseNotOperator => q.err_release_forbidden.into(),
                QueueError::NotManager => q.err_reassign_forbidden.into(),
                other => other.to_string(),
            }
        }
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
            let text = queue_message(&e, lang.texts());
            let status = ApiError::from(e).status();
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
    StaffPage(user): StaffPage,
    PageOrderId(id): PageOrderId,
) -> Result<Response, ApiError> {
    let result = queue::take(&state, &user, id).await;
    after_action(state, lang, user, result, "taken").await
}

#[derive(Deserialize)]
pub struct ReleaseForm {
    #[serde(default)]
    reason: String,
}

pub async fn release(
    State(state): State<MesState>,
    lang: Lang,
    StaffPage(user): StaffPage,
    PageOrderId(id): PageOrderId,
    ApiForm(f): ApiForm<ReleaseForm>,
) -> Result<Response, ApiError> {
    let result = queue::release(&state, &user, id, &f.reason).await;
    after_action(state, lang, user, result, "released").await
}

#[derive(Deserialize)]
pub struct ReassignForm {
    #[serde(default)]
    operator_id: String,
    #[serde(default)]
    reason: String,
}

pub async fn reassign(
    State(state): State<MesState>,
    lang: Lang,
    StaffPage(user): StaffPage,
    PageOrderId(id): PageOrderId,
    ApiForm(f): ApiForm<ReassignForm>,
) -> Result<Response, ApiError> {
    // An operator is told why on the console, not sent to a bare 403 page.
    let result = match f.operator_id.trim().parse::<uuid::Uuid>() {
        _ if user.role != Role::Manager => Err(QueueError::NotManager),
        Err(_) => Err(QueueError::UnknownOperator(f.operator_id.clone())),
        Ok(to) => queue::reassign(&state, &user, id, to, None, &f.reason)
            .await
            .map(|_| ()),
    };
    after_action(state, lang, user, result, "reassigned").await
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
    StaffPage(user): StaffPage,
    PageOrderId(id): PageOrderId,
    ApiForm(f): ApiForm<StatusForm>,
) -> Result<Response, ApiError> {
    let result = match OrderStatus::parse(&f.status) {
        Some(to) => queue::advance(&state, &user, id, to, f.tracking_number).await,
        None => Err(QueueError::NotProductionStatus(OrderStatus::Pricing)),
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
    StaffPage(user): StaffPage,
    uri: OriginalUri,
    PageOrderId(id): PageOrderId,
) -> Result<Response, ApiError> {
    let t = lang.texts();
    let found = orders::get(&state.db, &user, id).await?;
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
            at: utc_minutes(&s.at),
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
