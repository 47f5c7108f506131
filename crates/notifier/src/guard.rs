//! The SSRF guard: a webhook URL must be http(s) and name a host on the public
//! internet. Checked when a URL is registered and again before each delivery
//! (a name can be pointed elsewhere after registration); the delivery then
//! connects to exactly the addresses that were checked.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use url::Url;

/// Why a webhook URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefused {
    #[error("'{0}' is not a valid URL")]
    Invalid(String),
    #[error("webhook URLs must be http:// or https://, not {0}://")]
    Scheme(String),
    #[error("the webhook URL has no host")]
    NoHost,
    #[error("webhook URLs must not carry a user name or password")]
    Credentials,
    #[error("the webhook host {host} does not resolve: {error}")]
    Unresolvable { host: String, error: String },
    #[error(
        "the webhook host {host} resolves to {addr}, a {kind} address; webhooks go to public addresses only"
    )]
    NotPublic {
        host: String,
        addr: IpAddr,
        kind: &'static str,
    },
}

impl UrlRefused {
    /// The machine-readable error code the API answers with.
    pub fn code(&self) -> &'static str {
        match self {
            UrlRefused::Invalid(_) | UrlRefused::NoHost | UrlRefused::Credentials => {
                "webhook_url_invalid"
            }
            UrlRefused::Scheme(_) => "webhook_url_scheme",
            UrlRefused::Unresolvable { .. } => "webhook_url_unresolvable",
            UrlRefused::NotPublic { kind, .. } => match *kind {
                "loopback" => "webhook_url_loopback",
                "private" => "webhook_url_private",
                "link-local" => "webhook_url_link_local",
                "unspecified" => "webhook_url_unspecified",
                _ => "webhook_url_not_public",
            },
        }
    }
}

/// The kind of a non-public address, or None for a public one.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_kind(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_kind(v4);
            }
            let seg = v6.segments();
            let low_v4 = Ipv4Addr::new(
                (seg[6] >> 8) as u8,
                seg[6] as u8,
                (seg[7] >> 8) as u8,
                seg[7] as u8,
            );
            // Forms that carry an IPv4 address a gateway will reach: NAT64
            // (64:ff9b::/96, 64:ff9b:1::/48) and the deprecated IPv4-compatible
            // ::a.b.c.d; 6to4 (2002::/16) carries it in segments 1 and 2.
            if (seg[0] == 0x64 && seg[1] == 0xff9b && (seg[2..6] == [0, 0, 0, 0] || seg[2] == 1))
                || (seg[..6] == [0, 0, 0, 0, 0, 0] && !v6.is_loopback() && !v6.is_unspecified())
            {
                return v4_kind(low_v4);
            }
            if seg[0] == 0x2002 {
                let v4 = Ipv4Addr::new(
                    (seg[1] >> 8) as u8,
                    seg[1] as u8,
                    (seg[2] >> 8) as u8,
                    seg[2] as u8,
                );
                return v4_kind(v4);
            }
            let first = seg[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if first & 0xfe00 == 0xfc00 {
                // Unique local addresses (fc00::/7): IPv6's private ranges.
                Some("private")
            } else if v6.is_multicast() {
                Some("multicast")
            } else {
                None
            }
        }
    }
}

fn v4_kind(v4: Ipv4Addr) -> Option<&'static str> {
    let o = v4.octets();
    if v4.is_loopback() {
        Some("loopback")
    } else if v4.is_unspecified() || o[0] == 0 {
        Some("unspecified")
    } else if v4.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64) {
        // RFC 1918, and the carrier-grade NAT range 100.64.0.0/10.
        Some("private")
    } else if v4.is_link_local() {
        Some("link-local")
    } else if v4.is_broadcast() || v4.is_multicast() || o[0] >= 240 {
        Some("multicast")
    } else if (o[0] == 192 && o[1] == 0 && o[2] == 0) || (o[0] == 198 && (o[1] & 0xfe) == 18) {
        // IETF protocol assignments 192.0.0.0/24, benchmarking 198.18.0.0/15.
        Some("private")
    } else {
        None
    }
}

/// Checks the form of a URL (scheme, host) without resolving it.
pub fn parse(raw: &str) -> Result<Url, UrlRefused> {
    let raw = raw.trim();
    let url = Url::parse(raw).map_err(|_| UrlRefused::Invalid(raw.to_string()))?;
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(UrlRefused::Scheme(other.to_string())),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(UrlRefused::NoHost);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlRefused::Credentials);
    }
    Ok(url)
}

/// A URL that passed the guard, with the addresses to connect to.
#[derive(Debug, Clone)]
pub struct Checked {
    pub url: Url,
    pub host: String,
    pub addrs: Vec<SocketAddr>,
}

