//! `smolvm prune` / `smolvm image prune` end to end: the real binary against a temporary
//! HOME with real directories, symlinks, sparse files, a SmolVM-shaped state database and
//! live processes.

mod support;

use std::os::unix::fs::symlink;
use std::path::Path;

use support::{json, smolvm_db_with_vm, stderr, stdout, Home, Undeletable, CURRENT};

const MB: usize = 1_000_000;

fn names(v: &serde_json::Value, key: &str) -> Vec<String> {
    v["data"][key]
        .as_array()
        .unwrap_or_else(|| panic!("data.{key} is not an array: {v}"))
        .iter()
        .map(|e| {
            let p = e.get("path").unwrap_or(e).as_str().unwrap();
            Path::new(p)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

#[test]
fn dry_run_human_output_matches_the_seed_word_for_word() {
    let h = Home::new();
    h.cache("0.0.12", 3 * MB);
    h.cache("0.0.13", 2 * MB);
    h.cache(CURRENT, MB);
    let out = h.ok(&["prune", "--dry-run"]);
    insta::assert_snapshot!(stdout(&out), @r"
    Stale image caches (2):
      - ~/.smolvm/images/0.0.12/   (3 MB)
      - ~/.smolvm/images/0.0.13/   (2 MB)

    Total reclaimable: 5 MB
    Dry run complete. No changes made.
    ");
    assert!(
        h.images().join("0.0.12").is_dir(),
        "dry run deleted something"
    );
    assert!(h.images().join("0.0.13").is_dir());
}

#[test]
fn real_run_human_output_and_effect() {
    let h = Home::new();
    h.cache("0.0.12", 3 * MB);
    h.cache("0.0.13", 2 * MB);
    h.cache(CURRENT, MB);
    let out = h.smolvm().arg("prune").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    insta::assert_snapshot!(stdout(&out), @r"
    Removed: ~/.smolvm/images/0.0.12/
    Removed: ~/.smolvm/images/0.0.13/
    Reclaimed 5 MB.
    ");
    assert!(!h.images().join("0.0.12").exists());
    assert!(!h.images().join("0.0.13").exists());
    assert!(h.images().join(CURRENT).join("rootfs.ext4").is_file());
    // A second run has nothing left to do.
    let out = h.smolvm().arg("prune").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), "Nothing to prune — cache is clean.\n");
}

#[test]
fn both_layouts_alpha_and_dotted_versions() {
    let h = Home::new();
    for n in [
        "0.0.12",                                // seed layout
        "openclaw-v0.0.13-amd64-firecracker",    // SmolVM layout
        "base-kernel-v0.0.14a0-arm64",           // alpha of the current version: stale
        "codex-v0.0.24.post3-amd64-firecracker", // dotted suffix
        "0.0.24.post3",
    ] {
        h.cache(n, 4096);
    }
    for n in [
        CURRENT,
        "openclaw-v0.0.14-amd64-firecracker",
        "base-kernel-v0.0.14-arm64",
    ] {
        h.cache(n, 4096);
    }
    let out = h.run(&["prune", "--dry-run", "--json"]);
    let v = json(&out);
    assert_eq!(v["ok"], true);
    assert_eq!(v["data"]["current_version"], CURRENT);
    assert_eq!(
        names(&v, "would_remove"),
        vec![
            "0.0.12",
            "0.0.24.post3",
            "base-kernel-v0.0.14a0-arm64",
            "codex-v0.0.24.post3-amd64-firecracker",
            "openclaw-v0.0.13-amd64-firecracker",
        ]
    );
}

#[test]
fn unversioned_dirs_and_plain_files_are_ignored() {
    let h = Home::new();
    for n in ["s3", "_guest-agent", "alpine-ssh", "some-random-dir"] {
        h.cache(n, 4096);
    }
    std::fs::write(h.images().join("0.0.11"), b"a file named like a cache").unwrap();
    std::fs::write(h.images().join("codex-v0.0.1-amd64-qemu"), b"file").unwrap();
    symlink("/nonexistent/dangling", h.images().join("0.0.10")).unwrap();
    let out = h.smolvm().arg("prune").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "Nothing to prune — cache is clean.\n");
    for n in ["s3", "_guest-agent", "alpine-ssh", "some-random-dir"] {
        assert!(h.images().join(n).join("rootfs.ext4").is_file(), "{n}");
    }
    assert!(h.images().join("0.0.11").is_file());
    assert!(h.images().join("codex-v0.0.1-amd64-qemu").is_file());
    assert!(h.images().join("0.0.10").is_symlink());
}

#[test]
fn stale_named_symlink_is_unlinked_and_its_target_kept() {
    let h = Home::new();
    let outside = h.tmp.path().join("elsewhere");
    std::fs::create_dir_all(outside.join("deep")).unwrap();
    std::fs::write(outside.join("deep/precious"), b"keep me").unwrap();
    symlink(&outside, h.images().join("0.0.12")).unwrap();
    let out = h.run(&["prune", "--json"]);
    let v = json(&out);
    assert_eq!(v["exit_code"], 0, "{v}");
    assert_eq!(names(&v, "removed"), vec!["0.0.12"]);
    assert!(std::fs::symlink_metadata(h.images().join("0.0.12")).is_err());
    assert_eq!(
        std::fs::read(outside.join("deep/precious")).unwrap(),
        b"keep me"
    );
}

#[test]
fn symlinks_inside_a_stale_dir_are_never_followed() {
    let h = Home::new();
    let outside = h.tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("data"), vec![1u8; 2 * MB]).unwrap();
    let stale = h.cache("0.0.12", 4096);
    std::fs::create_dir_all(stale.join("nested")).unwrap();
    symlink(&outside, stale.join("nested/to-dir")).unwrap();
    symlink(outside.join("data"), stale.join("to-file")).unwrap();
    let out = h.run(&["prune", "--dry-run", "--json"]);
    let size = json(&out)["data"]["would_remove"][0]["size_bytes"]
        .as_u64()
        .unwrap();
    assert!(size < MB as u64, "the size followed a symlink: {size}");
    let out = h.smolvm().arg("prune").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stale.exists());
    assert_eq!(std::fs::read(outside.join("data")).unwrap().len(), 2 * MB);
}

