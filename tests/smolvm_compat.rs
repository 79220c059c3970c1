//! A co-installed SmolVM 0.0.36 and smolvm share one state database: what smolvm writes in
//! `vms.config` is SmolVM's `VMConfig` (its keys and spellings only — SmolVM refuses any
//! other key), smolvm's own extras live in a table SmolVM never reads, and a row SmolVM
//! wrote loads here. Checked against SmolVM's own code (its CLI and its state layer).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::cleanup::NetNs;
use support::{json, Home};

/// SmolVM 0.0.36's CLI (`smolvm` of its venv) on this home's data dir; (exit code, stdout,
/// stderr).
fn smolvm_py(h: &Home, args: &[&str]) -> (i32, String, String) {
    support::smolvm_py::cli(h.env_vars(), args)
}

fn kernel_and_rootfs(h: &Home) -> (PathBuf, PathBuf) {
    let k = h.tmp.path().join("kernel");
    let r = h.tmp.path().join("rootfs.ext4");
    std::fs::write(&k, b"not a kernel").unwrap();
    std::fs::write(&r, vec![0u8; 4096]).unwrap();
    (k, r)
}

/// Run SmolVM 0.0.36's Python `code` to write its state database `db`: its arguments are
/// the database, the kernel, the rootfs, then `extra`.
fn smolvm_writes(code: &str, db: &Path, (k, r): (&Path, &Path), extra: &[&str]) {
    let mut args = vec![
        db.to_str().unwrap(),
        k.to_str().unwrap(),
        r.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    support::smolvm_py::run(code, &args);
}

#[test]
fn smolvm_0_0_36_lists_and_inspects_a_sandbox_smolvm_created() {
    require_root!("(network namespaces)");
    let h = Home::new();
    std::fs::create_dir_all(&h.data).unwrap();
    let ns = NetNs::with_uplink();
    let (k, r) = kernel_and_rootfs(&h);
    let out = ns
        .cmd(&h, "smolvm")
        .args(["sandbox", "create", "--kernel"])
        .arg(&k)
        .arg("--rootfs")
        .arg(&r)
        .args([
            "--name",
            "vm-compat",
            "--backend",
            "qemu",
            "--accel",
            "tcg",
            "--memory",
            "384",
            "--cpus",
            "3",
            "--no-start",
            "--json",
        ])
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    support::assert_code(&out, 0);

    // The stored config holds SmolVM's keys only.
    let config = support::stored_config(&h.data, "vm-compat");
    assert_eq!(config["memory"], 384, "{config}");
    assert_eq!(config["vcpu_count"], 3, "{config}");
    for key in [
        "mem_size_mib",
        "accel",
        "boot_timeout",
        "source_rootfs_path",
    ] {
        assert!(config.get(key).is_none(), "{key} in {config}");
    }

    let (code, stdout, stderr) = smolvm_py(&h, &["sandbox", "list", "--all", "--json"]);
    assert_eq!(code, 0, "SmolVM's list failed:\n{stdout}\n{stderr}");
    let list: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let vms = list["data"]["vms"].as_array().expect("vms");
    let vm = vms
        .iter()
        .find(|v| v["name"] == "vm-compat")
        .unwrap_or_else(|| panic!("vm-compat not in {list}"));
    assert_eq!(vm["status"], "created", "{vm}");

    let (code, stdout, stderr) = smolvm_py(&h, &["sandbox", "info", "vm-compat", "--json"]);
    assert_eq!(code, 0, "SmolVM's info failed:\n{stdout}\n{stderr}");
    let info: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(info["data"]["vm"]["memory"], 384, "{info}");
    assert_eq!(info["data"]["vm"]["vcpus"], 3, "{info}");

    // smolvm still reads its own row whole (its extras from its own table).
    let ours = json(&ns.smolvm(&h, &["sandbox", "info", "vm-compat", "--json"]));
    assert_eq!(ours["data"]["config"]["memory"], 384, "{ours}");
    assert_eq!(ours["data"]["config"]["vcpu_count"], 3, "{ours}");
    // ... and shows them: the image its disk came from, the accelerator it was made with.
    assert_eq!(
        ours["data"]["smolvm"]["source_rootfs_path"],
        r.display().to_string(),
        "{ours}"
    );
    assert_eq!(ours["data"]["smolvm"]["accel"], "tcg", "{ours}");
    let _ = ns.smolvm(&h, &["sandbox", "delete", "vm-compat", "--force", "--json"]);
}

#[test]
fn a_row_smolvm_0_0_36_wrote_loads_in_smolvm() {
    let h = Home::new();
    std::fs::create_dir_all(&h.data).unwrap();
    let (k, r) = kernel_and_rootfs(&h);
    let code = r#"
import sys
from pathlib import Path
from smolvm.cli.state import create_cli_state_manager
from smolvm.types import VMConfig
m = create_cli_state_manager(Path(sys.argv[1]))
m.create_vm(VMConfig(vm_id="vm-theirs", vcpu_count=3, memory=640,
    kernel_path=Path(sys.argv[2]), rootfs_path=Path(sys.argv[3]), backend="qemu"))
"#;
    smolvm_writes(code, &h.data.join("smolvm.db"), (&k, &r), &[]);
    let out = h
        .smolvm()
        .args(["sandbox", "info", "vm-theirs", "--json"])
        .output()
        .unwrap();
    let v = json(&out);
    assert_eq!(v["data"]["config"]["memory"], 640, "{v}");
    assert_eq!(v["data"]["config"]["vcpu_count"], 3, "{v}");
    assert_eq!(v["data"]["status"], "created", "{v}");
    // And SmolVM still reads it after smolvm opened the database (its own tables added).
    let (code, stdout, stderr) = smolvm_py(&h, &["sandbox", "info", "vm-theirs", "--json"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
}

// ---------------------------------------------------------------------------------------
// SmolVM's JSON at SmolVM's paths: both CLIs, one fixture, key by key.
// ---------------------------------------------------------------------------------------

/// The fixture state dir, written once per test through SmolVM 0.0.36's own state layer:
/// `vm-stopped` (stopped, with a NAT lease: IP, TAP, SSH port, and one disk snapshot),
/// `vm-dead` and `vm-a-dead` (marked running, their process gone), `vm-created` (never
/// started), `vm-errored` (already in `error`).
fn smolvm_fixture(h: &Home) -> PathBuf {
    let template = h.tmp.path().join("fixture-state");
    std::fs::create_dir_all(&template).unwrap();
    let (k, r) = kernel_and_rootfs(h);
    // A pid that surely names no process: a child that has been reaped.
    let mut child = Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    let code = r#"
import sys
from datetime import datetime, timezone
from pathlib import Path
from smolvm.cli.state import create_cli_state_manager
from smolvm.types import (VMConfig, VMState, NetworkConfig, SnapshotInfo,
    SnapshotArtifacts, SnapshotType)
db, kernel, rootfs, dead_pid = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
m = create_cli_state_manager(db)
def cfg(n):
    return VMConfig(vm_id=n, vcpu_count=2, memory=512, kernel_path=kernel,
        rootfs_path=rootfs, backend="qemu")
net = NetworkConfig(guest_ip="172.16.0.5", gateway_ip="172.16.0.1", netmask="255.255.255.0",
    tap_device="tap5", guest_mac="02:00:00:00:00:05", ssh_host_port=2205)
m.create_vm(cfg("vm-stopped"))
m.update_vm("vm-stopped", status=VMState.STOPPED, network=net)
m.create_vm(cfg("vm-dead"))
m.update_vm("vm-dead", status=VMState.RUNNING, pid=dead_pid)
m.create_vm(cfg("vm-created"))
m.create_vm(cfg("vm-a-dead"))
m.update_vm("vm-a-dead", status=VMState.RUNNING, pid=dead_pid)
m.create_vm(cfg("vm-errored"))
m.update_vm("vm-errored", status=VMState.ERROR)
m.create_snapshot(SnapshotInfo(snapshot_id="snap-one", vm_id="vm-stopped", backend="qemu",
    artifacts=SnapshotArtifacts(disk_path=db.parent / "snap-one.qcow2"),
    vm_config=cfg("vm-stopped"), network_config=net,
    created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
    snapshot_type=SnapshotType.DISK))
m.close()
"#;
    smolvm_writes(
        code,
        &template.join("smolvm.db"),
        (&k, &r),
        &[&dead_pid.to_string()],
    );
    template
}

/// A fresh copy of the fixture as this home's state dir (each CLI gets its own: SmolVM's
/// list writes its reconciliation back).
fn reset_state(h: &Home, template: &PathBuf) {
    let _ = std::fs::remove_dir_all(&h.data);
    std::fs::create_dir_all(&h.data).unwrap();
    for e in std::fs::read_dir(template).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), h.data.join(e.file_name())).unwrap();
    }
}

