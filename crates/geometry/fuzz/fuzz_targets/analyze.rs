//! `geometry::analyze` on arbitrary bytes (detection, every parser, analysis):
//! an answer or an error, never a panic or a hang.
#![no_main]

use geometry::{Limits, analyze};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_bytes: 4 << 20,
        max_triangles: 200_000,
    };
    if let Ok(a) = analyze(data, &limits) {
        assert!(a.triangles > 0 && a.triangles <= limits.max_triangles);
        assert!(a.shells <= a.triangles);
        let _ = serde_json_free_summary(&a);
    }
});

fn serde_json_free_summary(a: &geometry::Analysis) -> String {
    format!("{a:?}")
}
