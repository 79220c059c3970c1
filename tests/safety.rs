//! Safe as root on a shared host: regression tests for what an adversarial review found
//! smolvm deleting that was not its own. Each runs the real binary as root in its own mount
//! namespace (`unshare -m`) and/or network namespace (`ip netns`).

mod support;

use std::path::Path;
use std::process::Command;

use support::{is_root, stderr, stdout, Home};

macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!("SKIPPED: safety tests need root (mount and network namespaces)");
            return;
        }
    };
}

/// Run `script` with `sh -ec` in a private mount namespace, with `$SMOLVM` the binary and
/// the test's environment; returns (status code, stdout, stderr).
fn in_mount_ns(h: &Home, script: &str) -> (Option<i32>, String, String) {
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-ec", script])
        .env_clear()
        .envs(h.env_vars())
        .env("SMOLVM", assert_cmd::cargo::cargo_bin("smolvm"))
        .output()
        .expect("unshare (util-linux)");
    (out.status.code(), stdout(&out), stderr(&out))
}

fn write(p: &Path, text: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

// 1. prune crosses mounts: a bind mount of the same file system inside a stale cache, a
//    stale cache that is itself a bind mount, a tmpfs mounted on a stale cache.
#[test]
fn prune_refuses_every_kind_of_mount_and_deletes_nothing_behind_it() {
    require_root!();
    let h = Home::new();
    let outside = h.tmp.path().join("outside");
    write(&outside.join("inner/precious"), "inner");
    write(&outside.join("whole/precious"), "whole");
    let inside = h.cache("0.0.10", 4096);
    std::fs::create_dir(inside.join("sub")).unwrap();
    h.cache("0.0.11", 0);
    h.cache("0.0.12", 0);
    h.cache("0.0.13", 4096); // an ordinary stale cache: still removed
    let img = h.images();
    let script = format!(
        "mount --bind {o}/inner {i}/0.0.10/sub
         mount --bind {o}/whole {i}/0.0.11
         mount -t tmpfs none {i}/0.0.12 && echo tmp > {i}/0.0.12/precious
         status=0; \"$SMOLVM\" prune --json > {t}/out.json || status=$?
         cat {i}/0.0.12/precious
         exit $status",
        o = outside.display(),
        i = img.display(),
        t = h.tmp.path().display()
    );
    let (code, out, err) = in_mount_ns(&h, &script);
    assert_eq!(code, Some(1), "{out}{err}");
    assert_eq!(out, "tmp\n", "the tmpfs's file was deleted: {err}");
    assert_eq!(
        std::fs::read_to_string(outside.join("inner/precious")).unwrap(),
        "inner"
    );
    assert_eq!(
        std::fs::read_to_string(outside.join("whole/precious")).unwrap(),
        "whole"
    );
    // The cache holding a mount is left whole: nothing in it was deleted either.
    assert!(inside.join("rootfs.ext4").is_file());
    assert!(!img.join("0.0.13").exists());
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(h.tmp.path().join("out.json")).unwrap())
            .unwrap();
    let failed: Vec<(String, String)> = v["data"]["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string(),
                f["error"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(failed.len(), 3, "{v}");
    for (name, error) in &failed {
        assert!(["0.0.10", "0.0.11", "0.0.12"].contains(&name.as_str()));
        assert!(error.contains("mount"), "{name}: {error}");
    }
}
