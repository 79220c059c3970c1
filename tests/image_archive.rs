//! `image save -o FILE NAME` / `image load -i FILE` with the real binary in a temporary
//! HOME: a built image and a pulled published image round-trip byte for byte with the
//! rootfs still sparse, and every bad input (unknown name, FILE there, a tampered, cut or
//! hostile archive, an existing image without --force) is a clear error, its documented
//! exit code, and nothing changed. No VM is booted.

mod support;

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};

use sha2::{Digest, Sha256};
use support::{json_exit, names, stderr, Home, CURRENT};

const NAME: &str = "my-img";
const ROOTFS_MIB: u64 = 64;

fn sha(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// Pseudo-random bytes (a kernel stand-in that does not compress).
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A sparse ext4 of `ROOTFS_MIB` MiB made by `mkfs.ext4` of a truncated file.
fn make_ext4(path: &Path) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(ROOTFS_MIB << 20).unwrap();
    drop(f);
    let st = StdCommand::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "rootfs"])
        .arg(path)
        .stdout(Stdio::null())
        .status()
        .expect("mkfs.ext4 (run scripts/install-deps.sh)");
    assert!(st.success());
}

fn on_disk(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().blocks() * 512
}

/// `<images>/my-img/{.fingerprint,vmlinux.bin,rootfs.ext4}` as `image build` leaves it.
fn built_image(h: &Home) -> PathBuf {
    let dir = h.images().join(NAME);
    std::fs::create_dir_all(&dir).unwrap();
    make_ext4(&dir.join("rootfs.ext4"));
    std::fs::write(dir.join("vmlinux.bin"), noise(2 << 20, 7)).unwrap();
    std::fs::write(dir.join(".fingerprint"), "fp-test-1\n").unwrap();
    dir
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let p = e.path();
            let data = if p.is_file() {
                std::fs::read(&p).unwrap()
            } else {
                Vec::new()
            };
            (e.file_name().to_string_lossy().into_owned(), data)
        })
        .collect();
    v.sort();
    v
}

fn save(h: &Home, file: &Path, extra: &[&str]) -> std::process::Output {
    save_as(h, file, NAME, extra)
}

/// `image save --json -o FILE NAME EXTRA…`.
fn save_as(h: &Home, file: &Path, name: &str, extra: &[&str]) -> std::process::Output {
    h.smolvm()
        .args(["image", "save", "--json", "-o"])
        .arg(file)
        .arg(name)
        .args(extra)
        .output()
        .unwrap()
}

fn load(h: &Home, file: &Path, extra: &[&str]) -> std::process::Output {
    h.smolvm()
        .args(["image", "load", "--json", "-i"])
        .arg(file)
        .args(extra)
        .output()
        .unwrap()
}

/// A built image saved to `<tmp>/img.tar.zst`: (home, image dir, its files, archive).
fn saved() -> (Home, PathBuf, Vec<(String, Vec<u8>)>, PathBuf) {
    let h = Home::new();
    let dir = built_image(&h);
    let before = snapshot(&dir);
    let file = h.tmp.path().join("img.tar.zst");
    let v = json_exit(&save(&h, &file, &[]), 0);
    assert_eq!(v["command"], "image.save");
    (h, dir, before, file)
}

