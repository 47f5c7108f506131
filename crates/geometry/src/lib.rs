//! Mesh parsing and analysis: the bytes of a customer's model in, the numbers the
//! price is made of out. Pure: no I/O, no async, no allocation before limits are checked.
//!
//! CONTRACT used by the pricing worker (crates/pricing) and the CLI — keep these
//! names and meanings; add fields freely.

use serde::Serialize;

pub mod analysis;
mod detect;
mod mem;
mod mesh;
mod num;
mod obj;
mod orient;
mod ply;
mod stl;
mod text;
mod threemf;
mod weld;

pub use analysis::analyze_mesh;
pub use mesh::Mesh;

/// A model file format, detected from the content, never from a file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    StlBinary,
    StlAscii,
    Obj,
    Ply,
    ThreeMf,
}

impl Format {
    /// Short human name: "binary STL", "ASCII STL", "OBJ", "PLY", "3MF".
    pub fn label(self) -> &'static str {
        match self {
            Format::StlBinary => "binary STL",
            Format::StlAscii => "ASCII STL",
            Format::Obj => "OBJ",
            Format::Ply => "PLY",
            Format::ThreeMf => "3MF",
        }
    }
}

/// Limits checked before work is done.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_triangles: u64,
}

/// Bytes of 3MF model XML allowed per triangle of the limit: a triangle
/// element is ~50 bytes and an unwelded exporter writes up to three
/// vertices of ~70 bytes each (real files: 72–78 bytes per triangle).
pub const XML_BYTES_PER_TRIANGLE: u64 = 256;
/// Model XML allowed beyond that (the model element, metadata, build).
pub const XML_SLACK_BYTES: u64 = 16 << 20;

impl Limits {
    /// Vertices a model may list: three per allowed triangle (more could
    /// never all be used) plus a little slack.
    pub fn max_vertices(&self) -> u64 {
        self.max_triangles.saturating_mul(3).saturating_add(1024)
    }
    /// Bytes a compressed container (the 3MF model part) may inflate to:
    /// [`XML_BYTES_PER_TRIANGLE`] per allowed triangle plus [`XML_SLACK_BYTES`].
    /// Reading stops there, so a zip bomb costs no more than this in time
    /// and nothing like it in memory (the XML is parsed as it inflates).
    pub fn max_inflated_bytes(&self) -> u64 {
        self.max_triangles
            .saturating_mul(XML_BYTES_PER_TRIANGLE)
            .saturating_add(XML_SLACK_BYTES)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 256 * 1024 * 1024,
            max_triangles: 2_000_000,
        }
    }
}

/// Everything the price and the checks need to know about one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    pub format: Format,
    pub triangles: u64,
    /// Distinct positions after welding identical coordinates.
    pub vertices: u64,
    /// Signed volume in mm³ (negative when the model is inside-out).
    pub volume_mm3: f64,
    pub area_mm2: f64,
    pub bbox_min: [f64; 3],
    pub bbox_max: [f64; 3],
    /// Connected shells (edge-connected components after welding).
    pub shells: u64,
    /// Edges used by exactly one triangle.
    pub boundary_edges: u64,
    /// Edges used by more than two triangles.
    pub nonmanifold_edges: u64,
    /// Triangles with (near-)zero area.
    pub degenerate_triangles: u64,
    /// Manifold edges whose two triangles run the same way, as the file
    /// wound them (before the repair).
    pub inconsistent_edges: u64,
    /// Triangles turned to make the winding of their shell consistent before
    /// anything was measured (0 when the file was consistent).
    pub flipped_triangles: u64,
    /// Patches of triangles that cannot be oriented consistently (a Möbius
    /// strip, a Klein bottle): the volume means nothing.
    pub non_orientable_shells: u64,
    /// The containment tests between shells ran out of budget: which shells
    /// are voids is not known, so neither is the volume.
    pub containment_undecided: bool,
    /// The model as a whole is inside-out (its signed volume is negative).
    pub inverted: bool,
    /// Closed inside-out shells inside a solid: hollows, already subtracted.
    pub voids: u64,
    /// Gemstones found by the stone rule (see [`ShellKind::Stone`]); closed
    /// shells inside a stone ([`ShellKind::StonePart`]) are not counted again.
    pub stones: u64,
    /// Volume of material other than stones, mm³: solids minus voids, with
    /// inside-out shells counted positive. This is what the price weighs.
    pub metal_volume_mm3: f64,
    /// Volume of the shells taken for stones and their parts, mm³.
    pub stone_volume_mm3: f64,
    /// Which rule decided what is metal.
    pub metal_rule: MetalRule,
    /// Per-shell measures, at most [`analysis::MAX_LISTED_SHELLS`] (largest first
    /// when cut; a `ShellListTruncated` warning says so).
    pub shell_details: Vec<Shell>,
    /// Things the customer or operator should know; those that doubt the
    /// volume ([`Analysis::volume_doubts`]) stop pricing.
    pub warnings: Vec<Warning>,
}

