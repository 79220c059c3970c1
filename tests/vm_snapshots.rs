//! Snapshots (`sandbox snapshot create|restore|list|delete`) and `sandbox pause|resume`.
//!
//! Driver level first (no guest needed): QEMU's state goes to a file we opened and comes
//! back through `-incoming defer`, both through descriptors passed over QMP; Firecracker's
//! pause, snapshot and load calls against the real binary. Then end to end on the Debian
//! test image under QEMU (TCG here), each test in its own network namespace.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use smolvm::sys::vmm::qmp::Qmp;

fn qemu() -> Option<std::path::PathBuf> {
    smolvm::core::host::Host::probe(&smolvm::sys::env::Env::from_process()).qemu
}

/// A QEMU with no guest (paused at reset), its QMP socket at `sock`.
fn bare_qemu(bin: &std::path::Path, sock: &std::path::Path, incoming: bool) -> std::process::Child {
    let mut c = Command::new(bin);
    c.args([
        "-machine",
        "q35,accel=tcg",
        "-m",
        "128",
        "-nodefaults",
        "-display",
        "none",
        "-S",
    ])
    .arg("-qmp")
    .arg(format!("unix:{},server=on,wait=off", sock.display()))
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    if incoming {
        c.args(["-incoming", "defer"]);
    }
    c.spawn().unwrap()
}

