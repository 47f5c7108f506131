//! Alexandrite's shared vocabulary. Every service speaks it; none of it does I/O.

pub mod events;
pub mod ids;
pub mod money;
pub mod price;
pub mod reconcile;
pub mod role;
pub mod sla;
pub mod status;

pub use ids::{EventId, OrderId};
pub use money::Money;
pub use role::{Caller, Role};
pub use status::{OrderStatus, TransitionError};

/// Current UTC time, truncated to milliseconds (what every store keeps).
pub fn now() -> time::OffsetDateTime {
    let t = time::OffsetDateTime::now_utc();
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).expect("valid time")
}

/// Milliseconds since the Unix epoch, the form times are stored in.
pub fn to_ms(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The inverse of [`to_ms`].
pub fn from_ms(ms: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// RFC 3339 in UTC with exactly three fractional digits, so times sort as text:
/// `2026-11-21T11:45:14.400Z`.
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_have_fixed_millisecond_precision() {
        assert_eq!(
            super::rfc3339(super::from_ms(1_795_000_000_400)),
            "2026-11-18T11:06:40.400Z"
        );
        assert_eq!(
            super::rfc3339(super::from_ms(0)),
            "1970-01-01T00:00:00.000Z"
        );
    }
}
