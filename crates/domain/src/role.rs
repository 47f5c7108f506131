//! Who is calling: the identity the gateway authenticates and passes on.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A person's role in the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Customer,
    Operator,
    Manager,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Operator => "operator",
            Role::Manager => "manager",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "customer" => Some(Role::Customer),
            "operator" => Some(Role::Operator),
            "manager" => Some(Role::Manager),
            _ => None,
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    pub user_id: Uuid,
    pub role: Role,
    /// The B2B organisation, if the user belongs to one.
    pub org: Option<String>,
    pub name: String,
    pub email: String,
}

impl Caller {
    /// The tenant whose orders this caller may see: the organisation, or the user alone.
    pub fn tenant(&self) -> String {
        match &self.org {
            Some(org) => format!("org:{org}"),
            None => format!("user:{}", self.user_id),
        }
    }
}
