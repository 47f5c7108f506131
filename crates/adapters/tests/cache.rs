//! One cache contract, run on the in-process cache and on a real Redis
//! (`ALEXANDRITE_TEST_REDIS_URL`, default `redis://127.0.0.1:6379/0`; the test
//! fails, never skips, when Redis is not there). Every test uses its own key
//! prefix, so runs never see each other's keys.

use adapters::Cache;
use futures::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn redis_url() -> String {
    std::env::var("ALEXANDRITE_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_string())
}

fn prefix() -> String {
    format!("test-{}:", uuid::Uuid::new_v4())
}

async fn open(backend: &str, prefix: &str) -> Arc<dyn Cache> {
    let url = match backend {
        "memory" => "memory://".to_string(),
        _ => redis_url(),
    };
    let cache = adapters::cache::open(&url, prefix).await.expect("open");
    assert_eq!(cache.backend(), backend);
    cache
        .ping()
        .await
        .unwrap_or_else(|e| panic!("{backend} must answer (redis-server --daemonize yes): {e}"));
    cache
}

async fn values(backend: &str) {
    let c = open(backend, &prefix()).await;
    assert_eq!(c.get("a").await.unwrap(), None);
    c.set("a", b"one", Duration::from_secs(30)).await.unwrap();
    assert_eq!(c.get("a").await.unwrap().as_deref(), Some(&b"one"[..]));
    c.set("a", b"two", Duration::from_secs(30)).await.unwrap();
    assert_eq!(c.get("a").await.unwrap().as_deref(), Some(&b"two"[..]));
    c.delete("a").await.unwrap();
    assert_eq!(c.get("a").await.unwrap(), None);
    c.delete("never-there").await.unwrap();
    // Binary values round-trip.
    let bytes: Vec<u8> = (0..=255).collect();
    c.set("bin", &bytes, Duration::from_secs(30)).await.unwrap();
    assert_eq!(c.get("bin").await.unwrap(), Some(bytes));
}

async fn expiry(backend: &str) {
    let c = open(backend, &prefix()).await;
    c.set("short", b"x", Duration::from_millis(150))
        .await
        .unwrap();
    c.set("long", b"y", Duration::from_secs(30)).await.unwrap();
    assert!(c.get("short").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(c.get("short").await.unwrap(), None, "expired");
    assert!(c.get("long").await.unwrap().is_some(), "not yet expired");
}

async fn counters(backend: &str) {
    let c = open(backend, &prefix()).await;
    assert_eq!(c.incr("gen").await.unwrap(), 1);
    assert_eq!(c.incr("gen").await.unwrap(), 2);
    assert_eq!(c.incr("other").await.unwrap(), 1);
    c.set("text", b"not a number", Duration::from_secs(30))
        .await
        .unwrap();
    assert!(c.incr("text").await.is_err());
}

async fn prefixes_isolate(backend: &str) {
    // Two handles on one backend, like two deployments sharing a Redis.
    let (pa, pb) = (prefix(), prefix());
    let a = open(backend, &pa).await;
    let b = open(backend, &pb).await;
    a.set("k", b"a", Duration::from_secs(30)).await.unwrap();
    assert_eq!(b.get("k").await.unwrap(), None);
    b.set("k", b"b", Duration::from_secs(30)).await.unwrap();
    assert_eq!(a.get("k").await.unwrap().as_deref(), Some(&b"a"[..]));
    let same = open(backend, &pa).await;
    if backend == "redis" {
        // The same prefix on another connection sees the same key.
        assert_eq!(same.get("k").await.unwrap().as_deref(), Some(&b"a"[..]));
    }
}

async fn next(s: &mut adapters::cache::Messages) -> Option<Vec<u8>> {
    tokio::time::timeout(Duration::from_secs(3), s.next())
        .await
        .ok()
        .flatten()
}

async fn pubsub(backend: &str) {
    let p = prefix();
    let c = open(backend, &p).await;
    let mut s1 = c.subscribe("queue").await.unwrap();
    let mut s2 = c.subscribe("queue").await.unwrap();
    let mut other = c.subscribe("elsewhere").await.unwrap();
    c.publish("queue", b"hello").await.unwrap();
    c.publish("queue", b"again").await.unwrap();
    assert_eq!(next(&mut s1).await.as_deref(), Some(&b"hello"[..]));
    assert_eq!(next(&mut s1).await.as_deref(), Some(&b"again"[..]));
    assert_eq!(next(&mut s2).await.as_deref(), Some(&b"hello"[..]));
    assert_eq!(next(&mut s2).await.as_deref(), Some(&b"again"[..]));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), other.next())
            .await
            .is_err(),
        "another channel hears nothing"
    );
    // Publishing with nobody listening is fine.
    c.publish("nobody", b"x").await.unwrap();
    if backend == "redis" {
        // Another process (another handle, same prefix) hears it; another prefix does not.
        let c2 = open(backend, &p).await;
        let stranger = open(backend, &prefix()).await;
        let mut s3 = c2.subscribe("queue").await.unwrap();
        let mut s4 = stranger.subscribe("queue").await.unwrap();
        c.publish("queue", b"across").await.unwrap();
        assert_eq!(next(&mut s3).await.as_deref(), Some(&b"across"[..]));
        assert_eq!(next(&mut s1).await.as_deref(), Some(&b"across"[..]));
        assert!(
            tokio::time::timeout(Duration::from_millis(300), s4.next())
                .await
                .is_err(),
            "another prefix hears nothing"
        );
    }
}

/// A subscriber that falls too far behind is told that it missed messages
/// (an empty message), and then hears what comes next.
async fn a_slow_subscriber_hears_of_the_gap(backend: &str) {
    let c = open(backend, &prefix()).await;
    let mut s = c.subscribe("busy").await.unwrap();
    for i in 0..3000 {
        c.publish("busy", format!("m{i}").as_bytes()).await.unwrap();
    }
    c.publish("busy", b"last").await.unwrap();
    let mut gaps = 0;
    let mut heard = 0;
    loop {
        let m = next(&mut s).await.expect("the last message arrives");
        if m.as_slice() == adapters::cache::GAP {
            gaps += 1;
        } else if m == b"last" {
            break;
        } else {
            heard += 1;
        }
    }
    assert!(gaps >= 1, "the gap is told ({heard} of 3000 heard)");
    assert!(heard < 3000, "messages were missed: {heard}");
}

macro_rules! on_both {
    ($($name:ident),*) => {
        mod memory {
            $(#[tokio::test] async fn $name() { super::$name("memory").await })*
        }
        mod redis {
            $(#[tokio::test] async fn $name() { super::$name("redis").await })*
        }
    };
}

on_both!(
    values,
    expiry,
    counters,
    prefixes_isolate,
    pubsub,
    a_slow_subscriber_hears_of_the_gap
);

/// A Redis that cannot be reached fails each call quickly (the queue then reads
/// the database), and does not fail to open.
#[tokio::test]
async fn unreachable_redis_fails_fast() {
    // Port 1 on loopback: nothing listens there.
    let c = adapters::cache::open("redis://127.0.0.1:1/0", &prefix())
        .await
        .expect("opening is lazy");
    for _ in 0..3 {
        let t = Instant::now();
        assert!(c.get("k").await.is_err());
        assert!(c.set("k", b"v", Duration::from_secs(1)).await.is_err());
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "took {:?}",
            t.elapsed()
        );
    }
    assert!(c.ping().await.is_err());
    assert!(adapters::cache::open("mongodb://x", "p").await.is_err());
}
