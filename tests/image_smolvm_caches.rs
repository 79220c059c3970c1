//! SmolVM 0.0.36's own image caches (`<images>/<preset>-v<version>-<arch>-<vmm>/`, its
//! `cache_name`) beside ours: `image ls`, `image inspect` and `image rm` see them, and what
//! they report for one is what SmolVM's own CLI reports for the same directory, key by key.

mod support;

use std::path::{Path, PathBuf};

use support::smolvm_py::ours;
use support::{json, json_exit, Home};

/// SmolVM's current cache of codex on amd64/qemu, as its `image pull` leaves it: the
/// kernel, the verified `.zst`, the sparse rootfs and the sidecar (the bundled manifest's
/// rootfs checksum, which SmolVM's manifest also has).
fn smolvm_cache(h: &Home, name: &str) -> PathBuf {
    let d = h.images().join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("vmlinux.bin"), vec![7u8; 5000]).unwrap();
    std::fs::write(d.join("rootfs.ext4.zst"), vec![1u8; 9000]).unwrap();
    let f = std::fs::File::create(d.join("rootfs.ext4")).unwrap();
    f.set_len(64 << 20).unwrap();
    std::fs::write(
        d.join("rootfs.ext4.from-sha256"),
        "sparse-v1:0000000000000000000000000000000000000000000000000000000000000000",
    )
    .unwrap();
    d
}

fn smolvm_py(h: &Home, args: &[&str]) -> serde_json::Value {
    let (code, out, err) = support::smolvm_py::cli(h.env_vars(), args);
    assert_eq!(code, 0, "SmolVM {args:?}: {out}\n{err}");
    serde_json::from_str(&out).unwrap()
}

/// Every key of SmolVM's object `theirs` but `skip` has the same value in `ours`.
fn same_keys(what: &str, theirs: &serde_json::Value, ours: &serde_json::Value, skip: &[&str]) {
    let obj = theirs.as_object().unwrap();
    assert!(!obj.is_empty(), "{what}: SmolVM reported nothing");
    for (k, v) in obj {
        if skip.contains(&k.as_str()) {
            continue;
        }
        assert_eq!(
            ours.get(k),
            Some(v),
            "{what}: key {k}\nours:   {ours}\nSmolVM: {theirs}"
        );
    }
}

fn row<'a>(list: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    list["data"]["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no row {name} in {list}"))
}

#[test]
fn image_ls_rows_of_smolvm_caches_match_smolvm_key_by_key() {
    let h = Home::new();
    smolvm_cache(&h, "codex-v0.0.36-amd64-qemu");
    smolvm_cache(&h, "claude-code-v0.0.35-arm64-firecracker-alpine");
    let theirs = smolvm_py(&h, &["image", "list", "--json"]);
    let out = ours(&h, &["image", "ls", "--json"]);
    let mine = json(&out);
    for name in [
        "codex-v0.0.36-amd64-qemu",
        "claude-code-v0.0.35-arm64-firecracker-alpine",
    ] {
        let t = row(&theirs, name);
        let o = row(&mine, name);
        // `kind`: SmolVM says `image`, ours tells its two layouts apart.
        assert_eq!(t["kind"], "image");
        assert_eq!(o["kind"], "smolvm-cache");
        same_keys(name, t, o, &["kind"]);
    }
    assert_eq!(row(&mine, "codex-v0.0.36-amd64-qemu")["current"], true);
    assert_eq!(
        theirs["data"]["total_size_bytes"], mine["data"]["total_size_bytes"],
        "{theirs}\n{mine}"
    );
    assert_eq!(theirs["data"]["image_dir"], mine["data"]["image_dir"]);
}