/// One document from a CLI's stdout, with what it printed if it is none.
fn doc(who: &str, args: &[&str], code: i32, stdout: &str, stderr: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(stdout).unwrap_or_else(|e| {
        panic!("{who} {args:?}: not one JSON document ({e}), exit {code}:\n{stdout}\n{stderr}")
    });
    assert_eq!(
        v["exit_code"], code,
        "{who} {args:?}: exit code vs envelope\n{v}"
    );
    v
}

/// Run SmolVM 0.0.36's CLI and ours with `args`, each on a fresh copy of the fixture in the
/// same home (so paths and timestamps agree), and compare: same exit code, and every key
/// of SmolVM's document is in ours with the same type, and the same value for every leaf
/// except human wording (`message`, `recovery`, a failure's `error` text) and `skip`
/// (JSON pointers). Extra keys of ours are fine. Returns (theirs, ours).
fn compare(
    h: &Home,
    fixture: &PathBuf,
    args: &[&str],
    skip: &[&str],
) -> (serde_json::Value, serde_json::Value) {
    reset_state(h, fixture);
    let (tc, tout, terr) = smolvm_py(h, args);
    let theirs = doc("SmolVM", args, tc, &tout, &terr);
    reset_state(h, fixture);
    let out = h.smolvm().args(args).output().unwrap();
    let ours = doc(
        "smolvm",
        args,
        out.status.code().unwrap_or(-1),
        &String::from_utf8_lossy(&out.stdout),
        &String::from_utf8_lossy(&out.stderr),
    );
    let mut diffs = Vec::new();
    same_tree(&theirs, &ours, "", skip, &mut diffs);
    assert!(
        diffs.is_empty(),
        "smolvm {args:?} differs from SmolVM 0.0.36:\n  {}\nSmolVM: {theirs:#}\nsmolvm: {ours:#}",
        diffs.join("\n  ")
    );
    (theirs, ours)
}

