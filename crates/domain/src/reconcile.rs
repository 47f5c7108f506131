//! Comparing two services' views of the same orders.

use crate::{OrderId, OrderStatus};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One service's view of one order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    pub order_id: OrderId,
    pub status: OrderStatus,
    pub updated_at_ms: i64,
}

/// An order the CRM and MES disagree on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    pub order_id: OrderId,
    /// None: the service does not know the order.
    pub crm: Option<OrderStatus>,
    pub mes: Option<OrderStatus>,
}

/// Differences between the views, ignoring orders either side changed within
/// `grace_ms` of `now_ms` (events take milliseconds to travel; an order in
/// flight is not a difference).
pub fn compare(crm: &[View], mes: &[View], now_ms: i64, grace_ms: i64) -> Vec<Difference> {
    let mut all: BTreeMap<OrderId, (Option<View>, Option<View>)> = BTreeMap::new();
    for v in crm {
        all.entry(v.order_id).or_default().0 = Some(*v);
    }
    for v in mes {
        all.entry(v.order_id).or_default().1 = Some(*v);
    }
    all.into_iter()
        .filter_map(|(order_id, (c, m))| {
            let settled = [c, m]
                .iter()
                .flatten()
                .all(|v| now_ms - v.updated_at_ms >= grace_ms)
                && order_id
                    .minted_at_ms()
                    .is_none_or(|t| now_ms - t >= grace_ms);
            let same = matches!((c, m), (Some(c), Some(m)) if c.status == m.status);
            (settled && !same).then(|| Difference {
                order_id,
                crm: c.map(|v| v.status),
                mes: m.map(|v| v.status),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderStatus::*;

    fn v(id: OrderId, status: OrderStatus, at: i64) -> View {
        View {
            order_id: id,
            status,
            updated_at_ms: at,
        }
    }

    #[test]
    fn finds_missing_and_mismatched_orders_but_not_those_in_flight() {
        let (a, b, c, d) = (
            OrderId::new(),
            OrderId::new(),
            OrderId::new(),
            OrderId::new(),
        );
        let now = a.minted_at_ms().unwrap() + 60_000;
        let crm = [
            v(a, Confirmed, now - 50_000),
            v(b, Packed, now - 50_000),
            v(c, Pricing, now - 50_000),
            v(d, Confirmed, now - 1_000),
        ];
        let mes = [
            v(a, Confirmed, now - 50_000),
            v(b, Shipped, now - 50_000),
            v(d, ManufacturingStarted, now - 500),
        ];
        let diff = compare(&crm, &mes, now, 30_000);
        assert_eq!(
            diff,
            vec![
                Difference {
                    order_id: b,
                    crm: Some(Packed),
                    mes: Some(Shipped)
                },
                Difference {
                    order_id: c,
                    crm: Some(Pricing),
                    mes: None
                },
            ]
        );
    }
}

/// Which views to list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViewFilter {
    /// Orders not yet in a final status.
    Open,
    /// These orders, whatever their status.
    Ids(Vec<OrderId>),
}

impl ViewFilter {
    /// The SQL condition and the ids to bind ($1…$n), over columns `id` and `status`.
    pub fn sql(&self) -> (String, Vec<String>) {
        match self {
            ViewFilter::Open => (
                "status NOT IN ('SHIPPED', 'CANCELLED', 'REJECTED')".into(),
                vec![],
            ),
            ViewFilter::Ids(ids) if ids.is_empty() => ("1 = 0".into(), vec![]),
            ViewFilter::Ids(ids) => {
                let marks: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
                (
                    format!("id IN ({})", marks.join(", ")),
                    ids.iter().map(|i| i.to_string()).collect(),
                )
            }
        }
    }
}
