//! Number parsing for the text formats: fast paths for the common cases, the
//! standard library for the rest, so every spelling a float may take in a
//! model file (`1e-3`, `-.5`, `+1.0E+2`, `7.`) is read correctly rounded.

/// Exact powers of ten representable in f64 (Clinger's fast path).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Parses one whole token as a finite decimal float. `None` if the token is not
/// a number (or is `nan`/`inf`, which no model coordinate may be).
pub(crate) fn parse_f64(tok: &[u8]) -> Option<f64> {
    let n = tok.len();
    let mut i = 0;
    let mut neg = false;
    if i < n && (tok[i] == b'+' || tok[i] == b'-') {
        neg = tok[i] == b'-';
        i += 1;
    }
    let mut mant: u64 = 0;
    let mut digits = 0u32; // significant digits accumulated into `mant`
    let mut any_digit = false;
    let mut exp: i64 = 0;
    let mut truncated = false;
    while i < n && tok[i].is_ascii_digit() {
        any_digit = true;
        if digits < 19 {
            mant = mant * 10 + u64::from(tok[i] - b'0');
            if mant != 0 {
                digits += 1;
            }
        } else {
            exp += 1;
            truncated |= tok[i] != b'0';
        }
        i += 1;
    }
    if i < n && tok[i] == b'.' {
        i += 1;
        while i < n && tok[i].is_ascii_digit() {
            any_digit = true;
            if digits < 19 {
                mant = mant * 10 + u64::from(tok[i] - b'0');
                if mant != 0 {
                    digits += 1;
                }
                exp -= 1;
            } else {
                truncated |= tok[i] != b'0';
            }
            i += 1;
        }
    }
    if !any_digit {
        return None;
    }
    if i < n && (tok[i] == b'e' || tok[i] == b'E') {
        i += 1;
        let mut eneg = false;
        if i < n && (tok[i] == b'+' || tok[i] == b'-') {
            eneg = tok[i] == b'-';
            i += 1;
        }
        let start = i;
        let mut e: i64 = 0;
        while i < n && tok[i].is_ascii_digit() {
            if e < 100_000 {
                e = e * 10 + i64::from(tok[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        exp += if eneg { -e } else { e };
    }
    if i != n {
        return None;
    }
    if !truncated && mant < (1u64 << 53) && (-22..=22).contains(&exp) {
        let m = mant as f64;
        let v = if exp >= 0 {
            m * POW10[exp as usize]
        } else {
            m / POW10[(-exp) as usize]
        };
        return Some(if neg { -v } else { v });
    }
    slow(tok)
}

#[cold]
fn slow(tok: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(tok).ok()?;
    let v: f64 = s.parse().ok()?;
    v.is_finite().then_some(v)
}

/// Parses a whole token as an integer (OBJ indices may be negative).
pub(crate) fn parse_i64(tok: &[u8]) -> Option<i64> {
    let (neg, digits) = match tok.first()? {
        b'-' => (true, &tok[1..]),
        b'+' => (false, &tok[1..]),
        _ => (false, tok),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_spellings() {
        let cases: &[(&str, f64)] = &[
            ("0", 0.0),
            ("1", 1.0),
            ("-1", -1.0),
            ("1e-3", 1e-3),
            ("-.5", -0.5),
            ("+1.0E+2", 100.0),
            ("7.", 7.0),
            (".25e1", 2.5),
            ("1.234567890123456789012345", 1.234_567_890_123_456_8),
            ("9.6500003e+00", 9.650_000_3),
            ("1e300", 1e300),
            ("-2.5E-310", -2.5e-310),
            ("00012.5000", 12.5),
            ("3.4028235e+38", 3.402_823_5e38),
        ];
        for &(s, v) in cases {
            assert_eq!(parse_f64(s.as_bytes()), Some(v), "{s}");
            assert_eq!(parse_f64(s.as_bytes()), s.parse::<f64>().ok(), "{s}");
        }
        for bad in [
            "", "-", ".", "e5", "1e", "1.2.3", "nan", "inf", "1x", "--1", "1e+",
        ] {
            assert_eq!(parse_f64(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn ints() {
        assert_eq!(parse_i64(b"12"), Some(12));
        assert_eq!(parse_i64(b"-3"), Some(-3));
        assert_eq!(parse_i64(b""), None);
        assert_eq!(parse_i64(b"1a"), None);
    }
}
