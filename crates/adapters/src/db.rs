//! Databases: SQLite files (embedded) or PostgreSQL, behind one pool type.
//! Queries use `$1` placeholders, which both backends accept.

use anyhow::Context;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor, Row};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
            anyhow::bail!(
                "unsupported database URL '{}': expected sqlite://… or postgres://…",
                redact(url)
            )
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

/// A service's database: the primary, and optionally a read replica for
/// read-only queries.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    replica: Option<Arc<Replica>>,
}

/// A streaming replica of a PostgreSQL primary, with read-your-writes: after a
/// caller writes, [`Db::wrote`] notes the primary's WAL position (LSN) for that
/// caller; [`Db::reader`] sends the caller's reads to the replica only once the
/// replica has replayed past that position, and to the primary until then (the
/// technique GitLab's database load balancer uses). Callers who have not
/// written recently read from the replica.
#[derive(Debug)]
struct Replica {
    pool: AnyPool,
    /// Caller key → (primary LSN after the caller's last write, when noted).
    marks: Mutex<HashMap<String, (u64, Instant)>>,
}

/// A mark older than this is dropped: a replica that lags by more is broken,
/// and its readers are better served by the primary's health checks than by
/// unbounded bookkeeping.
const MARK_TTL: Duration = Duration::from_secs(300);

/// Which pool served a read (for tests and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    Primary,
    Replica,
}

/// Parses PostgreSQL's `pg_lsn` text form (`16/B374D848`) to a number.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.trim().split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

impl Db {
    /// Connects and brings the schema up to date.
    pub async fn connect(url: &str, migrations: &[Migration]) -> anyhow::Result<Db> {
        Db::connect_with_replica(url, None, migrations).await
    }

    /// Like [`Db::connect`], with an optional read replica (PostgreSQL only:
    /// a streaming standby of `url`'s server). Migrations run on the primary.
    pub async fn connect_with_replica(
        url: &str,
        replica_url: Option<&str>,
        migrations: &[Migration],
    ) -> anyhow::Result<Db> {
        let mut db = Db::open(url).await?;
        db.migrate(migrations).await?;
        if let Some(replica_url) = replica_url.filter(|u| !u.is_empty()) {
            anyhow::ensure!(
                db.backend == Backend::Postgres
                    && Backend::from_url(replica_url)? == Backend::Postgres,
                "a read replica needs PostgreSQL for both the primary and the replica \
                 (got {} and {})",
                redact(url),
                redact(replica_url)
            );
            let replica = Db::open(replica_url).await?;
            let row = sqlx::query("SELECT CAST(pg_is_in_recovery() AS INT) AS standby")
                .fetch_one(&replica.pool)
                .await
                .with_context(|| {
                    format!("asking {} whether it is a standby", redact(replica_url))
                })?;
            if row.try_get::<i32, _>("standby")? != 1 {
                tracing::warn!(
                    replica = %redact(replica_url),
                    "the configured read replica is not a standby server; reads will go to it anyway"
                );
            }
            db.replica = Some(Arc::new(Replica {
                pool: replica.pool,
                marks: Mutex::new(HashMap::new()),
            }));
        }
        Ok(db)
    }

    async fn open(url: &str) -> anyhow::Result<Db> {
        install_default_drivers();
        let backend = Backend::from_url(url)?;
        if backend == Backend::Sqlite {
            prepare_sqlite_file(url)?;
        }
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
        Ok(Db {
            pool,
            backend,
            replica: None,
        })
    }

    /// Whether a read replica is configured.
    pub fn has_replica(&self) -> bool {
        self.replica.is_some()
    }

    /// Notes that `key` (a user, a tenant) has just committed a write, so that
    /// its next reads see it. Call after the commit. Costs one query on the
    /// primary when a replica is configured, nothing otherwise.
    pub async fn wrote(&self, key: &str) {
        let Some(replica) = &self.replica else { return };
        match sqlx::query("SELECT CAST(pg_current_wal_lsn() AS TEXT) AS lsn")
            .fetch_one(&self.pool)
            .await
        {
            Ok(row) => {
                let lsn = row
                    .try_get::<String, _>("lsn")
                    .ok()
                    .and_then(|t| parse_lsn(&t));
                let mut marks = replica.marks.lock().expect("marks");
                marks.retain(|_, (_, at)| at.elapsed() < MARK_TTL);
                // No LSN (cannot happen on a primary): pin the caller to the
                // primary for the mark's lifetime.
                let lsn = lsn.unwrap_or(u64::MAX);
                // Two writes of one key at once: the later position stands,
                // whichever of them gets here last.
                let keep = marks.get(key).map_or(lsn, |(seen, _)| (*seen).max(lsn));
                marks.insert(key.to_string(), (keep, Instant::now()));
            }
            Err(e) => tracing::warn!(error = %e, "could not read the primary's WAL position"),
        }
    }

    /// The pool for `key`'s read-only queries: the replica once it has caught
    /// up with `key`'s last write, else the primary.
    pub async fn reader(&self, key: &str) -> &AnyPool {
        self.reader_with_source(key).await.0
    }

