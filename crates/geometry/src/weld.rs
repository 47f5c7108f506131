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
//! * the triangles are split into contiguous ranges, one per thread, and each
//!   range is welded with its own table (local numbers in order of first use
//!   within the range). Then each range looks its vertices up in the earlier
//!   ranges' tables, in range order: a vertex found there is the one of the
//!   first range holding it; the others are first used in this range and are
//!   numbered after every earlier range's new vertices, in local order. That
//!   is the serial numbering (order of first use) whatever the number of
//!   ranges, so the result never depends on the number of cores.

use crate::GeometryError;
use crate::mem::{self, Zeroable};
use crate::mesh::{MAX_COORD, Mesh};

const BIN: &str = "binary STL";

/// Coordinates below this (in magnitude) are coded by their grid key.
const SMALL: f32 = 0.125;
const SMALL_BIAS: i64 = 1 << 25;
/// A slot's `id` is its local vertex number plus one; 0 is an empty slot, so a
/// fresh table is zeroed memory (no fill pass, and pages come on first use).
const EMPTY: u32 = 0;
/// A recent-cache entry for a miss of the current batch, not numbered yet.
const PENDING: u32 = 1 << 31;
/// The status of a vertex carries a range number in its top bits.
const RANGE_BITS: u32 = 2;
/// At most this many ranges (threads).
const MAX_RANGES: usize = 1 << RANGE_BITS;
const LOCAL_BITS: u32 = 32 - RANGE_BITS;
const LOCAL_MASK: u32 = (1 << LOCAL_BITS) - 1;
/// Below this many triangles one thread does everything.
const PARALLEL_MIN_TRIANGLES: usize = 100_000;
/// Entries of the per-thread cache of recently welded vertices (256 KiB).
const RECENT: usize = 16384;

#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct Slot {
    code: [u32; 3],
    id: u32,
}

// SAFETY: all-zero bytes are a valid Slot (an empty one).
unsafe impl Zeroable for Slot {}

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

/// The position of float32 bits, as the serial builder stores it.
#[inline(always)]
fn position(bits: [u32; 3]) -> [f64; 3] {
    bits.map(|b| f64::from(f32::from_bits(b)))
}

/// The position of corner `c`.
#[inline(always)]
fn corner_position(recs: &[u8], c: usize) -> [f64; 3] {
    position(corner_bits(recs, c))
}

fn bad_corner(recs: &[u8], c: usize) -> GeometryError {
    let p = corner_position(recs, c);
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

/// Runs the jobs on `threads` threads (job i on thread i % threads, this
/// thread taking the first share) and returns their results in job order.
fn run<T: Send, F: FnOnce() -> T + Send>(threads: usize, jobs: Vec<F>) -> Vec<T> {
    let threads = threads.clamp(1, jobs.len().max(1));
    if threads == 1 {
        return jobs.into_iter().map(|f| f()).collect();
    }
    let mut shares: Vec<Vec<(usize, F)>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, f) in jobs.into_iter().enumerate() {
        shares[i % threads].push((i, f));
    }
    let work = |share: Vec<(usize, F)>| -> Vec<(usize, T)> {
        share.into_iter().map(|(i, f)| (i, f())).collect()
    };
    let mut done: Vec<(usize, T)> = std::thread::scope(|s| {
        let mut shares = shares.into_iter();
        let mine = shares.next().expect("one share");
        let handles: Vec<_> = shares.map(|sh| s.spawn(move || work(sh))).collect();
        let mut done = work(mine);
        for h in handles {
            done.extend(h.join().expect("weld thread"));
        }
        done
    });
    done.sort_unstable_by_key(|d| d.0);
    done.into_iter().map(|d| d.1).collect()
}

/// Asks the cache for the line holding `x` (a hint).
#[inline(always)]
fn prefetch<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint and never faults.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            (x as *const T).cast::<i8>(),
        )
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

