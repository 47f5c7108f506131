//! Pricing workers: stateless consumers of the `pricing.jobs` work queue. Each
//! job names a stored model and a material snapshot; the worker measures the
//! geometry (or reads the measurement cached under the file's content hash),
//! prices it and publishes the result. Any number can run at once.

use adapters::Bus;
use adapters::bus::{DeliveryError, Handler, QueueSpec};
use async_trait::async_trait;
use domain::events::{
    BBox, Envelope, Event as _, GeometrySummary, PricingCompleted, PricingFailed, PricingRequested,
    Quote,
};
use domain::price::{self, MaterialSnapshot, MetalRule, PriceInput, PricingRules};
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;

pub mod admission;
pub mod casting;
pub use casting::{Casting, CastingEnvelope};

/// The work queue of pricing jobs.
pub const QUEUE: QueueSpec = QueueSpec {
    name: "pricing.jobs",
    bindings: &[PricingRequested::TYPE],
    delivery_limit: 5,
};

/// The workers' settings.
#[derive(Debug, Clone)]
pub struct PricingConfig {
    pub objects_url: String,
    /// S3 settings over the `AWS_*` variables (for an `s3://…` store).
    pub s3: adapters::objects::S3Options,
    pub workers: usize,
    pub rules: PricingRules,
    /// What each casting process can make, by material group.
    pub casting: Casting,
    pub limits: geometry::Limits,
    /// Memory the workers of this process may hold at once, MiB
    /// ([`admission`]; default [`admission::DEFAULT_BUDGET_MIB`]).
    pub memory_budget_mib: u64,
    /// Where job durations, model sizes and the measurement cache are counted.
    pub metrics: adapters::metrics::Metrics,
}

/// What the geometry says about a model, whatever it will be made of. The same
/// bytes always measure the same, so this is cached under their content hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    pub format: String,
    pub triangles: u64,
    pub vertices: u64,
    pub volume_mm3: f64,
    pub area_mm2: f64,
    pub bbox_mm: BBox,
    pub shells: u64,
    pub boundary_edges: u64,
    pub nonmanifold_edges: u64,
    pub warnings: Vec<String>,
    /// The volume to weigh as metal, mm³ (stones left out); measurements
    /// cached before it was recorded lack it and weigh |volume_mm3|.
    #[serde(default)]
    pub metal_volume_mm3: Option<f64>,
    #[serde(default)]
    pub stones: u64,
    #[serde(default)]
    pub stone_volume_mm3: f64,
    #[serde(default)]
    pub metal_rule: MetalRule,
    /// Triangles turned to make the winding consistent before measuring.
    #[serde(default)]
    pub flipped_triangles: u64,
    /// Why the analysis itself doubts the volume beyond open or non-manifold
    /// edges (non-orientable surfaces, shells counted twice, undecided
    /// nesting), in English and Russian; such a volume is never priced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreliable_volume: Option<String>,
}

impl From<&geometry::Analysis> for Measured {
    fn from(a: &geometry::Analysis) -> Self {
        let [x, y, z] = a.bbox_size();
        Measured {
            format: a.format.label().to_string(),
            triangles: a.triangles,
            vertices: a.vertices,
            volume_mm3: a.volume_mm3,
            area_mm2: a.area_mm2,
            bbox_mm: BBox { x, y, z },
            shells: a.shells,
            boundary_edges: a.boundary_edges,
            nonmanifold_edges: a.nonmanifold_edges,
            warnings: a.warnings.iter().map(|w| w.to_string()).collect(),
            metal_volume_mm3: Some(a.metal_volume_mm3),
            stones: a.stones,
            stone_volume_mm3: a.stone_volume_mm3,
            metal_rule: match a.metal_rule {
                geometry::MetalRule::SingleShell => MetalRule::SingleShell,
                geometry::MetalRule::AllShells => MetalRule::AllShells,
                geometry::MetalRule::StonesExcluded => MetalRule::StonesExcluded,
            },
            flipped_triangles: a.flipped_triangles,
            unreliable_volume: unreliable_volume(a),
        }
    }
}

