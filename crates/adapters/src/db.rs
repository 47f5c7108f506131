//! Databases: SQLite files (embedded) or PostgreSQL, behind one pool type.
//! Queries use `$1` placeholders, which both backends accept.

use anyhow::Context;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor, Row};
use std::time::Duration;

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> anyhow::Result<Backend> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Backend::Postgres)
        } else {
            anyhow::bail!("unsupported database URL '{url}': expected sqlite://… or postgres://…")
        }
    }
}

/// One schema change, with a version per backend's folder.
pub struct Migration {
    pub version: i64,
    pub description: &'static str,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

/// A service's database.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

impl Db {
    /// Connects and brings the schema up to date.
    pub async fn connect(url: &str, migrations: &[Migration]) -> anyhow::Result<Db> {
        install_default_drivers();
        let backend = Backend::from_url(url)?;
        let mut opts = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        opts = match backend {
            Backend::Sqlite => opts.max_connections(4).after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                         PRAGMA foreign_keys = ON;",
                    )
                    .await?;
                    Ok(())
                })
            }),
            Backend::Postgres => opts.max_connections(16),
        };
        let pool = opts
            .connect(url)
            .await
            .with_context(|| format!("connecting to {}", redact(url)))?;
        let db = Db { pool, backend };
        db.migrate(migrations).await?;
        Ok(db)
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so two writers wait for each other instead of failing.
    pub async fn begin_write(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Any>> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    async fn migrate(&self, migrations: &[Migration]) -> anyhow::Result<()> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS _migrations (version BIGINT PRIMARY KEY, \
             description TEXT NOT NULL, applied_at_ms BIGINT NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        for m in migrations {
            let mut tx = self.begin_write().await?;
            let done = sqlx::query("SELECT version FROM _migrations WHERE version = $1")
                .bind(m.version)
                .fetch_optional(&mut *tx)
                .await?;
            if done.is_some() {
                continue;
            }
            let sql = match self.backend {
                Backend::Sqlite => m.sqlite,
                Backend::Postgres => m.postgres,
            };
            sqlx::raw_sql(sql)
                .execute(&mut *tx)
                .await
                .with_context(|| format!("migration {} ({})", m.version, m.description))?;
            sqlx::query(
                "INSERT INTO _migrations (version, description, applied_at_ms) VALUES ($1, $2, $3)",
            )
            .bind(m.version)
            .bind(m.description)
            .bind(domain::to_ms(domain::now()))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            tracing::info!(
                version = m.version,
                description = m.description,
                "migration applied"
            );
        }
        Ok(())
    }

    /// Readiness probe.
    pub async fn ping(&self) -> anyhow::Result<()> {
        let row = sqlx::query("SELECT 1 AS one").fetch_one(&self.pool).await?;
        let one: i32 = row
            .try_get::<i32, _>("one")
            .or_else(|_| row.try_get::<i64, _>("one").map(|v| v as i32))?;
        anyhow::ensure!(one == 1, "unexpected answer");
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The SQLite URL of a file, created if missing.
pub fn sqlite_url(path: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// A URL with any password replaced by `***`.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact("sqlite://x.db"), "sqlite://x.db");
    }
}
