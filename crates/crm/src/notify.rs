//! `order.updated`: every customer-facing status the CRM records is announced
//! to the notifier, in the same transaction, with the contact to tell.

use adapters::outbox;
use domain::events::{Contact, Envelope, OrderUpdated, RejectionView};
use domain::money::{Currency, Money};
use domain::{OrderId, OrderStatus};
use sqlx::{Any, Row, Transaction};

/// The people's language column (Russian unless they chose English).
pub const SQL: &str = "ALTER TABLE users ADD COLUMN lang TEXT NOT NULL DEFAULT 'ru';\n";

/// Writes `order.updated` for the order's current row to the outbox, inside
/// the caller's transaction (after the order's row has been updated).
pub async fn order_updated(
    tx: &mut Transaction<'static, Any>,
    id: OrderId,
    status: OrderStatus,
) -> sqlx::Result<()> {
    let row = sqlx::query(
        "SELECT o.tenant, o.owner_name, o.owner_email, o.file_name, o.material, o.price_minor, \
         o.currency, o.reject_code, o.reject_reason, o.tracking_number, u.lang \
         FROM orders o LEFT JOIN users u ON u.id = o.owner_id WHERE o.id = $1",
    )
    .bind(id.to_string())
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        tracing::warn!(order_id = %id, "no order row to announce");
        return Ok(());
    };
    let tenant: String = row.try_get("tenant")?;
    let price_minor: Option<i64> = row.try_get("price_minor")?;
    let currency: Option<String> = row.try_get("currency")?;
    let reject_code: Option<String> = row.try_get("reject_code")?;
    let language = row
        .try_get::<Option<String>, _>("lang")?
        .filter(|l| l == "en")
        .unwrap_or_else(|| "ru".into());
    let event = OrderUpdated {
        order_id: id,
        status,
        at: domain::rfc3339(domain::now()),
        contact: Contact {
            email: row.try_get("owner_email")?,
            name: row.try_get("owner_name")?,
            language,
            organisation: tenant.strip_prefix("org:").map(String::from),
        },
        file_name: row.try_get("file_name")?,
        material: row.try_get("material")?,
        price_total: match (price_minor, currency.as_deref().and_then(Currency::parse)) {
            (Some(minor), Some(currency)) => Some(Money { minor, currency }),
            _ => None,
        },
        rejection: reject_code.map(|code| RejectionView {
            code,
            reason: row.try_get("reject_reason").unwrap_or_default(),
        }),
        tracking_number: row.try_get("tracking_number")?,
    };
    outbox::enqueue(tx, &Envelope::new("crm", &event)).await
}