#[test]
fn sparse_files_are_sized_by_blocks_not_length() {
    let h = Home::new();
    let stale = h.cache("0.0.12", 0);
    let f = std::fs::File::create(stale.join("rootfs.ext4")).unwrap();
    f.set_len(512 << 20).unwrap(); // 512 MiB apparent, no blocks
    drop(f);
    std::fs::write(stale.join("kernel"), vec![9u8; MB]).unwrap();
    let out = h.run(&["prune", "--dry-run", "--json"]);
    let v = json(&out);
    let size = v["data"]["would_remove"][0]["size_bytes"].as_u64().unwrap();
    assert!(
        (MB as u64..2 * MB as u64).contains(&size),
        "sparse file not sized by blocks: {size}"
    );
    assert_eq!(v["data"]["would_free_bytes"].as_u64().unwrap(), size);
}

#[test]
fn hard_links_count_once() {
    let h = Home::new();
    let a = h.cache("0.0.12", 3 * MB);
    let b = h.cache("0.0.13", 0);
    std::fs::hard_link(a.join("rootfs.ext4"), b.join("rootfs.ext4")).unwrap();
    let out = h.run(&["prune", "--dry-run", "--json"]);
    let total = json(&out)["data"]["would_free_bytes"].as_u64().unwrap();
    assert!(
        (3 * MB as u64..4 * MB as u64).contains(&total),
        "hard link counted twice: {total}"
    );
}