#[test]
fn image_inspect_takes_a_smolvm_cache_name_and_matches_smolvm_key_by_key() {
    let h = Home::new();
    let dir = smolvm_cache(&h, "codex-v0.0.36-amd64-qemu");
    let name = "codex-v0.0.36-amd64-qemu";
    let theirs = smolvm_py(&h, &["image", "inspect", name, "--json"]);
    let t = &theirs["data"][0];
    let mine = json(&ours(&h, &["image", "inspect", name, "--json"]));
    // Docker's way, as SmolVM has it: an array (of the one image a name names).
    assert_eq!(theirs["data"].as_array().map(Vec::len), Some(1), "{theirs}");
    assert_eq!(mine["data"].as_array().map(Vec::len), Some(1), "{mine}");
    let o = &mine["data"][0];
    same_keys(name, t, o, &["files"]);
    assert_eq!(o["layout"], "smolvm");
    assert_eq!(o["kernel_path"], dir.join("vmlinux.bin").to_str().unwrap());
    let (tf, of) = (
        t["files"].as_array().unwrap(),
        o["files"].as_array().unwrap(),
    );
    assert_eq!(tf.len(), 4, "{t}");
    assert_eq!(tf.len(), of.len(), "{o}");
    for (t, o) in tf.iter().zip(of) {
        same_keys("files", t, o, &[]);
    }
    // A trailing slash (tab completion) names the same directory.
    let slash = json(&ours(
        &h,
        &["image", "inspect", &format!("{name}/"), "--json"],
    ));
    assert_eq!(slash["data"][0]["path"], o["path"]);
    // A preset still works, and names our own layout.
    let preset = json(&ours(
        &h,
        &[
            "image", "inspect", "codex", "--arch", "amd64", "--vmm", "qemu", "--json",
        ],
    ));
    assert_eq!(preset["data"][0]["layout"], "versioned");
    assert_eq!(preset["data"][0]["name"], "codex-amd64-qemu");
    // A SmolVM cache name with no directory is SmolVM's "no cached image" (exit 1).
    let out = ours(
        &h,
        &[
            "image",
            "inspect",
            "codex-v0.0.36-amd64-firecracker",
            "--json",
        ],
    );
    let v = json_exit(&out, 1);
    assert_eq!(
        v["error"]["message"],
        "No cached image named 'codex-v0.0.36-amd64-firecracker'."
    );
    // Never a path: a name with a slash is not a cache name.
    let out = ours(
        &h,
        &[
            "image",
            "inspect",
            "../images/codex-v0.0.36-amd64-qemu",
            "--json",
        ],
    );
    assert_ne!(out.status.code(), Some(0));
}

fn ls_names(h: &Home) -> Vec<String> {
    let v = json(&ours(h, &["image", "ls", "--json"]));
    let mut n: Vec<String> = v["data"]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    n.sort();
    n
}

fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

#[test]
fn image_rm_of_a_smolvm_cache_name_removes_only_that_directory() {
    let h = Home::new();
    let a = smolvm_cache(&h, "codex-v0.0.36-amd64-qemu");
    let b = smolvm_cache(&h, "codex-v0.0.35-amd64-qemu");
    let ours_dir = h.images().join("0.0.36/codex-amd64-qemu");
    std::fs::create_dir_all(&ours_dir).unwrap();
    std::fs::write(ours_dir.join("rootfs.ext4.zst"), b"x").unwrap();

    // A preset names our own caches only, never SmolVM's.
    let out = ours(&h, &["image", "rm", "codex", "--dry-run", "--json"]);
    let v = json(&out);
    let removed = support::texts(&v["data"]["removed"], "name");
    assert_eq!(removed, ["codex-amd64-qemu"]);

    let out = ours(&h, &["image", "rm", "codex-v0.0.36-amd64-qemu", "--json"]);
    let v = json(&out);
    assert_eq!(v["data"]["removed"][0]["path"], a.to_str().unwrap());
    assert!(v["data"]["removed"][0]["size_bytes"].as_u64().unwrap() > 0);
    assert!(!exists(&a));
    assert!(exists(&b) && exists(&ours_dir));
    assert_eq!(
        ls_names(&h),
        ["codex-amd64-qemu", "codex-v0.0.35-amd64-qemu"]
    );
}

