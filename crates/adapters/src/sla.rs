//! SLA clocks over a service's own `orders` table. The CRM and MES each keep
//! one with `id`, `status` and `updated_at_ms`, which both set exactly when an
//! order enters a status: that is when its clock in that status started.

use crate::metrics::StatusStats;
use domain::OrderStatus;
use domain::sla::{Lateness, SlaPolicy};
use sqlx::Row;
use sqlx::any::AnyRow;

/// An order near or past its deadline, with whatever the caller selected.
#[derive(Debug, Clone)]
pub struct Late<T> {
    pub status: OrderStatus,
    pub entered_ms: i64,
    pub deadline_ms: i64,
    /// Milliseconds past the deadline (negative: time still left).
    pub late_by_ms: i64,
    pub lateness: Lateness,
    pub row: T,
}

/// When an order must have entered `status` to be at risk at `now_ms`.
fn at_risk_since(policy: &SlaPolicy, limit_ms: i64, now_ms: i64) -> i64 {
    let risk_ms = (limit_ms as i128 * policy.at_risk_permille as i128 / 1000) as i64;
    now_ms - risk_ms
}

/// Orders in every status (zero for statuses with none): count, the oldest
/// entry time, and how many are at risk or overdue.
pub async fn status_stats(
    pool: &sqlx::AnyPool,
    policy: &SlaPolicy,
    now_ms: i64,
) -> anyhow::Result<Vec<StatusStats>> {
    let rows = sqlx::query(
        "SELECT status, COUNT(*) AS n, MIN(updated_at_ms) AS oldest FROM orders GROUP BY status",
    )
    .fetch_all(pool)
    .await?;
    let mut out: Vec<StatusStats> = OrderStatus::ALL
        .iter()
        .map(|s| StatusStats {
            status: s.as_str().to_string(),
            ..Default::default()
        })
        .collect();
    for r in rows {
        let status: String = r.try_get("status")?;
        if let Some(s) = out.iter_mut().find(|s| s.status == status) {
            s.count = r.try_get("n")?;
            s.oldest_entered_ms = r.try_get::<Option<i64>, _>("oldest")?;
        }
    }
    for s in out.iter_mut() {
        let status = OrderStatus::parse(&s.status).expect("one of ALL");
        let Some(limit) = policy.limit_ms(status) else {
            continue;
        };
        if s.count == 0 {
            continue;
        }
        let row = sqlx::query(
            "SELECT COALESCE(SUM(CASE WHEN updated_at_ms <= $1 THEN 1 ELSE 0 END), 0) AS overdue, \
             COALESCE(SUM(CASE WHEN updated_at_ms > $2 AND updated_at_ms <= $3 THEN 1 ELSE 0 END), 0) AS at_risk \
             FROM orders WHERE status = $4",
        )
        .bind(now_ms - limit)
        .bind(now_ms - limit)
        .bind(at_risk_since(policy, limit, now_ms))
        .bind(status.as_str())
        .fetch_one(pool)
        .await?;
        s.overdue = row.try_get("overdue")?;
        s.at_risk = row.try_get("at_risk")?;
    }
    Ok(out)
}

/// Orders at risk or overdue at `now_ms`, the latest first (most past its
/// deadline), at most `limit`. `columns` are selected besides `status` and
/// `updated_at_ms`, and `map` turns a row into the caller's `T`.
pub async fn late_orders<T>(
    pool: &sqlx::AnyPool,
    policy: &SlaPolicy,
    now_ms: i64,
    columns: &str,
    limit: i64,
    map: impl Fn(&AnyRow) -> anyhow::Result<T>,
) -> anyhow::Result<Vec<Late<T>>> {
    let mut out = vec![];
    for status in OrderStatus::ALL {
        let Some(limit_ms) = policy.limit_ms(status) else {
            continue;
        };
        let rows = sqlx::query(&format!(
            "SELECT {columns}, status, updated_at_ms FROM orders \
             WHERE status = $1 AND updated_at_ms <= $2 ORDER BY updated_at_ms LIMIT $3"
        ))
        .bind(status.as_str())
        .bind(at_risk_since(policy, limit_ms, now_ms))
        .bind(limit)
        .fetch_all(pool)
        .await?;
        for r in &rows {
            let entered_ms: i64 = r.try_get("updated_at_ms")?;
            let deadline_ms = entered_ms + limit_ms;
            out.push(Late {
                status,
                entered_ms,
                deadline_ms,
                late_by_ms: now_ms - deadline_ms,
                lateness: policy.lateness(status, entered_ms, now_ms),
                row: map(r)?,
            });
        }
    }
    out.sort_by(|a, b| b.late_by_ms.cmp(&a.late_by_ms));
    out.truncate(limit.max(0) as usize);
    Ok(out)
}

/// "2 h 05 min", "3 d 4 h", "45 s": a duration as a person reads it
/// (`units` are the language's d/h/min/s).
pub fn human_duration(ms: i64, units: [&str; 4]) -> String {
    let s = ms.unsigned_abs() / 1000;
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    let [ud, uh, um, us] = units;
    if d > 0 {
        format!("{d} {ud} {h} {uh}")
    } else if h > 0 {
        format!("{h} {uh} {m:02} {um}")
    } else if m > 0 {
        format!("{m} {um} {sec:02} {us}")
    } else {
        format!("{sec} {us}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_person_writes_them() {
        let u = ["d", "h", "min", "s"];
        assert_eq!(human_duration(45_000, u), "45 s");
        assert_eq!(human_duration(-125_000, u), "2 min 05 s");
        assert_eq!(human_duration(7_500_000, u), "2 h 05 min");
        assert_eq!(human_duration(3 * 86_400_000 + 4 * 3_600_000, u), "3 d 4 h");
    }
}