#[test]
fn a_cache_used_by_a_running_vm_is_kept_and_not_counted() {
    let h = Home::new();
    let used = h.cache("0.0.12", 3 * MB);
    let free = h.cache("0.0.13", 2 * MB);
    let stopped_user = h.cache("openclaw-v0.0.11-amd64-qemu", MB);
    std::fs::create_dir_all(&h.data).unwrap();
    let db = h.data.join("smolvm.db");
    smolvm_db_with_vm(
        &db,
        "vm-abc",
        "running",
        &used.join("rootfs.ext4"),
        &h.images().join(CURRENT).join("vmlinux.bin"),
    );
    smolvm_db_with_vm(
        &db,
        "vm-old",
        "stopped",
        &stopped_user.join("rootfs.ext4"),
        &stopped_user.join("vmlinux.bin"),
    );
    let out = h.ok(&["prune", "--dry-run"]);
    insta::assert_snapshot!(stdout(&out), @r"
    Stale image caches (2):
      - ~/.smolvm/images/0.0.13/                        (2 MB)
      - ~/.smolvm/images/openclaw-v0.0.11-amd64-qemu/   (1 MB)

    Kept (1):
      - ~/.smolvm/images/0.0.12/   (in use by VM vm-abc)

    Total reclaimable: 3 MB
    Dry run complete. No changes made.
    ");

    let out = h.run(&["prune", "--json"]);
    let v = json(&out);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(
        v["data"]["kept"],
        serde_json::json!([{"path": used, "reason": "in use by VM vm-abc"}])
    );
    assert_eq!(
        names(&v, "removed"),
        vec!["0.0.13", "openclaw-v0.0.11-amd64-qemu"]
    );
    assert!(used.join("rootfs.ext4").is_file());
    assert!(!free.exists() && !stopped_user.exists());
    let freed = v["data"]["freed_bytes"].as_u64().unwrap();
    assert!((3 * MB as u64..4 * MB as u64).contains(&freed), "{freed}");

    // Real run, human: the kept line comes first.
    let out = h.smolvm().arg("prune").output().unwrap();
    assert_eq!(
        stdout(&out),
        "Kept:    ~/.smolvm/images/0.0.12/ (in use by VM vm-abc)\nNothing to prune — cache is clean.\n"
    );
}

#[test]
fn a_cache_with_a_file_open_in_a_live_process_is_kept() {
    let h = Home::new();
    let held = h.cache("0.0.12", MB);
    let mut child = support::hold_open(&held.join("rootfs.ext4"));
    let out = h.run(&["prune", "--json"]);
    child.kill().unwrap();
    child.wait().unwrap();
    let v = json(&out);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(
        v["data"]["kept"][0]["reason"],
        format!("open by process {} (sleep)", child.id())
    );
    assert!(held.join("rootfs.ext4").is_file());
    assert_eq!(v["data"]["freed_bytes"], 0);
}

#[test]
fn custom_images_with_a_fingerprint_are_never_stale() {
    let h = Home::new();
    let custom = h.cache("0.0.3", 4096);
    std::fs::write(custom.join(".fingerprint"), b"abc").unwrap();
    let out = h.run(&["prune", "--json"]);
    let v = json(&out);
    assert_eq!(v["data"]["removed"], serde_json::json!([]));
    assert_eq!(
        v["data"]["kept"][0]["reason"],
        "custom image (has .fingerprint)"
    );
    assert!(custom.join(".fingerprint").is_file());
}

#[test]
fn snapshots_and_keys_survive_when_the_root_is_dot_smolvm() {
    let h = Home::new();
    let dot = h.home.join(".smolvm");
    let keys = dot.join("keys");
    let snaps = dot.join("snapshots");
    std::fs::create_dir_all(&snaps).unwrap();
    std::fs::write(snaps.join("snap-1.bin"), b"s").unwrap();
    // keys really live inside a stale-named directory: removing it would remove them.
    std::fs::create_dir_all(dot.join("0.0.3/real-keys")).unwrap();
    std::fs::write(dot.join("0.0.3/real-keys/id_ed25519"), b"k").unwrap();
    symlink(dot.join("0.0.3/real-keys"), &keys).unwrap();
    // A stale-named link to the snapshots: only the link may go.
    symlink(&snaps, dot.join("0.0.4")).unwrap();
    std::fs::create_dir_all(dot.join("0.0.5")).unwrap();
    let out = h
        .smolvm()
        .args(["prune", "--json", "--image-dir"])
        .arg(&dot)
        .output()
        .unwrap();
    let v = json(&out);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(names(&v, "removed"), vec!["0.0.4", "0.0.5"]);
    assert_eq!(v["data"]["kept"][0]["reason"], "protected directory");
    assert!(keys.join("id_ed25519").is_file());
    assert!(snaps.join("snap-1.bin").is_file());
}

#[test]
fn one_undeletable_cache_fails_alone_and_the_rest_are_removed() {
    let h = Home::new();
    h.cache("0.0.11", MB);
    let stuck = h.cache("0.0.12", MB);
    h.cache("0.0.13", MB);
    let Some(guard) = Undeletable::new(&stuck) else {
        eprintln!("SKIPPED: cannot make a directory undeletable here (needs chattr or root)");
        return;
    };
    let out = h.run(&["prune", "--json"]);
    let human_probe = h.smolvm().arg("prune").output().unwrap();
    drop(guard);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["ok"], false);
    assert_eq!(v["exit_code"], 1);
    assert_eq!(v["error"]["code"], "partial_failure");
    assert_eq!(
        v["error"]["message"],
        "1 of 3 stale cache(s) could not be removed"
    );
    assert_eq!(names(&v, "removed"), vec!["0.0.11", "0.0.13"]);
    assert_eq!(names(&v, "failed"), vec!["0.0.12"]);
    let err = v["data"]["failed"][0]["error"].as_str().unwrap();
    assert!(
        err.starts_with("rootfs.ext4: ")
            && (err.contains("not permitted") || err.contains("Read-only")),
        "{err}"
    );
    assert!(stuck.join("rootfs.ext4").is_file());
    assert!(!h.images().join("0.0.11").exists());
    assert!(!h.images().join("0.0.13").exists());
    // The human form of the same failure.
    assert_eq!(human_probe.status.code(), Some(1));
    let text = stdout(&human_probe);
    assert!(
        text.starts_with("Failed:  ~/.smolvm/images/0.0.12/ (rootfs.ext4: "),
        "{text}"
    );
    assert!(
        text.ends_with("Reclaimed 0 B.\nPrune completed with 1 failure(s).\n"),
        "{text}"
    );
}