#[test]
fn a_built_image_round_trips_byte_identical_and_sparse() {
    let (h, dir, before, file) = saved();
    let rootfs_blocks = on_disk(&dir.join("rootfs.ext4"));
    // The archive is one compressed file much smaller than the rootfs' apparent size.
    let archive = std::fs::metadata(&file).unwrap().len();
    assert!(archive < 8 << 20, "archive of {archive} bytes");
    // Nothing of ours beside it.
    assert_eq!(names(h.tmp.path()), ["home", "img.tar.zst"]);

    std::fs::remove_dir_all(&dir).unwrap();
    let v = json_exit(&load(&h, &file, &[]), 0);
    assert_eq!(v["command"], "image.load");
    assert_eq!(v["ok"], true);
    let d = &v["data"];
    assert_eq!(d["name"], NAME);
    assert_eq!(d["kind"], "built");
    assert_eq!(d["replaced"], false);
    assert_eq!(d["image_dir"], dir.to_str().unwrap());
    // SmolVM's `files` is their count; ours are `file_entries`.
    assert_eq!(d["files"], 3);
    let files: Vec<&str> = d["file_entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(files, [".fingerprint", "vmlinux.bin", "rootfs.ext4"]);
    let rootfs_entry = &d["file_entries"][2];
    assert_eq!(rootfs_entry["size"], ROOTFS_MIB << 20);
    let rootfs = std::fs::read(dir.join("rootfs.ext4")).unwrap();
    assert_eq!(rootfs_entry["sha256"], sha(&rootfs));

    assert_eq!(snapshot(&dir), before, "files differ after the round trip");
    let blocks = on_disk(&dir.join("rootfs.ext4"));
    assert!(
        blocks <= rootfs_blocks + (1 << 20) && blocks < (ROOTFS_MIB << 20) / 8,
        "rootfs not sparse after load: {blocks} bytes on disk (was {rootfs_blocks})"
    );
    // Only the image in the cache: no staging directory left.
    assert_eq!(names(&h.images()), [NAME]);
    // What `sandbox create --image NAME` resolves.
    let env = smolvm::core::Env::from_vars(h.env_vars(), 0);
    let paths = smolvm::core::Paths::resolve(&env, None);
    assert_eq!(smolvm::core::images::built_images(&paths), [NAME]);
    assert_eq!(
        smolvm::core::images::resolve_image(&paths, NAME).unwrap(),
        (dir.join("vmlinux.bin"), dir.join("rootfs.ext4"))
    );

    // The human face says what it did.
    std::fs::remove_dir_all(&dir).unwrap();
    let out = h
        .smolvm()
        .args(["image", "load", "-i"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = support::stdout(&out);
    assert!(
        text.starts_with(&format!(
            "Loaded built image {NAME} into ~/.smolvm/images/{NAME}"
        )),
        "{text}"
    );
}

#[test]
fn an_existing_image_is_replaced_only_with_force() {
    let (h, dir, before, file) = saved();
    // Change the cached image: a load without --force must not touch it.
    std::fs::write(dir.join(".fingerprint"), "fp-newer\n").unwrap();
    let changed = snapshot(&dir);
    let v = json_exit(&load(&h, &file, &[]), 1);
    assert_eq!(v["error"]["code"], "refused");
    let msg = support::error_message(&v);
    assert!(
        msg.starts_with(&format!("an image named {NAME} already exists at ")),
        "{msg}"
    );
    assert_eq!(v["error"]["recovery"], "Pass --force to replace it.");
    assert_eq!(snapshot(&dir), changed);
    assert_eq!(names(&h.images()), [NAME]);

    let v = json_exit(&load(&h, &file, &["--force"]), 0);
    assert_eq!(v["data"]["replaced"], true);
    assert_eq!(snapshot(&dir), before);
    assert_eq!(names(&h.images()), [NAME]);

    // A folder smolvm did not make is never replaced, even with --force.
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("precious"), "mine").unwrap();
    let v = json_exit(&load(&h, &file, &["--force"]), 1);
    assert!(
        support::error_message(&v).contains("is not an image smolvm built"),
        "{v}"
    );
    assert_eq!(names(&dir), ["precious"]);
    assert_eq!(names(&h.images()), [NAME]);
}

#[test]
fn save_refuses_unknown_names_and_an_existing_file() {
    let (h, _dir, _before, file) = saved();
    let archive = std::fs::read(&file).unwrap();
    // An unknown name: exit 1, nothing written.
    let other = h.tmp.path().join("other.tar.zst");
    let v = json_exit(&save_as(&h, &other, "nope", &[]), 1);
    assert_eq!(v["command"], "image.save");
    assert_eq!(v["error"]["message"], "No cached image named 'nope'.");
    assert!(!other.exists());
    // Not a name at all: SmolVM's `invalid_input` (exit 2).
    let v = json_exit(&save_as(&h, &other, "../x", &[]), 2);
    assert_eq!(v["error"]["code"], "invalid_input");
    assert!(!other.exists());

    // FILE exists: refused (exit 1), unchanged; --force replaces it.
    std::fs::write(&other, b"keep me").unwrap();
    let v = json_exit(&save(&h, &other, &[]), 1);
    assert_eq!(v["error"]["code"], "refused");
    assert_eq!(
        v["error"]["message"],
        format!(
            "{} already exists; refusing to overwrite it",
            other.display()
        )
    );
    assert_eq!(std::fs::read(&other).unwrap(), b"keep me");
    let v = json_exit(&save(&h, &other, &["--force"]), 0);
    assert_eq!(v["data"]["replaced"], true);
    assert_eq!(std::fs::read(&other).unwrap(), archive, "not deterministic");

    // A symbolic link at FILE is never followed nor replaced, even with --force.
    let target = h.tmp.path().join("target");
    std::fs::write(&target, b"target").unwrap();
    let link = h.tmp.path().join("link.tar.zst");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let v = json_exit(&save(&h, &link, &["--force"]), 1);
    assert!(support::error_message(&v).contains("symbolic link"), "{v}");
    assert_eq!(std::fs::read(&target).unwrap(), b"target");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    // No temporary file left beside any of them.
    assert_eq!(
        names(h.tmp.path()),
        [
            "home",
            "img.tar.zst",
            "link.tar.zst",
            "other.tar.zst",
            "target"
        ]
    );
}

/// One entry of an archive: its header and data.
struct Entry {
    header: tar::Header,
    data: Vec<u8>,
}

fn read_entries(file: &Path) -> Vec<Entry> {
    let dec = zstd::Decoder::new(std::fs::File::open(file).unwrap()).unwrap();
    let mut a = tar::Archive::new(dec);
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            Entry {
                header: e.header().clone(),
                data,
            }
        })
        .collect()
}

