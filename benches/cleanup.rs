//! Cleanup benchmark (`cargo bench --bench cleanup`, as root): 50 live VMM processes (real
//! QEMU stand-ins attached to real TAP devices, each with SmolVM's SSH-forward nftables
//! elements and a state row), torn down by `smolvm cleanup --force` serially
//! (`SMOLVM_CLEANUP_PARALLEL=1`) and in parallel (the default, 8), each in a fresh network
//! namespace. Two VMM behaviours: QEMU `quit` (exits at once), and a guest that takes
//! 500 ms to power off after `SendCtrlAltDel` (a FAKE Firecracker, as Firecracker cannot
//! run here), closer to a real guest's shutdown.
//!
//! Under `cargo test` (no `--bench` argument) it only runs a 3-VM smoke round.

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::cleanup::{fake_firecracker, insert_rows, row_ids, NetNs, QemuStandIn, Row};
use support::Home;

#[derive(Clone, Copy)]
enum Vmm {
    QemuQuit,
    SlowGuest,
}

fn round(n: usize, parallel: usize, vmm: Vmm) -> Duration {
    let (h, ns) = (Home::new(), NetNs::new());
    let sockets = h.sockets();
    ns.smolvm_nft("");
    let mut qemus = Vec::new();
    let mut fakes = Vec::new();
    let mut owned = Vec::new();
    for i in 0..n {
        let (tap, ip, port) = (
            format!("tap{}", 100 + i),
            format!("172.16.0.{}", 100 + i),
            (2300 + i) as u16,
        );
        ns.nat_tap(&tap);
        ns.ssh_forward(&tap, &ip, port);
        let id = format!("vm-bench-{i}");
        let pid = match vmm {
            Vmm::QemuQuit => {
                let q = QemuStandIn::start(&ns, &sockets, &id, Some(&tap));
                let p = q.pid();
                qemus.push(q);
                p
            }
            Vmm::SlowGuest => {
                let c = slow_guest(&sockets, &id);
                let p = c.id() as i32;
                fakes.push(c);
                p
            }
        };
        owned.push((id, tap, ip, port, pid));
    }
    let rows: Vec<Row> = owned
        .iter()
        .map(|(id, tap, ip, port, pid)| Row {
            status: "running",
            pid: Some(*pid),
            tap: Some((tap, ip, *port)),
            backend: match vmm {
                Vmm::QemuQuit => "qemu",
                Vmm::SlowGuest => "firecracker",
            },
            ..Row::stopped(id)
        })
        .collect();
    insert_rows(&h.data, &sockets, &rows);
    let start = Instant::now();
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(env!("CARGO_BIN_EXE_smolvm"))
        .args(["cleanup", "--force", "--json"])
        .env_clear()
        .envs(h.env_vars())
        .env("SMOLVM_CLEANUP_PARALLEL", parallel.to_string())
        .stdout(Stdio::piped())
        .output()
        .expect("smolvm");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(row_ids(&h.data).is_empty());
    assert!(!ns.links().contains("tap1"), "TAPs left");
    for mut f in fakes {
        let _ = f.wait();
    }
    drop(qemus);
    took
}

/// FAKE Firecracker whose "guest" takes 500 ms to power off after SendCtrlAltDel.
fn slow_guest(dir: &std::path::Path, id: &str) -> std::process::Child {
    let _ = fake_firecracker; // same protocol as the test fake, plus a shutdown delay
    let socket = dir.join(format!("fc-{id}.sock"));
    let script = r#"
import os, socket, sys, time
path = sys.argv[sys.argv.index("--api-sock") + 1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind(path); s.listen(4)
while True:
    c, _ = s.accept(); req = c.recv(65536).decode(errors="replace")
    c.sendall(b"HTTP/1.1 204 No Content\r\n\r\n"); c.close()
    if "SendCtrlAltDel" in req:
        time.sleep(0.5); os.unlink(path); sys.exit(0)
"#;
    let c = Command::new("python3")
        .args(["-c", script, "--api-sock"])
        .arg(&socket)
        .spawn()
        .expect("python3");
    support::cleanup::wait_for(|| socket.exists(), "fake API socket");
    c
}

fn main() {
    if !support::is_root() {
        println!("cleanup bench skipped: needs root (network namespaces, TAPs, nftables)");
        return;
    }
    let full = std::env::args().any(|a| a == "--bench");
    let n = if full { 50 } else { 3 };
    for (label, vmm) in [
        ("QEMU stand-ins (quit)", Vmm::QemuQuit),
        ("guests taking 500 ms to power off", Vmm::SlowGuest),
    ] {
        let serial = round(n, 1, vmm);
        let parallel = round(n, 8, vmm);
        println!(
            "cleanup of {n} live VMMs with TAPs, {label}: serial {:.2} s, parallel(8) {:.2} s, ratio {:.1}x",
            serial.as_secs_f64(),
            parallel.as_secs_f64(),
            serial.as_secs_f64() / parallel.as_secs_f64()
        );
    }
}
