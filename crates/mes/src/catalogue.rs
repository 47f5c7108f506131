//! The materials catalogue's face for managers: `/crm/materials` (part of the
//! back office, served by MES, which owns the catalogue) and
//! `PUT /mes/api/materials/{code}`.

use crate::MesState;
use crate::materials::{self, EditError, MaterialEdit};
use askama::Template;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use domain::Caller;
use serde::Deserialize;
use web::assets::Frame;
use web::{ApiError, ApiForm, ApiJson, ApiPath, ApiQuery, Lang, Manager, ManagerPage, Texts};

/// "7 500,00" / "7500.5" / "7500" roubles → kopecks, without floats.
pub fn parse_rubles(s: &str) -> Option<i64> {
    let s: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '\u{a0}' && *c != '\u{202f}' && *c != '₽')
        .collect();
    let (major, minor) = match s.split_once([',', '.']) {
        Some((a, b)) => (a, b),
        None => (s.as_str(), ""),
    };
    if major.is_empty()
        || !major.bytes().all(|b| b.is_ascii_digit())
        || minor.len() > 2
        || !minor.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let minor = format!("{minor:0<2}");
    major
        .parse::<i64>()
        .ok()?
        .checked_mul(100)?
        .checked_add(minor.parse().ok()?)
}

fn decimal(s: &str) -> Option<f64> {
    s.trim()
        .replace(',', ".")
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
}

pub struct Row {
    pub code: String,
    pub version: i64,
    pub name_ru: String,
    pub name_en: String,
    pub density: String,
    pub price: String,
    pub active: bool,
    pub changed_by: String,
    pub at: String,
}

#[derive(Template)]
#[template(path = "materials.html")]
struct Page {
    t: &'static Texts,
    frame: Frame,
    current: Vec<Row>,
    versions: Vec<Row>,
    notice: String,
    error: String,
}

/// Roubles as typed into the form: "7500,00" (read back by [`parse_rubles`]).
fn rubles(minor: i64) -> String {
    format!("{},{:02}", minor / 100, minor % 100)
}

async fn page(
    state: &MesState,
    lang: Lang,
    user: Caller,
    notice: String,
    error: String,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let t = lang.texts();
    let all = materials::history(&state.db).await?;
    let row = |v: &materials::Version| Row {
        code: v.material.code.clone(),
        version: v.material.version,
        name_ru: v.material.name_ru.clone(),
        name_en: v.material.name_en.clone(),
        density: format!("{}", v.material.density_g_cm3),
        price: rubles(v.material.price_per_gram_minor),
        active: v.active,
        changed_by: v.changed_by.clone(),
        at: v
            .changed_at
            .get(..16)
            .map(|s| s.replace('T', " "))
            .unwrap_or_default(),
    };
    // The newest version of each code is the current one (history is newest first per code).
    let mut current: Vec<Row> = vec![];
    for v in &all {
        if current.last().is_none_or(|r| r.code != v.material.code) {
            current.push(row(v));
        }
    }
    let frame = Frame::new(lang, Some(user), "/crm/materials");
    let html = Page {
        t,
        frame,
        current,
        versions: all.iter().map(row).collect(),
        notice,
        error,
    }
    .render();
    match html {
        Ok(h) => Ok((status, Html(h)).into_response()),
        Err(e) => Err(ApiError::Internal(e.into())),
    }
}

#[derive(Deserialize, Default)]
pub struct Saved {
    saved: Option<String>,
}

pub async fn show(
    State(state): State<MesState>,
    lang: Lang,
    ManagerPage(user): ManagerPage,
    ApiQuery(q): ApiQuery<Saved>,
) -> Result<Response, ApiError> {
    let notice = q
        .saved
        .map(|c| format!("{} {c}", lang.texts().saved_ok))
        .unwrap_or_default();
    page(&state, lang, user, notice, String::new(), StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct EditForm {
    code: Option<String>,
    name_ru: String,
    name_en: String,
    density_g_cm3: String,
    price_per_gram: String,
    active: Option<String>,
}

async fn save_form(
    state: MesState,
    lang: Lang,
    user: Caller,
    code: String,
    f: EditForm,
) -> Result<Response, ApiError> {
    let t = lang.texts();
    let Some(price) = parse_rubles(&f.price_per_gram) else {
        return page(
            &state,
            lang,
            user,
            String::new(),
            t.err_bad_price.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    let edit = MaterialEdit {
        name_en: f.name_en,
        name_ru: f.name_ru,
        density_g_cm3: decimal(&f.density_g_cm3).unwrap_or(-1.0),
        price_per_gram_minor: price,
        active: f.active.is_some(),
    };
    match materials::save(&state.db, &code, &edit, &user.name).await {
        Ok(m) => Ok(
            Redirect::to(&format!("/crm/materials?saved={}+v{}", m.code, m.version))
                .into_response(),
        ),
        Err(EditError::Internal(e)) => Err(ApiError::Internal(e)),
        Err(e) => {
            page(
                &state,
                lang,
                user,
                String::new(),
                e.message(lang),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

pub async fn create(
    State(state): State<MesState>,
    lang: Lang,
    ManagerPage(user): ManagerPage,
    ApiForm(f): ApiForm<EditForm>,
) -> Result<Response, ApiError> {
    let code = f.code.clone().unwrap_or_default();
    save_form(state, lang, user, code, f).await
}

pub async fn update(
    State(state): State<MesState>,
    lang: Lang,
    ManagerPage(user): ManagerPage,
    ApiPath(code): ApiPath<String>,
    ApiForm(f): ApiForm<EditForm>,
) -> Result<Response, ApiError> {
    save_form(state, lang, user, code, f).await
}

/// `PUT /mes/api/materials/{code}` with `{"name_en", "name_ru", "density_g_cm3", "price_per_gram_minor", "active"}`.
pub async fn put(
    State(state): State<MesState>,
    Manager(caller): Manager,
    ApiPath(code): ApiPath<String>,
    ApiJson(edit): ApiJson<MaterialEdit>,
) -> Result<Json<domain::price::MaterialSnapshot>, ApiError> {
    Ok(Json(
        materials::save(&state.db, &code, &edit, &caller.name).await?,
    ))
}

impl From<EditError> for ApiError {
    fn from(e: EditError) -> ApiError {
        match e {
            EditError::Internal(e) => ApiError::Internal(e),
            other => ApiError::unprocessable("bad_material", other.field(), other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_rubles;
    #[test]
    fn roubles_parse_to_kopecks_without_floats() {
        assert_eq!(parse_rubles("7500"), Some(750_000));
        assert_eq!(parse_rubles("7 500,5"), Some(750_050));
        assert_eq!(parse_rubles("0.07"), Some(7));
        assert_eq!(parse_rubles("120,00 ₽"), Some(12_000));
        assert_eq!(parse_rubles("1.234"), None);
        assert_eq!(parse_rubles("-5"), None);
        assert_eq!(parse_rubles("abc"), None);
        assert_eq!(parse_rubles(""), None);
    }
}