/// The comparison `compare` describes, collecting each difference as a line.
fn same_tree(
    theirs: &serde_json::Value,
    ours: &serde_json::Value,
    at: &str,
    skip: &[&str],
    diffs: &mut Vec<String>,
) {
    use serde_json::Value as V;
    if skip.contains(&at) {
        return;
    }
    let key = at.rsplit('/').next().unwrap_or_default();
    match (theirs, ours) {
        (V::Object(t), V::Object(o)) => {
            for (k, tv) in t {
                let here = format!("{at}/{k}");
                match o.get(k) {
                    Some(ov) => same_tree(tv, ov, &here, skip, diffs),
                    None if skip.contains(&here.as_str()) => {}
                    None => diffs.push(format!("{here}: missing (SmolVM: {tv})")),
                }
            }
        }
        (V::Array(t), V::Array(o)) => {
            if t.len() != o.len() {
                diffs.push(format!("{at}: {} items, SmolVM {}", o.len(), t.len()));
            }
            for (i, (tv, ov)) in t.iter().zip(o).enumerate() {
                same_tree(tv, ov, &format!("{at}/{i}"), skip, diffs);
            }
        }
        (V::String(_), V::String(_)) if ["message", "recovery", "error"].contains(&key) => {}
        (t, o) if t == o => {}
        (t, o) => diffs.push(format!("{at}: {o}, SmolVM {t}")),
    }
}

#[test]
fn sandbox_list_json_is_smolvms_running_only_by_default_with_filters() {
    let h = Home::new();
    let f = smolvm_fixture(&h);
    // Running only: the dead "running" VM is reconciled to error and left out.
    let (_, ours) = compare(&h, &f, &["sandbox", "list", "--json"], &[]);
    assert_eq!(ours["data"]["vms"], serde_json::json!([]), "{ours}");
    compare(&h, &f, &["sandbox", "list", "--all", "--json"], &[]);
    compare(
        &h,
        &f,
        &["sandbox", "list", "--status", "stopped", "--json"],
        &[],
    );
    compare(
        &h,
        &f,
        &["sandbox", "list", "--status", "error", "--json"],
        &[],
    );
    // SmolVM's `--all` and `--status` are one filter too many.
    compare(
        &h,
        &f,
        &["sandbox", "list", "--all", "--status", "stopped", "--json"],
        &[],
    );
}

/// `openclaw list` is SmolVM's `sandbox list` of the openclaw preset, reported as
/// `openclaw.list`, with the same filters and refusal.
#[test]
fn openclaw_list_json_is_smolvms() {
    let h = Home::new();
    let f = smolvm_fixture(&h);
    for args in [
        &["openclaw", "list", "--json"][..],
        &["openclaw", "list", "--all", "--json"],
        &["openclaw", "list", "--status", "stopped", "--json"],
        &["openclaw", "list", "--all", "--status", "stopped", "--json"],
    ] {
        let (_, ours) = compare(&h, &f, args, &[]);
        assert_eq!(ours["command"], "openclaw.list", "{args:?}: {ours}");
    }
}

