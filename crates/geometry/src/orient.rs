//! Consistent orientation of shells whose triangles are wound inconsistently.
//!
//! Exporters and hand-edited files sometimes turn some triangles of a closed
//! shell the wrong way. The signed volume of such a shell is then meaningless
//! (each turned triangle subtracts what it should add), so before anything is
//! measured the winding is repaired:
//!
//! 1. triangles are joined across *manifold* edges (used by exactly two
//!    triangles); two triangles that run their shared edge the same way
//!    disagree, so one of them must be turned. A breadth-first walk from the
//!    first triangle of each patch gives every triangle a side; a patch where
//!    the walk meets a triangle from both sides (a Möbius strip, a Klein
//!    bottle) cannot be oriented at all and is counted as non-orientable;
//! 2. each repaired patch that is closed by itself (every edge manifold) is
//!    then turned as a whole so that its signed volume is positive, unless it
//!    lies inside an odd number of other closed patches: then it is a void
//!    and stays negative (nesting parity, decided by the winding number of a
//!    point of it against the other closed patches);
//! 3. a repaired patch that is not closed by itself (open, or joined to
//!    others along non-manifold edges) keeps the side most of its triangles
//!    already had (the fewest turned).
//!
//! Patches that were consistent are never turned, so an inside-out model
//! stays inside-out (the analysis reports that separately).

use crate::analysis::{cross, dot, sub, winding_number};

/// What the repair decided.
pub(crate) struct Orientation {
    /// One flag per face: turn it (reverse its winding).
    pub flip: Vec<bool>,
    /// Faces turned.
    pub flipped: u64,
    /// Patches that cannot be oriented consistently.
    pub non_orientable: u64,
    /// The nesting parity of some repaired patch could not be decided
    /// within the containment budget (its sign may be wrong).
    pub undecided: bool,
}

impl Orientation {
    /// The triangles with the turned ones reversed.
    pub fn apply(&self, tris: &[[u32; 3]]) -> Vec<[u32; 3]> {
        tris.iter()
            .zip(&self.flip)
            .map(|(t, &f)| if f { [t[0], t[2], t[1]] } else { *t })
            .collect()
    }
}

const NONE: u32 = u32::MAX;

