//! Abuse at the edges: guessing passwords (per account, per address, across
//! processes, through a Redis outage), guessing API keys, learning who has an
//! account from the login's timing or the registration form.

use crate::helpers::{TestApp, production, spawn_with};
use adapters::throttle::Limit;
use alexandrite::{Application, Config};
use crm::accounts::NewUser;
use domain::Role;
use reqwest::{Client, Response, StatusCode};
use std::time::{Duration, Instant};

/// A browser that neither follows redirects nor keeps cookies.
fn browser() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

const LOOSE: Limit = Limit {
    failures: 1000,
    window_seconds: 60,
    first_delay_ms: 1000,
    max_delay_seconds: 60,
};

/// Every limit loose but the ones the test sets.
fn loose(c: &mut Config) {
    c.abuse.login_account = LOOSE;
    c.abuse.login_address = LOOSE;
    c.abuse.api_key_address = LOOSE;
}

async fn customer(app: &TestApp, email: &str, password: &str) {
    app.accounts
        .create_user(NewUser {
            email,
            name: "Анна",
            password,
            role: Role::Customer,
            org: None,
        })
        .await
        .expect("user created");
}

async fn login_at(base: &str, email: &str, password: &str, forwarded: Option<&str>) -> Response {
    let mut req = browser()
        .post(format!("{base}/login"))
        .form(&[("email", email), ("password", password)]);
    if let Some(f) = forwarded {
        req = req.header("x-forwarded-for", f);
    }
    req.send().await.unwrap()
}

async fn login(app: &TestApp, email: &str, password: &str) -> Response {
    login_at(&app.base, email, password, None).await
}