/// Why the analysis' own warnings make its volume unfit to price, in
/// English and Russian (open and non-manifold edges are said by
/// [`Measured::unmakeable`] with their counts).
fn unreliable_volume(a: &geometry::Analysis) -> Option<String> {
    use geometry::Warning as W;
    let reasons: Vec<String> = a
        .volume_doubts()
        .into_iter()
        .filter_map(|w| match w {
            W::NonOrientable { shells } => Some(format!(
                "the surface cannot be oriented: {shells} part(s) have no inside and no outside \
                 (like a Möbius strip or a Klein bottle), so the model encloses no measurable \
                 volume; export it again as a closed solid / поверхность модели невозможно \
                 ориентировать: у частей ({shells}) нет внутренней и внешней стороны (как у ленты \
                 Мёбиуса или бутылки Клейна), поэтому объём не определён; экспортируйте модель \
                 заново как замкнутое тело"
            )),
            W::NestedShells { count } => Some(format!(
                "{count} shell(s) lie inside other shells, so their metal would be counted twice; \
                 merge them into one solid (boolean union) and upload again / оболочки ({count}) \
                 лежат внутри других, и их металл был бы посчитан дважды; объедините их в одно \
                 тело (булево объединение) и загрузите модель снова"
            )),
            W::ContainmentUndecided => Some(
                "the model has too many shells to tell which of them are hollows, so its volume \
                 is uncertain; merge the shells and upload again / в модели слишком много \
                 оболочек, чтобы определить, какие из них пустоты, поэтому её объём не \
                 определён; объедините оболочки и загрузите модель снова"
                    .to_string(),
            ),
            _ => None,
        })
        .collect();
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

/// Why a model cannot be priced: a machine code and a reason a person can act on.
#[derive(Debug, Clone, PartialEq)]
pub struct Unpriceable {
    /// "unreadable", "too_large", "unsupported_format", "not_watertight",
    /// "too_large_to_cast", "too_small_to_cast", "too_heavy_to_cast",
    /// "too_expensive", "material_out_of_range".
    pub code: &'static str,
    pub reason: String,
    /// Boxed: the error stays small next to a quote.
    pub geometry: Option<Box<GeometrySummary>>,
}

impl Measured {
    pub fn watertight(&self) -> bool {
        self.boundary_edges == 0 && self.nonmanifold_edges == 0 && self.triangles > 0
    }

    /// The volume weighed as metal, mm³: the model's with its stones left out
    /// (inside-out parts counted positive).
    pub fn metal_volume(&self) -> f64 {
        self.metal_volume_mm3.unwrap_or(self.volume_mm3).abs()
    }

    /// The geometry as every service reports it, with the metal weight for a density.
    pub fn summary(&self, density_g_cm3: f64) -> GeometrySummary {
        GeometrySummary {
            format: self.format.clone(),
            triangles: self.triangles,
            vertices: self.vertices,
            volume_mm3: self.volume_mm3,
            area_mm2: self.area_mm2,
            bbox_mm: self.bbox_mm,
            shells: self.shells,
            watertight: self.watertight(),
            boundary_edges: self.boundary_edges,
            nonmanifold_edges: self.nonmanifold_edges,
            weight_g: self.metal_g(density_g_cm3),
            metal_volume_mm3: Some(self.metal_volume()),
            stones: self.stones,
            metal_rule: self.metal_rule,
            flipped_triangles: self.flipped_triangles,
            warnings: self.warnings.clone(),
        }
    }

    /// The metal weight in grams for a density (to the milligram; a weight
    /// beyond any integer is shown as the float, one not finite as 0).
    fn metal_g(&self, density_g_cm3: f64) -> f64 {
        match price::weight_mg(self.metal_volume(), density_g_cm3) {
            Some(mg) => mg as f64 / 1000.0,
            None => Some(self.metal_volume() * density_g_cm3.abs() / 1000.0)
                .filter(|g| g.is_finite())
                .unwrap_or(0.0),
        }
    }

    /// Why the model cannot be cast, in words a person can act on (English,
    /// then Russian); None if it can.
    pub fn unmakeable(&self) -> Option<String> {
        let (en, ru) = match (self.boundary_edges, self.nonmanifold_edges) {
            // Already in both languages.
            (0, 0) if self.unreliable_volume.is_some() => return self.unreliable_volume.clone(),
            (0, 0) if self.volume_mm3.is_nan() || self.volume_mm3.abs() < 1e-9 => (
                "the model encloses no volume".to_string(),
                "модель не ограничивает никакого объёма".to_string(),
            ),
            (0, 0) => return None,
            (o, 0) => (
                format!("not watertight: {o} open edges"),
                format!("модель не замкнута: открытых рёбер — {o}"),
            ),
            (0, n) => (
                format!("not manifold: {n} edges are shared by more than two triangles"),
                format!(
                    "модель не многообразна: рёбер, общих для более чем двух треугольников, — {n}"
                ),
            ),
            (o, n) => (
                format!("not watertight: {o} open edges and {n} non-manifold edges"),
                format!("модель не замкнута: открытых рёбер — {o}, немногообразных рёбер — {n}"),
            ),
        };
        Some(casting::both(en, ru))
    }

    /// Prices the model in a material: the metal volume (stones left out, see
    /// [`MetalRule`]) is weighed. An inside-out model is priced by its absolute
    /// volume (the warning says so). A model that cannot be cast (open, outside
    /// its material's casting envelope, or priced beyond `rules.maximum_minor`)
    /// is [`Unpriceable`] with a reason in English and Russian.
    pub fn quote(
        &self,
        material: &MaterialSnapshot,
        rules: &PricingRules,
        casting: &Casting,
    ) -> Result<(GeometrySummary, Quote), Unpriceable> {
        let geometry = self.summary(material.density_g_cm3);
        let refuse = |(code, reason): (&'static str, String)| Unpriceable {
            code,
            reason,
            geometry: Some(Box::new(geometry.clone())),
        };
        if let Some(reason) = self.unmakeable() {
            let code = if self.watertight() && self.unreliable_volume.is_some() {
                "unreliable_volume"
            } else {
                "not_watertight"
            };
            return Err(refuse((code, reason)));
        }
        let envelope = casting.for_material(&material.code);
        let BBox { x, y, z } = self.bbox_mm;
        if let Some(outside) = casting::outside(envelope, [x, y, z]) {
            return Err(refuse(outside));
        }
        if let Some(field) = material.out_of_range() {
            return Err(refuse(casting::unpriced(&price::PriceError::OutOfRange(
                field,
            ))));
        }
        if let Some(heavy) = casting::too_heavy(envelope, geometry.weight_g) {
            return Err(refuse(heavy));
        }
        let input = PriceInput {
            volume_mm3: self.metal_volume(),
            area_mm2: self.area_mm2,
            shells: self.shells,
            triangles: self.triangles,
            stones: self.stones,
            metal_rule: self.metal_rule,
        };
        let (total, breakdown) =
            price::price(&input, material, rules).map_err(|e| refuse(casting::unpriced(&e)))?;
        Ok((
            geometry,
            Quote {
                total,
                breakdown,
                material: material.clone(),
            },
        ))
    }
}

fn unreadable(e: geometry::GeometryError) -> Unpriceable {
    let code = match e {
        geometry::GeometryError::TooLarge { .. }
        | geometry::GeometryError::TooManyTriangles { .. }
        | geometry::GeometryError::TooManyVertices { .. }
        | geometry::GeometryError::Expands { .. } => "too_large",
        geometry::GeometryError::Unsupported(_) => "unsupported_format",
        _ => "unreadable",
    };
    Unpriceable {
        code,
        reason: admission::reason(&e),
        geometry: None,
    }
}

/// Parses and measures a model.
pub fn measure(bytes: &[u8], limits: &geometry::Limits) -> Result<Measured, Unpriceable> {
    geometry::analyze(bytes, limits)
        .map(|a| Measured::from(&a))
        .map_err(unreadable)
}

/// Parses once, measures, and renders the preview picture (PNG).
pub fn measure_and_render(
    bytes: &[u8],
    limits: &geometry::Limits,
) -> Result<(Measured, Vec<u8>), Unpriceable> {
    let (format, mesh) = geometry::parse(bytes, limits).map_err(unreadable)?;
    let measured = Measured::from(&geometry::analyze_mesh(&mesh, format));
    Ok((measured, preview::render(&mesh)))
}

/// Where a content hash's measurement is cached, next to the models. The
/// version in the path changes whenever the analysis does (v2: stones and the
/// metal rule; v3: winding repaired, doubtful volumes refused), so a cached measurement is always the current analysis'.
pub fn measurement_key(content_sha256: &str) -> ObjectPath {
    ObjectPath::from(format!("measurements/v3/{content_sha256}.json"))
}

/// Where a content hash's preview picture is stored, next to the models.
pub fn preview_key(content_sha256: &str) -> ObjectPath {
    ObjectPath::from(format!("previews/{content_sha256}.png"))
}

/// A pricing worker pool.
pub struct Pricing {
    worker: Arc<Worker>,
    bus: Arc<dyn Bus>,
    workers: usize,
}

struct Worker {
    store: Arc<dyn ObjectStore>,
    bus: Arc<dyn Bus>,
    rules: PricingRules,
    casting: Casting,
    limits: geometry::Limits,
    metrics: adapters::metrics::Metrics,
    admission: admission::Admission,
}

impl Pricing {
    pub async fn build(config: &PricingConfig, bus: Arc<dyn Bus>) -> anyhow::Result<Pricing> {
        if let Some(key) = config.rules.out_of_range() {
            anyhow::bail!("pricing.rules.{key} is outside its allowed range (see docs/pricing.md)");
        }
        if let Some(key) = config.casting.invalid() {
            anyhow::bail!("{key} makes no sense (see docs/pricing.md)");
        }
        bus.declare(&QUEUE).await?;
        let store = adapters::objects::open_with(&config.objects_url, &config.s3)?.store;
        let worker = Worker {
            store,
            bus: bus.clone(),
            rules: config.rules.clone(),
            casting: config.casting.clone(),
            limits: config.limits,
            metrics: config.metrics.clone(),
            admission: admission::Admission::new(config.memory_budget_mib),
        };
        config.metrics.pricing_workers(config.workers.max(1));
        Ok(Pricing {
            worker: Arc::new(worker),
            bus,
            workers: config.workers.max(1),
        })
    }

    /// Starts consuming pricing jobs.
    pub async fn start(&self) -> anyhow::Result<()> {
        self.bus
            .consume(QUEUE.name, self.workers, self.worker.clone())
            .await
    }
}

fn retry(what: &str) -> impl Fn(object_store::Error) -> DeliveryError + '_ {
    move |e| DeliveryError::Retry(anyhow::anyhow!("{what}: {e}"))
}

