//! Styles and scripts compiled into the binary: no build step, no CDN.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use domain::{Caller, Role};

const CSS: &str = include_str!("../assets/app.css");
const JS: &str = include_str!("../assets/app.js");

/// `/static/app.css` and `/static/app.js`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/static/app.css",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/css; charset=utf-8"),
                        (header::CACHE_CONTROL, "public, max-age=300"),
                    ],
                    CSS,
                )
                    .into_response()
            }),
        )
        .route(
            "/static/app.js",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                        (header::CACHE_CONTROL, "public, max-age=300"),
                    ],
                    JS,
                )
                    .into_response()
            }),
        )
}

/// What the page frame (header, navigation, language switch) needs.
pub struct Frame {
    pub t: &'static crate::Texts,
    pub user: Option<Caller>,
    /// The current path and query, so the language switch comes back here.
    pub path: String,
}

impl Frame {
    pub fn new(lang: crate::Lang, user: Option<Caller>, path: impl Into<String>) -> Frame {
        Frame {
            t: lang.texts(),
            user,
            path: path.into(),
        }
    }
    pub fn is_customer(&self) -> bool {
        self.user.as_ref().is_some_and(|u| u.role == Role::Customer)
    }
    pub fn is_staff(&self) -> bool {
        self.user.as_ref().is_some_and(|u| u.role != Role::Customer)
    }
    pub fn is_manager(&self) -> bool {
        self.user.as_ref().is_some_and(|u| u.role == Role::Manager)
    }
    pub fn user_name(&self) -> &str {
        self.user.as_ref().map(|u| u.name.as_str()).unwrap_or("")
    }
    /// The SLA views' texts in this page's language.
    pub fn sla(&self) -> &'static crate::sla::SlaTexts {
        crate::sla::SlaTexts::of(self.t.language())
    }
    /// The link that switches language and returns here.
    pub fn switch_href(&self) -> String {
        format!("/lang/{}?next={}", self.t.other_lang, urlencode(&self.path))
    }
}

/// Percent-encodes a path for a query parameter.
pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Decodes what [`urlencode`] made (and other percent-encoding).
pub fn urldecode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A local path safe to redirect to, else `/`. Only a same-site relative path
/// passes: it starts with one `/` (not `//` nor `/\\`, which browsers read as
/// another host), and holds printable ASCII only — browsers drop tabs and line
/// breaks from URLs (`/\t/evil.example` would become `//evil.example`), and a
/// line break cannot stand in a `Location` header.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.len() <= 2048
                && n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && n.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

/// A page, or a plain 500 (logged) if its template fails.
pub fn render<T: askama::Template>(
    status: axum::http::StatusCode,
    page: T,
) -> axum::response::Response {
    match page.render() {
        Ok(html) => (status, axum::response::Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
            )
                .into_response()
        }
    }
}

/// The request's path and query, for the language switch and login redirects.
pub fn path_of(uri: &axum::extract::OriginalUri) -> String {
    uri.0
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into())
}

/// To the login page, coming back here afterwards.
pub fn login_redirect(uri: &axum::extract::OriginalUri) -> axum::response::Response {
    axum::response::Redirect::to(&format!("/login?next={}", urlencode(&path_of(uri))))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_same_site_relative_paths_are_redirect_targets() {
        for ok in [
            "/",
            "/account",
            "/account/orders/x?lang=en",
            "/mes?notice=taken",
        ] {
            assert_eq!(safe_next(Some(ok)), ok);
        }
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\nSet-Cookie: x=1",
            "https://evil.example/",
            "evil.example",
            "javascript:alert(1)",
            "/ /evil.example",
            "/\u{a0}/evil",
            "/путь",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
        assert_eq!(safe_next(Some(&format!("/{}", "a".repeat(3000)))), "/");
    }
}
