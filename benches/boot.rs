//! Boot benchmark (`cargo bench --bench boot`, as root): start-to-ready of
//! `smolvm claude-code start --backend qemu` with the image already cached (wall clock of
//! the command, and its per-phase timings), against a bare `qemu-system-x86_64` run with
//! smolvm's own command line (read from a VM it started; only the TAP, the QMP socket and
//! the disk are the baseline's own), spawn until the guest's ready line. Both run in one network namespace; each smolvm boot is deleted
//! before the next. The accelerator is whatever `--accel auto` picks here (TCG without
//! hardware KVM). `SMOLVM_BENCH_BOOTS` sets the count (default 20); the two kinds of boot
//! alternate.
//!
//! Under `cargo test` (no `--bench` argument) it skips at once: a real boot is seconds.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::cleanup::NetNs;
use support::images::{self, Init, Row};
use support::Home;

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn main() {
    if !support::bench::vm_bench_runs("boot") {
        return;
    }
    let n: usize = std::env::var("SMOLVM_BENCH_BOOTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let rootfs = images::busybox_rootfs(Init::Ready);
    let h = Home::new();
    let manifest = images::manifest(
        h.tmp.path(),
        &[Row {
            preset: "claude-code",
            rootfs: &rootfs,
        }],
    );
    let ns = NetNs::new();
    ns.sh("ip link set lo up; ip link add up0 type veth peer name up1
         ip addr add 10.254.0.1/24 dev up0; ip link set up0 up; ip link set up1 up
         ip route add default via 10.254.0.2 dev up0");
    let smolvm = |args: &[&str]| {
        let mut c = ns.cmd(&h, "smolvm");
        c.env("SMOLVM_MANIFEST", &manifest).args(args);
        c.output().unwrap()
    };
    let start = |name: &str| {
        smolvm(&[
            "claude",
            "start",
            "--backend",
            "qemu",
            "--name",
            name,
            "--json",
        ])
    };
    // Warm the image cache (pull + unpack) and the page cache.
    let out = start("vm-warm");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let warm = support::json(&out);
    let accel = warm["data"]["accelerator"]
        .as_str()
        .unwrap_or("?")
        .to_string();
    // The baseline runs QEMU with smolvm's own command line, read from the running VM,
    // with only the TAP, the QMP socket and the disk swapped for its own.
    let pid = warm["data"]["pid"]
        .as_i64()
        .expect("pid in the start report");
    let argv: Vec<String> = std::fs::read(format!("/proc/{pid}/cmdline"))
        .expect("the warm VM's command line")
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let disk_of_vm = warm["data"]["disk_path"].as_str().unwrap_or("").to_string();
    let kernel_of_vm = warm["data"]["kernel_path"]
        .as_str()
        .unwrap_or("")
        .to_string();
    smolvm(&["sandbox", "delete", "vm-warm", "--timeout", "2"]);

    ns.sh("ip tuntap add tapb mode tap && ip link set tapb up");
    let disk = h.tmp.path().join("bare.ext4");
    std::fs::copy(&rootfs, &disk).unwrap();
    let qmp = h.tmp.path().join("bare.qmp");
    // smolvm hands its (unprivileged) QEMU the kernel, the disk and the TAP as descriptors;
    // the baseline, run as root, names them instead.
    let mut named: Vec<String> = Vec::new();
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        if a == "-add-fd" {
            it.next();
            continue;
        }
        let a = if a.starts_with("/proc/self/fd/") {
            kernel_of_vm.clone()
        } else if let Some(rest) = a.strip_prefix("file=/dev/fdset/1,auto-read-only=off,") {
            format!("file={disk_of_vm},{rest}")
        } else if a.starts_with("tap,") && a.contains(",fd=") {
            "tap,id=net0,ifname=tapb,script=no,downscript=no".to_string()
        } else {
            a.clone()
        };
        named.push(a);
    }
    let bare_argv: Vec<String> = named
        .iter()
        .map(|a| {
            let mut a = a.clone();
            if a.starts_with("tap,") {
                a = a
                    .split(',')
                    .map(|p| {
                        if p.starts_with("ifname=") {
                            "ifname=tapb"
                        } else {
                            p
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(",");
            }
            if !disk_of_vm.is_empty() {
                a = a.replace(&disk_of_vm, &disk.display().to_string());
            }
            if a.starts_with("unix:") && a.contains(",server=on") {
                a = format!("unix:{},server=on,wait=off", qmp.display());
            }
            a
        })
        .collect();
    assert!(
        bare_argv.iter().any(|a| a.contains("ifname=tapb,")),
        "the baseline must not reuse smolvm's TAP: {bare_argv:?}"
    );
    assert!(
        bare_argv
            .iter()
            .any(|a| a.contains(&disk.display().to_string())),
        "the baseline must boot its own disk: {bare_argv:?}"
    );
    let bare_boot = || {
        let _ = std::fs::remove_file(&qmp);
        let t = Instant::now();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .args(&bare_argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        for line in BufReader::new(out).lines() {
            if line.unwrap_or_default().contains("SmolVM init complete") {
                break;
            }
        }
        let took = t.elapsed().as_secs_f64() * 1000.0;
        let _ = child.kill();
        let _ = child.wait();
        took
    };

    // smolvm and bare boots alternate, so a busy moment on the shared machine hits both.
    let mut wall = Vec::new();
    let mut bare = Vec::new();
    // image, network, spawn, boot (smolvm's own timings), then the rest of the wall time
    // (process start, the row, the report).
    let mut phases: [Vec<f64>; 5] = Default::default();
    for i in 0..n {
        let id = format!("vm-b{i}");
        let t = Instant::now();
        let out = start(&id);
        wall.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let v = support::json(&out);
        for (k, name) in ["image_ms", "network_ms", "spawn_ms", "boot_ms"]
            .iter()
            .enumerate()
        {
            phases[k].push(v["data"]["timings"][name].as_f64().unwrap_or(0.0));
        }
        let total = v["data"]["timings"]["total_ms"].as_f64().unwrap_or(0.0);
        phases[4].push(wall[i] - total);
        smolvm(&["sandbox", "delete", &id, "--timeout", "2"]);
        std::thread::sleep(Duration::from_millis(100));
        bare.push(bare_boot());
        std::thread::sleep(Duration::from_millis(100));
    }

    let accel_name = accel.to_uppercase();
    println!(
        "boot bench: {n} boots each, accelerator {accel_name}, q35, busybox rootfs, image cached"
    );
    let (p50, p95) = (pct(&mut wall.clone(), 0.5), pct(&mut wall, 0.95));
    let (b50, b95) = (pct(&mut bare.clone(), 0.5), pct(&mut bare, 0.95));
    println!("  smolvm claude-code start (wall, to ready): p50 {p50:.0} ms, p95 {p95:.0} ms");
    for (k, name) in ["image", "network", "spawn", "boot", "other"]
        .iter()
        .enumerate()
    {
        let v = &mut phases[k];
        println!(
            "    {name:<8} p50 {:.1} ms, p95 {:.1} ms",
            pct(&mut v.clone(), 0.5),
            pct(v, 0.95)
        );
    }
    println!("  bare qemu-system-x86_64 (spawn to ready line): p50 {b50:.0} ms, p95 {b95:.0} ms");
    println!(
        "  smolvm overhead at p50: {:.0} ms ({:.1}% of the bare boot)",
        p50 - b50,
        (p50 - b50) / b50 * 100.0
    );
}
