//! Benchmark of `geometry::analyze`, used by `scripts/bench-geometry`.
//!
//! `cargo run --release -p geometry --example bench -- [--reps N] FILE...`
//!
//! Each file is measured in its own child process (this program run with
//! `--one`), so that the peak resident memory it reports (VmHWM from
//! /proc/self/status, which counts the input bytes held in memory, the code and
//! everything `analyze` allocates) belongs to that file alone. The child reads
//! the file once, runs `analyze` N times and prints one `key=value` line.

use std::process::Command;
use std::time::Instant;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn one(path: &str, reps: usize) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let limits = geometry::Limits {
        max_bytes: u64::MAX,
        max_triangles: u64::MAX,
    };
    // Peak memory of one analysis in a fresh process (later runs would add the
    // allocator's retained free memory, which is not the analysis' own need).
    let t = Instant::now();
    let first = geometry::analyze(&bytes, &limits).map_err(|e| format!("{path}: {e}"))?;
    let mut times = vec![t.elapsed().as_secs_f64() * 1e3];
    let peak = peak_rss_kib();
    let mut last = Some(first);
    for _ in 1..reps.max(1) {
        let t = Instant::now();
        let a = geometry::analyze(&bytes, &limits).map_err(|e| format!("{path}: {e}"))?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        last = Some(a);
    }
    let a = last.expect("at least one run");
    // The parse alone (welding included), for the breakdown.
    let mut parse_times = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        let m = geometry::parse(&bytes, &limits).map_err(|e| format!("{path}: {e}"))?;
        parse_times.push(t.elapsed().as_secs_f64() * 1e3);
        drop(m);
    }
    parse_times.sort_by(f64::total_cmp);
    times.sort_by(f64::total_cmp);
    let best = times[0];
    let median = times[times.len() / 2];
    println!(
        "file={path} format={:?} bytes={} triangles={} vertices={} volume={:.9} area={:.9} watertight={} shells={} best_ms={best:.2} median_ms={median:.2} parse_ms={:.2} mb_per_s={:.1} peak_kib={}",
        a.format,
        bytes.len(),
        a.triangles,
        a.vertices,
        a.volume_mm3,
        a.area_mm2,
        a.watertight(),
        a.shells,
        parse_times[0],
        bytes.len() as f64 / 1e6 / (best / 1e3),
        peak
    );
    Ok(())
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut reps = 5usize;
    if let Some(i) = args.iter().position(|a| a == "--reps") {
        reps = args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .expect("--reps N");
        args.drain(i..i + 2);
    }
    if args.first().map(String::as_str) == Some("--one") {
        let path = args.get(1).expect("--one FILE");
        if let Err(e) = one(path, reps) {
            eprintln!("{e}");
            std::process::exit(1);
        }
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    let mut failed = false;
    for path in &args {
        let status = Command::new(&exe)
            .args(["--reps", &reps.to_string(), "--one", path])
            .status()
            .expect("run child");
        failed |= !status.success();
    }
    if failed {
        std::process::exit(1);
    }
}
