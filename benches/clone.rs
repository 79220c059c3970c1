//! Clone benchmark (`cargo bench --bench clone`, as root; TCG here): the wall time of
//! `smolvm sandbox clone S --count 1` and `--count 4` (each returning when every clone's
//! SSH answers) against a cold `smolvm sandbox create --preset codex --start` of the same
//! image (the Debian test image, 512 MiB), runs alternated, medians reported; then, with a
//! template that dirtied 240 MiB of its RAM before the snapshot, the private memory
//! (`Private_Clean + Private_Dirty` of `/proc/<pid>/smaps_rollup`) and Pss of 4 clones'
//! QEMUs mapping the run's sealed copy of the snapshot's RAM file against 4 clones with `--copy-memory` (the RAM
//! loaded into each one's own memory, as a plain restore does). `SMOLVM_BENCH_RUNS` sets
//! the count of each timing (default 3).
//!
//! Under `cargo test` (no `--bench` argument) it skips at once: a real boot is seconds.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::bench::{median, VmBench};

/// `(Private_Clean + Private_Dirty, Pss)` of a process, in KiB.
fn private_and_pss(pid: u64) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap();
    let field = |name: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (
        field("Private_Clean:") + field("Private_Dirty:"),
        field("Pss:"),
    )
}

fn main() {
    if !support::bench::vm_bench_runs("clone") {
        return;
    }
    let n = support::bench::runs(3);
    let b = VmBench::new("codex").env("SMOLVM_LOG", "smolvm=debug");
    let run = |args: &[&str]| b.run(args);
    let smolvm = |args: &[&str]| support::json(&run(args));
    let create = |name: &str| {
        let (t, out) = b.create("codex", name);
        (t, support::json(&out))
    };
    let clone = |count: &str, extra: &[&str]| {
        let t = Instant::now();
        let mut args = vec![
            "sandbox",
            "clone",
            "snap-bench",
            "--count",
            count,
            "--prefix",
            "b",
            "--json",
        ];
        args.extend_from_slice(extra);
        let v = smolvm(&args);
        (t.elapsed().as_secs_f64(), v)
    };
    // Where each clone's time went: the debug lines `clone: …` and `agent: …` smolvm's log
    // got since the last call.
    let log = b.h.data.join("logs/smolvm.log");
    let seen = std::cell::Cell::new(0usize);
    let split = |what: &str| {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let from = if seen.get() <= text.len() {
            seen.get()
        } else {
            0
        };
        seen.set(text.len());
        println!("  split of {what}:");
        for l in text[from..].lines().filter(|l| {
            l.contains("clone: ") || l.contains("agent: ") || l.contains("cloning at once")
        }) {
            println!("    {}", l.trim());
        }
    };
    let delete_clones = |v: &serde_json::Value| {
        for c in v["data"]["clones"].as_array().unwrap() {
            smolvm(&[
                "sandbox",
                "delete",
                c["name"].as_str().unwrap(),
                "--timeout",
                "3",
                "--json",
            ]);
        }
    };
    // The template: warm caches, dirty 240 MiB of its RAM (a process holding it), then the
    // snapshot for cloning (the template runs on).
    let (_, v) = create("vm-tpl");
    let accel = v["data"]["accelerator"].as_str().unwrap_or("?").to_string();
    run(&[
        "sandbox",
        "exec",
        "vm-tpl",
        "--",
        "sh",
        "-c",
        "nohup perl -e '$x = \"a\" x (240 << 20); sleep 100000' >/dev/null 2>&1 & sleep 5",
    ]);
    smolvm(&[
        "sandbox",
        "snapshot",
        "create",
        "vm-tpl",
        "--snapshot-id",
        "snap-bench",
        "--for-clone",
        "--resume-source",
        "--json",
    ]);
    let (mut cold, mut one, mut four) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let name = format!("vm-cold-{i}");
        cold.push(create(&name).0);
        smolvm(&["sandbox", "delete", &name, "--timeout", "3", "--json"]);
        split("the runs before");
        let (t, v) = clone("1", &[]);
        one.push(t);
        split(&format!("1 clone, run {i} ({t:.2} s)"));
        delete_clones(&v);
        split("the deletes");
        let (t, v) = clone("4", &[]);
        four.push(t);
        split(&format!("4 clones, run {i} ({t:.2} s)"));
        delete_clones(&v);
    }
    let (c, o, f) = (median(&mut cold), median(&mut one), median(&mut four));
    println!("accelerator: {accel}, runs: {n} (times in s)");
    println!("cold `sandbox create --start` to SSH:   median {c:.2}  ({cold:.2?})");
    println!("`sandbox clone --count 1` to SSH:       median {o:.2}  ({one:.2?})");
    println!("`sandbox clone --count 4`, all SSH:     median {f:.2}  ({four:.2?})");
    println!(
        "one clone is {:.1}x faster than a cold start; 4 clones take {:.2} of one cold start",
        c / o,
        f / c
    );
    for (what, extra) in [
        ("one sealed RAM copy", &[][..]),
        ("--copy-memory", &["--copy-memory"][..]),
    ] {
        let (_, v) = clone("4", extra);
        std::thread::sleep(Duration::from_secs(2));
        let (mut private, mut pss) = (0, 0);
        for c in v["data"]["clones"].as_array().unwrap() {
            let (p, s) = private_and_pss(c["pid"].as_u64().unwrap());
            private += p;
            pss += s;
        }
        println!(
            "4 clones, {what}: private {} MiB, Pss {} MiB (template guest dirtied 240 MiB of 512)",
            private / 1024,
            pss / 1024
        );
        delete_clones(&v);
    }
    let _ =
        b.ns.cmd(&b.h, "smolvm")
            .args(["cleanup", "--all", "--force", "--json"])
            .output();
}
