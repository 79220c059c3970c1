//! A co-installed SmolVM 0.0.36 and smolvm share one state database: what smolvm writes in
//! `vms.config` is SmolVM's `VMConfig` (its keys and spellings only — SmolVM refuses any
//! other key), smolvm's own extras live in a table SmolVM never reads, and a row SmolVM
//! wrote loads here. Checked against SmolVM's own code (its CLI and its state layer).

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use support::cleanup::NetNs;
use support::{is_root, json, Home};

/// SmolVM 0.0.36's CLI (`smolvm` of its venv) on this home's data dir; (exit code, stdout,
/// stderr).
fn smolvm_py(h: &Home, args: &[&str]) -> (i32, String, String) {
    let py = support::smolvm_py::python();
    let bin = py.parent().unwrap().join("smolvm");
    let out = Command::new(bin)
        .env_clear()
        .envs(h.env_vars())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn kernel_and_rootfs(h: &Home) -> (PathBuf, PathBuf) {
    let k = h.tmp.path().join("kernel");
    let r = h.tmp.path().join("rootfs.ext4");
    std::fs::write(&k, b"not a kernel").unwrap();
    std::fs::write(&r, vec![0u8; 4096]).unwrap();
    (k, r)
}

#[test]
fn smolvm_0_0_36_lists_and_inspects_a_sandbox_smolvm_created() {
    if !is_root() {
        eprintln!("SKIPPED: needs root (network namespaces)");
        return;
    }
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
            "--json",
        ])
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    support::assert_code(&out, 0);

    // The stored config holds SmolVM's keys only.
    let c = rusqlite::Connection::open(h.data.join("smolvm.db")).unwrap();
    let config: String = c
        .query_row("SELECT config FROM vms WHERE id = 'vm-compat'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
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
    support::smolvm_py::run(
        code,
        &[
            h.data.join("smolvm.db").to_str().unwrap(),
            k.to_str().unwrap(),
            r.to_str().unwrap(),
        ],
    );
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
