//! SLA clocks: how long an order may stay in each status before it is late.
//!
//! One policy, shared by every service that shows or counts lateness (the
//! operators' queue, the CRM's overdue list, the metrics): the deadline of an
//! order is the time it entered its current status plus that status's limit.
//! "At risk" starts when `at_risk_permille` of the limit has passed.

use crate::OrderStatus;
use serde::{Deserialize, Serialize};

/// Per-status limits in seconds (`None`: no clock runs in that status, e.g.
/// the customer's own decision or a final status).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlaPolicy {
    pub pricing_seconds: Option<u64>,
    pub awaiting_confirmation_seconds: Option<u64>,
    pub confirmed_seconds: Option<u64>,
    pub manufacturing_started_seconds: Option<u64>,
    pub manufactured_seconds: Option<u64>,
    pub packed_seconds: Option<u64>,
    /// The share of the limit (in ‰) after which an order is at risk.
    pub at_risk_permille: u64,
}

impl Default for SlaPolicy {
    fn default() -> Self {
        const HOUR: u64 = 3600;
        SlaPolicy {
            pricing_seconds: Some(5 * 60),
            awaiting_confirmation_seconds: None,
            confirmed_seconds: Some(4 * HOUR),
            manufacturing_started_seconds: Some(3 * 24 * HOUR),
            manufactured_seconds: Some(24 * HOUR),
            packed_seconds: Some(24 * HOUR),
            at_risk_permille: 750,
        }
    }
}

/// Where an order stands against its clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lateness {
    OnTime,
    AtRisk,
    Overdue,
}

impl Lateness {
    pub fn as_str(self) -> &'static str {
        match self {
            Lateness::OnTime => "on_time",
            Lateness::AtRisk => "at_risk",
            Lateness::Overdue => "overdue",
        }
    }
}

impl SlaPolicy {
    /// The limit for `status` in milliseconds, if a clock runs in it.
    pub fn limit_ms(&self, status: OrderStatus) -> Option<i64> {
        let s = match status {
            OrderStatus::Pricing => self.pricing_seconds,
            OrderStatus::AwaitingConfirmation => self.awaiting_confirmation_seconds,
            OrderStatus::Confirmed => self.confirmed_seconds,
            OrderStatus::ManufacturingStarted => self.manufacturing_started_seconds,
            OrderStatus::Manufactured => self.manufactured_seconds,
            OrderStatus::Packed => self.packed_seconds,
            OrderStatus::Rejected | OrderStatus::Cancelled | OrderStatus::Shipped => None,
        }?;
        i64::try_from(s.saturating_mul(1000)).ok()
    }

    /// When an order that entered `status` at `entered_at_ms` is due to leave it.
    pub fn deadline_ms(&self, status: OrderStatus, entered_at_ms: i64) -> Option<i64> {
        self.limit_ms(status)
            .map(|limit| entered_at_ms.saturating_add(limit))
    }

    /// The order's standing at `now_ms` (on time when no clock runs).
    pub fn lateness(&self, status: OrderStatus, entered_at_ms: i64, now_ms: i64) -> Lateness {
        let Some(limit) = self.limit_ms(status) else {
            return Lateness::OnTime;
        };
        let spent = now_ms.saturating_sub(entered_at_ms);
        if spent >= limit {
            Lateness::Overdue
        } else if (spent as i128) * 1000 >= (limit as i128) * self.at_risk_permille as i128 {
            Lateness::AtRisk
        } else {
            Lateness::OnTime
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmed_orders_are_at_risk_after_three_quarters_and_overdue_after_four_hours() {
        let p = SlaPolicy::default();
        let t0 = 1_000_000;
        let h = 3_600_000;
        assert_eq!(p.deadline_ms(OrderStatus::Confirmed, t0), Some(t0 + 4 * h));
        assert_eq!(p.lateness(OrderStatus::Confirmed, t0, t0 + 2 * h), Lateness::OnTime);
        assert_eq!(p.lateness(OrderStatus::Confirmed, t0, t0 + 3 * h), Lateness::AtRisk);
        assert_eq!(p.lateness(OrderStatus::Confirmed, t0, t0 + 4 * h - 1), Lateness::AtRisk);
        assert_eq!(p.lateness(OrderStatus::Confirmed, t0, t0 + 4 * h), Lateness::Overdue);
    }

    #[test]
    fn no_clock_runs_in_final_statuses_or_on_the_customers_decision() {
        let p = SlaPolicy::default();
        for s in [
            OrderStatus::Shipped,
            OrderStatus::Rejected,
            OrderStatus::Cancelled,
            OrderStatus::AwaitingConfirmation,
        ] {
            assert_eq!(p.deadline_ms(s, 0), None);
            assert_eq!(p.lateness(s, 0, i64::MAX), Lateness::OnTime);
        }
    }
}
