//! The client's network address as the gateway determined it (the TCP peer,
//! or what a trusted proxy said), passed to a service in a signed header, so
//! a service behind the gateway throttles by the client, not by the gateway.

use crate::identity::IdentityKey;
use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

pub const CLIENT_HEADER: &str = "x-alexandrite-client";
pub const CLIENT_SIGNATURE_HEADER: &str = "x-alexandrite-client-signature";

fn payload(ip: IpAddr) -> String {
    format!("client:{ip}")
}

/// Writes the signed client address (replacing whatever the client sent).
pub fn stamp(key: &IdentityKey, headers: &mut HeaderMap, ip: IpAddr) {
    let sig = key.sign_bytes(payload(ip).as_bytes());
    headers.insert(CLIENT_HEADER, ip.to_string().parse().expect("ascii"));
    headers.insert(CLIENT_SIGNATURE_HEADER, sig.parse().expect("ascii"));
}

/// The client address the gateway signed, if the signature holds.
pub fn verified(key: &IdentityKey, headers: &HeaderMap) -> Option<IpAddr> {
    let ip: IpAddr = headers.get(CLIENT_HEADER)?.to_str().ok()?.parse().ok()?;
    let sig = headers.get(CLIENT_SIGNATURE_HEADER)?.to_str().ok()?;
    key.verify_bytes(payload(ip).as_bytes(), sig).then_some(ip)
}

/// The TCP peer of the connection, where the server recorded it.
pub fn peer(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The client's address: the gateway's signed word, else the TCP peer (a
/// request that did not come through the gateway), else 0.0.0.0 (a server
/// that records no peers: every such request shares one count).
pub struct ClientAddr(pub IpAddr);

impl<S> FromRequestParts<S> for ClientAddr
where
    IdentityKey: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let key = IdentityKey::from_ref(state);
        Ok(ClientAddr(
            verified(&key, &parts.headers)
                .or_else(|| peer(parts))
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_address_round_trips_and_a_forged_one_is_ignored() {
        let key = IdentityKey::new(b"secret");
        let mut h = HeaderMap::new();
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        stamp(&key, &mut h, ip);
        assert_eq!(verified(&key, &h), Some(ip));
        assert_eq!(verified(&IdentityKey::new(b"other"), &h), None);
        // A client naming another address keeps the old signature: refused.
        h.insert(CLIENT_HEADER, "198.51.100.1".parse().unwrap());
        assert_eq!(verified(&key, &h), None);
    }
}
