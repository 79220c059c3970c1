//! Snapshot benchmark (`cargo bench --bench snapshot`, as root): the wall time of
//! `smolvm sandbox snapshot restore S --resume` of a full snapshot against a cold
//! `smolvm sandbox create --preset codex --start` of the same image (the Debian test
//! image), each command returning only when the guest's SSH answers, same machine, same
//! run, one network namespace. The accelerator is whatever `--accel auto` picks here (TCG
//! without hardware KVM). `SMOLVM_BENCH_RUNS` sets the count of each (default 5). The
//! restored sandbox is deleted before each restore, so both paths create it from nothing.
//!
//! Under `cargo test` (no `--bench` argument) it skips at once: a real boot is seconds.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use support::bench::{median, VmBench};

fn main() {
    if !support::bench::vm_bench_runs("snapshot") {
        return;
    }
    let n = support::bench::runs(5);
    let b = VmBench::new("codex");
    let smolvm = |args: &[&str]| b.run(args);
    let create = |name: &str| b.create("codex", name);
    // Warm the image cache and the page cache, and take the snapshot.
    let (_, out) = create("vm-bench");
    let accel = support::json(&out)["data"]["accelerator"]
        .as_str()
        .unwrap_or("?")
        .to_string();
    smolvm(&[
        "sandbox",
        "snapshot",
        "create",
        "vm-bench",
        "--snapshot-id",
        "snap-bench",
        "--json",
    ]);
    let (mut cold, mut restore) = (Vec::new(), Vec::new());
    for i in 0..n {
        let name = format!("vm-cold-{i}");
        cold.push(create(&name).0);
        smolvm(&["sandbox", "delete", &name, "--timeout", "3", "--json"]);
        smolvm(&["sandbox", "delete", "vm-bench", "--timeout", "3", "--json"]);
        let t = Instant::now();
        smolvm(&[
            "sandbox",
            "snapshot",
            "restore",
            "snap-bench",
            "--resume",
            "--json",
        ]);
        restore.push(t.elapsed().as_secs_f64());
    }
    let (c, r) = (median(&mut cold), median(&mut restore));
    println!("accelerator: {accel}, runs: {n}");
    println!("cold `sandbox create --start` to SSH:      median {c:.2} s  ({cold:.2?})");
    println!("`snapshot restore --resume` to SSH:        median {r:.2} s  ({restore:.2?})");
    println!("restore is {:.1}x faster", c / r);
    let _ =
        b.ns.cmd(&b.h, "smolvm")
            .args(["cleanup", "--all", "--force", "--json"])
            .output();
}