/// Write `entries` as a `.tar.zst` (headers as given: names are raw bytes).
fn write_entries(file: &Path, entries: &[Entry]) {
    let mut enc = zstd::Encoder::new(std::fs::File::create(file).unwrap(), 3).unwrap();
    for e in entries {
        enc.write_all(e.header.as_bytes()).unwrap();
        enc.write_all(&e.data).unwrap();
        let pad = (512 - e.data.len() % 512) % 512;
        enc.write_all(&vec![0u8; pad]).unwrap();
    }
    enc.write_all(&[0u8; 1024]).unwrap();
    enc.finish().unwrap();
}

fn set_name(h: &mut tar::Header, name: &[u8]) {
    let gnu = h.as_gnu_mut().unwrap();
    gnu.name = [0; 100];
    gnu.name[..name.len()].copy_from_slice(name);
    h.set_cksum();
}

/// Load `file` into a cache where the image is gone: SmolVM's `invalid_input` (exit 2),
/// an error containing `want`, and nothing left in the images root.
fn load_fails(h: &Home, file: &Path, want: &str) {
    let v = json_exit(&load(h, file, &["--force"]), 2);
    assert_eq!(v["error"]["code"], "invalid_input");
    assert_eq!(v["command"], "image.load");
    assert_eq!(v["ok"], false);
    let msg = support::error_message(&v);
    assert!(msg.contains(want), "{want:?} not in {msg:?}");
    assert!(
        msg.starts_with(&format!("invalid image archive {}", file.display())),
        "{msg}"
    );
    assert_eq!(
        names(&h.images()),
        Vec::<String>::new(),
        "something was left in the cache"
    );
}

