//! 3MF: a zip container with a model XML part. Reads every object's mesh,
//! components (objects made of other objects, each with a transform) and the
//! build items that place objects on the plate, applies the 3x4 transforms,
//! and converts the model `unit` to millimetres. Only build items count:
//! objects that are defined but never placed are not part of the print.

use std::collections::HashMap;
use std::io::{Cursor, Read};

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use crate::mesh::{Mesh, MeshBuilder};
use crate::num::parse_f64;
use crate::text::shown;
use crate::{GeometryError, Limits};

const TMF: &str = "3MF";

fn err(message: impl Into<String>) -> GeometryError {
    GeometryError::Malformed {
        format: TMF,
        message: message.into(),
    }
}

/// Row-vector affine transform as 3MF writes it: p' = [x y z 1] · M (4x3).
type Mat = [f64; 12];
const IDENTITY: Mat = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0];

fn apply(m: &Mat, p: [f64; 3]) -> [f64; 3] {
    [
        p[0] * m[0] + p[1] * m[3] + p[2] * m[6] + m[9],
        p[0] * m[1] + p[1] * m[4] + p[2] * m[7] + m[10],
        p[0] * m[2] + p[1] * m[5] + p[2] * m[8] + m[11],
    ]
}

/// `a` then `b`.
fn compose(a: &Mat, b: &Mat) -> Mat {
    let mut r = [0.0; 12];
    for row in 0..4 {
        for col in 0..3 {
            let mut s = if row == 3 { b[9 + col] } else { 0.0 };
            for k in 0..3 {
                s += a[row * 3 + k] * b[k * 3 + col];
            }
            r[row * 3 + col] = s;
        }
    }
    r
}

fn det(m: &Mat) -> f64 {
    m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6])
        + m[2] * (m[3] * m[7] - m[4] * m[6])
}

#[derive(Default)]
struct Object {
    vertices: Vec<[f64; 3]>,
    triangles: Vec<[u32; 3]>,
    components: Vec<(u64, Mat)>,
}

fn attr(e: &BytesStart, name: &[u8]) -> Result<Option<Vec<u8>>, GeometryError> {
    for a in e.attributes() {
        let a = a.map_err(|e| err(format!("bad XML attribute: {e}")))?;
        if a.key.local_name().as_ref() == name {
            return Ok(Some(a.value.into_owned()));
        }
    }
    Ok(None)
}

fn num_attr(e: &BytesStart, name: &[u8], what: &str) -> Result<f64, GeometryError> {
    let v = attr(e, name)?
        .ok_or_else(|| err(format!("a {what} lacks its '{}' attribute", shown(name))))?;
    parse_f64(v.trim_ascii()).ok_or_else(|| {
        err(format!(
            "a {what} has {}=\"{}\", not a number",
            shown(name),
            shown(&v)
        ))
    })
}

fn id_attr(e: &BytesStart, name: &[u8], what: &str) -> Result<u64, GeometryError> {
    let v = num_attr(e, name, what)?;
    if v < 0.0 || v.fract() != 0.0 || v > u32::MAX as f64 {
        return Err(err(format!(
            "a {what} has {}={v}, not a valid id",
            shown(name)
        )));
    }
    Ok(v as u64)
}

fn transform_attr(e: &BytesStart) -> Result<Mat, GeometryError> {
    let Some(t) = attr(e, b"transform")? else {
        return Ok(IDENTITY);
    };
    let vals: Vec<f64> = t
        .split(|c| c.is_ascii_whitespace())
        .filter(|s| !s.is_empty())
        .map(parse_f64)
        .collect::<Option<_>>()
        .ok_or_else(|| err(format!("transform \"{}\" is not 12 numbers", shown(&t))))?;
    let m: Mat = vals
        .try_into()
        .map_err(|_| err(format!("transform \"{}\" is not 12 numbers", shown(&t))))?;
    Ok(m)
}

fn unit_scale(unit: &[u8]) -> Result<f64, GeometryError> {
    Ok(match unit {
        b"micron" => 0.001,
        b"millimeter" => 1.0,
        b"centimeter" => 10.0,
        b"inch" => 25.4,
        b"foot" => 304.8,
        b"meter" => 1000.0,
        other => return Err(err(format!("unknown unit \"{}\"", shown(other)))),
    })
}

