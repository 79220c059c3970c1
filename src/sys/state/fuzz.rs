//! Property test of the reader: random values of every SQLite type (and random JSON in
//! `network`/`config`) inserted raw into a real database file in SmolVM's schema, then
//! read through [`StateStore`]. It never panics or fails, every row is either a record or
//! a skipped row, and whatever it yields names only a valid VM id (every per-VM path is
//! a direct child of its directory) and only devices smolvm creates.
//!
//! Deterministic: `SMOLVM_FUZZ_SEED=<n>` replays one failing case, `SMOLVM_FUZZ_CASES`
//! changes how many are run.

use std::net::Ipv4Addr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use rusqlite::types::Value;
use rusqlite::Connection;

use super::{OpenMode, StateError, StateStore, SCHEMA};
use crate::sys::process::is_vm_id;

/// SplitMix64: small, fast, good enough to pick test values.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// Pieces texts are made of: real values, near misses, and hostile ones.
const PIECES: &[&str] = &[
    "vm-1",
    "vm-abc",
    "a",
    "vm-",
    "-vm",
    "VM-1",
    "vm_1",
    "vm.1",
    "..",
    ".",
    "/",
    "../",
    "./",
    "/etc/passwd",
    "../victim/precious",
    "victim",
    "\0",
    "\n",
    " ",
    "\t",
    ":",
    "é",
    "日本",
    "🦀",
    "\u{202e}",
    "tap",
    "tap2",
    "tap02",
    "tap65534",
    "tap65536",
    "svmb",
    "svmb0a1b2c3d",
    "svmb0A1B2C3D",
    "usernet",
    "pending",
    "eth0",
    "docker0",
    "wg0",
    "lo",
    "br0",
    "172.16.0.2",
    "172.16.0.300",
    "10.0.2.15",
    "::1",
    "255.255.255.0",
    "AA:FC:00:00:00:02",
    "running",
    "paused",
    "stopped",
    "created",
    "error",
    "bogus",
    "nat",
    "bridge",
    "2200",
    "0",
    "-1",
    "4242",
    "abc",
    "/tmp/fc-vm-1.sock",
    "/tmp/qmp-vm-1.sock",
    "fc-",
    "qmp-",
    ".sock",
    "null",
    "{",
    "}",
    "\"",
    "'",
    "\\",
    "%",
    "*",
    "x",
];

fn text(r: &mut Rng) -> String {
    let n = r.below(4);
    let mut s: String = (0..n).map(|_| *r.pick(PIECES)).collect();
    if r.chance(3) {
        s = "v".repeat(r.below(80));
    }
    s
}

fn value(r: &mut Rng) -> Value {
    match r.below(10) {
        0 => Value::Null,
        1 | 2 => {
            let random = r.next() as i64;
            Value::Integer(*r.pick(&[
                0,
                -1,
                1,
                22,
                2200,
                65535,
                65536,
                70000,
                4242,
                i64::from(i32::MAX),
                i64::from(i32::MAX) + 1,
                i64::MIN,
                i64::MAX,
                random,
            ]))
        }
        3 => Value::Real(*r.pick(&[0.0, 1.5, -3.0, 4242.0, f64::MAX, 1e-300])),
        4 => Value::Blob((0..r.below(12)).map(|_| r.next() as u8).collect()),
        _ => Value::Text(text(r)),
    }
}

fn json(r: &mut Rng, depth: usize) -> serde_json::Value {
    use serde_json::Value as J;
    match r.below(if depth > 2 { 5 } else { 8 }) {
        0 => J::Null,
        1 => J::Bool(r.chance(50)),
        2 => J::from(*r.pick(&[0i64, -1, 22, 2200, 65535, 65536, 70000, i64::MAX])),
        3 => J::from(*r.pick(&[1.5f64, -0.0, 1e300])),
        4 => J::String(text(r)),
        5 => J::Array((0..r.below(3)).map(|_| json(r, depth + 1)).collect()),
        _ => J::Object(
            (0..r.below(4))
                .map(|_| (text(r), json(r, depth + 1)))
                .collect(),
        ),
    }
}

