//! What a casting process can make (configuration `pricing.casting`), and the
//! reasons, in English and Russian, a model is refused: too large, too small
//! or too heavy to cast, priced beyond the most we quote, or a material whose
//! numbers are outside their ranges. See docs/pricing.md.

use domain::price::PriceError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One casting process's limits. Sizes are a bounding box in any orientation:
/// the model's extents and these are both compared sorted, so a model lying
/// on its side fits as well as standing up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CastingEnvelope {
    /// The largest bounding box, mm (the flask), e.g. [120, 120, 80].
    pub max_mm: [f64; 3],
    /// The smallest bounding box, mm: a piece thinner or shorter does not
    /// fill or survives no finishing, e.g. [0.5, 1, 1].
    pub min_mm: [f64; 3],
    /// The most metal one piece may weigh, g (the crucible).
    pub max_metal_g: f64,
}

impl Default for CastingEnvelope {
    fn default() -> Self {
        CastingEnvelope {
            max_mm: [120.0, 120.0, 80.0],
            min_mm: [0.5, 1.0, 1.0],
            max_metal_g: 1000.0,
        }
    }
}

/// The casting envelopes: one for any material, and one per material group
/// named by a material-code prefix (case-insensitive; the longest matching
/// prefix wins): `au` gold, `ag` silver, `pt` platinum by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Casting {
    /// For a material no group names.
    pub default: CastingEnvelope,
    /// By material-code prefix, lowercase (environment variables arrive
    /// lowercased, so the keys are compared that way).
    pub groups: BTreeMap<String, CastingEnvelope>,
}

impl Default for Casting {
    fn default() -> Self {
        let size = CastingEnvelope::default();
        let group = |max_mm, max_metal_g| CastingEnvelope {
            max_mm,
            max_metal_g,
            ..size.clone()
        };
        Casting {
            groups: BTreeMap::from([
                ("au".to_string(), group(size.max_mm, 1000.0)),
                ("ag".to_string(), group(size.max_mm, 700.0)),
                // Platinum is cast by induction in smaller flasks.
                ("pt".to_string(), group([80.0, 80.0, 60.0], 500.0)),
            ]),
            default: size,
        }
    }
}

/// Sorted from largest to smallest (a NaN fails every comparison made with it).
fn descending(v: [f64; 3]) -> [f64; 3] {
    let mut v = v;
    v.sort_by(|a, b| b.total_cmp(a));
    v
}

impl Casting {
    /// The envelope a material is cast in.
    pub fn for_material(&self, code: &str) -> &CastingEnvelope {
        let code = code.to_ascii_lowercase();
        self.groups
            .iter()
            .filter(|(prefix, _)| code.starts_with(&prefix.to_ascii_lowercase()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, e)| e)
            .unwrap_or(&self.default)
    }

    /// The first setting that makes no sense (its configuration key): sizes
    /// and weights must be finite and positive, each minimum at most its
    /// maximum.
    pub fn invalid(&self) -> Option<String> {
        let named = std::iter::once(("default".to_string(), &self.default))
            .chain(self.groups.iter().map(|(k, e)| (format!("groups.{k}"), e)));
        for (name, e) in named {
            let positive = |v: f64| v.is_finite() && v > 0.0;
            let (max, min) = (descending(e.max_mm), descending(e.min_mm));
            if !max.iter().all(|&v| positive(v)) {
                return Some(format!("pricing.casting.{name}.max_mm"));
            }
            if !min.iter().all(|&v| positive(v)) || min.iter().zip(max).any(|(a, b)| *a > b) {
                return Some(format!("pricing.casting.{name}.min_mm"));
            }
            if !positive(e.max_metal_g) {
                return Some(format!("pricing.casting.{name}.max_metal_g"));
            }
        }
        None
    }
}

/// Why a model falls outside its envelope: a machine code and the reason in
/// both languages.
pub(crate) fn outside(e: &CastingEnvelope, bbox_mm: [f64; 3]) -> Option<(&'static str, String)> {
    let (size, max, min) = (
        descending(bbox_mm),
        descending(e.max_mm),
        descending(e.min_mm),
    );
    // A NaN extent is outside too.
    if size.iter().zip(max).any(|(a, b)| a.is_nan() || *a > b) {
        return Some((
            "too_large_to_cast",
            both(
                format!(
                    "too large to cast: {} mm, this process takes at most {} mm",
                    dims(size, En),
                    dims(max, En)
                ),
                format!(
                    "слишком большая для литья: {} мм, этот процесс принимает не более {} мм",
                    dims(size, Ru),
                    dims(max, Ru)
                ),
            ),
        ));
    }
    // Sorted from the largest, a model is too small if any extent is below
    // the minimum's extent of the same rank.
    if size.iter().zip(min).any(|(a, b)| a.is_nan() || *a < b) {
        return Some((
            "too_small_to_cast",
            both(
                format!(
                    "too small to cast: {} mm, this process needs at least {} mm",
                    dims(size, En),
                    dims(min, En)
                ),
                format!(
                    "слишком маленькая для литья: {} мм, этому процессу нужно не менее {} мм",
                    dims(size, Ru),
                    dims(min, Ru)
                ),
            ),
        ));
    }
    None
}

