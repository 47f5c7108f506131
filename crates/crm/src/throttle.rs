//! Failed logins, throttled per account and per client address, and how
//! often an address's owner is told that someone tried to register it.
//!
//! Per account (the e-mail typed, whether or not it has an account, so the
//! throttle tells nothing about which do): a few failures, then a wait that
//! doubles up to a short ceiling (a minute by default), so that the owner is
//! never locked out for long. Per client address, across accounts: more
//! failures allowed, and a wait up to a quarter of an hour — what stops one
//! machine guessing. A successful login forgets the account's failures, not
//! the address's (an attacker would log in to an account of their own
//! between guesses). Counts live in the shared cache (see `adapters::throttle`).

use crate::accounts::{normalise_email, sha256_hex};
use adapters::throttle::{AbusePolicy, Throttle, address_key};
use std::net::IpAddr;
use std::time::Duration;

/// The login throttle.
#[derive(Clone)]
pub struct Logins {
    throttle: Throttle,
    policy: AbusePolicy,
}

fn account(email: &str) -> String {
    // Hashed: any length of input makes a key of one size.
    format!("login:account:{}", sha256_hex(&normalise_email(email)))
}

fn address(ip: IpAddr) -> String {
    format!("login:address:{}", address_key(ip))
}

impl Logins {
    pub fn new(throttle: Throttle, policy: AbusePolicy) -> Logins {
        Logins { throttle, policy }
    }

    /// How long a login for `email` from `ip` must wait (None: try now). A
    /// browser the owner logged in from before (`known_device`) is not held by
    /// the account's wait — which a stranger can keep running — only by its
    /// address's.
    pub async fn waiting(&self, email: &str, ip: IpAddr, known_device: bool) -> Option<Duration> {
        let by_account = match known_device {
            true => None,
            false => self.throttle.waiting(&account(email)).await,
        };
        let by_address = self.throttle.waiting(&address(ip)).await;
        match (by_account, by_address) {
            (None, None) => None,
            (a, b) => {
                let limit = if b >= a {
                    "login_address"
                } else {
                    "login_account"
                };
                self.throttle.refused(limit);
                a.max(b)
            }
        }
    }

    /// Records a wrong password (or an unknown address) for `email` from `ip`.
    pub async fn failed(&self, email: &str, ip: IpAddr, known_device: bool) {
        let p = &self.policy;
        // The owner's own typos on their own browser do not lock the account.
        if !known_device {
            self.throttle
                .failed(&account(email), &p.login_account)
                .await;
        }
        self.throttle.failed(&address(ip), &p.login_address).await;
    }

    /// The owner logged in: the account's failures are forgotten.
    pub async fn succeeded(&self, email: &str) {
        self.throttle.reset(&account(email)).await;
    }

    /// Whether the owner of `email` should be told of an attempt to register
    /// it now (at most once per `register_notice_seconds`).
    pub async fn notice_due(&self, email: &str) -> bool {
        let every = Duration::from_secs(self.policy.register_notice_seconds.max(1));
        self.throttle
            .first_in(
                &format!("register-notice:{}", sha256_hex(&normalise_email(email))),
                every,
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adapters::throttle::Limit;

    fn policy() -> AbusePolicy {
        AbusePolicy {
            login_account: Limit {
                failures: 2,
                window_seconds: 60,
                first_delay_ms: 10_000,
                max_delay_seconds: 60,
            },
            login_address: Limit {
                failures: 3,
                window_seconds: 60,
                first_delay_ms: 20_000,
                max_delay_seconds: 60,
            },
            ..AbusePolicy::default()
        }
    }

    #[tokio::test]
    async fn an_account_waits_after_its_failures_whatever_the_case_of_its_address() {
        let l = Logins::new(Throttle::in_process(), policy());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        l.failed("anna@example.com", ip, false).await;
        l.failed(" ANNA@example.com", other, false).await;
        let wait = l
            .waiting("anna@example.com", "192.0.2.3".parse().unwrap(), false)
            .await;
        assert!(
            wait.is_some_and(|w| w > Duration::from_secs(9) && w <= Duration::from_secs(10)),
            "the account's first wait, from any address: {wait:?}"
        );
        // The owner's own browser is not held by the account's wait.
        assert_eq!(l.waiting("anna@example.com", other, true).await, None);
        l.succeeded("Anna@Example.com").await;
        assert_eq!(l.waiting("anna@example.com", other, false).await, None);
    }

    #[tokio::test]
    async fn an_address_waits_after_failures_across_accounts_and_a_success_does_not_clear_it() {
        let l = Logins::new(Throttle::in_process(), policy());
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        for who in ["a@x.test", "b@x.test", "c@x.test"] {
            l.failed(who, ip, false).await;
        }
        l.succeeded("a@x.test").await;
        assert!(l.waiting("d@x.test", ip, true).await.is_some());
        assert_eq!(
            l.waiting("d@x.test", "192.0.2.10".parse().unwrap(), false)
                .await,
            None
        );
    }

    #[tokio::test]
    async fn the_owner_is_told_once_per_period() {
        let l = Logins::new(Throttle::in_process(), policy());
        assert!(l.notice_due("anna@example.com").await);
        assert!(!l.notice_due("ANNA@example.com").await);
        assert!(l.notice_due("boris@example.com").await);
    }
}
