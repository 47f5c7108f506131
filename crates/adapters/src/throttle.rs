//! Failure throttles over the cache port: how many times a key (an account,
//! a client address) failed lately, and how long its next attempt must wait.
//!
//! A key may fail `failures` times; from then on each further failure makes
//! the next attempt wait, `first_delay_ms` after the first and doubling up to
//! `max_delay_seconds`. The count is forgotten after `window_seconds` without
//! a failure. Counts live in the shared cache (Redis on the production
//! profile), so every process sees the same ones; when that cache fails the
//! throttle counts in its own process instead (logged and counted in
//! `alexandrite_throttle_degraded_total`): degraded, never open, never a 500.

use crate::cache::{Cache, MemoryCache};
use crate::metrics::Metrics;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// One limit: the failures allowed, then a growing wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limit {
    /// Failures allowed before the next attempt has to wait.
    pub failures: u32,
    /// The count is forgotten this long after the last failure.
    pub window_seconds: u64,
    /// The wait after the first failure over the allowance, in milliseconds;
    /// doubled after each further one.
    pub first_delay_ms: u64,
    /// The longest wait.
    pub max_delay_seconds: u64,
}

impl Default for Limit {
    fn default() -> Self {
        Limit {
            failures: 5,
            window_seconds: 15 * 60,
            first_delay_ms: 1000,
            max_delay_seconds: 15 * 60,
        }
    }
}

impl Limit {
    /// The wait after `failures` failures in the window (none within the allowance).
    pub fn delay(&self, failures: u64) -> Option<Duration> {
        let over = failures.checked_sub(self.failures as u64)?;
        let factor = 2u64.saturating_pow(over.min(63) as u32);
        let ms = self.first_delay_ms.max(1).saturating_mul(factor);
        Some(Duration::from_millis(ms).min(self.max()))
    }

    fn max(&self) -> Duration {
        Duration::from_secs(self.max_delay_seconds)
            .max(Duration::from_millis(self.first_delay_ms.max(1)))
    }

    fn window(&self) -> Duration {
        // The count must outlive the longest wait, or a wait could never grow.
        Duration::from_secs(self.window_seconds.max(1)).max(self.max())
    }
}

/// The `abuse` section: how failed logins and API keys are throttled, and
/// which proxies may say who the client is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AbusePolicy {
    /// Addresses (`10.0.0.1`) or networks (`10.0.0.0/8`, `fd00::/8`) of
    /// proxies in front of the gateway whose `X-Forwarded-For` is believed.
    /// Empty (the default): the client is the TCP peer, and the header is ignored.
    pub trusted_proxies: Vec<String>,
    /// Failed logins per account (e-mail address, known or not): short and
    /// bounded, so the owner is never locked out for long.
    pub login_account: Limit,
    /// Failed logins per client address, whatever the accounts: what stops
    /// one machine trying many passwords or many accounts.
    pub login_address: Limit,
    /// Failed API keys per client address.
    pub api_key_address: Limit,
    /// An address's owner is told of an attempt to register it at most once
    /// in this many seconds (someone repeating it cannot flood their mailbox).
    pub register_notice_seconds: u64,
}

impl Default for AbusePolicy {
    fn default() -> Self {
        AbusePolicy {
            trusted_proxies: Vec::new(),
            login_account: Limit {
                failures: 5,
                window_seconds: 15 * 60,
                first_delay_ms: 1000,
                max_delay_seconds: 60,
            },
            login_address: Limit {
                failures: 20,
                window_seconds: 15 * 60,
                first_delay_ms: 1000,
                max_delay_seconds: 15 * 60,
            },
            api_key_address: Limit {
                failures: 20,
                window_seconds: 15 * 60,
                first_delay_ms: 1000,
                max_delay_seconds: 15 * 60,
            },
            register_notice_seconds: 60 * 60,
        }
    }
}

/// The part of a client address a throttle counts by: the whole IPv4
/// address, an IPv6 address's /64 (one subscriber gets a whole /64 and could
/// otherwise take a fresh address for every attempt).
pub fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// Counts failures per key and says how long a key must wait.
#[derive(Clone)]
pub struct Throttle {
    shared: Arc<dyn Cache>,
    /// This process's own counts, used while the shared cache fails.
    local: Arc<MemoryCache>,
    metrics: Metrics,
    /// When the last "shared cache failed" warning was logged (ms), so an
    /// outage under attack logs once a minute, not once per attempt.
    warned_at: Arc<AtomicI64>,
}

fn now_ms() -> i64 {
    domain::to_ms(domain::now())
}

fn lock_key(key: &str) -> String {
    format!("throttle:wait:{key}")
}

fn count_key(key: &str) -> String {
    format!("throttle:fail:{key}")
}

impl Throttle {
    /// A throttle over `shared` (its keys under `throttle:`).
    pub fn new(shared: Arc<dyn Cache>, metrics: Metrics) -> Throttle {
        Throttle {
            shared,
            local: Arc::new(MemoryCache::new("")),
            metrics,
            warned_at: Arc::new(AtomicI64::new(0)),
        }
    }

    /// A throttle counting in this process only (tests, a lone process).
    pub fn in_process() -> Throttle {
        Throttle::new(Arc::new(MemoryCache::new("")), Metrics::new())
    }