/// Mostly `good`, sometimes anything: valid rows must be common enough for the checks on
/// records to run, invalid values common enough that every rule is hit.
fn mostly(r: &mut Rng, percent: usize, good: impl FnOnce(&mut Rng) -> Value) -> Value {
    if r.chance(percent) {
        good(r)
    } else {
        value(r)
    }
}

fn good_text(items: &'static [&'static str]) -> impl FnOnce(&mut Rng) -> Value {
    move |r| Value::Text((*r.pick(items)).to_string())
}

/// A `network` column: a NetworkConfig whose real keys hold mostly plausible, sometimes
/// random values; other JSON; or text that is not JSON.
fn network(r: &mut Rng) -> Value {
    use serde_json::Value as J;
    let plausible: &[(&str, &[&str])] = &[
        (
            "guest_ip",
            &["172.16.0.2", "10.0.2.15", "172.16.0.300", "eth0"],
        ),
        ("gateway_ip", &["172.16.0.1", "10.0.2.2", "::1"]),
        ("netmask", &["255.255.255.0", "255.255.255.255"]),
        (
            "tap_device",
            &[
                "tap2",
                "tap261",
                "svmb0a1b2c3d",
                "usernet",
                "eth0",
                "docker0",
                "tap2/..",
                "pending",
                "",
            ],
        ),
        (
            "guest_mac",
            &["AA:FC:00:00:00:02", "AA:FC:00:00:00", "zz:zz:zz:zz:zz:zz"],
        ),
        ("mode", &["nat", "bridge", "x"]),
        ("bridge", &["br0", "br 0", "br0:1"]),
    ];
    match r.below(10) {
        0 | 1 => Value::Null,
        2 => Value::Text(json(r, 0).to_string()),
        3 => Value::Text(text(r)),
        4 => value(r),
        _ => {
            let mut m = serde_json::Map::new();
            for (k, good) in plausible {
                if r.chance(70) {
                    let v = match r.below(10) {
                        0 => json(r, 1),
                        1 => J::Null,
                        // Mostly the first, valid, value; any of them otherwise.
                        2..=6 => J::String(good[0].to_string()),
                        _ => J::String((*r.pick(good)).to_string()),
                    };
                    m.insert((*k).to_string(), v);
                }
            }
            if r.chance(70) {
                let port = match r.below(6) {
                    0 => json(r, 1),
                    1 | 2 => J::from(*r.pick(&[2200i64, 22, 65535, 0, 65536, -5])),
                    _ => J::from(2200),
                };
                m.insert("ssh_host_port".into(), port);
            }
            if r.chance(20) {
                m.insert(text(r), json(r, 1));
            }
            Value::Text(J::Object(m).to_string())
        }
    }
}

/// The test's own idea of a device smolvm could own (independent of the reader's).
fn oracle_device(name: &str, usernet_ok: bool) -> bool {
    let nat = name
        .strip_prefix("tap")
        .is_some_and(|n| (1..=5).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()));
    let bridge = name
        .strip_prefix("svmb")
        .is_some_and(|h| h.len() == 8 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    nat || bridge || (usernet_ok && name == "usernet")
}

/// `<dir>/<name>` is a direct child of `dir`: one normal component, nothing to climb.
fn direct_child(dir: &Path, name: &str) {
    let p = dir.join(name);
    assert_eq!(p.parent(), Some(dir), "{name:?} leaves {}", dir.display());
    assert_eq!(
        p.file_name().and_then(|n| n.to_str()),
        Some(name),
        "{name:?} is not one file name"
    );
    assert!(
        !name.contains('/') && name != ".." && name != ".",
        "{name:?}"
    );
}

