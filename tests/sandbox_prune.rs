//! `smolvm sandbox prune`: files left behind by sandboxes that no longer exist, against
//! the real SmolVM 0.0.36 on the same data dir (its dry run finds the same files), and as
//! an attacker would plant files: links, foreign names, a disk a live process holds.

mod support;

use std::path::Path;

use support::{json, smolvm_db_with_vm, stderr, stdout, Home};

/// SmolVM 0.0.36's CLI on this home; (exit code, stdout).
fn smolvm_py(h: &Home, args: &[&str]) -> (i32, String) {
    let (code, out, _) = support::smolvm_py::cli(h.env_vars(), args);
    (code, out)
}

fn file(p: &Path, bytes: usize) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, vec![7u8; bytes]).unwrap();
}

/// A data dir with one live sandbox (`vm-live`) and the leftovers of three deleted ones.
fn with_leftovers() -> Home {
    let h = Home::new();
    let d = &h.data;
    std::fs::create_dir_all(d).unwrap();
    smolvm_db_with_vm(
        &d.join("smolvm.db"),
        "vm-live",
        "stopped",
        Path::new("/nonexistent/rootfs.ext4"),
        Path::new("/nonexistent/vmlinux"),
    );
    file(&d.join("disks/vm-live.ext4"), 4096);
    file(&d.join("vm-live.log"), 10);
    file(&d.join("disks/vm-gone.ext4"), 8192);
    file(&d.join("disks/vm-gone.ext4.bak"), 100);
    file(&d.join("vm-gone.log"), 20);
    file(&d.join("disks/vm-saved.qcow2"), 300);
    file(&d.join("disks/vm-saved.qcow2.retained"), 0);
    file(&d.join("vm-old.log"), 30);
    file(&d.join("disks/notes.txt"), 5);
    h
}

fn entries(v: &serde_json::Value, key: &str) -> Vec<(String, String, String, u64, bool)> {
    let mut out: Vec<_> = v["data"][key]
        .as_array()
        .unwrap_or_else(|| panic!("data.{key}: {v}"))
        .iter()
        .map(|e| {
            (
                e["vm_id"].as_str().unwrap().to_string(),
                e["path"].as_str().unwrap().to_string(),
                e["kind"].as_str().unwrap().to_string(),
                e["size_bytes"].as_u64().unwrap(),
                e["retained"].as_bool().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_dry_run_finds_what_smolvm_finds_and_changes_nothing() {
    let h = with_leftovers();
    let (code, text) = smolvm_py(&h, &["sandbox", "prune", "--dry-run", "--json"]);
    assert_eq!(code, 0, "{text}");
    let py: serde_json::Value = serde_json::from_str(&text).unwrap();
    let out = h.ok(&["sandbox", "prune", "--dry-run", "--json"]);
    let v = json(&out);
    assert_eq!(v["command"], py["command"]);
    for key in ["removed", "kept", "failed"] {
        assert_eq!(entries(&v, key), entries(&py, key), "data.{key}");
    }
    assert_eq!(v["data"]["freed_bytes"], py["data"]["freed_bytes"]);
    assert_eq!(v["data"]["dry_run"], true);
    let removed: Vec<String> = entries(&v, "removed").into_iter().map(|e| e.1).collect();
    assert_eq!(removed.len(), 4, "{removed:?}");
    for p in [
        "disks/vm-gone.ext4",
        "disks/vm-gone.ext4.bak",
        "vm-gone.log",
        "vm-old.log",
    ] {
        assert!(h.data.join(p).exists(), "the dry run removed {p}");
    }
    assert_eq!(
        entries(&v, "kept").len(),
        2,
        "the saved disk and its marker"
    );
}

#[test]
fn a_real_prune_needs_force_then_removes_only_leftovers() {
    let h = with_leftovers();
    // No terminal, no --force: refused, nothing removed; with --json, SmolVM's error.
    let out = h.run(&["sandbox", "prune"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("Pass --force to confirm"),
        "{}",
        stderr(&out)
    );
    let out = h.run(&["sandbox", "prune", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["error"]["code"], "refused");
    assert_eq!(
        v["error"]["recovery"],
        "Run 'smolvm sandbox prune --force --json' to confirm."
    );
    assert!(h.data.join("disks/vm-gone.ext4").exists());

    let out = h.ok(&["sandbox", "prune", "--force"]);
    let text = stdout(&out);
    assert!(
        text.contains("Removed (4):") && text.contains("Kept 2 file(s)"),
        "{text}"
    );
    for gone in [
        "disks/vm-gone.ext4",
        "disks/vm-gone.ext4.bak",
        "vm-gone.log",
        "vm-old.log",
    ] {
        assert!(!h.data.join(gone).exists(), "{gone} is still there");
    }
    for stays in [
        "disks/vm-live.ext4",
        "vm-live.log",
        "disks/vm-saved.qcow2",
        "disks/vm-saved.qcow2.retained",
        "disks/notes.txt",
        "smolvm.db",
    ] {
        assert!(h.data.join(stays).exists(), "{stays} was removed");
    }
    // --include-saved takes the saved disk too; then nothing is left to do.
    let out = h.run(&["sandbox", "prune", "--force", "--include-saved", "--json"]);
    let v = json(&out);
    assert_eq!(entries(&v, "removed").len(), 2, "{v}");
    assert!(!h.data.join("disks/vm-saved.qcow2").exists());
    let out = h.run(&["sandbox", "prune"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), "Nothing to clean up.\n");
    // Read-only mode refuses a real prune, not a dry run.
    let out = h.run(&["--readonly", "sandbox", "prune", "--force"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn links_held_disks_and_foreign_names_are_never_removed() {
    let h = Home::new();
    let d = &h.data;
    std::fs::create_dir_all(d.join("disks")).unwrap();
    let precious = h.tmp.path().join("precious.ext4");
    file(&precious, 64);
    std::os::unix::fs::symlink(&precious, d.join("disks/vm-link.ext4")).unwrap();
    std::os::unix::fs::symlink(&precious, d.join("vm-link2.log")).unwrap();
    file(&d.join("disks/Bad..ext4"), 1);
    file(&d.join("disks/vm-held.ext4"), 1);
    // The log of a sandbox whose disk is held, and a log held open on its own.
    file(&d.join("vm-held.log"), 1);
    file(&d.join("vm-writing.log"), 1);
    file(&d.join("disks/vm-x.ext4.d/inner"), 1);
    let mut holder = support::hold_open(&d.join("disks/vm-held.ext4"));
    let mut writer = support::hold_open(&d.join("vm-writing.log"));
    let out = h.run(&["sandbox", "prune", "--force", "--json"]);
    for c in [&mut holder, &mut writer] {
        let _ = c.kill();
        let _ = c.wait();
    }
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert!(entries(&v, "removed").is_empty(), "{v}");
    assert!(precious.exists());
    for p in [
        "disks/vm-link.ext4",
        "vm-link2.log",
        "disks/Bad..ext4",
        "disks/vm-held.ext4",
        "vm-held.log",
        "vm-writing.log",
        "disks/vm-x.ext4.d/inner",
    ] {
        assert!(
            std::fs::symlink_metadata(d.join(p)).is_ok(),
            "{p} was removed"
        );
    }
}
