//! One operation per sandbox at a time (issue 22, item 5), as root with real QEMU guests
//! (TCG here) in a network namespace of their own: two starts of one sandbox leave one
//! running VM and never `error`; a second operation waits for the sandbox's lock (SmolVM's
//! own `<data dir>/locks/<id>.create.lock`, held here the way SmolVM holds it, by Python's
//! `fcntl.flock`), then fails `busy` naming the holder; a sandbox in `error` with an intact
//! disk starts again; a killed `snapshot create` leaves its source running.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::cleanup::wait_for;
use support::images::{self, Init};
use support::sandbox::{create_args, Sandboxes};
use support::{json, stderr, stdout, Reap};

type Env = Sandboxes;

impl Sandboxes {
    /// A sandbox `id` on the test kernel and the busybox rootfs, created (not started).
    fn create(&self, id: &str) {
        let (kernel, _) = images::kernel();
        let rootfs = images::busybox_rootfs(Init::Ready);
        self.ok_json(&create_args(
            kernel.to_str().unwrap(),
            rootfs.to_str().unwrap(),
            id,
            "qemu",
            &["--json"],
        ));
    }

    /// The row's (status, pid).
    fn row(&self, id: &str) -> (String, Option<i64>) {
        let c = rusqlite::Connection::open(self.h.data.join("smolvm.db")).unwrap();
        c.query_row("SELECT status, pid FROM vms WHERE id = ?1", [id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap()
    }

    fn set_row(&self, id: &str, status: &str, pid: Option<i64>) {
        let c = rusqlite::Connection::open(self.h.data.join("smolvm.db")).unwrap();
        c.execute(
            "UPDATE vms SET status = ?2, pid = ?3 WHERE id = ?1",
            rusqlite::params![id, status, pid],
        )
        .unwrap();
    }

    /// The live QEMU processes of `id`.
    fn vmms(&self, id: &str) -> Vec<i32> {
        smolvm::sys::process::vmm_processes(Some(&self.h.sockets()))
            .into_iter()
            .filter(|v| v.vm_id == id)
            .map(|v| v.pid)
            .collect()
    }

    /// QEMU's own word for the VM's state (`query-status`).
    fn qmp_status(&self, id: &str) -> String {
        let sock = self.h.sockets().join(format!("qmp-{id}.sock"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut q = smolvm::sys::vmm::qmp::Qmp::connect(&sock, Duration::from_secs(5))
                .await
                .unwrap();
            q.query_status().await.unwrap()
        })
    }

    fn lock_file(&self, id: &str) -> PathBuf {
        self.h.data.join("locks").join(format!("{id}.create.lock"))
    }
}

/// A sandbox environment with one stopped sandbox `id` in its state database.
fn with_stopped(id: &str) -> Env {
    let e = Env::new();
    support::cleanup::insert_rows(
        &e.h.data,
        &e.h.sockets(),
        &[support::cleanup::Row::stopped(id)],
    );
    e
}

/// `args` run while a lock it needs is held by `holder_pid` (SMOLVM_LOCK_TIMEOUT 1 s):
/// it waited, then failed `busy` (exit 1) with a message starting `busy_start` that names
/// the holder.
fn assert_busy(e: &Env, args: &[&str], busy_start: &str, holder_pid: u32) {
    let t = Instant::now();
    let out = e.run_with(args, &[("SMOLVM_LOCK_TIMEOUT", "1")]);
    assert!(t.elapsed() >= Duration::from_secs(1), "{args:?} waited");
    support::assert_exit(args, &out, 1);
    let v = json(&out);
    assert_eq!(v["error"]["code"], "busy", "{args:?}: {v}");
    let m = support::error_message(&v);
    assert!(
        m.starts_with(busy_start)
            && m.contains("python3 -c import fcntl, sys, time f = open(")
            && m.contains(&format!("(pid {holder_pid}) is working on it (waited 1 s)")),
        "{args:?}: {m}"
    );
}

fn alive(pid: i64) -> bool {
    smolvm::sys::process::is_alive(pid as i32)
}

/// Hold `path` the way SmolVM does (`open(path, "w")` + `fcntl.flock(LOCK_EX)`) in a
/// Python process for `secs` seconds; returned once it holds it.
fn python_holds(path: &Path, secs: f64) -> Reap {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(
            "import fcntl, sys, time\n\
             f = open(sys.argv[1], 'w')\n\
             fcntl.flock(f.fileno(), fcntl.LOCK_EX)\n\
             print('locked', flush=True)\n\
             time.sleep(float(sys.argv[2]))\n",
        )
        .arg(path)
        .arg(secs.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(support::first_line(&mut child), "locked");
    Reap(child)
}

fn wait_child(c: Child) -> Output {
    c.wait_with_output().unwrap()
}

#[test]
fn two_concurrent_starts_leave_one_running_vm_and_never_error() {
    require_root!();
    let e = Env::new();
    e.create("vm-race");
    for round in 0..2 {
        let start = |_| {
            e.command(&["sandbox", "start", "vm-race", "--json"], &[])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (start(0), start(1));
        let outs = [wait_child(a), wait_child(b)];
        let won: Vec<&Output> = outs.iter().filter(|o| o.status.success()).collect();
        assert_eq!(
            won.len(),
            1,
            "round {round}: exactly one start succeeds:\n{}\n{}\n{}\n{}",
            stdout(&outs[0]),
            stderr(&outs[0]),
            stdout(&outs[1]),
            stderr(&outs[1])
        );
        let lost = outs.iter().find(|o| !o.status.success()).unwrap();
        assert_eq!(lost.status.code(), Some(1), "{}", stderr(lost));
        let err = json(lost);
        let (code, msg) = (
            err["error"]["code"].as_str().unwrap().to_string(),
            support::error_message(&err).to_string(),
        );
        // Either it waited and found the sandbox running, or the boot outlasted its wait.
        assert!(
            msg == "Cannot start VM in state 'running'"
                || (code == "busy" && msg.contains("'smolvm sandbox start vm-race' (pid ")),
            "round {round}: {code}: {msg}"
        );
        let pid = json(won[0])["data"]["pid"].as_i64().unwrap();
        assert_eq!(
            e.row("vm-race"),
            ("running".into(), Some(pid)),
            "round {round}"
        );
        assert_eq!(
            e.vmms("vm-race"),
            vec![pid as i32],
            "round {round}: one VMM"
        );
        assert!(
            e.first_line("172.16.0.2", 22)
                .starts_with("SSH-2.0-smolvm-test"),
            "round {round}"
        );
        e.ok_json(&["sandbox", "stop", "vm-race", "--timeout", "3", "--json"]);
        assert_eq!(e.row("vm-race").0, "stopped");
    }
}

/// `sandbox snapshot delete` takes the snapshot's own lock (SmolVM's
/// `snapshot-<id>.lock`, held by a restore, a clone run or a create of it): held
/// elsewhere, the delete waits, then fails `busy` naming the holder and deletes nothing.
#[test]
fn a_snapshot_delete_waits_for_the_snapshots_lock() {
    require_root!();
    let e = with_stopped("vm-src");
    let dir = e.h.home.join(".smolvm/snapshots/snap-held");
    std::fs::create_dir_all(&dir).unwrap();
    let c = rusqlite::Connection::open(e.h.data.join("smolvm.db")).unwrap();
    c.execute(
        "INSERT INTO snapshots (snapshot_id, vm_id, snapshot_path, mem_file_path, disk_path, \
         vm_config, network_config, created_at, snapshot_type) \
         VALUES ('snap-held', 'vm-src', ?1, '', ?2, '{}', '{}', '2026-05-07T12:00:00+00:00', 'disk')",
        rusqlite::params![
            dir.to_str().unwrap(),
            dir.join("disk.ext4").to_str().unwrap()
        ],
    )
    .unwrap();
    let lock = e.h.data.join("locks/snapshot-snap-held.lock");
    let python = python_holds(&lock, 60.0);
    let holder_pid = python.0.id();
    let args = ["sandbox", "snapshot", "delete", "snap-held", "--json"];
    assert_busy(&e, &args, "Snapshot 'snap-held' is busy: '", holder_pid);
    let rows: i64 = c
        .query_row("SELECT COUNT(*) FROM snapshots", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1, "the row went");
    assert!(dir.is_dir(), "the directory went");
    drop(python);
    // Released, the delete goes ahead.
    let out = e.run_with(&args, &[("SMOLVM_LOCK_TIMEOUT", "5")]);
    support::assert_exit(&args, &out, 0);
    assert!(!dir.exists());
}

#[test]
fn a_second_operation_waits_for_the_lock_then_fails_busy_naming_the_holder() {
    require_root!();
    let e = with_stopped("vm-held");
    let lock = e.lock_file("vm-held");
    let python = python_holds(&lock, 60.0);
    let holder_pid = python.0.id();
    let quick = [("SMOLVM_LOCK_TIMEOUT", "1")];
    for args in [
        vec!["sandbox", "start", "vm-held", "--json"],
        vec!["sandbox", "stop", "vm-held", "--json"],
        vec!["sandbox", "pause", "vm-held", "--json"],
        vec!["sandbox", "resume", "vm-held", "--json"],
        vec!["sandbox", "snapshot", "create", "vm-held", "--json"],
        vec![
            "sandbox", "exec", "vm-held", "--start", "--json", "--", "true",
        ],
    ] {
        assert_busy(&e, &args, "Sandbox 'vm-held' is busy: '", holder_pid);
    }
    // delete reports it per sandbox, and changes nothing.
    let out = e.run_with(&["sandbox", "delete", "vm-held", "--json"], &quick);
    let v = json(&out);
    assert_eq!(out.status.code(), Some(1), "{v}");
    assert_eq!(v["data"]["failed"][0]["code"], "busy", "{v}");
    // cleanup's teardown of it too.
    let out = e.run_with(&["cleanup", "--all", "--force", "--json"], &quick);
    let v = json(&out);
    assert_eq!(v["data"]["failed"][0]["vm_id"], "vm-held", "{v}");
    assert!(
        v["data"]["failed"][0]["error"]
            .as_str()
            .unwrap()
            .contains("is busy"),
        "{v}"
    );
    assert_eq!(e.row("vm-held"), ("stopped".into(), None));
    // The human line names the holder too, and says what to do.
    let out = e.run_with(&["sandbox", "stop", "vm-held"], &quick);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("Error: Sandbox 'vm-held' is busy: '")
            && stderr(&out).contains("SMOLVM_LOCK_TIMEOUT=<seconds>"),
        "{}",
        stderr(&out)
    );
    // A bad wait is a usage error before anything is looked at.
    let out = e.run_with(
        &["sandbox", "stop", "vm-held", "--json"],
        &[("SMOLVM_LOCK_TIMEOUT", "soon")],
    );
    support::assert_exit(&[], &out, 2);
    assert!(json(&out)["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("SMOLVM_LOCK_TIMEOUT must be a number of seconds"));
    drop(python);

    // Within the wait, the second operation just waits, then does its work.
    let python = python_holds(&lock, 1.5);
    let t = Instant::now();
    let v = e.ok_json(&["sandbox", "delete", "vm-held", "--json"]);
    assert!(t.elapsed() >= Duration::from_millis(1000), "it waited");
    assert_eq!(v["data"]["deleted"][0], "vm-held", "{v}");
    drop(python);
    // The lock file stays (a waiter may hold it open), the row is gone.
    assert!(lock.is_file());
    assert!(support::cleanup::row_ids(&e.h.data).is_empty());
}

#[test]
fn smolvm_holding_the_lock_is_named_and_a_failed_sandbox_with_its_disk_starts_again() {
    require_root!();
    let e = Env::new();
    e.create("vm-err");
    // While a start holds the lock, another operation that will not wait is busy, and
    // names the start.
    let starting = e
        .command(&["sandbox", "start", "vm-err", "--json"], &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(
        || {
            std::fs::read_to_string(e.lock_file("vm-err"))
                .is_ok_and(|t| t.contains("sandbox start vm-err"))
        },
        "the start to take the lock",
    );
    let out = e.run_with(
        &["sandbox", "stop", "vm-err", "--json"],
        &[("SMOLVM_LOCK_TIMEOUT", "0")],
    );
    let v = json(&out);
    assert_eq!(v["error"]["code"], "busy", "{v}");
    let m = support::error_message(&v);
    assert!(
        m.starts_with(&format!(
            "Sandbox 'vm-err' is busy: 'smolvm sandbox start vm-err' (pid {})",
            starting.id()
        )),
        "{m}"
    );
    let out = wait_child(starting);
    support::assert_exit(&[], &out, 0);
    let pid = json(&out)["data"]["pid"].as_i64().unwrap();

    // The VMM dies and the row is marked `error` (SmolVM's reconcile): the disk is intact,
    // so it starts again.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for(|| !alive(pid), "the VMM to die");
    e.set_row("vm-err", "error", None);
    let v = e.ok_json(&["sandbox", "start", "vm-err", "--json"]);
    assert_eq!(v["data"]["status"], "running", "{v}");
    let pid2 = v["data"]["pid"].as_i64().unwrap();
    assert!(e
        .first_line("172.16.0.2", 22)
        .starts_with("SSH-2.0-smolvm-test"));

    // Marked `error` while its VMM still runs: a start refuses (one disk, one VMM) and
    // changes nothing; `stop` stops that VMM, then it starts again.
    e.set_row("vm-err", "error", None);
    let out = e.run_with(&["sandbox", "start", "vm-err", "--json"], &[]);
    support::assert_exit(&[], &out, 1);
    let m = json(&out)["error"]["message"].as_str().unwrap().to_string();
    assert!(
        m.contains(&format!("its VMM (pid {pid2}) is still running")),
        "{m}"
    );
    assert!(alive(pid2));
    assert_eq!(e.row("vm-err"), ("error".into(), None));
    e.ok_json(&["sandbox", "stop", "vm-err", "--timeout", "3", "--json"]);
    assert!(!alive(pid2));
    assert!(e.vmms("vm-err").is_empty());
    let v = e.ok_json(&["sandbox", "start", "vm-err", "--json"]);
    assert_eq!(v["data"]["status"], "running");
    e.ok_json(&["sandbox", "stop", "vm-err", "--timeout", "3", "--json"]);

    // An `error` sandbox whose disk is gone is refused with the disk named, nothing changed.
    e.set_row("vm-err", "error", None);
    let disk = e.h.data.join("disks/vm-err.ext4");
    std::fs::remove_file(&disk).unwrap();
    let out = e.run_with(&["sandbox", "start", "vm-err", "--json"], &[]);
    support::assert_exit(&[], &out, 1);
    let m = json(&out)["error"]["message"].as_str().unwrap().to_string();
    assert!(
        m.contains("unusable disk") && m.contains(disk.to_str().unwrap()),
        "{m}"
    );
    assert_eq!(e.row("vm-err"), ("error".into(), None));
    assert!(e.vmms("vm-err").is_empty());
}

#[test]
fn a_killed_snapshot_create_leaves_its_source_running() {
    require_root!();
    let e = Env::new();
    e.create("vm-snap");
    let v = e.ok_json(&["sandbox", "start", "vm-snap", "--json"]);
    let pid = v["data"]["pid"].as_i64().unwrap();
    let mut killed_midway = 0;
    for attempt in 0..5 {
        let snap = format!("s{attempt}");
        let mut create = e
            .command(
                &[
                    "sandbox",
                    "snapshot",
                    "create",
                    "vm-snap",
                    "--snapshot-id",
                    &snap,
                    "--json",
                ],
                &[],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The moment it pauses the source, it is killed (no chance to tidy up).
        let t = Instant::now();
        while e.row("vm-snap").0 != "paused" {
            assert!(t.elapsed() < Duration::from_secs(60), "never paused");
            if create.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = create.kill();
        let _ = create.wait();
        let finished = e
            .ok_json(&["sandbox", "snapshot", "list", "--json"])
            .to_string()
            .contains(&format!("\"{snap}\""));
        if finished {
            // It finished before the kill: a finished create leaves the source paused (as
            // SmolVM does); run it again and try once more.
            e.ok_json(&["sandbox", "resume", "vm-snap", "--json"]);
            continue;
        }
        killed_midway += 1;
        // The watchdog runs the source again.
        wait_for(
            || e.row("vm-snap").0 == "running",
            "the source to be resumed",
        );
        assert_eq!(e.row("vm-snap"), ("running".into(), Some(pid)));
        let banner = e.first_line("172.16.0.2", 22);
        assert!(
            banner.starts_with("SSH-2.0-smolvm-test"),
            "the guest runs: {banner:?}; QEMU: {}; log: {}",
            e.qmp_status("vm-snap"),
            std::fs::read_to_string(e.h.data.join("logs/smolvm.log")).unwrap_or_default()
        );
        // The half-written snapshot is never listed (the next create removes its files).
        let list = e.ok_json(&["sandbox", "snapshot", "list", "--json"]);
        assert!(!list.to_string().contains(&format!("\"{snap}\"")), "{list}");
        // And the sandbox is free for the next operation.
        let v = e.ok_json(&[
            "sandbox",
            "snapshot",
            "create",
            "vm-snap",
            "--snapshot-id",
            &format!("ok{attempt}"),
            "--resume-source",
            "--json",
        ]);
        assert_eq!(v["data"]["source_status"], "running", "{v}");
        break;
    }
    assert_eq!(killed_midway, 1, "no create was killed mid-way in 5 tries");
}
