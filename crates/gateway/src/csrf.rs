//! Cross-site request refusal. A browser sends our session cookie with a form
//! another site makes it post; the browser also says where the request came
//! from (`Sec-Fetch-Site`, else `Origin`, else `Referer`), and a state-changing
//! request from anywhere but our own pages is refused with 403 — a page to a
//! browser, our JSON error to a program. Requests with `Authorization: Bearer`
//! carry their credential themselves and are not affected; a request that names
//! no origin at all is not from a browser's cross-site form (every browser that
//! sends cookies cross-site sends `Origin` on a POST) and passes.

use axum::extract::Request;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use web::ApiError;

/// Why a request was refused, for the log.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Refused(&'static str),
}

/// Whether a request with these headers may change state.
pub fn check(method: &Method, headers: &HeaderMap) -> Verdict {
    if matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    ) || headers.contains_key(header::AUTHORIZATION)
    {
        return Verdict::Allowed;
    }
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("\u{fffd}").trim().to_ascii_lowercase())
    };
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site")) {
        return match site.as_str() {
            "same-origin" | "none" => Verdict::Allowed,
            _ => Verdict::Refused("Sec-Fetch-Site is not same-origin"),
        };
    }
    let host = text(header::HOST);
    let same = |url: &str| match (origin_host(url), &host) {
        (Some(h), Some(host)) => h == *host,
        _ => false,
    };
    if let Some(origin) = text(header::ORIGIN) {
        return if same(&origin) {
            Verdict::Allowed
        } else {
            Verdict::Refused("Origin is another site")
        };
    }
    if let Some(referer) = text(header::REFERER) {
        return if same(&referer) {
            Verdict::Allowed
        } else {
            Verdict::Refused("Referer is another site")
        };
    }
    Verdict::Allowed
}

/// `host[:port]` of an absolute http(s) URL (`null` and other schemes: none).
fn origin_host(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    Some(authority.to_string())
}

/// The middleware: refuses cross-site state changes before anything else runs.
pub async fn guard(req: Request, next: Next) -> Response {
    match check(req.method(), req.headers()) {
        Verdict::Allowed => next.run(req).await,
        Verdict::Refused(why) => {
            tracing::warn!(why, method = %req.method(), path = %req.uri().path(), "cross-site request refused");
            refusal(&req)
        }
    }
}

fn refusal(req: &Request) -> Response {
    let html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if html {
        let lang = web::Lang::from_headers(req.headers(), req.uri());
        let (title, text) = match lang {
            web::Lang::Ru => (
                "Запрос отклонён",
                "Этот запрос пришёл не с нашей страницы, поэтому мы его не выполнили. \
                 Откройте страницу заново и повторите действие.",
            ),
            web::Lang::En => (
                "Request refused",
                "This request did not come from one of our pages, so we did not carry it out. \
                 Open the page again and repeat the action.",
            ),
        };
        let frame = web::assets::Frame::new(lang, None, "/");
        web::page::message(axum::http::StatusCode::FORBIDDEN, frame, title, text)
    } else {
        ApiError::CrossSite.into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "shop.example:8080".parse().unwrap());
        for (k, v) in pairs {
            h.insert(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn cross_site_state_changes_are_refused() {
        let post = Method::POST;
        for bad in [
            vec![("sec-fetch-site", "cross-site")],
            vec![("sec-fetch-site", "same-site")],
            vec![
                ("sec-fetch-site", "cross-site"),
                ("origin", "http://shop.example:8080"),
            ],
            vec![("origin", "https://evil.example")],
            vec![("origin", "null")],
            vec![("origin", "http://shop.example:8080.evil.example")],
            vec![("origin", "http://shop.example")],
            vec![("referer", "https://evil.example/form")],
            vec![("referer", "http://user@shop.example:8080/")],
        ] {
            assert!(
                matches!(check(&post, &headers(&bad)), Verdict::Refused(_)),
                "{bad:?}"
            );
        }
        for ok in [
            vec![("sec-fetch-site", "same-origin")],
            vec![("sec-fetch-site", "none")],
            vec![("origin", "http://shop.example:8080")],
            vec![("referer", "http://shop.example:8080/account/orders/1")],
            vec![],
            vec![
                ("authorization", "Bearer k"),
                ("origin", "https://evil.example"),
            ],
        ] {
            assert_eq!(check(&post, &headers(&ok)), Verdict::Allowed, "{ok:?}");
        }
        let evil = headers(&[("sec-fetch-site", "cross-site")]);
        assert_eq!(check(&Method::GET, &evil), Verdict::Allowed);
        assert!(matches!(check(&Method::DELETE, &evil), Verdict::Refused(_)));
        assert!(matches!(check(&Method::PUT, &evil), Verdict::Refused(_)));
    }
}
