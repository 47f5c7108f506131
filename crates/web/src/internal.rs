//! Calls between our own processes: the body is signed with the identity
//! secret (HMAC in `x-alexandrite-internal`); the gateway never routes `/internal/*`.

use crate::{ApiError, IdentityKey};
use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, Request};
use serde::de::DeserializeOwned;

/// The header carrying the HMAC of an internal call's body.
pub const SIGNATURE: &str = "x-alexandrite-internal";

/// The JSON body of an internal call signed with our key: 403 unsigned, 400 unreadable.
pub struct Signed<T>(pub T);

impl<S, T> FromRequest<S> for Signed<T>
where
    T: DeserializeOwned,
    IdentityKey: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let signature = req
            .headers()
            .get(SIGNATURE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::BadRequest {
                code: "bad_body",
                message: e.body_text(),
            })?;
        let key = IdentityKey::from_ref(state);
        if !signature.is_some_and(|s| key.verify_bytes(&body, &s)) {
            return Err(ApiError::Forbidden("internal calls must be signed".into()));
        }
        serde_json::from_slice(&body)
            .map(Signed)
            .map_err(|e| ApiError::BadRequest {
                code: "bad_json",
                message: e.to_string(),
            })
    }
}
