//! Measures and topology of a welded mesh: volume, area, bounding box, edges,
//! shells and what each shell is (solid, void, inside-out, stone, open).
//!
//! Everything is f64. Volumes are integrated relative to the bounding-box
//! centre, so a model placed far from the origin loses no precision.
//!
//! Edges: every non-collapsed triangle contributes its three edges; the edges
//! are bucketed by their lower vertex index (a counting sort, O(n)) and each
//! small bucket is sorted by the upper index. An edge used once is a boundary
//! (open) edge, twice a manifold edge, more than twice non-manifold.
//!
//! Shells: triangles are joined (union-find) across manifold edges. Across a
//! non-manifold edge the triangles are sorted by angle around the edge and each
//! is joined to the neighbour with which it encloses solid material (for
//! consistently wound solids, a triangle traversing the edge backwards followed,
//! counter-clockwise, by one traversing it forwards). So two cubes that share
//! one edge stay two shells, and a ring whose embossing touches the band along
//! edges does not shatter into thousands of "shells" as it does in tools that
//! simply cut every non-manifold edge.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU32};

use crate::mem;
use crate::mesh::Mesh;
use crate::{Analysis, Format, MetalRule, Shell, ShellKind, Warning};

/// At most this many shells are listed in [`Analysis::shell_details`]
/// (largest first); the `shells` count is always complete.
pub const MAX_LISTED_SHELLS: usize = 1000;

/// Below this many triangles the analysis runs in one thread.
const PARALLEL_MIN_TRIANGLES: usize = 100_000;
/// The volume pass splits into lanes only up to this many shells (each lane
/// keeps its own per-shell sums).
const LANE_MAX_SHELLS: usize = 4096;
/// Budget (triangle visits) for the containment tests between shells.
const CONTAINMENT_BUDGET: u64 = 10_000_000;
/// Shells larger than this are never classified as stones.
const STONE_MAX_TRIANGLES: usize = 5_000;
/// A stone has at least this many distinct facet planes.
const MIN_STONE_FACETS: usize = 8;
/// A stone has at most this fraction of the metal body's volume.
const STONE_MAX_FRACTION: f64 = 0.25;
/// A stone's isoperimetric quotient 36πV²/A³ is at least this (the X1 ring's
/// brilliants 0.61, the flat charms of the franout bracelet at most 0.41).
const STONE_MIN_COMPACTNESS: f64 = 0.45;

#[inline]
pub(crate) fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
#[inline]
pub(crate) fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}
#[inline]
pub(crate) fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
#[inline]
fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}

/// Runs `a` and `b`, in parallel when `two` (`b` on a second thread).
fn both<A: Send, B: Send>(
    two: bool,
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    if !two {
        return (a(), b());
    }
    std::thread::scope(|sc| {
        let second = sc.spawn(b);
        let first = a();
        (first, second.join().expect("analysis thread"))
    })
}

/// A union-find over faces that several threads may join at once. Links go
/// from the larger root to the smaller, so every parent is smaller than its
/// child and each root is the smallest face of its set, whatever the order of
/// the unions (relaxed atomics suffice: a parent pointer only ever moves to
/// an ancestor, and the threads are joined before the result is read).
struct UnionFind<'a> {
    parent: &'a [AtomicU32],
}