struct Table {
    slots: Vec<Slot>,
    shift: u32,
    /// A Bloom filter of the codes held (two bits per vertex in one 64-bit
    /// word, four bits per slot): later ranges look most of their vertices
    /// up here, in cache, instead of in the table.
    filter: Vec<u64>,
}

impl Table {
    fn new(cap: usize) -> Self {
        let cap = cap.max(16).next_power_of_two();
        Table {
            slots: mem::zeroed(cap),
            shift: 64 - cap.trailing_zeros(),
            filter: vec![0; cap / 16],
        }
    }
    /// The filter's word and bits for hash `h` (bits the table's home and
    /// the recent cache do not use).
    #[inline(always)]
    fn filter_bits(&self, h: u64) -> (usize, u64) {
        let word = h as usize & (self.filter.len() - 1);
        (word, 1 << ((h >> 40) & 63) | 1 << ((h >> 46) & 63))
    }
    #[inline(always)]
    fn mark(&mut self, h: u64) {
        let (w, b) = self.filter_bits(h);
        self.filter[w] |= b;
    }
    /// False when the table surely does not hold hash `h`.
    #[inline(always)]
    fn may_hold(&self, h: u64) -> bool {
        let (w, b) = self.filter_bits(h);
        self.filter[w] & b == b
    }
    #[inline(always)]
    fn home(&self, h: u64) -> usize {
        (h >> self.shift) as usize
    }
    /// Asks the cache for the home slot and the filter word of hash `h`
    /// ahead of their use.
    #[inline(always)]
    fn prefetch(&self, h: u64) {
        prefetch(&self.slots[self.home(h)]);
        prefetch(&self.filter[self.filter_bits(h).0]);
    }
    /// The local number of the vertex with codes `k` (hash `h`), if present.
    #[inline(always)]
    fn find(&self, h: u64, k: &[u32; 3]) -> Option<u32> {
        let mask = self.slots.len() - 1;
        let mut s = self.home(h);
        loop {
            let e = self.slots[s];
            if e.id == EMPTY {
                return None;
            }
            if e.code == *k {
                return Some(e.id - 1);
            }
            s = (s + 1) & mask;
        }
    }
}

/// One range's weld: its table and the float32 bits of each of its vertices
/// (its first corner's), in local order (order of first use within the
/// range). Kept apart from the records so that the later passes read 12
/// bytes per vertex in order, not the records again.
struct Range {
    table: Table,
    first: Vec<[u32; 3]>,
}