    /// [`Db::reader`], also saying which pool it chose.
    pub async fn reader_with_source(&self, key: &str) -> (&AnyPool, ReadFrom) {
        let Some(replica) = &self.replica else {
            return (&self.pool, ReadFrom::Primary);
        };
        let mark = {
            let marks = replica.marks.lock().expect("marks");
            marks
                .get(key)
                .filter(|(_, at)| at.elapsed() < MARK_TTL)
                .map(|(lsn, _)| *lsn)
        };
        let Some(mark) = mark else {
            return (&replica.pool, ReadFrom::Replica);
        };
        let replayed = sqlx::query("SELECT CAST(pg_last_wal_replay_lsn() AS TEXT) AS lsn")
            .fetch_one(&replica.pool)
            .await
            .ok()
            .and_then(|row| row.try_get::<Option<String>, _>("lsn").ok().flatten())
            .and_then(|t| parse_lsn(&t));
        match replayed {
            Some(lsn) if lsn >= mark => {
                // Only the mark that was passed: a write noted meanwhile stays.
                let mut marks = replica.marks.lock().expect("marks");
                if marks.get(key).is_some_and(|(m, _)| *m <= lsn) {
                    marks.remove(key);
                }
                (&replica.pool, ReadFrom::Replica)
            }
            _ => (&self.pool, ReadFrom::Primary),
        }
    }

    /// The replica's pool for reads that need no freshness (reports), or the
    /// primary when none is configured.
    pub fn any_reader(&self) -> &AnyPool {
        self.replica.as_ref().map_or(&self.pool, |r| &r.pool)
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
        if let Some(r) = &self.replica {
            sqlx::query("SELECT 1 AS one")
                .fetch_one(&r.pool)
                .await
                .context("read replica")?;
        }
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
        if let Some(r) = &self.replica {
            r.pool.close().await;
        }
    }
}

/// The SQLite URL of a file, created if missing.
pub fn sqlite_url(path: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// The file a SQLite URL names, and whether SQLite may create it
/// (`mode=rwc`); None for an in-memory database.
fn sqlite_file(url: &str) -> Option<(std::path::PathBuf, bool)> {
    // As sqlx reads it: `sqlite://` or `sqlite:`, the percent-encoded file, `?params`.
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (file, params) = rest.split_once('?').unwrap_or((rest, ""));
    let mut create = false;
    for (k, v) in url::form_urlencoded::parse(params.as_bytes()) {
        if k == "mode" {
            if v == "memory" {
                return None;
            }
            create = v == "rwc";
        }
    }
    if file.is_empty() || file == ":memory:" {
        return None;
    }
    let file = percent_encoding::percent_decode_str(file)
        .decode_utf8()
        .ok()?
        .into_owned();
    Some((std::path::PathBuf::from(file), create))
}

/// A SQLite database holds customers' data and password hashes: its file is
/// made 0600 before SQLite opens it (SQLite gives its `-wal` and `-shm` files
/// the database file's mode), and an existing one others could read is narrowed.
fn prepare_sqlite_file(url: &str) -> anyhow::Result<()> {
    let Some((file, create)) = sqlite_file(url) else {
        return Ok(());
    };
    if create {
        crate::private::ensure_file(&file)
            .with_context(|| format!("creating {}", file.display()))?;
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut name = file.clone().into_os_string();
        name.push(suffix);
        let path = std::path::PathBuf::from(name);
        if crate::private::narrow(&path).with_context(|| format!("narrowing {}", path.display()))? {
            tracing::warn!(file = %path.display(), "other accounts could read this database file: narrowed to 0600");
        }
    }
    Ok(())
}

/// Query parameters whose values are secrets, by name (lower case, `-` as `_`).
fn secret_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase().replace('-', "_");
    const EXACT: &[&str] = &["pwd", "pass", "key", "sig", "auth", "apikey"];
    const PARTS: &[&str] = &[
        "password",
        "passwd",
        "passphrase",
        "secret",
        "token",
        "access_key",
        "accesskey",
        "api_key",
        "private_key",
        "credential",
        "sslkey",
        "authorization",
        "signature",
    ];
    EXACT.contains(&n.as_str())
        || PARTS.iter().any(|p| n.contains(p))
        || n.ends_with("_key")
        || n.ends_with("_pwd")
}

/// A URL with its secrets replaced by `***`: the password of its user
/// information, and every query parameter named like a secret (`password`,
/// `sslpassword`, `token`, `secret_access_key`, `X-Amz-Signature`, …).
/// Anything else, a path or a name, is returned as it is.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|s| s + 3) else {
        return redact_params(url);
    };
    // The authority ends at the first '/', '?' or '#'; its user information at its last '@'.
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let mut out = url[..scheme_end].to_string();
    let after = match rest[..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            match userinfo.find(':') {
                Some(c) => {
                    out.push_str(&userinfo[..c]);
                    out.push_str(":***");
                }
                None => out.push_str(userinfo),
            }
            &rest[at..]
        }
        // An '@' further on with no path before it: a password holding a raw
        // '/', '?' or '#' (no URL parser accepts it, but it is still a secret).
        None => match rest.rfind('@') {
            Some(at) if url::Url::parse(url).is_err() => {
                out.push_str("***");
                &rest[at..]
            }
            _ => rest,
        },
    };
    out.push_str(&redact_params(after));
    out
}

