//! Hostile inputs that cost far more to read than their size suggests, built
//! in memory. Shared by the tests (`tests/it/bombs.rs`) and the peak-memory
//! benchmark (`examples/bench_bombs.rs`, `scripts/bench-bombs`).

#![allow(dead_code)]

use std::io::Write;

/// One kind of bomb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bomb {
    /// A 3MF whose model XML inflates to `size` bytes of tiny elements.
    ThreeMfExpansion,
    /// The same whose zip headers declare the model part 1 kB long (a
    /// declared size is the sender's word; only the inflating counts).
    ThreeMfLyingSize,
    /// A 3MF listing far more vertices than any allowed mesh can use.
    ThreeMfVertices,
    /// A 3MF whose components refer twice to the next level, 40 levels
    /// deep: 2^40 instanced triangles from a few hundred bytes.
    ThreeMfLattice,
    /// A PLY whose header declares a huge vertex count (the body too short).
    PlyDeclaredCount,
    /// A PLY whose vertex count is backed by its body but over the budget.
    PlyVertices,
    /// A binary STL whose header count is 2^32 - 1 (the body too short).
    StlDeclaredCount,
    /// An OBJ with more tiny faces than the triangle limit.
    ObjFaces,
    /// An OBJ listing more vertices than any allowed mesh can use.
    ObjVertices,
}

impl Bomb {
    pub const ALL: [Bomb; 9] = [
        Bomb::ThreeMfExpansion,
        Bomb::ThreeMfLyingSize,
        Bomb::ThreeMfVertices,
        Bomb::ThreeMfLattice,
        Bomb::PlyDeclaredCount,
        Bomb::PlyVertices,
        Bomb::StlDeclaredCount,
        Bomb::ObjFaces,
        Bomb::ObjVertices,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Bomb::ThreeMfExpansion => "3mf-expansion",
            Bomb::ThreeMfLyingSize => "3mf-lying-size",
            Bomb::ThreeMfVertices => "3mf-vertices",
            Bomb::ThreeMfLattice => "3mf-lattice",
            Bomb::PlyDeclaredCount => "ply-declared-count",
            Bomb::PlyVertices => "ply-vertices",
            Bomb::StlDeclaredCount => "stl-declared-count",
            Bomb::ObjFaces => "obj-faces",
            Bomb::ObjVertices => "obj-vertices",
        }
    }

    pub fn by_name(name: &str) -> Option<Bomb> {
        Bomb::ALL.into_iter().find(|b| b.name() == name)
    }

    /// The bomb's bytes, sized to go past `limits` by a factor of about
    /// `over` (the 3MF expansion bomb inflates to `over` × the budget).
    pub fn build(self, limits: &geometry::Limits, over: u64) -> Vec<u8> {
        let tris = limits.max_triangles;
        match self {
            Bomb::ThreeMfLyingSize => {
                let mut z = Bomb::ThreeMfExpansion.build(limits, over);
                lie_about_size(&mut z, 1000);
                z
            }
            Bomb::ThreeMfExpansion => {
                let target = inflated_budget(limits) * over;
                three_mf(|w| {
                    let chunk = "<a/>".repeat(16 << 10);
                    let mut written = 0u64;
                    while written < target {
                        w.write_all(chunk.as_bytes()).unwrap();
                        written += chunk.len() as u64;
                    }
                    w.write_all(TRIANGLE.as_bytes()).unwrap();
                })
            }
            Bomb::ThreeMfVertices => three_mf(|w| {
                let n = vertex_budget(limits) * over;
                let line = "<vertex x=\"0\" y=\"0\" z=\"0\"/>".repeat(1024);
                for _ in 0..n.div_ceil(1024) {
                    w.write_all(line.as_bytes()).unwrap();
                }
                w.write_all(TRIANGLE.as_bytes()).unwrap();
            }),
            Bomb::ThreeMfLattice => {
                let mut xml = String::from(HEAD);
                xml.push_str(
                    "<object id=\"1000\"><mesh><vertices><vertex x=\"0\" y=\"0\" z=\"0\"/>\
                     <vertex x=\"1\" y=\"0\" z=\"0\"/><vertex x=\"0\" y=\"1\" z=\"0\"/></vertices>\
                     <triangles><triangle v1=\"0\" v2=\"1\" v3=\"2\"/></triangles></mesh></object>",
                );
                let depth = 30;
                for k in (0..depth).rev() {
                    let next = if k + 1 == depth { 1000 } else { k + 1 };
                    xml.push_str(&format!(
                        "<object id=\"{k}\"><components><component objectid=\"{next}\"/>\
                         <component objectid=\"{next}\"/></components></object>"
                    ));
                }
                xml.push_str("</resources><build><item objectid=\"0\"/></build></model>");
                zip_model(xml.as_bytes())
            }
            Bomb::PlyDeclaredCount => {
                b"ply\nformat binary_little_endian 1.0\nelement vertex 4000000000\n\
                  property float x\nproperty float y\nproperty float z\n\
                  element face 1\nproperty list uchar int vertex_indices\nend_header\n"
                    .iter()
                    .copied()
                    .chain([0u8; 64])
                    .collect()
            }
            Bomb::PlyVertices => {
                let n = vertex_budget(limits) * over;
                let mut out = format!(
                    "ply\nformat binary_little_endian 1.0\nelement vertex {n}\n\
                     property float x\nproperty float y\nproperty float z\n\
                     element face 1\nproperty list uchar int vertex_indices\nend_header\n"
                )
                .into_bytes();
                out.resize(out.len() + 12 * n as usize, 0);
                out.push(3);
                for i in 0..3i32 {
                    out.extend(i.to_le_bytes());
                }
                out
            }
            Bomb::StlDeclaredCount => {
                let mut out = vec![b' '; 80];
                out.extend(u32::MAX.to_le_bytes());
                out.extend([0u8; 50 * 4]);
                out
            }
            Bomb::ObjFaces => {
                let mut out = b"v 0 0 0\nv 1 0 0\nv 0 1 0\n".to_vec();
                let line = b"f 1 2 3\n".repeat(4096);
                for _ in 0..(tris * over).div_ceil(4096) {
                    out.extend_from_slice(&line);
                }
                out
            }
            Bomb::ObjVertices => {
                let line = b"v 0 0 0\n".repeat(4096);
                let mut out = Vec::new();
                for _ in 0..(vertex_budget(limits) * over).div_ceil(4096) {
                    out.extend_from_slice(&line);
                }
                out.extend_from_slice(b"f 1 2 3\n");
                out
            }
        }
    }
}

