//! Who the client is, and failed API keys throttled per client address.
//!
//! The client is the TCP peer; behind proxies listed in
//! `abuse.trusted_proxies`, the rightmost `X-Forwarded-For` entry that is not
//! one of them (everything left of it could be made up by the client). Never
//! the header otherwise. The gateway passes the address on, signed, so the
//! CRM's login throttle counts by the client too.
//!
//! A key that resolved in the last few seconds is let through from memory at
//! no cost. From an address that failed too often lately, a key this process
//! saw valid in the last hour is still resolved as usual (a client sharing
//! the attacker's address keeps working); any other key is refused with 429
//! and `Retry-After` before the registry is asked.

use crate::CachedKeys;
use adapters::throttle::{AbusePolicy, Limit, Throttle, address_key, retry_after_seconds};
use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use web::identity::KeyRefused;
use web::{ApiError, Authenticator, Lang};

/// Addresses and networks whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// Parses `10.0.0.1`, `10.0.0.0/8`, `fd00::/8`, …
    pub fn parse(entries: &[String]) -> anyhow::Result<TrustedProxies> {
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let e = e.trim();
            let (addr, bits) = match e.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (e, None),
            };
            let bad = || {
                anyhow::anyhow!(
                    "abuse.trusted_proxies: '{e}' is not an address or a network (e.g. 10.0.0.0/8)"
                )
            };
            let ip: IpAddr = addr.parse().map_err(|_| bad())?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                Some(b) => b.parse::<u8>().ok().filter(|b| *b <= max).ok_or_else(bad)?,
                None => max,
            };
            out.push((ip, bits));
        }
        Ok(TrustedProxies(out))
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0
            .iter()
            .any(|(net, bits)| match (canonical(*net), ip) {
                (IpAddr::V4(n), IpAddr::V4(a)) => {
                    let mask = u32::MAX.checked_shl(32 - *bits as u32).unwrap_or(0);
                    u32::from(n) & mask == u32::from(a) & mask
                }
                (IpAddr::V6(n), IpAddr::V6(a)) => {
                    let mask = u128::MAX.checked_shl(128 - *bits as u32).unwrap_or(0);
                    u128::from(n) & mask == u128::from(a) & mask
                }
                _ => false,
            })
    }

    /// The client: `peer`, or, when `peer` is a trusted proxy, the rightmost
    /// forwarded address that is not one.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if self.0.is_empty() || !self.contains(peer) {
            return peer;
        }
        let mut client = peer;
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        for hop in hops.iter().rev() {
            // Anything unreadable ends the walk: what lies left of it is unproven.
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                break;
            };
            client = ip;
            if !self.contains(ip) {
                break;
            }
        }
        client
    }
}

/// IPv4-mapped IPv6 addresses as IPv4 (a dual-stack listener's peers).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The gateway's edge: who the client is, and the API-key throttle.
#[derive(Clone)]
pub struct Edge {
    throttle: Throttle,
    limit: Limit,
    proxies: Arc<TrustedProxies>,
    vouched: Arc<Vouched>,
}

/// How long a key seen valid passes a throttled address.
const VOUCHED_FOR: Duration = Duration::from_secs(3600);
/// At most this many such keys are remembered.
const VOUCHED_MAX: usize = 10_000;

/// Keys this process saw valid lately, and when.
#[derive(Default)]
struct Vouched(Mutex<HashMap<String, Instant>>);

impl Vouched {
    fn note(&self, key: &str) {
        let mut keys = self.0.lock().expect("vouched");
        if keys.len() >= VOUCHED_MAX && !keys.contains_key(key) {
            keys.retain(|_, at| at.elapsed() < VOUCHED_FOR);
            if keys.len() >= VOUCHED_MAX {
                keys.clear();
            }
        }
        keys.insert(key.to_string(), Instant::now());
    }

    fn knows(&self, key: &str) -> bool {
        let keys = self.0.lock().expect("vouched");
        keys.get(key).is_some_and(|at| at.elapsed() < VOUCHED_FOR)
    }
}

