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

use crate::mesh::Mesh;
use crate::{Analysis, Format, Shell, ShellKind, Warning};

/// At most this many shells are listed in [`Analysis::shell_details`]
/// (largest first); the `shells` count is always complete.
pub const MAX_LISTED_SHELLS: usize = 1000;

/// Budget (triangle visits) for the containment tests between shells.
const CONTAINMENT_BUDGET: u64 = 10_000_000;
/// Shells larger than this are never classified as stones.
const STONE_MAX_TRIANGLES: usize = 5_000;
/// A stone has at least this many distinct facet planes.
const MIN_STONE_FACETS: usize = 8;

#[inline]
fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
#[inline]
fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}
#[inline]
fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
#[inline]
fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}

struct UnionFind {
    parent: Vec<u32>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        UnionFind {
            parent: (0..n as u32).collect(),
        }
    }
    #[inline]
    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let gp = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = gp;
            x = gp;
        }
        x
    }
    #[inline]
    fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            // Keep the smaller index as root: deterministic shell order.
            if ra < rb {
                self.parent[rb as usize] = ra;
            } else {
                self.parent[ra as usize] = rb;
            }
        }
    }
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

/// Analyses a welded mesh.
pub fn analyze_mesh(mesh: &Mesh, format: Format) -> Analysis {
    let p = &mesh.positions;
    let tris = &mesh.triangles;
    let nv = p.len();
    let nf = tris.len();

    // Bounding box over the vertices triangles use.
    let mut used = vec![false; nv];
    for t in tris {
        for &i in t {
            used[i as usize] = true;
        }
    }
    let mut bmin = [f64::INFINITY; 3];
    let mut bmax = [f64::NEG_INFINITY; 3];
    let mut vertices = 0u64;
    for (q, &u) in p.iter().zip(&used) {
        if u {
            vertices += 1;
            for k in 0..3 {
                bmin[k] = bmin[k].min(q[k]);
                bmax[k] = bmax[k].max(q[k]);
            }
        }
    }
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

    // Edge buckets keyed by the lower vertex. An entry is a corner id
    // 3 * face + k, standing for the edge from corner k to corner k + 1 of the
    // face (4 bytes: the upper vertex and the direction are read back from
    // the triangle). Buckets are filled back to front, so `start` ends up
    // holding each bucket's first entry without a second offsets array.
    assert!(
        nf < (u32::MAX / 3) as usize,
        "more than 1.4 billion triangles"
    );
    let collapsed = |t: &[u32; 3]| t[0] == t[1] || t[1] == t[2] || t[0] == t[2];
    let mut start = vec![0u32; nv + 1];
    for t in tris.iter().filter(|t| !collapsed(t)) {
        for k in 0..3 {
            let (a, b) = (t[k], t[(k + 1) % 3]);
            start[a.min(b) as usize] += 1;
        }
    }
    let mut total = 0u32;
    for s in start.iter_mut() {
        total += *s;
        *s = total;
    }
    let mut entries = vec![0u32; total as usize];
    for (f, t) in tris.iter().enumerate().rev() {
        if collapsed(t) {
            continue;
        }
        for k in (0..3).rev() {
            let (a, b) = (t[k], t[(k + 1) % 3]);
            let slot = &mut start[a.min(b) as usize];
            *slot -= 1;
            entries[*slot as usize] = (3 * f + k) as u32;
        }
    }
    // The upper vertex and direction of an entry's edge, as (hi, face << 1 | backwards).
    let edge = |e: u32| {
        let (f, k) = ((e / 3) as usize, (e % 3) as usize);
        let (a, b) = (tris[f][k], tris[f][(k + 1) % 3]);
        if a < b {
            (b, (f as u32) << 1)
        } else {
            (a, (f as u32) << 1 | 1)
        }
    };

    let mut uf = UnionFind::new(nf);
    let mut boundary_edges = 0u64;
    let mut nonmanifold_edges = 0u64;
    let mut inconsistent_edges = 0u64;
    // Faces that end up with an unmatched edge (for per-shell open counts).
    let mut open_faces: Vec<u32> = Vec::new();
    let mut ring: Vec<(f64, u32)> = Vec::new();
    let mut bucket: Vec<(u32, u32)> = Vec::new();
    for lo in 0..nv {
        bucket.clear();
        bucket.extend(
            entries[start[lo] as usize..start[lo + 1] as usize]
                .iter()
                .map(|&e| edge(e)),
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
                    boundary_edges += 1;
                    open_faces.push(run[0].1 >> 1);
                }
                2 => {
                    if (run[0].1 & 1) == (run[1].1 & 1) {
                        inconsistent_edges += 1;
                    }
                    uf.union(run[0].1 >> 1, run[1].1 >> 1);
                }
                _ => {
                    nonmanifold_edges += 1;
                    pair_around_edge(
                        p,
                        tris,
                        lo as u32,
                        hi,
                        run,
                        &mut ring,
                        &mut uf,
                        &mut open_faces,
                    );
                }
            }
            i = j;
        }
    }
    drop(entries);
    drop(start);
    drop(bucket);

    // Shell labels in order of each shell's first triangle, computed in place
    // of the union-find parents: a root is the smallest face of its shell and
    // every parent is smaller than its child, so one pass in face order sees
    // each parent already resolved.
    const NONE: u32 = u32::MAX;
    let mut label = uf.parent;
    let mut nshells = 0u32;
    for f in 0..nf {
        if collapsed(&tris[f]) {
            label[f] = NONE;
            continue;
        }
        let r = label[f] as usize;
        label[f] = if r == f {
            nshells += 1;
            nshells - 1
        } else {
            // r < f is already a label (its root's), or r is a root < f
            // replaced by its label; either way label[r] is the shell of f.
            label[r]
        };
    }
    let ns = nshells as usize;
    let mut acc = vec![Acc::new(); ns];

    // Volume, area, per-shell boxes; degenerate triangles.
    let mut degenerate = 0u64;
    let mut volume = 0.0f64;
    let mut area = 0.0f64;
    for (f, t) in tris.iter().enumerate() {
        if label[f] == NONE {
            degenerate += 1;
            continue;
        }
        let a = sub(p[t[0] as usize], centre);
        let b = sub(p[t[1] as usize], centre);
        let c = sub(p[t[2] as usize], centre);
        let cr = cross(sub(b, a), sub(c, a));
        let twice_area = norm(cr);
        let longest = dot(sub(b, a), sub(b, a))
            .max(dot(sub(c, b), sub(c, b)))
            .max(dot(sub(a, c), sub(a, c)));
        if twice_area <= 1e-12 * longest {
            degenerate += 1;
        }
        let v6 = dot(a, cross(b, c));
        let s = &mut acc[label[f] as usize];
        s.triangles += 1;
        s.volume += v6;
        s.area += twice_area;
        if twice_area > s.largest_face.0 {
            s.largest_face = (twice_area, f as u32);
        }
        for q in [a, b, c] {
            for k in 0..3 {
                s.min[k] = s.min[k].min(q[k]);
                s.max[k] = s.max[k].max(q[k]);
            }
        }
        volume += v6;
        area += twice_area;
    }
    volume /= 6.0;
    area *= 0.5;
    for s in &mut acc {
        s.volume /= 6.0;
        s.area *= 0.5;
        for k in 0..3 {
            s.min[k] += centre[k];
            s.max[k] += centre[k];
        }
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
    count_shell_vertices(tris, &label, nv, &mut acc);

    let kinds = classify(p, tris, &label, &acc);

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
    let stone_volume: f64 = shells
        .iter()
        .filter(|s| s.kind == ShellKind::Stone)
        .map(|s| s.volume_mm3)
        .sum();
    let metal_volume: f64 = shells
        .iter()
        .map(|s| match s.kind {
            ShellKind::Stone => 0.0,
            ShellKind::Inverted => s.volume_mm3.abs(),
            _ => s.volume_mm3,
        })
        .sum();
    let inverted = volume < 0.0;

    let mut warnings = Vec::new();
    if inverted {
        warnings.push(Warning::InsideOut);
    } else if inverted_shells > 0 {
        warnings.push(Warning::InvertedShells {
            count: inverted_shells,
        });
    }
    if inconsistent_edges > 0 {
        warnings.push(Warning::InconsistentWinding {
            edges: inconsistent_edges,
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
        inverted,
        voids,
        stones,
        metal_volume_mm3: metal_volume,
        stone_volume_mm3: stone_volume,
        shell_details: shells,
        warnings,
    }
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
    uf: &mut UnionFind,
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

/// Distinct vertices per shell (a vertex shared by two shells counts in both).
fn count_shell_vertices(tris: &[[u32; 3]], label: &[u32], nv: usize, acc: &mut [Acc]) {
    const NONE: u32 = u32::MAX;
    let mut first = vec![NONE; nv];
    let mut extra: Vec<(u32, u32)> = Vec::new();
    for (f, t) in tris.iter().enumerate() {
        let l = label[f];
        if l == NONE {
            continue;
        }
        for &v in t {
            let s = &mut first[v as usize];
            if *s == NONE {
                *s = l;
                acc[l as usize].vertices += 1;
            } else if *s != l {
                extra.push((v, l));
            }
        }
    }
    extra.sort_unstable();
    extra.dedup();
    for (_, l) in extra {
        acc[l as usize].vertices += 1;
    }
}

/// Winding number of a closed set of triangles around a point
/// (van Oosterom–Strackee solid angles): ±1 inside, 0 outside.
fn winding_number(p: &[[f64; 3]], tris: &[[u32; 3]], faces: &[u32], q: [f64; 3]) -> f64 {
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
/// * closed, positive, otherwise: `Solid`, or `Stone` by the rule below.
///
/// Stone rule: in a model of several shells, a closed, outward-facing,
/// genus-0 shell that is convex (every vertex lies behind every face plane,
/// within 1e-4 of the shell's size), has at least 8 distinct facet planes,
/// and has at most a quarter of the volume of the largest solid.
/// Cut gemstones are convex polyhedra set as separate shells; metal parts of a
/// ring have a finger hole (genus ≥ 1) or concave details, and the largest
/// solid is taken to be the metal body.
fn classify(p: &[[f64; 3]], tris: &[[u32; 3]], label: &[u32], acc: &[Acc]) -> Vec<ShellKind> {
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
        return kinds;
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
    let shell_faces = |s: usize| &faces[off[s] as usize..off[s + 1] as usize];

    // Containment: the smallest closed shell whose box holds this shell's box
    // and whose winding number at a point of this shell is non-zero.
    let mut by_size = closed.clone();
    by_size.sort_by(|&a, &b| acc[a].volume.abs().total_cmp(&acc[b].volume.abs()));
    let mut parent: Vec<Option<usize>> = vec![None; ns];
    let mut budget = CONTAINMENT_BUDGET;
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

    // Stones.
    let largest = (0..ns)
        .filter(|&s| kinds[s] == ShellKind::Solid)
        .max_by(|&a, &b| acc[a].volume.total_cmp(&acc[b].volume));
    for s in 0..ns {
        if kinds[s] != ShellKind::Solid || Some(s) == largest {
            continue;
        }
        let a = &acc[s];
        let chi = a.vertices as i64 - a.edges as i64 + a.triangles as i64;
        if chi != 2 || a.triangles as usize > STONE_MAX_TRIANGLES {
            continue;
        }
        let big = largest.map_or(0.0, |l| acc[l].volume);
        if a.volume <= 0.25 * big && is_convex(p, tris, shell_faces(s), a) {
            kinds[s] = ShellKind::Stone;
        }
    }
    kinds
}

fn is_convex(p: &[[f64; 3]], tris: &[[u32; 3]], faces: &[u32], a: &Acc) -> bool {
    let mut verts: Vec<u32> = faces.iter().flat_map(|&f| tris[f as usize]).collect();
    verts.sort_unstable();
    verts.dedup();
    let tol = 1e-4 * norm(sub(a.max, a.min));
    // Distinct facet planes (by normal direction): a cut stone has many (a
    // round brilliant 57), a cube or a wedge few.
    let mut normals: Vec<[i64; 3]> = Vec::new();
    for &f in faces {
        let t = tris[f as usize];
        let o = p[t[0] as usize];
        let n = cross(sub(p[t[1] as usize], o), sub(p[t[2] as usize], o));
        let len = norm(n);
        if len == 0.0 {
            continue;
        }
        let n = [n[0] / len, n[1] / len, n[2] / len];
        let q = n.map(|c| (c * 1e4).round() as i64);
        if normals.len() < MIN_STONE_FACETS && !normals.contains(&q) {
            normals.push(q);
        }
        if verts.iter().any(|&v| dot(sub(p[v as usize], o), n) > tol) {
            return false;
        }
    }
    normals.len() >= MIN_STONE_FACETS
}
