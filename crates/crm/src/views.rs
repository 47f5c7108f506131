//! What the pages show of an order, formatted for a person in their language.

use crate::orders::Order;
use web::Texts;

pub struct HistView {
    pub status: String,
    pub label: &'static str,
    pub at: String,
    pub actor: String,
    pub note: String,
}

pub struct OrderView {
    pub id: String,
    pub short_id: String,
    pub status: String,
    pub label: &'static str,
    pub material: String,
    pub file_name: String,
    pub created: String,
    pub customer: String,
    pub price: String,
    pub lines: Vec<(&'static str, String)>,
    pub weight: String,
    pub volume: String,
    pub area: String,
    pub size: String,
    pub triangles: String,
    pub shells: String,
    pub has_geometry: bool,
    pub reject_reason: String,
    pub tracking: String,
    pub history: Vec<HistView>,
}

/// "2026-11-21 14:05 UTC"
pub fn when(rfc: &str) -> String {
    rfc.get(..16)
        .map(|s| format!("{} UTC", s.replace('T', " ")))
        .unwrap_or_else(|| rfc.to_string())
}

fn num(v: f64, digits: usize, t: &Texts) -> String {
    web::fmt::number(v, digits, t.language())
}

impl OrderView {
    pub fn new(o: &Order, t: &'static Texts) -> OrderView {
        let money = |minor: i64| web::fmt::money(minor, t.language());
        let g = o.geometry.as_ref();
        OrderView {
            id: o.order_id.to_string(),
            short_id: o.order_id.to_string()[..8].to_string() + "…" + &o.order_id.to_string()[32..],
            status: o.status.as_str().to_string(),
            label: t.status(o.status.as_str()),
            material: o.material.clone(),
            file_name: o.file_name.clone(),
            created: when(&o.created_at),
            customer: format!("{} <{}>", o.customer.name, o.customer.email),
            price: o
                .price
                .as_ref()
                .map(|p| money(p.total_minor))
                .unwrap_or_default(),
            lines: o
                .price
                .as_ref()
                .map(|p| {
                    p.breakdown
                        .lines
                        .iter()
                        .map(|l| (t.line(&l.code), money(l.amount_minor)))
                        .collect()
                })
                .unwrap_or_default(),
            weight: g
                .map(|g| format!("{} {}", num(g.weight_g, 2, t), t.g))
                .unwrap_or_default(),
            volume: g
                .map(|g| format!("{} {}³", num(g.volume_mm3, 1, t), t.mm))
                .unwrap_or_default(),
            area: g
                .map(|g| format!("{} {}²", num(g.area_mm2, 1, t), t.mm))
                .unwrap_or_default(),
            size: g
                .map(|g| {
                    format!(
                        "{} × {} × {} {}",
                        num(g.bbox_mm.x, 1, t),
                        num(g.bbox_mm.y, 1, t),
                        num(g.bbox_mm.z, 1, t),
                        t.mm
                    )
                })
                .unwrap_or_default(),
            triangles: g.map(|g| g.triangles.to_string()).unwrap_or_default(),
            shells: g.map(|g| g.shells.to_string()).unwrap_or_default(),
            has_geometry: g.is_some(),
            reject_reason: o
                .rejection
                .as_ref()
                .map(|r| r.reason.clone())
                .unwrap_or_default(),
            tracking: o.tracking_number.clone().unwrap_or_default(),
            history: o
                .history
                .iter()
                .flatten()
                .map(|h| HistView {
                    status: h.status.as_str().to_string(),
                    label: t.status(h.status.as_str()),
                    at: when(&h.at),
                    actor: if h.actor.kind == "system" {
                        t.actor_pricing.to_string()
                    } else {
                        h.actor.name.clone()
                    },
                    note: h.note.clone().unwrap_or_default(),
                })
                .collect(),
        }
    }
    pub fn is_pricing(&self) -> bool {
        self.status == "PRICING"
    }
    pub fn is_awaiting(&self) -> bool {
        self.status == "AWAITING_CONFIRMATION"
    }
    pub fn is_rejected(&self) -> bool {
        self.status == "REJECTED"
    }
}