/// `name=value` pairs after a '?' (or, in a text with no '?', separated by
/// '&', ';' or spaces, as in a PostgreSQL key/value string) whose name is a
/// secret get `***` as value.
fn redact_params(text: &str) -> String {
    let (head, query, fragment) = match text.find('?') {
        Some(q) => {
            let (query, fragment) = match text[q + 1..].find('#') {
                Some(h) => (&text[q + 1..q + 1 + h], &text[q + 1 + h..]),
                None => (&text[q + 1..], ""),
            };
            (&text[..=q], query, fragment)
        }
        None if text.contains('=') && !text.contains("://") => ("", text, ""),
        None => return text.to_string(),
    };
    let mut out = String::with_capacity(text.len());
    out.push_str(head);
    let mut rest = query;
    while !rest.is_empty() {
        let end = rest.find(['&', ';', ' ']).unwrap_or(rest.len());
        let pair = &rest[..end];
        match pair.split_once('=') {
            Some((name, _))
                if secret_param(
                    &percent_encoding::percent_decode_str(name).decode_utf8_lossy(),
                ) =>
            {
                out.push_str(name);
                out.push_str("=***");
            }
            _ => out.push_str(pair),
        }
        out.push_str(&rest[end..(end + 1).min(rest.len())]);
        rest = &rest[(end + 1).min(rest.len())..];
    }
    out.push_str(fragment);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_lsns() {
        assert_eq!(super::parse_lsn("0/0"), Some(0));
        assert_eq!(
            super::parse_lsn("16/B374D848"),
            Some((0x16 << 32) | 0xB374_D848)
        );
        assert!(super::parse_lsn("16/B374D849") > super::parse_lsn("16/B374D848"));
        assert!(super::parse_lsn("17/0") > super::parse_lsn("16/FFFFFFFF"));
        assert_eq!(super::parse_lsn("nonsense"), None);
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact("sqlite://x.db"), "sqlite://x.db");
        assert_eq!(
            super::redact("sqlite:///data/crm.sqlite?mode=rwc"),
            "sqlite:///data/crm.sqlite?mode=rwc"
        );
        assert_eq!(
            super::redact(
                "postgres://u@h:5433/db?sslmode=require&password=s3cr%40t&sslpassword=k#x"
            ),
            "postgres://u@h:5433/db?sslmode=require&password=***&sslpassword=***#x"
        );
        assert_eq!(
            super::redact("redis://:hunter2@cache:6379/0"),
            "redis://:***@cache:6379/0"
        );
        assert_eq!(
            super::redact("amqp://guest:p%2Fw@mq:5672/%2f?heartbeat=10"),
            "amqp://guest:***@mq:5672/%2f?heartbeat=10"
        );
        assert_eq!(
            super::redact(
                "https://h/x?X-Amz-Signature=abc&X-Amz-Credential=AKIA&access_key=1&secret_access_key=2&token=3&pwd=4&passwd=5&key=6&secret=7&user=me"
            ),
            "https://h/x?X-Amz-Signature=***&X-Amz-Credential=***&access_key=***&secret_access_key=***&token=***&pwd=***&passwd=***&key=***&secret=***&user=me"
        );
        // The user information ends before the path: an '@' in a query is not a password.
        assert_eq!(
            super::redact("postgres://h/db?application_name=a@b"),
            "postgres://h/db?application_name=a@b"
        );
        // A password with a raw '/' is still masked.
        let raw = super::redact("postgres://u:pa/ss@h/db");
        assert!(!raw.contains("pa/ss"), "{raw}");
        assert_eq!(
            super::redact("host=db user=u password=secret dbname=x"),
            "host=db user=u password=*** dbname=x"
        );
        assert_eq!(super::redact("plain words"), "plain words");
    }

    #[test]
    fn sqlite_files_are_read_from_urls_as_sqlx_reads_them() {
        use std::path::PathBuf;
        assert_eq!(
            super::sqlite_file("sqlite:///d/crm.sqlite?mode=rwc"),
            Some((PathBuf::from("/d/crm.sqlite"), true))
        );
        assert_eq!(
            super::sqlite_file("sqlite:rel%20dir/x.db"),
            Some((PathBuf::from("rel dir/x.db"), false))
        );
        assert_eq!(super::sqlite_file("sqlite::memory:"), None);
        assert_eq!(super::sqlite_file("sqlite://x.db?mode=memory"), None);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_new_sqlite_database_and_its_wal_are_readable_by_this_account_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.sqlite");
        let db = super::Db::connect(&super::sqlite_url(&file), &[])
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (a INT)")
            .execute(db.pool())
            .await
            .unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let p = dir.path().join(format!("x.sqlite{suffix}"));
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
        db.close().await;
    }
}
