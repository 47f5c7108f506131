//! STL, binary and ASCII. Coordinates are float32 in both (the STL data model),
//! so the same model saved either way gives identical answers.

use crate::mesh::{Mesh, MeshBuilder};
use crate::text::{Lexer, shown};
use crate::{GeometryError, Limits};

const BIN: &str = "binary STL";
const ASCII: &str = "ASCII STL";

/// Triangle count stated in a binary STL header (bytes 80..84).
pub(crate) fn header_count(bytes: &[u8]) -> Option<u64> {
    let c = bytes.get(80..84)?;
    Some(u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
}

/// True when the length is exactly what the header count says.
pub(crate) fn binary_length_matches(bytes: &[u8]) -> bool {
    header_count(bytes).is_some_and(|n| 84 + 50 * n == bytes.len() as u64)
}

/// A binary STL whose length disagrees with its count (a truncated upload, a
/// wrong count written by an exporter) is still recognisable by its first
/// facets: plausible coordinates, and normals of length 0 or about 1.
pub(crate) fn looks_binary(bytes: &[u8]) -> bool {
    if bytes.len() < 84 + 50 {
        return false;
    }
    let plausible = |x: f32| x == 0.0 || (x.is_finite() && (1e-12..1e8).contains(&x.abs()));
    bytes[84..].chunks_exact(50).take(10).all(|rec| {
        let f = |k: usize| {
            f32::from_le_bytes([rec[4 * k], rec[4 * k + 1], rec[4 * k + 2], rec[4 * k + 3]])
        };
        let n2 = f(0) * f(0) + f(1) * f(1) + f(2) * f(2);
        (0..12).all(|k| plausible(f(k))) && (n2 == 0.0 || (0.9..1.1).contains(&n2))
    })
}

fn malformed(format: &'static str, message: String) -> GeometryError {
    GeometryError::Malformed { format, message }
}

/// Parses a binary STL: the count is checked against the length and the limit
/// before anything is allocated.
pub(crate) fn parse_binary(bytes: &[u8], limits: &Limits) -> Result<Mesh, GeometryError> {
    let Some(count) = header_count(bytes) else {
        return Err(malformed(
            BIN,
            format!(
                "the file is {} bytes, shorter than the 84-byte header",
                bytes.len()
            ),
        ));
    };
    let len = bytes.len() as u64;
    let expected = 84 + 50 * count;
    if len != expected {
        let held = (len - 84) / 50;
        let stray = (len - 84) % 50;
        let mut message = format!("header says {count} triangles but the file holds {held}");
        if stray != 0 {
            message.push_str(&format!(" and {stray} stray bytes"));
        }
        message.push_str(if len < expected {
            " (the file is truncated or damaged)"
        } else {
            " (extra data after the last triangle)"
        });
        return Err(malformed(BIN, message));
    }
    if count > limits.max_triangles {
        return Err(GeometryError::TooManyTriangles {
            found: count,
            limit: limits.max_triangles,
        });
    }
    if count == 0 {
        return Err(GeometryError::NoTriangles);
    }
    crate::weld::weld_binary_stl(&bytes[84..], count as usize)
}

/// Parses an ASCII STL with any number of `solid` blocks. Facet normals are
/// read and checked for syntax but ignored; loops of more than three vertices
/// are fan-triangulated.
pub(crate) fn parse_ascii(bytes: &[u8], limits: &Limits) -> Result<Mesh, GeometryError> {
    let mut lx = Lexer::new(bytes);
    // ~250 bytes per facet in typical exporters' output.
    let est = bytes.len() / 250;
    let mut b = MeshBuilder::new(est / 2 + 8, est, limits.max_triangles);
    let err = |lx: &Lexer, at: usize, what: &str, found: Option<&[u8]>| {
        let found = match found {
            Some(t) => format!("'{}'", shown(t)),
            None => "the end of the file".to_string(),
        };
        malformed(
            ASCII,
            format!("line {}: expected {what}, found {found}", lx.line_of(at)),
        )
    };
    let mut first = true;
    let mut loop_pts: Vec<u32> = Vec::with_capacity(4);
    loop {
        let at = lx.pos();
        let Some(tok) = lx.next() else { break };
        match tok {
            b"solid" => {
                lx.skip_line();
            }
            b"endsolid" => {
                lx.skip_line();
            }
            b"facet" => {
                let at = lx.pos();
                let mut t = lx.next();
                if t == Some(b"normal") {
                    for _ in 0..3 {
                        let at = lx.pos();
                        let n = lx.next();
                        if n.and_then(crate::num::parse_f64).is_none() {
                            return Err(err(&lx, at, "a number in the facet normal", n));
                        }
                    }
                    t = lx.next();
                } else if t != Some(b"outer") {
                    return Err(err(&lx, at, "'normal'", t));
                }
                if t != Some(b"outer") {
                    return Err(err(&lx, lx.pos(), "'outer loop'", t));
                }
                let at = lx.pos();
                let t = lx.next();
                if t != Some(b"loop") {
                    return Err(err(&lx, at, "'loop'", t));
                }
                loop_pts.clear();
                let facet_at = at;
                loop {
                    let at = lx.pos();
                    let t = lx.next();
                    match t {
                        Some(b"vertex") => {
                            let mut p = [0f64; 3];
                            for c in &mut p {
                                let at = lx.pos();
                                let n = lx.next();
                                match n.and_then(crate::num::parse_f64) {
                                    Some(v) => *c = f64::from(v as f32),
                                    None => {
                                        return Err(err(&lx, at, "a number in 'vertex x y z'", n));
                                    }
                                }
                            }
                            loop_pts.push(b.vertex(p, ASCII)?);
                        }
                        Some(b"endloop") => break,
                        _ => return Err(err(&lx, at, "'vertex' or 'endloop'", t)),
                    }
                }
                if loop_pts.len() < 3 {
                    return Err(malformed(
                        ASCII,
                        format!(
                            "line {}: a facet has {} vertices, a triangle needs 3",
                            lx.line_of(facet_at),
                            loop_pts.len()
                        ),
                    ));
                }
                for i in 1..loop_pts.len() - 1 {
                    b.triangle([loop_pts[0], loop_pts[i], loop_pts[i + 1]]);
                }
                let at = lx.pos();
                let t = lx.next();
                if t != Some(b"endfacet") {
                    return Err(err(&lx, at, "'endfacet'", t));
                }
            }
            _ if first => {
                return Err(err(&lx, at, "'solid'", Some(tok)));
            }
            _ => return Err(err(&lx, at, "'facet', 'endsolid' or 'solid'", Some(tok))),
        }
        first = false;
    }
    b.finish()
}
