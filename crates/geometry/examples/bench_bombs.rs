//! Peak memory of refusing each kind of bomb (`scripts/bench-bombs`).
//!
//!   bench_bombs [--over N] [--max-triangles N] [--max-bytes N] [KIND...]
//!
//! Builds each bomb (tests/it/bomb_kit.rs) against the limits (default:
//! geometry's defaults, as the pricing workers use), writes it to a temporary
//! file and runs `geometry::analyze` on it in a child process of its own, which
//! reports its peak resident memory (VmHWM) before and after the parse: the
//! difference is what the bomb cost. Not a test: numbers to read.

#[path = "../tests/it/bomb_kit.rs"]
mod bomb_kit;

use bomb_kit::Bomb;
use std::time::Instant;

fn hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn limits(args: &[String]) -> geometry::Limits {
    let mut l = geometry::Limits::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--max-triangles" => l.max_triangles = it.next().unwrap().parse().unwrap(),
            "--max-bytes" => l.max_bytes = it.next().unwrap().parse().unwrap(),
            _ => {}
        }
    }
    l
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let limits = limits(&args);
    if args.first().map(String::as_str) == Some("--one") {
        // Child: one file, one parse.
        let path = &args[1];
        let bytes = std::fs::read(path).unwrap();
        let before = hwm_kib();
        let t = Instant::now();
        let result = geometry::analyze(&bytes, &limits);
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let after = hwm_kib();
        let what = match result {
            Ok(a) => format!("ANALYSED {} triangles", a.triangles),
            Err(e) => format!("refused: {e}"),
        };
        println!("{ms:.0}\t{before}\t{after}\t{what}");
        return;
    }
    let mut over = 2u64;
    let mut kinds: Vec<Bomb> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--over" => over = it.next().unwrap().parse().unwrap(),
            "--max-triangles" | "--max-bytes" => {
                it.next();
            }
            k => kinds.push(Bomb::by_name(k).unwrap_or_else(|| panic!("no bomb {k}"))),
        }
    }
    if kinds.is_empty() {
        kinds = Bomb::ALL.to_vec();
    }
    let dir = std::env::temp_dir().join(format!("bench-bombs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    println!(
        "limits: max_bytes={} max_triangles={} (vertex budget {}, 3MF inflation budget {} MB); bombs {over}x over",
        limits.max_bytes,
        limits.max_triangles,
        bomb_kit::vertex_budget(&limits),
        bomb_kit::inflated_budget(&limits) / 1_000_000
    );
    println!(
        "| bomb | file MB | parse ms | VmHWM before MiB | VmHWM after MiB | cost MiB | result |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|");
    let me = std::env::current_exe().unwrap();
    for kind in kinds {
        let bytes = kind.build(&limits, over);
        let path = dir.join(kind.name());
        std::fs::write(&path, &bytes).unwrap();
        let size = bytes.len();
        drop(bytes);
        let out = std::process::Command::new(&me)
            .arg("--one")
            .arg(&path)
            .arg("--max-triangles")
            .arg(limits.max_triangles.to_string())
            .arg("--max-bytes")
            .arg(limits.max_bytes.to_string())
            .output()
            .unwrap();
        std::fs::remove_file(&path).ok();
        let line = String::from_utf8_lossy(&out.stdout);
        let f: Vec<&str> = line.trim().splitn(4, '\t').collect();
        if f.len() < 4 {
            println!(
                "| {} | {:.1} | - | - | - | - | child failed: {} {} |",
                kind.name(),
                size as f64 / 1e6,
                out.status,
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            continue;
        }
        let (before, after): (f64, f64) = (f[1].parse().unwrap(), f[2].parse().unwrap());
        println!(
            "| {} | {:.1} | {} | {:.1} | {:.1} | {:.1} | {} |",
            kind.name(),
            size as f64 / 1e6,
            f[0],
            before / 1024.0,
            after / 1024.0,
            (after - before) / 1024.0,
            f[3]
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
