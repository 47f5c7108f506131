//! The order lifecycle: statuses and the one transition table every service enforces.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Pricing,
    AwaitingConfirmation,
    Rejected,
    Confirmed,
    Cancelled,
    ManufacturingStarted,
    Manufactured,
    Packed,
    Shipped,
}

/// Why a transition was refused (HTTP 409).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("order is {from}: it cannot become {to}")]
pub struct TransitionError {
    pub from: OrderStatus,
    pub to: OrderStatus,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 9] = [
        OrderStatus::Pricing,
        OrderStatus::AwaitingConfirmation,
        OrderStatus::Rejected,
        OrderStatus::Confirmed,
        OrderStatus::Cancelled,
        OrderStatus::ManufacturingStarted,
        OrderStatus::Manufactured,
        OrderStatus::Packed,
        OrderStatus::Shipped,
    ];

    /// The wire and storage name, e.g. `AWAITING_CONFIRMATION`.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pricing => "PRICING",
            OrderStatus::AwaitingConfirmation => "AWAITING_CONFIRMATION",
            OrderStatus::Rejected => "REJECTED",
            OrderStatus::Confirmed => "CONFIRMED",
            OrderStatus::Cancelled => "CANCELLED",
            OrderStatus::ManufacturingStarted => "MANUFACTURING_STARTED",
            OrderStatus::Manufactured => "MANUFACTURED",
            OrderStatus::Packed => "PACKED",
            OrderStatus::Shipped => "SHIPPED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The statuses this one may move to. This table is the lifecycle.
    pub fn next(self) -> &'static [OrderStatus] {
        use OrderStatus::*;
        match self {
            Pricing => &[AwaitingConfirmation, Rejected],
            AwaitingConfirmation => &[Confirmed, Cancelled],
            Confirmed => &[ManufacturingStarted],
            // Back to CONFIRMED: the operator releases the order to the queue.
            ManufacturingStarted => &[Manufactured, Confirmed],
            Manufactured => &[Packed],
            Packed => &[Shipped],
            Rejected | Cancelled | Shipped => &[],
        }
    }

    pub fn can_become(self, to: OrderStatus) -> bool {
        self.next().contains(&to)
    }

    /// Checks a transition against the table.
    pub fn transition(self, to: OrderStatus) -> Result<OrderStatus, TransitionError> {
        if self.can_become(to) {
            Ok(to)
        } else {
            Err(TransitionError { from: self, to })
        }
    }

    /// No further transition is possible.
    pub fn is_final(self) -> bool {
        self.next().is_empty()
    }

    /// Whether moving to `to` is the one legal step backwards: an operator
    /// releasing an order in work back to the queue.
    pub fn is_release(self, to: OrderStatus) -> bool {
        self == OrderStatus::ManufacturingStarted && to == OrderStatus::Confirmed
    }

    /// Position along the lifecycle, used to check that history only moves
    /// forward (except a release, see [`OrderStatus::is_release`]).
    pub fn rank(self) -> u8 {
        use OrderStatus::*;
        match self {
            Pricing => 0,
            AwaitingConfirmation | Rejected => 1,
            Confirmed | Cancelled => 2,
            ManufacturingStarted => 3,
            Manufactured => 4,
            Packed => 5,
            Shipped => 6,
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::OrderStatus::*;
    use super::*;
    use proptest::prelude::*;

    /// The lifecycle written out edge by edge, independent of `next()`.
    const LEGAL: &[(OrderStatus, OrderStatus)] = &[
        (Pricing, AwaitingConfirmation),
        (Pricing, Rejected),
        (AwaitingConfirmation, Confirmed),
        (AwaitingConfirmation, Cancelled),
        (Confirmed, ManufacturingStarted),
        (ManufacturingStarted, Manufactured),
        (ManufacturingStarted, Confirmed),
        (Manufactured, Packed),
        (Packed, Shipped),
    ];

    #[test]
    fn every_pair_is_accepted_exactly_when_legal() {
        let mut accepted = 0;
        for from in OrderStatus::ALL {
            for to in OrderStatus::ALL {
                let legal = LEGAL.contains(&(from, to));
                assert_eq!(from.transition(to).is_ok(), legal, "{from} -> {to}");
                if legal {
                    accepted += 1;
                    assert_eq!(
                        to.rank() > from.rank(),
                        !from.is_release(to),
                        "{from} -> {to} must move forward unless it is the release"
                    );
                } else {
                    let err = from.transition(to).unwrap_err();
                    assert_eq!(
                        err.to_string(),
                        format!("order is {from}: it cannot become {to}")
                    );
                }
            }
        }
        assert_eq!(accepted, LEGAL.len());
        let releases: Vec<_> = LEGAL.iter().filter(|(f, t)| f.is_release(*t)).collect();
        assert_eq!(releases, [&(ManufacturingStarted, Confirmed)]);
        for from in OrderStatus::ALL {
            for to in OrderStatus::ALL {
                assert_eq!(
                    from.is_release(to),
                    (from, to) == (ManufacturingStarted, Confirmed)
                );
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        assert_eq!(OrderStatus::parse("SHIPPED!"), None);
    }

    proptest! {
        /// Any walk that follows the table moves forward, except releases back to
        /// the queue (which return to exactly CONFIRMED), and ends only in a final status.
        #[test]
        fn random_walks_only_move_forward(choices in proptest::collection::vec(0usize..4, 0..24)) {
            let mut s = Pricing;
            for c in choices {
                let next = s.next();
                if next.is_empty() { prop_assert!(s.is_final()); break; }
                let to = next[c % next.len()];
                if s.is_release(to) {
                    prop_assert_eq!(to, Confirmed);
                } else {
                    prop_assert!(to.rank() > s.rank());
                }
                s = s.transition(to).unwrap();
            }
        }
    }
}