impl Worker {
    /// The cached measurement of these bytes, if an earlier job made one.
    async fn cached(&self, sha: &str) -> Option<Measured> {
        let got = self
            .store
            .get(&measurement_key(sha))
            .await
            .ok()?
            .bytes()
            .await
            .ok()?;
        serde_json::from_slice(&got).ok()
    }

    async fn measure(
        &self,
        job: &PricingRequested,
    ) -> Result<Result<Measured, Unpriceable>, DeliveryError> {
        let cached = self.cached(&job.content_sha256).await;
        self.metrics.cache_lookup("measurements", cached.is_some());
        if let Some(m) = cached {
            tracing::info!(content_sha256 = %job.content_sha256, "measurement reused");
            return Ok(Ok(m));
        }
        let key = ObjectPath::from(job.object_key.as_str());
        let bytes = self
            .store
            .get(&key)
            .await
            .map_err(retry("reading the model"))?
            .bytes()
            .await
            .map_err(retry("reading the model"))?;
        let size = bytes.len() as u64;
        let limits = self.limits;
        // Held until the measurement is done: the jobs measuring at once
        // never need more than the budget between them.
        let _admitted = self
            .admission
            .admit(admission::estimate_mib(&bytes, &limits))
            .await;
        let span = tracing::Span::current();
        let measured = tokio::task::spawn_blocking(move || {
            span.in_scope(|| measure_and_render(&bytes, &limits))
        })
        .await
        .map_err(|e| DeliveryError::Retry(anyhow::anyhow!("analysis crashed: {e}")))?;
        let (m, png) = match measured {
            Ok(done) => done,
            Err(u) => {
                self.metrics.pricing_model(size, None);
                return Ok(Err(u));
            }
        };
        self.metrics.pricing_model(size, Some(m.triangles));
        // The picture first: a cached measurement promises its picture exists.
        self.store
            .put(&preview_key(&job.content_sha256), png.into())
            .await
            .map_err(retry("storing the preview"))?;
        let json = serde_json::to_vec(&m).expect("measurement serialises");
        if let Err(e) = self
            .store
            .put(&measurement_key(&job.content_sha256), json.into())
            .await
        {
            tracing::warn!(error = %e, "could not cache the measurement");
        }
        Ok(Ok(m))
    }
}

