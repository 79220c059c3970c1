//! Prune benchmarks (`cargo bench --bench prune`):
//!
//! 1. scan: sizing a generated cache of 100,000 files (the same walk prune does) against
//!    `du -s` on the same tree, warm cache, median of several runs each;
//! 2. process: wall time of a fresh `smolvm prune --dry-run --json` on a small cache,
//!    median of many runs (SmolVM's Python CLI takes ~0.9 s for the same).
//!
//! Under `cargo test` (no `--bench` argument) it only checks that it runs, on a small tree.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use smolvm::sys::fs::{disk_usage, HardLinks};

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (dirs, files_per_dir, runs) = if full { (200, 500, 7) } else { (4, 10, 1) };
    let tmp = tempfile::tempdir().expect("tempdir");
    let stale = tmp.path().join("images/0.0.1");
    let t = Instant::now();
    generate(&stale, dirs, files_per_dir);
    let files = dirs * files_per_dir;
    println!(
        "generated {files} files in {dirs} directories in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let ours = median(runs, || {
        let t = Instant::now();
        let bytes = disk_usage(&stale, &HardLinks::default());
        (t.elapsed(), bytes)
    });
    let du = median(runs, || {
        let t = Instant::now();
        let out = Command::new("du")
            .args(["-s", "-B1"])
            .arg(&stale)
            .output()
            .expect("du");
        let bytes: u64 = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .and_then(|s| s.parse().ok())
            .expect("du output");
        (t.elapsed(), bytes)
    });
    assert_eq!(ours.1, du.1, "smolvm and du disagree on the size");
    println!(
        "scan of {files} files: smolvm {:.1} ms, du -s {:.1} ms (ratio du/smolvm {:.2}x), {} bytes",
        ms(ours.0),
        ms(du.0),
        du.0.as_secs_f64() / ours.0.as_secs_f64(),
        ours.1
    );

    let small = tmp.path().join("small");
    for v in ["0.0.1", "0.0.2", "0.0.3"] {
        generate(&small.join(v), 2, 5);
    }
    let bin = env!("CARGO_BIN_EXE_smolvm");
    let proc_runs = if full { 51 } else { 1 };
    let wall = median(proc_runs, || {
        let t = Instant::now();
        let out = Command::new(bin)
            .args(["prune", "--dry-run", "--json", "--image-dir"])
            .arg(&small)
            .env("SMOLVM_DATA_DIR", tmp.path().join("state"))
            .output()
            .expect("smolvm");
        assert!(out.status.success());
        (t.elapsed(), 0)
    });
    println!(
        "process: smolvm prune --dry-run --json on a small cache: {:.1} ms median of {proc_runs}",
        ms(wall.0)
    );
}

fn generate(dir: &Path, dirs: usize, files_per_dir: usize) {
    for d in 0..dirs {
        let sub = dir.join(format!("layer-{d:04}/sub"));
        std::fs::create_dir_all(&sub).unwrap();
        for f in 0..files_per_dir {
            // Sizes from 0 to ~12 KB so block rounding matters.
            let len = (d * 7919 + f * 104_729) % 12_288;
            std::fs::write(sub.join(format!("f{f:05}")), vec![0xa5u8; len]).unwrap();
        }
    }
}

fn median(runs: usize, mut f: impl FnMut() -> (Duration, u64)) -> (Duration, u64) {
    f(); // warm up
    let mut v: Vec<(Duration, u64)> = (0..runs).map(|_| f()).collect();
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
