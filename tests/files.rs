//! Files smolvm writes under predictable names, as root on a shared host: a symbolic link
//! (or anything else that is not ours) at a console log, a per-VM disk or a control socket
//! path makes `start` fail with a clear error naming the path — before any VMM is spawned —
//! and the link's target (or the file) is left exactly as it was. Every smolvm run happens
//! in a network namespace of its own, so even a regression cannot touch the host's network.

mod support;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::cleanup::{insert_rows, NetNs, Row};
use support::sandbox::create_args;
use support::{json_exit, stderr, stdout, Home};

const PRECIOUS: &[u8] = b"root-owned data that must survive\n";

struct Env {
    h: Home,
    ns: NetNs,
    /// A small manifest publishing tiny (wrong) files, so a preset start never downloads
    /// anything real.
    manifest: PathBuf,
}

impl Env {
    fn new() -> Env {
        let h = Home::new();
        std::fs::create_dir_all(&h.data).unwrap();
        let ns = NetNs::with_uplink();
        let manifest = support::images::tiny_manifest(h.tmp.path());
        Env { h, ns, manifest }
    }

    fn smolvm(&self, args: &[&str]) -> std::process::Output {
        self.ns
            .cmd(&self.h, "smolvm")
            .env("SMOLVM_MANIFEST", &self.manifest)
            .args(args)
            .timeout(Duration::from_secs(120))
            .output()
            .unwrap()
    }

    /// A file outside every smolvm directory, standing for a root-owned file.
    fn precious(&self) -> PathBuf {
        let p = self.h.tmp.path().join("precious");
        std::fs::write(&p, PRECIOUS).unwrap();
        p
    }

    /// A symbolic link at `link` to a [`precious`](Self::precious) file.
    fn link_to_precious(&self, link: &Path) {
        symlink(self.precious(), link).unwrap();
    }

    /// `start` refused the link at `link` (naming it), and left it and its target as they
    /// were.
    fn assert_link_kept(&self, out: &std::process::Output, link: &Path) {
        assert_refused(out, link, "symbolic link");
        let target = self.h.tmp.path().join("precious");
        assert_eq!(std::fs::read(&target).unwrap(), PRECIOUS);
        assert!(std::fs::symlink_metadata(link).unwrap().is_symlink());
    }

    /// `sandbox start ID --accel tcg --json`.
    fn start(&self, id: &str) -> std::process::Output {
        self.smolvm(&["sandbox", "start", id, "--accel", "tcg", "--json"])
    }

    /// `sandbox create` of a QEMU sandbox `name` (with `--start` when `start`).
    fn create(&self, name: &str, start: bool) -> std::process::Output {
        let (k, r) = self.kernel_and_rootfs();
        let more: &[&str] = if start {
            &["--accel", "tcg", "--start", "--json"]
        } else {
            &["--accel", "tcg", "--json"]
        };
        let args = create_args(k.to_str().unwrap(), r.to_str().unwrap(), name, "qemu", more);
        self.smolvm(&args)
    }

    fn kernel_and_rootfs(&self) -> (PathBuf, PathBuf) {
        let k = self.h.tmp.path().join("kernel");
        let r = self.h.tmp.path().join("rootfs.ext4");
        std::fs::write(&k, b"not a kernel").unwrap();
        std::fs::write(&r, vec![0u8; 4096]).unwrap();
        (k, r)
    }

    /// A `created` sandbox row whose disk is `<data>/disks/<id>.ext4` (a regular file
    /// unless the test replaces it).
    fn created_row(&self, id: &str) {
        insert_rows(&self.h.data, &self.h.sockets(), &[Row::stopped(id)]);
        let (k, _) = self.kernel_and_rootfs();
        let disks = self.h.data.join("disks");
        std::fs::create_dir_all(&disks).unwrap();
        let disk = disks.join(format!("{id}.ext4"));
        std::fs::write(&disk, vec![0u8; 4096]).unwrap();
        let config = serde_json::json!({
            "vm_id": id, "vcpu_count": 1, "mem_size_mib": 64, "backend": "qemu",
            "accel": "tcg", "kernel_path": k, "rootfs_path": disk,
        });
        let c = rusqlite::Connection::open(self.h.data.join("smolvm.db")).unwrap();
        c.execute(
            "UPDATE vms SET status = 'created', config = ?1 WHERE id = ?2",
            rusqlite::params![config.to_string(), id],
        )
        .unwrap();
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.smolvm(&["cleanup", "--all", "--force", "--json"]);
    }
}

/// Exit 1, one JSON error envelope whose message names `path` and says why.
fn assert_refused(out: &std::process::Output, path: &Path, why: &str) {
    let v = json_exit(out, 1);
    assert_eq!(v["ok"], false);
    let m = support::error_message(&v);
    assert!(
        m.contains(&path.display().to_string()) && m.contains(why),
        "{m:?} should name {} and say {why:?}",
        path.display()
    );
}