/// Welds the triangles `lo..lo + out.len()`, writing each corner's local
/// vertex number to `out`; `Err` holds the range's first bad corner.
fn weld_range(recs: &[u8], lo: usize, out: &mut [[u32; 3]]) -> Result<Range, usize> {
    let n = out.len();
    // About one vertex per two triangles in a closed mesh; the table keeps at
    // most 60 % of its slots full (so a range of 540k triangles takes 2^19
    // slots, not 2^20) and grows when a file has more.
    let mut t = Table::new((n + 16) * 3 / 5);
    let mut first: Vec<[u32; 3]> = Vec::with_capacity(t.slots.len() / 2);
    // Recently welded vertices, direct-mapped by hash: neighbouring triangles
    // share corners, so most corners are found here without a table probe.
    let mut recent: Vec<Slot> = mem::zeroed(RECENT);
    let out = out.as_flattened_mut();
    const BATCH: usize = 64;
    let mut codes = [[0u32; 3]; BATCH * 3];
    let mut hashes = [0u64; BATCH * 3];
    let mut todo = [0u8; BATCH * 3];
    // For a miss that repeats an earlier miss of the batch, that miss's index
    // (else NEW); and each miss's vertex once numbered.
    const NEW: u8 = u8::MAX;
    let mut same = [NEW; BATCH * 3];
    let mut locals = [0u32; BATCH * 3];
    let mut tri = 0usize;
    while tri < n {
        let m = BATCH.min(n - tri);
        let mut bad = false;
        let mut misses = 0usize;
        let batch = &recs[(lo + tri) * 50..(lo + tri + m) * 50];
        // First code and hash every corner of the batch, asking for its
        // recent-cache entry ahead, so those loads overlap.
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
                prefetch(&recent[(h >> 16) as usize & (RECENT - 1)]);
                codes[i] = k;
                hashes[i] = h;
            }
        }
        // Then the recent cache; the misses are compacted in place (their
        // count never passes the corner's index) and their table slot and
        // filter word asked for. A miss enters the cache at once as pending
        // (PENDING | its index), so the next corners of the batch that repeat
        // it (a new vertex is used by two or three neighbouring triangles)
        // take its number later instead of probing the table again.
        for i in 0..m * 3 {
            let (k, h) = (codes[i], hashes[i]);
            let slot = (h >> 16) as usize & (RECENT - 1);
            let r = recent[slot];
            todo[misses] = i as u8;
            if r.id != EMPTY && r.code == k {
                if r.id & PENDING == 0 {
                    out[tri * 3 + i] = r.id - 1;
                    continue;
                }
                same[misses] = (r.id & !PENDING) as u8;
                misses += 1;
                continue;
            }
            codes[misses] = k;
            hashes[misses] = h;
            same[misses] = NEW;
            recent[slot] = Slot {
                code: k,
                id: PENDING | misses as u32,
            };
            misses += 1;
            t.prefetch(h);
        }
        if bad {
            let c = (0..m * 3)
                .find(|&i| {
                    let at = (lo + tri + i / 3) * 50 + 12 + 12 * (i % 3);
                    !(code(bits_at(recs, at)).1
                        && code(bits_at(recs, at + 4)).1
                        && code(bits_at(recs, at + 8)).1)
                })
                .expect("a bad corner in this batch");
            return Err((lo + tri) * 3 + c);
        }
        // Misses in corner order, so new vertices are numbered in order of
        // first use (a recent-cache hit is never a new vertex).
        for j in 0..misses {
            let i = tri * 3 + todo[j] as usize;
            if same[j] != NEW {
                locals[j] = locals[same[j] as usize];
                out[i] = locals[j];
                continue;
            }
            let (h, k) = (hashes[j], codes[j]);
            let mask = t.slots.len() - 1;
            let mut s = t.home(h);
            let local = loop {
                let e = t.slots[s];
                if e.id == EMPTY {
                    let local = first.len() as u32;
                    t.slots[s] = Slot {
                        code: k,
                        id: local + 1,
                    };
                    t.mark(h);
                    first.push(corner_bits(recs, lo * 3 + i));
                    if first.len() * 5 > t.slots.len() * 3 {
                        t = grow(&t, &first);
                    }
                    break local;
                }
                if e.code == k {
                    break e.id - 1;
                }
                s = (s + 1) & mask;
            };
            // Replaces the pending entry (every pending entry is some miss's
            // slot, rewritten here in the same order, so none is left).
            recent[(h >> 16) as usize & (RECENT - 1)] = Slot {
                code: k,
                id: local + 1,
            };
            locals[j] = local;
            out[i] = local;
        }
        tri += m;
    }
    Ok(Range { table: t, first })
}

#[cold]
fn grow(t: &Table, first: &[[u32; 3]]) -> Table {
    let mut g = Table::new(t.slots.len() * 2);
    let mask = g.slots.len() - 1;
    for (local, bits) in first.iter().enumerate() {
        let k = bits.map(|b| code(b).0);
        let h = hash(&k);
        g.mark(h);
        let mut s = g.home(h);
        while g.slots[s].id != EMPTY {
            s = (s + 1) & mask;
        }
        g.slots[s] = Slot {
            code: k,
            id: local as u32 + 1,
        };
    }
    g
}