/// `openclaw open-ui` where no guest is needed: an unknown sandbox, a sandbox that is not
/// running, usage errors (a missing sandbox, a host port out of range) — SmolVM's codes,
/// exit codes and keys.
#[test]
fn openclaw_open_ui_json_without_a_guest_is_smolvms() {
    let h = Home::new();
    let f = smolvm_fixture(&h);
    for (args, code) in [
        (&["openclaw", "open-ui", "nope", "--json"][..], 1),
        (&["openclaw", "open-ui", "Bad_Id", "--json"], 1),
        (&["openclaw", "open-ui", "--json"], 2),
        (
            &["openclaw", "open-ui", "nope", "--host-port", "0", "--json"],
            2,
        ),
        (
            &["openclaw", "open-ui", "nope", "--host-port", "x", "--json"],
            2,
        ),
        (&["openclaw", "open-ui", "vm-stopped", "--json"], 1),
        (
            &[
                "openclaw",
                "open-ui",
                "vm-created",
                "--no-browser",
                "--json",
            ],
            1,
        ),
    ] {
        let (theirs, ours) = compare(&h, &f, args, &[]);
        assert_eq!(ours["command"], "openclaw.open-ui", "{args:?}: {ours}");
        assert_eq!(theirs["exit_code"], code, "{args:?}: {theirs}");
    }
    // The unknown sandbox's words are SmolVM's, with its way out.
    let (theirs, ours) = compare(&h, &f, &["openclaw", "open-ui", "nope", "--json"], &[]);
    assert_eq!(ours["error"]["message"], theirs["error"]["message"]);
}

