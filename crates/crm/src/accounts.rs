//! The one registry of people: customers (B2C or members of a B2B organisation),
//! operators, managers; their passwords, browser sessions and API keys.

use adapters::Db;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use async_trait::async_trait;
use domain::{Caller, Role};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use uuid::Uuid;

/// How long a browser session lasts.
const SESSION_DAYS: i64 = 30;

/// Why an account could not be created.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("'{0}' is not an email address")]
    BadEmail(String),
    #[error("the password must be at least 8 characters long")]
    ShortPassword,
    #[error("the name must not be empty")]
    EmptyName,
    #[error(
        "the name must be one line of at most {} characters without control characters",
        web::text::MAX_NAME
    )]
    BadName,
    #[error(
        "the password must be at most {} characters long",
        web::text::MAX_PASSWORD
    )]
    LongPassword,
    #[error(
        "the organisation must be one line of at most {} characters",
        web::text::MAX_NAME
    )]
    BadOrg,
    #[error("a user with email {0} already exists")]
    Taken(String),
    #[error("no user with email {0}")]
    NoSuchUser(String),
    #[error("API keys act for B2B organisations' customers, operators and managers; {0} is a {1}")]
    KeyNotAllowed(String, &'static str),
    #[error("language '{0}' is not offered: use ru or en")]
    BadLanguage(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// A new person to register.
pub struct NewUser<'a> {
    pub email: &'a str,
    pub name: &'a str,
    pub password: &'a str,
    pub role: Role,
    pub org: Option<&'a str>,
}

/// The registry, over the CRM's database.
#[derive(Clone)]
pub struct Accounts {
    db: Db,
    /// Password checks made against [`dummy_hash`] (no such account).
    dummy_checks: Arc<AtomicU64>,
}

/// A hash of no one's password, made with the same parameters as every
/// stored one: a login for an address without an account checks against it,
/// so it takes as long as a login for an address with one (the time would
/// otherwise tell which addresses have accounts).
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        let salt = SaltString::encode_b64(&{
            let mut s = [0u8; 16];
            rand::rng().fill_bytes(&mut s);
            s
        })
        .expect("16 bytes is a valid salt");
        Argon2::default()
            .hash_password(random_token(16).as_bytes(), &salt)
            .expect("hashing with the default parameters")
            .to_string()
    })
}

pub(crate) fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

fn caller_from_row(row: &sqlx::any::AnyRow) -> Result<Caller, sqlx::Error> {
    let id: String = row.try_get("id")?;
    let role: String = row.try_get("role")?;
    Ok(Caller {
        user_id: Uuid::parse_str(&id).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        role: Role::parse(&role).unwrap_or(Role::Customer),
        org: row.try_get("org")?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
    })
}

/// Password hashes computed at once in this process: argon2 takes ~19 MiB and
/// a core for ~0.1 s, so a burst of logins or registrations waits here
/// instead of taking the machine's memory.
static PASSWORD_CHECKS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

/// A turn to compute a password hash (see [`PASSWORD_CHECKS`]). Login takes it
/// before it looks at the throttle, so requests racing in parallel see each
/// other's failures instead of all passing one check.
pub async fn password_check_turn() -> tokio::sync::SemaphorePermit<'static> {
    PASSWORD_CHECKS
        .acquire()
        .await
        .expect("the semaphore is never closed")
}

/// Normalises an email for lookup: trimmed, lower case.
pub fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