impl UnionFind<'_> {
    #[inline]
    fn find(&self, mut x: u32) -> u32 {
        loop {
            let px = self.parent[x as usize].load(Relaxed);
            if px == x {
                return x;
            }
            let gp = self.parent[px as usize].load(Relaxed);
            if gp != px {
                // Path halving; gp is an ancestor of x whatever raced.
                self.parent[x as usize].store(gp, Relaxed);
            }
            x = gp;
        }
    }
    /// The root of `x`, without writing (for a pass where each thread
    /// writes only its own faces' slots).
    #[inline]
    fn root(&self, mut x: u32) -> u32 {
        loop {
            let px = self.parent[x as usize].load(Relaxed);
            if px == x {
                return x;
            }
            x = px;
        }
    }
    #[inline]
    fn union(&self, a: u32, b: u32) {
        loop {
            let (ra, rb) = (self.find(a), self.find(b));
            if ra == rb {
                return;
            }
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            // Link hi only if it is still a root; else look again.
            if self.parent[hi as usize]
                .compare_exchange(hi, lo, Relaxed, Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }
}

/// What one lane of the edge pass counts.
#[derive(Default)]
struct Edges {
    boundary: u64,
    nonmanifold: u64,
    inconsistent: u64,
    open_faces: Vec<u32>,
}

/// Per-shell accumulators.
#[derive(Clone)]
struct Acc {
    triangles: u64,
    volume: f64,
    area: f64,
    min: [f64; 3],
    max: [f64; 3],
    open: u64,
    edges: u64,
    vertices: u64,
    largest_face: (f64, u32),
}

impl Acc {
    fn new() -> Self {
        Acc {
            triangles: 0,
            volume: 0.0,
            area: 0.0,
            min: [f64::INFINITY; 3],
            max: [f64::NEG_INFINITY; 3],
            open: 0,
            edges: 0,
            vertices: 0,
            largest_face: (-1.0, 0),
        }
    }
}

/// Analyses a welded mesh. A mesh whose winding is inconsistent is first
/// re-oriented (see [`crate::orient`]): every measure is of the repaired
/// mesh, `flipped_triangles` says how many triangles were turned and
/// `non_orientable_shells` how many patches could not be oriented at all.
pub fn analyze_mesh(mesh: &Mesh, format: Format) -> Analysis {
    let two = mesh.triangles.len() >= PARALLEL_MIN_TRIANGLES;
    let p = &mesh.positions;
    let first = analyze_slices(p, &mesh.triangles, format, two);
    // Consistent meshes (nearly all) pay nothing more than the edge pass's count.
    if first.inconsistent_edges == 0 {
        return first;
    }
    let o = crate::orient::orient(p, &mesh.triangles, CONTAINMENT_BUDGET);
    let mut a = if o.flipped > 0 {
        analyze_slices(p, &o.apply(&mesh.triangles), format, two)
    } else {
        first.clone()
    };
    a.inconsistent_edges = first.inconsistent_edges;
    a.flipped_triangles = o.flipped;
    a.non_orientable_shells = o.non_orientable;
    a.containment_undecided |= o.undecided;
    // Remarks about the winding come right after those about inside-out parts.
    let at = a
        .warnings
        .iter()
        .take_while(|w| matches!(w, Warning::InsideOut | Warning::InvertedShells { .. }))
        .count();
    let mut notes = Vec::new();
    if o.flipped > 0 {
        notes.push(Warning::WindingRepaired {
            triangles: o.flipped,
            edges: first.inconsistent_edges,
        });
    }
    if o.non_orientable > 0 {
        notes.push(Warning::NonOrientable {
            shells: o.non_orientable,
        });
    }
    if o.undecided && !a.warnings.contains(&Warning::ContainmentUndecided) {
        notes.push(Warning::ContainmentUndecided);
    }
    a.warnings.splice(at..at, notes);
    a
}

/// [`analyze_mesh`] without the winding repair, with the large-model passes
/// in two lanes when `two`.
#[cfg(test)]
fn analyze_in_lanes(mesh: &Mesh, format: Format, two: bool) -> Analysis {
    analyze_slices(&mesh.positions, &mesh.triangles, format, two)
}

/// The analysis proper, of the triangles as wound.
fn analyze_slices(p: &[[f64; 3]], tris: &[[u32; 3]], format: Format, two: bool) -> Analysis {
    let nv = p.len();
    let nf = tris.len();

    assert!(
        nf < (u32::MAX / 3) as usize,
        "more than 1.4 billion triangles"
    );
    let collapsed = |t: &[u32; 3]| t[0] == t[1] || t[1] == t[2] || t[0] == t[2];

    // Large models run the passes below in two lanes (threads). Each lane's
    // share depends only on the model, never on the machine, and the lanes'
    // results are combined in lane order, so the answer is the same bits.
    let fmid = if two { nf / 2 } else { nf };

    // One pass over the triangles marks the vertices they use (for the
    // bounding box) and counts the edges of each bucket (below): the first
    // half of the faces into `start`, the second into `cur`.
    let used: Vec<AtomicBool> = mem::zeroed(nv);
    let mut start: Vec<u32> = mem::zeroed(nv + 1);
    let mut cur: Vec<u32> = if two { mem::zeroed(nv + 1) } else { Vec::new() };
    let count = |faces: &[[u32; 3]], counts: &mut [u32]| {
        for t in faces {
            for &i in t {
                used[i as usize].store(true, Relaxed);
            }
            if !collapsed(t) {
                for k in 0..3 {
                    let (a, b) = (t[k], t[(k + 1) % 3]);
                    counts[a.min(b) as usize] += 1;
                }
            }
        }
    };
    both(
        two,
        || count(&tris[..fmid], &mut start),
        || count(&tris[fmid..], &mut cur),
    );

    // Bounding box over the vertices triangles use (min and max are exact,
    // so the halves combine to the same bits).
    let bbox = |r: std::ops::Range<usize>| {
        let mut bmin = [f64::INFINITY; 3];
        let mut bmax = [f64::NEG_INFINITY; 3];
        let mut vertices = 0u64;
        for (q, u) in p[r.clone()].iter().zip(&used[r]) {
            if u.load(Relaxed) {
                vertices += 1;
                for k in 0..3 {
                    bmin[k] = bmin[k].min(q[k]);
                    bmax[k] = bmax[k].max(q[k]);
                }
            }
        }
        (bmin, bmax, vertices)
    };

    // Edge buckets keyed by the lower vertex. An entry is a corner id
    // 3 * face + k, standing for the edge from corner k to corner k + 1 of the
    // face (4 bytes: the upper vertex and the direction are read back from
    // the triangle). Buckets are filled back to front, so `start` ends up
    // holding each bucket's first entry without a second offsets array. With
    // two lanes, a bucket holds the first half's entries, then the second's
    // (`cur` is the second lane's cursor), each filled back to front: the
    // same order, ascending corner ids, as in one lane.
    let mut total = 0u32;
    if two {
        for (a, b) in start.iter_mut().zip(cur.iter_mut()) {
            total += *a + *b;
            *a = total - *b;
            *b = total;
        }
    } else {
        for s in start.iter_mut() {
            total += *s;
            *s = total;
        }
    }
    // Atomics only so that both lanes may write (each its own slots).
    let entries: Vec<AtomicU32> = mem::zeroed(total as usize);
    let fill = |first: usize, faces: &[[u32; 3]], cursor: &mut [u32]| {
        for (i, t) in faces.iter().enumerate().rev() {
            if collapsed(t) {
                continue;
            }
            for k in (0..3).rev() {
                let (a, b) = (t[k], t[(k + 1) % 3]);
                let slot = &mut cursor[a.min(b) as usize];
                *slot -= 1;
                entries[*slot as usize].store((3 * (first + i) + k) as u32, Relaxed);
            }
        }
    };
    // Each lane fills its buckets and takes half of the bounding box (one
    // pass, one wait for the other lane).
    let vmid = if two { nv / 2 } else { nv };
    let ((mut bmin, mut bmax, v1), (min2, max2, v2)) = both(
        two,
        || {
            fill(0, &tris[..fmid], &mut start);
            bbox(0..vmid)
        },
        || {
            fill(fmid, &tris[fmid..], &mut cur);
            bbox(vmid..nv)
        },
    );
    drop(cur);
    for k in 0..3 {
        bmin[k] = bmin[k].min(min2[k]);
        bmax[k] = bmax[k].max(max2[k]);
    }
    let vertices = v1 + v2;
    drop(used);
    if vertices == 0 {
        bmin = [0.0; 3];
        bmax = [0.0; 3];
    }
    let centre = [
        0.5 * (bmin[0] + bmax[0]),
        0.5 * (bmin[1] + bmax[1]),
        0.5 * (bmin[2] + bmax[2]),
    ];

    // The upper vertex and direction of an entry's edge, as (hi, face << 1 | backwards).
    let edge = |e: &AtomicU32| {
        let e = e.load(Relaxed);
        let (f, k) = ((e / 3) as usize, (e % 3) as usize);
        let (a, b) = (tris[f][k], tris[f][(k + 1) % 3]);
        if a < b {
            (b, (f as u32) << 1)
        } else {
            (a, (f as u32) << 1 | 1)
        }
    };

    // The buckets in two lanes (vertex ranges holding about half the entries
    // each) when the model is large. The union-find is shared: links always
    // go from the larger root to the smaller, so its final partition and
    // roots do not depend on the order the lanes run in.
    let parent: Vec<AtomicU32> = mem::zeroed(nf);
    let init = |r: std::ops::Range<usize>| {
        for f in r {
            parent[f].store(f as u32, Relaxed);
        }
    };
    both(two, || init(0..fmid), || init(fmid..nf));
    let uf = UnionFind { parent: &parent };
    let edge_lane = |range: std::ops::Range<usize>| {
        let mut out = Edges::default();
        let mut ring: Vec<(f64, u32)> = Vec::new();
        let mut bucket: Vec<(u32, u32)> = Vec::new();
        for lo in range {
            bucket.clear();
            bucket.extend(
                entries[start[lo] as usize..start[lo + 1] as usize]
                    .iter()
                    .map(edge),
            );
            if bucket.len() > 1 {
                // Stable, so equal edges keep file order (as before).
                bucket.sort_by_key(|e| e.0);
            }
            let mut i = 0;
            while i < bucket.len() {
                let hi = bucket[i].0;
                let mut j = i + 1;
                while j < bucket.len() && bucket[j].0 == hi {
                    j += 1;
                }
                let run = &bucket[i..j];
                match run.len() {
                    1 => {
                        out.boundary += 1;
                        out.open_faces.push(run[0].1 >> 1);
                    }
                    2 => {
                        if (run[0].1 & 1) == (run[1].1 & 1) {
                            out.inconsistent += 1;
                        }
                        uf.union(run[0].1 >> 1, run[1].1 >> 1);
                    }
                    _ => {
                        out.nonmanifold += 1;
                        pair_around_edge(
                            p,
                            tris,
                            lo as u32,
                            hi,
                            run,
                            &mut ring,
                            &uf,
                            &mut out.open_faces,
                        );
                    }
                }
                i = j;
            }
        }
        out
    };
    let lanes: Vec<Edges> = if two {
        let half = start[nv] / 2;
        let mid = start.partition_point(|&x| x < half).min(nv);
        std::thread::scope(|sc| {
            let second = sc.spawn(|| edge_lane(mid..nv));
            let first = edge_lane(0..mid);
            vec![first, second.join().expect("edge thread")]
        })
    } else {
        vec![edge_lane(0..nv)]
    };
    let (mut boundary_edges, mut nonmanifold_edges, mut inconsistent_edges) = (0u64, 0u64, 0u64);
    // Faces that end up with an unmatched edge (for per-shell open counts).
    let mut open_faces: Vec<u32> = Vec::new();
    for l in lanes {
        boundary_edges += l.boundary;
        nonmanifold_edges += l.nonmanifold;
        inconsistent_edges += l.inconsistent;
        open_faces.extend(l.open_faces);
    }
    drop(entries);
    drop(start);

    // Shell labels in order of each shell's first triangle: a root is the
    // smallest face of its shell, so a shell's label is the number of roots
    // before its root. First each lane writes its faces' roots into their own
    // parent slots (finds only read the other slots, which hold an ancestor
    // either way) and marks the roots in a bitmap of whole 64-face words;
    // then, after the prefix counts of the bitmap, each face's label is its
    // root's rank, written in place of the parents.
    const NONE: u32 = u32::MAX;
    let wmid = if two {
        nf.div_ceil(64) / 2 * 64
    } else {
        nf.div_ceil(64) * 64
    };
    let mut bitmap: Vec<u64> = vec![0; nf.div_ceil(64)];
    let roots = |w0: usize, words: &mut [u64]| {
        for (i, word) in words.iter_mut().enumerate() {
            let f0 = (w0 + i) * 64;
            for f in f0..(f0 + 64).min(nf) {
                let r = uf.root(f as u32);
                parent[f].store(r, Relaxed);
                if r == f as u32 && !collapsed(&tris[f]) {
                    *word |= 1 << (f - f0);
                }
            }
        }
    };
    {
        let (first, second) = bitmap.split_at_mut(wmid / 64);
        both(two, || roots(0, first), || roots(wmid / 64, second));
    }
    let mut rank: Vec<u32> = Vec::with_capacity(bitmap.len());
    let mut nshells = 0u32;
    for w in &bitmap {
        rank.push(nshells);
        nshells += w.count_ones();
    }
    // (In place: AtomicU32 has u32's layout, so this reuses the allocation.)
    let mut label: Vec<u32> = parent.into_iter().map(AtomicU32::into_inner).collect();
    let assign = |f0: usize, labels: &mut [u32]| {
        for (i, l) in labels.iter_mut().enumerate() {
            let r = *l as usize;
            *l = if collapsed(&tris[f0 + i]) {
                NONE
            } else {
                rank[r / 64] + (bitmap[r / 64] & ((1u64 << (r % 64)) - 1)).count_ones()
            };
        }
    };
    {
        let (first, second) = label.split_at_mut(wmid.min(nf));
        both(two, || assign(0, first), || assign(wmid.min(nf), second));
    }
    drop(rank);
    drop(bitmap);
    let ns = nshells as usize;

    // Volume, area, per-shell sums; degenerate triangles. In two lanes (the
    // halves of the triangles, in parallel) when the model is large and has
    // few shells; the grouping of the f64 sums depends only on the model, never
    // on the machine, so the same bytes always give the same bits.
    // The same lanes count each shell's vertices and grow its box (see
    // `claim_vertices`).
    let lanes = if two && ns <= LANE_MAX_SHELLS { 2 } else { 1 };
    let claims: Vec<AtomicU32> = mem::zeroed(nv);
    let measure_range = |r: std::ops::Range<usize>| {
        let mut sums = measure(p, tris, &label, centre, r.clone(), ns);
        let extra = claim_vertices(p, tris, &label, &claims, r, &mut sums.shells);
        (sums, extra)
    };
    let mid = if lanes == 2 { nf / 2 } else { nf };
    // (One lane: no second set of per-shell sums, which may be many.)
    let (first, second) = both(
        lanes == 2,
        || measure_range(0..mid),
        || (lanes == 2).then(|| measure_range(mid..nf)),
    );
    drop(claims);
    let mut degenerate = 0u64;
    let mut volume = 0.0f64;
    let mut area = 0.0f64;
    let mut acc = vec![Acc::new(); ns];
    let mut extra: Vec<(u32, u32)> = Vec::new();
    for (lane, more) in std::iter::once(first).chain(second) {
        degenerate += lane.degenerate;
        volume += lane.volume;
        area += lane.area;
        for (s, l) in acc.iter_mut().zip(lane.shells) {
            s.triangles += l.triangles;
            s.volume += l.volume;
            s.area += l.area;
            // Strictly larger: the earlier face wins a tie, as in one pass.
            if l.largest_face.0 > s.largest_face.0 {
                s.largest_face = l.largest_face;
            }
            s.vertices += l.vertices;
            for k in 0..3 {
                s.min[k] = lower(s.min[k], l.min[k]);
                s.max[k] = upper(s.max[k], l.max[k]);
            }
        }
        extra.extend(more);
    }
    // Vertices shared with another shell, counted once per shell.
    extra.sort_unstable();
    extra.dedup();
    for (v, l) in extra {
        add_vertex(&mut acc[l as usize], &p[v as usize]);
    }
    volume /= 6.0;
    area *= 0.5;
    for s in &mut acc {
        s.volume /= 6.0;
        s.area *= 0.5;
    }
    for &f in &open_faces {
        acc[label[f as usize] as usize].open += 1;
    }
    drop(open_faces);
    // A closed shell (triangles paired along every edge) has 3F/2 edges; the
    // Euler characteristic, and so the genus, is only used for closed shells.
    for s in &mut acc {
        s.edges = (3 * s.triangles).div_ceil(2);
    }

    let (kinds, containment_undecided) = classify(p, tris, &label, &acc);

    let mut shells: Vec<Shell> = acc
        .iter()
        .zip(&kinds)
        .map(|(s, &kind)| {
            let closed = s.open == 0;
            let chi = s.vertices as i64 - s.edges as i64 + s.triangles as i64;
            Shell {
                triangles: s.triangles,
                volume_mm3: s.volume,
                area_mm2: s.area,
                bbox_min: s.min,
                bbox_max: s.max,
                open_edges: s.open,
                closed,
                genus: (closed && chi <= 2 && chi % 2 == 0).then(|| ((2 - chi) / 2) as u64),
                kind,
            }
        })
        .collect();

    let count = |k: ShellKind| shells.iter().filter(|s| s.kind == k).count() as u64;
    let voids = count(ShellKind::Void);
    let stones = count(ShellKind::Stone);
    let inverted_shells = count(ShellKind::Inverted);
    let nested = count(ShellKind::Nested);
    let open_shells = count(ShellKind::Open);
    // Overlapping stone shells (a gem and its parts) are one stone: its
    // volume is the outer shell's.
    let stone_volume: f64 = shells
        .iter()
        .filter(|s| s.kind == ShellKind::Stone)
        .fold(0.0, |v, s| v + s.volume_mm3);
    let metal_volume: f64 = shells
        .iter()
        .map(|s| match s.kind {
            ShellKind::Stone | ShellKind::StonePart => 0.0,
            ShellKind::Inverted => s.volume_mm3.abs(),
            _ => s.volume_mm3,
        })
        .sum();
    let metal_rule = if stones > 0 {
        MetalRule::StonesExcluded
    } else if ns == 1 {
        MetalRule::SingleShell
    } else {
        MetalRule::AllShells
    };
    let inverted = volume < 0.0;

    let mut warnings = Vec::new();
    if inverted {
        warnings.push(Warning::InsideOut);
    } else if inverted_shells > 0 {
        warnings.push(Warning::InvertedShells {
            count: inverted_shells,
        });
    }
    if open_shells > 0 {
        warnings.push(Warning::OpenShells {
            count: open_shells,
            open_edges: boundary_edges,
        });
    }
    if nonmanifold_edges > 0 {
        warnings.push(Warning::NonManifoldEdges {
            count: nonmanifold_edges,
        });
    }
    if voids > 0 {
        warnings.push(Warning::Voids { count: voids });
    }
    if nested > 0 {
        warnings.push(Warning::NestedShells { count: nested });
    }
    if stones > 0 {
        warnings.push(Warning::Stones { count: stones });
    }
    if containment_undecided {
        warnings.push(Warning::ContainmentUndecided);
    }
    if degenerate > 0 {
        warnings.push(Warning::DegenerateTriangles { count: degenerate });
    }
    if shells.len() > MAX_LISTED_SHELLS {
        shells.sort_by(|a, b| {
            b.volume_mm3
                .abs()
                .total_cmp(&a.volume_mm3.abs())
                .then(b.area_mm2.total_cmp(&a.area_mm2))
        });
        shells.truncate(MAX_LISTED_SHELLS);
        warnings.push(Warning::ShellListTruncated {
            listed: MAX_LISTED_SHELLS as u64,
            total: ns as u64,
        });
    }

    Analysis {
        format,
        triangles: nf as u64,
        vertices,
        volume_mm3: volume,
        area_mm2: area,
        bbox_min: bmin,
        bbox_max: bmax,
        shells: ns as u64,
        boundary_edges,
        nonmanifold_edges,
        degenerate_triangles: degenerate,
        inconsistent_edges,
        flipped_triangles: 0,
        non_orientable_shells: 0,
        containment_undecided,
        inverted,
        voids,
        stones,
        metal_volume_mm3: metal_volume,
        stone_volume_mm3: stone_volume,
        metal_rule,
        shell_details: shells,
        warnings,
    }
}

/// What one lane of the volume pass adds up.
struct Sums {
    degenerate: u64,
    volume: f64,
    area: f64,
    shells: Vec<Acc>,
}

/// Six times the signed volume and twice the area of the faces in `range`,
/// overall and per shell, and the degenerate triangles among them.
fn measure(
    p: &[[f64; 3]],
    tris: &[[u32; 3]],
    label: &[u32],
    centre: [f64; 3],
    range: std::ops::Range<usize>,
    ns: usize,
) -> Sums {
    const NONE: u32 = u32::MAX;
    let mut out = Sums {
        degenerate: 0,
        volume: 0.0,
        area: 0.0,
        shells: vec![Acc::new(); ns],
    };
    let start = range.start;
    for (i, (t, &l)) in tris[range.clone()].iter().zip(&label[range]).enumerate() {
        if l == NONE {
            out.degenerate += 1;
            continue;
        }
        let a = sub(p[t[0] as usize], centre);
        let b = sub(p[t[1] as usize], centre);
        let c = sub(p[t[2] as usize], centre);
        let (ab, bc, ca) = (sub(b, a), sub(c, b), sub(a, c));
        let twice_area = norm(cross(ab, sub(c, a)));
        let longest = dot(ab, ab).max(dot(bc, bc)).max(dot(ca, ca));
        if twice_area <= 1e-12 * longest {
            out.degenerate += 1;
        }
        let v6 = dot(a, cross(b, c));
        let s = &mut out.shells[l as usize];
        s.triangles += 1;
        s.volume += v6;
        s.area += twice_area;
        if twice_area > s.largest_face.0 {
            s.largest_face = (twice_area, (start + i) as u32);
        }
        out.volume += v6;
        out.area += twice_area;
    }
    out
}

/// Joins the triangles around a non-manifold edge pairwise (see module docs).
#[allow(clippy::too_many_arguments)]
fn pair_around_edge(
    p: &[[f64; 3]],
    tris: &[[u32; 3]],
    lo: u32,
    hi: u32,
    run: &[(u32, u32)],
    ring: &mut Vec<(f64, u32)>,
    uf: &UnionFind<'_>,
    open_faces: &mut Vec<u32>,
) {
    let o = p[lo as usize];
    let d = sub(p[hi as usize], o);
    // A basis perpendicular to the edge.
    let helper = if d[0].abs() <= d[1].abs() && d[0].abs() <= d[2].abs() {
        [1.0, 0.0, 0.0]
    } else if d[1].abs() <= d[2].abs() {
        [0.0, 1.0, 0.0]
    } else {
        [0.0, 0.0, 1.0]
    };
    let e1 = cross(d, helper);
    let e2 = cross(d, e1);
    // e1 × e2 points along d for a right-handed angle about d.
    let (e1, e2) = if dot(cross(e1, e2), d) >= 0.0 {
        (e1, e2)
    } else {
        (e2, e1)
    };
    ring.clear();
    for &(_, tag) in run {
        let t = tris[(tag >> 1) as usize];
        let w = t.into_iter().find(|&v| v != lo && v != hi).unwrap_or(t[0]);
        let r = sub(p[w as usize], o);
        ring.push((dot(r, e2).atan2(dot(r, e1)), tag));
    }
    ring.sort_by(|a, b| a.0.total_cmp(&b.0));
    let k = ring.len();
    let mut paired = vec![false; k];
    // A backwards triangle followed counter-clockwise by a forwards one encloses
    // material between them.
    for i in 0..k {
        let j = (i + 1) % k;
        if !paired[i] && !paired[j] && ring[i].1 & 1 == 1 && ring[j].1 & 1 == 0 {
            paired[i] = true;
            paired[j] = true;
            uf.union(ring[i].1 >> 1, ring[j].1 >> 1);
        }
    }
    // Inconsistent winding: pair what is left with its angular neighbour.
    let mut pending: Option<usize> = None;
    for i in 0..k {
        if paired[i] {
            continue;
        }
        match pending.take() {
            Some(a) => uf.union(ring[a].1 >> 1, ring[i].1 >> 1),
            None => pending = Some(i),
        }
    }
    if let Some(a) = pending {
        open_faces.push(ring[a].1 >> 1);
    }
}

/// Counts a vertex in a shell and grows the shell's box by it.
fn add_vertex(s: &mut Acc, q: &[f64; 3]) {
    s.vertices += 1;
    for (k, &c) in q.iter().enumerate() {
        s.min[k] = lower(s.min[k], c);
        s.max[k] = upper(s.max[k], c);
    }
}

/// The smaller coordinate, -0 below +0: unlike `f64::min`, which leaves the
/// sign of a tie between zeros to the compiler, the result does not depend on
/// the order, so a shell's box is the same whichever lane claimed which of
/// its vertices. (NaN is never taken, as with `f64::min`.)
#[inline]
fn lower(a: f64, b: f64) -> f64 {
    if b < a || (b == a && b.is_sign_negative()) {
        b
    } else {
        a
    }
}

/// The larger coordinate, +0 above -0 (see [`lower`]).
#[inline]
fn upper(a: f64, b: f64) -> f64 {
    if b > a || (b == a && b.is_sign_positive()) {
        b
    } else {
        a
    }
}

/// Distinct vertices per shell (a vertex shared by two shells counts in
/// both), for the faces in `range`: a vertex is claimed, atomically, by the
/// first shell seen using it and counted there (in `part`, which also grows
/// that shell's box); the (vertex, shell) pairs of the other shells using it
/// are returned, to be deduplicated and counted once all lanes are done. So
/// each pair counts once, and the counts and boxes (exact minima and maxima)
/// do not depend on the lanes or their order.
fn claim_vertices(
    p: &[[f64; 3]],
    tris: &[[u32; 3]],
    label: &[u32],
    claims: &[AtomicU32],
    range: std::ops::Range<usize>,
    part: &mut [Acc],
) -> Vec<(u32, u32)> {
    const NONE: u32 = u32::MAX;
    let mut extra: Vec<(u32, u32)> = Vec::new();
    for (t, &l) in tris[range.clone()].iter().zip(&label[range]) {
        if l == NONE {
            continue;
        }
        for &v in t {
            // The shell (plus one) that claimed the vertex; 0 = none yet.
            let c = &claims[v as usize];
            let mut owner = c.load(Relaxed);
            if owner == 0 {
                match c.compare_exchange(0, l + 1, Relaxed, Relaxed) {
                    Ok(_) => {
                        add_vertex(&mut part[l as usize], &p[v as usize]);
                        continue;
                    }
                    Err(o) => owner = o,
                }
            }
            if owner != l + 1 {
                extra.push((v, l));
            }
        }
    }
    extra
}

/// Winding number of a closed set of triangles around a point
/// (van Oosterom–Strackee solid angles): ±1 inside, 0 outside.
pub(crate) fn winding_number(p: &[[f64; 3]], tris: &[[u32; 3]], faces: &[u32], q: [f64; 3]) -> f64 {
    let mut total = 0.0;
    for &f in faces {
        let t = tris[f as usize];
        let a = sub(p[t[0] as usize], q);
        let b = sub(p[t[1] as usize], q);
        let c = sub(p[t[2] as usize], q);
        let (la, lb, lc) = (norm(a), norm(b), norm(c));
        let num = dot(a, cross(b, c));
        let den = la * lb * lc + dot(a, b) * lc + dot(a, c) * lb + dot(b, c) * la;
        total += 2.0 * num.atan2(den);
    }
    total / (4.0 * std::f64::consts::PI)
}

/// Decides what each shell is.
///
/// * open (has unmatched edges): `Open` — its volume is not meaningful;
/// * closed, negative volume, inside a positive shell: `Void` (a hollow);
/// * closed, negative volume, inside nothing: `Inverted` (inside-out);
/// * closed, positive, inside another positive shell: `Nested`;
/// * closed, positive, otherwise: `Solid`;
/// * then `Stone` / `StonePart` by the stone rule ([`find_stones`]).
///
/// Also says whether the containment budget ran out before every closed
/// shell was tested (then a void may be taken for an inside-out part).
fn classify(
    p: &[[f64; 3]],
    tris: &[[u32; 3]],
    label: &[u32],
    acc: &[Acc],
) -> (Vec<ShellKind>, bool) {
    let ns = acc.len();
    let mut kinds: Vec<ShellKind> = acc
        .iter()
        .map(|s| {
            if s.open > 0 {
                ShellKind::Open
            } else if s.volume < 0.0 {
                ShellKind::Inverted
            } else {
                ShellKind::Solid
            }
        })
        .collect();
    let closed: Vec<usize> = (0..ns).filter(|&i| acc[i].open == 0).collect();
    if closed.len() < 2 {
        return (kinds, false);
    }
    // Faces grouped by shell (counting sort).
    let mut off = vec![0u32; ns + 1];
    for &l in label {
        if l != u32::MAX {
            off[l as usize + 1] += 1;
        }
    }
    for i in 0..ns {
        off[i + 1] += off[i];
    }
    let mut fill = off.clone();
    let mut faces = vec![0u32; off[ns] as usize];
    for (f, &l) in label.iter().enumerate() {
        if l != u32::MAX {
            faces[fill[l as usize] as usize] = f as u32;
            fill[l as usize] += 1;
        }
    }
    drop(fill);
    let shell_faces = |s: usize| -> &[u32] { &faces[off[s] as usize..off[s + 1] as usize] };

    // Containment: the smallest closed shell whose box holds this shell's box
    // and whose winding number at a point of this shell is non-zero.
    let mut by_size = closed.clone();
    by_size.sort_by(|&a, &b| acc[a].volume.abs().total_cmp(&acc[b].volume.abs()));
    let mut parent: Vec<Option<usize>> = vec![None; ns];
    let mut budget = CONTAINMENT_BUDGET;
    let mut undecided = false;
    for (ii, &s) in by_size.iter().enumerate() {
        let (_, f) = acc[s].largest_face;
        let t = tris[f as usize];
        let q = {
            let (a, b, c) = (p[t[0] as usize], p[t[1] as usize], p[t[2] as usize]);
            [
                (a[0] + b[0] + c[0]) / 3.0,
                (a[1] + b[1] + c[1]) / 3.0,
                (a[2] + b[2] + c[2]) / 3.0,
            ]
        };
        for &o in &by_size[ii + 1..] {
            let boxed =
                (0..3).all(|k| acc[o].min[k] <= acc[s].min[k] && acc[s].max[k] <= acc[o].max[k]);
            if !boxed {
                continue;
            }
            let fo = shell_faces(o);
            if budget < fo.len() as u64 {
                undecided = true;
                break;
            }
            budget -= fo.len() as u64;
            if winding_number(p, tris, fo, q).abs() > 0.5 {
                parent[s] = Some(o);
                break;
            }
        }
    }
    for &s in &closed {
        if let Some(o) = parent[s] {
            let outer_positive = acc[o].volume > 0.0;
            kinds[s] = match (acc[s].volume < 0.0, outer_positive) {
                (true, true) => ShellKind::Void,
                (true, false) => ShellKind::Inverted,
                (false, true) => ShellKind::Nested,
                (false, false) => ShellKind::Solid,
            };
        }
    }

    find_stones(p, tris, &shell_faces, acc, &parent, &mut kinds);
    (kinds, undecided)
}

/// Euler characteristic of a shell (2 for a closed genus-0 shell).
fn chi(a: &Acc) -> i64 {
    a.vertices as i64 - a.edges as i64 + a.triangles as i64
}

fn grown(a: &Acc, by: f64) -> ([f64; 3], [f64; 3]) {
    (a.min.map(|c| c - by), a.max.map(|c| c + by))
}

/// The stone rule (docs/geometry.md, "Stone rule"). The metal body is the
/// largest closed outward shell that is not inside another. A stone is a
/// closed, outward, genus-0 shell, not inside metal, other than the body, with
///
/// * at most [`STONE_MAX_TRIANGLES`] triangles and a quarter of the body's volume;
/// * its box, grown by its own diagonal, meeting the body's box (it is set in
///   or on the body, not a separate object beside it);
/// * compact: isoperimetric quotient 36πV²/A³ ≥ [`STONE_MIN_COMPACTNESS`]
///   (a sphere 1, a round brilliant ~0.61, a hemispherical cabochon 0.59, a
///   cube 0.52; flat plates, wires and prongs fall far below);
/// * star-shaped from its centroid (every triangle faces away from it), as
///   cut and cabochon stones are, with at least [`MIN_STONE_FACETS`] distinct
///   facet planes (a cube or a wedge is not a stone).
///
/// A closed genus-0 shell whose box lies in a stone's (grown by 5 % of its
/// diagonal) and whose centroid is inside that stone is part of it
/// ([`ShellKind::StonePart`]): CAD exporters write one gem as several
/// overlapping shells.
fn find_stones<'a>(
    p: &[[f64; 3]],
    tris: &[[u32; 3]],
    shell_faces: &dyn Fn(usize) -> &'a [u32],
    acc: &[Acc],
    parent: &[Option<usize>],
    kinds: &mut [ShellKind],
) {
    let ns = acc.len();
    let Some(body) = (0..ns)
        .filter(|&s| kinds[s] == ShellKind::Solid)
        .max_by(|&a, &b| acc[a].volume.total_cmp(&acc[b].volume))
    else {
        return;
    };
    let (bmin, bmax) = (acc[body].min, acc[body].max);
    let small = |s: usize| {
        acc[s].open == 0
            && acc[s].volume > 0.0
            && chi(&acc[s]) == 2
            && acc[s].triangles as usize <= STONE_MAX_TRIANGLES
    };
    let mut stones: Vec<usize> = Vec::new();
    let mut centroids: Vec<Option<[f64; 3]>> = vec![None; ns];
    for s in 0..ns {
        if s == body || kinds[s] != ShellKind::Solid || !small(s) {
            continue;
        }
        let a = &acc[s];
        if a.volume > STONE_MAX_FRACTION * acc[body].volume {
            continue;
        }
        let diag = norm(sub(a.max, a.min));
        let (gmin, gmax) = grown(a, diag);
        if !(0..3).all(|k| gmin[k] <= bmax[k] && bmin[k] <= gmax[k]) {
            continue;
        }
        let compactness = 36.0 * std::f64::consts::PI * a.volume * a.volume / a.area.powi(3);
        if compactness < STONE_MIN_COMPACTNESS {
            continue;
        }
        let faces = shell_faces(s);
        let c = centroid(p, tris, faces, a);
        centroids[s] = Some(c);
        if star_shaped_with_facets(p, tris, faces, c, diag) {
            kinds[s] = ShellKind::Stone;
            stones.push(s);
        }
    }
    if stones.is_empty() {
        return;
    }
    // Shells inside a stone are part of it.
    let mut budget = CONTAINMENT_BUDGET;
    for s in 0..ns {
        if !matches!(kinds[s], ShellKind::Solid | ShellKind::Nested) || s == body || !small(s) {
            continue;
        }
        // Nested in metal (its containment parent is not a stone) stays metal.
        if let Some(o) = parent[s]
            && kinds[o] != ShellKind::Stone
        {
            continue;
        }
        let a = &acc[s];
        for &t in &stones {
            let (gmin, gmax) = grown(&acc[t], 0.05 * norm(sub(acc[t].max, acc[t].min)));
            if !(0..3).all(|k| gmin[k] <= a.min[k] && a.max[k] <= gmax[k]) {
                continue;
            }
            let ft = shell_faces(t);
            if budget < ft.len() as u64 {
                return;
            }
            budget -= ft.len() as u64;
            let c = *centroids[s].get_or_insert_with(|| centroid(p, tris, shell_faces(s), a));
            if winding_number(p, tris, ft, c).abs() > 0.5 {
                kinds[s] = ShellKind::StonePart;
                break;
            }
        }
    }
}