#[test]
fn no_images_root_is_success() {
    let h = Home::new();
    std::fs::remove_dir_all(h.images()).unwrap();
    let out = h.smolvm().arg("prune").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), "Nothing to prune — cache is clean.\n");
    let out = h.run(&["prune", "--json"]);
    let v = json(&out);
    assert_eq!(v["ok"], true);
    assert_eq!(v["data"]["removed"], serde_json::json!([]));
    assert_eq!(v["data"]["freed_bytes"], 0);
    assert!(!h.images().exists(), "prune created the images root");
    assert!(!h.data.exists(), "prune created the data dir");
}

#[test]
fn an_images_root_that_is_a_file_is_a_clear_error() {
    let h = Home::new();
    let file = h.tmp.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let out = h
        .smolvm()
        .args(["prune", "--image-dir"])
        .arg(&file)
        .output()
        .unwrap();
    support::assert_error(
        &out,
        1,
        &format!(
            "Error: cannot read image cache directory {}: Not a directory\n",
            file.display()
        ),
    );
    let out = h
        .smolvm()
        .args(["image", "prune", "--json", "--image-dir"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(
        v,
        serde_json::json!({
            "ok": false, "command": "image.prune", "exit_code": 1, "data": null,
            "error": {"code": "runtime_error",
                      "message": format!("cannot read image cache directory {}: Not a directory", file.display())}
        })
    );
    assert!(file.is_file());
}

#[test]
fn an_unreadable_images_root_is_a_clear_error_for_an_unprivileged_user() {
    require_root!("to run the binary as another user");
    let h = Home::new();
    h.cache("0.0.12", 4096);
    use std::os::unix::fs::PermissionsExt;
    for p in [h.tmp.path(), h.home.as_path(), &h.home.join(".smolvm")] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(h.images(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let bin = assert_cmd::cargo::cargo_bin("smolvm");
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&bin)
        .args(["prune", "--json"])
        .env_clear()
        .env("HOME", &h.home)
        .env("SMOLVM_DATA_DIR", h.tmp.path().join("nobody-state"))
        .env("SMOLVM_IMAGE_VERSION", CURRENT)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["error"]["code"], "runtime_error");
    assert_eq!(
        v["error"]["message"],
        format!(
            "cannot read image cache directory {}: Permission denied",
            h.images().display()
        )
    );
    assert!(h.images().join("0.0.12/rootfs.ext4").is_file());
}

#[test]
fn image_dir_precedence_and_command_names() {
    let h = Home::new();
    let flag = h.tmp.path().join("flag-root");
    let env_root = h.tmp.path().join("env-root");
    for root in [&flag, &env_root] {
        std::fs::create_dir_all(root.join("0.0.1")).unwrap();
    }
    h.cache("0.0.2", 4096);
    let run = |args: &[&str], env: bool| {
        let mut c = h.smolvm();
        if env {
            c.env("SMOLVM_IMAGE_DIR", &env_root);
        }
        json(&c.args(args).output().unwrap())
    };
    let v = run(&["prune", "--dry-run", "--json"], false);
    assert_eq!(v["command"], "prune");
    assert_eq!(names(&v, "would_remove"), vec!["0.0.2"]);
    let v = run(&["image", "prune", "--dry-run", "--json"], true);
    assert_eq!(v["command"], "image.prune");
    assert_eq!(v["data"]["images_root"], env_root.to_str().unwrap());
    let flag_s = flag.to_str().unwrap();
    let v = run(
        &["prune", "--dry-run", "--json", "--image-dir", flag_s],
        true,
    );
    assert_eq!(v["data"]["images_root"], flag_s);
    let v = run(
        &["prune", "--dry-run", "--json", "--cache-dir", flag_s],
        false,
    );
    assert_eq!(v["data"]["images_root"], flag_s);
}

#[test]
fn json_paths_are_absolute_even_for_a_relative_image_dir() {
    let h = Home::new();
    std::fs::create_dir_all(h.tmp.path().join("rel/0.0.1")).unwrap();
    let out = h
        .smolvm()
        .current_dir(h.tmp.path())
        .args([
            "prune",
            "--dry-run",
            "--json",
            "--image-dir",
            "./rel/../rel",
        ])
        .output()
        .unwrap();
    let v = json(&out);
    let want = h.tmp.path().join("rel/0.0.1");
    assert_eq!(v["data"]["would_remove"][0]["path"], want.to_str().unwrap());
}

#[test]
fn usage_errors_exit_2_with_an_envelope_under_json() {
    let h = Home::new();
    let out = h.run(&["prune", "--json", "--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        json(&out),
        serde_json::json!({
            "ok": false, "command": "prune", "exit_code": 2, "data": null,
            "error": {"code": "usage_error", "message": "unexpected argument '--bogus' found",
                "recovery": "Run 'smolvm prune --help' for usage."}
        })
    );
    let out = h.run(&["prune", "--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).starts_with("Error: unexpected argument '--bogus' found"),
        "{}",
        stderr(&out)
    );
}

/// A usage error's envelope names the command line as SmolVM 0.0.36's CLI does (each
/// name here is its output for that line): the words typed, two of them after a group
/// it knows (`claude` is one, `claude-code` and `claw` are not).
#[test]
fn usage_error_envelopes_use_smolvms_command_names_as_invoked() {
    let h = Home::new();
    for (args, name) in [
        (
            &["claude", "start", "--bogus", "--json"][..],
            "claude.start",
        ),
        (
            &["claude-code", "start", "--bogus", "--json"][..],
            "claude-code",
        ),
        (&["claw", "start", "--bogus", "--json"][..], "claw"),
        (&["sandbox", "frob", "--json"][..], "sandbox.frob"),
        (
            &["completion", "bash", "--bogus", "--json"][..],
            "completion",
        ),
        (&["images", "--bogus", "--json"][..], "images"),
        (&["image", "ls", "--bogus", "--json"][..], "image.list"),
        (&["image", "prune", "--bogus", "--json"][..], "image.prune"),
    ] {
        let out = h.smolvm().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let v = json(&out);
        assert_eq!(v["command"], name, "{args:?}");
        assert_eq!(v["error"]["code"], "usage_error");
    }
}

#[test]
fn json_success_envelope_has_every_field_in_order() {
    let h = Home::new();
    h.cache("0.0.12", MB);
    let out = h.run(&["prune", "--dry-run", "--json"]);
    let text = stdout(&out);
    assert!(text.starts_with("{\n  \"ok\": true,\n  \"command\": \"prune\",\n  \"exit_code\": 0,\n  \"data\": {\n    \"dry_run\": true,"), "{text}");
    assert!(text.ends_with("  \"error\": null\n}\n"), "{text}");
    let v = json(&out);
    for key in [
        "dry_run",
        "current_version",
        "would_remove",
        "would_free_bytes",
        "removed",
        "freed_bytes",
        "kept",
        "failed",
    ] {
        assert!(v["data"].get(key).is_some(), "data.{key} missing: {v}");
    }
}

#[test]
fn version_names_the_image_version() {
    let h = Home::new();
    let out = h.smolvm().arg("--version").output().unwrap();
    assert_eq!(
        stdout(&out),
        format!("smolvm {} (images {CURRENT})\n", env!("CARGO_PKG_VERSION"))
    );
    let out = h
        .smolvm()
        .env_remove("SMOLVM_IMAGE_VERSION")
        .arg("--version")
        .output()
        .unwrap();
    let v = env!("CARGO_PKG_VERSION");
    assert_eq!(stdout(&out), format!("smolvm {v} (images {v})\n"));
}

#[test]
fn without_image_version_override_the_crate_version_is_current() {
    let h = Home::new();
    h.cache(env!("CARGO_PKG_VERSION"), 4096);
    h.cache("0.0.36", 4096);
    let out = h
        .smolvm()
        .env_remove("SMOLVM_IMAGE_VERSION")
        .args(["prune", "--dry-run", "--json"])
        .output()
        .unwrap();
    let v = json(&out);
    assert_eq!(names(&v, "would_remove"), vec!["0.0.36"]);
}

/// A SmolVM 0.0.36 installed from PyPI (a real venv, its `smolvm` script on PATH) still
/// uses the `0.0.36` caches: prune keeps them (and says why under `Kept:`) while removing
/// other versions; without that install on PATH the same caches are stale.
#[test]
fn caches_current_for_an_installed_smolvm_are_kept() {
    let venv_bin = support::smolvm_py::python()
        .parent()
        .expect("venv bin")
        .to_path_buf();
    let h = Home::new();
    h.cache("0.0.36", MB);
    h.cache("codex-v0.0.36-amd64-qemu", MB);
    h.cache("codex-v0.0.35-amd64-qemu", MB);
    h.cache(CURRENT, MB);

    // Control: with no SmolVM visible, the 0.0.36 caches are stale like any other version.
    let out = h.run(&["prune", "--dry-run", "--json"]);
    let v = json(&out);
    let mut stale = names(&v, "would_remove");
    stale.sort();
    assert_eq!(
        stale,
        [
            "0.0.36",
            "codex-v0.0.35-amd64-qemu",
            "codex-v0.0.36-amd64-qemu"
        ]
    );

    let path = std::env::join_paths(std::iter::once(venv_bin.clone()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let out = h.run_env(&["prune", "--dry-run", "--json"], "PATH", &path);
    let v = json(&out);
    assert_eq!(names(&v, "would_remove"), ["codex-v0.0.35-amd64-qemu"]);
    let mut kept = names(&v, "kept");
    kept.sort();
    assert_eq!(kept, ["0.0.36", "codex-v0.0.36-amd64-qemu"]);
    let reason = v["data"]["kept"][0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("current for SmolVM 0.0.36 installed on this host (")
            && reason.contains("smolvm-0.0.36.dist-info"),
        "{reason}"
    );

    let out = h.smolvm().env("PATH", &path).arg("prune").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("Removed: ~/.smolvm/images/codex-v0.0.35-amd64-qemu/")
            && text.contains("~/.smolvm/images/codex-v0.0.36-amd64-qemu/")
            && text.contains("current for SmolVM 0.0.36"),
        "{text}"
    );
    assert!(h.images().join("0.0.36").is_dir());
    assert!(h.images().join("codex-v0.0.36-amd64-qemu").is_dir());
    assert!(!h.images().join("codex-v0.0.35-amd64-qemu").exists());
}

#[test]
fn a_missing_image_dir_given_on_the_command_line_is_a_usage_error() {
    // `--image-dir /nonexistent` said "cache is clean" and exited 0: a typo looked like a
    // clean cache. The default root missing stays success (`no_images_root_is_success`).
    let h = Home::new();
    let missing = h.tmp.path().join("nonexistent");
    for flag in ["--image-dir", "--cache-dir"] {
        let out = h
            .smolvm()
            .args(["prune", flag])
            .arg(&missing)
            .output()
            .unwrap();
        support::assert_error(
            &out,
            2,
            &format!(
                "Error: image cache directory {} does not exist (from {flag})\n",
                missing.display()
            ),
        );
    }
    let out = h
        .smolvm()
        .args(["image", "prune", "--dry-run", "--json", "--image-dir"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v = json(&out);
    assert_eq!(v["ok"], false);
    assert_eq!(v["exit_code"], 2);
    assert_eq!(v["error"]["code"], "invalid_input");
    assert_eq!(
        v["error"]["message"],
        format!(
            "image cache directory {} does not exist (from --image-dir)",
            missing.display()
        )
    );
    assert!(!missing.exists(), "prune created the directory");
}
