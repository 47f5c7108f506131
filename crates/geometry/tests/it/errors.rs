//! Bad input gives a specific error, never a panic.

use geometry::{Format, GeometryError, Limits};

fn bin_stl(tris: &[[[f32; 3]; 3]], header: &[u8]) -> Vec<u8> {
    let mut b = header.to_vec();
    b.resize(80, b' ');
    b.extend_from_slice(&(tris.len() as u32).to_le_bytes());
    for t in tris {
        b.extend_from_slice(&[0u8; 12]);
        for v in t {
            for c in v {
                b.extend_from_slice(&c.to_le_bytes());
            }
        }
        b.extend_from_slice(&[0u8; 2]);
    }
    b
}

fn tetra() -> Vec<[[f32; 3]; 3]> {
    let p = [
        [0.0, 0.0, 0.0],
        [1.0, 0.0, 0.0],
        [0.0, 1.0, 0.0],
        [0.0, 0.0, 1.0],
    ];
    [[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]]
        .iter()
        .map(|t| t.map(|i| p[i]))
        .collect()
}

#[test]
fn empty() {
    assert_eq!(
        geometry::analyze(b"", &Limits::default()),
        Err(GeometryError::Empty)
    );
    assert_eq!(geometry::detect(b""), Err(GeometryError::Empty));
}