/// The centroid of the volume a closed shell encloses.
fn centroid(p: &[[f64; 3]], tris: &[[u32; 3]], faces: &[u32], a: &Acc) -> [f64; 3] {
    let o = [
        0.5 * (a.min[0] + a.max[0]),
        0.5 * (a.min[1] + a.max[1]),
        0.5 * (a.min[2] + a.max[2]),
    ];
    let (mut w, mut m) = (0.0, [0.0; 3]);
    for &f in faces {
        let t = tris[f as usize];
        let (x, y, z) = (
            sub(p[t[0] as usize], o),
            sub(p[t[1] as usize], o),
            sub(p[t[2] as usize], o),
        );
        let v6 = dot(x, cross(y, z));
        w += v6;
        for k in 0..3 {
            m[k] += v6 * (x[k] + y[k] + z[k]);
        }
    }
    if w == 0.0 {
        return o;
    }
    [
        o[0] + m[0] / (4.0 * w),
        o[1] + m[1] / (4.0 * w),
        o[2] + m[2] / (4.0 * w),
    ]
}

/// Every triangle faces away from `c` (the tetrahedron it spans with `c` is
/// not negative beyond rounding), and the faces have at least
/// [`MIN_STONE_FACETS`] distinct normal directions.
fn star_shaped_with_facets(
    p: &[[f64; 3]],
    tris: &[[u32; 3]],
    faces: &[u32],
    c: [f64; 3],
    diag: f64,
) -> bool {
    let tol = 1e-12 * diag * diag * diag;
    let mut normals: Vec<[i64; 3]> = Vec::new();
    for &f in faces {
        let t = tris[f as usize];
        let (a, b, d) = (
            sub(p[t[0] as usize], c),
            sub(p[t[1] as usize], c),
            sub(p[t[2] as usize], c),
        );
        if dot(a, cross(b, d)) < -tol {
            return false;
        }
        if normals.len() < MIN_STONE_FACETS {
            let n = cross(sub(b, a), sub(d, a));
            let len = norm(n);
            if len > 0.0 {
                let q = n.map(|x| (x / len * 1e4).round() as i64);
                if !normals.contains(&q) {
                    normals.push(q);
                }
            }
        }
    }
    normals.len() >= MIN_STONE_FACETS
}