#[test]
fn tampered_cut_and_hostile_archives_change_nothing() {
    let (h, dir, _before, file) = saved();
    std::fs::remove_dir_all(&dir).unwrap();
    let good = read_entries(&file);
    assert_eq!(good.len(), 4);
    let bad = h.tmp.path().join("bad.tar.zst");

    // `../x` in place of the first file.
    let mut e = read_entries(&file);
    set_name(&mut e[1].header, b"../x");
    write_entries(&bad, &e);
    load_fails(
        &h,
        &bad,
        "unexpected entry \"../x\" (expected .fingerprint)",
    );
    assert!(!h.tmp.path().join("x").exists());

    // An absolute name.
    let mut e = read_entries(&file);
    set_name(&mut e[1].header, b"/tmp/evil");
    write_entries(&bad, &e);
    load_fails(&h, &bad, "unexpected entry \"/tmp/evil\"");

    // A symbolic link under the expected name.
    let mut e = read_entries(&file);
    e[1].header.set_entry_type(tar::EntryType::Symlink);
    e[1].header.set_size(0);
    e[1].header.set_link_name("/etc/passwd").unwrap();
    e[1].header.set_cksum();
    e[1].data.clear();
    write_entries(&bad, &e);
    load_fails(&h, &bad, "is not a regular file");

    // A hard link and a device, too.
    for t in [tar::EntryType::Link, tar::EntryType::Char] {
        let mut e = read_entries(&file);
        e[2].header.set_entry_type(t);
        e[2].header.set_size(0);
        e[2].header.set_cksum();
        e[2].data.clear();
        write_entries(&bad, &e);
        load_fails(&h, &bad, "is not a regular file");
    }

    // One byte of the kernel changed.
    let mut e = read_entries(&file);
    e[2].data[1000] ^= 0xff;
    write_entries(&bad, &e);
    load_fails(&h, &bad, "SHA-256 mismatch for vmlinux.bin");

    // A manifest naming a path instead of an image.
    let mut e = read_entries(&file);
    let text = String::from_utf8(e[0].data.clone()).unwrap();
    e[0].data = text
        .replace(&format!("\"{NAME}\""), "\"../evil\"")
        .into_bytes();
    let len = e[0].data.len() as u64;
    e[0].header.set_size(len);
    e[0].header.set_cksum();
    write_entries(&bad, &e);
    load_fails(&h, &bad, "invalid image name \"../evil\"");

    // An extra entry after the image files.
    let mut e = read_entries(&file);
    let mut extra = tar::Header::new_gnu();
    extra.set_size(3);
    extra.set_entry_type(tar::EntryType::Regular);
    set_name(&mut extra, b"extra");
    e.push(Entry {
        header: extra,
        data: b"abc".to_vec(),
    });
    write_entries(&bad, &e);
    load_fails(&h, &bad, "unexpected entry \"extra\" after the image files");

    // Cut in the middle of the rootfs, and cut right after the manifest.
    let bytes = std::fs::read(&file).unwrap();
    for cut in [bytes.len() * 2 / 3, bytes.len() - 1, 300] {
        std::fs::write(&bad, &bytes[..cut]).unwrap();
        load_fails(&h, &bad, "truncated or corrupt");
    }
    // Not an archive at all.
    std::fs::write(&bad, b"hello").unwrap();
    load_fails(&h, &bad, "truncated or corrupt");

    // A missing input: SmolVM's `invalid_input`, exit 2, clear.
    let v = json_exit(&load(&h, &h.tmp.path().join("missing.tar.zst"), &[]), 2);
    assert_eq!(v["error"]["code"], "invalid_input", "{v}");
    assert!(
        support::error_message(&v).starts_with("Could not open "),
        "{v}"
    );
    // And the good one still loads after all that.
    json_exit(&load(&h, &file, &[]), 0);
    assert_eq!(names(&h.images()), [NAME]);
}