/// Finds the main model part: the start part named in `_rels/.rels`, else
/// `3D/3dmodel.model`, else any `.model` part.
fn model_part_name<R: Read + std::io::Seek>(zip: &mut zip::ZipArchive<R>) -> Option<String> {
    if let Ok(mut rels) = zip.by_name("_rels/.rels") {
        let mut text = Vec::new();
        if rels.by_ref().take(1 << 20).read_to_end(&mut text).is_ok() {
            let mut r = Reader::from_reader(text.as_slice());
            let mut buf = Vec::new();
            while let Ok(ev) = r.read_event_into(&mut buf) {
                match ev {
                    Event::Eof => break,
                    Event::Start(e) | Event::Empty(e)
                        if e.local_name().as_ref() == b"Relationship" =>
                    {
                        let ty = attr(&e, b"Type").ok().flatten().unwrap_or_default();
                        if ty.ends_with(b"/3dmodel")
                            && let Some(t) = attr(&e, b"Target").ok().flatten()
                        {
                            let t = String::from_utf8_lossy(&t);
                            return Some(t.trim_start_matches('/').to_string());
                        }
                    }
                    _ => {}
                }
                buf.clear();
            }
        }
    }
    let names: Vec<String> = zip.file_names().map(str::to_string).collect();
    if names.iter().any(|n| n == "3D/3dmodel.model") {
        return Some("3D/3dmodel.model".into());
    }
    names
        .into_iter()
        .find(|n| n.to_ascii_lowercase().ends_with(".model"))
}

/// Largest single XML event (a tag with its attributes, or a text run) read
/// before giving up: no element of a model needs more, and quick-xml holds a
/// whole event in memory.
const MAX_EVENT_BYTES: u64 = 4 << 20;

/// Which budget an [`Inflating`] reader ran out of.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Over {
    Total,
    Event,
}

/// The model part as it inflates, through a budget: reading stops with an
/// error once `cap` bytes have come out in all, or `MAX_EVENT_BYTES` since the
/// parser last finished an event, so neither a zip bomb nor one giant tag is
/// ever held in memory.
struct Inflating<R> {
    inner: std::io::BufReader<R>,
    total: u64,
    cap: u64,
    event: u64,
    over: Option<Over>,
}

impl<R: Read> Inflating<R> {
    fn new(inner: R, cap: u64) -> Self {
        Inflating {
            inner: std::io::BufReader::with_capacity(64 << 10, inner),
            total: 0,
            cap,
            event: 0,
            over: None,
        }
    }
}

impl<R: Read> std::io::BufRead for Inflating<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        let buf = self.inner.fill_buf()?;
        if buf.is_empty() {
            return Ok(buf);
        }
        let over = if self.total >= self.cap {
            Some(Over::Total)
        } else if self.event >= MAX_EVENT_BYTES {
            Some(Over::Event)
        } else {
            None
        };
        if let Some(o) = over {
            self.over = Some(o);
            return Err(std::io::Error::other("over the inflation budget"));
        }
        let room = (self.cap - self.total).min(MAX_EVENT_BYTES - self.event);
        Ok(&buf[..buf.len().min(room as usize)])
    }
    fn consume(&mut self, n: usize) {
        self.total += n as u64;
        self.event += n as u64;
        self.inner.consume(n);
    }
}

impl<R: Read> Read for Inflating<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        use std::io::BufRead;
        let buf = self.fill_buf()?;
        let n = buf.len().min(out.len());
        out[..n].copy_from_slice(&buf[..n]);
        self.consume(n);
        Ok(n)
    }
}

/// Where the parser reads from: an inflating zip entry, or bytes (tests).
trait Source: std::io::BufRead {
    /// The parser finished an event.
    fn event_done(&mut self) {}
    /// Which budget stopped the reading, if one did.
    fn over(&self) -> Option<Over> {
        None
    }
}

impl<R: Read> Source for Inflating<R> {
    fn event_done(&mut self) {
        self.event = 0;
    }
    fn over(&self) -> Option<Over> {
        self.over
    }
}

impl Source for &[u8] {}

impl<S: Source> Source for &mut S {
    fn event_done(&mut self) {
        (**self).event_done();
    }
    fn over(&self) -> Option<Over> {
        (**self).over()
    }
}

pub(crate) fn parse(bytes: &[u8], limits: &Limits) -> Result<Mesh, GeometryError> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| err(format!("the zip container is damaged: {e}")))?;
    let name = model_part_name(&mut zip)
        .ok_or_else(|| err("the archive holds no 3D model part (3D/3dmodel.model)"))?;
    let part = zip
        .by_name(&name)
        .map_err(|e| err(format!("cannot open the model part {name}: {e}")))?;
    // A zip bomb stops at the budget, and the XML is parsed as it inflates:
    // memory holds the model being built, never the XML. The declared size
    // is the sender's word, so it only refuses early, never reserves.
    let cap = limits.max_inflated_bytes();
    let expands = || GeometryError::Expands {
        format: TMF,
        limit_mb: cap.div_ceil(1_000_000),
    };
    if part.size() > cap {
        return Err(expands());
    }
    let mut source = Inflating::new(part, cap);
    let parsed = parse_model(&mut source, limits);
    match source.over {
        Some(Over::Total) => Err(expands()),
        Some(Over::Event) => Err(err(format!(
            "one XML element of the model part is longer than {} MB",
            MAX_EVENT_BYTES >> 20
        ))),
        None => parsed,
    }
}