fn fill(db: &Path, r: &mut Rng) -> usize {
    let c = Connection::open(db).unwrap();
    c.execute_batch("PRAGMA foreign_keys = OFF; PRAGMA synchronous = OFF; BEGIN;")
        .unwrap();
    c.execute_batch(SCHEMA).unwrap();
    let id = |r: &mut Rng| mostly(r, 70, |r| Value::Text(format!("vm-{}", r.below(6))));
    for _ in 0..r.below(12) {
        let row = [
            id(r),
            mostly(
                r,
                85,
                good_text(&["running", "paused", "stopped", "created", "error"]),
            ),
            mostly(r, 85, |r| Value::Text(json(r, 0).to_string())),
            network(r),
            mostly(r, 80, |r| {
                if r.chance(50) {
                    Value::Null
                } else {
                    Value::Integer(*r.pick(&[1, 4242, i64::from(i32::MAX)]))
                }
            }),
            mostly(r, 80, |r| {
                if r.chance(50) {
                    Value::Null
                } else {
                    Value::Text((*r.pick(&["/tmp/fc-vm-1.sock", "/run/x/qmp-vm-2.sock"])).into())
                }
            }),
            mostly(r, 80, |_| Value::Null),
            mostly(r, 90, good_text(&["2026-05-07T12:00:00.000001+00:00"])),
            mostly(r, 90, good_text(&["2026-05-07T12:00:00.000001+00:00"])),
        ];
        let _ = c.execute(
            "INSERT OR IGNORE INTO vms (id, status, config, network, pid, socket_path, display, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            rusqlite::params_from_iter(row),
        );
    }
    let tap = |r: &mut Rng| {
        mostly(
            r,
            70,
            good_text(&["tap2", "tap3", "svmb0a1b2c3d", "pending", "usernet", "eth0"]),
        )
    };
    for _ in 0..r.below(6) {
        let ip = mostly(r, 70, |r| Value::Text(format!("172.16.0.{}", r.below(300))));
        let lease = [ip, id(r), tap(r)];
        let _ = c.execute(
            "INSERT OR IGNORE INTO ip_leases VALUES (?1, ?2, ?3, 'x')",
            rusqlite::params_from_iter(lease),
        );
        let port = |r: &mut Rng| mostly(r, 70, |r| Value::Integer(*r.pick(&[22, 2200, 65535])));
        let forward = [id(r), port(r), port(r)];
        let _ = c.execute(
            "INSERT OR IGNORE INTO ssh_forwards VALUES (?1, ?2, ?3, 'x')",
            rusqlite::params_from_iter(forward),
        );
        let alloc = [
            id(r),
            tap(r),
            mostly(r, 70, good_text(&["nat", "bridge"])),
            mostly(r, 70, |r| {
                if r.chance(50) {
                    Value::Null
                } else {
                    Value::Text("br0".into())
                }
            }),
        ];
        let _ = c.execute(
            "INSERT OR IGNORE INTO tap_allocations VALUES (?1, ?2, ?3, ?4, 'x')",
            rusqlite::params_from_iter(alloc),
        );
    }
    c.execute_batch("COMMIT").unwrap();
    c.query_row("SELECT COUNT(*) FROM vms", [], |r| r.get::<_, i64>(0))
        .unwrap() as usize
}

