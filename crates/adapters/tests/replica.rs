//! Read replica with read-your-writes, on a real PostgreSQL streaming replica
//! (`scripts/pg-replica` makes one on 127.0.0.1:5433; `scripts/test` runs it).
//!
//! The replica's WAL replay is paused during the test, so "the replica has not
//! caught up yet" is a fact, not a race: a caller who has just written must be
//! served by the primary (and see the write), a caller who has not must be
//! served by the replica (and, replay being paused, must not see it).

use adapters::Db;
use adapters::db::ReadFrom;
use futures::FutureExt;
use sqlx::{Connection, Row};
use std::time::{Duration, Instant};

fn base(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.into())
}

async fn count(pool: &sqlx::AnyPool, name: &str) -> i64 {
    sqlx::query("SELECT COUNT(*) AS n FROM notes WHERE name = $1")
        .bind(name)
        .fetch_one(pool)
        .await
        .unwrap()
        .try_get::<i64, _>("n")
        .unwrap()
}

/// Pauses or resumes WAL replay on the replica (superuser only).
async fn replay(replica_admin: &str, pause: bool) {
    let mut conn = sqlx::PgConnection::connect(replica_admin).await.unwrap();
    let f = if pause {
        "pg_wal_replay_pause"
    } else {
        "pg_wal_replay_resume"
    };
    sqlx::query(&format!("SELECT {f}()"))
        .execute(&mut conn)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_to_the_replica_except_a_writers_own_until_it_catches_up() {
    let primary = base(
        "ALEXANDRITE_TEST_POSTGRES_URL",
        "postgres://postgres:postgres@127.0.0.1:5432",
    );
    let replica = base(
        "ALEXANDRITE_TEST_POSTGRES_REPLICA_URL",
        "postgres://postgres:postgres@127.0.0.1:5433",
    );
    let name = format!("alx_test_replica_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&format!("{primary}/postgres"))
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {primary} is needed (scripts/test starts it): {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    // The new database reaches the replica by replication, like everything else.
    let replica_admin = format!("{replica}/postgres");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let conn = sqlx::PgConnection::connect(&replica_admin).await.unwrap_or_else(|e| {
            panic!("the PostgreSQL replica at {replica} is needed (scripts/pg-replica makes it): {e}")
        });
        let mut conn = conn;
        let seen = sqlx::query("SELECT 1 FROM pg_database WHERE datname = $1")
            .bind(&name)
            .fetch_optional(&mut conn)
            .await
            .unwrap()
            .is_some();
        if seen {
            break;
        }
        assert!(Instant::now() < deadline, "the replica never saw database {name}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let migrations = [adapters::Migration {
        version: 1,
        description: "notes",
        sqlite: "CREATE TABLE notes (name TEXT NOT NULL)",
        postgres: "CREATE TABLE notes (name TEXT NOT NULL)",
    }];
    let db = Db::connect_with_replica(
        &format!("{primary}/{name}"),
        Some(&format!("{replica}/{name}")),
        &migrations,
    )
    .await
    .unwrap();
    assert!(db.has_replica());
    db.ping().await.unwrap();

    // Nobody has written: everyone reads from the replica, which really is a standby.
    let (pool, from) = db.reader_with_source("user:anna").await;
    assert_eq!(from, ReadFrom::Replica);
    let standby: i32 = sqlx::query("SELECT CAST(pg_is_in_recovery() AS INT) AS s")
        .fetch_one(pool)
        .await
        .unwrap()
        .get("s");
    assert_eq!(standby, 1, "the reader pool must be the standby");
    // The migration's table has replicated before we pause.
    let deadline = Instant::now() + Duration::from_secs(30);
    while sqlx::query("SELECT 1 FROM notes").fetch_optional(pool).await.is_err() {
        assert!(Instant::now() < deadline, "the notes table never replicated");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    replay(&replica_admin, true).await;
    // Whatever happens inside, replay is resumed before the outcome is judged.
    let result = std::panic::AssertUnwindSafe(async {
        // Anna writes; the replica is frozen before her write.
        sqlx::query("INSERT INTO notes (name) VALUES ($1)")
            .bind("anna")
            .execute(db.pool())
            .await
            .unwrap();
        db.wrote("user:anna").await;

        // Anna's reads go to the primary and see her write…
        let (pool, from) = db.reader_with_source("user:anna").await;
        assert_eq!(from, ReadFrom::Primary, "the replica has not replayed Anna's write");
        assert_eq!(count(pool, "anna").await, 1);
        // …every time, while the replica stays behind.
        for _ in 0..5 {
            assert_eq!(count(db.reader("user:anna").await, "anna").await, 1);
        }
        // Oleg has written nothing: he reads the replica, which does not have it yet.
        let (pool, from) = db.reader_with_source("user:oleg").await;
        assert_eq!(from, ReadFrom::Replica);
        assert_eq!(count(pool, "anna").await, 0, "replay is paused, so the replica lags");
    })
    .catch_unwind()
    .await;
    replay(&replica_admin, false).await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }

    // Once the replica has replayed Anna's write, she goes back to it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (pool, from) = db.reader_with_source("user:anna").await;
        if from == ReadFrom::Replica {
            assert_eq!(count(pool, "anna").await, 1, "caught up means her write is there");
            break;
        }
        assert!(Instant::now() < deadline, "the replica never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    db.close().await;
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_replica_on_sqlite_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let url = adapters::db::sqlite_url(&dir.path().join("a.sqlite"));
    let err = Db::connect_with_replica(&url, Some("postgres://127.0.0.1:5433/x"), &[])
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("needs PostgreSQL"),
        "unexpected error: {err:#}"
    );
}
