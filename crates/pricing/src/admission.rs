//! Admission of pricing jobs by memory: a job may start measuring only when
//! its estimated peak memory fits in what is left of the workers' budget (a
//! weighted semaphore in MiB), so that N bombs or N large models at once
//! cannot take more than the budget between them, whatever the number of
//! workers. The geometry's own budgets (`geometry::Limits`: bytes,
//! triangles, vertices, inflated bytes) bound each job; this bounds their sum.
//!
//! Also the Russian words for the refusals that start here (the reasons flow
//! as one string, so they carry both languages).

use std::sync::Arc;

use geometry::{Format, GeometryError, Limits};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The default memory budget of one process' pricing workers, MiB.
pub const DEFAULT_BUDGET_MIB: u64 = 2048;

/// Bytes of peak memory per triangle of a job, beyond the file itself: the
/// welded mesh (12 B per triangle, 24 B per vertex), the analysis' edge,
/// union-find and per-face buffers (~45 B per triangle measured on the 2M
/// torus: peak 181 MiB for a 95 MiB file) and the preview, with room.
const BYTES_PER_TRIANGLE: u64 = 128;
/// Memory every job needs whatever its size (tables, the preview picture).
const BASE_BYTES: u64 = 32 << 20;
/// The most triangles a byte of each format can describe (the densest
/// spelling): 50 B per binary STL record, ~90 B per ASCII STL facet, 8 B
/// per OBJ `f 1 2 3` line, 13 B per binary PLY face; a 3MF inflates up to
/// ~1000× (deflate's limit) into at least ~50 B of XML per triangle.
fn most_triangles(format: Option<Format>, size: u64) -> u64 {
    match format {
        Some(Format::StlBinary) => size / 50,
        Some(Format::StlAscii) => size / 90,
        Some(Format::Obj) => size / 8,
        Some(Format::Ply) => size / 13,
        Some(Format::ThreeMf) => size.saturating_mul(1000 / 50),
        None => 0,
    }
}

/// The estimated peak memory of measuring `bytes`, MiB: the file, plus what
/// the most triangles it could hold within the limits need.
pub fn estimate_mib(bytes: &[u8], limits: &Limits) -> u64 {
    let size = bytes.len() as u64;
    let format = geometry::detect(bytes).ok();
    let triangles = most_triangles(format, size).min(limits.max_triangles);
    let need = size
        .saturating_add(BASE_BYTES)
        .saturating_add(triangles.saturating_mul(BYTES_PER_TRIANGLE));
    need.div_ceil(1 << 20)
}

/// The workers' memory budget.
#[derive(Clone)]
pub struct Admission {
    permits: Arc<Semaphore>,
    budget_mib: u64,
}

/// A job's share of the budget, returned when dropped.
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
    /// MiB held.
    pub mib: u64,
}

impl Admission {
    /// A budget of `budget_mib` MiB (at least 1).
    pub fn new(budget_mib: u64) -> Self {
        let budget_mib = budget_mib.clamp(1, u32::MAX as u64);
        Admission {
            permits: Arc::new(Semaphore::new(budget_mib as usize)),
            budget_mib,
        }
    }

    /// The whole budget, MiB.
    pub fn budget_mib(&self) -> u64 {
        self.budget_mib
    }

    /// MiB not held by any job now.
    pub fn available_mib(&self) -> u64 {
        self.permits.available_permits() as u64
    }

    /// Waits until `need_mib` fits (a job larger than the whole budget waits
    /// for all of it and then runs alone), then holds it until dropped.
    /// Waiters are served in order, so a large job is not starved by small ones.
    pub async fn admit(&self, need_mib: u64) -> Admitted {
        let mib = need_mib.clamp(1, self.budget_mib);
        let permit = self
            .permits
            .clone()
            .acquire_many_owned(mib as u32)
            .await
            .expect("the admission semaphore is never closed");
        Admitted {
            _permit: permit,
            mib,
        }
    }
}

impl Default for Admission {
    fn default() -> Self {
        Admission::new(DEFAULT_BUDGET_MIB)
    }
}

/// The reason for a geometry error in English and, for the budgets' errors,
/// in Russian too ("English / Русский").
pub fn reason(e: &GeometryError) -> String {
    let ru = match e {
        GeometryError::Expands { format, limit_mb } => format!(
            "файл {format} при распаковке превышает {limit_mb} МБ — больше, чем нужно любой \
             модели в пределах ограничений"
        ),
        GeometryError::TooManyVertices { limit } => {
            format!("в модели больше {limit} вершин (не более трёх на допустимый треугольник)")
        }
        GeometryError::TooManyTriangles { found, limit } => {
            format!("в модели {found} треугольников, больше предела {limit}")
        }
        GeometryError::TooLarge { size, limit } => {
            format!("файл занимает {size} байт, больше предела {limit} байт")
        }
        _ => return e.to_string(),
    };
    format!("{e} / {ru}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn estimates_follow_the_format_and_stop_at_the_limits() {
        let limits = Limits::default();
        // A 2M-triangle binary STL: the file plus 2M triangles.
        let mut stl = vec![0u8; 84 + 50 * 2_000_000];
        stl[80..84].copy_from_slice(&2_000_000u32.to_le_bytes());
        let need = estimate_mib(&stl, &limits);
        assert_eq!(
            need,
            (100_000_084u64 + (32 << 20) + 128 * 2_000_000).div_ceil(1 << 20)
        );
        // A 158 kB 3MF could inflate to the triangle limit: the limit counts.
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/models/geometry_bracelet_52mm.3mf"
        );
        let tmf = std::fs::read(path).unwrap();
        assert_eq!(
            estimate_mib(&tmf, &limits),
            (tmf.len() as u64 + (32 << 20) + 128 * 2_000_000).div_ceil(1 << 20)
        );
        // Bytes no parser takes are refused at once: the file and the base.
        let mut zip = b"PK\x03\x04".to_vec();
        zip.resize(1 << 20, 0);
        assert_eq!(estimate_mib(&zip, &limits), 33);
        // Unknown bytes: only the file and the base.
        assert_eq!(estimate_mib(&[7u8; 1000], &limits), 33);
    }

    #[tokio::test]
    async fn jobs_wait_for_their_share_of_the_budget() {
        let a = Admission::new(1000);
        let first = a.admit(600).await;
        assert_eq!(a.available_mib(), 400);
        // A second 600 MiB job waits until the first is done.
        let a2 = a.clone();
        let second = tokio::spawn(async move { a2.admit(600).await.mib });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!second.is_finished());
        // A job larger than the budget is held to all of it.
        drop(first);
        assert_eq!(second.await.unwrap(), 600);
        assert_eq!(a.admit(5000).await.mib, 1000);
    }

    #[test]
    fn budget_refusals_read_in_both_languages() {
        let r = reason(&GeometryError::Expands {
            format: "3MF",
            limit_mb: 529,
        });
        assert!(r.starts_with("the 3MF expands beyond 529 MB"), "{r}");
        assert!(
            r.contains("файл 3MF при распаковке превышает 529 МБ"),
            "{r}"
        );
    }
}