#[test]
fn random_bytes_are_not_a_model() {
    // A fixed pseudo-random sequence (xorshift), 10 kB.
    let mut x: u64 = 0x1234_5678_9abc_def0;
    let bytes: Vec<u8> = (0..10_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let err = geometry::analyze(&bytes, &Limits::default()).unwrap_err();
    assert!(matches!(err, GeometryError::UnknownFormat { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("file is not an STL/OBJ/PLY/3MF model (binary data starting with"),
        "{err}"
    );
}

#[test]
fn other_files_are_named() {
    let err = geometry::analyze(b"%PDF-1.7\n...", &Limits::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "file is not an STL/OBJ/PLY/3MF model (a PDF document)"
    );
    let err = geometry::analyze(b"<html><body>hi</body></html>", &Limits::default()).unwrap_err();
    assert!(err.to_string().contains("HTML"), "{err}");
}

#[test]
fn good_binary_tetrahedron() {
    let a = geometry::analyze(&bin_stl(&tetra(), b"solid but binary"), &Limits::default()).unwrap();
    assert_eq!(a.format, Format::StlBinary);
    assert_eq!((a.triangles, a.vertices, a.shells), (4, 4, 1));
    assert!(a.watertight());
    assert!((a.volume_mm3 - 1.0 / 6.0).abs() < 1e-12);
}

#[test]
fn truncated_binary_stl() {
    let mut b = bin_stl(&tetra(), b"x");
    b.truncate(b.len() - 30);
    let err = geometry::analyze(&b, &Limits::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "binary STL: header says 4 triangles but the file holds 3 and 20 stray bytes (the file is truncated or damaged)"
    );
    // Same with a header that starts with "solid".
    let mut b = bin_stl(&tetra(), b"solid thing");
    b.truncate(b.len() - 50);
    let err = geometry::analyze(&b, &Limits::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "binary STL: header says 4 triangles but the file holds 3 (the file is truncated or damaged)"
    );
}

#[test]
fn count_mismatch() {
    let mut b = bin_stl(&tetra(), b"x");
    b[80..84].copy_from_slice(&5u32.to_le_bytes());
    let err = geometry::analyze(&b, &Limits::default()).unwrap_err();
    assert!(
        matches!(
            &err,
            GeometryError::Malformed {
                format: "binary STL",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("header says 5 triangles but the file holds 4"),
        "{err}"
    );
    b[80..84].copy_from_slice(&3u32.to_le_bytes());
    let err = geometry::analyze(&b, &Limits::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("header says 3 triangles but the file holds 4"),
        "{err}"
    );
}

#[test]
fn too_many_triangles() {
    let limits = Limits {
        max_bytes: 1 << 30,
        max_triangles: 3,
    };
    let b = bin_stl(&tetra(), b"x");
    assert_eq!(
        geometry::analyze(&b, &limits),
        Err(GeometryError::TooManyTriangles { found: 4, limit: 3 })
    );
    let ascii = ascii_tetra();
    assert_eq!(
        geometry::analyze(ascii.as_bytes(), &limits),
        Err(GeometryError::TooManyTriangles { found: 4, limit: 3 })
    );
    // A header that claims 100 million triangles is refused before anything is
    // allocated, even though the file is short: the length check comes first.
    let mut b = bin_stl(&tetra(), b"x");
    b[80..84].copy_from_slice(&100_000_000u32.to_le_bytes());
    assert!(geometry::analyze(&b, &Limits::default()).is_err());
}

#[test]
fn too_large() {
    let limits = Limits {
        max_bytes: 100,
        max_triangles: 10,
    };
    let b = bin_stl(&tetra(), b"x");
    assert_eq!(
        geometry::analyze(&b, &limits),
        Err(GeometryError::TooLarge {
            size: 284,
            limit: 100
        })
    );
}

fn ascii_tetra() -> String {
    let mut s = String::from("solid t\n");
    for t in tetra() {
        s.push_str(" facet normal 0 0 0\n  outer loop\n");
        for v in t {
            s.push_str(&format!("   vertex {} {} {}\n", v[0], v[1], v[2]));
        }
        s.push_str("  endloop\n endfacet\n");
    }
    s.push_str("endsolid t\n");
    s
}

#[test]
fn ascii_float_syntax_and_several_solids() {
    let text = "solid a\nfacet normal 0 0 -1\nouter loop\nvertex 0 0 0\nvertex +1.0E+0 0 0\nvertex 0 1e0 0\nendloop\nendfacet\nendsolid a\n\
                solid b\nfacet normal -.5 0 0\nouter loop\nvertex 0 0 0\nvertex 0 .1e1 0\nvertex -0 0 1.\nendloop\nendfacet\nendsolid b\n";
    let a = geometry::analyze(text.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(a.format, Format::StlAscii);
    assert_eq!((a.triangles, a.vertices), (2, 4));
}

#[test]
fn malformed_ascii() {
    let cases = [
        (
            "solid x\nfacet normal 0 0 1\nouter loop\nvertx 0 0 0\n",
            "ASCII STL: line 4: expected 'vertex' or 'endloop', found 'vertx'",
        ),
        (
            "solid x\nfacet normal 0 0 1\nouter loop\nvertex 0 0 zero\n",
            "ASCII STL: line 4: expected a number in 'vertex x y z', found 'zero'",
        ),
        (
            "solid x\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\nendloop\nendfacet\n",
            "ASCII STL: line 3: a facet has 2 vertices, a triangle needs 3",
        ),
        (
            "solid x\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\nvertex 0 1 0\n",
            "ASCII STL: line 7: expected 'vertex' or 'endloop', found the end of the file",
        ),
        (
            "solid x\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\nvertex 0 1 0\nendloop\nendfacet\nbanana\n",
            "ASCII STL: line 9: expected 'facet', 'endsolid' or 'solid', found 'banana'",
        ),
        (
            "solid x\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1e999 0 0\nvertex 0 1 0\nendloop\nendfacet\n",
            "ASCII STL: line 5: expected a number in 'vertex x y z', found '1e999'",
        ),
    ];
    for (text, msg) in cases {
        let err = geometry::analyze(text.as_bytes(), &Limits::default()).unwrap_err();
        assert_eq!(err.to_string(), msg);
    }
    assert_eq!(
        geometry::analyze(b"solid empty\nendsolid empty\n", &Limits::default()),
        Err(GeometryError::NoTriangles)
    );
}

/// Fuzz finding (obj target): a forward reference resolved by a later `v`
/// line hid a second, unresolved one, which then indexed out of bounds.
#[test]
fn obj_second_forward_reference_out_of_range() {
    let obj = b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 4\nf 1 2 9\nv 0 0 1\n";
    let e = geometry::analyze(obj, &Limits::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "OBJ: line 5: a face refers to vertex 9 but the file defines only 4"
    );
}
