//! Pricing workers: stateless consumers of the `pricing.jobs` work queue. Each
//! job names a stored model and a material snapshot; the worker analyses the
//! geometry, prices it and publishes the result. Any number can run at once.

use adapters::Bus;
use adapters::bus::{DeliveryError, Handler, QueueSpec};
use async_trait::async_trait;
use domain::events::{
    BBox, Envelope, Event as _, GeometrySummary, PricingCompleted, PricingFailed, PricingRequested,
    Quote,
};
use domain::price::{self, PriceInput, PricingRules};
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;
use std::sync::Arc;
use std::time::Instant;

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
    pub workers: usize,
    pub rules: PricingRules,
    pub limits: geometry::Limits,
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
}

impl Pricing {
    pub async fn build(config: &PricingConfig, bus: Arc<dyn Bus>) -> anyhow::Result<Pricing> {
        bus.declare(&QUEUE).await?;
        let store = adapters::objects::open(&config.objects_url)?;
        let worker = Worker {
            store,
            bus: bus.clone(),
            rules: config.rules.clone(),
            limits: config.limits,
        };
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

/// The geometry as every service reports it, with the metal weight for a density.
pub fn summary(a: &geometry::Analysis, density_g_cm3: f64) -> GeometrySummary {
    let [x, y, z] = a.bbox_size();
    GeometrySummary {
        format: a.format.label().to_string(),
        triangles: a.triangles,
        vertices: a.vertices,
        volume_mm3: a.volume_mm3,
        area_mm2: a.area_mm2,
        bbox_mm: BBox { x, y, z },
        shells: a.shells,
        watertight: a.watertight(),
        boundary_edges: a.boundary_edges,
        nonmanifold_edges: a.nonmanifold_edges,
        weight_g: price::weight_mg(a.volume_mm3, density_g_cm3) as f64 / 1000.0,
    }
}

/// Why a model cannot be cast, in words a person can act on; None if it can.
pub fn unmakeable(a: &geometry::Analysis) -> Option<String> {
    let open = a.boundary_edges;
    let nm = a.nonmanifold_edges;
    match (open, nm) {
        (0, 0) if a.volume_mm3.abs() < 1e-9 => Some("the model encloses no volume".into()),
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

/// Analyses and prices a model: the result event, completed or failed.
pub fn evaluate(
    bytes: &[u8],
    job: &PricingRequested,
    rules: &PricingRules,
    limits: &geometry::Limits,
) -> Result<PricingCompleted, PricingFailed> {
    let started = Instant::now();
    let fail = |code: &str, reason: String, geometry: Option<GeometrySummary>| PricingFailed {
        order_id: job.order_id,
        code: code.into(),
        reason,
        geometry,
    };
    let a = geometry::analyze(bytes, limits).map_err(|e| {
        let code = match e {
            geometry::GeometryError::TooLarge { .. }
            | geometry::GeometryError::TooManyTriangles { .. } => "too_large",
            geometry::GeometryError::Unsupported(_) => "unsupported_format",
            _ => "unreadable",
        };
        fail(code, e.to_string(), None)
    })?;
    let geometry = summary(&a, job.material.density_g_cm3);
    if let Some(reason) = unmakeable(&a) {
        return Err(fail("not_watertight", reason, Some(geometry)));
    }
    let input = PriceInput {
        volume_mm3: a.volume_mm3,
        area_mm2: a.area_mm2,
        shells: a.shells,
        triangles: a.triangles,
    };
    let (total, breakdown) = price::price(&input, &job.material, rules);
    Ok(PricingCompleted {
        order_id: job.order_id,
        geometry,
        quote: Quote {
            total,
            breakdown,
            material: job.material.clone(),
        },
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

#[async_trait]
impl Handler for Worker {
    #[tracing::instrument(name = "pricing.job", skip_all, fields(order_id = %env.order_id, event_id = %env.event_id))]
    async fn handle(&self, env: Envelope) -> Result<(), DeliveryError> {
        let job: PricingRequested = env
            .decode()
            .map_err(|e| DeliveryError::Reject(e.to_string()))?;
        let bytes = self
            .store
            .get(&ObjectPath::from(job.object_key.as_str()))
            .await
            .map_err(|e| {
                DeliveryError::Retry(anyhow::anyhow!("reading model {}: {e}", job.object_key))
            })?
            .bytes()
            .await
            .map_err(|e| {
                DeliveryError::Retry(anyhow::anyhow!("reading model {}: {e}", job.object_key))
            })?;
        let (rules, limits, j) = (self.rules.clone(), self.limits, job.clone());
        let span = tracing::Span::current();
        let outcome = tokio::task::spawn_blocking(move || {
            span.in_scope(|| evaluate(&bytes, &j, &rules, &limits))
        })
        .await
        .map_err(|e| DeliveryError::Retry(anyhow::anyhow!("analysis crashed: {e}")))?;
        let out = match &outcome {
            Ok(done) => {
                tracing::info!(
                    total_minor = done.quote.total.minor,
                    weight_g = done.geometry.weight_g,
                    triangles = done.geometry.triangles,
                    duration_ms = done.duration_ms,
                    "model priced"
                );
                Envelope::new("pricing", done)
            }
            Err(failed) => {
                tracing::info!(code = %failed.code, reason = %failed.reason, "model rejected");
                Envelope::new("pricing", failed)
            }
        };
        // Acked only once the result is durable on the bus.
        self.bus.publish(&out).await.map_err(DeliveryError::Retry)
    }
}
