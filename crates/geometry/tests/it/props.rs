//! Property tests: rigid motions keep volume and area, scaling by k scales
//! them by k³ and k², and one mesh written in three formats reads the same.

use geometry::{Format, Limits, Mesh, analyze_mesh};
use proptest::prelude::*;

/// A torus with n segments around the ring and m around the tube.
fn torus(n: usize, m: usize, big_r: f64, r: f64) -> Mesh {
    let mut positions = Vec::with_capacity(n * m);
    for i in 0..n {
        let th = 2.0 * std::f64::consts::PI * i as f64 / n as f64;
        for j in 0..m {
            let ph = 2.0 * std::f64::consts::PI * j as f64 / m as f64;
            let rho = big_r + r * ph.cos();
            positions.push([th.cos() * rho, th.sin() * rho, r * ph.sin()]);
        }
    }
    let mut triangles = Vec::with_capacity(2 * n * m);
    for i in 0..n {
        for j in 0..m {
            let (i1, j1) = ((i + 1) % n, (j + 1) % m);
            let (a, b, c, d) = (i * m + j, i1 * m + j, i1 * m + j1, i * m + j1);
            triangles.push([a as u32, b as u32, c as u32]);
            triangles.push([a as u32, c as u32, d as u32]);
        }
    }
    Mesh {
        positions,
        triangles,
    }
}

/// Rotation matrix from a (not necessarily unit) quaternion.
fn rotation(q: [f64; 4]) -> [[f64; 3]; 3] {
    let n = (q.iter().map(|x| x * x).sum::<f64>()).sqrt();
    let [w, x, y, z] = q.map(|c| c / n);
    [
        [
            1.0 - 2.0 * (y * y + z * z),
            2.0 * (x * y - w * z),
            2.0 * (x * z + w * y),
        ],
        [
            2.0 * (x * y + w * z),
            1.0 - 2.0 * (x * x + z * z),
            2.0 * (y * z - w * x),
        ],
        [
            2.0 * (x * z - w * y),
            2.0 * (y * z + w * x),
            1.0 - 2.0 * (x * x + y * y),
        ],
    ]
}

fn transformed(mesh: &Mesh, rot: [[f64; 3]; 3], scale: f64, shift: [f64; 3]) -> Mesh {
    let positions = mesh
        .positions
        .iter()
        .map(|p| {
            let mut out = [0.0; 3];
            for (k, o) in out.iter_mut().enumerate() {
                *o = scale * (rot[k][0] * p[0] + rot[k][1] * p[1] + rot[k][2] * p[2]) + shift[k];
            }
            out
        })
        .collect();
    Mesh {
        positions,
        triangles: mesh.triangles.clone(),
    }
}

fn rel(a: f64, b: f64) -> f64 {
    ((a - b) / b).abs()
}

