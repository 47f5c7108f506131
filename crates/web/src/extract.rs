//! Extractors whose rejection is ours: a JSON, query, form or path the framework
//! cannot read answers [`ApiError`] (JSON with a specific code), never axum's
//! plain text; role guards for the API (401/403 JSON) and for pages (a login
//! redirect or a 403 page in the reader's language); an order id in the path
//! that names no order is 404 at once.

use crate::assets::{Frame, login_redirect, path_of};
use crate::error::ApiError;
use crate::i18n::Lang;
use crate::identity::{IdentityKey, MaybeCaller};
use axum::extract::rejection::{FormRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRef, FromRequest, FromRequestParts, OriginalUri, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use domain::{Caller, OrderId, Role};
use serde::de::DeserializeOwned;

fn too_large(e: &dyn std::fmt::Display) -> ApiError {
    ApiError::TooLarge {
        message: format!("the request body is too large: {e}"),
    }
}

/// A JSON body; 400 `bad_json` naming what is wrong (413 if too large).
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(e) => Err(json_rejection(e)),
        }
    }
}

/// Our error for a JSON body axum could not read.
pub fn json_rejection(e: JsonRejection) -> ApiError {
    match e {
        JsonRejection::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            too_large(&b.body_text())
        }
        JsonRejection::MissingJsonContentType(_) => ApiError::BadRequest {
            code: "bad_json",
            message: "send the body as JSON with 'Content-Type: application/json'".into(),
        },
        e => ApiError::BadRequest {
            code: "bad_json",
            message: e.body_text(),
        },
    }
}

/// A query string; 400 `bad_query` naming the parameter that is wrong.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(e) => Err(query_rejection(e)),
        }
    }
}

fn query_rejection(e: QueryRejection) -> ApiError {
    ApiError::BadRequest {
        code: "bad_query",
        message: e.body_text(),
    }
}

/// A form body (pages' POSTs); 400 `bad_form` naming the field that is wrong.
pub struct ApiForm<T>(pub T);

impl<S, T> FromRequest<S> for ApiForm<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(v)) => Ok(ApiForm(v)),
            Err(FormRejection::BytesRejection(b))
                if b.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(too_large(&b.body_text()))
            }
            Err(e) => Err(ApiError::BadRequest {
                code: "bad_form",
                message: e.body_text(),
            }),
        }
    }
}

/// Path parameters; 400 `bad_path` when they do not parse.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(e) => Err(path_rejection(e)),
        }
    }
}

fn path_rejection(e: PathRejection) -> ApiError {
    ApiError::BadRequest {
        code: "bad_path",
        message: e.body_text(),
    }
}

/// The `{id}` of an order route. An id that does not parse names no order: the
/// same 404 as an unknown one, answered at once.
pub struct OrderIdPath(pub OrderId);

impl<S: Send + Sync> FromRequestParts<S> for OrderIdPath {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let ApiPath(raw) = ApiPath::<String>::from_request_parts(parts, state).await?;
        parse_order_id(&raw)
            .map(OrderIdPath)
            .ok_or(ApiError::NotFound("order"))
    }
}

/// An order id as typed in a URL (bounded before it is parsed).
pub fn parse_order_id(raw: &str) -> Option<OrderId> {
    if raw.len() > 64 {
        return None;
    }
    raw.trim().parse().ok()
}

/// The `{id}` of an order page: a page that names no order is the 404 page.
pub struct PageOrderId(pub OrderId);

impl<S> FromRequestParts<S> for PageOrderId
where
    IdentityKey: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let raw = axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|p| p.0)
            .unwrap_or_default();
        match parse_order_id(&raw) {
            Some(id) => Ok(PageOrderId(id)),
            None => {
                let (lang, frame) = frame_of(parts, state).await;
                let t = lang.texts();
                Err(crate::page::message(
                    StatusCode::NOT_FOUND,
                    frame,
                    t.error_title,
                    t.not_found,
                ))
            }
        }
    }
}

async fn frame_of<S>(parts: &mut Parts, state: &S) -> (Lang, Frame)
where
    IdentityKey: FromRef<S>,
    S: Send + Sync,
{
    let Ok(lang) = Lang::from_request_parts(parts, state).await;
    let Ok(MaybeCaller(user)) = MaybeCaller::from_request_parts(parts, state).await;
    let path = parts
        .extensions
        .get::<OriginalUri>()
        .map(path_of)
        .unwrap_or_else(|| parts.uri.to_string());
    (lang, Frame::new(lang, user, path))
}