#[cfg(test)]
mod lanes {
    use super::*;

    /// Closed, open, touching and doubled tetrahedra, and collapsed
    /// triangles: every path of the edge and shell passes.
    fn tetrahedra(count: usize) -> Mesh {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut m = Mesh::default();
        for i in 0..count {
            let o = [0, 1, 2].map(|_| (rnd() % 200) as f64 * 0.5);
            let b = m.positions.len() as u32;
            m.positions.extend([
                o,
                [o[0] + 1.0, o[1], o[2]],
                [o[0], o[1] + 1.0, o[2]],
                [o[0], o[1], o[2] + 1.0],
            ]);
            // Every 7th shares a vertex with the one before (touching shells).
            let v0 = if i % 7 == 3 { b - 1 } else { b };
            let faces = [
                [v0, b + 2, b + 1],
                [v0, b + 1, b + 3],
                [v0, b + 3, b + 2],
                [b + 1, b + 2, b + 3],
            ];
            let keep = if i % 5 == 1 { 3 } else { 4 };
            m.triangles.extend(&faces[..keep]);
            if i % 11 == 2 {
                m.triangles.push([b, b, b + 1]);
            }
            if i % 13 == 4 {
                // A doubled face: three non-manifold edges.
                m.triangles.push(faces[3]);
            }
        }
        m
    }

