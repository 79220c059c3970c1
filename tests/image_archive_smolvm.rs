//! `image save`/`image load` and SmolVM 0.0.36's archive format (a plain tar of
//! `files/<path>` members and a trailing `manifest.json`): an archive the real SmolVM
//! writes loads here, one written here with `--format smolvm` (or of a SmolVM cache name)
//! loads in the real SmolVM, and a hostile archive in that format changes nothing.

mod support;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use support::smolvm_py::ours;
use support::{json, Home};

fn sha(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// A rootfs with data and long zero runs, its `.zst`, and a kernel.
fn fixture() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut rootfs = vec![0u8; 3 << 20];
    for (i, b) in rootfs.iter_mut().enumerate().take(200_000) {
        *b = (i * 7 % 251) as u8;
    }
    rootfs[(2 << 20) + 5] = 9;
    let zst = zstd::encode_all(&rootfs[..], 3).unwrap();
    let kernel: Vec<u8> = (0..300_000u32).map(|i| (i * 13 % 256) as u8).collect();
    (rootfs, zst, kernel)
}

/// SmolVM's cache as its pull leaves it.
fn smolvm_cache(images: &Path, name: &str) -> PathBuf {
    let (rootfs, zst, kernel) = fixture();
    let d = images.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("vmlinux.bin"), &kernel).unwrap();
    std::fs::write(d.join("rootfs.ext4.zst"), &zst).unwrap();
    std::fs::write(d.join("rootfs.ext4"), &rootfs).unwrap();
    std::fs::write(
        d.join("rootfs.ext4.from-sha256"),
        format!("sparse-v1:{}", sha(&zst)),
    )
    .unwrap();
    d
}

fn smolvm_py(h: &Home, args: &[&str]) -> serde_json::Value {
    let (code, out, err) = support::smolvm_py::cli(h.env_vars(), args);
    assert_eq!(code, 0, "SmolVM {args:?}: {out}\n{err}");
    serde_json::from_str(&out).unwrap()
}

/// The cache holds exactly the fixture (rootfs recreated, sidecar naming the `.zst`).
fn assert_same_cache(d: &Path) {
    let (rootfs, zst, kernel) = fixture();
    assert_eq!(std::fs::read(d.join("vmlinux.bin")).unwrap(), kernel);
    assert_eq!(std::fs::read(d.join("rootfs.ext4.zst")).unwrap(), zst);
    assert_eq!(std::fs::read(d.join("rootfs.ext4")).unwrap(), rootfs);
    assert_eq!(
        std::fs::read_to_string(d.join("rootfs.ext4.from-sha256"))
            .unwrap()
            .trim(),
        format!("sparse-v1:{}", sha(&zst))
    );
}