#[test]
fn image_rm_of_a_smolvm_cache_that_is_a_symlink_removes_the_link_only() {
    let h = Home::new();
    let outside = h.tmp.path().join("elsewhere");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("rootfs.ext4"), b"precious").unwrap();
    let link = h.images().join("codex-v0.0.36-amd64-qemu");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let out = ours(&h, &["image", "rm", "codex-v0.0.36-amd64-qemu", "--json"]);
    json(&out);
    assert!(!exists(&link));
    assert_eq!(
        std::fs::read(outside.join("rootfs.ext4")).unwrap(),
        b"precious"
    );
    // Names that are not SmolVM cache names are refused, and nothing changes.
    for bad in [
        "../elsewhere",
        "codex-v0.0.36-amd64-qemu/../../elsewhere",
        ".codex-v0.0.36-amd64-qemu",
    ] {
        let out = ours(&h, &["image", "rm", bad, "--json"]);
        assert_ne!(out.status.code(), Some(0), "{bad}");
    }
    assert!(outside.join("rootfs.ext4").exists());
}

/// A fresh tmpfs mounted on `d` (made first); the test unmounts it.
fn mount_tmpfs(d: &Path) {
    std::fs::create_dir_all(d).unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(d)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn image_rm_refuses_a_smolvm_cache_that_is_a_mount_point() {
    require_root!("(mount)");
    let h = Home::new();
    let d = smolvm_cache(&h, "codex-v0.0.36-amd64-qemu");
    std::fs::remove_dir_all(&d).unwrap();
    mount_tmpfs(&d);
    std::fs::write(d.join("keep"), b"k").unwrap();
    let out = ours(&h, &["image", "rm", "codex-v0.0.36-amd64-qemu", "--json"]);
    let code = out.status.code();
    let kept = d.join("keep").exists();
    let _ = std::process::Command::new("umount").arg(&d).status();
    assert_eq!(code, Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(kept, "a file on the mount was removed");
}

/// `image rm` of a SmolVM cache reports what SmolVM's own CLI reports for it, key by key:
/// a dry run's `dry_run`, `would_remove` (`name`, `path`, `size_bytes`) and
/// `would_free_bytes`; a real run's `removed` items and `freed_bytes` (the files' blocks,
/// not the directory's).
#[test]
fn image_rm_reports_smolvms_keys_for_a_smolvm_cache() {
    let name = "codex-v0.0.36-amd64-qemu";
    for dry in [true, false] {
        let mut args = vec!["image", "rm", name, "--json"];
        if dry {
            args.push("--dry-run");
        }
        let h = Home::new();
        smolvm_cache(&h, name);
        let theirs = smolvm_py(&h, &args);
        let h = Home::new();
        smolvm_cache(&h, name);
        let v = json(&ours(&h, &args));
        let (t, o) = (&theirs["data"], &v["data"]);
        // Each home has its own path; the rest is the same.
        let strip = |x: &serde_json::Value| {
            let mut x = x.clone();
            for list in ["would_remove", "removed"] {
                if let Some(a) = x.get_mut(list).and_then(|a| a.as_array_mut()) {
                    for item in a {
                        item.as_object_mut().unwrap().remove("path");
                    }
                }
            }
            x
        };
        let (t, o) = (strip(t), strip(o));
        for (k, tv) in t.as_object().unwrap() {
            match tv {
                serde_json::Value::Array(items) => {
                    let ours_items = o[k].as_array().unwrap_or_else(|| panic!("{k}: {o}"));
                    assert_eq!(items.len(), ours_items.len(), "{k}");
                    for (ti, oi) in items.iter().zip(ours_items) {
                        same_keys(k, ti, oi, &[]);
                    }
                }
                _ => assert_eq!(o.get(k), Some(tv), "{k}\nours {o}\nSmolVM {t}"),
            }
        }
    }
}

/// An image `image build` made (what `image ls` lists as `built`) is inspected and removed
/// by its name, as SmolVM inspects and removes any directory of the images root; a dry run
/// leaves it, and one a sandbox boots from is kept.
#[test]
fn a_built_image_is_inspected_and_removed_by_its_name() {
    let h = Home::new();
    let dir = h.images().join("my-built");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(".fingerprint"), "fp\n").unwrap();
    std::fs::write(dir.join("vmlinux.bin"), vec![7u8; 3000]).unwrap();
    std::fs::write(dir.join("rootfs.ext4"), vec![1u8; 9000]).unwrap();
    std::fs::write(dir.join(".init"), "/sbin/custom-init\n").unwrap();

    let ls = json(&ours(&h, &["image", "ls", "--json"]));
    let r = row(&ls, "my-built");
    assert_eq!(r["kind"], "built", "{ls}");
    // What a built image has not is null, as in SmolVM's rows and our inspect.
    for k in ["version", "preset", "arch", "vmm", "os"] {
        assert!(r[k].is_null(), "{k}: {r}");
    }
    let v = json(&ours(&h, &["image", "inspect", "my-built", "--json"]));
    let i = &v["data"][0];
    assert_eq!(i["kind"], "built", "{v}");
    assert_eq!(i["path"], dir.to_str().unwrap());
    assert_eq!(i["init"], "/sbin/custom-init");
    assert!(i["preset"].is_null() && i["manifest"].is_null(), "{v}");
    let files = support::texts(&i["files"], "name");
    assert_eq!(
        files,
        [".fingerprint", ".init", "rootfs.ext4", "vmlinux.bin"]
    );
    assert_eq!(i["size_bytes"], row(&ls, "my-built")["size_bytes"], "{v}");
    let text = support::stdout(&ours(&h, &["image", "inspect", "my-built"]));
    assert!(text.contains("built (smolvm image build)"), "{text}");

    let v = json(&ours(
        &h,
        &["image", "rm", "my-built", "--dry-run", "--json"],
    ));
    assert_eq!(v["data"]["would_remove"][0]["name"], "my-built", "{v}");
    assert!(dir.is_dir());
    // A sandbox that boots the image's kernel and rootfs: kept, exit 1.
    std::fs::create_dir_all(&h.data).unwrap();
    let db = h.data.join("smolvm.db");
    support::smolvm_db_with_vm(
        &db,
        "vm-b",
        "running",
        &dir.join("rootfs.ext4"),
        &dir.join("vmlinux.bin"),
    );
    let v = json_exit(&ours(&h, &["image", "rm", "my-built", "--json"]), 1);
    assert_eq!(v["data"]["kept"][0]["name"], "my-built", "{v}");
    assert!(dir.is_dir());
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("DELETE FROM vms WHERE id = 'vm-b'", [])
        .unwrap();
    let v = json(&ours(&h, &["image", "rm", "my-built", "--json"]));
    assert_eq!(v["data"]["removed"][0]["name"], "my-built", "{v}");
    assert!(!exists(&dir));
    json_exit(&ours(&h, &["image", "inspect", "my-built", "--json"]), 1);
}

/// `prune --dry-run --json` of a stale SmolVM cache reports SmolVM's sizes: the blocks of
/// the regular files in it (its folders' own blocks are not counted), item and total.
#[test]
fn prune_sizes_a_stale_smolvm_cache_as_smolvm_does() {
    let make = |h: &Home| {
        let d = h.images().join("codex-v0.0.11-amd64-qemu");
        std::fs::create_dir_all(d.join("sub/deeper")).unwrap();
        std::fs::write(d.join("rootfs.ext4"), vec![1u8; 10_000]).unwrap();
        std::fs::write(d.join("sub/deeper/x"), b"hi").unwrap();
        d
    };
    let args = ["prune", "--dry-run", "--json"];
    let h = Home::new();
    let theirs_dir = make(&h);
    let theirs = smolvm_py(&h, &args);
    let h2 = Home::new();
    let ours_dir = make(&h2);
    let v = json(&ours(&h2, &args));
    let size_of = |doc: &serde_json::Value, dir: &Path| {
        doc["data"]["would_remove"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["path"] == dir.to_str().unwrap())
            .unwrap_or_else(|| panic!("{dir:?} not in {doc}"))["size_bytes"]
            .clone()
    };
    assert_eq!(
        size_of(&v, &ours_dir),
        size_of(&theirs, &theirs_dir),
        "{v}\n{theirs}"
    );
    assert_eq!(
        v["data"]["would_free_bytes"],
        theirs["data"]["would_free_bytes"]
    );
}

/// A folder of the images root that is no image (a user's, SmolVM's `custom/`, an
/// interrupted load's `.partial`) is listed as SmolVM lists it — kind `other`, its size
/// and path, null for what it has not — so no disk use under the root is hidden; prune and
/// `image rm` leave it alone (it is not smolvm's to remove), and `rm` says so.
#[test]
fn a_folder_that_is_no_image_is_listed_as_smolvm_lists_it_and_left_alone() {
    let h = Home::new();
    let dir = h.images().join("mystuff");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/notes.txt"), vec![b'n'; 10_000]).unwrap();
    std::fs::write(h.images().join("loose-file"), b"x").unwrap();
    let theirs = smolvm_py(&h, &["image", "list", "--json"]);
    let mine = json(&ours(&h, &["image", "ls", "--json"]));
    let (t, o) = (row(&theirs, "mystuff"), row(&mine, "mystuff"));
    assert_eq!(t["kind"], "other");
    // SmolVM's `current` is null for it; ours says not current (a bool, as on every row).
    same_keys("mystuff", t, o, &["current"]);
    assert_eq!(o["current"], false);
    assert_eq!(o["kept"], "not an image, left alone", "{o}");
    // Files are no entries, in both.
    assert_eq!(
        support::texts(&mine["data"]["images"], "name"),
        support::texts(&theirs["data"]["images"], "name")
    );

    let p = json(&ours(&h, &["prune", "--dry-run", "--json"]));
    assert!(!p.to_string().contains("mystuff"), "{p}");
    let out = ours(&h, &["image", "rm", "mystuff"]);
    assert_eq!(out.status.code(), Some(1));
    let err = support::stderr(&out);
    assert!(err.contains("'mystuff' is not an image"), "{err}");
    assert!(dir.join("sub/notes.txt").is_file());
    // A folder a cache layout names (another version's) is prune's: not "left alone".
    std::fs::create_dir_all(h.images().join("0.0.1")).unwrap();
    let err = support::stderr(&ours(&h, &["image", "rm", "0.0.1"]));
    assert!(err.contains("No cached image named '0.0.1'"), "{err}");
    json(&ours(&h, &["prune", "--json"]));
    assert!(dir.join("sub/notes.txt").is_file());
}

/// A folder of the images root that something is mounted on is listed, but not walked:
/// another file system's use is not this one's (and a listing must not hang on a network
/// mount), so its sizes are 0; nothing on it is removed.
#[test]
fn a_mounted_folder_that_is_no_image_is_listed_but_not_walked() {
    require_root!("(mount)");
    let h = Home::new();
    let d = h.images().join("data");
    mount_tmpfs(&d);
    std::fs::write(d.join("big"), vec![b'b'; 200_000]).unwrap();
    let v = json(&ours(&h, &["image", "ls", "--json"]));
    let rm = ours(&h, &["image", "rm", "data"]);
    let kept = d.join("big").is_file();
    let _ = std::process::Command::new("umount").arg(&d).status();
    let r = row(&v, "data");
    assert_eq!(
        (r["kind"].as_str(), r["kept"].as_str()),
        (Some("other"), Some("not an image, left alone"))
    );
    assert_eq!(
        (r["size_bytes"].as_u64(), r["on_disk_bytes"].as_u64()),
        (Some(0), Some(0)),
        "{r}"
    );
    assert_eq!(rm.status.code(), Some(1));
    assert!(kept, "a file on the mount was removed");
}

/// What is mounted below an image's folder is another file system's: `image ls` and
/// `image inspect` size a SmolVM cache, a built image and a folder that is no image
/// without it (SmolVM's `size_bytes` and our `on_disk_bytes`), as prune sizes what it
/// removes, and a listing does not walk into a mount (a network one could hang it).
#[test]
fn sizes_stop_at_a_mount_below_an_images_folder() {
    require_root!("(mount)");
    let h = Home::new();
    let cache = "codex-v0.0.36-amd64-qemu";
    let built = h.images().join("my-built");
    std::fs::create_dir_all(&built).unwrap();
    std::fs::write(built.join(".fingerprint"), "fp\n").unwrap();
    std::fs::write(built.join("rootfs.ext4"), vec![1u8; 9000]).unwrap();
    let dirs = [
        (cache, smolvm_cache(&h, cache)),
        ("my-built", built),
        ("notes", h.images().join("notes")),
    ];
    let mut subs = Vec::new();
    for (_, d) in &dirs {
        let sub = d.join("deep/mnt");
        std::fs::create_dir_all(&sub).unwrap();
        subs.push(sub);
    }
    let sizes = |h: &Home| -> Vec<(u64, u64, Option<u64>)> {
        let ls = json(&ours(h, &["image", "ls", "--json"]));
        dirs.iter()
            .map(|(name, _)| {
                let r = row(&ls, name);
                let inspected = (r["kind"] != "other").then(|| {
                    let v = json(&ours(h, &["image", "inspect", name, "--json"]));
                    v["data"][0]["size_bytes"].as_u64().unwrap()
                });
                (
                    r["size_bytes"].as_u64().unwrap(),
                    r["on_disk_bytes"].as_u64().unwrap(),
                    inspected,
                )
            })
            .collect()
    };
    let before = sizes(&h);
    for sub in &subs {
        mount_tmpfs(sub);
        std::fs::write(sub.join("big"), vec![b'b'; 300_000]).unwrap();
    }
    let after = sizes(&h);
    for sub in &subs {
        let _ = std::process::Command::new("umount").arg(sub).status();
    }
    for (((name, _), b), a) in dirs.iter().zip(&before).zip(&after) {
        // The files' figure is the same; the folder's own drops the mount point's block.
        assert_eq!((a.0, a.2), (b.0, b.2), "{name}: before {b:?}, after {a:?}");
        assert!(a.1 <= b.1, "{name}: before {b:?}, after {a:?}");
        assert_eq!(a.2.unwrap_or(a.0), a.0, "{name}: inspect and ls differ");
    }
}

/// The staging folder a killed build or load left (`.<image>.staging-<pid>-<hex>`) is
/// smolvm's own: listed as SmolVM lists any folder, but named for what it is — whose
/// staging it is, and that the next build or load of that image removes it — and left to
/// that build (prune and `image rm` leave it; `rm` says whose it is and what removes it).
#[test]
fn a_killed_builds_staging_folder_is_named_for_what_it_is() {
    let h = Home::new();
    let name = ".team-img.staging-4242-9f3a";
    let dir = h.images().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("rootfs.ext4"), vec![b'r'; 10_000]).unwrap();
    let theirs = smolvm_py(&h, &["image", "list", "--json"]);
    let mine = json(&ours(&h, &["image", "ls", "--json"]));
    let (t, o) = (row(&theirs, name), row(&mine, name));
    same_keys(name, t, o, &["current"]);
    assert_eq!(o["kind"], "other");
    assert_eq!(
        o["kept"], "staging of 'team-img', left to its next build or load",
        "{o}"
    );
    let human = support::stdout(&ours(&h, &["image", "ls"]));
    assert!(human.contains("staging of 'team-img'"), "{human}");

    let p = json(&ours(&h, &["prune", "--dry-run", "--json"]));
    assert!(!p.to_string().contains("staging"), "{p}");
    json(&ours(&h, &["prune", "--json"]));
    let out = ours(&h, &["image", "rm", name]);
    assert_eq!(out.status.code(), Some(1));
    let err = support::stderr(&out);
    assert!(
        err.contains(&format!(
            "'{name}' is where a build or load of 'team-img' stages its files"
        )),
        "{err}"
    );
    assert!(err.contains("Build or load 'team-img' again"), "{err}");
    assert!(dir.join("rootfs.ext4").is_file());
    // A name that only looks like one is any folder.
    for odd in [".team-img.staging-x1", "team-img.staging-1", "..staging-1"] {
        std::fs::create_dir_all(h.images().join(odd)).unwrap();
    }
    let mine = json(&ours(&h, &["image", "ls", "--json"]));
    for odd in [".team-img.staging-x1", "team-img.staging-1", "..staging-1"] {
        assert_eq!(row(&mine, odd)["kept"], "not an image, left alone", "{odd}");
    }
}

