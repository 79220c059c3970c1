//! Cleanup benchmark (`cargo bench --bench cleanup`, as root): 50 live VMM processes (real
//! QEMU stand-ins attached to real TAP devices, each with SmolVM's SSH-forward nftables
//! elements and a state row), torn down by `smolvm cleanup --force` serially
//! (`SMOLVM_CLEANUP_PARALLEL=1`) and with the default concurrency (every teardown in
//! flight, their CPU-bound steps one per core), each in a fresh network namespace. Two VMM
//! behaviours: QEMU `quit` (exits at once), and a guest that takes 500 ms to power off
//! after `SendCtrlAltDel` (a FAKE Firecracker, as Firecracker cannot run guests here, exec'd
//! as the unprivileged `smolvm` user the way smolvm execs a VMM), closer to a real guest's
//! shutdown.
//!
//! Under `cargo test` (no `--bench` argument) it only runs a 3-VM smoke round.

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use smolvm::sys::vmm::{launch, prepare, Launch, VmmIdentity};
use support::cleanup::{fake_firecracker_binary, insert_rows, row_ids, NetNs, QemuStandIn, Row};
use support::Home;

#[derive(Clone, Copy)]
enum Vmm {
    QemuQuit,
    SlowGuest,
}

/// One round; `parallel` sets `SMOLVM_CLEANUP_PARALLEL` (`None`: smolvm's default).
fn round(n: usize, parallel: Option<usize>, vmm: Vmm) -> Duration {
    let (h, ns) = (Home::new(), NetNs::new());
    let sockets = h.sockets();
    ns.smolvm_nft("");
    let mut qemus = Vec::new();
    let mut fakes = Vec::new();
    let mut owned = Vec::new();
    let mut user: Option<VmmIdentity> = None;
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
                let c = slow_guest(
                    &sockets,
                    &id,
                    user.get_or_insert_with(|| vmm_user(&sockets)),
                );
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
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &ns.name])
        .arg(env!("CARGO_BIN_EXE_smolvm"))
        .args(["cleanup", "--force", "--json"])
        .env_clear()
        .envs(h.env_vars())
        .stdout(Stdio::piped());
    if let Some(p) = parallel {
        c.env("SMOLVM_CLEANUP_PARALLEL", p.to_string());
    }
    let out = c.output().expect("smolvm");
    let took = start.elapsed();
    if parallel.is_none() {
        std::fs::write(
            format!("/tmp/wtc-timing-{}.txt", matches!(vmm, Vmm::SlowGuest)),
            &out.stderr,
        )
        .unwrap();
    }
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

/// FAKE Firecracker whose "guest" takes 500 ms to power off after SendCtrlAltDel: the
/// tests' fake (a copy of the Python interpreter named `firecracker`, carrying
/// `--api-sock <socket dir>/fc-<id>.sock`, its row recording its PID — provably a VMM of
/// ours, as a real one is), exec'd the way smolvm execs a VMM: as the system user
/// `smolvm` through smolvm's own launcher, its API socket taken over by root once bound.
fn slow_guest(dir: &std::path::Path, id: &str, user: &VmmIdentity) -> smolvm::sys::child::Child {
    let socket = dir.join(format!("fc-{id}.sock"));
    let script = r#"
import os, socket, sys, time
path = sys.argv[sys.argv.index("--api-sock") + 1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind(path); s.listen(4)
while True:
    c, _ = s.accept(); req = c.recv(65536).decode(errors="replace")
    c.sendall(b"HTTP/1.1 204 No Content\r\n\r\n"); c.close()
    if "SendCtrlAltDel" in req:
        time.sleep(0.5)
        try: os.unlink(path)
        except OSError: pass
        sys.exit(0)
"#;
    let (bin, home) = fake_firecracker_binary();
    let mut l = Launch::new(&bin, Some(user.clone())).expect("the fake Firecracker binary");
    l.env("PYTHONHOME", &home).unwrap();
    l.args(["-c", script, "--api-sock"]).unwrap();
    l.arg(&socket).unwrap();
    let c = l.spawn(None).expect("spawn the fake Firecracker");
    support::cleanup::wait_for(
        || launch::claim_socket(&socket, user.id.uid).unwrap_or(false),
        "the fake's API socket",
    );
    c
}

/// The unprivileged user slow guests run as, with the sockets' folder made reachable for
/// it (what smolvm prepares before it execs a VMM).
fn vmm_user(socket_dir: &std::path::Path) -> VmmIdentity {
    let id = smolvm::sys::users::ensure_service_user().expect("the smolvm system user");
    let mut u = VmmIdentity {
        id,
        groups: Vec::new(),
    };
    let g = prepare::socket_dir(socket_dir, &u, || Ok(id.gid)).expect("the sockets' folder");
    u.groups.extend(g);
    u
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
        let serial = round(n, Some(1), vmm);
        let parallel = round(n, None, vmm);
        println!(
            "cleanup of {n} live VMMs with TAPs, {label}: serial {:.2} s, default (all in flight, CPU steps one per core) {:.2} s, ratio {:.1}x",
            serial.as_secs_f64(),
            parallel.as_secs_f64(),
            serial.as_secs_f64() / parallel.as_secs_f64()
        );
    }
}