fn parse_model<S: Source>(xml: S, limits: &Limits) -> Result<Mesh, GeometryError> {
    let mut r = Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut scale = 1.0;
    let mut objects: HashMap<u64, Object> = HashMap::new();
    let mut current: Option<(u64, Object)> = None;
    let mut items: Vec<(u64, Mat)> = Vec::new();
    let mut stored: u64 = 0;
    // Counted as they are read, against budgets derived from the limits.
    let max_vertices = limits.max_vertices();
    let mut vertices: u64 = 0;
    let max_parts = max_parts(limits);
    let mut parts: u64 = 0;
    let too_many_parts = || {
        err(format!(
            "more than {max_parts} objects, components and build items"
        ))
    };
    loop {
        let ev = r.read_event_into(&mut buf);
        r.get_mut().event_done();
        if r.get_ref().over().is_some() {
            // The caller names the budget.
            return Err(err("over budget"));
        }
        let ev = ev.map_err(|e| {
            err(format!(
                "the model XML is broken near byte {}: {e}",
                r.buffer_position()
            ))
        })?;
        if let Event::Start(ref e) | Event::Empty(ref e) = ev
            && matches!(e.local_name().as_ref(), b"object" | b"component" | b"item")
        {
            parts += 1;
            if parts > max_parts {
                return Err(too_many_parts());
            }
        }
        match ev {
            Event::Eof => break,
            Event::Start(ref e) | Event::Empty(ref e) => match e.local_name().as_ref() {
                b"model" => {
                    if let Some(u) = attr(e, b"unit")? {
                        scale = unit_scale(&u)?;
                    }
                }
                b"object" => {
                    let id = id_attr(e, b"id", "object")?;
                    current = Some((id, Object::default()));
                    if matches!(ev, Event::Empty(_)) {
                        let (id, o) = current.take().unwrap();
                        objects.insert(id, o);
                    }
                }
                b"vertex" => {
                    let (_, o) = current
                        .as_mut()
                        .ok_or_else(|| err("a vertex outside an object"))?;
                    vertices += 1;
                    if vertices > max_vertices {
                        return Err(GeometryError::TooManyVertices {
                            limit: max_vertices,
                        });
                    }
                    o.vertices.push([
                        num_attr(e, b"x", "vertex")?,
                        num_attr(e, b"y", "vertex")?,
                        num_attr(e, b"z", "vertex")?,
                    ]);
                }
                b"triangle" => {
                    let (_, o) = current
                        .as_mut()
                        .ok_or_else(|| err("a triangle outside an object"))?;
                    let t = [b"v1", b"v2", b"v3"].map(|k| id_attr(e, k, "triangle"));
                    let t = [t[0].clone()?, t[1].clone()?, t[2].clone()?];
                    let n = o.vertices.len() as u64;
                    if let Some(bad) = t.iter().find(|&&v| v >= n) {
                        return Err(err(format!(
                            "a triangle refers to vertex {bad} but its object has {n} vertices"
                        )));
                    }
                    stored += 1;
                    if stored > limits.max_triangles {
                        return Err(GeometryError::TooManyTriangles {
                            found: stored,
                            limit: limits.max_triangles,
                        });
                    }
                    o.triangles.push(t.map(|v| v as u32));
                }
                b"component" => {
                    let (_, o) = current
                        .as_mut()
                        .ok_or_else(|| err("a component outside an object"))?;
                    if let Some(path) = attr(e, b"path")? {
                        return Err(GeometryError::Unsupported(if path.is_empty() {
                            "3MF"
                        } else {
                            "3MF with components in other model parts (production extension)"
                        }));
                    }
                    o.components
                        .push((id_attr(e, b"objectid", "component")?, transform_attr(e)?));
                }
                b"item" => {
                    items.push((id_attr(e, b"objectid", "build item")?, transform_attr(e)?));
                }
                _ => {}
            },
            Event::End(ref e) if e.local_name().as_ref() == b"object" => {
                if let Some((id, o)) = current.take() {
                    objects.insert(id, o);
                }
            }
            _ => {}
        }
        buf.clear();
    }
    if items.is_empty() {
        return Err(err(
            "the build has no items: nothing is placed for printing",
        ));
    }

    // Count what the build places (instancing multiplies) before emitting:
    // triangles and vertices, each object's once (memoised, so a lattice of
    // components that refer twice to the next level costs its size, not 2^depth).
    fn count(
        objects: &HashMap<u64, Object>,
        memo: &mut HashMap<u64, (u64, u64)>,
        id: u64,
        depth: u32,
    ) -> Result<(u64, u64), GeometryError> {
        if depth > 32 {
            return Err(err(
                "components nest more than 32 deep (or refer to themselves)",
            ));
        }
        if let Some(&n) = memo.get(&id) {
            return Ok(n);
        }
        let o = objects.get(&id).ok_or_else(|| {
            err(format!(
                "something refers to object {id}, which is not defined"
            ))
        })?;
        let (mut t, mut v) = (o.triangles.len() as u64, o.vertices.len() as u64);
        for (c, _) in &o.components {
            let (ct, cv) = count(objects, memo, *c, depth + 1)?;
            t = t.saturating_add(ct);
            v = v.saturating_add(cv);
        }
        memo.insert(id, (t, v));
        Ok((t, v))
    }
    let mut memo = HashMap::new();
    let (mut total, mut total_vertices) = (0u64, 0u64);
    for (id, _) in &items {
        let (t, v) = count(&objects, &mut memo, *id, 0)?;
        total = total.saturating_add(t);
        total_vertices = total_vertices.saturating_add(v);
    }
    if total > limits.max_triangles {
        return Err(GeometryError::TooManyTriangles {
            found: total,
            limit: limits.max_triangles,
        });
    }
    if total_vertices > max_vertices {
        return Err(GeometryError::TooManyVertices {
            limit: max_vertices,
        });
    }
    let units: Mat = [
        scale, 0.0, 0.0, 0.0, scale, 0.0, 0.0, 0.0, scale, 0.0, 0.0, 0.0,
    ];
    let mut b = MeshBuilder::new(total as usize / 2 + 8, total as usize, limits.max_triangles);
    fn emit(
        objects: &HashMap<u64, Object>,
        id: u64,
        m: &Mat,
        b: &mut MeshBuilder,
    ) -> Result<(), GeometryError> {
        let o = &objects[&id];
        let flip = det(m) < 0.0;
        let mut map = Vec::with_capacity(o.vertices.len());
        for p in &o.vertices {
            map.push(b.vertex(apply(m, *p), TMF)?);
        }
        for t in &o.triangles {
            let t = t.map(|i| map[i as usize]);
            b.triangle(if flip { [t[0], t[2], t[1]] } else { t });
        }
        for (c, cm) in &o.components {
            emit(objects, *c, &compose(cm, m), b)?;
        }
        Ok(())
    }
    for (id, m) in &items {
        emit(&objects, *id, &compose(m, &units), &mut b)?;
    }
    b.finish()
}

