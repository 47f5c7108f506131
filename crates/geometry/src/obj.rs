//! Wavefront OBJ: `v` and `f` lines; polygons are fan-triangulated; indices may
//! be negative (relative to the vertices read so far) and carry texture and
//! normal parts (`v/vt/vn`, `v//vn`), which are ignored: positions are welded
//! whatever the texture seams, so a ring exported with UVs is one closed shell.

use crate::mesh::{Mesh, MeshBuilder};
use crate::num::{parse_f64, parse_i64};
use crate::text::shown;
use crate::{GeometryError, Limits};

const OBJ: &str = "OBJ";

fn err(line: usize, message: String) -> GeometryError {
    GeometryError::Malformed {
        format: OBJ,
        message: format!("line {line}: {message}"),
    }
}

#[inline]
fn tokens(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|&c| c <= b' ').filter(|t| !t.is_empty())
}

pub(crate) fn parse(bytes: &[u8], limits: &Limits) -> Result<Mesh, GeometryError> {
    let max_vertices = limits.max_vertices();
    let mut verts: Vec<[f64; 3]> =
        Vec::with_capacity((bytes.len() / 40).min(max_vertices as usize));
    let mut corners: Vec<u32> = Vec::new();
    let mut tris: Vec<[u32; 3]> =
        Vec::with_capacity((bytes.len() / 40).min(limits.max_triangles as usize));
    let mut seen: u64 = 0;
    // Face lines whose index points past the vertices read so far (allowed by
    // some writers): checked once all vertices are known.
    let mut forward_ref: Option<(usize, i64)> = None;
    // The largest such index: every forward reference is in range at the end
    // exactly when this one is.
    let mut furthest_ref: Option<(usize, i64)> = None;
    for (n, line) in bytes.split(|&c| c == b'\n').enumerate() {
        let line_no = n + 1;
        let mut it = tokens(line);
        let Some(kw) = it.next() else { continue };
        match kw {
            b"v" => {
                let mut p = [0f64; 3];
                for c in &mut p {
                    let t = it.next();
                    *c = match t.and_then(parse_f64) {
                        Some(v) => v,
                        None => {
                            return Err(err(
                                line_no,
                                format!(
                                    "expected a number in 'v x y z', found {}",
                                    t.map_or("the end of the line".into(), |t| format!(
                                        "'{}'",
                                        shown(t)
                                    ))
                                ),
                            ));
                        }
                    };
                }
                if verts.len() as u64 >= max_vertices {
                    return Err(GeometryError::TooManyVertices {
                        limit: max_vertices,
                    });
                }
                verts.push(p);
            }
            b"f" | b"fo" => {
                corners.clear();
                let nv = verts.len() as i64;
                for t in it {
                    let idx = t.split(|&c| c == b'/').next().unwrap_or(b"");
                    let Some(i) = parse_i64(idx) else {
                        return Err(err(
                            line_no,
                            format!("bad vertex reference '{}' in a face", shown(t)),
                        ));
                    };
                    let abs = match i {
                        0 => {
                            return Err(err(
                                line_no,
                                "a face refers to vertex 0 (OBJ counts from 1)".into(),
                            ));
                        }
                        i if i < 0 => nv + i,
                        i => i - 1,
                    };
                    if abs < 0 {
                        return Err(err(
                            line_no,
                            format!(
                                "a face refers to vertex {i} but only {nv} vertices are defined before it"
                            ),
                        ));
                    }
                    if abs >= nv {
                        if forward_ref.is_none() {
                            forward_ref = Some((line_no, abs));
                        }
                        if furthest_ref.is_none_or(|(_, a)| abs > a) {
                            furthest_ref = Some((line_no, abs));
                        }
                    }
                    if abs > u32::MAX as i64 - 1 {
                        return Err(err(line_no, format!("vertex index {i} is too large")));
                    }
                    corners.push(abs as u32);
                }
                if corners.len() < 3 {
                    return Err(err(
                        line_no,
                        format!("a face has {} vertices, it needs at least 3", corners.len()),
                    ));
                }
                for k in 1..corners.len() - 1 {
                    seen += 1;
                    if seen <= limits.max_triangles {
                        tris.push([corners[0], corners[k], corners[k + 1]]);
                    }
                }
            }
            _ => {}
        }
    }
    if seen > limits.max_triangles {
        return Err(GeometryError::TooManyTriangles {
            found: seen,
            limit: limits.max_triangles,
        });
    }
    if let Some((far_line, far)) = furthest_ref
        && far >= verts.len() as i64
    {
        // Name the first reference that stays unresolved.
        let (line_no, abs) = match forward_ref {
            Some((l, a)) if a >= verts.len() as i64 => (l, a),
            _ => (far_line, far),
        };
        return Err(err(
            line_no,
            format!(
                "a face refers to vertex {} but the file defines only {}",
                abs + 1,
                verts.len()
            ),
        ));
    }
    let mut b = MeshBuilder::new(verts.len(), 0, limits.max_triangles);
    let mut map = Vec::with_capacity(verts.len());
    for p in &verts {
        map.push(b.vertex(*p, OBJ)?);
    }
    drop(verts);
    for t in &mut tris {
        *t = t.map(|i| map[i as usize]);
    }
    b.set_triangles(tris);
    b.finish()
}
