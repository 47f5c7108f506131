//! Materials and the price formula. Integer minor units, deterministic rounding.
//!
//! metal     = weight_g × price_per_gram × (1 + casting_allowance)
//! casting   = a fee per piece
//! finishing = surface area (cm²) × finishing rate
//! complexity= extra shells × shell rate + triangles / 10 000 × triangle rate
//! total     = max(sum, minimum charge)
//! where weight_g = |metal volume mm³| × density_g_cm3 / 1000, the metal
//! volume being the model's minus the stones the geometry found (see
//! [`MetalRule`] and docs/geometry.md, "Stone rule").

use crate::money::{Currency, Money};
use serde::{Deserialize, Serialize};

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

/// The shop's pricing rules (configuration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PricingRules {
    /// Extra metal for sprues and losses, in thousandths (80 = 8 %).
    pub casting_allowance_permille: i64,
    pub casting_fee_minor: i64,
    pub finishing_per_cm2_minor: i64,
    pub per_extra_shell_minor: i64,
    pub per_10k_triangles_minor: i64,
    pub minimum_minor: i64,
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
        }
    }
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

/// Divides with rounding half away from zero (for non-negative operands: half up).
fn div_round(n: i128, d: i128) -> i64 {
    ((n + d / 2) / d) as i64
}

/// Metal weight in milligrams (mm³ × g/cm³ = mg), rounded to the milligram.
pub fn weight_mg(volume_mm3: f64, density_g_cm3: f64) -> i64 {
    (volume_mm3.abs() * density_g_cm3).round() as i64
}

/// Prices a model: the same inputs always give the same kopecks.
pub fn price(
    input: &PriceInput,
    material: &MaterialSnapshot,
    rules: &PricingRules,
) -> (Money, Breakdown) {
    let mg = weight_mg(input.volume_mm3, material.density_g_cm3) as i128;
    let metal = div_round(
        mg * material.price_per_gram_minor as i128
            * (1000 + rules.casting_allowance_permille) as i128,
        1_000_000,
    );
    let area_cm2_x100 = (input.area_mm2.abs()).round() as i128; // mm² = cm² × 100
    let finishing = div_round(area_cm2_x100 * rules.finishing_per_cm2_minor as i128, 100);
    let complexity = input.shells.saturating_sub(1) as i64 * rules.per_extra_shell_minor
        + div_round(
            input.triangles as i128 * rules.per_10k_triangles_minor as i128,
            10_000,
        );
    let mut lines = vec![
        Line {
            code: "metal".into(),
            amount_minor: metal,
        },
        Line {
            code: "casting".into(),
            amount_minor: rules.casting_fee_minor,
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
    let sum: i64 = lines.iter().map(|l| l.amount_minor).sum();
    if sum < rules.minimum_minor {
        lines.push(Line {
            code: "minimum_charge_top_up".into(),
            amount_minor: rules.minimum_minor - sum,
        });
    }
    let total = lines.iter().map(|l| l.amount_minor).sum();
    (
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
    )
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
        let (total, b) = price(&input, &gold(), &PricingRules::default());
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
        let (total, b) = price(&input, &gold(), &PricingRules::default());
        assert_eq!(total.minor, PricingRules::default().minimum_minor);
        assert_eq!(b.lines.last().unwrap().code, "minimum_charge_top_up");
        assert_eq!(b.weight_g, 0.013);
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