/// Objects, components and build items a model may have in all: far more
/// than any piece of jewellery needs, few enough that their bookkeeping
/// (about 150 bytes each) stays small.
fn max_parts(limits: &Limits) -> u64 {
    limits.max_triangles / 16 + 4096
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transforms_compose_in_order() {
        // Scale by 2, then translate by (1, 0, 0).
        let s: Mat = [2.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0];
        let t: Mat = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0];
        assert_eq!(apply(&compose(&s, &t), [1.0, 1.0, 1.0]), [3.0, 2.0, 2.0]);
        assert_eq!(apply(&compose(&t, &s), [1.0, 1.0, 1.0]), [4.0, 2.0, 2.0]);
        assert_eq!(det(&s), 8.0);
    }

    #[test]
    fn model_xml_with_components_and_units() {
        let xml = br#"<?xml version="1.0"?>
<model unit="centimeter" xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02">
 <resources>
  <object id="1" type="model"><mesh>
   <vertices><vertex x="0" y="0" z="0"/><vertex x="1" y="0" z="0"/><vertex x="0" y="1" z="0"/><vertex x="0" y="0" z="1"/></vertices>
   <triangles><triangle v1="0" v2="2" v3="1"/><triangle v1="0" v2="1" v3="3"/><triangle v1="0" v2="3" v3="2"/><triangle v1="1" v2="2" v3="3"/></triangles>
  </mesh></object>
  <object id="2"><components>
   <component objectid="1"/>
   <component objectid="1" transform="1 0 0 0 1 0 0 0 1 5 0 0"/>
  </components></object>
 </resources>
 <build><item objectid="2" transform="-1 0 0 0 1 0 0 0 1 0 0 0"/></build>
</model>"#;
        let m = parse_model(&xml[..], &Limits::default()).unwrap();
        assert_eq!(m.triangles.len(), 8);
        let a = crate::analyze_mesh(&m, crate::Format::ThreeMf);
        // Two tetrahedra of 1/6 cm³ each, mirrored (winding fixed): 2 * 1000/6 mm³.
        assert!(
            (a.volume_mm3 - 2000.0 / 6.0).abs() < 1e-9,
            "{}",
            a.volume_mm3
        );
        assert_eq!(a.shells, 2);
        assert_eq!(a.bbox_min[0], -60.0);
    }
}
