//! What the pages show of an order, formatted for a person in their language.

use crate::orders::Order;
use web::Texts;

/// One step of the journey as a page shows it.
pub struct HistView {
    pub status: String,
    pub label: &'static str,
    pub at: String,
    /// RFC 3339, for `<time datetime>`.
    pub at_rfc: String,
    pub actor: String,
    pub note: String,
    /// How long the order stayed in this status ("" for a final status).
    pub spent: String,
    /// The same in milliseconds (-1 for a final status).
    pub spent_ms: i64,
    /// Still in this status: `spent` runs until now.
    pub current: bool,
    /// The trace the step happened in (back office only).
    pub trace_id: String,
    /// Its page in the trace viewer, if one is configured.
    pub trace_href: String,
}

impl HistView {
    /// The first 12 hex digits: enough to tell traces apart on a page.
    pub fn trace_short(&self) -> &str {
        self.trace_id.get(..12).unwrap_or(&self.trace_id)
    }
}

/// "2 d 3 h", "3 h 5 min", "5 min 3 s", "12 s" (Russian: "2 д 3 ч", …):
/// the two largest units.
pub fn duration(ms: i64, t: &Texts) -> String {
    let (d, h, m, s) = match t.language() {
        web::Lang::Ru => ("д", "ч", "мин", "с"),
        web::Lang::En => ("d", "h", "min", "s"),
    };
    let secs = ms.max(0) / 1000;
    let parts = [
        (secs / 86_400, d),
        (secs / 3_600 % 24, h),
        (secs / 60 % 60, m),
        (secs % 60, s),
    ];
    let first = parts.iter().position(|(n, _)| *n > 0).unwrap_or(3);
    parts[first..]
        .iter()
        .take(2)
        .enumerate()
        .filter(|(i, (n, _))| *i == 0 || *n > 0)
        .map(|(_, (n, u))| format!("{n}\u{a0}{u}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The steps of a journey with the time spent in each: until the next step,
/// or until `now_ms` for the status the order is still in; none for a final one.
fn journey(
    history: &[crate::timeline::HistoryEntry],
    now_ms: i64,
    t: &'static Texts,
) -> Vec<HistView> {
    history
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let next = history.get(i + 1).map(|n| n.at_ms);
            let (spent_ms, current) = match next {
                Some(n) => (n - h.at_ms, false),
                None if h.status.is_final() => (-1, false),
                None => (now_ms - h.at_ms, true),
            };
            HistView {
                status: h.status.as_str().to_string(),
                label: t.status(h.status.as_str()),
                at: when(&h.at),
                at_rfc: h.at.clone(),
                actor: if h.actor.kind == "system" {
                    t.actor_pricing.to_string()
                } else {
                    h.actor.name.clone()
                },
                note: h.note.clone().unwrap_or_default(),
                spent: if spent_ms < 0 {
                    String::new()
                } else {
                    duration(spent_ms, t)
                },
                spent_ms,
                current,
                trace_id: h.trace_id.clone().unwrap_or_default(),
                trace_href: String::new(),
            }
        })
        .collect()
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
            history: journey(
                o.history.as_deref().unwrap_or_default(),
                domain::to_ms(domain::now()),
                t,
            ),
        }
    }

    /// Links every step's trace id to the trace viewer: `url` with
    /// `{trace_id}` replaced (`telemetry.trace_url`).
    pub fn link_traces(mut self, url: Option<&str>) -> OrderView {
        if let Some(url) = url {
            for h in &mut self.history {
                if !h.trace_id.is_empty() {
                    h.trace_href = url.replace("{trace_id}", &h.trace_id);
                }
            }
        }
        self
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_the_two_largest_units() {
        let (ru, en) = (web::Lang::Ru.texts(), web::Lang::En.texts());
        assert_eq!(duration(0, en), "0\u{a0}s");
        assert_eq!(duration(12_400, en), "12\u{a0}s");
        assert_eq!(duration(5 * 60_000 + 3_000, en), "5\u{a0}min 3\u{a0}s");
        assert_eq!(
            duration(3 * 3_600_000 + 5 * 60_000 + 59_000, en),
            "3\u{a0}h 5\u{a0}min"
        );
        assert_eq!(duration(2 * 86_400_000 + 30_000, en), "2\u{a0}d");
        assert_eq!(
            duration(2 * 86_400_000 + 3 * 3_600_000, ru),
            "2\u{a0}д 3\u{a0}ч"
        );
        assert_eq!(duration(60_000, ru), "1\u{a0}мин");
    }
}