/// Checks a URL and resolves its host; every address must be public unless
/// `allow_private` (tests, private deployments).
pub async fn check(raw: &str, allow_private: bool) -> Result<Checked, UrlRefused> {
    let url = parse(raw)?;
    let host = url.host_str().unwrap_or_default().to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((bare.as_str(), port))
            .await
            .map_err(|e| UrlRefused::Unresolvable {
                host: host.clone(),
                error: e.to_string(),
            })?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(UrlRefused::Unresolvable {
            host,
            error: "no addresses".into(),
        });
    }
    if !allow_private {
        for a in &addrs {
            if let Some(kind) = non_public(a.ip()) {
                return Err(UrlRefused::NotPublic {
                    host,
                    addr: a.ip(),
                    kind,
                });
            }
        }
    }
    Ok(Checked {
        url,
        host: bare,
        addrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_classified() {
        let kind = |s: &str| non_public(s.parse().unwrap());
        assert_eq!(kind("127.0.0.1"), Some("loopback"));
        assert_eq!(kind("127.8.9.10"), Some("loopback"));
        assert_eq!(kind("10.1.2.3"), Some("private"));
        assert_eq!(kind("172.16.0.1"), Some("private"));
        assert_eq!(kind("192.168.1.1"), Some("private"));
        assert_eq!(kind("100.64.0.1"), Some("private"));
        assert_eq!(kind("169.254.169.254"), Some("link-local"));
        assert_eq!(kind("0.0.0.0"), Some("unspecified"));
        assert_eq!(kind("::1"), Some("loopback"));
        assert_eq!(kind("::"), Some("unspecified"));
        assert_eq!(kind("fe80::1"), Some("link-local"));
        assert_eq!(kind("fd00::1"), Some("private"));
        assert_eq!(kind("::ffff:127.0.0.1"), Some("loopback"));
        assert_eq!(kind("::ffff:10.0.0.1"), Some("private"));
        // IPv4 inside other IPv6 forms: NAT64, IPv4-compatible, 6to4.
        assert_eq!(kind("64:ff9b::a9fe:a9fe"), Some("link-local"));
        assert_eq!(kind("64:ff9b:1::7f00:1"), Some("loopback"));
        assert_eq!(kind("::10.1.2.3"), Some("private"));
        assert_eq!(kind("2002:c0a8:0101::1"), Some("private"));
        assert_eq!(kind("64:ff9b::808:808"), None);
        assert_eq!(kind("198.18.0.1"), Some("private"));
        assert_eq!(kind("192.0.0.8"), Some("private"));
        assert_eq!(kind("240.0.0.1"), Some("multicast"));
        assert_eq!(kind("93.184.216.34"), None);
        assert_eq!(kind("172.32.0.1"), None);
        assert_eq!(kind("2606:4700::1111"), None);
    }

    #[tokio::test]
    async fn urls_are_refused_with_their_reason() {
        let refused = |r: Result<Checked, UrlRefused>| r.unwrap_err();
        let e = refused(check("ftp://example.com/hook", false).await);
        assert_eq!(e.code(), "webhook_url_scheme");
        assert_eq!(
            e.to_string(),
            "webhook URLs must be http:// or https://, not ftp://"
        );
        assert_eq!(
            refused(check("file:///etc/passwd", false).await).code(),
            "webhook_url_scheme"
        );
        assert_eq!(
            refused(check("not a url", false).await).code(),
            "webhook_url_invalid"
        );
        assert_eq!(
            refused(check("http://user:pw@93.184.216.34/", false).await).code(),
            "webhook_url_invalid"
        );
        let e = refused(check("http://127.0.0.1:9/hook", false).await);
        assert_eq!(e.code(), "webhook_url_loopback");
        assert!(
            e.to_string().contains("127.0.0.1, a loopback address"),
            "{e}"
        );
        assert_eq!(
            refused(check("http://localhost/hook", false).await).code(),
            "webhook_url_loopback"
        );
        assert_eq!(
            refused(check("http://[::1]/hook", false).await).code(),
            "webhook_url_loopback"
        );
        assert_eq!(
            refused(check("http://192.168.0.10/hook", false).await).code(),
            "webhook_url_private"
        );
        assert_eq!(
            refused(check("http://169.254.169.254/latest/meta-data", false).await).code(),
            "webhook_url_link_local"
        );
        assert_eq!(
            refused(check("http://0.0.0.0/", false).await).code(),
            "webhook_url_unspecified"
        );
        // Public literals pass without asking DNS; private ones pass when allowed.
        let ok = check("https://93.184.216.34/hook", false).await.unwrap();
        assert_eq!(ok.addrs, vec!["93.184.216.34:443".parse().unwrap()]);
        let local = check("http://127.0.0.1:8099/hook", true).await.unwrap();
        assert_eq!(local.addrs, vec!["127.0.0.1:8099".parse().unwrap()]);
        // The scheme is checked even when private addresses are allowed.
        assert_eq!(
            refused(check("gopher://127.0.0.1/", true).await).code(),
            "webhook_url_scheme"
        );
    }
}
