//! The materials catalogue: what a model can be made of, and at what price.

use adapters::Db;
use domain::money::Currency;
use domain::price::MaterialSnapshot;
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
pub async fn find(db: &Db, code: &str) -> anyhow::Result<Option<MaterialSnapshot>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM materials WHERE code = $1 AND active = TRUE"
    ))
    .bind(code.trim().to_ascii_uppercase())
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}