/// Why a model is too heavy for its envelope, if it is.
pub(crate) fn too_heavy(e: &CastingEnvelope, metal_g: f64) -> Option<(&'static str, String)> {
    if metal_g <= e.max_metal_g {
        return None; // NaN falls through: too heavy.
    }
    Some((
        "too_heavy_to_cast",
        both(
            format!(
                "too heavy to cast: {} g of metal, this process takes at most {} g",
                num(metal_g, En),
                num(e.max_metal_g, En)
            ),
            format!(
                "слишком тяжёлая для литья: {} г металла, этот процесс принимает не более {} г",
                num(metal_g, Ru),
                num(e.max_metal_g, Ru)
            ),
        ),
    ))
}

/// A price that could not be made, as a code and the reason in both languages.
pub(crate) fn unpriced(e: &PriceError) -> (&'static str, String) {
    match e {
        PriceError::TooExpensive { maximum_minor, .. } => (
            "too_expensive",
            both(
                format!(
                    "the price would be above the most we quote online, {}; please contact us",
                    money(*maximum_minor, En)
                ),
                format!(
                    "стоимость превысила бы наибольшую, что мы рассчитываем онлайн, — {}; свяжитесь с нами",
                    money(*maximum_minor, Ru)
                ),
            ),
        ),
        PriceError::OutOfRange(field) => (
            "material_out_of_range",
            both(
                format!(
                    "the material's or the price list's {field} is outside its allowed range; we will correct it, please upload again later"
                ),
                format!(
                    "значение {field} материала или прайс-листа вне допустимого диапазона; мы исправим его, загрузите модель позже"
                ),
            ),
        ),
        PriceError::NotANumber(what) => {
            let ru = if *what == "area" {
                "площадь"
            } else {
                "объём"
            };
            (
                "unreadable",
                both(
                    format!("the model's {what} is not a finite number"),
                    format!("{ru} модели — не конечное число"),
                ),
            )
        }
    }
}

/// The reason in English, then in Russian: the one text travels in the
/// `order.rejected` event and shows on every page and in every e-mail.
pub(crate) fn both(en: String, ru: String) -> String {
    format!("{en} / {ru}")
}

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Lang {
    En,
    Ru,
}
pub(crate) use Lang::{En, Ru};

/// Digits in groups of three: "100,000" / "100 000" (no-break space).
fn grouped(whole: u128, lang: Lang) -> String {
    let digits = whole.to_string();
    let sep = if lang == En { ',' } else { '\u{a0}' };
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(sep);
        }
        out.push(c);
    }
    out
}

/// A non-negative measure to at most two decimals, trailing zeros dropped:
/// "100,000", "0.25" / "100 000", "0,25". Not a finite number: "?".
pub(crate) fn num(v: f64, lang: Lang) -> String {
    if !v.is_finite() {
        return "?".into();
    }
    let hundredths = (v.abs() * 100.0).round();
    if hundredths >= 1e30 {
        return format!("{v:e}");
    }
    // In range (checked above): at most 1e30 < u128::MAX.
    let hundredths = hundredths as u128;
    let mut s = grouped(hundredths / 100, lang);
    let frac = hundredths % 100;
    if frac != 0 {
        s.push(if lang == En { '.' } else { ',' });
        let f = format!("{frac:02}");
        s.push_str(f.trim_end_matches('0'));
    }
    if v < 0.0 { format!("-{s}") } else { s }
}

fn dims(v: [f64; 3], lang: Lang) -> String {
    v.map(|x| num(x, lang)).join(" × ")
}