#[async_trait]
impl Handler for Worker {
    #[tracing::instrument(name = "pricing.job", skip_all, fields(order_id = %env.order_id, event_id = %env.event_id))]
    async fn handle(&self, env: Envelope) -> Result<(), DeliveryError> {
        let _busy = self.metrics.pricing_job();
        let started = Instant::now();
        let job: PricingRequested = env
            .decode()
            .map_err(|e| DeliveryError::Reject(e.to_string()))?;
        let outcome = self
            .measure(&job)
            .await?
            .and_then(|m| m.quote(&job.material, &self.rules, &self.casting));
        let seconds = started.elapsed().as_secs_f64();
        let out = match outcome {
            Ok((geometry, quote)) => {
                self.metrics.pricing_done("priced", seconds);
                let duration_ms = started.elapsed().as_millis() as u64;
                tracing::info!(
                    total_minor = quote.total.minor,
                    weight_g = geometry.weight_g,
                    triangles = geometry.triangles,
                    duration_ms,
                    "model priced"
                );
                Envelope::new(
                    "pricing",
                    &PricingCompleted {
                        order_id: job.order_id,
                        geometry,
                        quote,
                        duration_ms,
                    },
                )
            }
            Err(u) => {
                self.metrics.pricing_done("rejected", seconds);
                tracing::info!(code = u.code, reason = %u.reason, "model rejected");
                let failed = PricingFailed {
                    order_id: job.order_id,
                    code: u.code.into(),
                    reason: u.reason,
                    geometry: u.geometry.map(|g| *g),
                };
                Envelope::new("pricing", &failed)
            }
        };
        // Acked only once the result is durable on the bus.
        self.bus.publish(&out).await.map_err(DeliveryError::Retry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::money::Currency;

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
    fn the_x1_ring_is_priced_by_its_band_without_its_stones() {
        // shared/models/jewelry_JP004A-X1_ring_with_stones.obj: a band of
        // 2,076.40 mm³ and 7 set brilliants (each written as 3 shells; see
        // geometry's tests/it/real.rs for why those are stones). The whole
        // model is 2,107.27 mm³; only the band is gold: 2,076.4003 × 13.1 =
        // 27,200.8 mg, so 27.201 g, not 27.605 g.
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/models/jewelry_JP004A-X1_ring_with_stones.obj"
        );
        let bytes = std::fs::read(path).unwrap();
        let m = measure(&bytes, &geometry::Limits::default()).unwrap();
        assert_eq!((m.stones, m.metal_rule), (7, MetalRule::StonesExcluded));
        assert!((m.volume_mm3 - 2107.273).abs() < 1e-3, "{}", m.volume_mm3);
        let (g, q) = m
            .quote(&gold(), &PricingRules::default(), &Casting::default())
            .unwrap();
        assert_eq!(g.weight_g, 27.201);
        assert_eq!(q.breakdown.weight_g, 27.201);
        assert_eq!(
            (
                g.stones,
                g.metal_rule,
                q.breakdown.stones,
                q.breakdown.metal_rule
            ),
            (7, MetalRule::StonesExcluded, 7, MetalRule::StonesExcluded)
        );
        assert!((q.breakdown.metal_volume_mm3.unwrap() - 2076.4003).abs() < 1e-3);
        // metal = 27.201 g × 7 500,00 ₽ × 1.08
        assert_eq!(q.breakdown.lines[0].amount_minor, 22_032_810);
    }

    /// A closed box of these extents, as measured.
    fn solid(x: f64, y: f64, z: f64) -> Measured {
        Measured {
            format: "binary STL".into(),
            triangles: 12,
            vertices: 8,
            volume_mm3: x * y * z,
            area_mm2: 2.0 * (x * y + y * z + z * x),
            bbox_mm: BBox { x, y, z },
            shells: 1,
            boundary_edges: 0,
            nonmanifold_edges: 0,
            warnings: vec![],
            metal_volume_mm3: None,
            stones: 0,
            stone_volume_mm3: 0.0,
            metal_rule: MetalRule::SingleShell,
            flipped_triangles: 0,
            unreliable_volume: None,
        }
    }

    #[test]
    fn a_100_m_gold_cube_is_too_large_to_cast_not_a_minimum_charge() {
        let rules = PricingRules::default();
        let casting = Casting::default();
        let u = solid(100_000.0, 100_000.0, 100_000.0)
            .quote(&gold(), &rules, &casting)
            .unwrap_err();
        assert_eq!(u.code, "too_large_to_cast");
        assert_eq!(
            u.reason,
            "too large to cast: 100,000 × 100,000 × 100,000 mm, this process takes at most \
             120 × 120 × 80 mm / слишком большая для литья: 100\u{a0}000 × 100\u{a0}000 × \
             100\u{a0}000 мм, этот процесс принимает не более 120 × 120 × 80 мм"
        );
        let g = u.geometry.unwrap();
        assert!((g.weight_g - 1.31e13).abs() < 1.0, "{}", g.weight_g);
        // Even with no size limit, the price is refused, never wrapped.
        let open = Casting {
            default: CastingEnvelope {
                max_mm: [1e12; 3],
                max_metal_g: 1e30,
                ..CastingEnvelope::default()
            },
            groups: Default::default(),
        };
        let u = solid(100_000.0, 100_000.0, 100_000.0)
            .quote(&gold(), &rules, &open)
            .unwrap_err();
        assert_eq!(u.code, "too_expensive");
        assert!(
            u.reason.contains("1,000,000,000.00\u{a0}₽") && u.reason.contains("свяжитесь с нами"),
            "{}",
            u.reason
        );
    }

    #[test]
    fn tiny_heavy_and_mispriced_models_are_refused_with_a_reason() {
        let rules = PricingRules::default();
        let casting = Casting::default();
        let u = solid(0.2, 0.2, 0.2)
            .quote(&gold(), &rules, &casting)
            .unwrap_err();
        assert_eq!(u.code, "too_small_to_cast");
        assert!(
            u.reason
                .starts_with("too small to cast: 0.2 × 0.2 × 0.2 mm"),
            "{}",
            u.reason
        );
        // 110 × 110 × 70 mm fits the flask but is 11 kg of gold.
        let u = solid(110.0, 70.0, 110.0)
            .quote(&gold(), &rules, &casting)
            .unwrap_err();
        assert_eq!(u.code, "too_heavy_to_cast");
        assert!(
            u.reason.starts_with(
                "too heavy to cast: 11,095.7 g of metal, this process takes at most 1,000 g"
            ) && u.reason.contains("11\u{a0}095,7 г металла"),
            "{}",
            u.reason
        );
        // A material saved before its ranges were enforced.
        let mut m = gold();
        m.price_per_gram_minor = i64::MAX;
        let u = solid(10.0, 10.0, 10.0)
            .quote(&m, &rules, &casting)
            .unwrap_err();
        assert_eq!(u.code, "material_out_of_range");
        assert!(u.reason.contains("price_per_gram_minor"), "{}", u.reason);
        // The reason of an open model is in both languages too.
        let mut open = solid(10.0, 10.0, 10.0);
        open.boundary_edges = 64;
        let u = open.quote(&gold(), &rules, &casting).unwrap_err();
        assert_eq!(
            (u.code, u.reason.as_str()),
            (
                "not_watertight",
                "not watertight: 64 open edges / модель не замкнута: открытых рёбер — 64"
            )
        );
    }

    use proptest::prelude::*;

    /// 0, tiny, huge (to 1e30), negative, NaN and infinities.
    fn extreme() -> impl Strategy<Value = f64> {
        prop_oneof![
            Just(0.0),
            (-3.0..30.0f64).prop_map(|e| 10f64.powf(e)),
            (-3.0..30.0f64).prop_map(|e| -(10f64.powf(e))),
            0.0..200.0f64,
            proptest::num::f64::ANY,
        ]
    }

    fn count() -> impl Strategy<Value = u64> {
        prop_oneof![0..100u64, 0..=u64::from(u32::MAX), any::<u64>()]
    }

    fn measured() -> impl Strategy<Value = Measured> {
        (
            (extreme(), extreme(), extreme()),
            (extreme(), extreme()),
            (count(), count(), count()),
            (0..3u64, 0..3u64),
        )
            .prop_map(
                |((x, y, z), (volume, area), (shells, triangles, stones), (open, nm))| Measured {
                    triangles,
                    volume_mm3: volume,
                    area_mm2: area,
                    bbox_mm: BBox { x, y, z },
                    shells,
                    stones,
                    boundary_edges: open,
                    nonmanifold_edges: nm,
                    metal_volume_mm3: Some(volume),
                    ..solid(1.0, 1.0, 1.0)
                },
            )
    }

    fn material() -> impl Strategy<Value = MaterialSnapshot> {
        (
            price::DENSITY_G_CM3,
            price::PRICE_PER_GRAM_MINOR,
            prop_oneof![Just("AU585Y"), Just("AG925"), Just("PT950"), Just("X")],
        )
            .prop_map(|(d, p, code)| MaterialSnapshot {
                code: code.into(),
                density_g_cm3: d,
                price_per_gram_minor: p,
                ..gold()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Any geometry in any material within its ranges: no panic; either a
        /// quote inside its envelope whose lines are ≥ 0 and sum to a total no
        /// more than the maximum, or a refusal with a reason in both languages.
        #[test]
        fn any_measurement_is_quoted_soundly_or_refused(m in measured(), material in material()) {
            let rules = PricingRules::default();
            let casting = Casting::default();
            match m.quote(&material, &rules, &casting) {
                Ok((g, q)) => {
                    let lines = &q.breakdown.lines;
                    prop_assert!(lines.iter().all(|l| l.amount_minor >= 0));
                    prop_assert_eq!(
                        lines.iter().try_fold(0i64, |a, l| a.checked_add(l.amount_minor)),
                        Some(q.total.minor)
                    );
                    prop_assert!(q.total.minor <= rules.maximum_minor);
                    prop_assert!(q.total.minor >= rules.minimum_minor);
                    let e = casting.for_material(&material.code);
                    prop_assert!(g.weight_g <= e.max_metal_g);
                    prop_assert!(casting::outside(e, [m.bbox_mm.x, m.bbox_mm.y, m.bbox_mm.z]).is_none());
                    prop_assert!(m.watertight());
                }
                Err(u) => {
                    prop_assert!(u.reason.contains(" / "), "{}", u.reason);
                    let g = u.geometry.expect("the geometry travels with the refusal");
                    // Everything in the event must survive JSON (NaN does not).
                    prop_assert!(g.weight_g.is_finite() && g.weight_g >= 0.0);
                }
            }
        }

        /// Inside the envelope, a larger volume never costs less.
        #[test]
        fn a_heavier_piece_never_costs_less(
            small in 1.0..10_000.0f64,
            factor in 1.0..100.0f64,
            material in material(),
        ) {
            let (rules, casting) = (PricingRules::default(), Casting::default());
            let at = |v: f64| {
                let m = Measured { volume_mm3: v, metal_volume_mm3: Some(v), ..solid(50.0, 50.0, 50.0) };
                m.quote(&material, &rules, &casting)
            };
            match (at(small), at(small * factor)) {
                (Ok((_, a)), Ok((_, b))) => prop_assert!(b.total.minor >= a.total.minor),
                (Ok(_), Err(u)) => prop_assert!(u.code == "too_heavy_to_cast" || u.code == "too_expensive", "{}", u.code),
                (Err(u), Ok(_)) => prop_assert!(false, "the lighter piece was refused: {}", u.reason),
                (Err(_), Err(_)) => {}
            }
        }
    }

    #[test]
    fn a_measurement_cached_before_stones_weighs_the_whole_model() {
        let old = r#"{"format":"binary STL","triangles":12,"vertices":8,"volume_mm3":-1000.0,
            "area_mm2":600.0,"bbox_mm":{"x":10.0,"y":10.0,"z":10.0},"shells":1,
            "boundary_edges":0,"nonmanifold_edges":0,"warnings":[]}"#;
        let m: Measured = serde_json::from_str(old).unwrap();
        assert_eq!(m.metal_rule, MetalRule::WholeModel);
        assert_eq!(m.metal_volume(), 1000.0);
        let (g, _) = m
            .quote(&gold(), &PricingRules::default(), &Casting::default())
            .unwrap();
        assert_eq!(g.weight_g, 13.1);
    }
}