/// Who a guard admits, and what the others are told.
pub trait Admits {
    fn admits(role: Role) -> bool;
    /// The API's 403 message for everyone else.
    const REFUSAL: &'static str;
}

macro_rules! guard {
    ($(#[$doc:meta])* $api:ident, $page:ident, $rule:ident, |$role:ident| $admits:expr, $refusal:literal) => {
        #[doc(hidden)]
        pub struct $rule;
        impl Admits for $rule {
            fn admits($role: Role) -> bool {
                $admits
            }
            const REFUSAL: &'static str = $refusal;
        }
        $(#[$doc])*
        /// In the API: 401 without a caller, 403 for another role.
        pub struct $api(pub Caller);
        impl<S> FromRequestParts<S> for $api
        where
            IdentityKey: FromRef<S>,
            S: Send + Sync,
        {
            type Rejection = ApiError;
            async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
                api_guard::<$rule, S>(parts, state).await.map($api)
            }
        }
        $(#[$doc])*
        /// On a page: to the login page without a caller, the 403 page for another role.
        pub struct $page(pub Caller);
        impl<S> FromRequestParts<S> for $page
        where
            IdentityKey: FromRef<S>,
            S: Send + Sync,
        {
            type Rejection = Response;
            async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
                page_guard::<$rule, S>(parts, state).await.map($page)
            }
        }
    };
}

guard!(
    /// A shop customer or a B2B client.
    Customer, CustomerPage, CustomersOnly, |r| r == Role::Customer,
    "only customers can do this"
);
guard!(
    /// An operator or a manager.
    Staff, StaffPage, StaffOnly, |r| r != Role::Customer,
    "the production API is for operators and managers"
);
guard!(
    /// A manager.
    Manager, ManagerPage, ManagersOnly, |r| r == Role::Manager,
    "only a manager can do this"
);
guard!(
    /// Anyone who may read orders as customers see them: customers and managers.
    CustomerFacing, CustomerFacingPage, CustomerFacingOnly, |r| r != Role::Operator,
    "operators use the production API under /mes/api; /api/v1/orders is for customers"
);
guard!(
    /// Anyone signed in.
    SignedIn, SignedInPage, AnyoneSignedIn, |_r| true,
    "sign in first"
);

async fn api_guard<A: Admits, S>(parts: &mut Parts, state: &S) -> Result<Caller, ApiError>
where
    IdentityKey: FromRef<S>,
    S: Send + Sync,
{
    let caller = IdentityKey::from_ref(state)
        .verify(&parts.headers)
        .ok_or(ApiError::Unauthorized)?;
    if A::admits(caller.role) {
        Ok(caller)
    } else {
        Err(ApiError::Forbidden(A::REFUSAL.into()))
    }
}

async fn page_guard<A: Admits, S>(parts: &mut Parts, state: &S) -> Result<Caller, Response>
where
    IdentityKey: FromRef<S>,
    S: Send + Sync,
{
    let (lang, frame) = frame_of(parts, state).await;
    match frame.user.clone() {
        Some(u) if A::admits(u.role) => Ok(u),
        Some(_) => {
            let t = lang.texts();
            Err(crate::page::message(
                StatusCode::FORBIDDEN,
                frame,
                t.error_title,
                t.forbidden,
            ))
        }
        None => {
            let uri = parts
                .extensions
                .get::<OriginalUri>()
                .cloned()
                .unwrap_or_else(|| OriginalUri(parts.uri.clone()));
            Err(login_redirect(&uri))
        }
    }
}

/// What an unknown route answers: the 404 page to a browser, our JSON error to a program.
pub fn not_found(
    key: &IdentityKey,
    headers: &axum::http::HeaderMap,
    uri: &OriginalUri,
) -> Response {
    if wants_html(uri) {
        let lang = Lang::from_headers(headers, &uri.0);
        let t = lang.texts();
        crate::page::message(
            StatusCode::NOT_FOUND,
            Frame::new(lang, key.verify(headers), path_of(uri)),
            t.error_title,
            t.page_not_found,
        )
    } else {
        ApiError::NotFound("route").into_response()
    }
}

/// Pages live outside the JSON prefixes.
fn wants_html(uri: &OriginalUri) -> bool {
    let p = uri.0.path();
    !(p.starts_with("/api/")
        || p.starts_with("/mes/api/")
        || p.starts_with("/crm/api/")
        || p.starts_with("/internal/"))
}
