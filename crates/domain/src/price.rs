//! Materials and the price formula. Integer minor units, deterministic rounding.
//!
//! metal     = weight_g × price_per_gram × (1 + casting_allowance)
//! casting   = a fee per piece
//! finishing = surface area (cm²) × finishing rate
//! complexity= extra shells × shell rate + triangles / 10 000 × triangle rate
//! total     = max(sum, minimum charge), rejected above the maximum
//! where weight_g = |metal volume mm³| × density_g_cm3 / 1000, the metal
//! volume being the model's minus the stones the geometry found (see
//! [`MetalRule`] and docs/geometry.md, "Stone rule").

use crate::money::{Currency, Money};
use serde::{Deserialize, Serialize};
use std::ops::RangeInclusive;

/// A material as priced at one moment (the version a quote was made with).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaterialSnapshot {
    pub code: String,
    pub version: i64,
    pub name_en: String,
    pub name_ru: String,
    pub density_g_cm3: f64,
    pub price_per_gram_minor: i64,
    pub currency: Currency,
}

/// The range a material's density must lie in, g/cm³ (magnesium to osmium,
/// with room on both sides).
pub const DENSITY_G_CM3: RangeInclusive<f64> = 0.5..=25.0;
/// The range a material's price per gram must lie in, minor units
/// (0,01 ₽ to 100 000,00 ₽ a gram).
pub const PRICE_PER_GRAM_MINOR: RangeInclusive<i64> = 1..=10_000_000;
/// The longest material name, in characters.
pub const NAME_MAX_CHARS: usize = 100;
/// The largest `maximum_minor` a configuration may set (100 000 000 000,00 ₽).
pub const MAXIMUM_MINOR_CEILING: i64 = 10_000_000_000_000;

impl MaterialSnapshot {
    /// The first number outside its documented range ([`DENSITY_G_CM3`],
    /// [`PRICE_PER_GRAM_MINOR`]), if any. A snapshot that passes prices
    /// without overflow.
    pub fn out_of_range(&self) -> Option<&'static str> {
        if !DENSITY_G_CM3.contains(&self.density_g_cm3) {
            Some("density_g_cm3")
        } else if !PRICE_PER_GRAM_MINOR.contains(&self.price_per_gram_minor) {
            Some("price_per_gram_minor")
        } else {
            None
        }
    }
}

/// The shop's pricing rules (configuration `pricing.rules.*`). Each has a
/// range ([`PricingRules::out_of_range`]); the service refuses to start with
/// one outside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PricingRules {
    /// Extra metal for sprues and losses, in thousandths (80 = 8 %); 0 to 1000.
    pub casting_allowance_permille: i64,
    /// A fee per piece; 0 to 10 000 000 (100 000,00 ₽).
    pub casting_fee_minor: i64,
    /// Per cm² of surface; 0 to 1 000 000 (10 000,00 ₽).
    pub finishing_per_cm2_minor: i64,
    /// Per shell beyond the first; 0 to 10 000 000.
    pub per_extra_shell_minor: i64,
    /// Per 10 000 triangles; 0 to 1 000 000.
    pub per_10k_triangles_minor: i64,
    /// The least an order costs; 0 to `maximum_minor`.
    pub minimum_minor: i64,
    /// The most a quote may come to: a model whose price (or any line of it)
    /// is above this is rejected, never quoted; 1 to [`MAXIMUM_MINOR_CEILING`].
    pub maximum_minor: i64,
}

impl Default for PricingRules {
    fn default() -> Self {
        PricingRules {
            casting_allowance_permille: 80,
            casting_fee_minor: 150_000,
            finishing_per_cm2_minor: 4_000,
            per_extra_shell_minor: 50_000,
            per_10k_triangles_minor: 1_000,
            minimum_minor: 300_000,
            // 1 000 000 000,00 ₽: far above a kilogram of the dearest metal
            // the catalogue allows, far below what an i64 holds.
            maximum_minor: 100_000_000_000,
        }
    }
}

