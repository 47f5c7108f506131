//! Numbers and money as a person reads them in their language:
//! Russian `12 345,67 ₽`, English `12,345.67 ₽`.

use crate::Lang;

/// Groups the integer part in threes and uses the language's decimal mark.
pub fn number(v: f64, digits: usize, lang: Lang) -> String {
    let s = format!("{:.*}", digits, v.abs());
    let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
    let (sep, dot) = match lang {
        Lang::Ru => ('\u{a0}', ','),
        Lang::En => (',', '.'),
    };
    let mut out = String::new();
    if v < 0.0 && s.bytes().any(|b| b.is_ascii_digit() && b != b'0') {
        out.push('-');
    }
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(sep);
        }
        out.push(c);
    }
    if !frac.is_empty() {
        out.push(dot);
        out.push_str(frac);
    }
    out
}

/// Minor units (kopecks) as roubles with the sign: `1 593,56 ₽`.
pub fn money(minor: i64, lang: Lang) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    let whole = number((abs / 100) as f64, 0, lang);
    let dot = if lang == Lang::Ru { ',' } else { '.' };
    format!("{sign}{whole}{dot}{:02}\u{a0}₽", abs % 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn formats_follow_the_language() {
        assert_eq!(number(1182.3, 1, Lang::Ru), "1\u{a0}182,3");
        assert_eq!(number(1182.3, 1, Lang::En), "1,182.3");
        assert_eq!(number(12.3, 2, Lang::Ru), "12,30");
        assert_eq!(number(-0.0001, 1, Lang::En), "0.0");
        assert_eq!(money(159_356, Lang::Ru), "1\u{a0}593,56\u{a0}₽");
        assert_eq!(money(159_356, Lang::En), "1,593.56\u{a0}₽");
        assert_eq!(money(5, Lang::En), "0.05\u{a0}₽");
        assert_eq!(
            money(123_456_789, Lang::Ru),
            "1\u{a0}234\u{a0}567,89\u{a0}₽"
        );
    }
}
