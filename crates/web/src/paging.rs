//! Keyset pagination: a cursor names the last row shown (its time and id),
//! never an offset.

use crate::ApiError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::OrderId;

/// (time in ms, order id) of the last row shown.
pub type Position = (i64, String);

/// The cursor after a row.
pub fn encode(ms: i64, id: &OrderId) -> String {
    URL_SAFE_NO_PAD.encode(format!("{ms}:{id}"))
}

/// A cursor this API returned, or None.
pub fn decode(cursor: &str) -> Option<Position> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    let (ms, id) = raw.split_once(':')?;
    let _: OrderId = id.parse().ok()?;
    Some((ms.parse().ok()?, id.to_string()))
}

/// The `limit` (1..=max, `default` if absent) and `cursor` query parameters, checked.
pub fn parse(
    limit: Option<i64>,
    default: i64,
    max: i64,
    cursor: Option<&str>,
) -> Result<(i64, Option<Position>), ApiError> {
    let limit = limit.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        return Err(ApiError::unprocessable(
            "bad_limit",
            "limit",
            format!("limit must be between 1 and {max}"),
        ));
    }
    let position = match cursor {
        Some(c) => Some(decode(c).ok_or_else(|| {
            ApiError::unprocessable(
                "bad_cursor",
                "cursor",
                "cursor is not one this API returned",
            )
        })?),
        None => None,
    };
    Ok((limit, position))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let id = OrderId::new();
        assert_eq!(decode(&encode(42, &id)), Some((42, id.to_string())));
        assert_eq!(decode("garbage"), None);
        assert!(parse(Some(0), 20, 100, None).is_err());
        assert!(parse(None, 20, 100, Some("garbage")).is_err());
        assert_eq!(parse(None, 20, 100, None).unwrap(), (20, None));
    }
}