#[test]
fn an_archive_smolvm_writes_loads_here() {
    let src = Home::new();
    let name = "codex-v0.0.36-amd64-qemu";
    smolvm_cache(&src.images(), name);
    let archive = src.tmp.path().join("codex.tar");
    let saved = smolvm_py(
        &src,
        &[
            "image",
            "save",
            name,
            "-o",
            archive.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(saved["data"]["excluded_decompressed_rootfs"], true);

    let h = Home::new();
    let out = ours(
        &h,
        &["image", "load", "-i", archive.to_str().unwrap(), "--json"],
    );
    let v = json(&out);
    assert_eq!(v["data"]["name"], name);
    assert_eq!(v["data"]["format"], "smolvm");
    let d = h.images().join(name);
    assert_eq!(v["data"]["image_dir"], d.to_str().unwrap());
    assert_same_cache(&d);
    // Sparse: the zero runs are holes.
    let m = std::fs::metadata(d.join("rootfs.ext4")).unwrap();
    assert!(std::os::unix::fs::MetadataExt::blocks(&m) * 512 < m.len());
    // Listed as SmolVM's cache, ready; and nothing else (no staging left).
    let ls = json(&ours(&h, &["image", "ls", "--json"]));
    let rows = ls["data"]["images"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{ls}");
    assert_eq!(rows[0]["kind"], "smolvm-cache");
    assert_eq!(rows[0]["ready"], true);
    assert_eq!(support::names(&h.images()), [name]);

    // Again: exists → refused (exit 1) without --force; --force replaces it.
    let out = ours(
        &h,
        &["image", "load", "-i", archive.to_str().unwrap(), "--json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let out = ours(
        &h,
        &[
            "image",
            "load",
            "-i",
            archive.to_str().unwrap(),
            "--force",
            "--json",
        ],
    );
    assert_eq!(json(&out)["data"]["replaced"], true);
    assert_same_cache(&d);
    assert_eq!(support::names(&h.images()), [name]);
}

#[test]
fn an_archive_written_here_in_smolvm_format_loads_in_smolvm() {
    // One of SmolVM's caches, by its name: SmolVM's format without asking.
    let h = Home::new();
    let name = "codex-v0.0.36-amd64-qemu";
    smolvm_cache(&h.images(), name);
    let a = h.tmp.path().join("a.tar");
    let out = ours(
        &h,
        &["image", "save", name, "-o", a.to_str().unwrap(), "--json"],
    );
    assert_eq!(json(&out)["data"]["format"], "smolvm");
    let dst = Home::new();
    let loaded = smolvm_py(
        &dst,
        &["image", "load", "-i", a.to_str().unwrap(), "--json"],
    );
    assert_eq!(loaded["data"]["name"], name);
    assert_same_cache(&dst.images().join(name));

    // One of ours, with --format smolvm: SmolVM's name for it, and our kernel.
    let h = Home::new();
    let (rootfs, zst, kernel) = fixture();
    let v = h.images().join("0.0.36");
    std::fs::create_dir_all(v.join("codex-amd64-qemu")).unwrap();
    std::fs::write(v.join("vmlinux-amd64.image"), &kernel).unwrap();
    std::fs::write(v.join("codex-amd64-qemu/rootfs.ext4.zst"), &zst).unwrap();
    std::fs::write(v.join("codex-amd64-qemu/rootfs.ext4"), &rootfs).unwrap();
    std::fs::write(
        v.join("codex-amd64-qemu/rootfs.ext4.from-sha256"),
        format!("sparse-v1:{}", sha(&zst)),
    )
    .unwrap();
    let b = h.tmp.path().join("b.tar");
    let out = ours(
        &h,
        &[
            "image",
            "save",
            "codex-amd64-qemu",
            "--format",
            "smolvm",
            "-o",
            b.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(json(&out)["data"]["name"], name);
    let dst = Home::new();
    smolvm_py(
        &dst,
        &["image", "load", "-i", b.to_str().unwrap(), "--json"],
    );
    assert_same_cache(&dst.images().join(name));
    // And the native format stays the default for our caches.
    let c = h.tmp.path().join("c.tar.zst");
    let out = ours(
        &h,
        &[
            "image",
            "save",
            "codex-amd64-qemu",
            "-o",
            c.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(json(&out)["data"]["format"], "native");
}

/// Every key of SmolVM's `data` is in ours with a value of the same JSON type, and the same
/// value for each key of `same`.
fn smolvm_keys(what: &str, theirs: &serde_json::Value, ours: &serde_json::Value, same: &[&str]) {
    let kind = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    };
    let t = theirs.as_object().unwrap();
    assert!(!t.is_empty(), "{what}: SmolVM reported nothing");
    for (k, v) in t {
        let o = ours.get(k);
        assert_eq!(
            o.map(kind),
            Some(kind(v)),
            "{what}: key {k}\nours:   {ours}\nSmolVM: {theirs}"
        );
        if same.contains(&k.as_str()) {
            assert_eq!(
                o,
                Some(v),
                "{what}: key {k}\nours:   {ours}\nSmolVM: {theirs}"
            );
        }
    }
}

/// `image save --json` and `image load --json` carry SmolVM's keys (`files` is a count
/// there; our list of the files is `file_entries`), for the same cache and archive.
#[test]
fn save_and_load_json_have_smolvms_keys() {
    let name = "codex-v0.0.36-amd64-qemu";
    let h = Home::new();
    smolvm_cache(&h.images(), name);
    let (a, b) = (h.tmp.path().join("a.tar"), h.tmp.path().join("b.tar"));
    let theirs = smolvm_py(
        &h,
        &["image", "save", name, "-o", a.to_str().unwrap(), "--json"],
    );
    let out = ours(
        &h,
        &["image", "save", name, "-o", b.to_str().unwrap(), "--json"],
    );
    let mine = json(&out);
    let (t, o) = (&theirs["data"], &mine["data"]);
    smolvm_keys(
        "save",
        t,
        o,
        &["name", "files", "excluded_decompressed_rootfs", "warnings"],
    );
    assert_eq!(o["archive_path"], b.to_str().unwrap(), "{o}");
    assert_eq!(
        o["archive_size_bytes"],
        std::fs::metadata(&b).unwrap().len(),
        "{o}"
    );
    assert_eq!(
        o["file_entries"].as_array().map(Vec::len),
        o["files"].as_u64().map(|n| n as usize),
        "{o}"
    );

    // Each loads the other's archive into a fresh home: the same keys again.
    let (x, y) = (Home::new(), Home::new());
    let theirs = smolvm_py(&x, &["image", "load", "-i", b.to_str().unwrap(), "--json"]);
    let mine = json(&ours(
        &y,
        &["image", "load", "-i", a.to_str().unwrap(), "--json"],
    ));
    let (t, o) = (&theirs["data"], &mine["data"]);
    smolvm_keys("load", t, o, &["name", "files", "warnings"]);
    let d = y.images().join(name);
    assert_eq!(o["path"], d.to_str().unwrap(), "{o}");
    assert!(o["size_bytes"].as_u64().unwrap() > 0, "{o}");
}

/// A SmolVM-format tar with these `(member name, type, bytes)` and this manifest.
fn hostile(path: &Path, members: &[(&str, tar::EntryType, Vec<u8>)], manifest: serde_json::Value) {
    let f = std::fs::File::create(path).unwrap();
    let mut t = tar::Builder::new(f);
    for (name, ty, data) in members {
        let mut h = tar::Header::new_ustar();
        // Raw bytes: the tar crate refuses to write `..` itself.
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(*ty);
        h.set_mode(0o644);
        if *ty == tar::EntryType::Symlink {
            h.set_link_name("/etc/passwd").unwrap();
            h.set_size(0);
            h.set_cksum();
            t.append(&h, &[][..]).unwrap();
        } else {
            h.set_size(data.len() as u64);
            h.set_cksum();
            t.append(&h, &data[..]).unwrap();
        }
    }
    let text = serde_json::to_vec(&manifest).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_path("manifest.json").unwrap();
    h.set_size(text.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    t.append(&h, &text[..]).unwrap();
    t.finish().unwrap();
}

#[test]
fn a_hostile_smolvm_archive_is_refused_and_changes_nothing() {
    let h = Home::new();
    let reg = tar::EntryType::Regular;
    let name = "codex-v0.0.36-amd64-qemu";
    let kernel = b"kernel".to_vec();
    let file = |path: &str, enc: &str, size: usize, sha256: &str| serde_json::json!({"path": path, "encoding": enc, "size": size, "sha256": sha256});
    let m = |name: &str, files: Vec<serde_json::Value>| serde_json::json!({"schema_version": 1, "name": name, "kind": "image", "files": files});
    let good = file("vmlinux.bin", "raw", kernel.len(), &sha(&kernel));
    let bomb_bytes = zstd::encode_all(&vec![0u8; 64 << 20][..], 19).unwrap();
    type Case<'a> = (
        &'a str,
        Vec<(&'a str, tar::EntryType, Vec<u8>)>,
        serde_json::Value,
    );
    let cases: Vec<Case> = vec![
        (
            "a symlink member",
            vec![("files/vmlinux.bin", tar::EntryType::Symlink, vec![])],
            m(name, vec![good.clone()]),
        ),
        (
            "a path that climbs",
            vec![("files/../evil", reg, kernel.clone())],
            m(
                name,
                vec![file("../evil", "raw", kernel.len(), &sha(&kernel))],
            ),
        ),
        (
            "a name that is a path",
            vec![("files/vmlinux.bin", reg, kernel.clone())],
            m("../../evil", vec![good.clone()]),
        ),
        (
            "a name that is not a cache",
            vec![("files/vmlinux.bin", reg, kernel.clone())],
            m("custom/x/abc", vec![good.clone()]),
        ),
        (
            "a member not listed",
            vec![
                ("files/vmlinux.bin", reg, kernel.clone()),
                ("files/extra", reg, kernel.clone()),
            ],
            m(name, vec![good.clone()]),
        ),
        ("a listed file missing", vec![], m(name, vec![good.clone()])),
        (
            "a checksum mismatch",
            vec![("files/vmlinux.bin", reg, b"kernEl".to_vec())],
            m(name, vec![good.clone()]),
        ),
        (
            "a zstd bomb",
            vec![("files/vmlinux.bin", reg, bomb_bytes.clone())],
            m(
                name,
                vec![file("vmlinux.bin", "zstd", 10, &sha(&bomb_bytes))],
            ),
        ),
        (
            "a hidden file name",
            vec![("files/.lock", reg, kernel.clone())],
            m(
                name,
                vec![file(".lock", "raw", kernel.len(), &sha(&kernel))],
            ),
        ),
        (
            "a newer schema",
            vec![("files/vmlinux.bin", reg, kernel.clone())],
            serde_json::json!({"schema_version": 2, "name": name, "files": [good.clone()]}),
        ),
    ];
    for (what, members, manifest) in cases {
        let p = h.tmp.path().join("bad.tar");
        hostile(&p, &members, manifest);
        let out = ours(&h, &["image", "load", "-i", p.to_str().unwrap(), "--json"]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{what}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["error"]["code"], "invalid_input", "{what}: {v}");
        assert!(
            support::names(&h.images()).is_empty(),
            "{what}: left {:?}",
            support::names(&h.images())
        );
        assert!(!h.tmp.path().join("evil").exists(), "{what}");
    }
    // The one good archive loads (the harness is not what refused the others).
    let p = h.tmp.path().join("good.tar");
    hostile(
        &p,
        &[("files/vmlinux.bin", reg, kernel.clone())],
        m(name, vec![good]),
    );
    json(&ours(
        &h,
        &["image", "load", "-i", p.to_str().unwrap(), "--json"],
    ));
    assert_eq!(
        std::fs::read(h.images().join(name).join("vmlinux.bin")).unwrap(),
        kernel
    );
}
