//! The indexed triangle mesh every parser produces, and the welding builder
//! that produces it.

use crate::GeometryError;

/// An indexed triangle mesh in millimetres. Positions are welded: corners whose
/// coordinates agree to 1e-8 mm share one index (the first one's coordinates).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mesh {
    /// Distinct vertex positions (every one is used by at least one triangle
    /// unless the file listed unused vertices).
    pub positions: Vec<[f64; 3]>,
    /// Triangles as indices into `positions`, in the file's winding.
    pub triangles: Vec<[u32; 3]>,
}

const EMPTY: u64 = u64::MAX;

/// Builds a [`Mesh`], welding identical positions with an open-addressing hash
/// table over the coordinates' bit patterns, and counting triangles against the
/// limit so that a file that is too large stops growing memory at the limit.
pub(crate) struct MeshBuilder {
    positions: Vec<[f64; 3]>,
    /// Slots: hash tag (high 32 bits) and vertex index (low 32 bits); the tag
    /// spares most probes a look at the positions.
    table: Vec<u64>,
    shift: u32,
    triangles: Vec<[u32; 3]>,
    /// Every triangle seen, stored or not.
    seen: u64,
    max_triangles: u64,
}

/// Welding grid: positions that round to the same multiple of 1e-8 mm (10 nm,
/// far below any manufacturing tolerance) are one vertex. Exact duplicates
/// always weld; so does float noise around zero such as 3e-9 vs 0, which CAD
/// exporters leave and which would otherwise split an edge (this is also the
/// rule trimesh's `merge_vertices` applies, so edge counts agree with it).
const GRID: f64 = 1e8;
/// Larger coordinates are refused (they cannot be millimetres of jewellery).
pub(crate) const MAX_COORD: f64 = 1e10;

#[inline]
fn key(p: &[f64; 3]) -> [u64; 3] {
    p.map(|c| {
        let y = c * GRID;
        // Round half away from zero with a truncating cast (no libm call).
        (y + 0.5f64.copysign(y)) as i64 as u64
    })
}

#[inline]
fn hash(k: &[u64; 3]) -> u64 {
    let mut h = k[0].wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h = (h ^ k[1].rotate_left(21)).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    h = (h ^ k[2].rotate_left(42)).wrapping_mul(0x1656_67B1_9E37_79F9);
    h ^ (h >> 29)
}

impl MeshBuilder {
    /// `expected_vertices` sizes the first table (it grows as needed);
    /// `expected_triangles` is reserved only up to the limit.
    pub(crate) fn new(
        expected_vertices: usize,
        expected_triangles: usize,
        max_triangles: u64,
    ) -> Self {
        let cap = (expected_vertices.max(8) * 2).next_power_of_two();
        let reserve = (expected_triangles as u64).min(max_triangles).min(1 << 31) as usize;
        MeshBuilder {
            positions: Vec::with_capacity(expected_vertices),
            table: vec![EMPTY; cap],
            shift: 64 - cap.trailing_zeros(),
            triangles: Vec::with_capacity(reserve),
            seen: 0,
            max_triangles,
        }
    }

