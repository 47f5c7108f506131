//! One error type for every HTTP handler; one place that turns it into a response.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A failure a caller can act on, or an internal one that is logged in full.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{message}")]
    Unprocessable {
        code: &'static str,
        message: String,
        field: Option<&'static str>,
    },
    #[error("authentication required: send 'Authorization: Bearer <key>' or log in")]
    Unauthorized,
    #[error("the API key is not valid")]
    BadKey,
    #[error("{0}")]
    Forbidden(String),
    /// A state-changing request with our cookie that did not come from our pages.
    #[error(
        "this request did not come from one of our pages; open the page again and repeat the action"
    )]
    CrossSite,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        details: Option<serde_json::Value>,
    },
    #[error("{message}")]
    TooLarge { message: String },
    /// A feature this deployment's configuration does not offer: 404 (the
    /// resource is not here), never a 5xx — the caller's request is answered.
    #[error("{message}")]
    NotOffered { code: &'static str, message: String },
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn unprocessable(
        code: &'static str,
        field: &'static str,
        message: impl Into<String>,
    ) -> Self {
        ApiError::Unprocessable {
            code,
            message: message.into(),
            field: Some(field),
        }
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Conflict {
            code,
            message: message.into(),
            details: None,
        }
    }
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized | ApiError::BadKey => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::CrossSite => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotOffered { .. } => StatusCode::NOT_FOUND,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::Unprocessable { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::NotOffered { code, .. } => code,
            ApiError::Unauthorized => "unauthenticated",
            ApiError::BadKey => "invalid_api_key",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::CrossSite => "cross_site_request",
            ApiError::NotFound(_) => "not_found",
            ApiError::TooLarge { .. } => "too_large",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Internal(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = %format!("{e:#}"), "request failed");
        }
        let mut body = json!({ "error": { "code": self.code(), "message": self.to_string() } });
        match &self {
            ApiError::Unprocessable { field: Some(f), .. } => body["error"]["field"] = json!(f),
            ApiError::Conflict {
                details: Some(d), ..
            } => body["error"]["details"] = d.clone(),
            _ => {}
        }
        let mut resp = (self.status(), Json(body)).into_response();
        if matches!(self, ApiError::Unauthorized | ApiError::BadKey) {
            resp.headers_mut().insert(
                "www-authenticate",
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}