#[test]
fn sandbox_delete_json_is_smolvms() {
    let h = Home::new();
    let f = smolvm_fixture(&h);
    compare(&h, &f, &["sandbox", "delete", "vm-stopped", "--json"], &[]);
    compare(
        &h,
        &f,
        &["sandbox", "delete", "vm-stopped", "--dry-run", "--json"],
        &[],
    );
    // An unknown id: exit 1, the failure in `failed`, and `error: null` as SmolVM has it.
    compare(&h, &f, &["sandbox", "delete", "nope", "--json"], &[]);
    compare(
        &h,
        &f,
        &["sandbox", "delete", "vm-created", "nope", "--json"],
        &[],
    );
    // --all --json without --force: refused before anything is read (a dry run is not:
    // docs/coming-from-smolvm.md).
    compare(&h, &f, &["sandbox", "delete", "--all", "--json"], &[]);
    // --all: every sandbox, oldest first; `reconciled_stale_ids` names the dead "running"
    // ones this run reconciled, sorted (not the row already in `error`).
    compare(
        &h,
        &f,
        &[
            "sandbox",
            "delete",
            "--all",
            "--dry-run",
            "--force",
            "--json",
        ],
        &[],
    );
    // SmolVM's `deleted` is in the order its threads finished: the same ids, any order.
    let (theirs, ours) = compare(
        &h,
        &f,
        &["sandbox", "delete", "--all", "--force", "--json"],
        &["/data/deleted"],
    );
    let sorted = |v: &serde_json::Value| {
        let mut ids: Vec<String> = v["data"]["deleted"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(sorted(&ours), sorted(&theirs));
}

#[test]
fn sandbox_info_and_lifecycle_json_nest_smolvms_vm_object() {
    let h = Home::new();
    let f = smolvm_fixture(&h);
    compare(&h, &f, &["sandbox", "info", "vm-stopped", "--json"], &[]);
    compare(&h, &f, &["sandbox", "info", "vm-created", "--json"], &[]);
    compare(&h, &f, &["sandbox", "stop", "vm-stopped", "--json"], &[]);
    // A stop of a sandbox that never ran (or failed) says `stopped`, as SmolVM's does: a
    // script checks that it is not running now (ours adds its true status beside).
    for id in ["vm-created", "vm-errored"] {
        let (_, ours) = compare(&h, &f, &["sandbox", "stop", id, "--json"], &[]);
        assert_eq!(ours["data"]["vm"]["status"], "stopped", "{ours}");
        assert_eq!(ours["data"]["was_running"], false, "{ours}");
    }
    for verb in ["info", "start", "stop", "pause", "resume", "logs"] {
        compare(&h, &f, &["sandbox", verb, "nope", "--json"], &[]);
    }
    compare(&h, &f, &["sandbox", "resume", "vm-stopped", "--json"], &[]);
    // Their words too, where a script may look for them: an unknown id, a pause or resume
    // of a sandbox that does not run.
    for args in [
        &["sandbox", "info", "nope", "--json"][..],
        &["sandbox", "stop", "nope", "--json"],
        &["sandbox", "pause", "vm-created", "--json"],
        &["sandbox", "resume", "vm-stopped", "--json"],
    ] {
        let (theirs, ours) = compare(&h, &f, args, &[]);
        assert_eq!(
            ours["error"]["message"], theirs["error"]["message"],
            "{args:?}"
        );
    }
}

#[test]
fn exec_logs_port_env_and_snapshot_json_without_a_guest_are_smolvms() {
    let h = Home::new();
    let f = smolvm_fixture(&h);
    // exec on a stopped sandbox: `not_running`, exit 1.
    compare(
        &h,
        &f,
        &["sandbox", "exec", "vm-stopped", "--json", "--", "true"],
        &[],
    );
    // logs: no log file is `not_found`, exit 1; --follow with --json is refused.
    compare(&h, &f, &["sandbox", "logs", "vm-stopped", "--json"], &[]);
    // Its message holds its way out: said once on a terminal too.
    let out = h
        .smolvm()
        .args(["sandbox", "logs", "vm-stopped"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("to generate logs").count(), 1, "{err}");
    // SmolVM's default tail: the last 200 lines.
    let log: String = (1..=250).map(|i| format!("line {i}\n")).collect();
    std::fs::write(f.join("vm-stopped.log"), log).unwrap();
    let (_, ours) = compare(&h, &f, &["sandbox", "logs", "vm-stopped", "--json"], &[]);
    assert_eq!(ours["data"]["lines"].as_array().map(Vec::len), Some(200));
    assert_eq!(ours["data"]["lines"][0], "line 51");
    compare(
        &h,
        &f,
        &["sandbox", "logs", "vm-stopped", "--tail", "1", "--json"],
        &[],
    );
    compare(
        &h,
        &f,
        &["sandbox", "logs", "vm-stopped", "--follow", "--json"],
        &[],
    );
    // port: `sandbox`; an unknown id has no forwards (exit 0); a bad mapping is
    // `invalid_input` (exit 1).
    compare(
        &h,
        &f,
        &["sandbox", "port", "list", "vm-stopped", "--json"],
        &[],
    );
    compare(&h, &f, &["sandbox", "port", "list", "nope", "--json"], &[]);
    compare(
        &h,
        &f,
        &["sandbox", "port", "expose", "vm-stopped", "xx", "--json"],
        &[],
    );
    // env: a malformed pair is `invalid_input` (exit 1).
    compare(
        &h,
        &f,
        &["sandbox", "env", "set", "vm-stopped", "bad", "--json"],
        &[],
    );
    // snapshot list: `filters{vm_id}`, rows with `snapshot_id`, `snapshot_type`,
    // `artifacts`.
    let (_, ours) = compare(&h, &f, &["sandbox", "snapshot", "list", "--json"], &[]);
    assert_eq!(
        ours["data"]["snapshots"][0]["snapshot_type"], "disk",
        "{ours}"
    );
    compare(
        &h,
        &f,
        &[
            "sandbox",
            "snapshot",
            "list",
            "--vm-id",
            "vm-stopped",
            "--json",
        ],
        &[],
    );
}

#[test]
fn usage_errors_carry_smolvms_recovery_line() {
    let h = Home::new();
    let f = smolvm_fixture(&h);
    for args in [
        &["sandbox", "list", "--bogus", "--json"][..],
        &["sandbox", "list", "--all", "--status", "running", "--json"],
        &["sandbox", "snapshot", "list", "extra", "--json"],
        &["sandbox", "env", "set", "--json"],
        &["sandbox", "exec", "vm-stopped", "--json"],
        // SmolVM's ranges: a stop waits more than 0 s, logs show at least one line.
        &["sandbox", "stop", "vm-stopped", "--timeout", "0", "--json"],
        &["sandbox", "logs", "vm-stopped", "--tail", "0", "--json"],
    ] {
        let (theirs, ours) = compare(&h, &f, args, &[]);
        assert_eq!(theirs["error"]["code"], "usage_error", "{theirs}");
        assert_eq!(
            ours["error"]["recovery"], theirs["error"]["recovery"],
            "{args:?}"
        );
    }
}

/// Bare `smolvm` with no terminal: the help on stdout, exit 0, as SmolVM's.
#[test]
fn bare_smolvm_without_a_terminal_prints_help_to_stdout_exit_0() {
    let h = Home::new();
    let (code, stdout, _) = smolvm_py(&h, &[]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("Usage: smolvm"), "{stdout}");
    // stdout is a pipe here: no terminal.
    let out = h.smolvm().output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
    assert!(
        support::stdout(&out).contains("Usage: smolvm"),
        "{}",
        support::stdout(&out)
    );
    assert!(
        support::stderr(&out).is_empty(),
        "{}",
        support::stderr(&out)
    );
}

/// Values SmolVM's image commands check themselves: an unknown preset on `image pull`, an
/// archive `image load` cannot open — `invalid_input`, exit 2.
#[test]
fn image_pull_and_load_invalid_input_is_smolvms() {
    let h = Home::new();
    let f = smolvm_fixture(&h);
    let (_, ours) = compare(&h, &f, &["image", "pull", "nosuch", "--json"], &[]);
    assert_eq!(ours["error"]["code"], "invalid_input", "{ours}");
    let missing = h.tmp.path().join("missing.tar");
    let (_, ours) = compare(
        &h,
        &f,
        &["image", "load", "-i", missing.to_str().unwrap(), "--json"],
        &[],
    );
    assert_eq!(ours["exit_code"], 2, "{ours}");
}

/// `image inspect/save/load` where no image is needed: a name that is no cache name (a
/// path) is SmolVM's `invalid_input` (exit 2), an unknown one exit 1, a file that is no
/// image archive `invalid_input` (exit 2).
#[test]
fn image_inspect_save_and_load_errors_are_smolvms() {
    let h = Home::new();
    let f = smolvm_fixture(&h);
    let out = h.tmp.path().join("out.tar");
    let junk = h.tmp.path().join("junk.tar");
    std::fs::write(&junk, "not an archive\n").unwrap();
    let (out, junk) = (out.to_str().unwrap(), junk.to_str().unwrap());
    for (args, code) in [
        (&["image", "inspect", "../x", "--json"][..], 2),
        (&["image", "inspect", "a/b", "--json"], 2),
        (&["image", "inspect", "nosuch", "--json"], 1),
        (
            &["image", "inspect", "codex-v0.0.36-amd64-qemu", "--json"],
            1,
        ),
        (&["image", "save", "../x", "-o", out, "--json"], 2),
        (
            &[
                "image",
                "save",
                "codex-v0.0.36-amd64-qemu",
                "-o",
                out,
                "--json",
            ],
            1,
        ),
        (&["image", "load", "-i", junk, "--json"], 2),
    ] {
        let (theirs, _) = compare(&h, &f, args, &[]);
        assert_eq!(theirs["exit_code"], code, "{args:?}: {theirs}");
    }
}

/// `images --json` (reported as `images`, as SmolVM does) on an empty cache.
#[test]
fn images_json_is_smolvms_on_an_empty_cache() {
    let h = Home::new();
    let f = smolvm_fixture(&h);
    compare(&h, &f, &["images", "--json"], &[]);
    let (_, ours) = compare(&h, &f, &["image", "list", "--json"], &[]);
    assert_eq!(ours["command"], "image.list");
}

/// `doctor --json`: SmolVM's keys (its checks are its own, so the rows' keys are compared,
/// not the rows).
#[test]
fn doctor_json_has_smolvms_keys() {
    let h = Home::new();
    let (_, tout, terr) = smolvm_py(&h, &["doctor", "--json"]);
    let theirs: serde_json::Value =
        serde_json::from_str(&tout).unwrap_or_else(|e| panic!("{e}: {tout}\n{terr}"));
    let out = h.smolvm().args(["doctor", "--json"]).output().unwrap();
    let ours = json(&out);
    for key in ["backend_requested", "backend_resolved", "system", "arch"] {
        assert_eq!(ours["data"][key], theirs["data"][key], "{key}: {ours}");
    }
    let mut diffs = Vec::new();
    let their_row = &theirs["data"]["checks"][0];
    for row in ours["data"]["checks"].as_array().unwrap() {
        for k in their_row.as_object().unwrap().keys() {
            if row.get(k).is_none() {
                diffs.push(format!("{}: no {k}", row["name"]));
            }
        }
        let st = row["status"].as_str().unwrap();
        assert!(["pass", "warn", "fail"].contains(&st), "{row}");
    }
    assert!(diffs.is_empty(), "{diffs:?}");
    for k in theirs["data"]["summary"].as_object().unwrap().keys() {
        assert!(
            ours["data"]["summary"].get(k).is_some(),
            "summary.{k}: {ours}"
        );
    }
    assert_eq!(ours["error"], theirs["error"], "{ours}");
}

/// SmolVM's everyday scripts, unchanged, against smolvm with a real guest: list running →
/// jq, create → exec → exit code from JSON, env set/list/unset, stop, delete → summary.
#[test]
fn smolvms_everyday_scripts_run_against_smolvm_with_a_real_guest() {
    require_root!("(network namespaces)");
    let vm = support::sandbox::Sandboxes::debian_codex();
    let id = "vm-script";
    let started = vm.codex_start(id);
    assert_eq!(
        started["data"]["next"]["ssh_command"],
        format!("smolvm sandbox ssh {id}")
    );
    // list running → jq '.data.vms[] | select(.status=="running") | .name'
    let list = vm.ok_json(&["sandbox", "list", "--json"]);
    assert_eq!(list["data"]["filters"]["status"], "running", "{list}");
    let row = &list["data"]["vms"][0];
    assert_eq!(row["name"], id, "{list}");
    assert_eq!(row["status"], "running", "{list}");
    assert!(row["ip_address"].is_string(), "{list}");
    // exec: the exit code from JSON, `command_failed` on a non-zero one.
    let out = vm.run(&["sandbox", "exec", id, "--json", "--", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    let v = json(&out);
    assert_eq!(v["data"]["exit_code"], 3, "{v}");
    assert_eq!(v["error"]["code"], "command_failed", "{v}");
    let v = vm.ok_json(&["sandbox", "exec", id, "--json", "--", "echo", "hi"]);
    assert_eq!(v["data"]["stdout"], "hi\n", "{v}");
    assert_eq!(v["error"], serde_json::Value::Null, "{v}");
    // env set/list/unset: SmolVM's keys.
    let v = vm.ok_json(&["sandbox", "env", "set", id, "B=2", "A=1", "--json"]);
    assert_eq!(
        v["data"]["requested_keys"],
        serde_json::json!(["A", "B"]),
        "{v}"
    );
    assert_eq!(
        v["data"]["present_keys"],
        serde_json::json!(["A", "B"]),
        "{v}"
    );
    assert_eq!(
        v["data"]["reload_hint"],
        "source /etc/profile.d/smolvm_env.sh"
    );
    let v = vm.ok_json(&["sandbox", "env", "list", id, "--json"]);
    assert_eq!(v["data"]["masked"], true, "{v}");
    assert_eq!(
        v["data"]["variables"],
        serde_json::json!({"A": "****", "B": "****"})
    );
    let v = vm.ok_json(&["sandbox", "env", "list", id, "--show-values", "--json"]);
    assert_eq!(
        v["data"]["variables"],
        serde_json::json!({"A": "1", "B": "2"})
    );
    let v = vm.ok_json(&["sandbox", "env", "unset", id, "A", "C", "--json"]);
    assert_eq!(v["data"]["removed_keys"], serde_json::json!(["A"]), "{v}");
    assert_eq!(v["data"]["missing_keys"], serde_json::json!(["C"]), "{v}");
    // stop: `data.vm`; then the default list is empty and exec says `not_running`.
    let v = vm.ok_json(&["sandbox", "stop", id, "--json"]);
    assert_eq!(
        v["data"]["vm"],
        serde_json::json!({"name": id, "status": "stopped"})
    );
    let list = vm.ok_json(&["sandbox", "list", "--json"]);
    assert_eq!(list["data"]["vms"], serde_json::json!([]), "{list}");
    let out = vm.run(&["sandbox", "exec", id, "--json", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["error"]["code"], "not_running");
    // delete stopped → summary.
    let v = vm.ok_json(&["sandbox", "delete", id, "--json"]);
    assert_eq!(v["data"]["summary"]["deleted_count"], 1, "{v}");
    assert_eq!(v["error"], serde_json::Value::Null, "{v}");
}

/// A sandbox whose shared folder is gone from the host: `sandbox list` warns on its row
/// as SmolVM 0.0.36 does, word for word (its `_vm_warnings`), in `--json` and after the
/// table; a folder still there gives no warning.
#[test]
fn sandbox_list_warns_of_a_shared_folder_gone_as_smolvm_does() {
    let h = Home::new();
    let template = h.tmp.path().join("fixture-shared");
    std::fs::create_dir_all(&template).unwrap();
    let (k, r) = kernel_and_rootfs(&h);
    let (gone, kept) = (h.tmp.path().join("project"), h.tmp.path().join("kept"));
    std::fs::create_dir_all(&gone).unwrap();
    std::fs::create_dir_all(&kept).unwrap();
    let code = r#"
import sys
from pathlib import Path
from smolvm.cli.state import create_cli_state_manager
from smolvm.types import VMConfig, VMState, WorkspaceMount
db, kernel, rootfs, gone, kept = [Path(a) for a in sys.argv[1:6]]
m = create_cli_state_manager(db)
for name, folder in (("vm-shared", gone), ("vm-kept", kept)):
    m.create_vm(VMConfig(vm_id=name, vcpu_count=2, memory=512, kernel_path=kernel,
        rootfs_path=rootfs, backend="qemu",
        workspace_mounts=[WorkspaceMount(host_path=folder)]))
    m.update_vm(name, status=VMState.STOPPED)
m.close()
"#;
    smolvm_writes(
        code,
        &template.join("smolvm.db"),
        (&k, &r),
        &[gone.to_str().unwrap(), kept.to_str().unwrap()],
    );
    std::fs::remove_dir(&gone).unwrap();
    let (theirs, ours) = compare(&h, &template, &["sandbox", "list", "--all", "--json"], &[]);
    let warnings = |v: &serde_json::Value, name: &str| {
        support::item(&v["data"]["vms"], "name", name)["warnings"].clone()
    };
    let want = format!(
        "Shared folder is missing on your machine: '{}'. Restore it, or run 'smolvm sandbox delete vm-shared' to remove the sandbox.",
        gone.display()
    );
    assert_eq!(
        warnings(&ours, "vm-shared"),
        serde_json::json!([want]),
        "{ours}"
    );
    assert_eq!(warnings(&theirs, "vm-shared"), warnings(&ours, "vm-shared"));
    assert_eq!(warnings(&ours, "vm-kept"), serde_json::json!([]), "{ours}");
    reset_state(&h, &template);
    let out = h.run(&["sandbox", "list", "--all"]);
    let human = String::from_utf8_lossy(&out.stdout);
    assert!(
        human.contains(&format!("Warnings:\n  • {want}\n")),
        "{human}"
    );
}

/// A snapshot SmolVM 0.0.36 made keeps its files in SmolVM's own layout
/// (`<data dir>/snapshots/<id>/`, as its row names them): `snapshot list` shows that
/// directory, its size and no missing file; a restore refuses it clearly (smolvm cannot
/// use SmolVM's files); `snapshot delete` removes that directory with the row, as
/// SmolVM's does — it left every file behind. A directory holding a file SmolVM never
/// writes is not removed.
#[test]
fn a_snapshot_smolvm_made_is_listed_and_deleted_where_its_files_are() {
    let h = Home::new();
    let (k, r) = kernel_and_rootfs(&h);
    std::fs::create_dir_all(&h.data).unwrap();
    let code = r#"
import sys
from datetime import datetime, timezone
from pathlib import Path
from smolvm.cli.state import create_cli_state_manager
from smolvm.types import (VMConfig, SnapshotInfo, SnapshotArtifacts, SnapshotType,
    NetworkConfig)
db, kernel, rootfs = [Path(a) for a in sys.argv[1:4]]
net = NetworkConfig(guest_ip="172.16.0.5", gateway_ip="172.16.0.1", netmask="255.255.255.0",
    tap_device="tap5", guest_mac="02:00:00:00:00:05", ssh_host_port=2205)
m = create_cli_state_manager(db)
cfg = VMConfig(vm_id="vm-src", vcpu_count=2, memory=512, kernel_path=kernel,
    rootfs_path=rootfs, backend="firecracker")
m.create_vm(cfg)
for sid in ("snap-fc", "snap-odd"):
    root = db.parent / "snapshots" / sid
    root.mkdir(parents=True)
    for f in ("vmstate.bin", "mem.bin", "disk.ext4"):
        (root / f).write_bytes(b"x" * 8192)
    m.create_snapshot(SnapshotInfo(snapshot_id=sid, vm_id="vm-src", backend="firecracker",
        artifacts=SnapshotArtifacts(state_path=root / "vmstate.bin",
            memory_path=root / "mem.bin", disk_path=root / "disk.ext4"),
        vm_config=cfg, network_config=net,
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        snapshot_type=SnapshotType.FULL))
(db.parent / "snapshots" / "snap-odd" / "notes.txt").write_text("mine")
m.close()
"#;
    smolvm_writes(code, &h.data.join("smolvm.db"), (&k, &r), &[]);
    let dir = h.data.join("snapshots/snap-fc");
    let v = support::json(&h.run(&["sandbox", "snapshot", "list", "--json"]));
    let snap = support::item(&v["data"]["snapshots"], "id", "snap-fc");
    assert_eq!(snap["path"], dir.to_str().unwrap(), "{snap}");
    assert_eq!(snap["missing_files"], serde_json::json!([]), "{snap}");
    assert!(snap["size_bytes"].as_u64().unwrap() >= 3 * 8192, "{snap}");
    let out = h.run(&["sandbox", "snapshot", "restore", "snap-fc", "--json"]);
    let v = support::json(&out);
    assert_eq!(out.status.code(), Some(1), "{v}");
    assert!(
        support::error_message(&v).contains("was made by SmolVM"),
        "{v}"
    );
    assert!(
        dir.join("mem.bin").is_file(),
        "a refused restore changed nothing"
    );
    let out = h.run(&["sandbox", "snapshot", "delete", "snap-fc", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", support::stdout(&out));
    assert!(!dir.exists(), "SmolVM's snapshot files were left behind");
    // A file SmolVM never writes there: nothing of the directory is removed.
    let odd = h.data.join("snapshots/snap-odd");
    let out = h.run(&["sandbox", "snapshot", "delete", "snap-odd", "--json"]);
    assert!(odd.join("notes.txt").is_file() && odd.join("mem.bin").is_file());
    assert_eq!(out.status.code(), Some(1), "{}", support::stdout(&out));
    // Refused before anything went: its row is still listed.
    let list = h.run(&["sandbox", "snapshot", "list", "--json"]);
    assert!(
        support::stdout(&list).contains("\"snap-odd\""),
        "{}",
        support::stdout(&list)
    );
}