fn no_vmm(e: &Env) {
    assert!(
        smolvm::sys::process::vmm_processes(Some(&e.h.sockets())).is_empty(),
        "a VMM was spawned"
    );
}

#[test]
fn sandbox_start_refuses_a_symlinked_console_log_and_leaves_its_target() {
    require_root!();
    let e = Env::new();
    e.created_row("vm-log");
    let log = e.h.data.join("vm-log.log");
    e.link_to_precious(&log);
    let out = e.start("vm-log");
    e.assert_link_kept(&out, &log);
    no_vmm(&e);
}

#[test]
fn sandbox_create_start_refuses_a_symlinked_console_log_and_leaves_its_target() {
    require_root!();
    let e = Env::new();
    let log = e.h.data.join("vm-new.log");
    e.link_to_precious(&log);
    let out = e.create("vm-new", true);
    e.assert_link_kept(&out, &log);
    assert!(support::cleanup::row_ids(&e.h.data).is_empty());
    assert!(!e.h.data.join("disks/vm-new.ext4").exists());
    no_vmm(&e);
}

#[test]
fn preset_start_refuses_a_symlinked_console_log_before_pulling() {
    require_root!();
    let e = Env::new();
    let log = e.h.data.join("vm-pre.log");
    e.link_to_precious(&log);
    let out = e.smolvm(&[
        "codex",
        "start",
        "--name",
        "vm-pre",
        "--backend",
        "qemu",
        "--accel",
        "tcg",
        "--json",
    ]);
    e.assert_link_kept(&out, &log);
    no_vmm(&e);
}

#[test]
fn sandbox_create_refuses_a_symlinked_disk_path_and_leaves_its_target() {
    require_root!();
    let e = Env::new();
    let disks = e.h.data.join("disks");
    std::fs::create_dir_all(&disks).unwrap();
    let disk = disks.join("vm-disk.ext4");
    e.link_to_precious(&disk);
    let out = e.create("vm-disk", false);
    e.assert_link_kept(&out, &disk);
    assert!(support::cleanup::row_ids(&e.h.data).is_empty());
    // Nothing of ours left beside it (no temp file).
    let left: Vec<_> = std::fs::read_dir(&disks)
        .unwrap()
        .flatten()
        .map(|d| d.file_name())
        .collect();
    assert_eq!(left, ["vm-disk.ext4"]);
}

#[test]
fn sandbox_start_refuses_a_symlinked_disk() {
    require_root!();
    let e = Env::new();
    e.created_row("vm-sd");
    let disk = e.h.data.join("disks/vm-sd.ext4");
    std::fs::remove_file(&disk).unwrap();
    e.link_to_precious(&disk);
    let out = e.start("vm-sd");
    e.assert_link_kept(&out, &disk);
    no_vmm(&e);
}

#[test]
fn sandbox_start_leaves_a_regular_file_at_the_qmp_socket_path() {
    require_root!();
    let e = Env::new();
    e.created_row("vm-sock");
    let sock = e.h.sockets().join("qmp-vm-sock.sock");
    std::fs::write(&sock, PRECIOUS).unwrap();
    let out = e.start("vm-sock");
    assert_refused(&out, &sock, "regular file");
    assert_eq!(std::fs::read(&sock).unwrap(), PRECIOUS);
    no_vmm(&e);
}

#[test]
fn sandbox_start_refuses_a_symlink_at_the_qmp_socket_path() {
    require_root!();
    let e = Env::new();
    e.created_row("vm-sl");
    let sock = e.h.sockets().join("qmp-vm-sl.sock");
    e.link_to_precious(&sock);
    let out = e.start("vm-sl");
    e.assert_link_kept(&out, &sock);
    no_vmm(&e);
}

#[test]
fn sandbox_logs_does_not_read_through_a_symlinked_log() {
    let h = Home::new();
    std::fs::create_dir_all(&h.data).unwrap();
    support::cleanup::insert_stopped(&h, &["vm-logs"]);
    let secret = h.tmp.path().join("secret");
    std::fs::write(&secret, b"root-only secret\n").unwrap();
    let log = h.data.join("vm-logs.log");
    symlink(&secret, &log).unwrap();
    let out = h.run(&["sandbox", "logs", "vm-logs"]);
    assert!(
        !stdout(&out).contains("root-only secret"),
        "{}",
        stdout(&out)
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&log.display().to_string()) && err.contains("symbolic link"),
        "{err}"
    );
    // A regular log is shown as before.
    std::fs::remove_file(&log).unwrap();
    std::fs::write(&log, b"console line\n").unwrap();
    let out = h.ok(&["sandbox", "logs", "vm-logs"]);
    assert_eq!(stdout(&out), "console line\n");
}