/// Kopecks as roubles: "1,000,000,000.00 ₽" / "1 000 000 000,00 ₽".
fn money(minor: i64, lang: Lang) -> String {
    let abs = minor.unsigned_abs();
    let sep = if lang == En { '.' } else { ',' };
    let sign = if minor < 0 { "-" } else { "" };
    format!(
        "{sign}{}{sep}{:02}\u{a0}₽",
        grouped(u128::from(abs / 100), lang),
        abs % 100
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_compare_in_any_orientation() {
        let e = CastingEnvelope::default();
        // 80 × 120 × 120 lying down, 119 tall: fits the 120 × 120 × 80 flask.
        assert_eq!(outside(&e, [80.0, 119.0, 120.0]), None);
        assert_eq!(outside(&e, [119.0, 80.0, 120.0]), None);
        let (code, reason) = outside(&e, [81.0, 81.0, 81.0]).unwrap();
        assert_eq!(code, "too_large_to_cast");
        assert_eq!(
            reason,
            "too large to cast: 81 × 81 × 81 mm, this process takes at most 120 × 120 × 80 mm / \
             слишком большая для литья: 81 × 81 × 81 мм, этот процесс принимает не более 120 × 120 × 80 мм"
        );
        let (code, reason) = outside(&e, [100_000.0, 100_000.0, 100_000.0]).unwrap();
        assert_eq!(code, "too_large_to_cast");
        assert!(
            reason.starts_with("too large to cast: 100,000 × 100,000 × 100,000 mm")
                && reason.contains("100\u{a0}000 × 100\u{a0}000 × 100\u{a0}000 мм"),
            "{reason}"
        );
        // A flat 0.4 mm sheet and a 0.9 mm needle are too small; 0.5 × 1 × 1 is not.
        assert_eq!(outside(&e, [1.0, 0.5, 1.0]), None);
        let (code, reason) = outside(&e, [10.0, 10.0, 0.4]).unwrap();
        assert_eq!(code, "too_small_to_cast");
        assert!(
            reason.starts_with(
                "too small to cast: 10 × 10 × 0.4 mm, this process needs at least 1 × 1 × 0.5 mm"
            ) && reason.contains("10 × 10 × 0,4 мм"),
            "{reason}"
        );
        assert_eq!(
            outside(&e, [0.9, 30.0, 0.9]).unwrap().0,
            "too_small_to_cast"
        );
        assert_eq!(outside(&e, [0.9, 30.0, 30.0]), None);
        assert_eq!(
            outside(&e, [f64::NAN, 1.0, 1.0]).unwrap().0,
            "too_large_to_cast"
        );
    }

    #[test]
    fn material_groups_go_by_the_longest_code_prefix() {
        let mut c = Casting::default();
        assert_eq!(c.for_material("AU585Y").max_metal_g, 1000.0);
        assert_eq!(c.for_material("AG925").max_metal_g, 700.0);
        assert_eq!(c.for_material("PT950").max_mm, [80.0, 80.0, 60.0]);
        assert_eq!(c.for_material("PD500"), &c.default);
        c.groups.insert(
            "AU9".into(),
            CastingEnvelope {
                max_metal_g: 50.0,
                ..CastingEnvelope::default()
            },
        );
        assert_eq!(c.for_material("au999").max_metal_g, 50.0);
        assert_eq!(c.for_material("AU585Y").max_metal_g, 1000.0);
        assert_eq!(c.invalid(), None);
    }

    #[test]
    fn senseless_envelopes_are_named_by_their_key() {
        let mut c = Casting::default();
        c.default.min_mm = [200.0, 1.0, 1.0];
        assert_eq!(
            c.invalid().as_deref(),
            Some("pricing.casting.default.min_mm")
        );
        let mut c = Casting::default();
        c.groups.get_mut("pt").unwrap().max_metal_g = f64::INFINITY;
        assert_eq!(
            c.invalid().as_deref(),
            Some("pricing.casting.groups.pt.max_metal_g")
        );
        let mut c = Casting::default();
        c.default.max_mm = [120.0, -1.0, 80.0];
        assert_eq!(
            c.invalid().as_deref(),
            Some("pricing.casting.default.max_mm")
        );
    }

    #[test]
    fn numbers_read_the_same_in_both_languages() {
        assert_eq!(num(1_310.456, En), "1,310.46");
        assert_eq!(num(1_310.456, Ru), "1\u{a0}310,46");
        assert_eq!(num(0.5, Ru), "0,5");
        assert_eq!(num(f64::NAN, En), "?");
        assert_eq!(num(1e40, En), "1e40");
        assert_eq!(money(100_000_000_000, En), "1,000,000,000.00\u{a0}₽");
        assert_eq!(
            money(100_000_000_000, Ru),
            "1\u{a0}000\u{a0}000\u{a0}000,00\u{a0}₽"
        );
    }
}