/// Decides which faces to turn (see the module docs). `budget` bounds the
/// triangle visits of the containment tests.
pub(crate) fn orient(p: &[[f64; 3]], tris: &[[u32; 3]], mut budget: u64) -> Orientation {
    let nf = tris.len();
    let collapsed = |t: &[u32; 3]| t[0] == t[1] || t[1] == t[2] || t[0] == t[2];

    // Half-edges keyed by (lower, upper) vertex; the tag is face << 1 | backwards.
    let mut half: Vec<(u64, u32)> = Vec::with_capacity(3 * nf);
    for (f, t) in tris.iter().enumerate() {
        if collapsed(t) {
            continue;
        }
        for k in 0..3 {
            let (a, b) = (t[k], t[(k + 1) % 3]);
            let key = (a.min(b) as u64) << 32 | a.max(b) as u64;
            half.push((key, (f as u32) << 1 | (a > b) as u32));
        }
    }
    half.sort_unstable_by_key(|h| h.0);

    // Adjacency across manifold edges (CSR): neighbour << 1 | must-differ.
    let mut deg = vec![0u32; nf + 1];
    // Faces with an edge that is not manifold (open or shared by > 2).
    let mut open = vec![false; nf];
    type Run<'a> = Box<dyn FnMut(&[(u64, u32)]) + 'a>;
    let runs = |half: &[(u64, u32)], mut each: Run<'_>| {
        let mut i = 0;
        while i < half.len() {
            let mut j = i + 1;
            while j < half.len() && half[j].0 == half[i].0 {
                j += 1;
            }
            each(&half[i..j]);
            i = j;
        }
    };
    runs(
        &half,
        Box::new(|run| {
            if run.len() == 2 {
                deg[(run[0].1 >> 1) as usize + 1] += 1;
                deg[(run[1].1 >> 1) as usize + 1] += 1;
            } else {
                for h in run {
                    open[(h.1 >> 1) as usize] = true;
                }
            }
        }),
    );
    for i in 0..nf {
        deg[i + 1] += deg[i];
    }
    let mut adj = vec![0u32; deg[nf] as usize];
    {
        let mut fill = deg.clone();
        runs(
            &half,
            Box::new(|run| {
                if run.len() == 2 {
                    let (a, b) = (run[0].1 >> 1, run[1].1 >> 1);
                    let differ = (run[0].1 & 1 == run[1].1 & 1) as u32;
                    adj[fill[a as usize] as usize] = b << 1 | differ;
                    fill[a as usize] += 1;
                    adj[fill[b as usize] as usize] = a << 1 | differ;
                    fill[b as usize] += 1;
                }
            }),
        );
    }
    drop(half);

    // Breadth-first walk per patch.
    struct Patch {
        faces: Vec<u32>,
        conflict: bool,
        closed: bool,
        turned: u64,
    }
    let mut patch_of = vec![NONE; nf];
    let mut flip = vec![false; nf];
    let mut patches: Vec<Patch> = Vec::new();
    let mut queue: Vec<u32> = Vec::new();
    for s in 0..nf {
        if patch_of[s] != NONE || collapsed(&tris[s]) {
            continue;
        }
        let id = patches.len() as u32;
        let mut pt = Patch {
            faces: Vec::new(),
            conflict: false,
            closed: true,
            turned: 0,
        };
        patch_of[s] = id;
        queue.clear();
        queue.push(s as u32);
        let mut head = 0;
        while head < queue.len() {
            let f = queue[head] as usize;
            head += 1;
            pt.faces.push(f as u32);
            pt.closed &= !open[f];
            pt.turned += flip[f] as u64;
            for &e in &adj[deg[f] as usize..deg[f + 1] as usize] {
                let (n, differ) = ((e >> 1) as usize, e & 1 == 1);
                let want = flip[f] ^ differ;
                if patch_of[n] == NONE {
                    patch_of[n] = id;
                    flip[n] = want;
                    queue.push(n as u32);
                } else if flip[n] != want {
                    pt.conflict = true;
                }
            }
        }
        patches.push(pt);
    }
    drop(adj);
    drop(deg);
    drop(open);

    let centre = {
        let mut lo = [f64::INFINITY; 3];
        let mut hi = [f64::NEG_INFINITY; 3];
        for t in tris {
            for &v in t {
                for k in 0..3 {
                    lo[k] = lo[k].min(p[v as usize][k]);
                    hi[k] = hi[k].max(p[v as usize][k]);
                }
            }
        }
        if lo[0].is_finite() {
            [
                0.5 * (lo[0] + hi[0]),
                0.5 * (lo[1] + hi[1]),
                0.5 * (lo[2] + hi[2]),
            ]
        } else {
            [0.0; 3]
        }
    };
    let turned_tri = |f: usize, flip: &[bool]| {
        let t = tris[f];
        if flip[f] { [t[0], t[2], t[1]] } else { t }
    };

    // Closed, orientable patches: the candidates that may contain a repaired
    // one (their own sign does not matter for |winding number|).
    let boxes: Vec<([f64; 3], [f64; 3])> = patches
        .iter()
        .map(|pt| {
            let mut lo = [f64::INFINITY; 3];
            let mut hi = [f64::NEG_INFINITY; 3];
            if pt.closed && !pt.conflict {
                for &f in &pt.faces {
                    for v in tris[f as usize] {
                        for k in 0..3 {
                            lo[k] = lo[k].min(p[v as usize][k]);
                            hi[k] = hi[k].max(p[v as usize][k]);
                        }
                    }
                }
            }
            (lo, hi)
        })
        .collect();
    let mut out = Orientation {
        flip: Vec::new(),
        flipped: 0,
        non_orientable: 0,
        undecided: false,
    };
    // The triangles as walked (each patch consistent, its side not yet chosen).
    let walked: Vec<[u32; 3]> = (0..nf).map(|f| turned_tri(f, &flip)).collect();
    let mut invert = vec![false; patches.len()];
    for (i, pt) in patches.iter().enumerate() {
        if pt.conflict {
            out.non_orientable += 1;
        }
        if !pt.conflict && pt.turned == 0 {
            continue; // consistent already: never turned
        }
        let n = pt.faces.len() as u64;
        let majority = 2 * pt.turned > n;
        if pt.conflict || !pt.closed {
            invert[i] = majority;
            continue;
        }
        // Signed volume of the walked patch, and a point on it (the centroid
        // of its largest face).
        let mut vol = 0.0;
        let (mut best, mut q) = (-1.0, [0.0; 3]);
        for &f in &pt.faces {
            let t = walked[f as usize];
            let (a, b, c) = (
                sub(p[t[0] as usize], centre),
                sub(p[t[1] as usize], centre),
                sub(p[t[2] as usize], centre),
            );
            vol += dot(a, cross(b, c));
            let area = dot(cross(sub(b, a), sub(c, a)), cross(sub(b, a), sub(c, a)));
            if area > best {
                best = area;
                q = [0, 1, 2].map(|k| (a[k] + b[k] + c[k]) / 3.0 + centre[k]);
            }
        }
        // Nesting parity against the other closed, orientable patches.
        let mut depth = 0u32;
        let (lo, hi) = boxes[i];
        for (j, other) in patches.iter().enumerate() {
            if j == i || !other.closed || other.conflict {
                continue;
            }
            let (olo, ohi) = boxes[j];
            if !(0..3).all(|k| olo[k] <= lo[k] && hi[k] <= ohi[k]) {
                continue;
            }
            let cost = other.faces.len() as u64;
            if budget < cost {
                out.undecided = true;
                break;
            }
            budget -= cost;
            // The other patch's own side does not change |winding number|.
            if winding_number(p, &walked, &other.faces, q).abs() > 0.5 {
                depth += 1;
            }
        }
        let want_positive = depth.is_multiple_of(2);
        invert[i] = (vol > 0.0) != want_positive;
    }
    for (i, pt) in patches.iter().enumerate() {
        if invert[i] {
            for &f in &pt.faces {
                flip[f as usize] = !flip[f as usize];
            }
        }
    }
    out.flipped = flip.iter().filter(|&&f| f).count() as u64;
    out.flip = flip;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cube(o: f64, s: f64) -> (Vec<[f64; 3]>, Vec<[u32; 3]>) {
        let p: Vec<[f64; 3]> = (0..8)
            .map(|i| {
                [
                    o + s * (i & 1) as f64,
                    o + s * ((i >> 1) & 1) as f64,
                    o + s * ((i >> 2) & 1) as f64,
                ]
            })
            .collect();
        // Outward (counter-clockwise seen from outside).
        let t = vec![
            [0, 2, 1],
            [1, 2, 3],
            [4, 5, 6],
            [5, 7, 6],
            [0, 1, 4],
            [1, 5, 4],
            [2, 6, 3],
            [3, 6, 7],
            [0, 4, 2],
            [2, 4, 6],
            [1, 3, 5],
            [3, 7, 5],
        ];
        (p, t)
    }

    #[test]
    fn consistent_cube_is_untouched() {
        let (p, t) = cube(0.0, 1.0);
        let o = orient(&p, &t, 1000);
        assert_eq!((o.flipped, o.non_orientable), (0, 0));
    }

    #[test]
    fn turned_faces_are_turned_back() {
        let (p, mut t) = cube(0.0, 1.0);
        for i in [0, 3, 7] {
            t[i] = [t[i][0], t[i][2], t[i][1]];
        }
        let o = orient(&p, &t, 1000);
        assert_eq!(o.flipped, 3);
        assert!(o.flip[0] && o.flip[3] && o.flip[7]);
        // Most faces turned: the whole cube flips back outward.
        let (p, mut t) = cube(0.0, 1.0);
        for tr in t.iter_mut().skip(1) {
            *tr = [tr[0], tr[2], tr[1]];
        }
        let o = orient(&p, &t, 1000);
        assert_eq!(o.flipped, 11);
        assert!(!o.flip[0]);
    }

    #[test]
    fn a_void_stays_negative() {
        let (mut p, mut t) = cube(0.0, 3.0);
        let (p2, t2) = cube(1.0, 1.0);
        let base = p.len() as u32;
        p.extend(p2);
        // Inner cube inward (a void), one face of each turned.
        t.extend(t2.iter().map(|x| [x[0] + base, x[2] + base, x[1] + base]));
        t[2] = [t[2][0], t[2][2], t[2][1]];
        t[15] = [t[15][0], t[15][2], t[15][1]];
        let o = orient(&p, &t, 1000);
        assert_eq!(o.flipped, 2);
        assert!(o.flip[2] && o.flip[15]);
    }
}
