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
    /// "unreadable", "too_large", "unsupported_format", "not_watertight".
    pub code: &'static str,
    pub reason: String,
    pub geometry: Option<GeometrySummary>,
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
            weight_g: price::weight_mg(self.metal_volume(), density_g_cm3) as f64 / 1000.0,
            metal_volume_mm3: Some(self.metal_volume()),
            stones: self.stones,
            metal_rule: self.metal_rule,
            flipped_triangles: self.flipped_triangles,
            warnings: self.warnings.clone(),
        }
    }

    /// Why the model cannot be cast, in words a person can act on; None if it can.
    pub fn unmakeable(&self) -> Option<String> {
        match (self.boundary_edges, self.nonmanifold_edges) {
            (0, 0) if self.unreliable_volume.is_some() => self.unreliable_volume.clone(),
            (0, 0) if self.volume_mm3.abs() < 1e-9 => Some("the model encloses no volume".into()),
            (0, 0) => None,
            (o, 0) => Some(format!("not watertight: {o} open edges")),
            (0, n) => Some(format!(
                "not manifold: {n} edges are shared by more than two triangles"
            )),
            (o, n) => Some(format!(
                "not watertight: {o} open edges and {n} non-manifold edges"
            )),
        }
    }

    /// Prices the model in a material: the metal volume (stones left out, see
    /// [`MetalRule`]) is weighed. An inside-out model is priced by its absolute
    /// volume (the warning says so).
    pub fn quote(
        &self,
        material: &MaterialSnapshot,
        rules: &PricingRules,
    ) -> Result<(GeometrySummary, Quote), Unpriceable> {
        let geometry = self.summary(material.density_g_cm3);
        if let Some(reason) = self.unmakeable() {
            return Err(Unpriceable {
                code: if self.watertight() && self.unreliable_volume.is_some() {
                    "unreliable_volume"
                } else {
                    "not_watertight"
                },
                reason,
                geometry: Some(geometry),
            });
        }
        let input = PriceInput {
            volume_mm3: self.metal_volume(),
            area_mm2: self.area_mm2,
            shells: self.shells,
            triangles: self.triangles,
            stones: self.stones,
            metal_rule: self.metal_rule,
        };
        let (total, breakdown) = price::price(&input, material, rules);
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
    limits: geometry::Limits,
    metrics: adapters::metrics::Metrics,
    admission: admission::Admission,
}

impl Pricing {
    pub async fn build(config: &PricingConfig, bus: Arc<dyn Bus>) -> anyhow::Result<Pricing> {
        bus.declare(&QUEUE).await?;
        let store = adapters::objects::open_with(&config.objects_url, &config.s3)?.store;
        let worker = Worker {
            store,
            bus: bus.clone(),
            rules: config.rules.clone(),
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
            .and_then(|m| m.quote(&job.material, &self.rules));
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
                    geometry: u.geometry,
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
        let (g, q) = m.quote(&gold(), &PricingRules::default()).unwrap();
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

    #[test]
    fn a_measurement_cached_before_stones_weighs_the_whole_model() {
        let old = r#"{"format":"binary STL","triangles":12,"vertices":8,"volume_mm3":-1000.0,
            "area_mm2":600.0,"bbox_mm":{"x":10.0,"y":10.0,"z":10.0},"shells":1,
            "boundary_edges":0,"nonmanifold_edges":0,"warnings":[]}"#;
        let m: Measured = serde_json::from_str(old).unwrap();
        assert_eq!(m.metal_rule, MetalRule::WholeModel);
        assert_eq!(m.metal_volume(), 1000.0);
        let (g, _) = m.quote(&gold(), &PricingRules::default()).unwrap();
        assert_eq!(g.weight_g, 13.1);
    }
}