    /// The lanes give what one lane gives: the same shells, labels, edges,
    /// counts, boxes and kinds; the sums equal up to their grouping.
    #[test]
    fn two_lanes_as_one() {
        let m = tetrahedra(3000);
        let one = analyze_in_lanes(&m, Format::StlBinary, false);
        let two = analyze_in_lanes(&m, Format::StlBinary, true);
        assert!(one.shells > 2000 && one.shells as usize <= LANE_MAX_SHELLS);
        assert!(one.nonmanifold_edges > 0 && one.boundary_edges > 0);
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(1.0);
        assert!(close(one.volume_mm3, two.volume_mm3));
        assert!(close(one.area_mm2, two.area_mm2));
        assert!(close(one.metal_volume_mm3, two.metal_volume_mm3));
        assert_eq!(one.shell_details.len(), two.shell_details.len());
        let strip = |mut a: Analysis| {
            for s in &a.shell_details {
                assert!(s.volume_mm3.is_finite() && s.area_mm2.is_finite());
            }
            for s in &mut a.shell_details {
                s.volume_mm3 = (s.volume_mm3 * 1e9).round();
                s.area_mm2 = (s.area_mm2 * 1e9).round();
            }
            (a.volume_mm3, a.area_mm2, a.metal_volume_mm3) = (0.0, 0.0, 0.0);
            format!("{a:?}")
        };
        assert_eq!(strip(one), strip(two));
    }

    /// Shell boxes take -0 below +0 whatever the order of the vertices.
    #[test]
    fn box_bounds_do_not_depend_on_order() {
        for (a, b) in [(0.0, -0.0), (-0.0, 0.0)] {
            assert!(lower(a, b).is_sign_negative() && lower(a, b) == 0.0);
            assert!(upper(a, b).is_sign_positive() && upper(a, b) == 0.0);
        }
        assert_eq!(lower(1.0, -2.0), -2.0);
        assert_eq!(upper(1.0, -2.0), 1.0);
        assert_eq!(lower(f64::INFINITY, 3.0), 3.0);
        assert_eq!(lower(3.0, f64::NAN), 3.0);
        assert_eq!(upper(3.0, f64::NAN), 3.0);
    }
}
