//! Format detection from content, never from a name.

use crate::stl;
use crate::text::shown;
use crate::{Format, GeometryError};

/// Bytes that appear in text files (UTF-8 allowed).
fn is_text(b: &[u8]) -> bool {
    b.iter()
        .all(|&c| c >= 0x20 && c != 0x7f || matches!(c, b'\t' | b'\n' | b'\r' | 0x0c))
}

fn strip_leading(b: &[u8]) -> &[u8] {
    let b = b.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(b);
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

fn starts_with_ci(b: &[u8], word: &[u8]) -> bool {
    b.len() >= word.len() && b[..word.len()].eq_ignore_ascii_case(word)
}

const OBJ_KEYWORDS: &[&[u8]] = &[
    b"v",
    b"vt",
    b"vn",
    b"vp",
    b"f",
    b"fo",
    b"l",
    b"p",
    b"o",
    b"g",
    b"s",
    b"usemtl",
    b"mtllib",
    b"cstype",
    b"deg",
    b"curv",
    b"curv2",
    b"surf",
    b"parm",
    b"end",
    b"trim",
    b"hole",
    b"lod",
    b"maplib",
    b"usemap",
    b"shadow_obj",
    b"trace_obj",
    b"bevel",
    b"c_interp",
    b"d_interp",
    b"mg",
];

/// An OBJ is text whose lines start with OBJ keywords (or `#`), with at least
/// one vertex line.
fn looks_obj(b: &[u8]) -> bool {
    let window = &b[..b.len().min(64 * 1024)];
    // Drop a last line that the window may have cut.
    let window = if window.len() < b.len() {
        match window.iter().rposition(|&c| c == b'\n') {
            Some(n) => &window[..n],
            None => window,
        }
    } else {
        window
    };
    if !is_text(window) {
        return false;
    }
    let mut vertex_lines = 0usize;
    let mut lines = 0usize;
    let mut known = 0usize;
    for line in window.split(|&c| c == b'\n') {
        let line = strip_leading(line);
        if line.is_empty() {
            continue;
        }
        lines += 1;
        if line[0] == b'#' {
            known += 1;
            continue;
        }
        let word = line
            .split(|c| c.is_ascii_whitespace())
            .next()
            .unwrap_or(b"");
        if word == b"v" {
            vertex_lines += 1;
        }
        if OBJ_KEYWORDS.contains(&word) {
            known += 1;
        }
    }
    vertex_lines > 0 && known * 10 >= lines * 9
}

/// A 3MF is a zip archive with a `.model` part; its central directory at the
/// end of the archive names it.
fn looks_3mf(b: &[u8]) -> bool {
    let tail = &b[b.len().saturating_sub(64 * 1024)..];
    let head = &b[..b.len().min(1024)];
    let has = |hay: &[u8]| hay.windows(6).any(|w| w.eq_ignore_ascii_case(b".model"));
    has(tail) || has(head)
}

pub(crate) fn detect(b: &[u8]) -> Result<Format, GeometryError> {
    if b.is_empty() {
        return Err(GeometryError::Empty);
    }
    if b.starts_with(b"PK\x03\x04") {
        if looks_3mf(b) {
            return Ok(Format::ThreeMf);
        }
        return Err(GeometryError::UnknownFormat {
            found: "a ZIP archive without a 3D model part (3MF needs 3D/3dmodel.model)".into(),
        });
    }
    let head = &b[..b.len().min(1024)];
    let text = is_text(head);
    let lead = strip_leading(head);
    let solid = text
        && starts_with_ci(lead, b"solid")
        && lead.get(5).is_none_or(|c| c.is_ascii_whitespace());
    // A binary STL may begin with "solid" in its header: the length decides.
    if stl::binary_length_matches(b) && !solid {
        return Ok(Format::StlBinary);
    }
    if lead.starts_with(b"ply") && matches!(lead.get(3), Some(b'\n' | b'\r')) {
        return Ok(Format::Ply);
    }
    if solid {
        return Ok(Format::StlAscii);
    }
    if text && looks_obj(b) {
        return Ok(Format::Obj);
    }
    // A known signature beats the guess that free-form bytes are a damaged binary STL.
    if let Some(what) = known_signature(b) {
        return Err(GeometryError::UnknownFormat {
            found: what.to_string(),
        });
    }
    if stl::looks_binary(b) {
        return Ok(Format::StlBinary);
    }
    Err(GeometryError::UnknownFormat { found: describe(b) })
}

/// The kind of a well-known non-model file, by its signature.
fn known_signature(b: &[u8]) -> Option<&'static str> {
    let known: &[(&[u8], &str)] = &[
        (b"%PDF", "a PDF document"),
        (b"\x89PNG", "a PNG image"),
        (b"\xFF\xD8\xFF", "a JPEG image"),
        (b"GIF8", "a GIF image"),
        (b"glTF", "a binary glTF (GLB) file"),
        (b"Kaydara FBX Binary", "an FBX file"),
        (b"ISO-10303-21", "a STEP file"),
        (b"\x1f\x8b", "a gzip archive"),
        (b"Rar!", "a RAR archive"),
        (b"7z\xBC\xAF", "a 7-Zip archive"),
        (b"OFF", "an OFF mesh"),
        (b"\x7fELF", "a program"),
        (b"MZ", "a program"),
    ];
    known
        .iter()
        .find(|(magic, _)| b.starts_with(magic))
        .map(|(_, what)| *what)
}

/// What a file that is not a model seems to be, for the error message.
fn describe(b: &[u8]) -> String {
    if let Some(what) = known_signature(b) {
        return what.to_string();
    }
    let head = &b[..b.len().min(256)];
    if is_text(head) || std::str::from_utf8(head).is_ok() {
        let lead = strip_leading(head);
        let line = lead
            .split(|&c| c == b'\n' || c == b'\r')
            .next()
            .unwrap_or(b"");
        if lead.starts_with(b"<") {
            return format!("an XML or HTML document starting with '{}'", shown(line));
        }
        if lead.starts_with(b"{") {
            return "a JSON document".into();
        }
        return format!("text starting with '{}'", shown(line));
    }
    let hex: Vec<String> = b.iter().take(8).map(|c| format!("{c:02x}")).collect();
    format!("binary data starting with {}", hex.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_magic() {
        assert_eq!(detect(b""), Err(GeometryError::Empty));
        assert_eq!(detect(b"ply\nformat ascii 1.0\n"), Ok(Format::Ply));
        assert_eq!(detect(b"solid x\nendsolid x\n"), Ok(Format::StlAscii));
        assert_eq!(
            detect(b"# hi\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"),
            Ok(Format::Obj)
        );
        assert!(
            matches!(detect(b"%PDF-1.4 ..."), Err(GeometryError::UnknownFormat { found }) if found == "a PDF document")
        );
        let png = [&b"\x89PNG\r\n\x1a\n"[..], &[0u8; 200]].concat();
        assert!(
            matches!(detect(&png), Err(GeometryError::UnknownFormat { found }) if found == "a PNG image")
        );
        assert!(matches!(
            detect(b"hello world"),
            Err(GeometryError::UnknownFormat { .. })
        ));
    }

    #[test]
    fn binary_stl_with_solid_header() {
        let mut b = b"solid but binary".to_vec();
        b.resize(80, b' ');
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&[0u8; 50]);
        assert_eq!(detect(&b), Ok(Format::StlBinary));
    }
}
