//! Prints the analysis of model files: `cargo run -p geometry --example analyze -- FILE...`

use std::time::Instant;

fn main() {
    let limits = geometry::Limits {
        max_bytes: u64::MAX,
        max_triangles: u64::MAX,
    };
    for path in std::env::args().skip(1) {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{path}: {e}");
                continue;
            }
        };
        let t = Instant::now();
        let result = geometry::analyze(&bytes, &limits);
        let ms = t.elapsed().as_secs_f64() * 1e3;
        match result {
            Ok(mut a) => {
                let listed = a.shell_details.len();
                a.shell_details.truncate(30);
                println!(
                    "{path}: {ms:.1} ms\n  {} tris {} verts V={:.6} A={:.6} shells={} ({} listed) boundary={} nm={} degen={} inconsistent={} inverted={} voids={} stones={} metal={:.4} stone={:.4}\n  bbox {:?} {:?}\n  warnings: {:?}",
                    a.triangles,
                    a.vertices,
                    a.volume_mm3,
                    a.area_mm2,
                    a.shells,
                    listed,
                    a.boundary_edges,
                    a.nonmanifold_edges,
                    a.degenerate_triangles,
                    a.inconsistent_edges,
                    a.inverted,
                    a.voids,
                    a.stones,
                    a.metal_volume_mm3,
                    a.stone_volume_mm3,
                    a.bbox_min,
                    a.bbox_max,
                    a.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>()
                );
                if std::env::var_os("SHELLS").is_some() {
                    for s in &a.shell_details {
                        println!(
                            "    {:?} tris={} V={:.4} A={:.4} open={} genus={:?}",
                            s.kind, s.triangles, s.volume_mm3, s.area_mm2, s.open_edges, s.genus
                        );
                    }
                }
            }
            Err(e) => println!("{path}: {ms:.1} ms\n  ERROR {e}"),
        }
    }
}
