//! Integration events: versioned JSON documents in an envelope. These types are
//! the only thing services share.

use crate::ids::{EventId, OrderId};
use crate::money::Money;
use crate::price::{Breakdown, MaterialSnapshot};
use crate::status::OrderStatus;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The envelope every event and command travels in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub event_id: EventId,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u32,
    /// RFC 3339, UTC.
    pub occurred_at: String,
    pub producer: String,
    pub order_id: OrderId,
    pub payload: serde_json::Value,
    /// W3C trace context; carried in message headers on a broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// A payload with a fixed name and version.
pub trait Event: Serialize + DeserializeOwned {
    const TYPE: &'static str;
    const VERSION: u32 = 1;
    fn order_id(&self) -> OrderId;
}

/// An envelope whose payload does not match its declared type.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("expected event {expected}, got {got}")]
    WrongType { expected: &'static str, got: String },
    #[error("event {kind} v{version} is not understood: {source}")]
    Payload {
        kind: String,
        version: u32,
        source: serde_json::Error,
    },
}

impl Envelope {
    /// Wraps a payload, stamping a fresh id and the current time.
    pub fn new<E: Event>(producer: &str, event: &E) -> Envelope {
        Envelope {
            event_id: EventId::new(),
            kind: E::TYPE.to_string(),
            version: E::VERSION,
            occurred_at: crate::rfc3339(crate::now()),
            producer: producer.to_string(),
            order_id: event.order_id(),
            payload: serde_json::to_value(event).expect("events serialise"),
            traceparent: None,
        }
    }

    pub fn is<E: Event>(&self) -> bool {
        self.kind == E::TYPE
    }

    pub fn decode<E: Event>(&self) -> Result<E, DecodeError> {
        if self.kind != E::TYPE {
            return Err(DecodeError::WrongType {
                expected: E::TYPE,
                got: self.kind.clone(),
            });
        }
        serde_json::from_value(self.payload.clone()).map_err(|source| DecodeError::Payload {
            kind: self.kind.clone(),
            version: self.version,
            source,
        })
    }
}

macro_rules! event {
    ($ty:ident, $name:literal) => {
        impl Event for $ty {
            const TYPE: &'static str = $name;
            fn order_id(&self) -> OrderId {
                self.order_id
            }
        }
    };
}

/// Who did something, as shown in an order's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// "customer", "operator", "manager" or "system".
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<uuid::Uuid>,
}

impl Actor {
    pub fn system(name: &str) -> Actor {
        Actor {
            kind: "system".into(),
            name: name.into(),
            user_id: None,
        }
    }
}

/// The numbers a quote is made of, as every service shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeometrySummary {
    pub format: String,
    pub triangles: u64,
    pub vertices: u64,
    pub volume_mm3: f64,
    pub area_mm2: f64,
    pub bbox_mm: BBox,
    pub shells: u64,
    pub watertight: bool,
    pub boundary_edges: u64,
    pub nonmanifold_edges: u64,
    /// Metal weight in grams (the metal volume × the material's density).
    pub weight_g: f64,
    /// The volume weighed as metal, mm³: the model's minus its stones
    /// (absent in events made before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metal_volume_mm3: Option<f64>,
    /// Shells taken for stones and left out of the metal.
    #[serde(default)]
    pub stones: u64,
    /// Which rule decided what is metal.
    #[serde(default)]
    pub metal_rule: crate::price::MetalRule,
    /// Triangles the analysis turned to make the winding consistent before
    /// measuring (0 in events made before it was recorded).
    #[serde(default)]
    pub flipped_triangles: u64,
    /// Remarks a person should know (inside-out, voids, …), in English.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Bounding-box size in mm.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BBox {
    pub x: f64,
    pub y: f64,
    pub z: f64,
}

/// A price with its breakdown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quote {
    pub total: Money,
    pub breakdown: Breakdown,
    pub material: MaterialSnapshot,
}

/// A quote as every API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceView {
    pub total_minor: i64,
    pub currency: String,
    pub breakdown: Breakdown,
    pub material_version: i64,
}

impl Quote {
    pub fn view(&self) -> PriceView {
        PriceView {
            total_minor: self.total.minor,
            currency: self.total.currency.code().to_string(),
            breakdown: self.breakdown.clone(),
            material_version: self.material.version,
        }
    }
}

/// mes → crm: the upload was accepted; the order exists, being priced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelReceived {
    pub order_id: OrderId,
    pub tenant: String,
    pub owner: Actor,
    pub owner_email: String,
    pub material: String,
    pub file_name: String,
    pub size_bytes: u64,
    pub channel: String,
}
event!(ModelReceived, "model.received");

/// mes → pricing (work queue): analyse and price this stored model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PricingRequested {
    pub order_id: OrderId,
    pub object_key: String,
    pub content_sha256: String,
    pub material: MaterialSnapshot,
}
event!(PricingRequested, "pricing.requested");

/// pricing → mes: the geometry and the price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PricingCompleted {
    pub order_id: OrderId,
    pub geometry: GeometrySummary,
    pub quote: Quote,
    pub duration_ms: u64,
}
event!(PricingCompleted, "pricing.completed");

/// pricing → mes: the model cannot be made, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PricingFailed {
    pub order_id: OrderId,
    /// Machine-readable reason: "unreadable", "not_watertight", "too_large", ...
    pub code: String,
    /// A reason a person can act on.
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geometry: Option<GeometrySummary>,
}
event!(PricingFailed, "pricing.failed");

/// mes → crm: the quote is ready.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderPriced {
    pub order_id: OrderId,
    pub geometry: GeometrySummary,
    pub quote: Quote,
}
event!(OrderPriced, "order.priced");

