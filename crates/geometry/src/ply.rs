//! PLY (ASCII, binary little- and big-endian). Reads `vertex` x/y/z of any
//! numeric type, `face` lists (`vertex_indices` or `vertex_index`, any count
//! and index types; polygons fan-triangulated) and `tristrips` lists (strips
//! restarted by -1, alternating winding). Other elements and properties
//! (normals, colours, texture coordinates, ...) are skipped.

use crate::mesh::{Mesh, MeshBuilder};
use crate::num::parse_f64;
use crate::text::{Lexer, shown};
use crate::{GeometryError, Limits};

const PLY: &str = "PLY";

fn err(message: String) -> GeometryError {
    GeometryError::Malformed {
        format: PLY,
        message,
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Ty {
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    F32,
    F64,
}

impl Ty {
    fn parse(s: &[u8]) -> Option<Ty> {
        Some(match s {
            b"char" | b"int8" => Ty::I8,
            b"uchar" | b"uint8" => Ty::U8,
            b"short" | b"int16" => Ty::I16,
            b"ushort" | b"uint16" => Ty::U16,
            b"int" | b"int32" => Ty::I32,
            b"uint" | b"uint32" => Ty::U32,
            b"float" | b"float32" => Ty::F32,
            b"double" | b"float64" => Ty::F64,
            _ => return None,
        })
    }
    fn size(self) -> usize {
        match self {
            Ty::I8 | Ty::U8 => 1,
            Ty::I16 | Ty::U16 => 2,
            Ty::I32 | Ty::U32 | Ty::F32 => 4,
            Ty::F64 => 8,
        }
    }
}

#[derive(Debug)]
enum Prop {
    Scalar { ty: Ty, name: Vec<u8> },
    List { count: Ty, item: Ty, name: Vec<u8> },
}

#[derive(Debug)]
struct Element {
    name: Vec<u8>,
    count: u64,
    props: Vec<Prop>,
}

impl Element {
    /// The fewest bytes one instance can take (to refuse impossible counts
    /// before allocating).
    fn min_size(&self, enc: Enc) -> usize {
        self.props
            .iter()
            .map(|p| match (enc, p) {
                (Enc::Ascii, _) => 2,
                (_, Prop::Scalar { ty, .. }) => ty.size(),
                (_, Prop::List { count, .. }) => count.size(),
            })
            .sum::<usize>()
            .max(1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Enc {
    Ascii,
    Le,
    Be,
}

/// Reads values from the body in either encoding.
struct Body<'a> {
    b: &'a [u8],
    pos: usize,
    enc: Enc,
    lx: Lexer<'a>,
}

impl<'a> Body<'a> {
    #[inline]
    fn read(&mut self, ty: Ty) -> Option<f64> {
        if self.enc == Enc::Ascii {
            return self.lx.next().and_then(parse_f64);
        }
        let n = ty.size();
        let s = self.b.get(self.pos..self.pos + n)?;
        self.pos += n;
        let le = self.enc == Enc::Le;
        macro_rules! get {
            ($t:ty, $k:literal) => {{
                let mut a = [0u8; $k];
                a.copy_from_slice(s);
                if le {
                    <$t>::from_le_bytes(a)
                } else {
                    <$t>::from_be_bytes(a)
                }
            }};
        }
        Some(match ty {
            Ty::I8 => f64::from(s[0] as i8),
            Ty::U8 => f64::from(s[0]),
            Ty::I16 => f64::from(get!(i16, 2)),
            Ty::U16 => f64::from(get!(u16, 2)),
            Ty::I32 => f64::from(get!(i32, 4)),
            Ty::U32 => f64::from(get!(u32, 4)),
            Ty::F32 => f64::from(get!(f32, 4)),
            Ty::F64 => get!(f64, 8),
        })
    }

    fn remaining(&self) -> usize {
        if self.enc == Enc::Ascii {
            self.b.len() - self.lx.pos()
        } else {
            self.b.len() - self.pos
        }
    }
}

fn header(bytes: &[u8]) -> Result<(Enc, Vec<Element>, usize), GeometryError> {
    let end = bytes
        .windows(10)
        .position(|w| w == b"end_header")
        .ok_or_else(|| err("the header has no 'end_header' line".into()))?;
    let body = match bytes[end + 10..].iter().position(|&c| c == b'\n') {
        Some(n) => end + 10 + n + 1,
        None => bytes.len(),
    };
    let mut enc = None;
    let mut elements: Vec<Element> = Vec::new();
    for (i, line) in bytes[..end].split(|&c| c == b'\n').enumerate() {
        let line_no = i + 1;
        let t: Vec<&[u8]> = line
            .split(|&c| c <= b' ')
            .filter(|t| !t.is_empty())
            .collect();
        let Some(&kw) = t.first() else { continue };
        let bad = || {
            err(format!(
                "header line {line_no} is not understood: '{}'",
                shown(line)
            ))
        };
        match kw {
            b"ply" | b"comment" | b"obj_info" => {}
            b"format" => {
                enc = Some(match t.get(1).copied() {
                    Some(b"ascii") => Enc::Ascii,
                    Some(b"binary_little_endian") => Enc::Le,
                    Some(b"binary_big_endian") => Enc::Be,
                    _ => return Err(bad()),
                });
            }
            b"element" => {
                let (Some(name), Some(count)) = (t.get(1), t.get(2)) else {
                    return Err(bad());
                };
                let count = std::str::from_utf8(count)
                    .ok()
                    .and_then(|c| c.parse::<u64>().ok())
                    .ok_or_else(bad)?;
                elements.push(Element {
                    name: name.to_vec(),
                    count,
                    props: Vec::new(),
                });
            }
            b"property" => {
                let el = elements.last_mut().ok_or_else(bad)?;
                let prop = if t.get(1) == Some(&&b"list"[..]) {
                    match (
                        t.get(2).and_then(|s| Ty::parse(s)),
                        t.get(3).and_then(|s| Ty::parse(s)),
                        t.get(4),
                    ) {
                        (Some(count), Some(item), Some(name)) => Prop::List {
                            count,
                            item,
                            name: name.to_vec(),
                        },
                        _ => return Err(bad()),
                    }
                } else {
                    match (t.get(1).and_then(|s| Ty::parse(s)), t.get(2)) {
                        (Some(ty), Some(name)) => Prop::Scalar {
                            ty,
                            name: name.to_vec(),
                        },
                        _ => return Err(bad()),
                    }
                };
                el.props.push(prop);
            }
            _ => return Err(bad()),
        }
    }
    let enc = enc.ok_or_else(|| err("the header has no 'format' line".into()))?;
    Ok((enc, elements, body))
}

pub(crate) fn parse(bytes: &[u8], limits: &Limits) -> Result<Mesh, GeometryError> {
    let (enc, elements, body_at) = header(bytes)?;
    let body = &bytes[body_at..];
    let mut rd = Body {
        b: body,
        pos: 0,
        enc,
        lx: Lexer::new(body),
    };

    // Refuse impossible or over-limit counts before allocating.
    for el in &elements {
        let need = el.count.saturating_mul(el.min_size(enc) as u64);
        if need > body.len() as u64 {
            return Err(err(format!(
                "header says {} {} elements but the file is too short to hold them",
                el.count,
                shown(&el.name)
            )));
        }
        if el.name == b"vertex" && el.count > limits.max_vertices() {
            return Err(GeometryError::TooManyVertices {
                limit: limits.max_vertices(),
            });
        }
        if el.name == b"face" && el.count > limits.max_triangles {
            return Err(GeometryError::TooManyTriangles {
                found: el.count,
                limit: limits.max_triangles,
            });
        }
    }

    let mut verts: Vec<[f64; 3]> = Vec::new();
    let mut tris: Vec<[u32; 3]> = Vec::new();
    let mut seen: u64 = 0;
    let mut list: Vec<i64> = Vec::new();
    for el in &elements {
        let kind = el.name.as_slice();
        let truncated = |i: u64| {
            err(format!(
                "the file ends or breaks inside element '{}' {} of {}",
                shown(&el.name),
                i + 1,
                el.count
            ))
        };
        let xyz: Vec<Option<usize>> = el
            .props
            .iter()
            .map(|p| match p {
                Prop::Scalar { name, .. } if kind == b"vertex" => match name.as_slice() {
                    b"x" => Some(0),
                    b"y" => Some(1),
                    b"z" => Some(2),
                    _ => None,
                },
                Prop::List { name, .. }
                    if (kind == b"face" || kind == b"tristrips")
                        && (name == b"vertex_indices" || name == b"vertex_index") =>
                {
                    Some(3)
                }
                _ => None,
            })
            .collect();
        if kind == b"vertex" {
            if !(0..3).all(|k| xyz.contains(&Some(k))) {
                return Err(err("the vertex element lacks an x, y or z property".into()));
            }
            verts.reserve(el.count as usize);
        }
        if kind == b"face" {
            tris.reserve(el.count as usize);
        }
        for i in 0..el.count {
            let mut p = [0f64; 3];
            for (prop, role) in el.props.iter().zip(&xyz) {
                match prop {
                    Prop::Scalar { ty, .. } => {
                        let v = rd.read(*ty).ok_or_else(|| truncated(i))?;
                        if let Some(k) = *role {
                            p[k] = v;
                        }
                    }
                    Prop::List { count, item, .. } => {
                        let n = rd.read(*count).ok_or_else(|| truncated(i))?;
                        if !(0.0..=1e9).contains(&n)
                            || n.fract() != 0.0
                            || n as usize > rd.remaining()
                        {
                            return Err(truncated(i));
                        }
                        list.clear();
                        for _ in 0..n as usize {
                            let v = rd.read(*item).ok_or_else(|| truncated(i))?;
                            if role.is_some() {
                                if v.fract() != 0.0 {
                                    return Err(err(format!(
                                        "element '{}' {}: vertex index {v} is not a whole number",
                                        shown(&el.name),
                                        i + 1
                                    )));
                                }
                                list.push(v as i64);
                            }
                        }
                        if role.is_none() {
                            continue;
                        }
                        let nv = verts.len() as i64;
                        let check = |v: i64| -> Result<u32, GeometryError> {
                            if (0..nv).contains(&v) {
                                Ok(v as u32)
                            } else {
                                Err(err(format!(
                                    "element '{}' {} refers to vertex {v} but there are {nv} vertices",
                                    shown(&el.name),
                                    i + 1
                                )))
                            }
                        };
                        if kind == b"face" {
                            if list.len() < 3 {
                                return Err(err(format!(
                                    "face {} has {} vertices, it needs at least 3",
                                    i + 1,
                                    list.len()
                                )));
                            }
                            let a = check(list[0])?;
                            for k in 1..list.len() - 1 {
                                seen += 1;
                                if seen <= limits.max_triangles {
                                    tris.push([a, check(list[k])?, check(list[k + 1])?]);
                                }
                            }
                        } else {
                            // Triangle strip: -1 restarts; every other triangle
                            // is flipped to keep one winding.
                            let mut run = 0usize;
                            for k in 0..list.len() {
                                if list[k] < 0 {
                                    run = 0;
                                    continue;
                                }
                                run += 1;
                                if run >= 3 {
                                    let (a, b, c) =
                                        (check(list[k - 2])?, check(list[k - 1])?, check(list[k])?);
                                    if a == b || b == c || a == c {
                                        continue; // stitching triangle between strips
                                    }
                                    seen += 1;
                                    if seen <= limits.max_triangles {
                                        tris.push(if run % 2 == 1 { [a, b, c] } else { [b, a, c] });
                                    }
                                }
                            }
                        }
                    }
                }
            }
            if kind == b"vertex" {
                verts.push(p);
            }
        }
    }
    if seen > limits.max_triangles {
        return Err(GeometryError::TooManyTriangles {
            found: seen,
            limit: limits.max_triangles,
        });
    }
    let mut b = MeshBuilder::new(verts.len(), 0, limits.max_triangles);
    let mut map = Vec::with_capacity(verts.len());
    for p in &verts {
        map.push(b.vertex(*p, PLY)?);
    }
    drop(verts);
    for t in &mut tris {
        *t = t.map(|i| map[i as usize]);
    }
    b.set_triangles(tris);
    b.finish()
}
