//! Money as integer minor units with a currency code: never floats.

use serde::{Deserialize, Serialize};

/// An amount in minor units (kopecks for RUB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

/// ISO 4217 currencies we price in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Currency {
    RUB,
}

impl Currency {
    pub fn code(self) -> &'static str {
        match self {
            Currency::RUB => "RUB",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RUB" => Some(Currency::RUB),
            _ => None,
        }
    }
}

impl Money {
    pub fn rub(minor: i64) -> Self {
        Money {
            minor,
            currency: Currency::RUB,
        }
    }
    /// "12 345,67 ₽" style, with a thin-space thousands separator.
    pub fn display(&self) -> String {
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        let major = abs / 100;
        let minor = abs % 100;
        let digits = major.to_string();
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                grouped.push('\u{202f}');
            }
            grouped.push(c);
        }
        let symbol = match self.currency {
            Currency::RUB => "₽",
        };
        format!("{sign}{grouped},{minor:02}\u{a0}{symbol}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn displays_grouped_rubles() {
        assert_eq!(Money::rub(1234567).display(), "12\u{202f}345,67\u{a0}₽");
        assert_eq!(Money::rub(5).display(), "0,05\u{a0}₽");
        assert_eq!(Money::rub(-100).display(), "-1,00\u{a0}₽");
    }
}
