//! Parallel welding of binary STL corners (float32 coordinates).
//!
//! Gives exactly the mesh [`crate::mesh::MeshBuilder`] would: the same 1e-8 mm
//! grid rule, vertices numbered in order of first use, each vertex keeping the
//! coordinates of its first corner, and the same error for the first corner
//! with a bad coordinate. It is faster because
//!
//! * float32 input allows a 4-byte *code* per coordinate that is equal exactly
//!   when the 1e-8 mm grid keys are equal: below 0.125 mm the grid key itself
//!   (|key| < 1.25e7), from 0.125 mm on the float's bits (the float32 spacing
//!   there is at least 1.49e-8 mm, so distinct floats never share a grid cell,
//!   and the two ranges' keys never meet). A table slot holds the three codes
//!   and the vertex number (16 bytes), so a probe touches one cache line and
//!   never looks at the positions;
//! * the table is split by hash into one part per thread; every thread reads
//!   all corners but welds only those whose hash falls in its part, so the
//!   parts are independent and first use within a part is first use overall;
//!   the global numbering is then the rank of each vertex's first corner.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::GeometryError;
use crate::mesh::{MAX_COORD, Mesh};

const BIN: &str = "binary STL";

/// Coordinates below this (in magnitude) are coded by their grid key.
const SMALL: f32 = 0.125;
const SMALL_BIAS: i64 = 1 << 25;
const EMPTY: u32 = u32::MAX;
/// Local vertex numbers carry their part in the top bits while welding.
const PART_BITS: u32 = 2;
const LOCAL_BITS: u32 = 32 - PART_BITS;
const LOCAL_MASK: u32 = (1 << LOCAL_BITS) - 1;
/// Below this many triangles one thread does everything.
const PARALLEL_MIN_TRIANGLES: usize = 100_000;
/// Entries of the per-thread cache of recently welded vertices (256 KiB).
const RECENT: usize = 16384;

#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct Slot {
    code: [u32; 3],
    local: u32,
}

const EMPTY_SLOT: Slot = Slot {
    code: [0; 3],
    local: EMPTY,
};

/// The code of one float32 coordinate (see the module docs); `None` when the
/// coordinate is not finite or beyond [`MAX_COORD`].
#[inline(always)]
fn code(bits: u32) -> (u32, bool) {
    // On the magnitude's bits (integer compares; NaN and infinities are above
    // every finite magnitude). MAX_COORD = 1e10 = 9765625·2¹⁰ is exact in f32.
    let mag = bits & 0x7FFF_FFFF;
    let ok = mag < (MAX_COORD as f32).to_bits();
    if mag < SMALL.to_bits() {
        let c = f32::from_bits(bits);
        let y = f64::from(c) * 1e8;
        let k = (y + 0.5f64.copysign(y)) as i64;
        ((k + SMALL_BIAS) as u32, ok)
    } else {
        (bits, ok)
    }
}

#[inline(always)]
fn hash(c: &[u32; 3]) -> u64 {
    let a = u64::from(c[0]) | (u64::from(c[1]) << 32);
    let mut h = a.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^= u64::from(c[2]).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    h = (h ^ (h >> 29)).wrapping_mul(0x1656_67B1_9E37_79F9);
    h ^ (h >> 32)
}

#[inline(always)]
fn bits_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The float32 bits of corner `c` (0-based over the whole file).
#[inline(always)]
fn corner_bits(recs: &[u8], c: usize) -> [u32; 3] {
    let at = (c / 3) * 50 + 12 + 12 * (c % 3);
    // One bounds check for the 12 bytes, then plain loads.
    let w: &[u8; 12] = recs[at..at + 12].try_into().expect("12 bytes");
    [
        u32::from_le_bytes([w[0], w[1], w[2], w[3]]),
        u32::from_le_bytes([w[4], w[5], w[6], w[7]]),
        u32::from_le_bytes([w[8], w[9], w[10], w[11]]),
    ]
}

fn bad_corner(recs: &[u8], c: usize) -> GeometryError {
    let p = corner_bits(recs, c).map(|b| f64::from(f32::from_bits(b)));
    let message = if p.iter().all(|c| c.is_finite()) {
        format!(
            "a vertex coordinate ({} {} {}) is beyond 1e10; is the model in millimetres?",
            p[0], p[1], p[2]
        )
    } else {
        format!(
            "a vertex has a coordinate that is not a finite number ({} {} {})",
            p[0], p[1], p[2]
        )
    };
    GeometryError::Malformed {
        format: BIN,
        message,
    }
}

/// A raw pointer that threads may share to write disjoint elements.
#[derive(Clone, Copy)]
struct Shared<T>(*mut T);
// SAFETY: used only for writes to disjoint indices, each by exactly one thread,
// inside a `std::thread::scope` that outlives no borrow.
unsafe impl<T> Send for Shared<T> {}
unsafe impl<T> Sync for Shared<T> {}