    /// This process's own cache, after `shared` failed (logged, counted).
    fn degraded(&self, e: anyhow::Error) -> &MemoryCache {
        self.metrics.throttle_degraded();
        let now = now_ms();
        let last = self.warned_at.load(Ordering::Relaxed);
        if now - last > 60_000
            && self
                .warned_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(error = %format!("{e:#}"),
                "throttle: the shared cache failed; counting in this process only");
        }
        &self.local
    }

    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        match self.shared.get(key).await {
            Ok(v) => v,
            Err(e) => self.degraded(e).get(key).await.ok().flatten(),
        }
    }

    async fn count(&self, key: &str, ttl: Duration) -> i64 {
        match self.shared.count(key, ttl).await {
            Ok(n) => n,
            // The in-process cache counts whatever is stored (never fails).
            Err(e) => self.degraded(e).count(key, ttl).await.unwrap_or(1),
        }
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) {
        if let Err(e) = self.shared.set(key, value, ttl).await {
            let _ = self.degraded(e).set(key, value, ttl).await;
        }
    }

    /// How long `key` must still wait before its next attempt (None: now is fine).
    pub async fn waiting(&self, key: &str) -> Option<Duration> {
        let until = self.get(&lock_key(key)).await?;
        let until: i64 = std::str::from_utf8(&until).ok()?.parse().ok()?;
        let left = until - now_ms();
        (left > 0).then(|| Duration::from_millis(left as u64))
    }

    /// Records a failure of `key` under `limit`; the wait it earned, if any.
    pub async fn failed(&self, key: &str, limit: &Limit) -> Option<Duration> {
        let n = self.count(&count_key(key), limit.window()).await;
        let delay = limit.delay(n.max(1) as u64)?;
        let until = (now_ms() + delay.as_millis() as i64).to_string();
        self.set(&lock_key(key), until.as_bytes(), delay).await;
        Some(delay)
    }

    /// Forgets `key`'s failures (a success).
    pub async fn reset(&self, key: &str) {
        for k in [count_key(key), lock_key(key)] {
            if let Err(e) = self.shared.delete(&k).await {
                self.degraded(e);
            }
            // What was counted while the shared cache was away goes too.
            let _ = self.local.delete(&k).await;
        }
    }

    /// True the first time `key` is seen within `every` (and again once
    /// `every` has passed without it): for "at most once per …".
    pub async fn first_in(&self, key: &str, every: Duration) -> bool {
        self.count(&format!("throttle:once:{key}"), every).await == 1
    }

    /// Counts a refusal by `limit` in the metrics.
    pub fn refused(&self, limit: &str) {
        self.metrics.throttle_refused(limit);
    }

    /// `memory` or `redis`: where the counts are shared.
    pub fn backend(&self) -> &'static str {
        self.shared.backend()
    }
}

/// The seconds a `Retry-After` header says for `wait` (rounded up, at least 1).
pub fn retry_after_seconds(wait: Duration) -> u64 {
    wait.as_millis().div_ceil(1000).max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_starts_after_the_allowance_and_doubles_to_its_ceiling() {
        let l = Limit {
            failures: 3,
            window_seconds: 60,
            first_delay_ms: 1000,
            max_delay_seconds: 10,
        };
        let waits: Vec<Option<u64>> = (1..=9).map(|n| l.delay(n).map(|d| d.as_secs())).collect();
        assert_eq!(
            waits,
            vec![
                None,
                None,
                Some(1),
                Some(2),
                Some(4),
                Some(8),
                Some(10),
                Some(10),
                Some(10)
            ]
        );
        assert_eq!(l.delay(u64::MAX), Some(Duration::from_secs(10)));
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1001)), 2);
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_and_ipv4_by_the_address() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(
            address_key(a),
            address_key("2001:db8:1:3::1".parse().unwrap())
        );
        assert_eq!(address_key("::ffff:10.1.2.3".parse().unwrap()), "10.1.2.3");
        assert_eq!(address_key("10.1.2.3".parse().unwrap()), "10.1.2.3");
    }

    #[tokio::test]
    async fn failures_earn_waits_and_a_reset_forgets_them() {
        let t = Throttle::in_process();
        let l = Limit {
            failures: 2,
            window_seconds: 60,
            first_delay_ms: 300,
            max_delay_seconds: 60,
        };
        assert_eq!(t.failed("k", &l).await, None);
        assert_eq!(t.waiting("k").await, None);
        assert_eq!(t.failed("k", &l).await, Some(Duration::from_millis(300)));
        assert!(t.waiting("k").await.is_some());
        assert_eq!(t.waiting("other").await, None, "keys are counted apart");
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(t.waiting("k").await, None, "the wait ends");
        assert_eq!(t.failed("k", &l).await, Some(Duration::from_millis(600)));
        t.reset("k").await;
        assert_eq!(t.waiting("k").await, None);
        assert_eq!(t.failed("k", &l).await, None, "the count starts again");
    }

    #[tokio::test]
    async fn an_unreachable_shared_cache_degrades_to_this_process_never_to_open() {
        // Nothing listens on port 1.
        let redis = crate::cache::open("redis://127.0.0.1:1/0", "t:")
            .await
            .unwrap();
        let metrics = Metrics::new();
        let t = Throttle::new(redis, metrics.clone());
        let l = Limit {
            failures: 1,
            window_seconds: 60,
            first_delay_ms: 5000,
            max_delay_seconds: 60,
        };
        assert_eq!(t.failed("k", &l).await, Some(Duration::from_secs(5)));
        assert!(t.waiting("k").await.is_some(), "still throttled");
        assert!(t.first_in("n", Duration::from_secs(60)).await);
        assert!(!t.first_in("n", Duration::from_secs(60)).await);
        let text = metrics.encode();
        let degraded = text
            .lines()
            .find(|l| l.starts_with("alexandrite_throttle_degraded_total"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        assert!(degraded >= 4.0, "every operation counted: {degraded}");
    }
}
