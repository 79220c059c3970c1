//! `smolvm cleanup` / `smolvm-cleanup` end to end, as root, each test in its own network
//! namespace: a real SQLite file in SmolVM's shapes, real QEMU processes standing in for
//! VMMs, real TAP devices and nftables tables.

mod support;

use std::os::unix::net::UnixListener;
use std::process::Command;
use std::time::Duration;

use support::cleanup::{
    fake_firecracker, insert_rows, row_ids, run_with_pty, wait_for, NetNs, QemuStandIn, Row,
};
use support::{json, stderr, stdout, Home};

/// A pid that is certainly not running.
const DEAD_PID: i32 = 0x3fff_fff0;

fn seed_rows(h: &Home) {
    insert_rows(
        &h.data,
        &h.sockets(),
        &[
            Row {
                status: "running",
                pid: Some(DEAD_PID),
                ..Row::stopped("vm-12345")
            },
            Row::stopped("vm-test-1"),
            Row::stopped("vm-demo"),
            Row::stopped("production-vm"),
            Row::stopped("agent-worker-1"),
        ],
    );
}

#[test]
fn dry_run_matches_the_seed_and_changes_nothing() {
    require_root!();
    let (h, ns) = (Home::new(), NetNs::new());
    seed_rows(&h);
    let db = std::fs::read(h.data.join("smolvm.db")).unwrap();
    let out = ns.smolvm(&h, &["cleanup", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    insta::assert_snapshot!(stdout(&out), @r"
    Reconciled stale VMs: vm-12345
    Targets (3):
      - vm-12345
      - vm-test-1
      - vm-demo
    Dry run complete. No changes made.
    ");
    assert_eq!(
        std::fs::read(h.data.join("smolvm.db")).unwrap(),
        db,
        "dry run wrote the DB"
    );
    assert!(!h.data.join("cleanup.lock").exists());
}

#[test]
fn default_prefix_deletes_stale_and_vm_prefixed_only() {
    require_root!();
    let (h, ns) = (Home::new(), NetNs::new());
    seed_rows(&h);
    let out = ns.smolvm(&h, &["cleanup", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    insta::assert_snapshot!(stdout(&out), @r"
    Reconciled stale VMs: vm-12345
    Targets (3):
      - vm-12345
      - vm-test-1
      - vm-demo
    Deleted: vm-12345
    Deleted: vm-test-1
    Deleted: vm-demo
    Cleanup complete.
    ");
    assert_eq!(row_ids(&h.data), ["production-vm", "agent-worker-1"]);
}

#[test]
fn custom_prefix_and_all() {
    require_root!();
    let (h, ns) = (Home::new(), NetNs::new());
    seed_rows(&h);
    let out = ns.smolvm(&h, &["cleanup", "--prefix", "agent-", "-f"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    insta::assert_snapshot!(stdout(&out), @r"
    Reconciled stale VMs: vm-12345
    Targets (2):
      - vm-12345
      - agent-worker-1
    Deleted: vm-12345
    Deleted: agent-worker-1
    Cleanup complete.
    ");
    let out = ns.smolvm(
        &h,
        &["cleanup", "--all", "--prefix", "nomatch-", "--dry-run"],
    );
    insta::assert_snapshot!(stdout(&out), @r"
    Targets (3):
      - vm-test-1
      - vm-demo
      - production-vm
    Dry run complete. No changes made.
    ");
    let out = ns.smolvm(&h, &["cleanup", "--all", "--force"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).ends_with("Deleted: production-vm\nCleanup complete.\n"));
    assert!(row_ids(&h.data).is_empty());
}

#[test]
fn no_match_is_success_without_prompting() {
    require_root!();
    let (h, ns) = (Home::new(), NetNs::new());
    support::cleanup::insert_stopped(&h, &["production-vm"]);
    for args in [
        &["cleanup", "--prefix", "foo-"][..],
        &["cleanup", "--prefix", "foo-", "--json"],
    ] {
        let out = ns.cmd(&h, "smolvm").args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        if args.len() == 3 {
            assert_eq!(stdout(&out), "No matching VMs to clean.\n");
        } else {
            let v = json(&out);
            assert_eq!(v["ok"], true);
            assert_eq!(v["data"]["targets"], serde_json::json!([]));
        }
    }
    assert_eq!(row_ids(&h.data), ["production-vm"]);
}

#[test]
fn stale_resources_alone_say_what_was_cleaned_and_json_is_not_a_dry_run() {
    require_root!();
    let (h, ns) = (Home::new(), NetNs::new());
    ns.smolvm_nft("");
    // Unattended `--json` without --force and nothing to do: a real (empty) run.
    let out = ns.smolvm(&h, &["cleanup", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["data"]["dry_run"], false);
    // Only a stale file: no VM is deleted, and the lines say so without contradiction.
    std::fs::create_dir_all(h.data.join("vm-ids")).unwrap();
    std::fs::write(h.data.join("vm-ids/vm-old"), b"").unwrap();
    std::fs::write(h.data.join("vm-old.log"), b"log").unwrap();
    let out = ns.smolvm(&h, &["cleanup", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let f = h.data.join("vm-old.log");
    assert_eq!(
        stdout(&out),
        format!(
            "No matching VMs to delete.\nStale resources (1):\n  - file {f} (VM vm-old)\nCleaned: file {f} (VM vm-old)\nCleanup complete: removed 1 stale resource(s).\n",
            f = f.display()
        )
    );
    assert!(!f.exists());
}

#[test]
fn refuses_unattended_without_force_and_touches_nothing() {
    require_root!();
    let (h, ns) = (Home::new(), NetNs::new());
    seed_rows(&h);
    let db = std::fs::read(h.data.join("smolvm.db")).unwrap();
    // --json
    let out = ns.smolvm(&h, &["cleanup", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        json(&out),
        serde_json::json!({
            "ok": false, "command": "cleanup", "exit_code": 1, "data": null,
            "error": {"code": "refused",
                      "message": "Refusing to delete VMs without --force in --json mode.",
                      "recovery": "Run 'smolvm cleanup --force --json' to confirm."}
        })
    );
    // piped stdin
    let out = ns
        .cmd(&h, "smolvm")
        .arg("cleanup")
        .write_stdin("y\n")
        .output()
        .unwrap();
    support::assert_error(
        &out,
        1,
        "Error: Refusing to delete VMs without a confirmation prompt. Pass --force to confirm.\n",
    );
    // the standalone script names itself in the recovery hint
    let out = ns.cmd(&h, "smolvm-cleanup").arg("--json").output().unwrap();
    assert_eq!(
        json(&out)["error"]["recovery"],
        "Run 'smolvm-cleanup --force --json' to confirm."
    );
    assert_eq!(std::fs::read(h.data.join("smolvm.db")).unwrap(), db);
}

fn prompt(h: &Home, ns: &NetNs, input: &[u8]) -> std::process::Output {
    run_with_pty(ns.smolvm_command(h, &["cleanup"]), input)
}

#[test]
fn prompt_yes_deletes_and_no_empty_or_eof_abort() {
    require_root!();
    let (h, ns) = (Home::new(), NetNs::new());
    support::cleanup::insert_stopped(&h, &["vm-a", "vm-b"]);
    let head = "Targets (2):\n  - vm-a\n  - vm-b\nThis will permanently delete 2 VM(s). This action cannot be undone.\nContinue? [y/N] ";
    for (input, tail) in [
        (&b"no\n"[..], "Aborted.\n"),
        (b"\n", "Aborted.\n"),
        (b"\x04", "\nAborted.\n"), // Ctrl-D: end of input
        (b"\x03", "\nAborted.\n"), // Ctrl-C
    ] {
        let out = prompt(&h, &ns, input);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(stdout(&out), format!("{head}{tail}"));
        assert_eq!(row_ids(&h.data), ["vm-a", "vm-b"]);
    }
    let out = prompt(&h, &ns, b" YeS \n");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("{head}Deleted: vm-a\nDeleted: vm-b\nCleanup complete.\n")
    );
    assert!(row_ids(&h.data).is_empty());
}

/// A VM's TAP held open by a process that is not its VMM (here a QEMU of another install's
/// VM, attached to it) is never deleted: the teardown fails naming the holder — asked of
/// the kernel for that one TAP — the row stays for a later run, and the holder keeps its
/// TAP. Many teardowns at once share their nftables work, and a VM whose TAP could not go
/// keeps its own entries while the others' are removed.
#[test]
fn a_tap_held_by_another_process_is_never_deleted_and_the_others_teardowns_go_on() {
    require_root!();
    let (h, ns) = (Home::new(), NetNs::new());
    let sockets = h.sockets();
    ns.smolvm_nft("");
    for (tap, ip, port) in [
        ("tap7", "172.16.0.7", 2207),
        ("tap8", "172.16.0.8", 2208),
        ("tap9", "172.16.0.9", 2209),
    ] {
        ns.nat_tap(tap);
        ns.ssh_forward(tap, ip, port);
    }
    let other_dir = h.tmp.path().join("other-install");
    std::fs::create_dir_all(&other_dir).unwrap();
    let mut holder = QemuStandIn::start(&ns, &other_dir, "vm-theirs", Some("tap7"));
    insert_rows(
        &h.data,
        &sockets,
        &[
            Row {
                tap: Some(("tap7", "172.16.0.7", 2207)),
                ..Row::stopped("vm-held")
            },
            Row {
                tap: Some(("tap8", "172.16.0.8", 2208)),
                ..Row::stopped("vm-free1")
            },
            Row {
                tap: Some(("tap9", "172.16.0.9", 2209)),
                ..Row::stopped("vm-free2")
            },
        ],
    );
    let out = ns.smolvm(&h, &["cleanup", "--force", "--json"]);
    let v = json(&out);
    assert_eq!(out.status.code(), Some(1), "{v}");
    assert_eq!(
        v["data"]["deleted"],
        serde_json::json!(["vm-free1", "vm-free2"]),
        "{v}"
    );
    let err = v["data"]["failed"][0]["error"].as_str().unwrap();
    assert_eq!(v["data"]["failed"][0]["vm_id"], "vm-held", "{v}");
    assert!(
        err.contains(&format!(
            "TAP device tap7 is held open by process {}",
            holder.pid()
        )),
        "{err}"
    );
    assert!(holder.alive(), "the holder was stopped");
    let links = ns.links();
    assert!(
        links.contains("tap7") && !links.contains("tap8") && !links.contains("tap9"),
        "{links}"
    );
    let rules = ns.nft_ruleset();
    assert!(
        !rules.contains("2208") && !rules.contains("2209"),
        "{rules}"
    );
    assert!(
        rules.contains("2207"),
        "vm-held's entries went with the others':\n{rules}"
    );
    assert_eq!(row_ids(&h.data), ["vm-held"]);
}

#[test]
fn full_teardown_leaves_no_process_tap_nft_element_row_or_socket() {
    require_root!();
    let (h, ns) = (Home::new(), NetNs::new());
    let sockets = h.sockets();
    ns.smolvm_nft(
        "add rule ip smolvm_nat output ip daddr 127.0.0.1/32 tcp dport 8080 counter dnat to 172.16.0.2:80 comment \"smolvm:vm-live:local:8080:80\"",
    );
    for (tap, ip, port) in [("tap2", "172.16.0.2", 2200), ("tap3", "172.16.0.3", 2201)] {
        ns.nat_tap(tap);
        ns.ssh_forward(tap, ip, port);
    }
    let mut live = QemuStandIn::start(&ns, &sockets, "vm-live", Some("tap2"));
    let mut keep = QemuStandIn::start(&ns, &sockets, "prod-keep", Some("tap3"));
    insert_rows(
        &h.data,
        &sockets,
        &[
            Row {
                status: "running",
                pid: Some(live.pid()),
                tap: Some(("tap2", "172.16.0.2", 2200)),
                ..Row::stopped("vm-live")
            },
            Row {
                status: "running",
                pid: Some(keep.pid()),
                tap: Some(("tap3", "172.16.0.3", 2201)),
                ..Row::stopped("prod-keep")
            },
        ],
    );
    std::fs::write(h.data.join("vm-live.log"), b"console").unwrap();
    std::fs::create_dir_all(h.data.join("disks")).unwrap();
    std::fs::write(h.data.join("disks/vm-live.ext4"), b"disk").unwrap();

    let out = ns.smolvm(&h, &["cleanup", "--force", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["data"]["deleted"], serde_json::json!(["vm-live"]));
    assert_eq!(
        v["data"]["summary"],
        serde_json::json!({"target_count": 1, "deleted_count": 1, "failed_count": 0})
    );
    assert_eq!(v["data"]["reconciled_stale_ids"], serde_json::json!([]));

    wait_for(|| !live.alive(), "vm-live's VMM to exit");
    assert!(keep.alive(), "a VM that was not targeted was stopped");
    let links = ns.links();
    assert!(!links.contains("tap2") && links.contains("tap3"), "{links}");
    let rules = ns.nft_ruleset();
    for gone in ["2200", "172.16.0.2", "\"tap2\"", "smolvm:vm-live:"] {
        assert!(!rules.contains(gone), "{gone} left in:\n{rules}");
    }
    for kept in [
        "2201",
        "172.16.0.3",
        "\"tap3\"",
        "smolvm:global:forward:established",
        "smolvm:map:output:dnat_local",
        "table ip smolvm_nat",
        "table inet smolvm_filter",
    ] {
        assert!(rules.contains(kept), "{kept} removed from:\n{rules}");
    }
    assert_eq!(row_ids(&h.data), ["prod-keep"]);
    assert!(!live.socket.exists() && keep.socket.exists());
    assert!(!h.data.join("vm-live.log").exists());
    assert!(!h.data.join("disks/vm-live.ext4").exists());
}

#[test]
fn a_reused_pid_marks_the_row_stale_and_the_process_survives() {
    require_root!();
    let (h, ns) = (Home::new(), NetNs::new());
    let mut unrelated = Command::new("sleep").arg("60").spawn().unwrap();
    insert_rows(
        &h.data,
        &h.sockets(),
        &[Row {
            status: "running",
            pid: Some(unrelated.id() as i32),
            ..Row::stopped("prod-reused")
        }],
    );
    let out = ns.smolvm(&h, &["cleanup", "--force", "--json"]);
    let v = json(&out);
    assert_eq!(
        v["data"]["reconciled_stale_ids"],
        serde_json::json!(["prod-reused"])
    );
    assert_eq!(v["data"]["deleted"], serde_json::json!(["prod-reused"]));
    assert!(
        matches!(unrelated.try_wait(), Ok(None)),
        "an unrelated process was signalled"
    );
    unrelated.kill().unwrap();
    unrelated.wait().unwrap();
}

#[test]
fn orphans_are_listed_and_cleaned_and_nothing_else_is_touched() {
    require_root!();
    let (h, ns) = (Home::new(), NetNs::new());
    let sockets = h.sockets();
    ns.smolvm_nft("");
    ns.nat_tap("tap7"); // orphan: no row, nothing attached
    ns.ssh_forward("tap7", "172.16.0.7", 2207);
    ns.nat_tap("tap8"); // in use by a VMM of another install: not ours to judge dead
    ns.sh("ip tuntap add tap99 mode tap"); // no 172.16.0.1/32: not SmolVM's
                                           // Started by this install (its console log is in our data dir): provably ours.
    let mut orphan = QemuStandIn::started_here(&ns, &h, "vm-gone", None);
    // Recorded nowhere but not started with our files: not ours to stop.
    let mut stranger = QemuStandIn::start(&ns, &sockets, "vm-stranger", None);
    let other_dir = h.tmp.path().join("other-sockets");
    std::fs::create_dir_all(&other_dir).unwrap();
    let mut foreign = QemuStandIn::start(&ns, &other_dir, "vm-foreign", Some("tap8"));
    // A VM this install made files for (its ledger entry), whose row is gone.
    std::fs::create_dir_all(h.data.join("vm-ids")).unwrap();
    std::fs::write(h.data.join("vm-ids/vm-old"), b"").unwrap();
    std::fs::write(h.data.join("vm-old.log"), b"log").unwrap();
    std::fs::write(h.data.join("notes.txt"), b"mine").unwrap();
    let stray = sockets.join("fc-vm-stray.sock");
    // A dead socket: bound, then its listener gone.
    drop(std::os::unix::net::UnixListener::bind(&stray).unwrap());
    // A socket something still listens on is not stale.
    let answering = sockets.join("fc-vm-answering.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&answering).unwrap();
    std::fs::write(
        sockets.join("qmp-vm-file.sock"),
        b"a regular file, not a socket",
    )
    .unwrap();

    let out = ns.smolvm(&h, &["cleanup", "--dry-run"]);
    let s = sockets.display();
    let d = h.data.display();
    assert_eq!(
        stdout(&out),
        format!(
            "No matching VMs to delete.\nStale resources (11):\n  - process {} qemu-system-x86 (VM vm-gone)\n  - tap tap7\n  - nft ip smolvm_nat dnat_ext {{ 2207 }}\n  - nft ip smolvm_nat dnat_local {{ 2207 }}\n  - nft ip smolvm_nat snat_return {{ 172.16.0.7 . 22 }}\n  - nft inet smolvm_filter fwd_allow {{ 172.16.0.7 . 22 }}\n  - nft inet smolvm_filter allowed_taps {{ \"tap7\" }}\n  - socket {s}/fc-vm-stray.sock (VM vm-stray)\n  - socket {s}/qmp-vm-gone.sock (VM vm-gone)\n  - file {d}/vm-gone.log (VM vm-gone)\n  - file {d}/vm-old.log (VM vm-old)\nDry run complete. No changes made.\n",
            orphan.pid()
        )
    );
    let out = ns.smolvm(&h, &["cleanup", "--force", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    let kinds = support::texts(&v["data"]["stale_resources"], "kind");
    assert_eq!(
        kinds,
        ["process", "tap", "nft", "nft", "nft", "nft", "nft", "socket", "socket", "file", "file"]
    );
    wait_for(|| !orphan.alive(), "the orphan VMM to exit");
    assert!(foreign.alive(), "a VMM outside our socket dir was stopped");
    assert!(
        stranger.alive(),
        "a VMM not started by this install was stopped"
    );
    assert!(answering.exists(), "a socket with a listener was removed");
    assert!(!h.data.join("vm-ids/vm-old").exists(), "ledger entry left");
    let links = ns.links();
    assert!(
        !links.contains("tap7 ") && links.contains("tap8") && links.contains("tap99"),
        "{links}"
    );
    assert!(!ns.nft_ruleset().contains("2207"));
    assert!(!stray.exists() && !h.data.join("vm-old.log").exists());
    assert!(
        sockets.join("qmp-vm-file.sock").is_file(),
        "a regular file was removed"
    );
    assert!(h.data.join("notes.txt").is_file());
}

/// A snapshot or restore killed midway leaves its exchange folder in the socket dir, as
/// large as the guest's RAM (before, only the next snapshot of that same VM swept it).
/// Cleanup lists and removes it whatever became of the VM; not one whose process still
/// runs, another user's, one named otherwise, nor what a link of that name points to.
#[test]
fn a_killed_snapshots_exchange_folders_and_ram_sockets_are_cleaned_and_nothing_like_them() {
    require_root!();
    let (h, ns) = (Home::new(), NetNs::new());
    ns.smolvm_nft("");
    let sockets = h.sockets();
    let mut killed = Command::new("sleep").arg("1000").spawn().unwrap();
    let pid = killed.id();
    killed.kill().unwrap();
    killed.wait().unwrap();
    let mk = |name: String, owner: Option<u32>| {
        let d = sockets.join(&name);
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("mem"), vec![7u8; 1 << 20]).unwrap();
        if let Some(id) = owner {
            std::os::unix::fs::chown(&d, Some(id), Some(id)).unwrap();
        }
        name
    };
    let hex = "0123456789ab";
    let left = mk(format!(".snapshot-vm-gone-{pid}-{hex}"), None);
    // Written by an unprivileged Firecracker: the folder is its VMM id's.
    let vmms = mk(
        format!(".snapshot-vm-b-{pid}-a1b2c3d4e5f6"),
        Some(0x7E00_0005),
    );
    let running = mk(format!(".snapshot-vm-c-{}-{hex}", std::process::id()), None);
    let strangers = mk(format!(".snapshot-vm-d-{pid}-{hex}"), Some(65534));
    let odd = mk(format!(".snapshot-vm-e-{pid}-notours"), None);
    let target = mk("precious".into(), None);
    let link = format!(".snapshot-vm-f-{pid}-{hex}");
    std::os::unix::fs::symlink(sockets.join(&target), sockets.join(&link)).unwrap();
    // The control socket of a for-clone snapshot's RAM writer, named after the snapshot:
    // one a killed snapshot left (nothing listens), one in use, one not of smolvm's names.
    let dead_ram = "ram-snap-gone.sock";
    drop(UnixListener::bind(sockets.join(dead_ram)).unwrap());
    let _live_ram = UnixListener::bind(sockets.join("ram-snap-live.sock")).unwrap();
    drop(UnixListener::bind(sockets.join("ram-Snap..x.sock")).unwrap());

    let out = ns.smolvm(&h, &["cleanup", "--dry-run"]);
    let s = sockets.display();
    assert_eq!(
        stdout(&out),
        format!(
            "No matching VMs to delete.\nStale resources (3):\n  - socket {s}/{dead_ram}\n  - file {s}/{vmms} (VM vm-b)\n  - file {s}/{left} (VM vm-gone)\nDry run complete. No changes made.\n"
        )
    );
    assert!(
        sockets.join(&left).join("mem").is_file(),
        "a dry run removed"
    );
    let out = ns.smolvm(&h, &["cleanup", "--force", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(
        support::texts(&v["data"]["stale_resources"], "kind"),
        ["socket", "file", "file"],
        "{v}"
    );
    assert!(!sockets.join(&left).exists() && !sockets.join(&vmms).exists());
    assert!(!sockets.join(dead_ram).exists());
    let (live_ram, odd_ram) = ("ram-snap-live.sock".into(), "ram-Snap..x.sock".into());
    for kept in [&running, &strangers, &odd, &link, &live_ram, &odd_ram] {
        assert!(
            std::fs::symlink_metadata(sockets.join(kept)).is_ok(),
            "{kept} was removed"
        );
    }
    assert_eq!(
        std::fs::read(sockets.join(&target).join("mem")).unwrap(),
        vec![7u8; 1 << 20]
    );
    // Nothing stale is left to find.
    let out = ns.smolvm(&h, &["cleanup", "--dry-run"]);
    assert!(
        !stdout(&out).contains("Stale resources"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn partial_failure_reports_the_failed_vm_and_continues() {
    require_root!();
    let (h, ns) = (Home::new(), NetNs::new());
    support::cleanup::insert_stopped(&h, &["vm-test-1", "vm-test-2", "vm-test-3"]);
    let disks = h.data.join("disks");
    std::fs::create_dir_all(&disks).unwrap();
    let stuck = disks.join("vm-test-2.ext4");
    std::fs::write(&stuck, b"disk").unwrap();
    let Some(guard) = support::Undeletable::new(&disks) else {
        eprintln!("SKIPPED: cannot make a directory undeletable here");
        return;
    };
    let out = ns.smolvm(&h, &["cleanup", "--force"]);
    let again = ns.smolvm(&h, &["cleanup", "--force", "--json"]);
    drop(guard);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        format!(
            "Targets (3):\n  - vm-test-1\n  - vm-test-2\n  - vm-test-3\nDeleted: vm-test-1\nFailed:  vm-test-2 (Operation not permitted: cannot remove {})\nDeleted: vm-test-3\nCleanup completed with 1 failure(s).\n",
            stuck.display()
        )
    );
    let v = json(&again);
    assert_eq!(v["ok"], false);
    // SmolVM's cleanup (`run_cleanup`) says it in `failed` only: `error: null`, exit 1.
    assert_eq!(v["error"], serde_json::Value::Null, "{v}");
    assert_eq!(v["exit_code"], 1);
    assert_eq!(v["data"]["failed"][0]["vm_id"], "vm-test-2");
    assert_eq!(v["data"]["summary"]["failed_count"], 1);
    assert_eq!(row_ids(&h.data), ["vm-test-2"]);
    // Once the obstacle is gone, a rerun finishes the job.
    let out = ns.smolvm(&h, &["cleanup", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(row_ids(&h.data).is_empty());
}

#[test]
fn non_root_gets_the_warning_and_permission_failures() {
    require_root!();
    let (h, ns) = (Home::new(), NetNs::new());
    ns.nat_tap("tap2");
    insert_rows(
        &h.data,
        &h.sockets(),
        &[
            Row {
                tap: Some(("tap2", "172.16.0.2", 2200)),
                ..Row::stopped("vm-test-1")
            },
            Row::stopped("vm-test-2"),
        ],
    );
    let _ = Command::new("chmod")
        .args(["-R", "a+rwX"])
        .arg(h.tmp.path())
        .status();
    let mut c = Command::new("ip");
    c.args([
        "netns",
        "exec",
        &ns.name,
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
    ])
    .arg(assert_cmd::cargo::cargo_bin("smolvm"))
    .args(["cleanup", "--force"])
    .env_clear()
    .envs(h.env_vars());
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with(
            "Warning: not running as root. Cleanup may fail for TAP/nftables resources.\n"
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        stdout(&out),
        "Targets (2):\n  - vm-test-1\n  - vm-test-2\nFailed:  vm-test-1 (Permission denied: cannot delete TAP device tap2)\nDeleted: vm-test-2\nCleanup completed with 1 failure(s).\n"
    );
    assert!(ns.links().contains("tap2"));
    assert_eq!(row_ids(&h.data), ["vm-test-1"]);
}

#[test]
fn fake_firecracker_is_stopped_through_its_api_and_a_stubborn_one_by_signals() {
    require_root!();
    let (h, ns) = (Home::new(), NetNs::new());
    let sockets = h.sockets();
    let mut polite = fake_firecracker(&sockets, "vm-fc-polite", false);
    let mut stubborn = fake_firecracker(&sockets, "vm-fc-stubborn", true);
    insert_rows(
        &h.data,
        &sockets,
        &[
            Row {
                status: "running",
                pid: Some(polite.id() as i32),
                backend: "firecracker",
                ..Row::stopped("vm-fc-polite")
            },
            Row {
                status: "running",
                pid: Some(stubborn.id() as i32),
                backend: "firecracker",
                ..Row::stopped("vm-fc-stubborn")
            },
        ],
    );
    let out = ns
        .cmd(&h, "smolvm")
        .env("SMOLVM_STOP_TIMEOUT", "2")
        .args(["cleanup", "--force"])
        .output()
        .unwrap();
    support::assert_code(&out, 0);
    let polite_status = polite.wait().unwrap();
    assert_eq!(
        polite_status.code(),
        Some(0),
        "polite VMM should exit on SendCtrlAltDel"
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(stubborn.wait().unwrap().signal(), Some(libc::SIGKILL));
    assert!(row_ids(&h.data).is_empty());
    assert!(!sockets.join("fc-vm-fc-stubborn.sock").exists());
}

/// The real Firecracker binary (`SMOLVM_FIRECRACKER_BIN`, which `.ci/run` exports): a
/// started VMM on a TAP of its own, its row running. Deleting it goes through the API
/// first (SendCtrlAltDel, which a PVM host's guest never honours), then signals; the
/// process is gone and so are its socket (Firecracker leaves it behind), its TAP and its
/// row. Skips loudly only when no binary is configured; a configured one must exist.
#[test]
fn real_firecracker_is_stopped_and_its_socket_tap_and_row_removed() {
    require_root!();
    let Some(bin) = std::env::var_os("SMOLVM_FIRECRACKER_BIN").map(std::path::PathBuf::from) else {
        eprintln!("SKIPPED (LOUDLY): SMOLVM_FIRECRACKER_BIN is not set; the real Firecracker binary was not exercised");
        return;
    };
    assert!(
        bin.is_file(),
        "SMOLVM_FIRECRACKER_BIN={} does not exist",
        bin.display()
    );
    let (h, ns) = (Home::new(), NetNs::new());
    let sockets = h.sockets();
    ns.smolvm_nft("");
    ns.nat_tap("tap2");
    ns.ssh_forward("tap2", "172.16.0.2", 2200);
    let socket = sockets.join("fc-vm-real-fc.sock");
    let log = h.tmp.path().join("fc.log");
    let mut child = ns.firecracker(&bin, &socket, Some(&log));
    wait_for(|| socket.exists(), "the Firecracker API socket");
    // Configure and start it through the driver: a configuration error comes back as
    // Firecracker's own words, then a valid configuration starts the VM.
    let (_, vmlinux) = support::images::kernel();
    let rt = tokio::runtime::Runtime::new().unwrap();
    use smolvm::sys::vmm::firecracker as fc;
    rt.block_on(async {
        let mut cfg = fc::FcConfig {
            kernel: "/nonexistent/vmlinux".into(),
            boot_args: "console=ttyS0 reboot=k panic=1 pci=off".into(),
            vcpus: 1,
            mem_mib: 128,
            rootfs: "/nonexistent/rootfs.ext4".into(),
            tap: "tap2".into(),
            mac: "AA:FC:00:00:00:02".into(),
        };
        let err = fc::configure_and_start(&socket, &cfg, Duration::from_secs(10))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Boot source error: The kernel file cannot be opened: No such file or directory (os error 2)"),
            "{err}"
        );
        cfg.kernel = vmlinux.clone();
        cfg.rootfs = support::images::busybox_rootfs(support::images::Init::Ready);
        fc::configure_and_start(&socket, &cfg, Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("{e}\nlog: {}", std::fs::read_to_string(&log).unwrap_or_default()));
    });
    assert!(
        child.try_wait().unwrap().is_none(),
        "Firecracker exited early"
    );
    insert_rows(
        &h.data,
        &sockets,
        &[Row {
            status: "running",
            pid: Some(child.id() as i32),
            backend: "firecracker",
            tap: Some(("tap2", "172.16.0.2", 2200)),
            ..Row::stopped("vm-real-fc")
        }],
    );
    // `ip netns exec` execs: the child's pid is Firecracker's own.
    let out = ns
        .cmd(&h, "smolvm")
        .args([
            "sandbox",
            "delete",
            "vm-real-fc",
            "--timeout",
            "2",
            "--json",
        ])
        .output()
        .unwrap();
    support::assert_code(&out, 0);
    let st = child.wait().unwrap();
    assert!(
        !st.success(),
        "Firecracker should have been signalled: {st:?}"
    );
    assert!(!socket.exists(), "the API socket was left behind");
    assert!(!ns.links().contains("tap2"), "{}", ns.links());
    assert!(!ns.nft_ruleset().contains("2200"), "{}", ns.nft_ruleset());
    assert!(row_ids(&h.data).is_empty());
}

#[test]
fn garbage_and_truncated_databases_are_moved_aside_and_rebuilt_from_live_vmms() {
    require_root!();
    for (label, content) in [
        (
            "garbage",
            b"definitely not sqlite, just garbage bytes ...".to_vec(),
        ),
        ("truncated", {
            // A real multi-page SmolVM database cut to a third of its length.
            let t = tempfile::tempdir().unwrap();
            let ids: Vec<String> = (0..40).map(|i| format!("vm-x-{i}")).collect();
            let rows: Vec<Row> = ids.iter().map(|id| Row::stopped(id)).collect();
            insert_rows(t.path(), t.path(), &rows);
            let bytes = std::fs::read(t.path().join("smolvm.db")).unwrap();
            bytes[..bytes.len() / 3].to_vec()
        }),
    ] {
        let (h, ns) = (Home::new(), NetNs::new());
        h.sockets();
        std::fs::create_dir_all(&h.data).unwrap();
        std::fs::write(h.data.join("smolvm.db"), &content).unwrap();
        let mut auto = QemuStandIn::started_here(&ns, &h, "vm-auto", None);
        let mut prod = QemuStandIn::started_here(&ns, &h, "prod-db", None);
        let out = ns.smolvm(&h, &["cleanup", "--force"]);
        assert_eq!(out.status.code(), Some(0), "{label}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("was corrupt") && stderr(&out).contains("smolvm.db.corrupt-"),
            "{label}: {}",
            stderr(&out)
        );
        assert_eq!(
            stdout(&out),
            "Targets (1):\n  - vm-auto\nDeleted: vm-auto\nCleanup complete.\n",
            "{label}"
        );
        let backups: Vec<_> = std::fs::read_dir(&h.data)
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("smolvm.db.corrupt-")
            })
            .collect();
        assert_eq!(backups.len(), 1, "{label}");
        assert_eq!(
            std::fs::read(backups[0].path()).unwrap(),
            content,
            "{label}: backup altered"
        );
        wait_for(|| !auto.alive(), "vm-auto to stop");
        assert!(
            prod.alive(),
            "{label}: a live VM outside the prefix was killed"
        );
        assert_eq!(
            row_ids(&h.data),
            ["prod-db"],
            "{label}: live VM not re-registered"
        );
    }
}

/// A corrupt database found by a command that is not cleanup (here a `sandbox stop` of a
/// mistyped id) is left where it is, with the fix: it used to be moved aside and a new
/// one started, so the next cleanup found the running sandboxes in no database and
/// stopped them as orphans. Cleanup, which adopts them into the database it starts anew,
/// then keeps the sandbox outside its prefix running.
#[test]
fn a_corrupt_database_is_left_for_cleanup_which_keeps_the_running_sandboxes() {
    require_root!();
    let (h, ns) = (Home::new(), NetNs::new());
    h.sockets();
    std::fs::create_dir_all(&h.data).unwrap();
    let garbage = b"definitely not sqlite, just garbage bytes ...".to_vec();
    std::fs::write(h.data.join("smolvm.db"), &garbage).unwrap();
    let mut prod = QemuStandIn::started_here(&ns, &h, "prod-db", None);
    let out = ns.smolvm(&h, &["sandbox", "stop", "typo", "--json"]);
    let v = json(&out);
    assert_eq!(out.status.code(), Some(1), "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("is corrupt"), "{v}");
    assert!(
        v["error"]["recovery"]
            .as_str()
            .unwrap_or_default()
            .contains("smolvm cleanup --force"),
        "{v}"
    );
    assert_eq!(std::fs::read(h.data.join("smolvm.db")).unwrap(), garbage);
    let out = ns.smolvm(&h, &["cleanup", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        prod.alive(),
        "cleanup stopped a running sandbox: {}",
        stdout(&out)
    );
    assert_eq!(row_ids(&h.data), ["prod-db"]);
}

#[test]
fn two_cleanups_at_once_each_vm_deleted_once() {
    require_root!();
    let (h, ns) = (Home::new(), NetNs::new());
    let sockets = h.sockets();
    let ids: Vec<String> = (0..6).map(|i| format!("vm-par-{i}")).collect();
    let mut vmms: Vec<QemuStandIn> = ids
        .iter()
        .map(|id| QemuStandIn::start(&ns, &sockets, id, None))
        .collect();
    let rows: Vec<Row> = ids
        .iter()
        .zip(&vmms)
        .map(|(id, v)| Row {
            status: "running",
            pid: Some(v.pid()),
            ..Row::stopped(id)
        })
        .collect();
    insert_rows(&h.data, &sockets, &rows);
    let spawn = || {
        let mut c = ns.smolvm_command(&h, &["cleanup", "--force", "--json"]);
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c.spawn().unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert_eq!(
        (a.status.code(), b.status.code()),
        (Some(0), Some(0)),
        "{}{}",
        stderr(&a),
        stderr(&b)
    );
    let deleted = |o: &std::process::Output| -> Vec<String> {
        json(o)["data"]["deleted"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let mut all = deleted(&a);
    all.extend(deleted(&b));
    all.sort();
    assert_eq!(all, ids, "each VM deleted exactly once");
    assert!(row_ids(&h.data).is_empty());
    for v in &mut vmms {
        wait_for(|| !v.alive(), "a VMM to stop");
    }
}

#[test]
fn cleanup_killed_midway_is_finished_by_a_rerun() {
    require_root!();
    let (h, ns) = (Home::new(), NetNs::new());
    let sockets = h.sockets();
    ns.smolvm_nft("");
    let mut vmms = Vec::new();
    let mut rows_owned = Vec::new();
    for i in 0..4u16 {
        let tap = format!("tap{}", 10 + i);
        let ip = format!("172.16.0.{}", 10 + i);
        ns.nat_tap(&tap);
        ns.ssh_forward(&tap, &ip, 2210 + i);
        vmms.push(fake_firecracker(&sockets, &format!("vm-kill-{i}"), true));
        rows_owned.push((format!("vm-kill-{i}"), tap, ip, 2210 + i));
    }
    let rows: Vec<Row> = rows_owned
        .iter()
        .zip(&vmms)
        .map(|((id, tap, ip, port), c)| Row {
            status: "running",
            pid: Some(c.id() as i32),
            tap: Some((tap, ip, *port)),
            backend: "firecracker",
            ..Row::stopped(id)
        })
        .collect();
    insert_rows(&h.data, &sockets, &rows);
    // Serial, slow stops (each VMM ignores SIGTERM): kill the cleanup in the middle.
    let mut c = ns.smolvm_command(&h, &["cleanup", "--force"]);
    c.env("SMOLVM_STOP_TIMEOUT", "2")
        .env("SMOLVM_CLEANUP_PARALLEL", "1")
        .stdout(std::process::Stdio::piped());
    let mut first = c.spawn().unwrap();
    wait_for(|| row_ids(&h.data).len() < 4, "the first VM to be deleted");
    // `ip netns exec` execs the binary, so this kills smolvm itself.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    first.wait().unwrap();
    let left = row_ids(&h.data).len();
    assert!(
        (1..4).contains(&left),
        "cleanup was not interrupted midway ({left} rows left)"
    );

    let out = ns
        .cmd(&h, "smolvm")
        .env("SMOLVM_STOP_TIMEOUT", "2")
        .args(["cleanup", "--force"])
        .output()
        .unwrap();
    support::assert_code(&out, 0);
    for v in &mut vmms {
        let _ = v.wait();
    }
    assert!(row_ids(&h.data).is_empty());
    let links = ns.links();
    assert!(!links.contains("tap1"), "{links}");
    let rules = ns.nft_ruleset();
    assert!(
        !rules.contains("172.16.0.1") && !rules.contains("221"),
        "{rules}"
    );
    assert_eq!(std::fs::read_dir(&sockets).unwrap().count(), 0);
}

#[test]
fn standalone_script_behaves_like_the_subcommand() {
    require_root!();
    let (h, ns) = (Home::new(), NetNs::new());
    seed_rows(&h);
    let a = ns.smolvm(&h, &["cleanup", "--dry-run", "--json"]);
    let b = ns
        .cmd(&h, "smolvm-cleanup")
        .args(["--dry-run", "--json"])
        .output()
        .unwrap();
    assert_eq!(json(&a), json(&b));
    assert_eq!(
        json(&a)["data"]["targets"],
        serde_json::json!(["vm-12345", "vm-test-1", "vm-demo"])
    );
    let out = ns
        .cmd(&h, "smolvm-cleanup")
        .args(["--bogus", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(json(&out)["error"]["code"], "usage_error");
    assert_eq!(json(&out)["command"], "cleanup");
}

#[test]
fn a_database_locked_by_another_process_is_a_clear_error_and_nothing_changes() {
    require_root!();
    let (h, ns) = (Home::new(), NetNs::new());
    seed_rows(&h);
    let db = h.data.join("smolvm.db");
    let holder = rusqlite::Connection::open(&db).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let out = ns
        .cmd(&h, "smolvm")
        .env("SMOLVM_DB_BUSY_TIMEOUT", "0.5")
        .args(["cleanup", "--force"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "Error: state database {} is locked by another process (waited 0.5 s); try again when it finishes\n",
            db.display()
        )
    );
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    assert_eq!(row_ids(&h.data).len(), 5, "rows changed despite the lock");
}

// ---- `sandbox delete` / `sandbox stop` and the dashboard's `d` / `s`: one operation ----

/// The dashboard's half of the comparisons below, run by them in a child process inside
/// their network namespace: the real `App::update` and `Workers`, keys `/ <id> Enter`, then
/// `<key> y`, driven until the task finishes; prints the finished task.
#[test]
#[ignore = "the dashboard half of the delete/stop comparisons; they run it in their namespace"]
fn dashboard_face() {
    use smolvm::tui::app::{App, Effect, Input, Msg, TaskState};
    use smolvm::tui::keymap::Keymap;
    use smolvm::tui::theme::Theme;
    let Ok(spec) = std::env::var("SMOLVM_TEST_DASHBOARD") else {
        return;
    };
    let (k, id) = spec.split_once(':').unwrap();
    let k = k.chars().next().unwrap();
    let press = |c: char| {
        Input::Key(crossterm::event::KeyEvent::new(
            crossterm::event::KeyCode::Char(c),
            crossterm::event::KeyModifiers::NONE,
        ))
    };
    let env = smolvm::sys::env::Env::from_process();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut workers =
            smolvm::tui::worker::Workers::new(tx, smolvm::core::context::Context::local(&env));
        let mut a = App::new(Keymap::defaults(), Theme::defaults(true), false);
        a.update(Input::Resize(160, 48));
        workers.run(Effect::Refresh { slow: false });
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        macro_rules! next {
            () => {
                tokio::time::timeout_at(deadline, rx.recv())
                    .await
                    .expect("worker answered")
                    .unwrap()
            };
        }
        loop {
            let msg = next!();
            let snap = matches!(msg, Msg::Readout(_));
            a.update(Input::Msg(msg));
            if snap && a.vm_view().iter().any(|v| v.info.id == id) {
                break;
            }
        }
        a.update(press('/'));
        for c in id.chars() {
            a.update(press(c));
        }
        a.update(Input::Key(crossterm::event::KeyEvent::new(
            crossterm::event::KeyCode::Enter,
            crossterm::event::KeyModifiers::NONE,
        )));
        assert_eq!(a.selected_vm().map(|v| v.info.id.as_str()), Some(id));
        a.update(press(k));
        let fx = a.update(press('y'));
        assert_eq!(fx.len(), 1, "{fx:?}");
        for f in fx {
            workers.run(f);
        }
        while a
            .data
            .tasks
            .first()
            .is_none_or(|t| t.state == TaskState::Running)
        {
            let msg = next!();
            for f in a.update(Input::Msg(msg)) {
                if !matches!(f, Effect::Refresh { .. } | Effect::LoadLog(_)) {
                    workers.run(f);
                }
            }
        }
        let t = &a.data.tasks[0];
        println!("TASK {:?} {:?} {:?}", t.state, t.summary, t.items);
    });
}

/// Run the dashboard's `key` on VM `id` ([`dashboard_face`]) inside `ns`; its task line and
/// how long it took.
fn dashboard(
    ns: &NetNs,
    h: &Home,
    key: char,
    id: &str,
    env: &[(&str, &str)],
) -> (String, std::time::Duration) {
    let t0 = std::time::Instant::now();
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(std::env::current_exe().unwrap())
        .args(["dashboard_face", "--exact", "--ignored", "--nocapture"])
        .env_clear()
        .envs(h.env_vars())
        .envs(env.iter().copied())
        .env("SMOLVM_TEST_DASHBOARD", format!("{key}:{id}"))
        .output()
        .unwrap();
    let took = t0.elapsed();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let task = stdout(&out)
        .lines()
        .find(|l| l.starts_with("TASK "))
        .unwrap_or_else(|| panic!("no task line in:\n{}", stdout(&out)))
        .to_string();
    (task, took)
}

/// What is left of VM `id` (its TAP, guest IP and SSH port as `net`): process, TAP, nft
/// entries, control socket, log, disk, row. Empty when the teardown was complete.
fn leftovers(
    h: &Home,
    ns: &NetNs,
    vm: &mut QemuStandIn,
    id: &str,
    net: (&str, &str, u16),
) -> Vec<String> {
    let mut left = Vec::new();
    let start = std::time::Instant::now();
    while vm.alive() && start.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    if vm.alive() {
        left.push("process".to_string());
    }
    if ns.links().split_whitespace().any(|l| l == net.0) {
        left.push("tap".into());
    }
    let rules = ns.nft_ruleset();
    for s in [
        net.2.to_string(),
        net.1.to_string(),
        format!("\"{}\"", net.0),
        format!("smolvm:{id}:"),
    ] {
        if rules.contains(&s) {
            left.push(format!("nft {s}"));
        }
    }
    if vm.socket.exists() {
        left.push("socket".into());
    }
    for f in [format!("{id}.log"), format!("disks/{id}.ext4")] {
        if h.data.join(&f).exists() {
            left.push(f);
        }
    }
    if row_ids(&h.data).iter().any(|r| r == id) {
        left.push("row".into());
    }
    left
}

#[test]
fn dashboard_delete_and_cli_delete_tear_down_the_same() {
    require_root!();
    let (h, ns) = (Home::new(), NetNs::new());
    let nets = [
        ("vm-cli", ("tap2", "172.16.0.2", 2200u16)),
        ("vm-tui", ("tap3", "172.16.0.3", 2201u16)),
        ("vm-keep", ("tap4", "172.16.0.4", 2202u16)),
    ];
    let mut extra = String::new();
    for (id, (_, ip, _)) in &nets {
        extra.push_str(&format!(
            "add rule ip smolvm_nat output ip daddr 127.0.0.1/32 tcp dport 8080 counter dnat to {ip}:80 comment \"smolvm:{id}:local:8080:80\"\n"
        ));
    }
    ns.smolvm_nft(&extra);
    let mut vms = Vec::new();
    let mut rows = Vec::new();
    std::fs::create_dir_all(h.data.join("disks")).unwrap();
    for (id, (tap, ip, port)) in &nets {
        ns.nat_tap(tap);
        ns.ssh_forward(tap, ip, *port);
        vms.push(QemuStandIn::started_here(&ns, &h, id, Some(tap)));
        std::fs::write(h.data.join(format!("disks/{id}.ext4")), b"disk").unwrap();
    }
    for ((id, (tap, ip, port)), vm) in nets.iter().zip(&vms) {
        rows.push(Row {
            status: "running",
            pid: Some(vm.pid()),
            tap: Some((tap, ip, *port)),
            ..Row::stopped(id)
        });
    }
    insert_rows(&h.data, &h.sockets(), &rows);

    let out = ns.smolvm(&h, &["sandbox", "delete", "vm-cli"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "Deleted: vm-cli\n");
    let (task, _) = dashboard(&ns, &h, 'd', "vm-tui", &[]);
    assert!(task.starts_with("TASK Done"), "{task}");
    assert!(task.contains("\"vm-tui\""), "{task}");

    let [cli, tui, keep] = &mut vms[..] else {
        unreachable!()
    };
    let cli_left = leftovers(&h, &ns, cli, "vm-cli", nets[0].1);
    let tui_left = leftovers(&h, &ns, tui, "vm-tui", nets[1].1);
    assert_eq!(cli_left, tui_left, "the two faces tore down differently");
    assert!(cli_left.is_empty(), "left behind: {cli_left:?}");
    let kept = leftovers(&h, &ns, keep, "vm-keep", nets[2].1);
    for part in [
        "process",
        "tap",
        "socket",
        "row",
        "vm-keep.log",
        "disks/vm-keep.ext4",
    ] {
        assert!(
            kept.iter().any(|k| k == part),
            "vm-keep lost its {part}: {kept:?}"
        );
    }
}

#[test]
fn dashboard_and_cli_stop_and_delete_honour_smolvm_stop_timeout() {
    require_root!();
    let (h, ns) = (Home::new(), NetNs::new());
    let sockets = h.sockets();
    let ids = ["vm-cli-stop", "vm-tui-stop", "vm-cli-del", "vm-tui-del"];
    let mut children: Vec<_> = ids
        .iter()
        .map(|id| fake_firecracker(&sockets, id, true))
        .collect();
    let rows: Vec<Row> = ids
        .iter()
        .zip(&children)
        .map(|(id, c)| Row {
            status: "running",
            pid: Some(c.id() as i32),
            backend: "firecracker",
            ..Row::stopped(id)
        })
        .collect();
    insert_rows(&h.data, &sockets, &rows);
    let timeout = [("SMOLVM_STOP_TIMEOUT", "2")];
    let cli = |args: &[&str]| {
        let t0 = std::time::Instant::now();
        let out = ns
            .cmd(&h, "smolvm")
            .envs(timeout)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        t0.elapsed()
    };
    let took = [
        cli(&["sandbox", "stop", "vm-cli-stop"]),
        dashboard(&ns, &h, 's', "vm-tui-stop", &timeout).1,
        cli(&["sandbox", "delete", "vm-cli-del"]),
        dashboard(&ns, &h, 'd', "vm-tui-del", &timeout).1,
    ];
    use std::os::unix::process::ExitStatusExt;
    for (c, id) in children.iter_mut().zip(ids) {
        assert_eq!(c.wait().unwrap().signal(), Some(libc::SIGKILL), "{id}");
    }
    // A stubborn VMM is killed within the 2 s budget (about 1.5 s in), not the 10 s
    // default's 7.5 s, by either face.
    for (t, id) in took.iter().zip(ids) {
        assert!(
            (1.0..5.0).contains(&t.as_secs_f64()),
            "{id}: took {t:?} with SMOLVM_STOP_TIMEOUT=2 ({took:?})"
        );
    }
    assert_eq!(row_ids(&h.data), ["vm-cli-stop", "vm-tui-stop"]);
}

/// A teardown that fails keeps its error code: `sandbox delete --json` and `cleanup
/// --json` list the failed VM with `code` next to `error` (the console log's place holds a
/// directory, which teardown never removes), and the row stays for a later run.
#[test]
fn a_teardown_failure_keeps_its_error_code_in_the_json() {
    let h = Home::new();
    let disk = h.tmp.path().join("rootfs.ext4");
    for id in ["vm-tear-del", "vm-tear-clean"] {
        // The console log's place holds a directory (this makes the data dir too).
        std::fs::create_dir_all(h.data.join(format!("{id}.log/inside"))).unwrap();
        std::fs::write(&disk, b"x").unwrap();
        support::smolvm_db_with_vm(&h.data.join("smolvm.db"), id, "stopped", &disk, &disk);
    }
    let check = |out: &std::process::Output, id: &str, command: &str| {
        assert_eq!(out.status.code(), Some(1), "{command}: {}", stderr(out));
        let v = json(out);
        assert_eq!(v["ok"], false, "{command}: {v}");
        // SmolVM's `sandbox delete` and cleanup say it in `failed` only (`error: null`).
        assert_eq!(v["error"], serde_json::Value::Null, "{command}: {v}");
        assert_eq!(v["data"]["summary"]["failed_count"], 1, "{command}: {v}");
        let failed = v["data"]["failed"].as_array().expect("failed list");
        assert_eq!(failed.len(), 1, "{command}: {v}");
        assert_eq!(failed[0]["vm_id"], id, "{command}: {v}");
        assert_eq!(failed[0]["code"], "runtime_error", "{command}: {v}");
        let error = failed[0]["error"].as_str().unwrap();
        assert!(error.contains("not a regular file"), "{command}: {error}");
    };
    let out = h.run(&["sandbox", "delete", "vm-tear-del", "--json"]);
    check(&out, "vm-tear-del", "sandbox delete");
    let out = h.run(&["cleanup", "--prefix", "vm-tear-clean", "--force", "--json"]);
    check(&out, "vm-tear-clean", "cleanup");
    for id in ["vm-tear-del", "vm-tear-clean"] {
        assert!(h.data.join(format!("{id}.log/inside")).is_dir(), "{id}");
    }
}

/// As plain root the real run uses the system data dir (SmolVM's preference, here
/// `SMOLVM_SYSTEM_DATA_DIR`); the dry run must look at the same one. With a corrupt DB only
/// in the user's state dir, the dry run used to say "a real run moves it aside" although
/// the real run never opens it.
#[test]
fn a_dry_run_as_root_looks_at_the_data_dir_the_real_run_uses() {
    require_root!();
    let h = Home::new();
    let user_state = h.home.join(".local/state/smolvm");
    std::fs::create_dir_all(&user_state).unwrap();
    let garbage = b"definitely not sqlite, just garbage bytes ...".to_vec();
    std::fs::write(user_state.join("smolvm.db"), &garbage).unwrap();
    let run = |args: &[&str]| {
        h.smolvm()
            .env_remove("SMOLVM_DATA_DIR")
            .args(args)
            .output()
            .unwrap()
    };
    let dry = run(&["cleanup", "--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", stderr(&dry));
    assert!(
        !stderr(&dry).contains("corrupt"),
        "the dry run speaks of a database the real run does not use: {}",
        stderr(&dry)
    );
    let real = run(&["cleanup", "--force"]);
    assert_eq!(real.status.code(), Some(0), "{}", stderr(&real));
    assert!(!stderr(&real).contains("corrupt"), "{}", stderr(&real));
    assert_eq!(
        std::fs::read(user_state.join("smolvm.db")).unwrap(),
        garbage,
        "the user's database was touched"
    );
    assert!(h.tmp.path().join("system-state/smolvm.db").is_file());
}

/// A second cleanup (or `sandbox delete --all`) waits for the one that holds the cleanup
/// lock at most `SMOLVM_LOCK_TIMEOUT`, as every other operation waits for a lock, then
/// fails `busy` (exit 1) naming the holder: it used to wait as long as the holder lived,
/// printing nothing (a dashboard's run, or a stuck one, hung every script behind it).
#[test]
fn a_cleanup_behind_another_waits_its_lock_timeout_then_is_busy() {
    require_root!();
    let (h, ns) = (Home::new(), NetNs::new());
    seed_rows(&h);
    let db = std::fs::read(h.data.join("smolvm.db")).unwrap();
    let lock = h.data.join("cleanup.lock");
    // `-o`: the lock is flock's own, not its child's, so killing flock lets it go.
    let mut holder = Command::new("flock")
        .arg("-o")
        .arg(&lock)
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    wait_for(
        || {
            std::fs::read_to_string("/proc/locks")
                .unwrap_or_default()
                .contains(&format!(" {} ", holder.id()))
        },
        "flock to hold the cleanup lock",
    );
    for args in [
        &["cleanup", "--force", "--json"][..],
        &["sandbox", "delete", "--all", "--force", "--json"],
    ] {
        let mut c = ns.smolvm_command(&h, args);
        c.env("SMOLVM_LOCK_TIMEOUT", "1");
        let out = c.output().unwrap();
        let v = json(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {v}");
        assert_eq!(v["error"]["code"], "busy", "{args:?}: {v}");
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        assert!(
            msg.starts_with("Cleanup is busy: ")
                && msg.contains(&format!("(pid {})", holder.id()))
                && msg.ends_with("(waited 1 s)"),
            "{args:?}: {msg}"
        );
    }
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(
        std::fs::read(h.data.join("smolvm.db")).unwrap(),
        db,
        "a busy cleanup changed the database"
    );
    // Once it is free, the next one runs.
    let out = ns.smolvm(&h, &["cleanup", "--force", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