impl<T> Shared<T> {
    /// The pointer (a method, so closures capture the whole `Shared`).
    #[inline(always)]
    fn ptr(self) -> *mut T {
        self.0
    }
}

/// One part's welding result: the first corner of each of its vertices, in
/// order of first use.
struct Part {
    first: Vec<u32>,
}

struct Table {
    slots: Vec<Slot>,
    shift: u32,
}

impl Table {
    fn new(cap: usize) -> Self {
        let cap = cap.max(16).next_power_of_two();
        Table {
            slots: vec![EMPTY_SLOT; cap],
            shift: 64 - cap.trailing_zeros(),
        }
    }
    #[inline(always)]
    fn home(&self, h: u64) -> usize {
        // The top PART_BITS of the hash chose the part; use the bits below.
        ((h << PART_BITS) >> self.shift) as usize
    }
}

/// Welds the corners of part `part` of `parts` (all of them when `parts` is 1),
/// writing `local | part << LOCAL_BITS` for each of its corners.
fn weld_part(
    recs: &[u8],
    n: usize,
    part: u32,
    pbits: u32,
    cap: usize,
    out: Shared<u32>,
) -> Result<Part, usize> {
    let mut t = Table::new(cap);
    let mut first: Vec<u32> = Vec::with_capacity(cap / 2);
    // Recently welded vertices, direct-mapped by hash: neighbouring triangles
    // share corners, so most corners are found here without a table probe.
    let mut recent = vec![EMPTY_SLOT; RECENT];
    const BATCH: usize = 64;
    let mut codes = [[0u32; 3]; BATCH * 3];
    let mut hashes = [0u64; BATCH * 3];
    let mut todo = [0u8; BATCH * 3];
    let mut tri = 0usize;
    while tri < n {
        let m = BATCH.min(n - tri);
        let mut bad = false;
        let mut misses = 0usize;
        let batch = &recs[tri * 50..(tri + m) * 50];
        for (ti, rec) in batch.chunks_exact(50).enumerate() {
            // The three corners as one fixed-size array: plain loads, no
            // per-byte bounds checks.
            let xyz: &[u8; 36] = rec[12..48].try_into().expect("36 bytes");
            for v in 0..3 {
                let i = ti * 3 + v;
                let word = |j: usize| {
                    u32::from_le_bytes([
                        xyz[12 * v + 4 * j],
                        xyz[12 * v + 4 * j + 1],
                        xyz[12 * v + 4 * j + 2],
                        xyz[12 * v + 4 * j + 3],
                    ])
                };
                let (x, ox) = code(word(0));
                let (y, oy) = code(word(1));
                let (z, oz) = code(word(2));
                bad |= !(ox & oy & oz);
                let k = [x, y, z];
                let h = hash(&k);
                if pbits != 0 && (h >> (64 - pbits)) as u32 != part {
                    continue;
                }
                let r = recent[(h >> 16) as usize & (RECENT - 1)];
                if r.local != EMPTY && r.code == k {
                    // SAFETY: corner tri*3+i is in bounds (3n corners) and belongs
                    // to this part only, so no other thread writes it.
                    unsafe { *out.ptr().add(tri * 3 + i) = r.local | (part << LOCAL_BITS) };
                    continue;
                }
                codes[misses] = k;
                hashes[misses] = h;
                todo[misses] = i as u8;
                misses += 1;
                #[cfg(target_arch = "x86_64")]
                {
                    let ptr = t.slots.as_ptr().wrapping_add(t.home(h)) as *const i8;
                    // SAFETY: a prefetch is a hint and never faults.
                    unsafe {
                        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(ptr)
                    };
                }
            }
        }
        if bad {
            // Every part scans every corner in order, so all agree on the first.
            let c = (0..m * 3)
                .find(|&i| {
                    let at = (tri + i / 3) * 50 + 12 + 12 * (i % 3);
                    !(code(bits_at(recs, at)).1
                        && code(bits_at(recs, at + 4)).1
                        && code(bits_at(recs, at + 8)).1)
                })
                .expect("a bad corner in this batch");
            return Err(tri * 3 + c);
        }
        for j in 0..misses {
            let (h, k) = (hashes[j], codes[j]);
            let corner = tri * 3 + todo[j] as usize;
            let mask = t.slots.len() - 1;
            let mut s = t.home(h);
            let local = loop {
                let e = t.slots[s];
                if e.local == EMPTY {
                    let local = first.len() as u32;
                    t.slots[s] = Slot { code: k, local };
                    first.push(corner as u32);
                    if first.len() * 2 > t.slots.len() {
                        t = grow(&t, recs, &first);
                    }
                    break local;
                }
                if e.code == k {
                    break e.local;
                }
                s = (s + 1) & mask;
            };
            recent[(h >> 16) as usize & (RECENT - 1)] = Slot { code: k, local };
            // SAFETY: as above.
            unsafe { *out.ptr().add(corner) = local | (part << LOCAL_BITS) };
        }
        tri += m;
    }
    Ok(Part { first })
}

