//! The materials catalogue: what a model can be made of, and at what price.

use adapters::Db;
use domain::money::Currency;
use domain::price::{self, MaterialSnapshot};
use sqlx::Row;

fn from_row(r: &sqlx::any::AnyRow) -> anyhow::Result<MaterialSnapshot> {
    let currency: String = r.try_get("currency")?;
    Ok(MaterialSnapshot {
        code: r.try_get("code")?,
        version: r.try_get("version")?,
        name_en: r.try_get("name_en")?,
        name_ru: r.try_get("name_ru")?,
        density_g_cm3: r.try_get("density_g_cm3")?,
        price_per_gram_minor: r.try_get("price_per_gram_minor")?,
        currency: Currency::parse(&currency)
            .ok_or_else(|| anyhow::anyhow!("unknown currency {currency}"))?,
    })
}

const COLUMNS: &str =
    "code, version, name_en, name_ru, density_g_cm3, price_per_gram_minor, currency";

/// Active materials, by code.
pub async fn list(db: &Db) -> anyhow::Result<Vec<MaterialSnapshot>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM materials WHERE active = TRUE ORDER BY code"
    ))
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// One active material by its code (case-insensitive).
/// Whether `code` has the shape of a material code (2–16 letters, digits and
/// `-`, as [`save`] accepts them): anything else names no material.
pub fn plausible_code(code: &str) -> bool {
    (2..=16).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

pub async fn find(db: &Db, code: &str) -> anyhow::Result<Option<MaterialSnapshot>> {
    // Codes are short letters and digits: anything else names no material
    // (and a NUL would not even reach PostgreSQL as text).
    let code = code.trim();
    if !plausible_code(code) {
        return Ok(None);
    }
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM materials WHERE code = $1 AND active = TRUE"
    ))
    .bind(code.trim().to_ascii_uppercase())
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// A manager's change to the catalogue. Every field has a range, enforced
/// by [`save`] (docs/pricing.md, "Materials"): density
/// [`price::DENSITY_G_CM3`], price per gram [`price::PRICE_PER_GRAM_MINOR`],
/// names of 1 to [`price::NAME_MAX_CHARS`] characters without control
/// characters, the code 2 to 16 capital letters, digits or '-'.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct MaterialEdit {
    pub name_en: String,
    pub name_ru: String,
    pub density_g_cm3: f64,
    pub price_per_gram_minor: i64,
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

/// Why a catalogue change was refused.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("material code must be 2 to 16 capital letters, digits or '-', e.g. AU585Y")]
    BadCode,
    #[error("density must be between 0.5 and 25 g/cm³")]
    BadDensity,
    #[error("price per gram must be between 1 and 10,000,000 kopecks (0.01 to 100,000.00 ₽)")]
    BadPrice,
    #[error(
        "{}: names in Russian and English are required, 1 to 100 characters without control characters",
        name_label(.0)
    )]
    BadName(&'static str),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

fn name_label(field: &str) -> &'static str {
    if field == "name_ru" {
        "the Russian name"
    } else {
        "the English name"
    }
}

impl EditError {
    /// The form field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            EditError::BadCode => "code",
            EditError::BadDensity => "density_g_cm3",
            EditError::BadPrice => "price_per_gram_minor",
            EditError::BadName(field) => field,
            EditError::Internal(_) => "",
        }
    }

    /// The error in a page's language (the API's message is the English one).
    pub fn message(&self, lang: web::Lang) -> String {
        if lang == web::Lang::En {
            return self.to_string();
        }
        match self {
            EditError::BadCode => {
                "Код материала: от 2 до 16 заглавных латинских букв, цифр или «-», например AU585Y"
                    .into()
            }
            EditError::BadDensity => "Плотность: от 0,5 до 25 г/см³".into(),
            EditError::BadPrice => {
                "Цена за грамм: от 0,01 до 100\u{a0}000,00 ₽ (от 1 до 10\u{a0}000\u{a0}000 копеек)"
                    .into()
            }
            EditError::BadName(field) => format!(
                "{}: названия на русском и английском обязательны, от 1 до 100 символов без управляющих",
                if *field == "name_ru" {
                    "Название (рус.)"
                } else {
                    "Название (англ.)"
                }
            ),
            EditError::Internal(e) => e.to_string(),
        }
    }
}

/// The first field of an edit outside its range, if any.
fn check(edit: &MaterialEdit) -> Result<(), EditError> {
    if !price::DENSITY_G_CM3.contains(&edit.density_g_cm3) {
        return Err(EditError::BadDensity);
    }
    if !price::PRICE_PER_GRAM_MINOR.contains(&edit.price_per_gram_minor) {
        return Err(EditError::BadPrice);
    }
    for (field, name) in [("name_en", &edit.name_en), ("name_ru", &edit.name_ru)] {
        let name = name.trim();
        if name.is_empty()
            || name.chars().count() > price::NAME_MAX_CHARS
            || name.chars().any(char::is_control)
        {
            return Err(EditError::BadName(field));
        }
    }
    Ok(())
}

/// One row of a material's history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Version {
    pub material: MaterialSnapshot,
    pub active: bool,
    pub changed_by: String,
    pub changed_at: String,
}