async fn connect(sock: &std::path::Path) -> Qmp {
    for _ in 0..500 {
        if let Ok(q) = Qmp::connect(sock, Duration::from_secs(5)).await {
            return q;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("QMP at {} never answered", sock.display());
}

#[test]
fn qemu_state_round_trips_through_descriptors_passed_over_qmp() {
    let Some(bin) = qemu() else {
        eprintln!("SKIPPED: no qemu-system binary");
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a.sock"), t.path().join("b.sock"));
    let state = t.path().join("state.bin");
    let mut src = bare_qemu(&bin, &a, false);
    let mut dst = bare_qemu(&bin, &b, true);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut q = connect(&a).await;
        q.execute("stop", None).await.unwrap();
        let f = smolvm::sys::open::create_new(&state, 0o600).unwrap();
        q.save_state(&f, Duration::from_secs(60)).await.unwrap();
        assert!(f.metadata().unwrap().len() > 0);
        // A source paused by the snapshot can run again.
        q.execute("cont", None).await.unwrap();
        assert_eq!(q.query_status().await.unwrap(), "running");
        let mut r = connect(&b).await;
        let f = std::fs::File::open(&state).unwrap();
        r.load_state(&f, Duration::from_secs(60)).await.unwrap();
        // Stays stopped (`prelaunch` here: this source never ran).
        let st = r.query_status().await.unwrap();
        assert!(st == "paused" || st == "prelaunch", "{st}");
        r.execute("cont", None).await.unwrap();
        assert_eq!(r.query_status().await.unwrap(), "running");
    });
    let _ = src.kill();
    let _ = dst.kill();
    let _ = src.wait();
    let _ = dst.wait();
}

use std::path::PathBuf;

use support::cleanup::NetNs;
use support::images;
use support::sandbox::Sandboxes;
use support::{stdout, Home};

/// One HOME in its own network namespace, with the Debian test image as `codex`'s.
type Env = Sandboxes;

impl Sandboxes {
    /// Whether the guest's sshd greets (a few tries: a TCG guest's first answer after a
    /// boot or a resume can be slow on a loaded host).
    fn ssh_up(&self, ip: &str) -> bool {
        self.first_line(ip, 22).starts_with("SSH-")
    }

    fn status_of(&self, id: &str) -> String {
        let v = self.ok_json(&["sandbox", "list", "--all", "--json"]);
        v["data"]["vms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .map(|r| r["status"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    }

    fn snapshots(&self) -> Vec<serde_json::Value> {
        self.ok_json(&["sandbox", "snapshot", "list", "--json"])["data"]["snapshots"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn snap_dir(&self, id: &str) -> PathBuf {
        self.h.home.join(".smolvm/snapshots").join(id)
    }

    /// What a VM may leave: TAPs, nft elements, its files, a process, a row.
    fn leftovers(&self, id: &str) -> Vec<String> {
        let mut left = support::cleanup::vm_leftovers(&self.h, &self.ns, id);
        let rules = self.ns.sh("nft list ruleset 2>/dev/null || true");
        if rules.contains("elements") {
            left.push("nft elements".into());
        }
        left
    }
}

/// The whole story on one booted Debian guest: pause/resume, a disk and a full snapshot,
/// prune and `cleanup --all --force` leaving snapshots alone, the VM deleted and restored
/// with the same counter process (same PID) still counting on the same IP, the disk
/// snapshot booted afresh, and the bad inputs.
#[test]
fn snapshots_restore_a_deleted_sandbox_with_its_processes_and_pause_stops_it() {
    require_root!();
    let id = "vm-snap";
    let (e, v) = Env::debian_codex_started(id);
    let ip = v["data"]["ip"].as_str().unwrap().to_string();
    let port = v["data"]["ssh_host_port"].as_u64().unwrap();
    assert!(e.ssh_up(&ip));

    // Pause: the guest stops answering and the list says so; resume brings it back.
    let p = e.ok_json(&["sandbox", "pause", id, "--json"]);
    assert_eq!(
        (p["command"].as_str(), p["data"]["status"].as_str()),
        (Some("sandbox.pause"), Some("paused"))
    );
    assert_eq!(e.status_of(id), "paused");
    assert_eq!(e.first_line_once(&ip, 22), "", "a paused guest answered");
    let r = e.ok_json(&["sandbox", "resume", id, "--json"]);
    assert_eq!(
        (r["command"].as_str(), r["data"]["status"].as_str()),
        (Some("sandbox.resume"), Some("running"))
    );
    assert_eq!(e.status_of(id), "running");
    assert!(e.ssh_up(&ip));

    // The guest's `sync` fails: a disk snapshot with SmolVM's default flush policy
    // (required) is refused, with the way out, and leaves no snapshot and the source
    // running; `best-effort` goes on without the sync, `skip` does not try.
    e.exec(
        id,
        "printf '#!/bin/sh\\necho no-sync >&2; exit 1\\n' > /usr/local/bin/sync; \
         chmod +x /usr/local/bin/sync",
    );
    fn disk_args<'a>(id: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut a = vec![
            "sandbox",
            "snapshot",
            "create",
            id,
            "--snapshot-id",
            "snap-noflush",
            "--snapshot-type",
            "disk",
            "--resume-source",
        ];
        a.extend_from_slice(extra);
        a
    }
    e.fails(&disk_args(id, &[]), 1, "--flush-policy best-effort");
    assert!(!e.snap_dir("snap-noflush").exists());
    assert_eq!(e.status_of(id), "running");
    assert!(e.snapshots().is_empty());
    for flush in ["best-effort", "skip"] {
        let b = e.ok_json(&disk_args(id, &["--flush-policy", flush, "--json"]));
        assert_eq!(b["data"]["source_status"], "running", "{flush}: {b}");
        e.ok_json(&["sandbox", "snapshot", "delete", "snap-noflush", "--json"]);
    }
    e.exec(id, "rm /usr/local/bin/sync");

    // A disk snapshot of a file (flushed by the snapshot), the source resumed.
    e.exec(id, "echo on-disk > /root/file");
    let d = e.ok_json(&[
        "sandbox",
        "snapshot",
        "create",
        id,
        "--snapshot-id",
        "snap-disk",
        "--snapshot-type",
        "disk",
        "--resume-source",
        "--json",
    ]);
    assert_eq!(d["command"], "sandbox.snapshot.create");
    assert_eq!(
        (
            d["data"]["snapshot"]["type"].as_str(),
            d["data"]["source_status"].as_str()
        ),
        (Some("disk"), Some("running"))
    );

    // A counter process, then a full snapshot: the source stays paused.
    let pid = e.exec(
        id,
        // Written beside and renamed, so a reader never sees the file truncated and empty.
        "nohup sh -c 'i=0; while :; do i=$((i+1)); echo $i > /root/count.new; mv /root/count.new /root/count; sleep 0.2; done' >/dev/null 2>&1 & echo $!",
    );
    std::thread::sleep(Duration::from_secs(1));
    let f = e.ok_json(&[
        "sandbox",
        "snapshot",
        "create",
        id,
        "--snapshot-id",
        "snap-full",
        "--json",
    ]);
    assert_eq!(
        (
            f["data"]["snapshot"]["type"].as_str(),
            f["data"]["source_status"].as_str()
        ),
        (Some("full"), Some("paused"))
    );
    assert_eq!(e.status_of(id), "paused");
    let list = e.snapshots();
    assert_eq!(list.len(), 2, "{list:?}");
    for s in &list {
        assert_eq!(s["vm_id"], id);
        assert!(s["size_bytes"].as_u64().unwrap() > 1 << 20, "{s}");
        assert_eq!(s["backend"], "qemu");
    }
    let human = stdout(&e.run(&["sandbox", "snapshot", "list"]));
    assert!(
        human.contains("snap-full") && human.contains("disk") && human.contains(id),
        "{human}"
    );

    // Restoring over the live sandbox needs --force; nothing changes.
    e.fails(
        &["sandbox", "snapshot", "restore", "snap-full"],
        1,
        "--force",
    );
    assert_eq!(e.status_of(id), "paused");

    // prune and cleanup --all --force leave snapshots alone.
    e.ok_json(&["prune", "--json"]);
    e.ok_json(&["cleanup", "--all", "--force", "--json"]);
    assert_eq!(e.leftovers(id), Vec::<String>::new());
    assert_eq!(e.snapshots().len(), 2);
    assert!(e.snap_dir("snap-full").join("state.bin").is_file());

    // Restore the deleted sandbox: same IP and port, the same process still counting.
    let t = std::time::Instant::now();
    let r = e.ok_json(&[
        "sandbox",
        "snapshot",
        "restore",
        "snap-full",
        "--resume",
        "--json",
    ]);
    eprintln!("full restore --resume: {:.2} s", t.elapsed().as_secs_f64());
    assert_eq!(r["command"], "sandbox.snapshot.restore");
    let data = &r["data"];
    assert_eq!(
        (
            data["snapshot"]["id"].as_str(),
            data["snapshot"]["type"].as_str()
        ),
        (Some("snap-full"), Some("full"))
    );
    assert_eq!(data["snapshot"]["vm_id"], id);
    assert_eq!(
        (data["vm"]["name"].as_str(), data["vm"]["status"].as_str()),
        (Some(id), Some("running"))
    );
    assert_eq!(data["vm"]["ip_address"].as_str(), Some(ip.as_str()));
    assert_eq!(data["vm"]["ssh_port"].as_u64(), Some(port));
    assert!(e.ssh_up(&ip));
    assert_eq!(e.exec(id, "cat /root/file"), "on-disk");
    let alive = e.exec(id, &format!("kill -0 {pid} && echo alive"));
    assert_eq!(alive, "alive");
    let a: u64 = e.exec(id, "cat /root/count").parse().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let b: u64 = e.exec(id, "cat /root/count").parse().unwrap();
    assert!(b > a, "the counter stopped: {a} then {b}");
    assert_eq!(e.status_of(id), "running");

    // The disk snapshot boots afresh (with --force over the running one): the file is
    // there, the counter (started after it) is not.
    let r = e.ok_json(&[
        "sandbox",
        "snapshot",
        "restore",
        "snap-disk",
        "--resume",
        "--force",
        "--json",
    ]);
    assert_eq!(r["data"]["vm"]["status"], "running");
    assert_eq!(r["data"]["replaced"], true);
    assert_eq!(e.exec(id, "cat /root/file"), "on-disk");
    assert_eq!(
        e.exec(id, "test -e /root/count && echo yes || echo no"),
        "no"
    );

    // Bad input: an unknown snapshot, an invalid id, a snapshot whose files were removed
    // by hand — clear errors, nothing changed.
    e.fails(
        &["sandbox", "snapshot", "restore", "snap-nope"],
        1,
        "Snapshot 'snap-nope' not found",
    );
    e.fails(
        &["sandbox", "snapshot", "delete", "../etc"],
        2,
        "Invalid snapshot id",
    );
    e.fails(
        &[
            "sandbox",
            "snapshot",
            "create",
            id,
            "--snapshot-type",
            "diff",
        ],
        1,
        "not supported yet",
    );
    std::fs::remove_file(e.snap_dir("snap-disk").join("disk.ext4")).unwrap();
    e.fails(
        &["sandbox", "snapshot", "restore", "snap-disk", "--force"],
        1,
        "missing its files",
    );
    assert_eq!(e.status_of(id), "running");
    let listed = e.snapshots();
    let gone = listed.iter().find(|s| s["id"] == "snap-disk").unwrap();
    assert_eq!(gone["missing_files"], serde_json::json!(["disk.ext4"]));

    // delete removes the row and the files.
    for s in ["snap-full", "snap-disk"] {
        let v = e.ok_json(&["sandbox", "snapshot", "delete", s, "--json"]);
        assert_eq!(v["data"]["deleted"]["id"], s);
        assert!(!e.snap_dir(s).exists());
    }
    assert!(e.snapshots().is_empty());
    e.ok_json(&["sandbox", "delete", id, "--timeout", "3", "--json"]);
    assert_eq!(e.leftovers(id), Vec::<String>::new());
}

impl Sandboxes {
    /// `smolvm <args>` in the namespace as a child of ours (to be killed).
    fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.command(args, &[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// Kill -9 `child` once `path` exists (and `after` more), as a crash at that point.
    /// The points are early in each operation (a create's marker or first file, a
    /// restore's disk copy) and the waits short, so a quiet machine cannot finish first.
    fn kill_when(&self, mut child: std::process::Child, path: &std::path::Path, after: Duration) {
        let t = std::time::Instant::now();
        while !path.exists() && t.elapsed() < Duration::from_secs(120) {
            if child.try_wait().unwrap().is_some() {
                panic!("finished before {} appeared", path.display());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(after);
        let finished = child.try_wait().unwrap().is_some();
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            !finished,
            "it finished before the kill: no crash was simulated"
        );
    }
}

/// kill -9 during `snapshot create` (twice) and `snapshot restore`, then rerun: no half
/// snapshot is ever listed, `cleanup` and the next create remove the partial files, the
/// rerun restore finishes what the killed one began, and nothing is leaked.
#[test]
fn killed_creates_and_restores_leave_nothing_half_done() {
    require_root!();
    let e = Env::debian_codex();
    let id = "vm-crash";
    e.codex_start(id);

    // A create killed mid-way: not listed; cleanup's stale scan removes its files.
    let c = e.spawn(&[
        "sandbox",
        "snapshot",
        "create",
        id,
        "--snapshot-id",
        "snap-k2",
    ]);
    e.kill_when(c, &e.snap_dir("snap-k2").join("state.bin"), Duration::ZERO);
    assert!(e.snapshots().is_empty());
    let dry = e.ok_json(&["cleanup", "--prefix", "zzz-", "--dry-run", "--json"]);
    assert!(
        dry["data"]["stale_resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "snapshot" && r["name"] == "snap-k2"),
        "{dry}"
    );
    e.ok_json(&["cleanup", "--prefix", "zzz-", "--force", "--json"]);
    assert!(!e.snap_dir("snap-k2").exists());
    // The killed create's watchdog ran its source again (issue 22: never left paused).
    support::cleanup::wait_for(|| e.status_of(id) == "running", "the source to run again");

    // Another one killed: the next create of the same id sweeps it and succeeds.
    let c = e.spawn(&[
        "sandbox",
        "snapshot",
        "create",
        id,
        "--snapshot-id",
        "snap-k",
    ]);
    e.kill_when(c, &e.snap_dir("snap-k").join(".partial"), Duration::ZERO);
    assert!(e.snapshots().is_empty());
    e.ok_json(&[
        "sandbox",
        "snapshot",
        "create",
        id,
        "--snapshot-id",
        "snap-k",
        "--resume-source",
        "--json",
    ]);
    assert_eq!(e.snapshots().len(), 1);
    assert!(!e.snap_dir("snap-k").join(".partial").exists());
    assert_eq!(e.exec(id, "echo up"), "up");

    // A restore killed mid-way; the rerun (no --force: it finishes its own restore) works.
    e.ok_json(&["sandbox", "delete", id, "--timeout", "3", "--json"]);
    let r = e.spawn(&["sandbox", "snapshot", "restore", "snap-k", "--resume"]);
    e.kill_when(
        r,
        &e.h.data.join(format!("disks/{id}.ext4")),
        Duration::from_millis(100),
    );
    let r = e.ok_json(&[
        "sandbox", "snapshot", "restore", "snap-k", "--resume", "--json",
    ]);
    assert_eq!(r["data"]["vm"]["status"], "running");
    assert_eq!(e.exec(id, "echo back"), "back");

    e.ok_json(&["sandbox", "delete", id, "--timeout", "3", "--json"]);
    e.ok_json(&["sandbox", "snapshot", "delete", "snap-k", "--json"]);
    assert_eq!(e.leftovers(id), Vec::<String>::new());
    let left: Vec<_> = std::fs::read_dir(e.h.home.join(".smolvm/snapshots"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    let v = e.ok_json(&["cleanup", "--all", "--force", "--json"]);
    assert_eq!(v["data"]["stale_resources"], serde_json::json!([]), "{v}");
}

/// Firecracker's pause, `PUT /snapshot/create` and `PUT /snapshot/load` against the real
/// binary (`SMOLVM_FIRECRACKER_BIN`, or on `PATH`). On a host without hardware KVM (PVM)
/// the guest runs only briefly, so this pauses it at once; a load into a new process may
/// then be refused by KVM, which is reported, not failed. CI without the binary skips.
#[test]
fn firecracker_pause_snapshot_and_load_calls_reach_the_real_api() {
    require_root!();
    let host = smolvm::core::host::Host::probe(&smolvm::sys::env::Env::from_process());
    let Some(bin) = host.firecracker.clone() else {
        eprintln!("SKIPPED: no firecracker binary (set SMOLVM_FIRECRACKER_BIN or put it on PATH)");
        return;
    };
    use smolvm::sys::vmm::firecracker as fc;
    let (_, vmlinux) = images::kernel();
    let rootfs = images::busybox_rootfs(images::Init::Ready);
    let ns = NetNs::with_uplink();
    ns.nat_tap("tap9");
    let dir = tempfile::tempdir().unwrap();
    let spawn = |sock: &std::path::Path| ns.firecracker(&bin, sock, None);
    let (sock, sock2) = (dir.path().join("fc-a.sock"), dir.path().join("fc-b.sock"));
    let (state, mem) = (dir.path().join("vmstate.bin"), dir.path().join("mem.bin"));
    let mut a = spawn(&sock);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let t = Duration::from_secs(30);
    let loaded = rt.block_on(async {
        assert!(fc::wait_for_socket(&sock, Duration::from_secs(10)).await);
        // Pausing a VM that was never started is refused by the API, verbatim.
        let err = fc::set_paused(&sock, true, t).await.unwrap_err();
        assert!(matches!(err, fc::ApiError::Fault { .. }), "{err}");
        let cfg = fc::FcConfig {
            kernel: vmlinux.clone(),
            boot_args: "console=ttyS0 reboot=k panic=1 pci=off init=/init".into(),
            vcpus: 1,
            mem_mib: 128,
            rootfs: rootfs.clone(),
            tap: "tap9".into(),
            mac: "AA:FC:00:00:00:09".into(),
        };
        fc::configure_and_start(&sock, &cfg, t).await.unwrap();
        fc::set_paused(&sock, true, t).await.unwrap();
        fc::snapshot_create(&sock, &state, &mem, t).await.unwrap();
        assert!(std::fs::metadata(&state).unwrap().len() > 0);
        assert_eq!(std::fs::metadata(&mem).unwrap().len(), 128 << 20);
        fc::set_paused(&sock, false, t).await.unwrap();
        // The TAP is free again once the source is gone (a restore replaces it).
        let _ = a.kill();
        let _ = a.wait();
        let mut b = spawn(&sock2);
        assert!(fc::wait_for_socket(&sock2, Duration::from_secs(10)).await);
        let r = fc::snapshot_load(&sock2, &state, &mem, false, t).await;
        let _ = b.kill();
        let _ = b.wait();
        r
    });
    match loaded {
        Ok(()) => eprintln!("firecracker snapshot/load: accepted"),
        Err(e) if !host.hardware_kvm() => {
            eprintln!("firecracker snapshot/load refused here (no hardware KVM): {e}")
        }
        Err(e) => panic!("snapshot/load failed with hardware KVM: {e}"),
    }
}

/// Firecracker exec'd as the unprivileged `smolvm` user, as a start execs it (smolvm's
/// launcher; kernel and disk handed over at `/proc/self/fd/201` and `200`), snapshots a
/// paused guest into a private folder of its user in the sockets' folder, from which root
/// copies the files into a folder only root reaches (root's, 0600): the unprivileged VMM
/// never reaches the snapshots folder. A second unprivileged Firecracker loads copies handed
/// to it the same way (on a host without hardware KVM the load may be refused by KVM, which
/// is reported, not failed). No exchange folder is left behind.
#[test]
fn an_unprivileged_firecracker_snapshots_and_loads_through_its_own_folders() {
    require_root!();
    use smolvm::sys::vmm::{firecracker as fc, launch, prepare, Launch, VmmIdentity};
    use std::os::fd::OwnedFd;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let host = smolvm::core::host::Host::probe(&smolvm::sys::env::Env::from_process());
    let Some(bin) = host.firecracker.clone() else {
        eprintln!("SKIPPED: no firecracker binary (set SMOLVM_FIRECRACKER_BIN or put it on PATH)");
        return;
    };
    let (_, vmlinux) = images::kernel();
    let h = Home::new();
    let sockets = h.sockets();
    let id = smolvm::sys::users::ensure_service_user().unwrap();
    let mut user = VmmIdentity {
        id,
        groups: Vec::new(),
    };
    user.groups
        .extend(prepare::socket_dir(&sockets, &user, || Ok(id.gid)).unwrap());
    user.groups.extend(prepare::kvm_device(&user).unwrap());
    let disk = h.tmp.path().join("disk.ext4");
    std::fs::copy(images::busybox_rootfs(images::Init::Ready), &disk).unwrap();
    let spawn = |sock: &std::path::Path| {
        let mut l = Launch::new(&bin, Some(user.clone())).unwrap();
        let k = std::fs::File::open(&vmlinux).unwrap();
        l.hand_over_at(prepare::readable_by(k, &user).unwrap(), 201);
        let d = smolvm::sys::open::open_existing_rw(&disk).unwrap();
        prepare::give_to(&d, id).unwrap();
        l.hand_over_at(OwnedFd::from(d), 200);
        l.arg("--api-sock").unwrap().arg(sock).unwrap();
        let c = l.spawn(None).unwrap();
        support::cleanup::wait_for(
            || launch::claim_socket(sock, id.uid).unwrap_or(false),
            "the API socket",
        );
        c
    };
    let (sock, sock2) = (sockets.join("fc-vm-u.sock"), sockets.join("fc-vm-v.sock"));
    let kept = h.tmp.path().join("kept");
    std::fs::create_dir(&kept).unwrap();
    std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut a = spawn(&sock);
    assert_eq!(support::privileges(i64::from(a.id())).uids, [id.uid; 4]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let t = Duration::from_secs(30);
    let loaded = rt.block_on(async {
        use serde_json::json;
        for (path, body) in [
            ("/boot-source", json!({"kernel_image_path": "/proc/self/fd/201", "boot_args": "console=ttyS0 reboot=k panic=1 pci=off init=/init"})),
            ("/machine-config", json!({"vcpu_count": 1, "mem_size_mib": 128})),
            ("/drives/rootfs", json!({"drive_id": "rootfs", "path_on_host": "/proc/self/fd/200", "is_root_device": true, "is_read_only": false})),
            ("/actions", json!({"action_type": "InstanceStart"})),
        ] {
            fc::call(&sock, "PUT", path, Some(&body), t)
                .await
                .unwrap_or_else(|e| panic!("{path}: {e}"));
        }
        fc::set_paused(&sock, true, t).await.unwrap();
        let x = prepare::exchange_dir(&sockets, "vm-u", id, &[]).unwrap();
        assert_eq!(std::fs::metadata(&x).unwrap().uid(), id.uid);
        fc::snapshot_create(&sock, &x.join("vmstate.bin"), &x.join("mem.bin"), t)
            .await
            .unwrap();
        for name in ["vmstate.bin", "mem.bin"] {
            prepare::take_file(&x, name, id.uid, &kept.join(name)).unwrap();
            let m = std::fs::metadata(kept.join(name)).unwrap();
            assert_eq!((m.uid(), m.mode() & 0o777), (0, 0o600), "{name}");
        }
        assert_eq!(std::fs::metadata(kept.join("mem.bin")).unwrap().len(), 128 << 20);
        prepare::remove_exchange_dir(&x);
        assert!(!x.exists());
        let _ = a.kill();
        let _ = a.wait();
        let mut b = spawn(&sock2);
        let state = kept.join("vmstate.bin");
        let mem = kept.join("mem.bin");
        let x = prepare::exchange_dir(
            &sockets,
            "vm-v",
            id,
            &[(&state, "vmstate.bin"), (&mem, "mem.bin")],
        )
        .unwrap();
        let r = fc::snapshot_load(&sock2, &x.join("vmstate.bin"), &x.join("mem.bin"), false, t).await;
        prepare::remove_exchange_dir(&x);
        let _ = b.kill();
        let _ = b.wait();
        r
    });
    match loaded {
        Ok(()) => eprintln!("unprivileged firecracker snapshot/load: accepted"),
        Err(e) if !host.hardware_kvm() => {
            eprintln!("unprivileged firecracker snapshot/load refused here (no hardware KVM): {e}")
        }
        Err(e) => panic!("snapshot/load failed with hardware KVM: {e}"),
    }
    let left: Vec<_> = std::fs::read_dir(&sockets)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".snapshot-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Ctrl-C during `sandbox snapshot restore --resume` (once the restore's QEMU is up): its
/// QEMU is killed and the restore rolled back as a failed one is (no process, TAP,
/// nftables element, row or file of the sandbox; the snapshot kept), saying so with exit
/// 130; the snapshot then restores.
#[test]
fn sigint_during_a_restore_cancels_it_and_rolls_back() {
    require_root!();
    let rootfs = support::images::busybox_rootfs(support::images::Init::Ready);
    let (kernel, _) = support::images::kernel();
    let e = Env::new();
    let id = "vm-rint";
    e.ok(&support::sandbox::create_args(
        kernel.to_str().unwrap(),
        rootfs.to_str().unwrap(),
        id,
        "qemu",
        &["--start", "--json"],
    ));
    e.ok_json(&[
        "sandbox",
        "snapshot",
        "create",
        id,
        "--snapshot-id",
        "snap-int",
        "--json",
    ]);
    e.ok_json(&["sandbox", "delete", id, "--timeout", "3", "--json"]);
    assert_eq!(e.leftovers(id), Vec::<String>::new());

    let sock = e.h.sockets().join(format!("qmp-{id}.sock"));
    let out = e.interrupted_when(
        &[
            "sandbox", "snapshot", "restore", "snap-int", "--resume", "--json",
        ],
        || sock.exists(),
    );
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}\n{}",
        support::stdout(&out),
        support::stderr(&out)
    );
    let m = support::json(&out)["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        m.contains("Restore of snapshot 'snap-int' cancelled by SIGINT; rolled back"),
        "{m}"
    );
    assert_eq!(e.leftovers(id), Vec::<String>::new());
    assert_eq!(e.snapshots().len(), 1);

    // Nothing half-done stands in the way: it restores (paused) and goes.
    let r = e.ok_json(&["sandbox", "snapshot", "restore", "snap-int", "--json"]);
    assert_eq!(r["data"]["vm"]["status"], "paused");
    e.ok_json(&["sandbox", "delete", id, "--timeout", "3", "--json"]);
    e.ok_json(&["sandbox", "snapshot", "delete", "snap-int", "--json"]);
    assert_eq!(e.leftovers(id), Vec::<String>::new());
}