#[cold]
fn grow(t: &Table, recs: &[u8], first: &[u32]) -> Table {
    let mut g = Table::new(t.slots.len() * 2);
    let mask = g.slots.len() - 1;
    for (local, &c) in first.iter().enumerate() {
        let k = corner_bits(recs, c as usize).map(|b| code(b).0);
        let mut s = g.home(hash(&k));
        while g.slots[s].local != EMPTY {
            s = (s + 1) & mask;
        }
        g.slots[s] = Slot {
            code: k,
            local: local as u32,
        };
    }
    g
}

/// Welds the `n` triangles of a binary STL whose records start at `recs`.
pub(crate) fn weld_binary_stl(recs: &[u8], n: usize) -> Result<Mesh, GeometryError> {
    let corners = n * 3;
    if corners >= (1usize << LOCAL_BITS) {
        return Err(GeometryError::Malformed {
            format: BIN,
            message: "more than a billion corners".into(),
        });
    }
    let threads = if n < PARALLEL_MIN_TRIANGLES {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |p| p.get().min(1 << PART_BITS))
    };
    // Parts are a power of two (the top hash bits choose one).
    let pbits = match threads {
        1 => 0,
        2 | 3 => 1,
        _ => 2,
    };
    let parts = 1usize << pbits;
    // About one vertex per two triangles in a closed mesh; the table keeps at
    // most half its slots full and grows when a file has more.
    let cap = ((n / 2 + 8) * 2 / parts).next_power_of_two();

    let mut tris: Vec<[u32; 3]> = vec![[0; 3]; n];
    let out = Shared(tris.as_mut_ptr() as *mut u32);
    let results: Vec<Result<Part, usize>> = if parts == 1 {
        vec![weld_part(recs, n, 0, 0, cap, out)]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..parts as u32)
                .map(|part| s.spawn(move || weld_part(recs, n, part, pbits, cap, out)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("weld thread"))
                .collect()
        })
    };
    let mut parts_v = Vec::with_capacity(parts);
    for r in results {
        match r {
            Ok(p) => parts_v.push(p),
            Err(c) => return Err(bad_corner(recs, c)),
        }
    }

    // Global numbering: the rank of each vertex's first corner among all first
    // corners, from a bitmap of first corners and its prefix counts.
    let words = corners.div_ceil(64);
    let nv: usize = parts_v.iter().map(|p| p.first.len()).sum();
    let mut positions: Vec<[f64; 3]> = Vec::with_capacity(nv);
    if parts == 1 {
        // First corners are already in order: local numbers are global ones.
        let p = &parts_v[0];
        positions.extend(
            p.first
                .iter()
                .map(|&c| corner_bits(recs, c as usize).map(|b| f64::from(f32::from_bits(b)))),
        );
        return Ok(Mesh {
            positions,
            triangles: tris,
        });
    }
    let bitmap: Vec<AtomicU64> = (0..words).map(|_| AtomicU64::new(0)).collect();
    std::thread::scope(|s| {
        for p in &parts_v {
            let bitmap = &bitmap;
            s.spawn(move || {
                for &c in &p.first {
                    bitmap[c as usize / 64].fetch_or(1 << (c % 64), Ordering::Relaxed);
                }
            });
        }
    });
    let bitmap: Vec<u64> = bitmap.into_iter().map(AtomicU64::into_inner).collect();
    let mut prefix: Vec<u32> = Vec::with_capacity(words);
    let mut acc = 0u32;
    for w in &bitmap {
        prefix.push(acc);
        acc += w.count_ones();
    }
    debug_assert_eq!(acc as usize, nv);
    let pos_out = Shared(positions.as_mut_ptr());
    std::thread::scope(|s| {
        for p in parts_v.iter_mut() {
            let (bitmap, prefix) = (&bitmap, &prefix);
            s.spawn(move || {
                for f in p.first.iter_mut() {
                    let c = *f as usize;
                    let below = bitmap[c / 64] & ((1u64 << (c % 64)) - 1);
                    let g = prefix[c / 64] + below.count_ones();
                    let q = corner_bits(recs, c).map(|b| f64::from(f32::from_bits(b)));
                    // SAFETY: g < nv ≤ capacity, and each g belongs to one vertex.
                    unsafe { pos_out.ptr().add(g as usize).write(q) };
                    *f = g;
                }
            });
        }
    });
    // SAFETY: every index below nv was written exactly once above (the ranks
    // of the nv first corners are 0..nv).
    unsafe { positions.set_len(nv) };
    drop(bitmap);
    drop(prefix);

    // Local numbers to global ones, in contiguous ranges per thread.
    let maps: Vec<&[u32]> = parts_v.iter().map(|p| p.first.as_slice()).collect();
    let flat: &mut [u32] = tris.as_flattened_mut();
    let chunk = corners.div_ceil(threads);
    std::thread::scope(|s| {
        for piece in flat.chunks_mut(chunk) {
            let maps = &maps;
            s.spawn(move || {
                for v in piece {
                    *v = maps[(*v >> LOCAL_BITS) as usize][(*v & LOCAL_MASK) as usize];
                }
            });
        }
    });
    Ok(Mesh {
        positions,
        triangles: tris,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The code is equal exactly when the 1e-8 mm grid keys are equal.
    #[test]
    fn codes_match_grid_keys() {
        let key = |c: f32| {
            let y = f64::from(c) * 1e8;
            (y + 0.5f64.copysign(y)) as i64
        };
        let mut vals: Vec<f32> = vec![0.0, -0.0, 3e-9, -3e-9, 5e-9, 1e-8, 0.125, -0.125, 1.0];
        let below = f32::from_bits(0.125f32.to_bits() - 1);
        vals.extend([below, -below, 0.25, 9.65, 1e9]);
        let mut x = 0.12499f32;
        while x < 0.12501 {
            vals.push(x);
            vals.push(-x);
            x = f32::from_bits(x.to_bits() + 1);
        }
        let mut y = 1e-9f32;
        for _ in 0..2000 {
            vals.push(y);
            y = f32::from_bits(y.to_bits() + 12345);
        }
        for &a in &vals {
            for &b in vals.iter().step_by(7) {
                assert_eq!(
                    code(a.to_bits()).0 == code(b.to_bits()).0,
                    key(a) == key(b),
                    "{a} {b}"
                );
            }
        }
    }
}

#[cfg(test)]
mod equivalence {
    use super::*;
    use crate::mesh::MeshBuilder;

    /// The parallel weld gives exactly the serial builder's mesh: same
    /// numbering, same first coordinates, same triangles.
    #[test]
    fn same_mesh_as_the_serial_builder() {
        let n = 150_000usize;
        let mut recs = Vec::with_capacity(n * 50);
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        // A small pool of positions (so corners repeat), some near zero, some
        // differing only by float noise below the 1e-8 mm grid.
        let pool: Vec<[f32; 3]> = (0..40_000)
            .map(|i| {
                let r = rnd();
                let base = [
                    (r % 1000) as f32 * 0.01,
                    ((r >> 10) % 1000) as f32 * 0.013,
                    0.0,
                ];
                match i % 4 {
                    0 => base,
                    1 => [3e-9, base[1], -0.0],
                    2 => [f32::from_bits(0.125f32.to_bits() - 1), base[0], 1e-9],
                    _ => [base[0] + 1e-9, base[1], 5e-9],
                }
            })
            .collect();
        for _ in 0..n {
            recs.extend_from_slice(&[0u8; 12]);
            for _ in 0..3 {
                let p = pool[(rnd() % pool.len() as u64) as usize];
                for c in p {
                    recs.extend_from_slice(&c.to_le_bytes());
                }
            }
            recs.extend_from_slice(&[0u8; 2]);
        }
        let fast = weld_binary_stl(&recs, n).unwrap();
        let mut b = MeshBuilder::new(0, n, u64::MAX);
        for t in 0..n {
            let mut tri = [0u32; 3];
            for (k, v) in tri.iter_mut().enumerate() {
                let p = corner_bits(&recs, t * 3 + k).map(|b| f64::from(f32::from_bits(b)));
                *v = b.vertex(p, BIN).unwrap();
            }
            b.triangle(tri);
        }
        let slow = b.finish().unwrap();
        assert_eq!(fast.positions.len(), slow.positions.len());
        assert!(fast == slow);
    }

    #[test]
    fn first_bad_corner_is_reported() {
        let n = 120_000usize;
        let mut recs = vec![0u8; n * 50];
        for t in 0..n {
            for k in 0..3 {
                let at = t * 50 + 12 + 12 * k;
                recs[at..at + 4].copy_from_slice(&(t as f32).to_le_bytes());
                recs[at + 4..at + 8].copy_from_slice(&(k as f32).to_le_bytes());
            }
        }
        let at = 100_001 * 50 + 12 + 12 + 8;
        recs[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        let at = 110_000 * 50 + 12;
        recs[at..at + 4].copy_from_slice(&1e20f32.to_le_bytes());
        let e = weld_binary_stl(&recs, n).unwrap_err();
        assert!(e.to_string().contains("100001 1 NaN"), "{e}");
    }
}