impl PricingRules {
    /// The first rule outside its documented range, if any (its key).
    pub fn out_of_range(&self) -> Option<&'static str> {
        let checks = [
            (
                "casting_allowance_permille",
                self.casting_allowance_permille,
                0..=1_000,
            ),
            ("casting_fee_minor", self.casting_fee_minor, 0..=10_000_000),
            (
                "finishing_per_cm2_minor",
                self.finishing_per_cm2_minor,
                0..=1_000_000,
            ),
            (
                "per_extra_shell_minor",
                self.per_extra_shell_minor,
                0..=10_000_000,
            ),
            (
                "per_10k_triangles_minor",
                self.per_10k_triangles_minor,
                0..=1_000_000,
            ),
            (
                "maximum_minor",
                self.maximum_minor,
                1..=MAXIMUM_MINOR_CEILING,
            ),
            ("minimum_minor", self.minimum_minor, 0..=self.maximum_minor),
        ];
        checks
            .into_iter()
            .find(|(_, v, range)| !range.contains(v))
            .map(|(key, _, _)| key)
    }
}

/// Why a model could not be priced. The arithmetic never wraps or saturates:
/// an amount that does not fit is one of these, and the model is rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PriceError {
    /// A measure of the geometry is NaN or infinite.
    #[error("the model's {0} is not a finite number")]
    NotANumber(&'static str),
    /// A material field or a pricing rule is outside its documented range.
    #[error("{0} is outside its allowed range")]
    OutOfRange(&'static str),
    /// A line, or the total, is above `maximum_minor` (or beyond any integer).
    #[error("the {line} line exceeds the largest quote ({maximum_minor} minor units)")]
    TooExpensive {
        line: &'static str,
        maximum_minor: i64,
    },
}

/// Which rule decided what of the model is metal: stored with every quote so
/// that the customer, the CRM and the operator see what was weighed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetalRule {
    /// Quotes made before the rule was recorded: the whole model's absolute
    /// volume was weighed.
    #[default]
    WholeModel,
    /// The model is one shell: all of it is metal.
    SingleShell,
    /// Several shells, none a stone: all are metal (voids subtracted).
    AllShells,
    /// Shells taken for stones (small, compact, convex, genus-0 closed shells
    /// near the largest solid, and shells inside them) are not weighed.
    StonesExcluded,
}

impl MetalRule {
    /// The rule in English.
    pub fn text_en(self) -> &'static str {
        match self {
            MetalRule::WholeModel => "the whole model is weighed as metal",
            MetalRule::SingleShell => "one shell: the whole model is metal",
            MetalRule::AllShells => "several shells, none of them a stone: all are metal",
            MetalRule::StonesExcluded => "stones found in the model are not weighed as metal",
        }
    }
    /// The rule in Russian.
    pub fn text_ru(self) -> &'static str {
        match self {
            MetalRule::WholeModel => "вся модель считается металлом",
            MetalRule::SingleShell => "одна оболочка: вся модель — металл",
            MetalRule::AllShells => "несколько оболочек, камней среди них нет: всё — металл",
            MetalRule::StonesExcluded => "найденные в модели камни не входят в вес металла",
        }
    }
}

/// One line of a price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// "metal", "casting", "finishing", "complexity", "minimum_charge_top_up".
    pub code: String,
    pub amount_minor: i64,
}

/// The lines of a price; they sum to the total.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Breakdown {
    /// Metal weight: the metal volume × the density.
    pub weight_g: f64,
    pub lines: Vec<Line>,
    /// The volume weighed, mm³ (absent in quotes made before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metal_volume_mm3: Option<f64>,
    /// Stones left out of the metal.
    #[serde(default)]
    pub stones: u64,
    /// Which rule decided what is metal.
    #[serde(default)]
    pub metal_rule: MetalRule,
}

/// The geometry a price depends on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PriceInput {
    /// The metal volume (the model's, stones left out), mm³.
    pub volume_mm3: f64,
    pub area_mm2: f64,
    pub shells: u64,
    pub triangles: u64,
    /// Stones left out of `volume_mm3`.
    pub stones: u64,
    pub metal_rule: MetalRule,
}