/// `Limits::max_vertices` (spelled out so that the benchmark also builds
/// against code from before the budgets, to compare).
pub fn vertex_budget(l: &geometry::Limits) -> u64 {
    l.max_triangles * 3 + 1024
}

/// `Limits::max_inflated_bytes` (see [`vertex_budget`]).
pub fn inflated_budget(l: &geometry::Limits) -> u64 {
    l.max_triangles * 256 + (16 << 20)
}

const HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<model unit=\"millimeter\" \
     xmlns=\"http://schemas.microsoft.com/3dmanufacturing/core/2015/02\"><resources>";
const TRIANGLE: &str = "</vertices><triangles><triangle v1=\"0\" v2=\"1\" v3=\"2\"/>\
     </triangles></mesh></object></resources><build><item objectid=\"1\"/></build></model>";

/// A 3MF whose one object's vertex list is written by `body` (which also
/// closes the model, e.g. with [`TRIANGLE`]), deflated as it is written.
fn three_mf(body: impl FnOnce(&mut dyn Write)) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("3D/3dmodel.model", opts).unwrap();
    zip.write_all(HEAD.as_bytes()).unwrap();
    zip.write_all(
        b"<object id=\"1\"><mesh><vertices><vertex x=\"0\" y=\"0\" z=\"0\"/>\
          <vertex x=\"1\" y=\"0\" z=\"0\"/><vertex x=\"0\" y=\"1\" z=\"0\"/>",
    )
    .unwrap();
    body(&mut zip);
    zip.finish().unwrap().into_inner()
}

fn zip_model(xml: &[u8]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("3D/3dmodel.model", opts).unwrap();
    zip.write_all(xml).unwrap();
    zip.finish().unwrap().into_inner()
}

/// Rewrites the uncompressed size of every entry, in the local headers and
/// the central directory (32-bit fields: entries under 4 GiB).
fn lie_about_size(z: &mut [u8], size: u32) {
    let mut i = 0;
    while i + 46 <= z.len() {
        let sig = u32::from_le_bytes([z[i], z[i + 1], z[i + 2], z[i + 3]]);
        if sig == 0x0403_4b50 {
            z[i + 22..i + 26].copy_from_slice(&size.to_le_bytes());
        } else if sig == 0x0201_4b50 {
            z[i + 24..i + 28].copy_from_slice(&size.to_le_bytes());
        }
        i += 1;
    }
}
