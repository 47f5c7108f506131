//! The cache port: short-lived values with a time to live, counters, and
//! publish/subscribe for live updates. In-process on the embedded profile,
//! Redis on the production one, chosen by URL (`cache.url`).
//!
//! Every key and channel is put under a prefix, so several deployments (or
//! tests) can share one Redis without seeing each other's entries.

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// A stream of messages published on one channel.
pub type Messages = BoxStream<'static, Vec<u8>>;

/// The message a subscription yields when messages may have been lost.
pub const GAP: &[u8] = b"";

/// A subscriber's stream of one channel's messages ([`GAP`] when it fell
/// too far behind and missed some).
fn messages(rx: broadcast::Receiver<Vec<u8>>) -> Messages {
    futures::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Ok(m) => Some((m, rx)),
            Err(broadcast::error::RecvError::Lagged(_)) => Some((GAP.to_vec(), rx)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    })
    .boxed()
}

/// The cache port.
#[async_trait]
pub trait Cache: Send + Sync + 'static {
    /// The value under `key`, if present and not expired.
    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>>;
    /// Stores `value` under `key` for `ttl`.
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> anyhow::Result<()>;
    /// Removes `key` (absent is fine).
    async fn delete(&self, key: &str) -> anyhow::Result<()>;
    /// Adds one to the counter under `key` (0 when absent) and returns the new value.
    async fn incr(&self, key: &str) -> anyhow::Result<i64>;
    /// Adds one to the counter under `key` (0 when absent or expired), gives it
    /// `ttl` from now to live, and returns the new value: a count of events
    /// that is forgotten after `ttl` without one. A cache that cannot do this
    /// says so (the throttle then counts in its own process).
    async fn count(&self, key: &str, ttl: Duration) -> anyhow::Result<i64> {
        let _ = (key, ttl);
        anyhow::bail!("this cache keeps no counters with an expiry")
    }
    /// Sends `message` to every current subscriber of `channel`, in every process
    /// sharing this cache.
    async fn publish(&self, channel: &str, message: &[u8]) -> anyhow::Result<()>;
    /// Messages published on `channel` from now on. The stream lives as long as
    /// the caller holds it and survives the backend's restarts (messages sent
    /// while it was away are lost: subscribers must treat a message as a hint).
    /// An empty message ([`GAP`]) says that messages may have been lost since
    /// the last one (the subscription was re-established, or the subscriber
    /// fell too far behind).
    async fn subscribe(&self, channel: &str) -> anyhow::Result<Messages>;
    /// Readiness probe.
    async fn ping(&self) -> anyhow::Result<()>;
    /// `memory` or `redis`.
    fn backend(&self) -> &'static str;
}

/// Opens the cache a URL names: `memory://` (or empty: in-process) or
/// `redis://host:port/db` (`rediss://` for TLS is not built in). `prefix` is put
/// before every key and channel.
pub async fn open(url: &str, prefix: &str) -> anyhow::Result<Arc<dyn Cache>> {
    let url = url.trim();
    if url.is_empty() || url.starts_with("memory:") {
        Ok(Arc::new(MemoryCache::new(prefix)))
    } else if url.starts_with("redis://") || url.starts_with("redis+unix://") {
        Ok(Arc::new(RedisCache::open(url, prefix)?))
    } else {
        anyhow::bail!(
            "unsupported cache URL '{}': expected memory:// or redis://host:6379/0",
            crate::db::redact(url)
        )
    }
}

/// The in-process cache: a map with expiry times and broadcast channels.
pub struct MemoryCache {
    prefix: String,
    values: Mutex<HashMap<String, (Vec<u8>, Option<Instant>)>>,
    channels: Mutex<HashMap<String, broadcast::Sender<Vec<u8>>>>,
}