/// 2⁶³ (exact in f64): every finite f64 in `0.0..TWO_POW_63` converts to i64
/// without loss of range.
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// A non-negative finite f64 as an i64, if it is within range (never `as` on
/// an out-of-range or non-finite float).
fn whole(v: f64) -> Option<i64> {
    (v.is_finite() && (0.0..TWO_POW_63).contains(&v)).then_some(v as i64)
}

/// Divides a non-negative numerator with rounding half up; None if the
/// result does not fit an i64.
fn div_round(n: i128, d: i128) -> Option<i64> {
    i64::try_from(n.checked_add(d / 2)? / d).ok()
}

/// Metal weight in milligrams (mm³ × g/cm³ = mg), rounded to the milligram;
/// None if the volume or density is not finite or the weight beyond an i64.
pub fn weight_mg(volume_mm3: f64, density_g_cm3: f64) -> Option<i64> {
    whole((volume_mm3.abs() * density_g_cm3.abs()).round())
}

/// Prices a model: the same inputs always give the same kopecks. Every step
/// is checked integer arithmetic; every line is ≥ 0 and ≤ `maximum_minor`,
/// and they sum to the total. Anything else is a [`PriceError`].
pub fn price(
    input: &PriceInput,
    material: &MaterialSnapshot,
    rules: &PricingRules,
) -> Result<(Money, Breakdown), PriceError> {
    if let Some(key) = rules.out_of_range().or_else(|| material.out_of_range()) {
        return Err(PriceError::OutOfRange(key));
    }
    for (what, v) in [("volume", input.volume_mm3), ("area", input.area_mm2)] {
        if !v.is_finite() {
            return Err(PriceError::NotANumber(what));
        }
    }
    let maximum_minor = rules.maximum_minor;
    let too_expensive = |line| PriceError::TooExpensive {
        line,
        maximum_minor,
    };
    // An amount that fits an i64 and lies in 0..=maximum, or the line's error.
    let fits = |line, v: Option<i64>| {
        v.filter(|v| (0..=maximum_minor).contains(v))
            .ok_or_else(|| too_expensive(line))
    };
    let mg = weight_mg(input.volume_mm3, material.density_g_cm3)
        .ok_or_else(|| too_expensive("metal"))?;
    let metal = fits(
        "metal",
        i128::from(mg)
            .checked_mul(i128::from(material.price_per_gram_minor))
            .and_then(|v| v.checked_mul(i128::from(1000 + rules.casting_allowance_permille)))
            .and_then(|v| div_round(v, 1_000_000)),
    )?;
    let casting = fits("casting", Some(rules.casting_fee_minor))?;
    // mm² = cm² × 100
    let finishing = fits(
        "finishing",
        whole(input.area_mm2.abs().round())
            .and_then(|a| i128::from(a).checked_mul(i128::from(rules.finishing_per_cm2_minor)))
            .and_then(|v| div_round(v, 100)),
    )?;
    let shells = i128::from(input.shells.saturating_sub(1))
        .checked_mul(i128::from(rules.per_extra_shell_minor));
    let triangles = i128::from(input.triangles)
        .checked_mul(i128::from(rules.per_10k_triangles_minor))
        .and_then(|v| div_round(v, 10_000))
        .map(i128::from);
    let complexity = fits(
        "complexity",
        shells
            .zip(triangles)
            .and_then(|(s, t)| s.checked_add(t))
            .and_then(|v| i64::try_from(v).ok()),
    )?;
    let sum = fits(
        "total",
        [metal, casting, finishing, complexity]
            .into_iter()
            .try_fold(0i64, i64::checked_add),
    )?;
    let mut lines = vec![
        Line {
            code: "metal".into(),
            amount_minor: metal,
        },
        Line {
            code: "casting".into(),
            amount_minor: casting,
        },
        Line {
            code: "finishing".into(),
            amount_minor: finishing,
        },
        Line {
            code: "complexity".into(),
            amount_minor: complexity,
        },
    ];
    // Both in 0..=maximum_minor (minimum_minor's range), so neither the
    // difference nor the total can leave it.
    let top_up = (rules.minimum_minor - sum).max(0);
    if top_up > 0 {
        lines.push(Line {
            code: "minimum_charge_top_up".into(),
            amount_minor: top_up,
        });
    }
    let total = fits("total", sum.checked_add(top_up))?;
    Ok((
        Money {
            minor: total,
            currency: material.currency,
        },
        Breakdown {
            weight_g: mg as f64 / 1000.0,
            lines,
            metal_volume_mm3: Some(input.volume_mm3.abs()),
            stones: input.stones,
            metal_rule: input.metal_rule,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gold() -> MaterialSnapshot {
        MaterialSnapshot {
            code: "AU585Y".into(),
            version: 1,
            name_en: "585 yellow gold".into(),
            name_ru: "Золото 585 жёлтое".into(),
            density_g_cm3: 13.1,
            price_per_gram_minor: 750_000,
            currency: Currency::RUB,
        }
    }

    #[test]
    fn prices_a_10mm_cube_of_gold_by_hand() {
        // 1000 mm³ × 13.1 g/cm³ = 13.1 g; 13.1 × 7500.00 ₽ × 1.08 = 106 110.00 ₽
        let input = PriceInput {
            volume_mm3: 1000.0,
            area_mm2: 600.0,
            shells: 1,
            triangles: 12,
            stones: 0,
            metal_rule: MetalRule::SingleShell,
        };
        let (total, b) = price(&input, &gold(), &PricingRules::default()).unwrap();
        assert_eq!(b.weight_g, 13.1);
        assert_eq!(b.lines[0].amount_minor, 10_611_000);
        assert_eq!(b.lines[2].amount_minor, 24_000); // 6 cm² × 40 ₽
        assert_eq!(b.lines[3].amount_minor, 1); // 12 triangles: 0.0012 × 1000 rounds to 1
        assert_eq!(total.minor, 10_611_000 + 150_000 + 24_000 + 1);
        assert_eq!(
            total.minor,
            b.lines.iter().map(|l| l.amount_minor).sum::<i64>()
        );
    }

    #[test]
    fn tiny_models_pay_the_minimum_and_inside_out_models_weigh_the_same() {
        let input = PriceInput {
            volume_mm3: -1.0,
            area_mm2: 6.0,
            shells: 1,
            triangles: 12,
            stones: 0,
            metal_rule: MetalRule::SingleShell,
        };
        let (total, b) = price(&input, &gold(), &PricingRules::default()).unwrap();
        assert_eq!(total.minor, PricingRules::default().minimum_minor);
        assert_eq!(b.lines.last().unwrap().code, "minimum_charge_top_up");
        assert_eq!(b.weight_g, 0.013);
    }

    fn cube(side_mm: f64) -> PriceInput {
        PriceInput {
            volume_mm3: side_mm.powi(3),
            area_mm2: 6.0 * side_mm * side_mm,
            shells: 1,
            triangles: 12,
            stones: 0,
            metal_rule: MetalRule::SingleShell,
        }
    }

    #[test]
    fn a_100_m_cube_of_gold_is_too_expensive_not_the_minimum_charge() {
        // 1e15 mm³ × 13.1 = 1.31e16 mg; × 7 500,00 ₽ × 1.08 = 1.06e19 kopecks:
        // beyond an i64. It used to wrap negative and be topped up to 3 000 ₽.
        let e = price(&cube(100_000.0), &gold(), &PricingRules::default()).unwrap_err();
        assert_eq!(
            e,
            PriceError::TooExpensive {
                line: "metal",
                maximum_minor: 100_000_000_000
            }
        );
        // A 1 m cube fits an i64 but not the maximum: still refused.
        let e = price(&cube(1000.0), &gold(), &PricingRules::default()).unwrap_err();
        assert!(
            matches!(e, PriceError::TooExpensive { line: "metal", .. }),
            "{e}"
        );
    }

    #[test]
    fn out_of_range_materials_and_rules_and_non_numbers_are_refused() {
        let rules = PricingRules::default();
        let mut m = gold();
        m.price_per_gram_minor = i64::MAX;
        assert_eq!(
            price(&cube(10.0), &m, &rules),
            Err(PriceError::OutOfRange("price_per_gram_minor"))
        );
        for d in [0.0, -13.1, 1e300, f64::NAN, f64::INFINITY] {
            let m = MaterialSnapshot {
                density_g_cm3: d,
                ..gold()
            };
            assert_eq!(
                price(&cube(10.0), &m, &rules),
                Err(PriceError::OutOfRange("density_g_cm3")),
                "{d}"
            );
        }
        let bad = PricingRules {
            casting_fee_minor: -1,
            ..PricingRules::default()
        };
        assert_eq!(
            price(&cube(10.0), &gold(), &bad),
            Err(PriceError::OutOfRange("casting_fee_minor"))
        );
        let bad = PricingRules {
            minimum_minor: 10,
            maximum_minor: 5,
            ..PricingRules::default()
        };
        assert_eq!(bad.out_of_range(), Some("minimum_minor"));
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let input = PriceInput {
                volume_mm3: v,
                ..cube(10.0)
            };
            assert_eq!(
                price(&input, &gold(), &rules),
                Err(PriceError::NotANumber("volume"))
            );
            let input = PriceInput {
                area_mm2: v,
                ..cube(10.0)
            };
            assert_eq!(
                price(&input, &gold(), &rules),
                Err(PriceError::NotANumber("area"))
            );
        }
        assert_eq!(PricingRules::default().out_of_range(), None);
        assert_eq!(gold().out_of_range(), None);
    }

    #[test]
    fn floats_convert_only_in_range() {
        assert_eq!(whole(0.0), Some(0));
        assert_eq!(
            whole(9_223_372_036_854_774_784.0),
            Some(9_223_372_036_854_774_784)
        );
        for v in [TWO_POW_63, 1e300, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(whole(v), None, "{v}");
        }
        assert_eq!(weight_mg(1e30, 25.0), None);
        assert_eq!(weight_mg(-1000.0, 13.1), Some(13_100));
    }

    fn rules_in_range() -> impl Strategy<Value = PricingRules> {
        (
            0..=1_000i64,
            0..=10_000_000i64,
            0..=1_000_000i64,
            0..=10_000_000i64,
            0..=1_000_000i64,
            1..=MAXIMUM_MINOR_CEILING,
            0.0..=1.0f64,
        )
            .prop_map(|(allowance, fee, finishing, shell, tris, max, min)| {
                PricingRules {
                    casting_allowance_permille: allowance,
                    casting_fee_minor: fee,
                    finishing_per_cm2_minor: finishing,
                    per_extra_shell_minor: shell,
                    per_10k_triangles_minor: tris,
                    // Any minimum from 0 to the maximum.
                    minimum_minor: (max as f64 * min) as i64,
                    maximum_minor: max,
                }
            })
    }

    fn material_in_range() -> impl Strategy<Value = MaterialSnapshot> {
        (DENSITY_G_CM3, PRICE_PER_GRAM_MINOR).prop_map(|(d, p)| MaterialSnapshot {
            density_g_cm3: d,
            price_per_gram_minor: p,
            ..gold()
        })
    }

    /// 0, tiny, huge (to 1e30), negative, NaN and infinities.
    fn measure() -> impl Strategy<Value = f64> {
        prop_oneof![
            Just(0.0),
            (-3.0..30.0f64).prop_map(|e| 10f64.powf(e)),
            (-3.0..30.0f64).prop_map(|e| -(10f64.powf(e))),
            0.0..1e6f64,
            proptest::num::f64::ANY,
            Just(f64::NAN),
            Just(f64::INFINITY),
        ]
    }

    fn count() -> impl Strategy<Value = u64> {
        prop_oneof![0..100u64, 0..=u64::from(u32::MAX), any::<u64>()]
    }

    fn input() -> impl Strategy<Value = PriceInput> {
        (measure(), measure(), count(), count(), count()).prop_map(
            |(volume_mm3, area_mm2, shells, triangles, stones)| PriceInput {
                volume_mm3,
                area_mm2,
                shells,
                triangles,
                stones,
                metal_rule: MetalRule::StonesExcluded,
            },
        )
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Whatever the geometry, with any material and rules in their ranges:
        /// no panic; a price has every line in 0..=maximum summing to the
        /// total, which is at least the minimum and at most the maximum;
        /// otherwise it is a refusal naming why.
        #[test]
        fn any_geometry_is_priced_soundly_or_refused(
            input in input(),
            material in material_in_range(),
            rules in rules_in_range(),
        ) {
            match price(&input, &material, &rules) {
                Ok((total, b)) => {
                    prop_assert!(input.volume_mm3.is_finite() && input.area_mm2.is_finite());
                    prop_assert!(b.lines.iter().all(|l| (0..=rules.maximum_minor).contains(&l.amount_minor)), "{b:?}");
                    let sum = b.lines.iter().try_fold(0i64, |a, l| a.checked_add(l.amount_minor));
                    prop_assert_eq!(sum, Some(total.minor));
                    prop_assert!(total.minor >= rules.minimum_minor && total.minor <= rules.maximum_minor);
                    prop_assert!(b.weight_g >= 0.0 && b.weight_g.is_finite());
                }
                Err(PriceError::NotANumber(_)) => {
                    prop_assert!(!input.volume_mm3.is_finite() || !input.area_mm2.is_finite());
                }
                Err(PriceError::TooExpensive { maximum_minor, .. }) => {
                    prop_assert_eq!(maximum_minor, rules.maximum_minor);
                }
                Err(e @ PriceError::OutOfRange(_)) => prop_assert!(false, "in range, yet {}", e),
            }
        }

        /// More metal never costs less: a larger volume is priced at least as
        /// high, or refused as too expensive.
        #[test]
        fn more_metal_never_costs_less(
            small in 0.0..1e12f64,
            factor in 1.0..1e6f64,
            material in material_in_range(),
            rules in rules_in_range(),
        ) {
            let at = |volume_mm3: f64| price(&PriceInput { volume_mm3, ..cube(10.0) }, &material, &rules);
            let big = small * factor;
            match (at(small), at(big)) {
                (Ok((a, la)), Ok((b, lb))) => {
                    prop_assert!(b.minor >= a.minor);
                    prop_assert!(lb.lines[0].amount_minor >= la.lines[0].amount_minor);
                    prop_assert!(lb.weight_g >= la.weight_g);
                }
                (Ok(_), Err(e)) => prop_assert!(matches!(e, PriceError::TooExpensive { .. }), "{}", e),
                (Err(e), Ok(_)) => prop_assert!(false, "the smaller model was refused: {}", e),
                (Err(_), Err(_)) => {}
            }
        }
    }

    #[test]
    fn quotes_stored_before_the_metal_rule_still_read() {
        // A breakdown as stored before stones were recorded.
        let old = r#"{"weight_g":13.1,"lines":[{"code":"metal","amount_minor":1}]}"#;
        let b: Breakdown = serde_json::from_str(old).unwrap();
        assert_eq!(b.metal_rule, MetalRule::WholeModel);
        assert_eq!((b.stones, b.metal_volume_mm3), (0, None));
        let new = serde_json::to_value(Breakdown {
            metal_rule: MetalRule::StonesExcluded,
            stones: 7,
            metal_volume_mm3: Some(2076.4),
            ..b
        })
        .unwrap();
        assert_eq!(new["metal_rule"], "stones_excluded");
        assert_eq!(new["stones"], 7);
    }
}