/// A folder of the images root whose name is no UTF-8 is listed too (its name and path
/// shown lossily), so its disk use is not hidden, and the JSON report still goes out;
/// `image rm` of the name it is shown by leaves it alone and names its folder.
#[test]
fn a_folder_whose_name_is_no_utf8_is_listed_and_left_alone() {
    use std::os::unix::ffi::OsStrExt;
    let h = Home::new();
    let dir = h.images().join(std::ffi::OsStr::from_bytes(b"odd-\xff"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("data"), vec![b'd'; 50_000]).unwrap();
    let v = json(&ours(&h, &["image", "ls", "--json"]));
    let r = row(&v, "odd-\u{fffd}");
    assert_eq!(
        (r["kind"].as_str(), r["kept"].as_str()),
        (Some("other"), Some("not an image, left alone")),
        "{r}"
    );
    assert!(r["size_bytes"].as_u64() >= Some(50_000), "{r}");
    assert_eq!(
        r["path"].as_str(),
        Some(h.images().join("odd-\u{fffd}").to_str().unwrap())
    );
    let human = support::stdout(&ours(&h, &["image", "ls"]));
    assert!(human.contains("odd-\u{fffd}"), "{human}");
    let out = ours(&h, &["image", "rm", "odd-\u{fffd}"]);
    assert_eq!(out.status.code(), Some(1));
    let err = support::stderr(&out);
    assert!(err.contains("is not an image"), "{err}");
    assert!(dir.join("data").is_file());
}

/// `image rm` and `image inspect` read a name as SmolVM reads it, one rule for both: a
/// name no cache entry can have (a path out of the images root, `custom` alone, a
/// backslash) is SmolVM's `invalid_input` (exit 2) before anything is looked at, in its
/// words; the absolute path `image ls` prints names its entry, and one outside the root
/// is no name.
#[test]
fn image_rm_and_inspect_read_a_name_as_smolvm_does() {
    let h = Home::new();
    let name = "codex-v0.0.36-amd64-qemu";
    let dir = smolvm_cache(&h, name);
    std::fs::create_dir_all(h.home.join("etc-like")).unwrap();
    let outside = h.home.join("etc-like");
    let escaping = format!("{}/../etc-like", h.images().display());
    for verb in ["inspect", "rm"] {
        for bad in [
            "../etc",
            "a/../../b",
            "custom",
            "x\\y",
            outside.to_str().unwrap(),
            escaping.as_str(),
        ] {
            let args = ["image", verb, bad, "--json"];
            let (code, out, _) = support::smolvm_py::cli(h.env_vars(), &args);
            let theirs: serde_json::Value = serde_json::from_str(&out).unwrap();
            let mine = json(&ours(&h, &args));
            assert_eq!(code, 2, "SmolVM {args:?}: {theirs}");
            assert_eq!(mine["exit_code"], 2, "{args:?}: {mine}");
            assert_eq!(mine["error"], theirs["error"], "{args:?}");
        }
    }
    assert!(outside.is_dir() && dir.is_dir());
    // The path `image ls` prints: SmolVM inspects it, and so do we; rm removes it.
    let path = dir.to_str().unwrap();
    let theirs = smolvm_py(&h, &["image", "inspect", path, "--json"]);
    let mine = json(&ours(&h, &["image", "inspect", path, "--json"]));
    assert_eq!(mine["data"][0]["name"], theirs["data"][0]["name"], "{mine}");
    assert_eq!(mine["data"][0]["path"], path);
    let rm = json(&ours(&h, &["image", "rm", &format!("{path}/"), "--json"]));
    assert_eq!(rm["data"]["removed"][0]["name"], name, "{rm}");
    assert!(!dir.exists());
}
