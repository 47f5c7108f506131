//! Calls between our own processes: the body is signed with the identity
//! secret (HMAC in `x-alexandrite-internal`); the gateway never routes `/internal/*`.

use crate::IdentityKey;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// The header carrying the HMAC of an internal call's body.
pub const SIGNATURE: &str = "x-alexandrite-internal";

/// The body, if it is signed with our key; a 403 response otherwise.
pub fn verified<'a>(
    key: &IdentityKey,
    headers: &HeaderMap,
    body: &'a [u8],
) -> Result<&'a [u8], Response> {
    let signed = headers
        .get(SIGNATURE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|s| key.verify_bytes(body, s));
    if signed {
        Ok(body)
    } else {
        Err((StatusCode::FORBIDDEN, "internal calls must be signed").into_response())
    }
}