/// A local release: a manifest publishing `codex` (amd64/qemu) from `file:` URLs.
fn release(h: &Home) -> (PathBuf, Vec<u8>, Vec<u8>) {
    let dir = h.tmp.path().join("release");
    std::fs::create_dir_all(&dir).unwrap();
    let ext4 = dir.join("rootfs.ext4");
    make_ext4(&ext4);
    let zst = zstd::encode_all(&std::fs::read(&ext4).unwrap()[..], 3).unwrap();
    std::fs::remove_file(&ext4).unwrap();
    let kernel = noise(1 << 20, 11);
    std::fs::write(dir.join("rootfs.ext4.zst"), &zst).unwrap();
    std::fs::write(dir.join("kernel"), &kernel).unwrap();
    let m = serde_json::json!({"release": "test", "images": [{
        "preset": "codex", "arch": "amd64", "vmm": "qemu", "os": "ubuntu",
        "kernel_url": format!("file://{}", dir.join("kernel").display()),
        "kernel_sha256": sha(&kernel),
        "rootfs_url": format!("file://{}", dir.join("rootfs.ext4.zst").display()),
        "rootfs_sha256": sha(&zst),
    }]});
    let path = dir.join("manifest.json");
    std::fs::write(&path, serde_json::to_string(&m).unwrap()).unwrap();
    (path, zst, kernel)
}

#[test]
fn a_pulled_image_round_trips_and_boots_offline_from_the_cache() {
    let h = Home::new();
    let (manifest, zst, kernel) = release(&h);
    let cmd = |args: &[&str]| {
        let mut c = h.smolvm();
        c.env("SMOLVM_MANIFEST", &manifest).args(args);
        c.output().unwrap()
    };
    let platform = ["--arch", "amd64", "--vmm", "qemu", "--json"];
    let pull = || {
        let mut a = vec!["image", "pull", "codex"];
        a.extend(platform);
        cmd(&a)
    };
    json_exit(&pull(), 0);
    let version_dir = h.images().join(CURRENT);
    let dir = version_dir.join("codex-amd64-qemu");
    let kernel_path = version_dir.join("vmlinux-amd64.image");
    let rootfs = std::fs::read(dir.join("rootfs.ext4")).unwrap();

    let file = h.tmp.path().join("codex.tar.zst");
    let out = cmd(&[
        "image",
        "save",
        "codex-amd64-qemu",
        "-o",
        file.to_str().unwrap(),
        "--json",
    ]);
    let v = json_exit(&out, 0);
    assert_eq!(v["data"]["kind"], "published");
    assert_eq!(v["data"]["version"], CURRENT);

    // The cache and the release both gone: only the archive is left.
    std::fs::remove_dir_all(h.images()).unwrap();
    std::fs::create_dir_all(h.images()).unwrap();
    std::fs::remove_file(manifest.with_file_name("rootfs.ext4.zst")).unwrap();
    std::fs::remove_file(manifest.with_file_name("kernel")).unwrap();

    let v = json_exit(
        &cmd(&["image", "load", "-i", file.to_str().unwrap(), "--json"]),
        0,
    );
    assert_eq!(v["data"]["image_dir"], dir.to_str().unwrap());
    assert_eq!(v["data"]["kernel_path"], kernel_path.to_str().unwrap());
    assert_eq!(std::fs::read(&kernel_path).unwrap(), kernel);
    assert_eq!(std::fs::read(dir.join("rootfs.ext4.zst")).unwrap(), zst);
    assert_eq!(std::fs::read(dir.join("rootfs.ext4")).unwrap(), rootfs);
    assert!(on_disk(&dir.join("rootfs.ext4")) < (ROOTFS_MIB << 20) / 8);
    // What `start` runs first: the pull finds everything in place, nothing to fetch.
    let v = json_exit(&pull(), 0);
    assert_eq!(v["data"]["already_cached"], true);
    assert_eq!(v["data"]["downloaded_bytes"], 0);
    let mut ls = vec!["image", "ls"];
    ls.push("--json");
    let v = json_exit(&cmd(&ls), 0);
    assert_eq!(v["data"]["images"][0]["ready"], true);

    // A tampered rootfs in a published archive: nothing left, not even the version
    // directory the load locked.
    std::fs::remove_dir_all(h.images()).unwrap();
    std::fs::create_dir_all(h.images()).unwrap();
    let mut e = read_entries(&file);
    assert_eq!(e[4].header.path().unwrap().to_str(), Some("rootfs.ext4"));
    e[4].data[5000] ^= 1;
    let bad = h.tmp.path().join("bad.tar.zst");
    write_entries(&bad, &e);
    let v = json_exit(
        &cmd(&["image", "load", "-i", bad.to_str().unwrap(), "--json"]),
        2,
    );
    let msg = support::error_message(&v);
    assert!(msg.contains("SHA-256 mismatch for rootfs.ext4"), "{msg}");
    assert_eq!(names(&h.images()), Vec::<String>::new());

    // An archive of another image version is refused, naming both.
    let out = h
        .smolvm()
        .env("SMOLVM_MANIFEST", &manifest)
        .env("SMOLVM_IMAGE_VERSION", "0.0.99")
        .args(["image", "load", "--json", "-i"])
        .arg(&file)
        .output()
        .unwrap();
    let v = json_exit(&out, 1);
    let msg = support::error_message(&v);
    assert!(
        msg.contains(&format!("of image version {CURRENT}")) && msg.contains("0.0.99"),
        "{msg}"
    );
    assert!(!h.images().join("0.0.99").exists());
}

