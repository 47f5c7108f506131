//! Every bomb is refused while it is being read, with a reason that names
//! the budget it broke (the peak memory of each is measured by
//! `scripts/bench-bombs`; see docs/geometry.md).

use geometry::{Format, GeometryError, Limits};

use crate::bomb_kit::Bomb;

const LIMITS: Limits = Limits {
    max_bytes: 64 << 20,
    max_triangles: 10_000,
};

fn refused(bomb: Bomb) -> GeometryError {
    let bytes = bomb.build(&LIMITS, 2);
    assert!(
        bytes.len() as u64 <= LIMITS.max_bytes,
        "{bomb:?} fits the byte limit"
    );
    match geometry::analyze(&bytes, &LIMITS) {
        Ok(a) => panic!("{bomb:?} was analysed: {} triangles", a.triangles),
        Err(e) => e,
    }
}

#[test]
fn a_3mf_zip_bomb_stops_at_the_inflation_budget() {
    let bytes = Bomb::ThreeMfExpansion.build(&LIMITS, 2);
    // A small file: the XML inflates to twice the budget.
    assert!(bytes.len() < 1 << 20, "{} bytes", bytes.len());
    let budget = LIMITS.max_inflated_bytes();
    assert_eq!(budget, 10_000 * 256 + (16 << 20));
    let e = refused(Bomb::ThreeMfExpansion);
    assert_eq!(
        e,
        GeometryError::Expands {
            format: "3MF",
            limit_mb: 20
        }
    );
    assert!(
        e.to_string().starts_with("the 3MF expands beyond 20 MB"),
        "{e}"
    );
}

#[test]
fn a_3mf_that_lies_about_its_size_stops_at_the_budget_too() {
    assert_eq!(
        refused(Bomb::ThreeMfLyingSize),
        GeometryError::Expands {
            format: "3MF",
            limit_mb: 20
        }
    );
}

#[test]
fn one_giant_3mf_element_is_not_held_in_memory() {
    let mut xml = String::from(
        "<?xml version=\"1.0\"?><model unit=\"millimeter\"><resources><object id=\"1\"><mesh><vertices><vertex x=\"",
    );
    xml.push_str(&"1".repeat(6 << 20));
    xml.push_str("\" y=\"0\" z=\"0\"/></vertices></mesh></object></resources></model>");
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file(
        "3D/3dmodel.model",
        zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated),
    )
    .unwrap();
    std::io::Write::write_all(&mut zip, xml.as_bytes()).unwrap();
    let bytes = zip.finish().unwrap().into_inner();
    match geometry::analyze(&bytes, &LIMITS) {
        Err(GeometryError::Malformed {
            format: "3MF",
            message,
        }) => {
            assert!(message.contains("longer than 4 MB"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_3mf_vertex_flood_is_counted_while_parsed() {
    assert_eq!(
        refused(Bomb::ThreeMfVertices),
        GeometryError::TooManyVertices { limit: 31_024 }
    );
}

#[test]
fn a_3mf_component_lattice_is_counted_not_walked() {
    // 2^30 instanced triangles from a few kB; counting is memoised, so this
    // returns at once instead of walking 2^30 paths.
    let t = std::time::Instant::now();
    assert_eq!(
        refused(Bomb::ThreeMfLattice),
        GeometryError::TooManyTriangles {
            found: 1 << 30,
            limit: 10_000
        }
    );
    assert!(t.elapsed().as_secs() < 5);
}

#[test]
fn a_ply_declared_count_is_checked_against_the_body() {
    match refused(Bomb::PlyDeclaredCount) {
        GeometryError::Malformed {
            format: "PLY",
            message,
        } => {
            assert!(message.contains("4000000000 vertex elements"), "{message}");
            assert!(message.contains("too short"), "{message}");
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn a_ply_vertex_count_over_budget_is_refused_before_reading() {
    assert_eq!(
        refused(Bomb::PlyVertices),
        GeometryError::TooManyVertices { limit: 31_024 }
    );
}

#[test]
fn a_binary_stl_declared_count_is_checked_against_the_length() {
    let bytes = Bomb::StlDeclaredCount.build(&LIMITS, 2);
    match geometry::parse_as(Format::StlBinary, &bytes, &LIMITS) {
        Err(GeometryError::Malformed { message, .. }) => {
            assert!(message.contains("4294967295"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    refused(Bomb::StlDeclaredCount);
}

#[test]
fn an_obj_with_more_faces_than_the_limit_is_refused() {
    match refused(Bomb::ObjFaces) {
        GeometryError::TooManyTriangles { found, limit } => {
            assert_eq!(limit, 10_000);
            assert!(found >= 20_000, "{found}");
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn an_obj_vertex_flood_is_refused_as_it_is_read() {
    let e = refused(Bomb::ObjVertices);
    assert_eq!(e, GeometryError::TooManyVertices { limit: 31_024 });
    assert!(e.to_string().contains("more than 31024 vertices"), "{e}");
}

#[test]
fn real_3mf_files_fit_the_budget_with_room() {
    // 72–78 bytes of XML per triangle in the real files, 256 allowed.
    for rel in ["geometry_bracelet_52mm.3mf", "trimesh_pyramids.3mf"] {
        let bytes = crate::common::read_model(rel);
        let a = geometry::analyze(
            &bytes,
            &Limits {
                max_bytes: 1 << 30,
                max_triangles: 13_000,
            },
        )
        .unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert!(a.triangles > 3000);
    }
}