/// Creates a material or makes a new version of it. Quotes keep the version
/// they were made with, so no existing quote changes.
pub async fn save(
    db: &Db,
    code: &str,
    edit: &MaterialEdit,
    actor: &str,
) -> Result<MaterialSnapshot, EditError> {
    let code = code.trim().to_ascii_uppercase();
    if !plausible_code(&code) {
        return Err(EditError::BadCode);
    }
    check(edit)?;
    let result: anyhow::Result<MaterialSnapshot> = async {
        let mut tx = db.begin_write().await?;
        let current: Option<i64> = sqlx::query("SELECT version FROM materials WHERE code = $1")
            .bind(&code)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get("version"))
            .transpose()?;
        let version = current.unwrap_or(0) + 1;
        let now = domain::to_ms(domain::now());
        let (en, ru) = (edit.name_en.trim(), edit.name_ru.trim());
        if current.is_some() {
            sqlx::query(
                "UPDATE materials SET version = $1, name_en = $2, name_ru = $3, density_g_cm3 = $4, \
                 price_per_gram_minor = $5, active = $6 WHERE code = $7",
            )
            .bind(version)
            .bind(en)
            .bind(ru)
            .bind(edit.density_g_cm3)
            .bind(edit.price_per_gram_minor)
            .bind(edit.active)
            .bind(&code)
            .execute(&mut *tx)
            .await?;
        } else {
            sqlx::query(&format!("INSERT INTO materials ({COLUMNS}, active) VALUES ($1, $2, $3, $4, $5, $6, 'RUB', $7)"))
                .bind(&code)
                .bind(version)
                .bind(en)
                .bind(ru)
                .bind(edit.density_g_cm3)
                .bind(edit.price_per_gram_minor)
                .bind(edit.active)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO material_versions (code, version, name_en, name_ru, density_g_cm3, price_per_gram_minor, \
             currency, active, changed_by, changed_at_ms) VALUES ($1, $2, $3, $4, $5, $6, 'RUB', $7, $8, $9)",
        )
        .bind(&code)
        .bind(version)
        .bind(en)
        .bind(ru)
        .bind(edit.density_g_cm3)
        .bind(edit.price_per_gram_minor)
        .bind(edit.active)
        .bind(actor)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(MaterialSnapshot {
            code: code.clone(),
            version,
            name_en: en.into(),
            name_ru: ru.into(),
            density_g_cm3: edit.density_g_cm3,
            price_per_gram_minor: edit.price_per_gram_minor,
            currency: Currency::RUB,
        })
    }
    .await;
    let saved = result?;
    tracing::info!(code = %saved.code, version = saved.version, actor, "material saved");
    Ok(saved)
}

/// Every material (active or not) with its full history, newest version first.
pub async fn history(db: &Db) -> anyhow::Result<Vec<Version>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS}, CAST(CASE WHEN active THEN 1 ELSE 0 END AS BIGINT) AS active_int, changed_by, \
         changed_at_ms FROM material_versions ORDER BY code, version DESC"
    ))
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Version {
                material: from_row(r)?,
                // Read as an integer: the Any driver cannot decode SQLite booleans.
                active: r.try_get::<i64, _>("active_int")? != 0,
                changed_by: r.try_get("changed_by")?,
                changed_at: domain::rfc3339(domain::from_ms(r.try_get("changed_at_ms")?)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn silver() -> MaterialEdit {
        MaterialEdit {
            name_en: "925 sterling silver".into(),
            name_ru: "Серебро 925".into(),
            density_g_cm3: 10.4,
            price_per_gram_minor: 12_000,
            active: true,
        }
    }

    #[test]
    fn every_field_out_of_its_range_is_named() {
        assert!(check(&silver()).is_ok());
        let field = |edit: MaterialEdit| check(&edit).unwrap_err().field();
        for p in [i64::MAX, i64::MIN, -1, 0, 10_000_001] {
            let e = MaterialEdit {
                price_per_gram_minor: p,
                ..silver()
            };
            assert_eq!(field(e), "price_per_gram_minor", "{p}");
        }
        for d in [0.0, -10.4, 0.49, 25.01, 1e300, f64::NAN, f64::INFINITY] {
            let e = MaterialEdit {
                density_g_cm3: d,
                ..silver()
            };
            assert_eq!(field(e), "density_g_cm3", "{d}");
        }
        let e = MaterialEdit {
            name_en: " ".into(),
            ..silver()
        };
        assert_eq!(field(e), "name_en");
        let e = MaterialEdit {
            name_ru: "я".repeat(101),
            ..silver()
        };
        assert_eq!(field(e), "name_ru");
        let e = MaterialEdit {
            name_ru: "Серебро\u{0}925".into(),
            ..silver()
        };
        assert_eq!(field(e), "name_ru");
        // The edges of the ranges are allowed.
        let e = MaterialEdit {
            density_g_cm3: 25.0,
            price_per_gram_minor: 10_000_000,
            name_ru: "я".repeat(100),
            ..silver()
        };
        assert!(check(&e).is_ok());
    }

    #[test]
    fn errors_read_in_the_page_language() {
        assert_eq!(
            EditError::BadPrice.message(web::Lang::En),
            EditError::BadPrice.to_string()
        );
        assert!(
            EditError::BadPrice
                .message(web::Lang::Ru)
                .starts_with("Цена за грамм")
        );
        assert!(
            EditError::BadName("name_ru")
                .to_string()
                .starts_with("the Russian name")
        );
    }
}