/// One edge-connected shell of the model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shell {
    pub triangles: u64,
    /// Signed volume in mm³ (negative for a void or an inside-out shell).
    pub volume_mm3: f64,
    pub area_mm2: f64,
    pub bbox_min: [f64; 3],
    pub bbox_max: [f64; 3],
    /// Edges of this shell without a partner triangle.
    pub open_edges: u64,
    /// No open edges: the shell encloses a volume.
    pub closed: bool,
    /// Number of through-holes (a ring has 1), when the shell is closed.
    pub genus: Option<u64>,
    pub kind: ShellKind,
}

/// What a shell is, judged from its orientation, closure and nesting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShellKind {
    /// Closed, facing outwards.
    Solid,
    /// Closed, facing inwards, inside a solid: a hollow that subtracts.
    Void,
    /// Closed, facing inwards, inside nothing: an inside-out part.
    Inverted,
    /// Closed, facing outwards, inside another solid (overlapping material).
    Nested,
    /// A gemstone by the stone rule (docs/geometry.md, "Stone rule"): in a
    /// model of several shells, a closed, outward-facing, genus-0 shell other
    /// than the metal body (the largest solid), at most a quarter of its
    /// volume and near it, compact (36πV²/A³ ≥ 0.45), star-shaped from its
    /// centroid, with at least 8 facet planes and at most 5,000 triangles.
    Stone,
    /// A closed shell inside a stone (exporters write a gem as several
    /// overlapping shells, e.g. an inner reflection shell and a crown): part of
    /// that stone, not metal, and not counted as another stone.
    StonePart,
    /// Has open edges: its volume is not meaningful.
    Open,
}

/// Which rule decided what of the model is metal (and so what the price weighs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetalRule {
    /// The model is one shell: all of it is metal.
    SingleShell,
    /// Several shells and none is a stone: all are metal (voids subtract,
    /// inside-out shells count positive).
    AllShells,
    /// Shells found by the stone rule (and the shells inside them) are left out;
    /// the rest is metal.
    StonesExcluded,
}

impl MetalRule {
    /// The rule in one English sentence (callers translate by the variant).
    pub fn describe(self) -> &'static str {
        match self {
            MetalRule::SingleShell => "one shell: the whole model is metal",
            MetalRule::AllShells => {
                "several shells, none of them a stone: all shells are metal (voids subtracted)"
            }
            MetalRule::StonesExcluded => {
                "stones left out: small, compact, convex, genus-0 closed shells near the largest \
                 solid (and shells inside them) are stones; the rest is metal"
            }
        }
    }
}

/// A remark about the model, with an English message; callers translate by `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Warning {
    #[error("the model is inside-out (its faces point inwards); the volume was negative")]
    InsideOut,
    #[error("{count} shells are inside-out; their volume is counted as positive metal")]
    InvertedShells { count: u64 },
    #[error(
        "the winding of {triangles} triangles disagreed with their neighbours ({edges} edges); \
         they were turned before measuring"
    )]
    WindingRepaired { triangles: u64, edges: u64 },
    #[error(
        "{shells} surfaces cannot be oriented (they have no inside, like a Möbius strip); \
         the volume is meaningless"
    )]
    NonOrientable { shells: u64 },
    #[error("too many shells to tell which lie inside which; the volume is uncertain")]
    ContainmentUndecided,
    #[error("{count} shells are not closed ({open_edges} open edges); the volume is uncertain")]
    OpenShells { count: u64, open_edges: u64 },
    #[error("{count} edges are shared by more than two triangles")]
    NonManifoldEdges { count: u64 },
    #[error("{count} hollow voids inside the model are subtracted from its volume")]
    Voids { count: u64 },
    #[error("{count} shells lie inside other shells; their volume is counted twice")]
    NestedShells { count: u64 },
    #[error("stones left out of the metal volume (by the stone rule): {count}")]
    Stones { count: u64 },
    #[error("{count} triangles have zero area")]
    DegenerateTriangles { count: u64 },
    #[error("the model has {total} shells; only the {listed} largest are listed")]
    ShellListTruncated { listed: u64, total: u64 },
}

