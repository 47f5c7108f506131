//! The caller's identity, authenticated by the gateway and passed to a service
//! in a header signed with a shared secret, so a service can trust it.

use crate::error::ApiError;
use async_trait::async_trait;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::Caller;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::Arc;

/// The browser session cookie.
pub const SESSION_COOKIE: &str = "alex_session";
pub const IDENTITY_HEADER: &str = "x-alexandrite-identity";
pub const SIGNATURE_HEADER: &str = "x-alexandrite-signature";
/// A signed identity older than this is refused (replays across processes).
const MAX_AGE_MS: i64 = 5 * 60 * 1000;

/// The shared secret the gateway signs identities with.
#[derive(Clone)]
pub struct IdentityKey(Arc<Vec<u8>>);

impl IdentityKey {
    pub fn new(secret: &[u8]) -> Self {
        IdentityKey(Arc::new(secret.to_vec()))
    }

    fn mac(&self, payload: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("any key length");
        mac.update(payload.as_bytes());
        mac
    }

    /// Writes the identity headers for a caller (removing any the client sent).
    pub fn stamp(&self, headers: &mut HeaderMap, caller: Option<&Caller>) {
        headers.remove(IDENTITY_HEADER);
        headers.remove(SIGNATURE_HEADER);
        let Some(caller) = caller else { return };
        let json = serde_json::to_vec(caller).expect("caller serialises");
        let payload = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(json),
            domain::to_ms(domain::now())
        );
        let sig = hex::encode(self.mac(&payload).finalize().into_bytes());
        headers.insert(IDENTITY_HEADER, payload.parse().expect("ascii"));
        headers.insert(SIGNATURE_HEADER, sig.parse().expect("ascii"));
    }

    /// Signs bytes for a call between our own processes (hex HMAC-SHA256).
    pub fn sign_bytes(&self, bytes: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("any key length");
        mac.update(bytes);
        hex::encode(mac.finalize().into_bytes())
    }

    /// Checks a signature made by [`IdentityKey::sign_bytes`].
    pub fn verify_bytes(&self, bytes: &[u8], signature: &str) -> bool {
        let Ok(sig) = hex::decode(signature) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("any key length");
        mac.update(bytes);
        mac.verify_slice(&sig).is_ok()
    }

    /// A new order id (UUIDv7) whose last four random bytes are a MAC of the
    /// rest, so that a service can tell an id our MES minted from one a
    /// stranger made up (see [`IdentityKey::minted`]).
    pub fn mint_order_id(&self) -> domain::OrderId {
        let mut bytes = *uuid::Uuid::now_v7().as_bytes();
        let tag = self.order_id_tag(&bytes[..12]);
        bytes[12..].copy_from_slice(&tag);
        domain::OrderId::from_uuid(uuid::Uuid::from_bytes(bytes))
    }

    /// Whether [`IdentityKey::mint_order_id`] made this id (with this key).
    pub fn minted(&self, id: &domain::OrderId) -> bool {
        let bytes = id.as_uuid().into_bytes();
        // Compared in constant time by the MAC itself.
        self.order_id_mac(&bytes[..12])
            .verify_truncated_left(&bytes[12..])
            .is_ok()
    }

    fn order_id_mac(&self, head: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("any key length");
        mac.update(b"order-id:");
        mac.update(head);
        mac
    }

    fn order_id_tag(&self, head: &[u8]) -> [u8; 4] {
        let out = self.order_id_mac(head).finalize().into_bytes();
        [out[0], out[1], out[2], out[3]]
    }

    /// Reads and verifies the identity headers.
    pub fn verify(&self, headers: &HeaderMap) -> Option<Caller> {
        let payload = headers.get(IDENTITY_HEADER)?.to_str().ok()?;
        let sig = hex::decode(headers.get(SIGNATURE_HEADER)?.to_str().ok()?).ok()?;
        self.mac(payload).verify_slice(&sig).ok()?;
        let (b64, ts) = payload.rsplit_once('.')?;
        let ts: i64 = ts.parse().ok()?;
        if (domain::to_ms(domain::now()) - ts).abs() > MAX_AGE_MS {
            return None;
        }
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(b64).ok()?).ok()
    }
}

/// The registry of people cannot be asked right now (a passing failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

/// Why an API key did not authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefused {
    /// The key names nobody (401).
    Invalid,
    /// The registry cannot be asked right now (503: try again).
    Unavailable,
}

/// Resolves credentials to a person. The CRM owns the registry and implements it.
#[async_trait]
pub trait Authenticator: Send + Sync + 'static {
    /// `Ok(None)` when the session names nobody; `Err` when the registry cannot be asked.
    async fn by_session(&self, token: &str) -> Result<Option<Caller>, Unavailable>;
    /// `Err` when the key is not valid (answered 401 at once).
    async fn by_api_key(&self, key: &str) -> Result<Caller, KeyRefused>;
}

/// An authenticated caller; 401 JSON otherwise.
pub struct Authenticated(pub Caller);

/// The caller if there is one (pages decide themselves what to do without one).
pub struct MaybeCaller(pub Option<Caller>);

impl<S> FromRequestParts<S> for MaybeCaller
where
    IdentityKey: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(MaybeCaller(
            IdentityKey::from_ref(state).verify(&parts.headers),
        ))
    }
}

impl<S> FromRequestParts<S> for Authenticated
where
    IdentityKey: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        IdentityKey::from_ref(state)
            .verify(&parts.headers)
            .map(Authenticated)
            .ok_or(ApiError::Unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::Role;

    #[test]
    fn signed_identity_round_trips_and_forgery_fails() {
        let key = IdentityKey::new(b"secret");
        let caller = Caller {
            user_id: uuid::Uuid::now_v7(),
            role: Role::Operator,
            org: None,
            name: "Ольга".into(),
            email: "o@example.com".into(),
        };
        let mut h = HeaderMap::new();
        key.stamp(&mut h, Some(&caller));
        assert_eq!(key.verify(&h), Some(caller.clone()));
        assert_eq!(IdentityKey::new(b"other").verify(&h), None);
        // A client cannot smuggle an identity through: stamping without a caller clears it.
        key.stamp(&mut h, None);
        assert_eq!(key.verify(&h), None);
    }

    #[test]
    fn minted_order_ids_are_told_from_made_up_ones() {
        let key = IdentityKey::new(b"secret");
        let id = key.mint_order_id();
        assert!(key.minted(&id));
        assert_eq!(id.as_uuid().get_version_num(), 7);
        assert!(id.minted_at_ms().is_some());
        assert!(!IdentityKey::new(b"other").minted(&id));
        assert!(!key.minted(&domain::OrderId::new()));
    }
}