/// Looks the vertices whose bits are `first` (a piece of range `r`'s, in
/// local order) up in the tables of the ranges before `r`, in range order.
/// Writes `q << LOCAL_BITS | local` for a vertex of range q < r (the first
/// range holding it, where it is new), `r << LOCAL_BITS` for a vertex new in
/// range r (its rank comes later); returns how many are new.
fn look_up(first: &[[u32; 3]], earlier: &[Table], r: u32, status: &mut [u32]) -> u32 {
    const BATCH: usize = 32;
    let mut keys = [[0u32; 3]; BATCH];
    let mut hashes = [0u64; BATCH];
    let mut fresh = 0;
    for (cs, st) in first.chunks(BATCH).zip(status.chunks_mut(BATCH)) {
        // Hash the batch and prefetch every home slot first, so the probes'
        // cache misses overlap.
        for (j, bits) in cs.iter().enumerate() {
            let k = bits.map(|b| code(b).0);
            let h = hash(&k);
            for t in earlier {
                if t.may_hold(h) {
                    t.prefetch(h);
                }
            }
            keys[j] = k;
            hashes[j] = h;
        }
        for (j, s) in st.iter_mut().enumerate() {
            let found = earlier
                .iter()
                .enumerate()
                .filter(|(_, t)| t.may_hold(hashes[j]))
                .find_map(|(q, t)| Some((q as u32) << LOCAL_BITS | t.find(hashes[j], &keys[j])?));
            *s = found.unwrap_or_else(|| {
                fresh += 1;
                r << LOCAL_BITS
            });
        }
    }
    fresh
}

/// Welds the `n` triangles of a binary STL whose records start at `recs`.
pub(crate) fn weld_binary_stl(recs: &[u8], n: usize) -> Result<Mesh, GeometryError> {
    let ranges = if n < PARALLEL_MIN_TRIANGLES {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |p| p.get().min(MAX_RANGES))
    };
    weld_in_ranges(recs, n, ranges)
}

