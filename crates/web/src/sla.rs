//! Texts of the SLA views (the CRM's overdue list, the MES console's late
//! orders, the managers' banner), in Russian and English.

use crate::Lang;

pub struct SlaTexts {
    pub nav_late: &'static str,
    pub crm_title: &'static str,
    pub crm_lead: &'static str,
    pub mes_title: &'static str,
    pub mes_lead: &'static str,
    pub none_late: &'static str,
    pub in_status_since: &'static str,
    pub deadline: &'static str,
    pub late_by: &'static str,
    pub left: &'static str,
    pub at_risk: &'static str,
    pub overdue: &'static str,
    pub announced: &'static str,
    pub limits: &'static str,
    pub no_limit: &'static str,
    /// Day, hour, minute, second.
    pub units: [&'static str; 4],
}

pub static RU: SlaTexts = SlaTexts {
    nav_late: "Сроки",
    crm_title: "Заказы под угрозой и просроченные",
    crm_lead: "Заказы, которые слишком долго стоят в одном статусе: сначала самые просроченные. Сроки по статусам — в настройках sla.*.",
    mes_title: "Срочные заказы",
    mes_lead: "Заказы производства, которые подходят к сроку или уже его пропустили: сначала самые просроченные.",
    none_late: "Все заказы укладываются в сроки.",
    in_status_since: "В статусе с",
    deadline: "Срок",
    late_by: "Просрочен на",
    left: "Осталось",
    at_risk: "под угрозой",
    overdue: "просрочен",
    announced: "Менеджеры оповещены",
    limits: "Сроки по статусам",
    no_limit: "без срока",
    units: ["д", "ч", "мин", "с"],
};

pub static EN: SlaTexts = SlaTexts {
    nav_late: "Deadlines",
    crm_title: "Orders at risk and overdue",
    crm_lead: "Orders that have stayed too long in one status, the most overdue first. The limits per status are the sla.* settings.",
    mes_title: "Orders running late",
    mes_lead: "Production orders near or past their deadline, the most overdue first.",
    none_late: "Every order is on time.",
    in_status_since: "In status since",
    deadline: "Deadline",
    late_by: "Overdue by",
    left: "Left",
    at_risk: "at risk",
    overdue: "overdue",
    announced: "Managers told",
    limits: "Limits per status",
    no_limit: "no limit",
    units: ["d", "h", "min", "s"],
};

impl SlaTexts {
    pub fn of(lang: Lang) -> &'static SlaTexts {
        match lang {
            Lang::Ru => &RU,
            Lang::En => &EN,
        }
    }

    /// The managers' banner: "2 overdue, 1 at risk" (None when all is well).
    pub fn banner(&self, lang: Lang, overdue: i64, at_risk: i64) -> Option<String> {
        if overdue == 0 && at_risk == 0 {
            return None;
        }
        Some(match lang {
            Lang::Ru => format!("Сроки: просрочено заказов — {overdue}, под угрозой — {at_risk}."),
            Lang::En => format!(
                "Deadlines: {overdue} order{} overdue, {at_risk} at risk.",
                if overdue == 1 { "" } else { "s" }
            ),
        })
    }

    /// "at risk" / "overdue" for a lateness code.
    pub fn lateness(&self, code: &str) -> &'static str {
        match code {
            "overdue" => self.overdue,
            "at_risk" => self.at_risk,
            _ => "",
        }
    }
}

/// A time in UTC to the second: "2026-11-27 08:45:04 UTC".
pub fn when_ms(ms: i64) -> String {
    let s = domain::rfc3339(domain::from_ms(ms));
    s.get(..19)
        .map(|s| format!("{} UTC", s.replace('T', " ")))
        .unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banner_speaks_both_languages_and_is_silent_when_all_is_on_time() {
        assert_eq!(SlaTexts::of(Lang::En).banner(Lang::En, 0, 0), None);
        assert_eq!(
            SlaTexts::of(Lang::En).banner(Lang::En, 1, 2).unwrap(),
            "Deadlines: 1 order overdue, 2 at risk."
        );
        assert_eq!(
            SlaTexts::of(Lang::Ru).banner(Lang::Ru, 3, 0).unwrap(),
            "Сроки: просрочено заказов — 3, под угрозой — 0."
        );
    }
}
