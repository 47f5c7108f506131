//! Demo accounts for a first start with empty data, so a newcomer can try
//! every face of the platform at once.

use crm::accounts::{Accounts, NewUser};
use domain::Role;
use std::path::Path;

/// The demo people: (role, email, name, password, organisation).
pub const PEOPLE: &[(Role, &str, &str, &str, Option<&str>)] = &[
    (
        Role::Customer,
        "anna@example.com",
        "Анна Смирнова",
        "anna-demo-2026",
        None,
    ),
    (
        Role::Customer,
        "api@brand.example",
        "Brand Demo (B2B)",
        "brand-demo-2026",
        Some("brand-demo"),
    ),
    (
        Role::Operator,
        "oleg@alexandrite.local",
        "Олег Иванов",
        "operator-demo-2026",
        None,
    ),
    (
        Role::Manager,
        "maria@alexandrite.local",
        "Мария Петрова",
        "manager-demo-2026",
        None,
    ),
];

/// What was created, to print once.
pub struct DemoAccounts {
    pub text: String,
    pub b2b_key: String,
}

/// Creates the demo accounts if there are no users yet; the credentials also go
/// to `demo-credentials.txt` in the data dir (the API key is shown only there).
pub async fn ensure(accounts: &Accounts, data_dir: &Path) -> anyhow::Result<Option<DemoAccounts>> {
    if accounts.count_users().await? > 0 {
        return Ok(None);
    }
    let mut text = String::from("Demo accounts (password / API key):\n");
    for (role, email, name, password, org) in PEOPLE {
        accounts
            .create_user(NewUser {
                email,
                name,
                password: password,
                role: *role,
                org: *org,
            })
            .await?;
        text += &format!("  {:<9} {:<26} {}\n", role.as_str(), email, password);
    }
    let key = accounts.create_key("api@brand.example").await?;
    text += &format!("  B2B API key (org brand-demo): {key}\n");
    let file = data_dir.join("demo-credentials.txt");
    // Passwords and an API key: readable by this account only.
    adapters::private::write(&file, text.as_bytes())
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", file.display()))?;
    Ok(Some(DemoAccounts { text, b2b_key: key }))
}
