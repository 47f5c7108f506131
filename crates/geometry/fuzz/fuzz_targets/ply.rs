//! The Ply parser on arbitrary bytes: no panic, no hang, memory within the
//! limits; whatever it accepts must also analyse without panicking.
#![no_main]

use geometry::{Format, Limits, analyze_mesh, parse_as};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_bytes: 4 << 20,
        max_triangles: 200_000,
    };
    if let Ok(mesh) = parse_as(Format::Ply, data, &limits) {
        let a = analyze_mesh(&mesh, Format::Ply);
        assert_eq!(a.triangles as usize, mesh.triangles.len());
    }
});
