//! Text people send us, checked where it enters: bounded, one line where one
//! line is meant, no control characters (they break e-mail headers, logs and
//! CSV), and e-mail addresses of a plain shape. A refusal is 422 naming the field.

use crate::ApiError;

/// Longest name of a person or an organisation we keep.
pub const MAX_NAME: usize = 100;
/// Longest e-mail address (RFC 5321's path limit).
pub const MAX_EMAIL: usize = 254;
/// Longest reason or note typed by staff.
pub const MAX_REASON: usize = 500;
/// Longest tracking number (carriers use up to ~35 characters).
pub const MAX_TRACKING: usize = 64;
/// Longest file name we keep of an upload.
pub const MAX_FILE_NAME: usize = 200;
/// Longest password we hash (argon2 of megabytes costs the server, not the caller).
pub const MAX_PASSWORD: usize = 1024;

/// Why a text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextError {
    Empty,
    TooLong(usize),
    /// A line break, tab or other control character where one line is meant.
    Control,
}

impl TextError {
    /// The 422 naming `field` (`what` is how the message calls it, e.g. "the name").
    pub fn into_api(self, field: &'static str, what: &str) -> ApiError {
        let (code, message) = match self {
            TextError::Empty => ("required", format!("{what} is required")),
            TextError::TooLong(max) => (
                "too_long",
                format!("{what} is longer than {max} characters"),
            ),
            TextError::Control => (
                "control_characters",
                format!("{what} must be one line without control characters"),
            ),
        };
        ApiError::unprocessable(code, field, message)
    }
}

/// One line of text: trimmed, not empty (unless `optional`), at most `max` characters,
/// no control characters (nor the Unicode line and paragraph separators).
pub fn one_line(value: &str, max: usize, optional: bool) -> Result<String, TextError> {
    let v = value.trim();
    if v.is_empty() && !optional {
        return Err(TextError::Empty);
    }
    if v.chars().count() > max {
        return Err(TextError::TooLong(max));
    }
    if v.chars().any(unsafe_char) {
        return Err(TextError::Control);
    }
    Ok(v.to_string())
}

/// Several lines (notes, reasons shown as paragraphs): line breaks allowed, other
/// control characters not.
pub fn multi_line(value: &str, max: usize, optional: bool) -> Result<String, TextError> {
    let v = value.trim();
    if v.is_empty() && !optional {
        return Err(TextError::Empty);
    }
    if v.chars().count() > max {
        return Err(TextError::TooLong(max));
    }
    if v.chars().any(|c| c != '\n' && c != '\r' && unsafe_char(c)) {
        return Err(TextError::Control);
    }
    Ok(v.replace("\r\n", "\n"))
}

/// A character no one-line text may hold: control characters, the Unicode
/// line and paragraph separators, bidirectional embeddings, overrides and
/// isolates (they reorder what a reader sees), and the zero-width no-break space.
pub fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}'
        )
}

/// Whether `email` (already trimmed and lower-cased) is an address of the plain
/// shape `local@domain.tld`: ASCII letters, digits and `.!#$%&*+/=?^_{|}~-` before
/// the `@` (no quoting, no comments, no angle brackets), a domain of letters,
/// digits and hyphens in dot-separated labels (IDN in its `xn--` form).
pub fn is_email(email: &str) -> bool {
    if email.len() > MAX_EMAIL {
        return false;
    }
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._!#$%&*+/=?^{|}~-".contains(&b));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels.last().is_some_and(|tld| {
            tld.bytes().all(|b| b.is_ascii_alphabetic()) || tld.starts_with("xn--")
        });
    local_ok && domain_ok
}

/// An uploaded file's name as we keep it: the last path component, control and
/// path characters dropped, at most [`MAX_FILE_NAME`] characters; `model` if
/// nothing is left.
pub fn file_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base
        .chars()
        .filter(|c| !unsafe_char(*c) && !matches!(c, '"' | '<' | '>' | '\\' | '/'))
        .take(MAX_FILE_NAME)
        .collect();
    let clean = clean.trim().trim_start_matches('.').to_string();
    if clean.is_empty() {
        "model".into()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_refuses_breaks_controls_and_long_text() {
        assert_eq!(one_line("  Анна  ", 10, false), Ok("Анна".into()));
        assert_eq!(
            one_line("a\r\nBcc: x@evil", 100, false),
            Err(TextError::Control)
        );
        assert_eq!(one_line("a\u{0}b", 100, false), Err(TextError::Control));
        assert_eq!(one_line("a\u{2028}b", 100, false), Err(TextError::Control));
        assert_eq!(one_line("a\u{2066}b", 100, false), Err(TextError::Control));
        assert_eq!(one_line("a\u{feff}b", 100, false), Err(TextError::Control));
        assert_eq!(one_line("   ", 100, false), Err(TextError::Empty));
        assert_eq!(one_line("", 100, true), Ok(String::new()));
        assert_eq!(
            one_line(&"я".repeat(11), 10, false),
            Err(TextError::TooLong(10))
        );
        assert_eq!(one_line(&"я".repeat(10), 10, false), Ok("я".repeat(10)));
    }

    #[test]
    fn multi_line_keeps_line_breaks_only() {
        assert_eq!(multi_line("a\r\nb", 10, false), Ok("a\nb".into()));
        assert_eq!(
            multi_line("a\tb\u{1b}[31m", 100, false),
            Err(TextError::Control)
        );
    }

    #[test]
    fn e_mail_addresses_have_a_plain_shape() {
        for ok in [
            "anna@example.com",
            "a.b+tag@mail.example.ru",
            "x@xn--80ak6aa92e.com",
        ] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in [
            "\"><img src=x onerror=alert(1)>@x",
            "a@b",
            "a@b.",
            "@example.com",
            "a@.example.com",
            "a b@example.com",
            "a@exa mple.com",
            "a..b@example.com",
            "a@example.com\r\nbcc: x@evil.com",
            "<a@example.com>",
            "a@-x.com",
            "a@example.123",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
        assert!(!is_email(&format!("{}@example.com", "a".repeat(65))));
    }

    #[test]
    fn file_names_lose_paths_and_controls() {
        assert_eq!(file_name("ring.stl"), "ring.stl");
        assert_eq!(file_name("C:\\Users\\x\\ring.stl"), "ring.stl");
        assert_eq!(file_name("../../etc/passwd"), "passwd");
        assert_eq!(file_name("a\r\nb<script>.stl"), "abscript.stl");
        assert_eq!(file_name(""), "model");
        assert_eq!(file_name(".."), "model");
        assert_eq!(file_name(&"x".repeat(500)).len(), MAX_FILE_NAME);
    }
}
