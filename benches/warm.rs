//! Warm start benchmark (`cargo bench --bench warm`, as root; TCG here): the wall time of
//! `smolvm <preset> start --warm --no-attach` (a clone of the preset's template, returning
//! once its SSH answers and the preset's env var is forwarded) against the same start
//! without `--warm` (a cold boot), for a test preset on the Debian test image (512 MiB),
//! runs alternated, medians reported. The first warm start, which makes the template, is
//! timed on its own and left out of the median; each warm run's own split (image, the
//! clone up to its SSH answering, all of it inside smolvm, and whether the env var went
//! over the clone's agent port or SSH, with smolvm's debug line saying why) is printed.
//! `SMOLVM_BENCH_RUNS` sets the count of each timing (default 3). The figures are TCG's
//! here (the accelerator is printed).
//!
//! Under `cargo test` (no `--bench` argument) it skips at once: a real boot is seconds.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::bench::{median, VmBench};

const PRESET: &str = "[warmy]\nmemory_mib = 512\ndisk_mib = 1024\nlaunch = \"true\"\n\
env = [\"WARM_TOKEN\"]\n";

fn main() {
    if !support::bench::vm_bench_runs("warm") {
        return;
    }
    let n = support::bench::runs(3);
    let b = VmBench::new("warmy")
        .env("WARM_TOKEN", "bench-token")
        .env("SMOLVM_LOG", "smolvm=debug")
        .timeout(Duration::from_secs(900));
    b.h.user_presets(PRESET);
    let smolvm = |args: &[&str]| {
        let out = b.run(args);
        // How a warm start's forwarding went (its `-vv` debug line: over the agent with
        // its time, or why not).
        for l in support::stderr(&out).lines() {
            if l.contains("warm start: forward") {
                println!("  {}", l.trim());
            }
        }
        support::json(&out)
    };
    let start = |name: &str, warm: bool| {
        let mut args = vec!["warmy", "start", "-n", name, "--no-attach", "--json"];
        if warm {
            args.splice(0..0, ["-vv"]);
            args.push("--warm");
        }
        let t = Instant::now();
        let v = smolvm(&args);
        let s = t.elapsed().as_secs_f64();
        smolvm(&["sandbox", "delete", name, "--timeout", "3", "--json"]);
        (s, v)
    };
    let (first, v) = start("vm-first", true);
    assert_eq!(v["data"]["warm"]["built"], true, "{v}");
    let accel = v["data"]["accelerator"].as_str().unwrap_or("?").to_string();
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for i in 0..n {
        cold.push(start(&format!("vm-cold-{i}"), false).0);
        let (t, v) = start(&format!("vm-warm-{i}"), true);
        assert_eq!(v["data"]["warm"]["built"], false, "{v}");
        let ms = |k: &str| v["data"]["timings"][k].as_f64().unwrap_or(0.0) / 1000.0;
        println!(
            "warm run {i}: image {:.2} s, clone to SSH {:.2} s, total in smolvm {:.2} s, forwarded over {}",
            ms("image_ms"),
            ms("boot_ms"),
            ms("total_ms"),
            v["data"]["warm"]["forwarded_over"]
        );
        warm.push(t);
    }
    let (c, w) = (median(&mut cold), median(&mut warm));
    println!("accelerator: {accel}, runs: {n} (times in s)");
    println!("cold `warmy start` to SSH + env:         median {c:.2}  ({cold:.2?})");
    println!("warm `warmy start --warm` to SSH + env:  median {w:.2}  ({warm:.2?})");
    println!("first warm start (makes the template):   {first:.2}");
    println!("a warm start is {:.1}x faster than a cold one", c / w);
    let _ =
        b.ns.cmd(&b.h, "smolvm")
            .args(["cleanup", "--all", "--force", "--json"])
            .output();
}