impl Edge {
    /// Counts in `cache` (shared by every gateway process on Redis).
    pub fn new(
        cache: Arc<dyn adapters::Cache>,
        policy: &AbusePolicy,
        metrics: adapters::metrics::Metrics,
    ) -> anyhow::Result<Edge> {
        Ok(Edge {
            throttle: Throttle::new(cache, metrics),
            limit: policy.api_key_address,
            proxies: Arc::new(TrustedProxies::parse(&policy.trusted_proxies)?),
            vouched: Arc::default(),
        })
    }

    /// The defaults, counting in this process.
    pub fn in_process() -> Edge {
        Edge {
            throttle: Throttle::in_process(),
            limit: AbusePolicy::default().api_key_address,
            proxies: Arc::default(),
            vouched: Arc::default(),
        }
    }

    /// The client of `req` (0.0.0.0 when the server recorded no peer).
    pub fn client(&self, req: &Request) -> IpAddr {
        let peer = req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| canonical(c.0.ip()))
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        self.proxies.client(peer, req.headers())
    }

    /// Resolves an API key for a request from `client`: the caller, or the
    /// response to give (401, 429, 503).
    pub(crate) async fn api_key(
        &self,
        keys: &CachedKeys,
        headers: &HeaderMap,
        client: IpAddr,
        key: &str,
    ) -> Result<domain::Caller, Response> {
        if let Some(caller) = keys.remembered(key) {
            return Ok(caller);
        }
        let counted = format!("api_key:address:{}", address_key(client));
        if !self.vouched.knows(key)
            && let Some(wait) = self.throttle.waiting(&counted).await
        {
            self.throttle.refused("api_key_address");
            return Err(too_many(wait, headers));
        }
        match keys.by_api_key(key).await {
            Ok(caller) => {
                self.vouched.note(key);
                Ok(caller)
            }
            Err(KeyRefused::Invalid) => {
                let wait = self.throttle.failed(&counted, &self.limit).await;
                tracing::info!(%client, throttled = wait.is_some(), "invalid API key");
                Err(ApiError::BadKey.into_response())
            }
            Err(KeyRefused::Unavailable) => Err(crate::unavailable()),
        }
    }
}

/// 429 with `Retry-After` and a message in the caller's language (English
/// unless `Accept-Language` or the `lang` cookie asks for Russian).
fn too_many(wait: Duration, headers: &HeaderMap) -> Response {
    let secs = retry_after_seconds(wait);
    let cookie = axum_extra::extract::CookieJar::from_headers(headers)
        .get("lang")
        .and_then(|c| Lang::parse(c.value()));
    let lang = cookie
        .or_else(|| {
            headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(Lang::from_accept_language)
        })
        .unwrap_or(Lang::En);
    let message = lang
        .texts()
        .too_many_attempts
        .replace("{seconds}", &secs.to_string());
    let body = serde_json::json!({ "error": {
        "code": "too_many_attempts",
        "message": message,
        "retry_after_seconds": secs,
    }});
    let mut r = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", v.parse().unwrap());
        h
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let none = TrustedProxies::default();
        let peer: IpAddr = "10.0.0.5".parse().unwrap();
        assert_eq!(
            none.client(peer, &xff("203.0.113.9")),
            peer,
            "off by default"
        );
        let lb = TrustedProxies::parse(&["10.0.0.0/8".into(), "::1".into()]).unwrap();
        assert_eq!(
            lb.client(peer, &xff("203.0.113.9")),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        // A client's own entry on the left does not count: the first untrusted from the right does.
        assert_eq!(
            lb.client(peer, &xff("1.2.3.4, 203.0.113.9, 10.1.1.1")),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        // An untrusted peer's header is ignored.
        let outsider: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(lb.client(outsider, &xff("10.0.0.1")), outsider);
        // Garbage stops the walk at the last proven hop.
        assert_eq!(lb.client(peer, &xff("nonsense")), peer);
        assert_eq!(
            lb.client("::ffff:10.0.0.7".parse().unwrap(), &xff("203.0.113.1")),
            "203.0.113.1".parse::<IpAddr>().unwrap(),
            "a mapped IPv4 peer is the IPv4 peer"
        );
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(TrustedProxies::parse(&["proxy.local".into()]).is_err());
    }
}