fn retry_after(r: &Response) -> u64 {
    r.headers()
        .get("retry-after")
        .unwrap_or_else(|| panic!("429 without Retry-After: {:?}", r.headers()))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn wrong_passwords_for_one_account_are_answered_429_and_the_owner_gets_back_in() {
    let app = spawn_with(|c| {
        loose(c);
        c.abuse.login_account = Limit {
            failures: 3,
            window_seconds: 60,
            first_delay_ms: 1000,
            max_delay_seconds: 2,
        };
    })
    .await;
    customer(&app, "owner@abuse.test", "right-password-1").await;
    for i in 1..=3 {
        let r = login(&app, "owner@abuse.test", &format!("guess-{i}")).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "guess {i}");
    }
    // The account now waits, whatever the address's case and even for the right password.
    let r = login(&app, "OWNER@abuse.test", "right-password-1").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&r);
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    let page = r.text().await.unwrap();
    assert!(page.contains("Слишком много неудачных попыток"), "{page}");
    let r = browser()
        .post(app.url("/login?lang=en"))
        .form(&[("email", "owner@abuse.test"), ("password", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Too many failed attempts. Try again in")
    );
    // The wait is short: once it has passed the owner logs in, and that
    // forgets the account's failures.
    tokio::time::sleep(Duration::from_millis(wait * 1000 + 200)).await;
    let r = login(&app, "owner@abuse.test", "right-password-1").await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "{}",
        r.text().await.unwrap()
    );
    let r = login(&app, "owner@abuse.test", "guess-again").await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "the count started again"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_stranger_keeping_the_account_waiting_does_not_stop_the_owners_own_browser() {
    let app = spawn_with(|c| {
        loose(c);
        c.abuse.login_account = Limit {
            failures: 2,
            window_seconds: 600,
            first_delay_ms: 60_000,
            max_delay_seconds: 600,
        };
    })
    .await;
    customer(&app, "device@abuse.test", "right-password-1").await;
    // The owner logged in from this browser once: it keeps the device cookie.
    let owner = Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = |p: &'static str| [("email", "device@abuse.test"), ("password", p)];
    let r = owner
        .post(app.url("/login"))
        .form(&form("right-password-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // A stranger (no cookie) makes the account wait a minute and more.
    for _ in 0..3 {
        login(&app, "device@abuse.test", "guess").await;
    }
    let r = login(&app, "device@abuse.test", "right-password-1").await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "a fresh browser waits"
    );
    // The owner's browser is not held by the account's wait, and a typo of
    // theirs does not lengthen it.
    let r = owner
        .post(app.url("/login"))
        .form(&form("typo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = owner
        .post(app.url("/login"))
        .form(&form("right-password-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "{}",
        r.text().await.unwrap()
    );
    // The cookie is worth nothing for another account.
    customer(&app, "other@abuse.test", "right-password-2").await;
    for _ in 0..3 {
        login(&app, "other@abuse.test", "guess").await;
    }
    let r = owner
        .post(app.url("/login"))
        .form(&[
            ("email", "other@abuse.test"),
            ("password", "right-password-2"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    app.stop().await;
}

#[tokio::test]
async fn one_address_is_stopped_across_accounts_and_another_is_not() {
    let app = spawn_with(|c| {
        loose(c);
        c.abuse.login_address = Limit {
            failures: 4,
            window_seconds: 60,
            first_delay_ms: 30_000,
            max_delay_seconds: 60,
        };
        // The test's requests come through a "load balancer" on 127.0.0.1.
        c.abuse.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    customer(&app, "known@abuse.test", "right-password-1").await;
    let attacker = Some("203.0.113.66");
    for who in ["known", "a", "b", "c"] {
        let r = login_at(&app.base, &format!("{who}@abuse.test"), "guess", attacker).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{who}");
    }
    let r = login_at(&app.base, "fresh@abuse.test", "guess", attacker).await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "a fifth account from the same address"
    );
    assert!(retry_after(&r) >= 29);
    // The owner, elsewhere, is not held up by the attacker's address.
    let r = login_at(
        &app.base,
        "known@abuse.test",
        "right-password-1",
        Some("198.51.100.7"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // IPv6: the attacker's whole /64 is one address.
    for host in [
        "2001:db8:0:1::1",
        "2001:db8:0:1::2",
        "2001:db8:0:1::3",
        "2001:db8:0:1::4",
    ] {
        let r = login_at(&app.base, "x@abuse.test", "guess", Some(host)).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = login_at(
        &app.base,
        "y@abuse.test",
        "guess",
        Some("2001:db8:0:1:ffff::9"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("alexandrite_throttle_refusals_total{limit=\"login_address\"}"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn forwarded_for_is_not_believed_unless_the_proxy_is_trusted() {
    let app = spawn_with(|c| {
        loose(c);
        c.abuse.login_address = Limit {
            failures: 3,
            window_seconds: 60,
            first_delay_ms: 30_000,
            max_delay_seconds: 60,
        };
    })
    .await;
    // A new made-up address each time does not make a new client.
    for i in 1..=3 {
        let r = login_at(
            &app.base,
            &format!("u{i}@abuse.test"),
            "guess",
            Some(&format!("10.9.9.{i}")),
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = login_at(&app.base, "u4@abuse.test", "guess", Some("10.9.9.4")).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // Nor does a forged signed-address header of our own.
    let r = browser()
        .post(app.url("/login"))
        .header("x-alexandrite-client", "10.8.8.8")
        .header("x-alexandrite-client-signature", "00")
        .form(&[("email", "u5@abuse.test"), ("password", "guess")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    app.stop().await;
}

#[tokio::test]
async fn invalid_api_keys_are_throttled_per_address_and_a_valid_key_still_works() {
    let app = spawn_with(|c| {
        loose(c);
        c.abuse.api_key_address = Limit {
            failures: 3,
            window_seconds: 60,
            first_delay_ms: 30_000,
            max_delay_seconds: 60,
        };
    })
    .await;
    let (status, _) = app.get(&app.b2b_key, "/api/v1/orders").await;
    assert_eq!(status, StatusCode::OK);
    for i in 0..3 {
        let (status, body) = app.get(&format!("alx_guess{i}"), "/api/v1/orders").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    let r = app
        .client
        .get(app.url("/api/v1/orders"))
        .bearer_auth("alx_guess3")
        .header("accept-language", "ru-RU,ru;q=0.9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&r) >= 29);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_attempts", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Слишком много"),
        "{body}"
    );
    let (status, body) = app.get("alx_guess4", "/api/v1/orders").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Too many"),
        "{body}"
    );
    // The key in use goes on working from the throttled address (however
    // long ago it was last used, within the hour).
    let (status, _) = app.get(&app.b2b_key, "/api/v1/orders").await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
}

/// The parts of a registration's answer someone watching could compare.
fn shape(r: &Response) -> (StatusCode, String, String) {
    let cookie = r
        .headers()
        .get("set-cookie")
        .map(|c| c.to_str().unwrap().to_string())
        .unwrap_or_default();
    // The cookie's value, as a shape: its length and alphabet, not the value.
    let (value, attrs) = cookie.split_once(';').unwrap_or((&cookie, ""));
    let value = value.trim_start_matches("alex_session=");
    let value_shape = format!(
        "{} chars, hex {}",
        value.len(),
        value.chars().all(|c| c.is_ascii_hexdigit())
    );
    (
        r.status(),
        r.headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_string())
            .unwrap_or_default(),
        format!("{value_shape};{attrs}"),
    )
}

async fn register(app: &TestApp, browser: &Client, email: &str, password: &str) -> Response {
    browser
        .post(app.url("/register?lang=en"))
        .form(&[("email", email), ("name", "Emma"), ("password", password)])
        .send()
        .await
        .unwrap()
}

fn notices(app: &TestApp) -> Vec<String> {
    std::fs::read_dir(app.config.mail_dir())
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.contains("registration_attempted") && n.ends_with(".eml"))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn registering_a_taken_address_looks_like_a_new_one_and_its_owner_is_told() {
    let app = spawn_with(loose).await;
    let jar = || {
        Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    };
    let (owner, stranger) = (jar(), jar());
    let first = register(&app, &owner, "emma@abuse.test", "emma-password-1").await;
    let again = register(&app, &stranger, "Emma@Abuse.test", "stranger-password").await;
    let first_shape = shape(&first);
    assert_eq!(
        first_shape,
        shape(&again),
        "the same answer for a new and a taken address"
    );
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        (first.text().await.unwrap(), again.text().await.unwrap()),
        (String::new(), String::new())
    );
    // The new customer is logged in, as before; the stranger is not.
    let r = owner.get(app.url("/account")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = stranger.get(app.url("/account")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login")
    );
    // Nothing about the account changed: the stranger's password opens nothing.
    assert_eq!(
        login(&app, "emma@abuse.test", "stranger-password")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&app, "emma@abuse.test", "emma-password-1")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    // The owner is told, by e-mail, in the language they registered in.
    let deadline = Instant::now() + Duration::from_secs(20);
    let name = loop {
        if let Some(n) = notices(&app).pop() {
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "no notice in {}",
            app.config.mail_dir().display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mail = std::fs::read_to_string(app.config.mail_dir().join(&name))
        .unwrap()
        .replace("\r\n", " ");
    assert!(mail.contains("To: Emma <emma@abuse.test>"), "{mail}");
    assert!(
        mail.contains("Subject: Someone tried to register with your address"),
        "{mail}"
    );
    assert!(mail.contains("already has an account"), "{mail}");
    // Trying again does not flood the owner's mailbox.
    let third = register(&app, &jar(), "emma@abuse.test", "yet-another-one").await;
    assert_eq!(shape(&third), first_shape);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(notices(&app).len(), 1, "{:?}", notices(&app));
    app.stop().await;
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test]
async fn an_unknown_address_costs_the_same_password_check_as_a_known_one() {
    let app = spawn_with(loose).await;
    customer(&app, "timed@abuse.test", "right-password-1").await;
    let before = app.accounts.dummy_checks();
    assert_eq!(
        login(&app, "timed@abuse.test", "wrong").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.accounts.dummy_checks(),
        before,
        "a known account checks its own hash"
    );
    assert_eq!(
        login(&app, "nobody@abuse.test", "wrong").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.accounts.dummy_checks(),
        before + 1,
        "an unknown one checks the dummy hash"
    );
    // And it takes as long: medians of interleaved tries (so that load on
    // the machine falls on both alike) within a factor of two. Without the
    // dummy hash the unknown address was answered about 27× faster.
    let (mut known, mut unknown) = (vec![], vec![]);
    for i in 0..10 {
        let t = Instant::now();
        let r = login(&app, "timed@abuse.test", &format!("wrong-{i}")).await;
        known.push(t.elapsed());
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let t = Instant::now();
        let r = login(&app, &format!("nobody{i}@abuse.test"), "wrong").await;
        unknown.push(t.elapsed());
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let (k, u) = (median(known), median(unknown));
    let ratio = u.as_secs_f64() / k.as_secs_f64();
    eprintln!("login medians: known {k:?}, unknown {u:?}, ratio {ratio:.2}");
    assert!(
        (0.5..=2.0).contains(&ratio),
        "known {k:?}, unknown {u:?}: ratio {ratio:.2}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_redis_outage_degrades_the_throttle_to_each_process_never_opens_it() {
    let app = spawn_with(|c| {
        loose(c);
        // Nothing listens there: every cache command fails.
        c.cache.url = "redis://127.0.0.1:1/0".into();
        c.abuse.login_account = Limit {
            failures: 2,
            window_seconds: 60,
            first_delay_ms: 30_000,
            max_delay_seconds: 60,
        };
    })
    .await;
    for _ in 0..2 {
        assert_eq!(
            login(&app, "someone@abuse.test", "guess").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let r = login(&app, "someone@abuse.test", "guess").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let metrics = app.metrics_text().await;
    let degraded = metrics
        .lines()
        .find(|l| l.starts_with("alexandrite_throttle_degraded_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(degraded >= 1.0, "{metrics}");
    app.stop().await;
}

#[tokio::test]
async fn on_production_every_process_shares_the_count() {
    let account = Limit {
        failures: 3,
        window_seconds: 60,
        first_delay_ms: 30_000,
        max_delay_seconds: 60,
    };
    let app = spawn_with(|c| {
        loose(c);
        c.abuse.login_account = account;
    })
    .await;
    customer(&app, "shared@abuse.test", "right-password-1").await;
    for _ in 0..3 {
        assert_eq!(
            login(&app, "shared@abuse.test", "guess").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    if production() {
        // A second process of the same deployment: same databases, same Redis prefix.
        let second = Application::build(&app.config)
            .await
            .expect("second process");
        let base = format!("http://{}", second.local_addr());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(second.run_until(async move {
            let _ = rx.await;
        }));
        let r = login_at(&base, "shared@abuse.test", "right-password-1", None).await;
        assert_eq!(
            r.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "the other process knows"
        );
        assert!(retry_after(&r) >= 29);
        let _ = tx.send(());
        running.await.unwrap().unwrap();
    } else {
        // The embedded profile counts in its one process: another one
        // (another deployment here) starts from nothing.
        let other = spawn_with(|c| {
            loose(c);
            c.abuse.login_account = account;
        })
        .await;
        customer(&other, "shared@abuse.test", "right-password-1").await;
        assert_eq!(
            login(&other, "shared@abuse.test", "right-password-1")
                .await
                .status(),
            StatusCode::SEE_OTHER
        );
        other.stop().await;
    }
    app.stop().await;
}