fn write_formats(mesh: &Mesh) -> [Vec<u8>; 3] {
    // float32 coordinates, printed with Rust's shortest round-trip form.
    let p32: Vec<[f32; 3]> = mesh.positions.iter().map(|p| p.map(|c| c as f32)).collect();
    let mut bin = vec![b' '; 80];
    bin.extend_from_slice(&(mesh.triangles.len() as u32).to_le_bytes());
    let mut ascii = String::from("solid prop\n");
    let mut obj = String::from("# prop\n");
    for p in &p32 {
        // OBJ is read in f64: print the float32 values exactly.
        let p = p.map(f64::from);
        obj.push_str(&format!("v {:?} {:?} {:?}\n", p[0], p[1], p[2]));
    }
    for t in &mesh.triangles {
        bin.extend_from_slice(&[0u8; 12]);
        ascii.push_str("facet normal 0 0 0\nouter loop\n");
        for &i in t {
            let p = p32[i as usize];
            for c in p {
                bin.extend_from_slice(&c.to_le_bytes());
            }
            ascii.push_str(&format!("vertex {:e} {:?} {:E}\n", p[0], p[1], p[2]));
        }
        bin.extend_from_slice(&[0u8; 2]);
        ascii.push_str("endloop\nendfacet\n");
        obj.push_str(&format!(
            "f {} -{} {}/1/1\n",
            t[0] + 1,
            p32.len() as u32 - t[1],
            t[2] + 1
        ));
    }
    ascii.push_str("endsolid prop\n");
    [bin, ascii.into_bytes(), obj.into_bytes()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn rigid_motion_keeps_volume_and_area(
        n in 3usize..40, m in 3usize..20, big_r in 2.0f64..20.0, ratio in 0.05f64..0.9,
        q in prop::array::uniform4(-1.0f64..1.0), shift in prop::array::uniform3(-1e4f64..1e4),
    ) {
        prop_assume!(q.iter().map(|x| x * x).sum::<f64>() > 1e-3);
        let mesh = torus(n, m, big_r, big_r * ratio);
        let a = analyze_mesh(&mesh, Format::Obj);
        let b = analyze_mesh(&transformed(&mesh, rotation(q), 1.0, shift), Format::Obj);
        prop_assert!(rel(b.volume_mm3, a.volume_mm3) < 1e-9, "{} vs {}", b.volume_mm3, a.volume_mm3);
        prop_assert!(rel(b.area_mm2, a.area_mm2) < 1e-9);
        prop_assert_eq!((b.shells, b.boundary_edges, b.triangles), (1, 0, a.triangles));
    }

    #[test]
    fn scaling_scales_volume_cubed_and_area_squared(
        n in 3usize..40, m in 3usize..20, k in 0.01f64..100.0,
        q in prop::array::uniform4(-1.0f64..1.0),
    ) {
        prop_assume!(q.iter().map(|x| x * x).sum::<f64>() > 1e-3);
        let mesh = torus(n, m, 9.65, 1.0);
        let a = analyze_mesh(&mesh, Format::Obj);
        let b = analyze_mesh(&transformed(&mesh, rotation(q), k, [0.0; 3]), Format::Obj);
        prop_assert!(rel(b.volume_mm3, a.volume_mm3 * k * k * k) < 1e-9);
        prop_assert!(rel(b.area_mm2, a.area_mm2 * k * k) < 1e-9);
    }

    #[test]
    fn three_formats_read_the_same(
        n in 3usize..30, m in 3usize..12, q in prop::array::uniform4(-1.0f64..1.0),
        shift in prop::array::uniform3(-100.0f64..100.0),
    ) {
        prop_assume!(q.iter().map(|x| x * x).sum::<f64>() > 1e-3);
        let mesh = transformed(&torus(n, m, 9.65, 1.0), rotation(q), 1.0, shift);
        let [bin, ascii, obj] = write_formats(&mesh);
        let limits = Limits::default();
        let a = geometry::analyze(&bin, &limits).unwrap();
        let b = geometry::analyze(&ascii, &limits).unwrap();
        let c = geometry::analyze(&obj, &limits).unwrap();
        prop_assert_eq!((a.format, b.format, c.format), (Format::StlBinary, Format::StlAscii, Format::Obj));
        for x in [&b, &c] {
            prop_assert_eq!(x.volume_mm3, a.volume_mm3);
            prop_assert_eq!(x.area_mm2, a.area_mm2);
            prop_assert_eq!(x.bbox_min, a.bbox_min);
            prop_assert_eq!((x.triangles, x.vertices, x.shells, x.boundary_edges), (a.triangles, a.vertices, a.shells, a.boundary_edges));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        let _ = geometry::analyze(&bytes, &Limits::default());
    }

    #[test]
    fn mangled_models_never_panic(cut in 0usize..3000, flip in 0usize..3000, val in any::<u8>(), which in 0usize..3) {
        let mesh = torus(8, 5, 9.65, 1.0);
        let mut f = write_formats(&mesh)[which].clone();
        let flip = flip % f.len();
        f[flip] = val;
        f.truncate(cut.max(1).min(f.len()));
        let _ = geometry::analyze(&f, &Limits::default());
    }
}