impl Analysis {
    /// The warnings that make the volume unfit to price from: open shells,
    /// non-manifold edges, non-orientable surfaces, shells counted twice,
    /// undecided containment. Empty when the volume can be trusted.
    pub fn volume_doubts(&self) -> Vec<&Warning> {
        self.warnings.iter().filter(|w| w.doubts_volume()).collect()
    }
    /// Closed and manifold: every edge shared by exactly two triangles.
    pub fn watertight(&self) -> bool {
        self.boundary_edges == 0 && self.nonmanifold_edges == 0 && self.triangles > 0
    }
    /// Size of the bounding box in mm: [x, y, z].
    pub fn bbox_size(&self) -> [f64; 3] {
        [
            self.bbox_max[0] - self.bbox_min[0],
            self.bbox_max[1] - self.bbox_min[1],
            self.bbox_max[2] - self.bbox_min[2],
        ]
    }
}

impl Warning {
    /// This remark means the volume cannot be trusted (see [`Analysis::volume_doubts`]).
    pub fn doubts_volume(&self) -> bool {
        matches!(
            self,
            Warning::OpenShells { .. }
                | Warning::NonManifoldEdges { .. }
                | Warning::NonOrientable { .. }
                | Warning::NestedShells { .. }
                | Warning::ContainmentUndecided
        )
    }
}

/// Why a file could not be analysed: each message is one a customer can act on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeometryError {
    #[error("the file is empty")]
    Empty,
    #[error("file is not an STL/OBJ/PLY/3MF model ({found})")]
    UnknownFormat { found: String },
    #[error("{0} files are not supported yet")]
    Unsupported(&'static str),
    #[error("file is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
    #[error("model has {found} triangles, more than the limit of {limit}")]
    TooManyTriangles { found: u64, limit: u64 },
    #[error(
        "model lists more than {limit} vertices (at most three per allowed triangle); \
         it cannot be within the triangle limit"
    )]
    TooManyVertices { limit: u64 },
    #[error(
        "the {format} expands beyond {limit_mb} MB when unpacked, more than any model \
         within the limits needs"
    )]
    Expands { format: &'static str, limit_mb: u64 },
    #[error("{format}: {message}")]
    Malformed {
        format: &'static str,
        message: String,
    },
    #[error("the model contains no triangles")]
    NoTriangles,
}

/// Detects the format from the content (and, for binary STL, the length).
pub fn detect(bytes: &[u8]) -> Result<Format, GeometryError> {
    detect::detect(bytes)
}

/// Parses a model into a welded, indexed mesh in millimetres, checking the
/// limits before allocating.
pub fn parse(bytes: &[u8], limits: &Limits) -> Result<(Format, Mesh), GeometryError> {
    check_size(bytes, limits)?;
    let format = detect(bytes)?;
    Ok((format, parse_as(format, bytes, limits)?))
}

/// Parses bytes as the given format, without detection (for callers that
/// know the format, and for the fuzz targets of each parser). The limits are
/// checked as in [`parse`].
pub fn parse_as(format: Format, bytes: &[u8], limits: &Limits) -> Result<Mesh, GeometryError> {
    check_size(bytes, limits)?;
    match format {
        Format::StlBinary => stl::parse_binary(bytes, limits),
        Format::StlAscii => stl::parse_ascii(bytes, limits),
        Format::Obj => obj::parse(bytes, limits),
        Format::Ply => ply::parse(bytes, limits),
        Format::ThreeMf => threemf::parse(bytes, limits),
    }
}

fn check_size(bytes: &[u8], limits: &Limits) -> Result<(), GeometryError> {
    if bytes.len() as u64 > limits.max_bytes {
        return Err(GeometryError::TooLarge {
            size: bytes.len() as u64,
            limit: limits.max_bytes,
        });
    }
    Ok(())
}

/// Parses and analyses a model.
pub fn analyze(bytes: &[u8], limits: &Limits) -> Result<Analysis, GeometryError> {
    let (format, mesh) = parse(bytes, limits)?;
    Ok(analysis::analyze_mesh(&mesh, format))
}