impl Accounts {
    pub fn new(db: Db) -> Self {
        Accounts {
            db,
            dummy_checks: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many logins named no account and were checked against the dummy
    /// hash (in this process, since it started).
    pub fn dummy_checks(&self) -> u64 {
        self.dummy_checks.load(Ordering::Relaxed)
    }

    /// Registers a person. The password is stored only as an argon2 hash.
    pub async fn create_user(&self, new: NewUser<'_>) -> Result<Caller, AccountError> {
        let email = normalise_email(new.email);
        if !web::text::is_email(&email) {
            return Err(AccountError::BadEmail(
                new.email
                    .trim()
                    .chars()
                    .take(web::text::MAX_EMAIL)
                    .collect(),
            ));
        }
        let name = match web::text::one_line(new.name, web::text::MAX_NAME, false) {
            Ok(n) => n,
            Err(web::text::TextError::Empty) => return Err(AccountError::EmptyName),
            Err(_) => return Err(AccountError::BadName),
        };
        let name = name.as_str();
        if new.password.chars().count() < 8 {
            return Err(AccountError::ShortPassword);
        }
        if new.password.len() > web::text::MAX_PASSWORD {
            return Err(AccountError::LongPassword);
        }
        if let Some(org) = new.org
            && web::text::one_line(org, web::text::MAX_NAME, true).is_err()
        {
            return Err(AccountError::BadOrg);
        }
        let password = new.password.to_string();
        let _turn = password_check_turn().await;
        let hash = tokio::task::spawn_blocking(move || {
            let salt = SaltString::encode_b64(&{
                let mut s = [0u8; 16];
                rand::rng().fill_bytes(&mut s);
                s
            })
            .expect("16 bytes is a valid salt");
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
        })
        .await
        .map_err(|e| anyhow::anyhow!(e))?
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?;
        let id = Uuid::now_v7();
        let org = new.org.map(str::trim).filter(|o| !o.is_empty());
        let res = sqlx::query(
            "INSERT INTO users (id, email, name, role, org, password_hash, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (email) DO NOTHING",
        )
        .bind(id.to_string())
        .bind(&email)
        .bind(name)
        .bind(new.role.as_str())
        .bind(org)
        .bind(hash)
        .bind(domain::to_ms(domain::now()))
        .execute(self.db.pool())
        .await?;
        if res.rows_affected() == 0 {
            return Err(AccountError::Taken(email));
        }
        Ok(Caller {
            user_id: id,
            role: new.role,
            org: org.map(String::from),
            name: name.to_string(),
            email,
        })
    }

    /// The language a person is written to in ("ru" or "en").
    pub async fn set_language(&self, user_id: Uuid, lang: &str) -> Result<(), AccountError> {
        let lang = match lang {
            "ru" | "en" => lang,
            other => return Err(AccountError::BadLanguage(other.to_string())),
        };
        sqlx::query("UPDATE users SET lang = $1 WHERE id = $2")
            .bind(lang)
            .bind(user_id.to_string())
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    pub async fn count_users(&self) -> Result<i64, sqlx::Error> {
        sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(self.db.pool())
            .await?
            .try_get("n")
    }

    pub async fn find_by_email(&self, email: &str) -> Result<Option<Caller>, sqlx::Error> {
        let email = normalise_email(email);
        if !web::text::is_email(&email) {
            return Ok(None);
        }
        let row = sqlx::query("SELECT id, email, name, role, org FROM users WHERE email = $1")
            .bind(&email)
            .fetch_optional(self.db.pool())
            .await?;
        row.as_ref().map(caller_from_row).transpose()
    }

    /// Checks a password; the caller on success. An address without an
    /// account costs the same argon2 check as one with (against a dummy hash).
    /// The caller holds a [`password_check_turn`].
    pub async fn verify_password(
        &self,
        email: &str,
        password: &str,
    ) -> Result<Option<Caller>, AccountError> {
        // Only an address of the shape we register can have an account (a NUL
        // would not even reach PostgreSQL); no password we store is longer
        // than MAX_PASSWORD. Either way the dummy check below still runs.
        let email = normalise_email(email);
        let plausible = web::text::is_email(&email) && password.len() <= web::text::MAX_PASSWORD;
        let row = if plausible {
            sqlx::query(
                "SELECT id, email, name, role, org, password_hash FROM users WHERE email = $1",
            )
            .bind(&email)
            .fetch_optional(self.db.pool())
            .await?
        } else {
            None
        };
        let password: String = password.chars().take(web::text::MAX_PASSWORD).collect();
        let hash: String = match &row {
            Some(row) => row.try_get("password_hash")?,
            None => {
                self.dummy_checks.fetch_add(1, Ordering::Relaxed);
                dummy_hash().to_string()
            }
        };
        let span = tracing::Span::current();
        let ok = tokio::task::spawn_blocking(move || {
            let _in = span.enter();
            PasswordHash::new(&hash).is_ok_and(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
        })
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
        match row {
            Some(row) if ok => Ok(Some(caller_from_row(&row)?)),
            _ => Ok(None),
        }
    }

    /// Tells the owner of `email` (by e-mail, through the notifier) that
    /// someone tried to register their address. Nothing if it has no account.
    pub async fn registration_attempted(&self, email: &str) -> Result<(), AccountError> {
        let row = sqlx::query("SELECT email, name, lang FROM users WHERE email = $1")
            .bind(normalise_email(email))
            .fetch_optional(self.db.pool())
            .await?;
        let Some(row) = row else { return Ok(()) };
        let contact = domain::events::Contact {
            email: row.try_get("email")?,
            name: row.try_get("name")?,
            language: row
                .try_get::<Option<String>, _>("lang")?
                .filter(|l| l == "en")
                .unwrap_or_else(|| "ru".into()),
            organisation: None,
        };
        let event = domain::events::RegistrationAttempted::now(contact);
        let mut tx = self.db.begin_write().await?;
        adapters::outbox::enqueue(&mut tx, &domain::events::Envelope::new("crm", &event)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Opens a browser session; returns the cookie value (stored only as a hash).
    pub async fn open_session(&self, user: &Caller) -> Result<String, sqlx::Error> {
        let token = random_token(32);
        let now = domain::to_ms(domain::now());
        sqlx::query("INSERT INTO sessions (token_hash, user_id, created_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4)")
            .bind(sha256_hex(&token))
            .bind(user.user_id.to_string())
            .bind(now)
            .bind(now + SESSION_DAYS * 86_400_000)
            .execute(self.db.pool())
            .await?;
        Ok(token)
    }

    /// A value shaped like a session cookie that opens no session: the
    /// answer to registering a taken address looks like the answer to
    /// registering a new one.
    pub fn unused_session_token() -> String {
        random_token(32)
    }

    pub async fn close_session(&self, token: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(sha256_hex(token))
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// Issues an API key acting as the user; the key is returned once and stored as a hash.
    pub async fn create_key(&self, email: &str) -> Result<String, AccountError> {
        let user = self
            .find_by_email(email)
            .await?
            .ok_or_else(|| AccountError::NoSuchUser(normalise_email(email)))?;
        if user.role == Role::Customer && user.org.is_none() {
            return Err(AccountError::KeyNotAllowed(
                user.email,
                "customer without an organisation",
            ));
        }
        let key = format!("alx_{}", random_token(24));
        sqlx::query("INSERT INTO api_keys (key_hash, prefix, user_id, created_at_ms) VALUES ($1, $2, $3, $4)")
            .bind(sha256_hex(&key))
            .bind(&key[..12])
            .bind(user.user_id.to_string())
            .bind(domain::to_ms(domain::now()))
            .execute(self.db.pool())
            .await?;
        Ok(key)
    }
}

#[async_trait]
impl web::Authenticator for Accounts {
    async fn by_session(&self, token: &str) -> Result<Option<Caller>, web::identity::Unavailable> {
        let row = sqlx::query(
            "SELECT u.id, u.email, u.name, u.role, u.org FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at_ms > $2",
        )
        .bind(sha256_hex(token))
        .bind(domain::to_ms(domain::now()))
        .fetch_optional(self.db.pool())
        .await
        .inspect_err(|e| tracing::error!(error = %e, "session lookup failed"))
        .map_err(|_| web::identity::Unavailable)?;
        Ok(row.as_ref().and_then(|r| caller_from_row(r).ok()))
    }

    async fn by_api_key(&self, key: &str) -> Result<Caller, web::identity::KeyRefused> {
        let row = sqlx::query(
            "SELECT u.id, u.email, u.name, u.role, u.org FROM api_keys k JOIN users u ON u.id = k.user_id \
             WHERE k.key_hash = $1 AND k.revoked_at_ms IS NULL",
        )
        .bind(sha256_hex(key))
        .fetch_optional(self.db.pool())
        .await
        .inspect_err(|e| tracing::error!(error = %e, "API key lookup failed"))
        .map_err(|_| web::identity::KeyRefused::Unavailable)?;
        row.as_ref()
            .and_then(|r| caller_from_row(r).ok())
            .ok_or(web::identity::KeyRefused::Invalid)
    }
}

#[cfg(test)]
mod dummy_tests {
    use super::*;

    #[test]
    fn the_dummy_hash_costs_what_a_stored_one_costs() {
        let dummy = PasswordHash::new(dummy_hash()).unwrap();
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let stored = Argon2::default()
            .hash_password(b"password-123", &salt)
            .unwrap();
        assert_eq!(dummy.algorithm, stored.algorithm);
        assert_eq!(dummy.version, stored.version);
        assert_eq!(dummy.params, stored.params, "same memory, time and lanes");
        assert!(
            Argon2::default().verify_password(b"", &dummy).is_err(),
            "no password opens it"
        );
    }
}