impl MemoryCache {
    pub fn new(prefix: &str) -> MemoryCache {
        MemoryCache {
            prefix: prefix.to_string(),
            values: Mutex::new(HashMap::new()),
            channels: Mutex::new(HashMap::new()),
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn sender(&self, channel: &str) -> broadcast::Sender<Vec<u8>> {
        self.channels
            .lock()
            .expect("channels")
            .entry(self.key(channel))
            .or_insert_with(|| broadcast::channel(1024).0)
            .clone()
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let mut values = self.values.lock().expect("values");
        let k = self.key(key);
        match values.get(&k) {
            Some((_, Some(until))) if *until <= Instant::now() => {
                values.remove(&k);
                Ok(None)
            }
            Some((v, _)) => Ok(Some(v.clone())),
            None => Ok(None),
        }
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> anyhow::Result<()> {
        let mut values = self.values.lock().expect("values");
        let now = Instant::now();
        // Keep the map bounded by what is live.
        if values.len() > 10_000 {
            values.retain(|_, (_, until)| until.is_none_or(|u| u > now));
        }
        values.insert(self.key(key), (value.to_vec(), Some(now + ttl)));
        Ok(())
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.values.lock().expect("values").remove(&self.key(key));
        Ok(())
    }

    async fn incr(&self, key: &str) -> anyhow::Result<i64> {
        let mut values = self.values.lock().expect("values");
        let entry = values
            .entry(self.key(key))
            .or_insert_with(|| (b"0".to_vec(), None));
        let n: i64 = std::str::from_utf8(&entry.0)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("the value under {key} is not a counter"))?;
        entry.0 = (n + 1).to_string().into_bytes();
        Ok(n + 1)
    }

    async fn count(&self, key: &str, ttl: Duration) -> anyhow::Result<i64> {
        let mut values = self.values.lock().expect("values");
        let now = Instant::now();
        // Keep the map bounded by what is live.
        if values.len() > 10_000 {
            values.retain(|_, (_, until)| until.is_none_or(|u| u > now));
        }
        let k = self.key(key);
        let n: i64 = match values.get(&k) {
            Some((v, until)) if until.is_none_or(|u| u > now) => std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| anyhow::anyhow!("the value under {key} is not a counter"))?,
            _ => 0,
        };
        values.insert(k, ((n + 1).to_string().into_bytes(), Some(now + ttl)));
        Ok(n + 1)
    }

    async fn publish(&self, channel: &str, message: &[u8]) -> anyhow::Result<()> {
        // No subscriber is not an error: nobody is listening.
        let _ = self.sender(channel).send(message.to_vec());
        Ok(())
    }

    async fn subscribe(&self, channel: &str) -> anyhow::Result<Messages> {
        Ok(messages(self.sender(channel).subscribe()))
    }

    async fn ping(&self) -> anyhow::Result<()> {
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}

/// How long one Redis command may take before the caller gives up (and, for
/// the queue, reads the database instead).
const COMMAND_TIMEOUT: Duration = Duration::from_millis(250);

/// Redis: one multiplexed connection that reconnects by itself
/// (`ConnectionManager`), opened lazily so that a Redis that is down at start
/// only degrades the cache; every command is bounded by [`COMMAND_TIMEOUT`].
pub struct RedisCache {
    client: redis::Client,
    prefix: String,
    conn: tokio::sync::Mutex<Option<redis::aio::ConnectionManager>>,
    /// When connecting last failed: callers within a second fail at once
    /// instead of queueing up behind another attempt.
    failed_at: Mutex<Option<Instant>>,
    /// One Redis subscription per channel, fanned out to this process's subscribers.
    channels: Mutex<HashMap<String, broadcast::Sender<Vec<u8>>>>,
}

impl RedisCache {
    pub fn open(url: &str, prefix: &str) -> anyhow::Result<RedisCache> {
        let client = redis::Client::open(url)
            .map_err(|e| anyhow::anyhow!("cache URL {}: {e}", crate::db::redact(url)))?;
        Ok(RedisCache {
            client,
            prefix: prefix.to_string(),
            conn: tokio::sync::Mutex::new(None),
            failed_at: Mutex::new(None),
            channels: Mutex::new(HashMap::new()),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    async fn conn(&self) -> anyhow::Result<redis::aio::ConnectionManager> {
        let recently_failed = || {
            self.failed_at
                .lock()
                .expect("failed_at")
                .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        };
        if recently_failed() {
            anyhow::bail!("Redis is unreachable (retrying every second)");
        }
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        if recently_failed() {
            anyhow::bail!("Redis is unreachable (retrying every second)");
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(COMMAND_TIMEOUT)
            .set_response_timeout(COMMAND_TIMEOUT)
            .set_number_of_retries(2)
            .set_max_delay(500);
        let c = match tokio::time::timeout(
            COMMAND_TIMEOUT * 4,
            self.client.get_connection_manager_with_config(config),
        )
        .await
        {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                *self.failed_at.lock().expect("failed_at") = Some(Instant::now());
                anyhow::bail!("connecting to Redis: {e}");
            }
            Err(_) => {
                *self.failed_at.lock().expect("failed_at") = Some(Instant::now());
                anyhow::bail!("connecting to Redis timed out");
            }
        };
        *slot = Some(c.clone());
        Ok(c)
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> anyhow::Result<T> {
        let mut c = self.conn().await?;
        match tokio::time::timeout(COMMAND_TIMEOUT, cmd.query_async::<T>(&mut c)).await {
            Ok(r) => Ok(r?),
            Err(_) => anyhow::bail!("Redis did not answer within {COMMAND_TIMEOUT:?}"),
        }
    }
}

/// Forwards one Redis channel to `tx` for as long as anyone in this process
/// listens, resubscribing with backoff whenever the connection drops.
async fn pump(
    client: redis::Client,
    channel: String,
    tx: broadcast::Sender<Vec<u8>>,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut delay = Duration::from_millis(100);
    while tx.receiver_count() > 0 {
        let attempt = async {
            let mut ps = client.get_async_pubsub().await?;
            ps.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(ps)
        };
        match tokio::time::timeout(Duration::from_secs(2), attempt).await {
            Ok(Ok(ps)) => {
                delay = Duration::from_millis(100);
                tracing::debug!(%channel, "subscribed to Redis channel");
                match ready.take() {
                    Some(r) => {
                        let _ = r.send(());
                    }
                    // Subscribed again: what was published meanwhile is lost.
                    None => {
                        let _ = tx.send(GAP.to_vec());
                    }
                }
                let mut stream = ps.into_on_message();
                loop {
                    // Wake up now and then to notice that nobody listens any more.
                    match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
                        Ok(Some(msg)) => {
                            let _ = tx.send(msg.get_payload_bytes().to_vec());
                        }
                        Ok(None) => break,
                        Err(_) if tx.receiver_count() == 0 => return,
                        Err(_) => {}
                    }
                }
                tracing::warn!(%channel, "Redis subscription lost; resubscribing");
            }
            Ok(Err(e)) => tracing::warn!(%channel, error = %e, "cannot subscribe to Redis"),
            Err(_) => tracing::warn!(%channel, "subscribing to Redis timed out"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        self.run(redis::cmd("GET").arg(self.key(key)).clone()).await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> anyhow::Result<()> {
        let ms = ttl.as_millis().max(1) as u64;
        self.run::<()>(
            redis::cmd("SET")
                .arg(self.key(key))
                .arg(value)
                .arg("PX")
                .arg(ms)
                .clone(),
        )
        .await
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.run::<i64>(redis::cmd("DEL").arg(self.key(key)).clone())
            .await
            .map(|_| ())
    }

    async fn incr(&self, key: &str) -> anyhow::Result<i64> {
        self.run(redis::cmd("INCR").arg(self.key(key)).clone())
            .await
    }

    async fn count(&self, key: &str, ttl: Duration) -> anyhow::Result<i64> {
        let key = self.key(key);
        let ms = ttl.as_millis().max(1) as u64;
        // One round trip, applied as one: the count and its expiry never part.
        let pipe = redis::pipe()
            .atomic()
            .cmd("INCR")
            .arg(&key)
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(ms)
            .ignore()
            .clone();
        let mut c = self.conn().await?;
        match tokio::time::timeout(COMMAND_TIMEOUT, pipe.query_async::<(i64,)>(&mut c)).await {
            Ok(r) => Ok(r?.0),
            Err(_) => anyhow::bail!("Redis did not answer within {COMMAND_TIMEOUT:?}"),
        }
    }

    async fn publish(&self, channel: &str, message: &[u8]) -> anyhow::Result<()> {
        self.run::<i64>(
            redis::cmd("PUBLISH")
                .arg(self.key(channel))
                .arg(message)
                .clone(),
        )
        .await
        .map(|_| ())
    }

    async fn subscribe(&self, channel: &str) -> anyhow::Result<Messages> {
        let full = self.key(channel);
        let (rx, ready) = {
            let mut channels = self.channels.lock().expect("channels");
            match channels.get(&full) {
                Some(tx) if tx.receiver_count() > 0 => (tx.subscribe(), None),
                _ => {
                    let (tx, rx) = broadcast::channel(1024);
                    channels.insert(full.clone(), tx.clone());
                    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
                    tokio::spawn(pump(self.client.clone(), full, tx, ready_tx));
                    (rx, Some(ready_rx))
                }
            }
        };
        // Messages published once this returns are seen; a Redis that is down
        // now is waited for in the background, not here.
        if let Some(ready) = ready
            && tokio::time::timeout(Duration::from_secs(2), ready)
                .await
                .is_err()
        {
            tracing::warn!(%channel, "Redis subscription not confirmed yet; continuing");
        }
        Ok(messages(rx))
    }

    async fn ping(&self) -> anyhow::Result<()> {
        let pong: String = self.run(redis::cmd("PING")).await?;
        anyhow::ensure!(pong == "PONG", "unexpected answer to PING: {pong}");
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}