/// `image build --init`'s record (`.init`) travels with a built image, and a bad one in an
/// archive is refused like any other tampering.
#[test]
fn a_built_images_init_record_round_trips_and_a_bad_one_is_refused() {
    let h = Home::new();
    let dir = built_image(&h);
    std::fs::write(dir.join(".init"), "/sbin/custom-init").unwrap();
    let file = h.tmp.path().join("img.tar.zst");
    let v = json_exit(&save(&h, &file, &[]), 0);
    let files = support::texts(&v["data"]["file_entries"], "name");
    assert_eq!(
        files,
        [".fingerprint", "vmlinux.bin", "rootfs.ext4", ".init"]
    );
    std::fs::remove_dir_all(&dir).unwrap();
    json_exit(&load(&h, &file, &[]), 0);
    assert_eq!(
        std::fs::read_to_string(dir.join(".init")).unwrap(),
        "/sbin/custom-init"
    );

    std::fs::write(dir.join(".init"), "relative init").unwrap();
    json_exit(&save(&h, &file, &["--force"]), 0);
    std::fs::remove_dir_all(&dir).unwrap();
    load_fails(&h, &file, ".init");
}

/// A save stopped by Ctrl-C (SIGINT to the process, as a terminal sends it) or SIGTERM
/// ends `interrupted` (exit 130) and leaves nothing beside its `-o`: the temporary
/// `.partial` file it was writing went with it (no destructor runs on a plain Ctrl-C).
#[test]
fn a_save_stopped_by_ctrl_c_leaves_no_partial_file() {
    let h = Home::new();
    let dir = built_image(&h);
    // Enough to read that the save is caught midway.
    std::fs::write(dir.join("vmlinux.bin"), noise(96 << 20, 11)).unwrap();
    for signal in [nix::sys::signal::SIGINT, nix::sys::signal::SIGTERM] {
        let out_dir = h.tmp.path().join(format!("out-{signal}"));
        std::fs::create_dir_all(&out_dir).unwrap();
        let mut save = StdCommand::new(assert_cmd::cargo::cargo_bin("smolvm"))
            .env_clear()
            .envs(h.env_vars())
            .args(["image", "save", "-o"])
            .arg(out_dir.join("img.tar.zst"))
            .arg(NAME)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let t0 = std::time::Instant::now();
        // The partial file appears once the files are hashed: stop it while it packs.
        while names(&out_dir).is_empty() {
            assert!(save.try_wait().unwrap().is_none(), "the save ended first");
            assert!(t0.elapsed() < std::time::Duration::from_secs(120));
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let pid = nix::unistd::Pid::from_raw(save.id() as i32);
        nix::sys::signal::kill(pid, signal).unwrap();
        let status = save.wait().unwrap();
        let mut err = String::new();
        save.stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert_eq!(status.code(), Some(130), "{signal}: {err}");
        assert!(err.contains("interrupted by"), "{err}");
        assert_eq!(names(&out_dir), Vec::<String>::new(), "after {signal}");
    }
}