fn run_case(seed: u64, dir: &Path) {
    let mut r = Rng(seed);
    let db = dir.join(format!("case-{seed}.db"));
    let rows = fill(&db, &mut r);
    let mode = if r.chance(50) {
        OpenMode::ReadWrite
    } else {
        OpenMode::DryRun
    };
    let (store, corrupt) = StateStore::open(&db, mode, std::time::Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("open: {e}"));
    assert_eq!(corrupt, None);
    let listed = store.list_vms().unwrap_or_else(|e| panic!("list_vms: {e}"));
    assert_eq!(
        listed.vms.len() + listed.skipped.len(),
        rows,
        "a row went missing"
    );
    let (data, sockets) = (Path::new("/data/dir"), Path::new("/run/sockets"));
    for vm in &listed.vms {
        assert!(is_vm_id(&vm.id), "{:?}", vm.id);
        // The names smolvm makes for its files stay inside their directories.
        for f in crate::sys::fs::VmFile::ALL {
            let (dir, name) = f
                .locate(data, sockets, &vm.id)
                .unwrap_or_else(|| panic!("{:?}: no {f:?} name", vm.id));
            assert!(dir.starts_with(data) || dir.starts_with(sockets), "{f:?}");
            direct_child(&dir, &name);
        }
        assert!(vm.pid.is_none_or(|p| p > 0 && p <= i64::from(i32::MAX)));
        if let Some(n) = &vm.network {
            if let Some(t) = &n.tap_device {
                assert!(oracle_device(t, true), "network.tap_device {t:?}");
            }
            for ip in [&n.guest_ip, &n.gateway_ip, &n.netmask]
                .into_iter()
                .flatten()
            {
                assert!(ip.parse::<Ipv4Addr>().is_ok(), "{ip:?}");
            }
            assert_ne!(n.ssh_host_port, Some(0));
        }
        if let Some(s) = &vm.socket_path {
            assert!(s.starts_with('/') && !s.contains('\0'), "{s:?}");
            assert!(!s.split('/').any(|c| c == ".."), "{s:?}");
        }
        match store.get_vm(&vm.id) {
            Ok(Some(again)) => assert_eq!(&again, vm),
            other => panic!("get_vm({:?}): {other:?}", vm.id),
        }
    }
    for s in &listed.skipped {
        assert!(!s.id.contains('\0') && !s.id.contains('\n'), "{:?}", s.id);
        assert!(s.vm_id.as_deref().is_none_or(is_vm_id));
        if let Some(id) = &s.vm_id {
            assert!(matches!(
                store.get_vm(id),
                Err(StateError::InvalidRow { .. }) | Ok(Some(_))
            ));
        }
    }
    let leases = store.leases().unwrap_or_else(|e| panic!("leases: {e}"));
    for (vm, (ip, tap)) in &leases.ips {
        assert!(is_vm_id(vm), "{vm:?}");
        assert!(ip.parse::<Ipv4Addr>().is_ok(), "{ip:?}");
        assert!(oracle_device(tap, false), "ip_leases tap {tap:?}");
    }
    for (vm, ip) in &leases.pending_ips {
        assert!(
            is_vm_id(vm) && ip.parse::<Ipv4Addr>().is_ok(),
            "{vm:?} {ip:?}"
        );
    }
    for (vm, (h, g)) in &leases.ssh {
        assert!(is_vm_id(vm) && *h > 0 && *g > 0, "{vm:?} {h} {g}");
    }
    for (vm, t) in &leases.taps {
        assert!(is_vm_id(vm), "{vm:?}");
        assert!(oracle_device(&t.tap_device, false), "{:?}", t.tap_device);
        assert!(matches!(t.mode.as_str(), "nat" | "bridge"));
    }
    // Arbitrary ids asked for never panic either.
    for _ in 0..3 {
        let id = text(&mut r);
        if let Ok(Some(vm)) = store.get_vm(&id) {
            assert!(is_vm_id(&vm.id));
        }
    }
    drop(store);
    let _ = std::fs::remove_file(&db);
}

#[test]
fn the_reader_yields_only_valid_ids_and_smolvm_devices_for_random_rows() {
    let t = tempfile::tempdir().unwrap();
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let seeds: Vec<u64> = match env("SMOLVM_FUZZ_SEED") {
        Some(s) => vec![s],
        None => (0..env("SMOLVM_FUZZ_CASES").unwrap_or(2000))
            .map(|i| 0x5EED_0000 + i)
            .collect(),
    };
    for seed in seeds {
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| run_case(seed, t.path()))) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("case failed: {msg}\nreplay it with SMOLVM_FUZZ_SEED={seed}");
        }
    }
}