/// mes → crm: the model cannot be made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRejected {
    pub order_id: OrderId,
    pub code: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geometry: Option<GeometrySummary>,
}
event!(OrderRejected, "order.rejected");

/// crm → mes: the customer accepted the quote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderConfirmed {
    pub order_id: OrderId,
    pub actor: Actor,
}
event!(OrderConfirmed, "order.confirmed");

/// crm → mes: the customer declined, or the quote expired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderCancelled {
    pub order_id: OrderId,
    pub actor: Actor,
    #[serde(default)]
    pub reason: Option<String>,
}
event!(OrderCancelled, "order.cancelled");

/// mes → crm: production moved the order on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderStatusChanged {
    pub order_id: OrderId,
    pub status: OrderStatus,
    pub actor: Actor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_number: Option<String>,
    /// Why (a release back to the queue carries the operator's reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}
event!(OrderStatusChanged, "order.status_changed");

/// Whom a customer-facing change is told to, as the CRM knows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub email: String,
    pub name: String,
    /// "ru" (the default) or "en".
    #[serde(default = "default_language")]
    pub language: String,
    /// The B2B organisation the order belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organisation: Option<String>,
}

fn default_language() -> String {
    "ru".into()
}

/// Why an order was rejected, as the customer is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectionView {
    pub code: String,
    pub reason: String,
}

/// crm → notifier: a customer-facing status was recorded (written to the
/// CRM's outbox in the same transaction), with the contact to tell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderUpdated {
    pub order_id: OrderId,
    pub status: OrderStatus,
    /// When the status was recorded (RFC 3339, UTC).
    pub at: String,
    pub contact: Contact,
    pub file_name: String,
    pub material: String,
    /// The quote's total, once priced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_total: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection: Option<RejectionView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_number: Option<String>,
}
event!(OrderUpdated, "order.updated");

/// crm → notifier: someone tried to register an address that already has an
/// account. The shop answered them as for a new address; the owner is told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistrationAttempted {
    /// Names this notice: it is the envelope's `order_id`, though no order
    /// is involved (every envelope names one; notices get a fresh id).
    pub notice_id: OrderId,
    /// The account's owner.
    pub contact: Contact,
    /// RFC 3339, UTC.
    pub at: String,
}
impl Event for RegistrationAttempted {
    const TYPE: &'static str = "account.registration_attempted";
    fn order_id(&self) -> OrderId {
        self.notice_id
    }
}

impl RegistrationAttempted {
    /// A notice to `contact`, now.
    pub fn now(contact: Contact) -> RegistrationAttempted {
        RegistrationAttempted {
            notice_id: OrderId::new(),
            contact,
            at: crate::rfc3339(crate::now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips_and_checks_type() {
        let ev = OrderConfirmed {
            order_id: OrderId::new(),
            actor: Actor::system("test"),
        };
        let env = Envelope::new("crm", &ev);
        assert_eq!(env.kind, "order.confirmed");
        assert_eq!(env.order_id, ev.order_id);
        let json = serde_json::to_string(&env).unwrap();
        assert!(json.contains("\"type\":\"order.confirmed\""));
        let back: Envelope = serde_json::from_str(&json).unwrap();
        assert_eq!(back.decode::<OrderConfirmed>().unwrap(), ev);
        let err = back.decode::<OrderCancelled>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "expected event order.cancelled, got order.confirmed"
        );
    }

    #[test]
    fn priced_events_stored_before_stones_were_recorded_still_decode() {
        // An order.priced payload as written before metal_volume_mm3, stones
        // and metal_rule existed (geometry and breakdown).
        let old = serde_json::json!({
            "order_id": OrderId::new(),
            "geometry": {
                "format": "binary STL", "triangles": 12, "vertices": 8,
                "volume_mm3": 1000.0, "area_mm2": 600.0,
                "bbox_mm": {"x": 10.0, "y": 10.0, "z": 10.0}, "shells": 1,
                "watertight": true, "boundary_edges": 0, "nonmanifold_edges": 0,
                "weight_g": 13.1
            },
            "quote": {
                "total": {"minor": 300000, "currency": "RUB"},
                "breakdown": {"weight_g": 13.1, "lines": []},
                "material": {
                    "code": "AU585Y", "version": 1, "name_en": "gold", "name_ru": "золото",
                    "density_g_cm3": 13.1, "price_per_gram_minor": 750000, "currency": "RUB"
                }
            }
        });
        let ev: OrderPriced = serde_json::from_value(old).unwrap();
        assert_eq!(ev.geometry.metal_rule, crate::price::MetalRule::WholeModel);
        assert_eq!(
            (ev.geometry.stones, ev.geometry.metal_volume_mm3),
            (0, None)
        );
        assert_eq!(
            ev.quote.breakdown.metal_rule,
            crate::price::MetalRule::WholeModel
        );
    }

    #[test]
    fn order_updated_defaults_the_language_to_russian() {
        let json = serde_json::json!({
            "order_id": OrderId::new(), "status": "AWAITING_CONFIRMATION",
            "at": "2026-12-07T00:00:00.000Z",
            "contact": {"email": "a@b.test", "name": "A"},
            "file_name": "ring.stl", "material": "AU585Y",
            "price_total": {"minor": 12778102, "currency": "RUB"}
        });
        let ev: OrderUpdated = serde_json::from_value(json).unwrap();
        assert_eq!(ev.contact.language, "ru");
        assert_eq!(ev.contact.organisation, None);
        assert_eq!(ev.price_total, Some(Money::rub(12778102)));
        let env = Envelope::new("crm", &ev);
        assert_eq!(env.kind, "order.updated");
        assert_eq!(env.decode::<OrderUpdated>().unwrap(), ev);
    }
}