    /// The welded index of a position. Non-finite coordinates are refused.
    #[inline]
    pub(crate) fn vertex(
        &mut self,
        p: [f64; 3],
        format: &'static str,
    ) -> Result<u32, GeometryError> {
        if !(p[0].abs() < MAX_COORD && p[1].abs() < MAX_COORD && p[2].abs() < MAX_COORD) {
            if p.iter().all(|c| c.is_finite()) {
                return Err(GeometryError::Malformed {
                    format,
                    message: format!(
                        "a vertex coordinate ({} {} {}) is beyond 1e10; is the model in millimetres?",
                        p[0], p[1], p[2]
                    ),
                });
            }
            return Err(GeometryError::Malformed {
                format,
                message: format!(
                    "a vertex has a coordinate that is not a finite number ({} {} {})",
                    p[0], p[1], p[2]
                ),
            });
        }
        let k = key(&p);
        let mask = self.table.len() - 1;
        let h = hash(&k);
        let tag = h << 32;
        let mut slot = (h >> self.shift) as usize;
        loop {
            let e = self.table[slot];
            if e == EMPTY {
                break;
            }
            if e & 0xFFFF_FFFF_0000_0000 == tag {
                let idx = e as u32;
                if key(&self.positions[idx as usize]) == k {
                    return Ok(idx);
                }
            }
            slot = (slot + 1) & mask;
        }
        let idx = self.positions.len();
        if idx >= u32::MAX as usize {
            return Err(GeometryError::Malformed {
                format,
                message: "more than 4 billion distinct vertices".into(),
            });
        }
        self.table[slot] = tag | idx as u64;
        self.positions.push(p);
        if self.positions.len() * 2 > self.table.len() {
            self.grow();
        }
        Ok(idx as u32)
    }

    fn grow(&mut self) {
        let cap = self.table.len() * 2;
        self.table = vec![EMPTY; cap];
        self.shift = 64 - cap.trailing_zeros();
        let mask = cap - 1;
        for (i, p) in self.positions.iter().enumerate() {
            let h = hash(&key(p));
            let mut slot = (h >> self.shift) as usize;
            while self.table[slot] != EMPTY {
                slot = (slot + 1) & mask;
            }
            self.table[slot] = (h << 32) | i as u64;
        }
    }

    /// Adds a triangle by welded indices. Past the limit it is only counted.
    #[inline]
    pub(crate) fn triangle(&mut self, t: [u32; 3]) {
        self.seen += 1;
        if self.seen <= self.max_triangles {
            self.triangles.push(t);
        }
    }

    /// Replaces the triangles with ones already indexed by this builder
    /// (parsers that read all faces first).
    pub(crate) fn set_triangles(&mut self, tris: Vec<[u32; 3]>) {
        self.seen = tris.len() as u64;
        self.triangles = tris;
    }

    /// The finished mesh, or the limit error with the full count.
    pub(crate) fn finish(self) -> Result<Mesh, GeometryError> {
        if self.seen > self.max_triangles {
            return Err(GeometryError::TooManyTriangles {
                found: self.seen,
                limit: self.max_triangles,
            });
        }
        if self.seen == 0 {
            return Err(GeometryError::NoTriangles);
        }
        Ok(Mesh {
            positions: self.positions,
            triangles: self.triangles,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welds_identical_and_signed_zero() {
        let mut b = MeshBuilder::new(0, 0, 10);
        let a = b.vertex([0.0, 1.0, 2.0], "t").unwrap();
        let c = b.vertex([-0.0, 1.0, 2.0], "t").unwrap();
        let d = b.vertex([0.0, 1.0, 2.000001], "t").unwrap();
        let e = b.vertex([3e-9, 1.0, 2.0], "t").unwrap();
        assert_eq!(a, e, "noise below 1e-8 mm welds");
        assert_eq!(a, c);
        assert_ne!(a, d);
        for i in 0..1000 {
            b.vertex([i as f64, 0.0, 0.0], "t").unwrap();
        }
        for i in 0..1000 {
            assert_eq!(b.vertex([i as f64, 0.0, 0.0], "t").unwrap() as usize, i + 2);
        }
        assert!(b.vertex([f64::NAN, 0.0, 0.0], "t").is_err());
        assert!(b.vertex([2e10, 0.0, 0.0], "t").is_err());
    }

    #[test]
    fn counts_past_limit() {
        let mut b = MeshBuilder::new(0, 100, 2);
        for _ in 0..5 {
            b.triangle([0, 1, 2]);
        }
        assert_eq!(
            b.finish(),
            Err(GeometryError::TooManyTriangles { found: 5, limit: 2 })
        );
    }
}
