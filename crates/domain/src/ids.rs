//! Identifiers. An order id is a UUIDv7 minted by `mes` when the model arrives.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// The one id that names an order everywhere: API, CRM, MES, events, logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderId(Uuid);

impl OrderId {
    /// A new time-ordered id.
    pub fn new() -> Self {
        OrderId(Uuid::now_v7())
    }
    /// The id of this UUID (ids minted elsewhere, e.g. with a MAC in their random bits).
    pub fn from_uuid(u: Uuid) -> Self {
        OrderId(u)
    }
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
    /// Milliseconds since the epoch at which this id was minted (UUIDv7 timestamp).
    pub fn minted_at_ms(&self) -> Option<i64> {
        self.0.get_timestamp().map(|ts| {
            let (s, n) = ts.to_unix();
            s as i64 * 1000 + (n / 1_000_000) as i64
        })
    }
}

impl Default for OrderId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Error for an id that is not a UUID.
#[derive(Debug, thiserror::Error)]
#[error("'{0}' is not a valid order id (expected a UUID)")]
pub struct BadId(pub String);

impl FromStr for OrderId {
    type Err = BadId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s)
            .map(OrderId)
            .map_err(|_| BadId(s.chars().take(64).collect()))
    }
}

/// Identifies one integration event (UUIDv7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(Uuid);

impl EventId {
    pub fn new() -> Self {
        EventId(Uuid::now_v7())
    }
}

impl Default for EventId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for EventId {
    type Err = BadId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s)
            .map(EventId)
            .map_err(|_| BadId(s.to_string()))
    }
}
