//! Listing a service's view of orders (id, status, last change) for
//! reconciliation. Both services keep `orders(id, status, updated_at_ms)`.

use crate::Db;
use domain::reconcile::{View, ViewFilter};
use sqlx::Row;

/// The views a filter selects from a service's `orders` table.
pub async fn list(db: &Db, filter: &ViewFilter) -> anyhow::Result<Vec<View>> {
    let (cond, binds) = filter.sql();
    let sql = format!("SELECT id, status, updated_at_ms FROM orders WHERE {cond}");
    let mut q = sqlx::query(&sql);
    for b in binds {
        q = q.bind(b);
    }
    q.fetch_all(db.pool())
        .await?
        .iter()
        .map(|r| {
            let id: String = r.try_get("id")?;
            let status: String = r.try_get("status")?;
            Ok(View {
                order_id: id.parse()?,
                status: domain::OrderStatus::parse(&status)
                    .ok_or_else(|| anyhow::anyhow!("unknown status {status}"))?,
                updated_at_ms: r.try_get("updated_at_ms")?,
            })
        })
        .collect()
}