/// Welds in `ranges` contiguous ranges of triangles, one thread each; the
/// result is the same for every number of ranges.
fn weld_in_ranges(recs: &[u8], n: usize, ranges: usize) -> Result<Mesh, GeometryError> {
    let corners = n * 3;
    if corners >= (1usize << LOCAL_BITS) {
        return Err(GeometryError::Malformed {
            format: BIN,
            message: "more than a billion corners".into(),
        });
    }
    let ranges = ranges.clamp(1, MAX_RANGES).min(n.max(1));
    let bounds: Vec<usize> = (0..=ranges).map(|r| n * r / ranges).collect();

    // 1. Each range welds its own triangles (local numbers).
    let mut tris: Vec<[u32; 3]> = mem::zeroed(n);
    let mut welded = Vec::with_capacity(ranges);
    {
        let mut rest = tris.as_mut_slice();
        let mut jobs = Vec::with_capacity(ranges);
        for r in 0..ranges {
            let (piece, tail) = rest.split_at_mut(bounds[r + 1] - bounds[r]);
            rest = tail;
            let lo = bounds[r];
            jobs.push(move || weld_range(recs, lo, piece));
        }
        for w in run(ranges, jobs) {
            // Each range stops at its first bad corner, so the first range
            // that failed holds the file's first one.
            welded.push(w.map_err(|c| bad_corner(recs, c))?);
        }
    }
    if ranges == 1 {
        // Local numbers are global ones.
        let positions = welded[0].first.iter().map(|&b| position(b)).collect();
        return Ok(Mesh {
            positions,
            triangles: tris,
        });
    }

    // 2. Every range after the first looks its vertices up in the earlier
    // ranges' tables, in pieces spread evenly over the threads (range 0 has
    // nothing to look up: all its vertices are new).
    let (tables, firsts): (Vec<Table>, Vec<Vec<[u32; 3]>>) =
        welded.into_iter().map(|w| (w.table, w.first)).unzip();
    let mut status: Vec<Vec<u32>> = firsts.iter().map(|f| vec![0; f.len()]).collect();
    let piece_len = |r: usize| firsts[r].len().div_ceil(ranges).max(1);
    let fresh: Vec<u32> = {
        let mut jobs = Vec::new();
        for (r, st) in status.iter_mut().enumerate().skip(1) {
            let len = piece_len(r);
            for (f, s) in firsts[r].chunks(len).zip(st.chunks_mut(len)) {
                let earlier = &tables[..r];
                jobs.push(move || look_up(f, earlier, r as u32, s));
            }
        }
        run(ranges, jobs)
    };
    drop(tables);

    // New vertices are numbered range by range, and within a range in local
    // order: the ranks of a piece's new vertices start after the earlier
    // pieces' of the same range.
    let mut offsets = vec![0u32; ranges + 1];
    offsets[1] = firsts[0].len() as u32;
    {
        let mut jobs = Vec::new();
        let mut k = 0;
        for (r, st) in status.iter_mut().enumerate().skip(1) {
            let mut base = 0u32;
            for s in st.chunks_mut(piece_len(r)) {
                let (tag, start) = ((r as u32) << LOCAL_BITS, base);
                base += fresh[k];
                k += 1;
                jobs.push(move || {
                    for (rank, v) in (start..).zip(s.iter_mut().filter(|v| **v == tag)) {
                        *v = tag | rank;
                    }
                });
            }
            offsets[r + 1] = offsets[r] + base;
        }
        run(ranges, jobs);
    }
    let nv = offsets[ranges] as usize;

    // 3. Each range writes its new vertices' positions and maps its local
    // numbers to global ones; then the corners of the ranges after the first
    // are rewritten, in equal pieces over the threads.
    let mut positions: Vec<[f64; 3]> = mem::zeroed(nv);
    let maps: Vec<Vec<u32>> = {
        let (status, firsts, offsets) = (&status, &firsts, &offsets);
        let mut jobs = Vec::with_capacity(ranges);
        let mut pos_rest = positions.as_mut_slice();
        for r in 0..ranges {
            let (pos, tail) = pos_rest.split_at_mut((offsets[r + 1] - offsets[r]) as usize);
            pos_rest = tail;
            jobs.push(move || {
                if r == 0 {
                    // Range 0's local numbers are global ones.
                    for (p, &b) in pos.iter_mut().zip(&firsts[0]) {
                        *p = position(b);
                    }
                    return Vec::new();
                }
                let global = |s: u32| {
                    let (q, local) = ((s >> LOCAL_BITS) as usize, s & LOCAL_MASK);
                    match q {
                        0 => local,
                        // Found in range q, where it is new: its rank there.
                        _ if q != r => offsets[q] + (status[q][local as usize] & LOCAL_MASK),
                        _ => offsets[r] + local,
                    }
                };
                status[r]
                    .iter()
                    .zip(&firsts[r])
                    .map(|(&s, &b)| {
                        if (s >> LOCAL_BITS) as usize == r {
                            pos[(s & LOCAL_MASK) as usize] = position(b);
                        }
                        global(s)
                    })
                    .collect()
            });
        }
        run(ranges, jobs)
    };
    {
        let mut jobs = Vec::new();
        let (_, mut rest) = tris.split_at_mut(bounds[1]);
        for r in 1..ranges {
            let (tri, tail) = rest.split_at_mut(bounds[r + 1] - bounds[r]);
            rest = tail;
            let map = &maps[r];
            for piece in tri.chunks_mut((bounds[r + 1] - bounds[r]).div_ceil(ranges).max(1)) {
                jobs.push(move || {
                    for v in piece.as_flattened_mut() {
                        *v = map[*v as usize];
                    }
                });
            }
        }
        run(ranges, jobs);
    }
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

    fn rng(mut x: u64) -> impl FnMut() -> u64 {
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    /// Binary STL records of the given triangles (zero normals).
    fn records(tris: &[[[f32; 3]; 3]]) -> Vec<u8> {
        let mut recs = Vec::with_capacity(tris.len() * 50);
        for t in tris {
            recs.extend_from_slice(&[0u8; 12]);
            for c in t.iter().flatten() {
                recs.extend_from_slice(&c.to_le_bytes());
            }
            recs.extend_from_slice(&[0u8; 2]);
        }
        recs
    }

    /// The serial builder's mesh of the same records.
    fn serial(recs: &[u8], n: usize) -> Mesh {
        let mut b = MeshBuilder::new(0, n, u64::MAX);
        for t in 0..n {
            let mut tri = [0u32; 3];
            for (k, v) in tri.iter_mut().enumerate() {
                *v = b.vertex(corner_position(recs, t * 3 + k), BIN).unwrap();
            }
            b.triangle(tri);
        }
        b.finish().unwrap()
    }

    /// The weld in 1, 2, 3 and 4 ranges, and the public entry point, all
    /// give exactly the serial builder's mesh.
    fn check_all_ranges(recs: &[u8], n: usize) {
        let slow = serial(recs, n);
        for ranges in 1..=MAX_RANGES {
            let fast = weld_in_ranges(recs, n, ranges).unwrap();
            assert_eq!(
                fast.positions.len(),
                slow.positions.len(),
                "{ranges} ranges"
            );
            assert!(fast == slow, "{ranges} ranges");
        }
        assert!(weld_binary_stl(recs, n).unwrap() == slow);
    }

    /// The parallel weld gives exactly the serial builder's mesh: same
    /// numbering, same first coordinates, same triangles. Corners are drawn
    /// at random from a pool, so most vertices are first used in one range
    /// and used again in later ones.
    #[test]
    fn same_mesh_as_the_serial_builder() {
        let n = 150_000usize;
        let mut rnd = rng(0x2545_F491_4F6C_DD1D);
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
        let tris: Vec<[[f32; 3]; 3]> = (0..n)
            .map(|_| [(); 3].map(|_| pool[(rnd() % pool.len() as u64) as usize]))
            .collect();
        check_all_ranges(&records(&tris), n);
    }

    /// A strip of triangles in file order, as exporters write grids: each
    /// range shares only its border vertices with the one before, and the
    /// strip comes back at the end (so the last range uses the first's).
    #[test]
    fn strip_shared_across_ranges() {
        let n = 120_000usize;
        let p = |i: usize| [(i / 2) as f32 * 0.37, (i % 2) as f32, 2.5];
        let mut tris: Vec<[[f32; 3]; 3]> =
            (0..n - 1000).map(|i| [p(i), p(i + 1), p(i + 2)]).collect();
        tris.extend((0..1000).map(|i| [p(3 * i + 5), p(7 * i), p(i + 1)]));
        check_all_ranges(&records(&tris), n);
    }

    /// Tiny meshes, fewer triangles than ranges included.
    #[test]
    fn tiny_meshes() {
        let mut rnd = rng(7);
        for n in 1..12usize {
            let tris: Vec<[[f32; 3]; 3]> = (0..n)
                .map(|_| [(); 3].map(|_| [(rnd() % 4) as f32, (rnd() % 3) as f32, 0.5]))
                .collect();
            check_all_ranges(&records(&tris), n);
        }
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
        for ranges in 1..=MAX_RANGES {
            let e = weld_in_ranges(&recs, n, ranges).unwrap_err();
            assert!(
                e.to_string().contains("100001 1 NaN"),
                "{ranges} ranges: {e}"
            );
        }
        let e = weld_binary_stl(&recs, n).unwrap_err();
        assert!(e.to_string().contains("100001 1 NaN"), "{e}");
        // A bad corner in the first range is found before one in the last.
        let at = 5 * 50 + 12;
        recs[at..at + 4].copy_from_slice(&f32::INFINITY.to_le_bytes());
        for ranges in 1..=MAX_RANGES {
            let e = weld_in_ranges(&recs, n, ranges).unwrap_err();
            assert!(
                e.to_string().contains("not a finite number (inf 0 0)"),
                "{ranges} ranges: {e}"
            );
        }
    }
}
