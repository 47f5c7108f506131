//! What every service's HTTP face shares: the caller's identity as the gateway
//! passes it, the one error type, languages and texts, and the static assets.

pub mod assets;
pub mod client;
pub mod error;
pub mod extract;
pub mod fmt;
pub mod i18n;
pub mod identity;
pub mod internal;
pub mod page;
pub mod paging;
pub mod sla;
pub mod text;

pub use error::ApiError;
pub use extract::{
    ApiForm, ApiJson, ApiPath, ApiQuery, Customer, CustomerFacing, CustomerFacingPage,
    CustomerPage, Manager, ManagerPage, OrderIdPath, PageOrderId, SignedIn, SignedInPage, Staff,
    StaffPage,
};
pub use i18n::{Lang, Texts};
pub use identity::{Authenticated, Authenticator, IdentityKey, MaybeCaller};
