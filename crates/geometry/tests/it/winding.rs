//! Inconsistent winding is repaired before measuring: real and generated
//! closed meshes with a seeded random subset of triangles turned measure as
//! the clean file does, and say how many triangles were turned; voids stay
//! voids; a surface that cannot be oriented is flagged.

use geometry::{Analysis, Format, Limits, Mesh, ShellKind, Warning, analyze_mesh};

use crate::common::read_model;

/// xorshift64: the same subset for the same seed, on every machine.
pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Turns about a third of the triangles (seeded); returns how many.
pub fn scramble(mesh: &mut Mesh, seed: u64) -> u64 {
    let mut rng = Rng::new(seed);
    let mut turned = 0;
    for t in &mut mesh.triangles {
        if rng.next().is_multiple_of(3) {
            *t = [t[0], t[2], t[1]];
            turned += 1;
        }
    }
    turned
}

fn parse(rel: &str) -> (Format, Mesh) {
    geometry::parse(&read_model(rel), &Limits::default()).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn close(got: f64, want: f64, what: &str, rel: &str) {
    let tol = 1e-9 * want.abs().max(1e-6);
    assert!(
        (got - want).abs() <= tol,
        "{rel}: {what} {got} != clean {want}"
    );
}

/// The scrambled mesh measures as the clean one, with the turned count.
fn same_as_clean(rel: &str, seed: u64) -> (Analysis, Analysis) {
    let (format, clean_mesh) = parse(rel);
    let clean = analyze_mesh(&clean_mesh, format);
    assert_eq!(
        clean.inconsistent_edges, 0,
        "{rel} is consistent to start with"
    );
    assert_eq!(clean.flipped_triangles, 0);
    let mut mesh = clean_mesh.clone();
    let turned = scramble(&mut mesh, seed);
    assert!(turned > 0);
    let got = analyze_mesh(&mesh, format);
    assert!(
        got.inconsistent_edges > 0,
        "{rel}: scrambling left no trace"
    );
    assert_eq!(got.flipped_triangles, turned, "{rel}: turned count");
    assert_eq!(got.non_orientable_shells, 0);
    close(got.volume_mm3, clean.volume_mm3, "volume", rel);
    close(got.area_mm2, clean.area_mm2, "area", rel);
    close(
        got.metal_volume_mm3,
        clean.metal_volume_mm3,
        "metal volume",
        rel,
    );
    assert_eq!(
        (got.shells, got.boundary_edges, got.nonmanifold_edges),
        (clean.shells, clean.boundary_edges, clean.nonmanifold_edges),
        "{rel}"
    );
    assert_eq!(
        (got.voids, got.stones),
        (clean.voids, clean.stones),
        "{rel}"
    );
    assert!(got.warnings.contains(&Warning::WindingRepaired {
        triangles: turned,
        edges: got.inconsistent_edges,
    }));
    assert!(got.volume_doubts().is_empty(), "{rel}: {:?}", got.warnings);
    (clean, got)
}

#[test]
fn scrambled_real_meshes_measure_as_the_clean_files() {
    for (i, rel) in [
        "ring_showcase_ring.bin.stl",
        "mlherd_pendant.bin.stl",
        "guacanati_pendant.ascii.stl",
        "geometry_ring_31scale.ascii.stl",
        "geometry_bracelet_52mm.3mf",
        "franout_bracelet_11shells.bin.stl",
        "jewelry_JP004A-K12_ring.obj",
        "jewelry_C_7m_28_band.obj",
        "jewelry_ring.obj",
        "nefertiti.obj",
        "trimesh_torus.bin.stl",
        "trimesh_unit_sphere.bin.stl",
        "trimesh_counter.bin.stl",
    ]
    .into_iter()
    .enumerate()
    {
        same_as_clean(rel, 0xA1E7 + i as u64);
    }
}

#[test]
fn scrambled_generated_meshes_measure_as_the_clean_files() {
    for (i, rel) in [
        "generated/cube_10mm_12tri.bin.stl",
        "generated/cube_10mm_grid_30000tri.bin.stl",
        "generated/torus_R9.65_r1_20000tri.bin.stl",
        "generated/band_17.3id_1.6t_4w_n256.obj",
        "generated/two_rings_disjoint.bin.stl",
    ]
    .into_iter()
    .enumerate()
    {
        for seed in [1u64, 2, 3] {
            same_as_clean(rel, seed * 1000 + i as u64);
        }
    }
}

#[test]
fn a_scrambled_hollow_keeps_its_void_negative() {
    for seed in 1..=8u64 {
        let (clean, got) = same_as_clean("generated/hollow_cube_10_void6.bin.stl", seed);
        assert_eq!(clean.voids, 1);
        assert_eq!(got.voids, 1);
        let void = got
            .shell_details
            .iter()
            .find(|s| s.kind == ShellKind::Void)
            .unwrap();
        close(void.volume_mm3, -216.0, "void", "hollow cube");
        close(got.metal_volume_mm3, 1000.0 - 216.0, "metal", "hollow cube");
    }
}

/// A UV sphere of radius `r` about `c`, outward, `n` × `2n` quads.
fn sphere(m: &mut Mesh, c: [f64; 3], r: f64, n: u32, inward: bool) {
    let base = m.positions.len() as u32;
    let seg = 2 * n;
    m.positions.push([c[0], c[1], c[2] + r]);
    for i in 1..n {
        let th = std::f64::consts::PI * i as f64 / n as f64;
        for j in 0..seg {
            let ph = 2.0 * std::f64::consts::PI * j as f64 / seg as f64;
            m.positions.push([
                c[0] + r * th.sin() * ph.cos(),
                c[1] + r * th.sin() * ph.sin(),
                c[2] + r * th.cos(),
            ]);
        }
    }
    m.positions.push([c[0], c[1], c[2] - r]);
    let south = base + 1 + (n - 1) * seg;
    let ring = |i: u32, j: u32| base + 1 + (i - 1) * seg + j % seg;
    let mut tri = |t: [u32; 3]| {
        m.triangles
            .push(if inward { [t[0], t[2], t[1]] } else { t });
    };
    for j in 0..seg {
        tri([base, ring(1, j), ring(1, j + 1)]);
        tri([south, ring(n - 1, j + 1), ring(n - 1, j)]);
    }
    for i in 1..n - 1 {
        for j in 0..seg {
            tri([ring(i, j), ring(i + 1, j), ring(i + 1, j + 1)]);
            tri([ring(i, j), ring(i + 1, j + 1), ring(i, j + 1)]);
        }
    }
}

#[test]
fn a_scrambled_hollow_sphere_keeps_its_void_negative() {
    let mut clean = Mesh::default();
    sphere(&mut clean, [1.0, 2.0, 3.0], 5.0, 24, false);
    sphere(&mut clean, [1.0, 2.0, 3.0], 3.0, 24, true);
    let want = analyze_mesh(&clean, Format::StlBinary);
    assert_eq!((want.shells, want.voids), (2, 1));
    assert!(want.watertight());
    for seed in 10..20u64 {
        let mut m = clean.clone();
        let turned = scramble(&mut m, seed);
        let got = analyze_mesh(&m, Format::StlBinary);
        assert_eq!(got.flipped_triangles, turned);
        assert_eq!(got.voids, 1, "seed {seed}");
        let inner = got
            .shell_details
            .iter()
            .find(|s| s.kind == ShellKind::Void)
            .unwrap();
        assert!(inner.volume_mm3 < 0.0);
        close(got.volume_mm3, want.volume_mm3, "volume", "hollow sphere");
        close(
            got.metal_volume_mm3,
            want.metal_volume_mm3,
            "metal",
            "hollow sphere",
        );
        close(got.area_mm2, want.area_mm2, "area", "hollow sphere");
    }
    // Every triangle turned: the outer shell comes back outward, the void
    // inward (the parity decides, not the file's majority).
    let mut m = clean.clone();
    for t in &mut m.triangles {
        *t = [t[0], t[2], t[1]];
    }
    let got = analyze_mesh(&m, Format::StlBinary);
    // A consistently inside-out file is not re-wound: it is inside-out.
    assert_eq!(got.flipped_triangles, 0);
    assert!(got.inverted);
}

/// A closed surface without an inside: an `m` × `n` grid wrapped as a torus
/// in one direction and with a half twist in the other (a Klein bottle,
/// combinatorially). Every edge is shared by exactly two triangles.
pub fn klein_bottle(m: u32, n: u32) -> Mesh {
    let mut mesh = Mesh::default();
    for i in 0..m {
        for j in 0..n {
            let (u, v) = (
                2.0 * std::f64::consts::PI * i as f64 / m as f64,
                2.0 * std::f64::consts::PI * j as f64 / n as f64,
            );
            // Any distinct positions do: a torus-like placement.
            let r = 10.0 + 3.0 * u.cos();
            mesh.positions
                .push([r * v.cos(), r * v.sin(), 3.0 * u.sin() + 0.01 * j as f64]);
        }
    }
    // (i, n) is glued to (m - 1 - i, 0): the twist.
    let idx = |i: u32, j: u32| {
        let (i, j) = if j == n {
            (m - 1 - i % m, 0)
        } else {
            (i % m, j)
        };
        i * n + j
    };
    for i in 0..m {
        for j in 0..n {
            let (a, b, c, d) = (idx(i, j), idx(i + 1, j), idx(i + 1, j + 1), idx(i, j + 1));
            mesh.triangles.push([a, b, c]);
            mesh.triangles.push([a, c, d]);
        }
    }
    mesh
}

#[test]
fn a_klein_bottle_is_flagged_non_orientable() {
    let m = klein_bottle(8, 12);
    let a = analyze_mesh(&m, Format::StlBinary);
    assert_eq!((a.boundary_edges, a.nonmanifold_edges), (0, 0));
    assert!(a.watertight());
    assert_eq!(a.non_orientable_shells, 1);
    assert!(a.warnings.contains(&Warning::NonOrientable { shells: 1 }));
    assert!(
        a.volume_doubts()
            .iter()
            .any(|w| matches!(w, Warning::NonOrientable { .. }))
    );
}

#[test]
fn a_moebius_strip_is_flagged_non_orientable() {
    let mut m = Mesh::default();
    let n = 24u32;
    for j in 0..n {
        let t = 2.0 * std::f64::consts::PI * j as f64 / n as f64;
        for s in [-1.0, 1.0] {
            let (r, z) = (10.0 + s * (t / 2.0).cos(), s * (t / 2.0).sin());
            m.positions.push([r * t.cos(), r * t.sin(), z]);
        }
    }
    for j in 0..n {
        let (a, b) = (2 * j, 2 * j + 1);
        // Across the seam the two edges of the strip swap.
        let (c, d) = if j + 1 == n {
            (1, 0)
        } else {
            (2 * j + 2, 2 * j + 3)
        };
        m.triangles.push([a, c, b]);
        m.triangles.push([b, c, d]);
    }
    let a = analyze_mesh(&m, Format::Obj);
    assert_eq!(a.non_orientable_shells, 1);
    assert!(!a.volume_doubts().is_empty());
}

#[test]
fn the_bench_torus_scrambled_is_repaired_in_lanes() {
    // Above the two-lane threshold: the repair and the lanes agree.
    let (format, clean_mesh) = parse("generated/cube_10mm_grid_30000tri.bin.stl");
    let mut big = clean_mesh.clone();
    // Four copies side by side: 120k triangles.
    for k in 1..4u32 {
        let off = clean_mesh.positions.len() as u32 * k;
        big.positions.extend(
            clean_mesh
                .positions
                .iter()
                .map(|p| [p[0] + 20.0 * k as f64, p[1], p[2]]),
        );
        big.triangles
            .extend(clean_mesh.triangles.iter().map(|t| t.map(|v| v + off)));
    }
    let want = analyze_mesh(&big, format);
    let turned = scramble(&mut big, 77);
    let got = analyze_mesh(&big, format);
    assert_eq!(got.flipped_triangles, turned);
    close(got.volume_mm3, want.volume_mm3, "volume", "4 cubes");
    close(want.volume_mm3, 4000.0, "volume", "4 cubes");
}
