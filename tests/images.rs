//! Published images end to end: the real binary pulls from a real HTTP server on
//! 127.0.0.1 serving a test manifest and real artifacts (an ext4 made with `mkfs.ext4`,
//! compressed with `zstd`), into a temporary HOME.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use support::http_server::{Behaviour, Server};
use support::{json, smolvm_db_with_vm, stderr, stdout, Home, CURRENT};

const PLATFORM: [&str; 4] = ["--arch", "amd64", "--vmm", "qemu"];

fn sha(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// One rootfs: a real ext4 and its zstd-compressed bytes.
struct Rootfs {
    ext4: Vec<u8>,
    zst: Vec<u8>,
}

fn run(cmd: &str, args: &[&str]) {
    let st = StdCommand::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (run scripts/install-deps.sh)"));
    assert!(st.success(), "{cmd} {args:?} failed");
}

/// A 64 MiB ext4 holding `marker` and 1 MiB of pseudo-random data, mostly free space.
fn make_rootfs(marker: &str) -> Rootfs {
    let t = tempfile::tempdir().unwrap();
    let content = t.path().join("content");
    std::fs::create_dir_all(content.join("etc")).unwrap();
    std::fs::write(content.join("etc/marker"), marker).unwrap();
    let mut x: u64 = 0x9e3779b97f4a7c15 ^ marker.len() as u64;
    let noise: Vec<u8> = (0..(1 << 20))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(content.join("noise.bin"), noise).unwrap();
    let img = t.path().join("rootfs.ext4");
    let f = std::fs::File::create(&img).unwrap();
    f.set_len(64 << 20).unwrap();
    drop(f);
    run(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-E",
            "root_owner=0:0",
            "-d",
            content.to_str().unwrap(),
            img.to_str().unwrap(),
        ],
    );
    let zst = t.path().join("rootfs.ext4.zst");
    run(
        "zstd",
        &[
            "-q",
            "-f",
            "-3",
            img.to_str().unwrap(),
            "-o",
            zst.to_str().unwrap(),
        ],
    );
    Rootfs {
        ext4: std::fs::read(&img).unwrap(),
        zst: std::fs::read(&zst).unwrap(),
    }
}

fn rootfs_a() -> &'static Rootfs {
    static A: OnceLock<Rootfs> = OnceLock::new();
    A.get_or_init(|| make_rootfs("release A"))
}

fn rootfs_b() -> &'static Rootfs {
    static B: OnceLock<Rootfs> = OnceLock::new();
    B.get_or_init(|| make_rootfs("release B, rebuilt"))
}

const KERNEL: &[u8] = b"\x7fELF pretend kernel image for tests\n";

/// A release directory served over HTTP: `manifest.json`, `vmlinux-amd64.image`,
/// `codex-amd64-rootfs.ext4.zst`.
struct Release {
    home: Home,
    server: Server,
    dir: PathBuf,
}

impl Release {
    fn new(rootfs: &Rootfs) -> Self {
        let home = Home::new();
        let dir = home.tmp.path().join("release");
        std::fs::create_dir_all(&dir).unwrap();
        let server = Server::start(dir.clone());
        let r = Release { home, server, dir };
        r.publish(rootfs, None);
        r
    }

    /// Write the artifacts and a manifest for them (`rootfs_sha` overrides the pin).
    fn publish(&self, rootfs: &Rootfs, rootfs_sha: Option<&str>) {
        std::fs::write(self.dir.join("vmlinux-amd64.image"), KERNEL).unwrap();
        std::fs::write(self.dir.join("codex-amd64-rootfs.ext4.zst"), &rootfs.zst).unwrap();
        let sha_z = rootfs_sha
            .map(str::to_string)
            .unwrap_or_else(|| sha(&rootfs.zst));
        self.manifest(&format!(
            r#"{{"release": "images-test", "images": [
              {{"preset": "codex", "arch": "amd64", "vmm": "qemu", "os": "ubuntu",
                "kernel_url": "vmlinux-amd64.image", "kernel_sha256": "{}",
                "rootfs_url": "codex-amd64-rootfs.ext4.zst", "rootfs_sha256": "{sha_z}"}}]}}"#,
            sha(KERNEL)
        ));
    }

    fn manifest(&self, text: &str) {
        std::fs::write(self.dir.join("manifest.json"), text).unwrap();
    }

    fn smolvm(&self) -> assert_cmd::Command {
        let mut c = self.home.smolvm();
        self.env(c.env("SMOLVM_MANIFEST", self.server.url("manifest.json")));
        c
    }

    fn env<C: Envs>(&self, c: &mut C) {
        c.set("SMOLVM_HTTP_TIMEOUT_SECS", "1");
        c.set("SMOLVM_HTTP_RETRIES", "2");
        c.set("SMOLVM_HTTP_BACKOFF_MS", "10");
    }

    /// The same command as a plain child process (to kill or run concurrently).
    fn spawn(&self, args: &[&str]) -> std::process::Child {
        let mut c = StdCommand::new(env!("CARGO_BIN_EXE_smolvm"));
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home.home)
            .env("SMOLVM_DATA_DIR", &self.home.data)
            .env("SMOLVM_IMAGE_VERSION", CURRENT)
            .env("SMOLVM_MANIFEST", self.server.url("manifest.json"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.env(&mut c);
        c.spawn().unwrap()
    }

    fn version_dir(&self) -> PathBuf {
        self.home.images().join(CURRENT)
    }

    fn image_dir(&self) -> PathBuf {
        self.version_dir().join("codex-amd64-qemu")
    }

    fn pull(&self) -> std::process::Output {
        self.smolvm()
            .args(["image", "pull", "codex", "--json"])
            .args(PLATFORM)
            .output()
            .unwrap()
    }

    /// A pull that fails with exit 1: its error message.
    fn failed_pull(&self) -> String {
        let out = self.pull();
        assert_eq!(out.status.code(), Some(1));
        json(&out)["error"]["message"].as_str().unwrap().to_string()
    }

    /// Every name in the image directory except the lock file.
    fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.image_dir())
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n != ".lock")
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    fn assert_good(&self, rootfs: &Rootfs) {
        let d = self.image_dir();
        assert_eq!(
            std::fs::read(d.join("rootfs.ext4.zst")).unwrap(),
            rootfs.zst
        );
        assert!(
            std::fs::read(d.join("rootfs.ext4")).unwrap() == rootfs.ext4,
            "rootfs.ext4 differs from the published ext4"
        );
        assert_eq!(
            std::fs::read_to_string(d.join("rootfs.ext4.from-sha256")).unwrap(),
            format!("sparse-v1:{}", sha(&rootfs.zst))
        );
        assert_eq!(
            std::fs::read(self.version_dir().join("vmlinux-amd64.image")).unwrap(),
            KERNEL
        );
        assert!(
            !self.files().iter().any(|n| n.ends_with(".partial")),
            "temp files left: {:?}",
            self.files()
        );
    }
}

trait Envs {
    fn set(&mut self, k: &str, v: &str);
}
impl Envs for assert_cmd::Command {
    fn set(&mut self, k: &str, v: &str) {
        self.env(k, v);
    }
}
impl Envs for StdCommand {
    fn set(&mut self, k: &str, v: &str) {
        self.env(k, v);
    }
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

const ZST: &str = "codex-amd64-rootfs.ext4.zst";

#[test]
fn pull_happy_path_verifies_unpacks_sparse_and_then_reuses() {
    let r = Release::new(rootfs_a());
    let out = r.pull();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["command"], "image.pull");
    assert_eq!(v["ok"], true);
    assert_eq!(v["data"]["name"], "codex-amd64-qemu");
    assert_eq!(v["data"]["already_cached"], false);
    assert_eq!(v["data"]["release"], "images-test");
    assert_eq!(
        v["data"]["rootfs_path"],
        r.image_dir().join("rootfs.ext4").to_str().unwrap()
    );
    r.assert_good(rootfs_a());
    // Sparse: the 64 MiB ext4 takes far fewer blocks than its length.
    let m = std::fs::metadata(r.image_dir().join("rootfs.ext4")).unwrap();
    assert_eq!(m.len(), 64 << 20);
    assert!(
        m.blocks() * 512 < 16 << 20,
        "not sparse: {}",
        m.blocks() * 512
    );
    // A real ext4 that e2fsck accepts.
    let fsck = StdCommand::new("e2fsck")
        .args(["-fn"])
        .arg(r.image_dir().join("rootfs.ext4"))
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );

    // Second pull: nothing downloaded, nothing rewritten.
    let before = std::fs::metadata(r.image_dir().join("rootfs.ext4"))
        .unwrap()
        .ino();
    let out = r.pull();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["data"]["already_cached"], true);
    assert_eq!(r.server.requests(ZST), 1);
    assert_eq!(r.server.requests("vmlinux-amd64.image"), 1);
    assert_eq!(
        std::fs::metadata(r.image_dir().join("rootfs.ext4"))
            .unwrap()
            .ino(),
        before
    );

    // Human output with aliases is the same image.
    let out = r
        .smolvm()
        .args(["image", "pull", "codex"])
        .args(PLATFORM)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("Already cached: codex-amd64-qemu ("),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("  rootfs: ~/.smolvm/images/0.0.14/codex-amd64-qemu/rootfs.ext4"));
}

#[test]
fn wrong_checksum_is_rejected_and_nothing_is_left() {
    let r = Release::new(rootfs_a());
    let wrong = "0".repeat(64);
    r.publish(rootfs_a(), Some(&wrong));
    let out = r
        .smolvm()
        .args(["image", "pull", "codex"])
        .args(PLATFORM)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let url = r.server.url(ZST);
    assert!(
        err.contains(&format!(
            "SHA-256 mismatch for {url}\n  expected: {wrong}\n  actual:   {}",
            sha(&rootfs_a().zst)
        )),
        "{err}"
    );
    assert!(r.files().is_empty(), "left in cache: {:?}", r.files());
    // Not even the image's directory and its lock: `image ls` and the Images pane would
    // list an empty cache.
    assert!(
        !r.image_dir().exists(),
        "left behind: {:?}",
        std::fs::read_dir(r.image_dir())
            .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
    );
    let out = r.smolvm().args(["image", "ls", "--json"]).output().unwrap();
    assert_eq!(
        json(&out)["data"]["images"].as_array().map(Vec::len),
        Some(0),
        "{}",
        stdout(&out)
    );
    // --json: one envelope on failure too.
    let out = r.pull();
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"]["code"], "runtime_error");
    assert!(support::error_message(&v).starts_with("SHA-256 mismatch for "));
}

#[test]
fn truncated_body_fails_after_bounded_retries_and_leaves_nothing() {
    let r = Release::new(rootfs_a());
    r.server
        .set(ZST, Behaviour::Truncate(rootfs_a().zst.len() / 2));
    let msg = r.failed_pull();
    assert!(
        msg.starts_with(&format!("Download failed for {}", r.server.url(ZST))),
        "{msg}"
    );
    assert!(msg.contains("gave up after 3 attempts"), "{msg}");
    assert_eq!(r.server.requests(ZST), 3, "1 try + SMOLVM_HTTP_RETRIES=2");
    assert!(r.files().is_empty(), "left in cache: {:?}", r.files());
}

#[test]
fn http_404_is_not_retried_and_500_is() {
    let r = Release::new(rootfs_a());
    r.server.set(ZST, Behaviour::Status(404));
    let msg = r.failed_pull();
    assert!(msg.contains("HTTP 404 Not Found"), "{msg}");
    assert_eq!(r.server.requests(ZST), 1);

    r.server.set(ZST, Behaviour::Status(500));
    let msg = r.failed_pull();
    assert!(msg.contains("HTTP 500 Internal Server Error"), "{msg}");
    assert_eq!(r.server.requests(ZST), 1 + 3);
    assert!(r.files().is_empty(), "{:?}", r.files());
}

#[test]
fn a_stalled_server_times_out() {
    let r = Release::new(rootfs_a());
    r.server.set(ZST, Behaviour::Stall(100_000));
    let msg = r.failed_pull();
    assert!(msg.contains("timed out"), "{msg}");
    assert!(r.files().is_empty(), "{:?}", r.files());
}

#[test]
fn a_reset_mid_body_resumes_with_range() {
    let r = Release::new(rootfs_a());
    let half = rootfs_a().zst.len() / 2;
    r.server.set(
        ZST,
        Behaviour::ResetAfter {
            bytes: half,
            times: 1,
        },
    );
    let out = r.pull();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    r.assert_good(rootfs_a());
    assert_eq!(r.server.requests(ZST), 2);
    let ranges = r.server.ranges(ZST);
    assert_eq!(ranges.len(), 1, "{ranges:?}");
    let start: usize = ranges[0]
        .trim_start_matches("bytes=")
        .trim_end_matches('-')
        .parse()
        .unwrap();
    assert!(start > 0 && start <= half, "{ranges:?}");
}

#[test]
fn a_server_that_ignores_range_restarts_cleanly() {
    let r = Release::new(rootfs_a());
    let half = rootfs_a().zst.len() / 2;
    r.server.set(
        ZST,
        Behaviour::ResetAfter {
            bytes: half,
            times: 1,
        },
    );
    // After the reset it answers 200 with the whole body despite the Range header.
    let out = {
        // First request resets; switch to NoRange once it has been seen.
        let child = r.spawn(&[
            "image", "pull", "codex", "--json", "--arch", "amd64", "--vmm", "qemu",
        ]);
        wait_until("the first request", || r.server.requests(ZST) >= 1);
        r.server.set(ZST, Behaviour::NoRange);
        child.wait_with_output().unwrap()
    };
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    r.assert_good(rootfs_a());
}

#[test]
fn a_changed_manifest_checksum_re_decompresses() {
    let r = Release::new(rootfs_a());
    assert_eq!(r.pull().status.code(), Some(0));
    r.assert_good(rootfs_a());
    r.publish(rootfs_b(), None);
    let out = r.pull();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(json(&out)["data"]["already_cached"], false);
    r.assert_good(rootfs_b());
}

#[test]
fn sidecar_without_ext4_decompresses_again_without_downloading() {
    let r = Release::new(rootfs_a());
    assert_eq!(r.pull().status.code(), Some(0));
    std::fs::remove_file(r.image_dir().join("rootfs.ext4")).unwrap();
    let out = r.pull();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(json(&out)["data"]["already_cached"], false);
    r.assert_good(rootfs_a());
    assert_eq!(r.server.requests(ZST), 1, "the verified .zst was reused");

    // A sidecar for another checksum is not trusted either.
    std::fs::write(
        r.image_dir().join("rootfs.ext4.from-sha256"),
        format!("sparse-v1:{}", "1".repeat(64)),
    )
    .unwrap();
    std::fs::write(r.image_dir().join("rootfs.ext4"), b"garbage").unwrap();
    assert_eq!(r.pull().status.code(), Some(0));
    r.assert_good(rootfs_a());
    assert_eq!(r.server.requests(ZST), 1);
}

#[test]
fn a_tampered_cached_zst_is_detected_by_size_or_mtime_and_replaced() {
    let r = Release::new(rootfs_a());
    assert_eq!(r.pull().status.code(), Some(0));
    std::fs::write(r.image_dir().join("rootfs.ext4.zst"), b"tampered").unwrap();
    std::fs::remove_file(r.image_dir().join("rootfs.ext4")).unwrap();
    let out = r.pull();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    r.assert_good(rootfs_a());
    assert_eq!(r.server.requests(ZST), 2);
}

#[test]
fn traversal_and_bad_schemes_in_manifest_urls_are_refused() {
    let r = Release::new(rootfs_a());
    for (url, why) in [
        ("../secret.zst", "'..' path segment"),
        ("a/%2E%2e/secret.zst", "'..' path segment"),
        ("x%00.zst", "NUL"),
        ("ftp://127.0.0.1/x.zst", "scheme 'ftp'"),
        ("file:///etc/passwd", "file URLs"),
    ] {
        r.manifest(&format!(
            r#"{{"release": "t", "images": [{{"preset": "codex", "arch": "amd64", "vmm": "qemu",
              "os": "ubuntu", "kernel_url": "vmlinux-amd64.image", "kernel_sha256": "{}",
              "rootfs_url": "{url}", "rootfs_sha256": "{}"}}]}}"#,
            sha(KERNEL),
            sha(&rootfs_a().zst)
        ));
        let out = r.pull();
        assert_eq!(out.status.code(), Some(1), "{url}");
        let msg = json(&out)["error"]["message"].as_str().unwrap().to_string();
        assert!(msg.contains("images[0].rootfs_url"), "{url}: {msg}");
        assert!(msg.contains(why), "{url}: {msg}");
    }
    assert_eq!(r.server.requests("vmlinux-amd64.image"), 0);
    assert!(!r.version_dir().exists());
}

#[test]
fn manifest_errors_name_the_field() {
    let r = Release::new(rootfs_a());
    r.manifest(r#"{"release": "t", "images": [], "extra": 1}"#);
    let msg = r.failed_pull();
    assert!(msg.contains("unknown field `extra`"), "{msg}");
    r.manifest(&format!(
        r#"{{"release": "t", "images": [{{"preset": "codex", "arch": "amd64", "vmm": "qemu",
          "os": "ubuntu", "kernel_url": "k", "kernel_sha256": "{}", "rootfs_url": "r",
          "rootfs_sha256": "XYZ"}}]}}"#,
        sha(KERNEL)
    ));
    let out = r.pull();
    let msg = json(&out)["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("images[0].rootfs_sha256"), "{msg}");
    // A manifest that cannot be fetched.
    r.server.set("manifest.json", Behaviour::Status(404));
    let msg = r.failed_pull();
    assert!(
        msg.contains("cannot fetch manifest") && msg.contains("HTTP 404"),
        "{msg}"
    );
}

#[test]
fn a_missing_row_and_use_published_0_fail_clearly() {
    let r = Release::new(rootfs_a());
    let out = r
        .smolvm()
        .args([
            "image", "pull", "claude", "--arch", "amd64", "--vmm", "qemu",
        ])
        .output()
        .unwrap();
    // SmolVM's answer for a preset the manifest publishes nothing under: invalid_input,
    // exit 2, naming the ones it does.
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("'claude' is not a published image. Choose one of: "),
        "{}",
        stderr(&out)
    );
    let out = r
        .smolvm()
        .env("SMOLVM_USE_PUBLISHED", "0")
        .args(["image", "pull", "codex", "--json"])
        .args(PLATFORM)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["error"]["code"], "refused");
    assert_eq!(r.server.requests("manifest.json"), 1);
}

#[test]
fn a_local_directory_is_a_complete_release() {
    let r = Release::new(rootfs_a());
    let out = r
        .smolvm()
        .env("SMOLVM_MANIFEST", r.dir.join("manifest.json"))
        .args(["image", "pull", "codex", "--json"])
        .args(PLATFORM)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    r.assert_good(rootfs_a());
    assert_eq!(r.server.requests(ZST), 0);
}

fn kill9(child: &mut std::process::Child) {
    // std's kill() is SIGKILL on Unix.
    child.kill().unwrap();
    let st = child.wait().unwrap();
    assert!(!st.success());
}

fn partials(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".partial"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn kill_9_during_download_then_rerun_gives_a_good_result() {
    let r = Release::new(rootfs_a());
    let half = rootfs_a().zst.len() / 2;
    r.server.set(ZST, Behaviour::Stall(half));
    let mut child = r.spawn(&["image", "pull", "codex", "--arch", "amd64", "--vmm", "qemu"]);
    let zst_partial = |dir: &Path| {
        partials(dir).into_iter().any(|n| {
            n.starts_with(".rootfs.ext4.zst.")
                && std::fs::metadata(dir.join(&n)).is_ok_and(|m| m.len() as usize >= half)
        })
    };
    wait_until("half the body on disk", || zst_partial(&r.image_dir()));
    kill9(&mut child);
    // Nothing trusted is there: no .zst, no .ext4, no sidecar; only temp files.
    assert!(
        r.files().iter().all(|n| n.starts_with('.')),
        "{:?}",
        r.files()
    );
    r.server.set(ZST, Behaviour::Normal);
    let out = r.pull();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    r.assert_good(rootfs_a());
}

#[test]
fn kill_9_during_decompression_keeps_the_old_good_image_then_rerun_updates() {
    let r = Release::new(rootfs_a());
    assert_eq!(r.pull().status.code(), Some(0));
    // A new release whose download stalls while its decoder is writing the new .ext4.
    r.publish(rootfs_b(), None);
    let half = rootfs_b().zst.len() / 2;
    r.server.set(ZST, Behaviour::Stall(half));
    let mut child = r.spawn(&["image", "pull", "codex", "--arch", "amd64", "--vmm", "qemu"]);
    let dir = r.image_dir();
    wait_until("the decoder writing the new rootfs", || {
        partials(&dir).into_iter().any(|n| {
            n.starts_with(".rootfs.ext4.")
                && !n.starts_with(".rootfs.ext4.zst")
                && std::fs::metadata(dir.join(&n)).is_ok_and(|m| m.len() > 0)
        })
    });
    kill9(&mut child);
    // The old image is intact and still trusted.
    r.assert_good_files_without_partials_check(rootfs_a());
    r.server.set(ZST, Behaviour::Normal);
    let out = r.pull();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    r.assert_good(rootfs_b());
}

impl Release {
    fn assert_good_files_without_partials_check(&self, rootfs: &Rootfs) {
        let d = self.image_dir();
        assert_eq!(
            std::fs::read(d.join("rootfs.ext4.zst")).unwrap(),
            rootfs.zst
        );
        assert!(std::fs::read(d.join("rootfs.ext4")).unwrap() == rootfs.ext4);
        assert_eq!(
            std::fs::read_to_string(d.join("rootfs.ext4.from-sha256")).unwrap(),
            format!("sparse-v1:{}", sha(&rootfs.zst))
        );
    }
}

#[test]
fn two_concurrent_pulls_download_once() {
    let r = Release::new(rootfs_a());
    r.server
        .set(ZST, Behaviour::Slow(Duration::from_millis(15)));
    let args = [
        "image", "pull", "codex", "--json", "--arch", "amd64", "--vmm", "qemu",
    ];
    let a = r.spawn(&args);
    let b = r.spawn(&args);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert_eq!(
        a.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&a.stdout)
    );
    assert_eq!(
        b.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&b.stdout)
    );
    assert_eq!(r.server.requests(ZST), 1);
    assert_eq!(r.server.requests("vmlinux-amd64.image"), 1);
    r.assert_good(rootfs_a());
    let cached: Vec<bool> = [&a, &b]
        .iter()
        .map(|o| {
            serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["data"]
                ["already_cached"]
                .as_bool()
                .unwrap()
        })
        .collect();
    assert!(
        cached.contains(&false),
        "one of them downloaded: {cached:?}"
    );
}

#[test]
fn ls_shows_sizes_and_users_and_rm_keeps_images_in_use() {
    let r = Release::new(rootfs_a());
    assert_eq!(r.pull().status.code(), Some(0));
    // A stale version's image too.
    let old = r.home.images().join("0.0.1/pi-arm64-firecracker-alpine");
    std::fs::create_dir_all(&old).unwrap();
    let out = r
        .home
        .smolvm()
        .args(["image", "ls", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["command"], "image.list");
    let imgs = v["data"]["images"].as_array().unwrap();
    assert_eq!(imgs.len(), 2);
    assert_eq!(imgs[0]["name"], "pi-arm64-firecracker-alpine");
    assert_eq!(imgs[0]["status"], "stale");
    assert_eq!(imgs[0]["os"], "alpine");
    let c = &imgs[1];
    assert_eq!(c["preset"], "codex");
    assert_eq!(c["status"], "current");
    assert_eq!(c["ready"], true);
    assert_eq!(c["compressed_bytes"], rootfs_a().zst.len() as u64);
    assert_eq!(c["unpacked_bytes"], 64u64 << 20);
    assert!(c["on_disk_bytes"].as_u64().unwrap() < 32 << 20);
    // `smolvm images` is the same listing.
    let out = r.home.smolvm().args(["images"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("codex"), "{}", stdout(&out));

    // In use by a running VM: kept, exit 1.
    std::fs::create_dir_all(&r.home.data).unwrap();
    smolvm_db_with_vm(
        &r.home.data.join("smolvm.db"),
        "vm-1",
        "running",
        &r.image_dir().join("rootfs.ext4"),
        &r.version_dir().join("vmlinux-amd64.image"),
    );
    let out = r
        .home
        .smolvm()
        .args(["image", "ls", "--json"])
        .output()
        .unwrap();
    assert_eq!(json(&out)["data"]["images"][1]["in_use_by"][0], "vm-1");
    let out = r
        .home
        .smolvm()
        .args(["image", "rm", "codex"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("(in use by VM vm-1)"),
        "{}",
        stdout(&out)
    );
    assert!(r.image_dir().join("rootfs.ext4").is_file());

    std::fs::remove_file(r.home.data.join("smolvm.db")).unwrap();
    let out = r
        .home
        .smolvm()
        .args(["image", "rm", "codex", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let v = json(&out);
    assert_eq!(v["command"], "image.rm");
    assert_eq!(v["data"]["removed"][0]["name"], "codex-amd64-qemu");
    assert!(!r.image_dir().exists());
    assert!(old.exists(), "rm touches only the current version");
    let out = r
        .home
        .smolvm()
        .args(["image", "rm", "codex"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).lines().next().unwrap(),
        "Error: No cached image named 'codex'."
    );
}

#[test]
fn inspect_shows_the_row_and_cache_state() {
    let r = Release::new(rootfs_a());
    let args = [
        "image", "inspect", "codex", "--json", "--arch", "amd64", "--vmm", "qemu",
    ];
    let v = json(&r.smolvm().args(args).output().unwrap());
    assert_eq!(v["command"], "image.inspect");
    assert_eq!(v["data"][0]["ready"], false);
    assert_eq!(v["data"][0]["rootfs_url"], r.server.url(ZST));
    assert_eq!(r.pull().status.code(), Some(0));
    let v = json(&r.smolvm().args(args).output().unwrap());
    assert_eq!(v["data"][0]["ready"], true);
    assert_eq!(
        v["data"][0]["rootfs_sidecar"],
        format!("sparse-v1:{}", sha(&rootfs_a().zst))
    );
    assert_eq!(v["data"][0]["files"].as_array().unwrap().len(), 4);
}

#[test]
fn pull_all_pulls_every_row_for_the_platform_and_reports_failures() {
    let r = Release::new(rootfs_a());
    let z = sha(&rootfs_a().zst);
    let k = sha(KERNEL);
    let row = |preset: &str, os: &str, url: &str| {
        format!(
            r#"{{"preset": "{preset}", "arch": "amd64", "vmm": "qemu", "os": "{os}",
              "kernel_url": "vmlinux-amd64.image", "kernel_sha256": "{k}",
              "rootfs_url": "{url}", "rootfs_sha256": "{z}"}}"#
        )
    };
    r.manifest(&format!(
        r#"{{"release": "t", "images": [{}, {}, {}]}}"#,
        row("codex", "ubuntu", ZST),
        row("pi", "alpine", ZST),
        row("hermes", "ubuntu", "missing.zst"),
    ));
    let out = r
        .smolvm()
        .args(["image", "pull", "--all", "--json"])
        .args(PLATFORM)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let v = json(&out);
    assert_eq!(v["error"]["code"], "partial_failure");
    let pulled = support::texts(&v["data"]["pulled"], "name");
    assert_eq!(pulled, ["codex-amd64-qemu", "pi-amd64-qemu-alpine"]);
    assert_eq!(v["data"]["failed"][0]["preset"], "hermes");
    assert!(r
        .version_dir()
        .join("pi-amd64-qemu-alpine/rootfs.ext4")
        .is_file());
    // The kernel is shared: downloaded once for both images.
    assert_eq!(r.server.requests("vmlinux-amd64.image"), 1);
    // --os filters.
    let out = r
        .smolvm()
        .args(["image", "pull", "--all", "--os", "alpine", "--json"])
        .args(PLATFORM)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(json(&out)["data"]["pulled"][0]["already_cached"], true);
}

/// Names in the cache are never followed: a symbolic link at the lock is refused (its
/// target is not created), and a symlinked `rootfs.ext4` is never trusted as the image
/// even with a matching sidecar — it is replaced, its target left as it was.
#[test]
fn pull_never_follows_a_symlink_in_the_cache() {
    let r = Release::new(rootfs_a());
    let outside = r.home.tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();

    // A dangling symlink as the image directory's lock.
    std::fs::create_dir_all(r.image_dir()).unwrap();
    let lock = r.image_dir().join(".lock");
    std::os::unix::fs::symlink(outside.join("created-by-smolvm"), &lock).unwrap();
    let out = r.pull();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let m = json(&out)["error"]["message"].as_str().unwrap().to_string();
    assert!(
        m.contains(&lock.display().to_string()) && m.contains("symbolic link"),
        "{m}"
    );
    assert!(!outside.join("created-by-smolvm").exists());
    std::fs::remove_file(&lock).unwrap();

    // A good pull, then rootfs.ext4 swapped for a link to something else.
    let out = r.pull();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ext4 = r.image_dir().join("rootfs.ext4");
    let fake = outside.join("fake.ext4");
    std::fs::write(&fake, b"not the published image").unwrap();
    std::fs::remove_file(&ext4).unwrap();
    std::os::unix::fs::symlink(&fake, &ext4).unwrap();
    let out = r.pull();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["data"]["already_cached"], false);
    assert!(!std::fs::symlink_metadata(&ext4).unwrap().is_symlink());
    r.assert_good(rootfs_a());
    assert_eq!(std::fs::read(&fake).unwrap(), b"not the published image");
}

/// Run `smolvm image pull codex` with the images root on a 64 MiB tmpfs in a private mount
/// namespace; returns the pull's output and what is left in the image directory.
fn pull_on_small_tmpfs(r: &Release) -> (std::process::Output, String) {
    let img = r.home.images();
    let script = format!(
        "mount -t tmpfs -o size=64m none {img}
         \"$SMOLVM\" image pull codex --json --arch amd64 --vmm qemu > {t}/out.json 2> {t}/err.txt || true
         ls -A {img}/{CURRENT}/codex-amd64-qemu 2>/dev/null | grep -v '^.lock$' || true",
        img = img.display(),
        t = r.home.tmp.path().display()
    );
    let mut c = StdCommand::new("unshare");
    c.args(["-m", "--propagation", "private", "sh", "-ec", &script])
        .env("SMOLVM", env!("CARGO_BIN_EXE_smolvm"))
        .env("SMOLVM_MANIFEST", r.server.url("manifest.json"));
    for (k, v) in r.home.env_vars() {
        c.env(k, v);
    }
    r.env(&mut c);
    let left = c.output().expect("unshare (util-linux)");
    let mut out = left.clone();
    out.stdout = std::fs::read(r.home.tmp.path().join("out.json")).unwrap_or_default();
    out.stderr = std::fs::read(r.home.tmp.path().join("err.txt")).unwrap_or_default();
    (out, String::from_utf8_lossy(&left.stdout).into_owned())
}

/// An unverified stream never fills the disk: a zstd bomb (a few KiB that unpack to 256
/// MiB of non-zero blocks, on a 64 MiB file system) and an endless body each stop with a
/// clear error while the file system keeps its reserve free, and leave nothing behind.
#[test]
fn a_zstd_bomb_or_an_endless_body_never_fills_the_disk() {
    require_root!("(a tmpfs in a private mount namespace)");
    let bomb = {
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        let block = vec![0x5au8; 1 << 20];
        for _ in 0..256 {
            std::io::Write::write_all(&mut enc, &block).unwrap();
        }
        enc.finish().unwrap()
    };
    assert!(bomb.len() < 1 << 20, "not a bomb: {} bytes", bomb.len());
    let r = Release::new(rootfs_a());
    let bomb_rootfs = Rootfs {
        zst: bomb.clone(),
        ext4: Vec::new(),
    };
    // With its true checksum, only the room check can stop the unpacking.
    r.publish(&bomb_rootfs, None);
    let (out, left) = pull_on_small_tmpfs(&r);
    assert_eq!(out.status.code(), Some(0), "the namespace script failed");
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert_eq!(v["exit_code"], 1, "{v}");
    assert!(msg.contains("stopped before the disk fills"), "{msg}");
    assert!(!msg.contains("No space left"), "{msg}");
    assert_eq!(left, "", "left behind: {left}");
    // With a wrong checksum: the same guard, then the mismatch; nothing left.
    r.publish(&bomb_rootfs, Some(&"0".repeat(64)));
    let (out, left) = pull_on_small_tmpfs(&r);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["exit_code"], 1, "{v}");
    assert!(!v.to_string().contains("No space left"), "{v}");
    assert_eq!(left, "", "left behind: {left}");
    // A body that never ends.
    r.publish(rootfs_a(), None);
    r.server.set(ZST, Behaviour::Endless);
    let (out, left) = pull_on_small_tmpfs(&r);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert_eq!(v["exit_code"], 1, "{v}");
    assert!(msg.contains("stopped before the disk fills"), "{msg}");
    assert_eq!(left, "", "left behind: {left}");
}

/// One decision in one place: on the same host, `doctor` (its `runtime`), `image inspect`,
/// `image pull` and `<preset> start` pick the same VMM — wherever the Firecracker binary
/// is found (`PATH`, `SMOLVM_FIRECRACKER_BIN`, `~/.smolvm/bin`). The manifest publishes
/// the preset for both VMMs with artifacts that are not there, so a pull and a start fail
/// at the download naming the row they chose (no VM is booted, nothing is created). On a
/// host without hardware KVM (PVM here) that is QEMU, with the reason given.
#[test]
fn pull_start_and_doctor_choose_the_same_vmm() {
    let r = Release::new(rootfs_a());
    let arch = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    };
    let row = |vmm: &str| {
        format!(
            r#"{{"preset": "claude-code", "arch": "{arch}", "vmm": "{vmm}", "os": "ubuntu",
                "kernel_url": "missing-{vmm}-vmlinux", "kernel_sha256": "{z}",
                "rootfs_url": "missing-{vmm}-rootfs.ext4.zst", "rootfs_sha256": "{z}"}}"#,
            z = "0".repeat(64)
        )
    };
    r.manifest(&format!(
        r#"{{"release": "images-test", "images": [{}, {}]}}"#,
        row("qemu"),
        row("firecracker")
    ));
    let fake = |p: &Path| {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "#!/bin/sh\necho 'Firecracker v0.0.0-fake'\n").unwrap();
        run("chmod", &["755", p.to_str().unwrap()]);
    };
    // A stand-in QEMU too (never run: every start here stops at the image download).
    let qemu = r.home.tmp.path().join("fake-qemu/qemu-system");
    fake(&qemu);
    let bin_dir = r.home.tmp.path().join("fake-bin");
    let own = r.home.tmp.path().join("own/firecracker");
    let home_bin = r.home.home.join(".smolvm/bin/firecracker");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut with_bin_dir = std::ffi::OsString::from(bin_dir.as_os_str());
    with_bin_dir.push(":");
    with_bin_dir.push(&path);
    let hardware_kvm_modules = ["kvm_intel", "kvm_amd"]
        .iter()
        .any(|m| Path::new("/sys/module").join(m).exists());

    for placement in ["PATH", "SMOLVM_FIRECRACKER_BIN", "~/.smolvm/bin"] {
        let _ = std::fs::remove_file(bin_dir.join("firecracker"));
        let _ = std::fs::remove_file(&home_bin);
        let _ = std::fs::remove_file(&own);
        match placement {
            "PATH" => fake(&bin_dir.join("firecracker")),
            "SMOLVM_FIRECRACKER_BIN" => fake(&own),
            _ => fake(&home_bin),
        }
        let cmd = |args: &[&str]| {
            let mut c = r.smolvm();
            c.env("PATH", &with_bin_dir)
                .env("SMOLVM_QEMU_BIN", &qemu)
                .args(args);
            if placement == "SMOLVM_FIRECRACKER_BIN" {
                c.env("SMOLVM_FIRECRACKER_BIN", &own);
            }
            c.output().unwrap()
        };

        let doctor = json(&cmd(&["doctor", "--json"]));
        let rt = &doctor["data"]["runtime"];
        let vmm = rt["backend"]
            .as_str()
            .unwrap_or_else(|| panic!("{doctor:#}"));
        assert_eq!(rt["error"], serde_json::Value::Null, "{placement}: {rt}");
        let reason = rt["backend_reason"].as_str().unwrap();
        if !hardware_kvm_modules {
            assert_eq!(vmm, "qemu", "{placement}: {rt}");
            assert!(reason.starts_with("QEMU: no hardware KVM ("), "{reason}");
        } else if vmm == "firecracker" {
            assert!(
                reason.starts_with("Firecracker: hardware KVM and "),
                "{reason}"
            );
        }
        let check = doctor["data"]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "backend")
            .unwrap_or_else(|| panic!("no backend check: {doctor:#}"));
        assert!(
            check["message"].as_str().unwrap().starts_with(reason),
            "{check}"
        );

        let inspect = json(&cmd(&["image", "inspect", "claude-code", "--json"]));
        assert_eq!(inspect["data"][0]["vmm"], vmm, "{placement}: {inspect:#}");
        assert_eq!(
            inspect["data"][0]["name"],
            format!("claude-code-{arch}-{vmm}"),
            "{placement}"
        );

        let missing = format!("missing-{vmm}-");
        let pull = cmd(&["image", "pull", "claude", "--json"]);
        assert_eq!(
            pull.status.code(),
            Some(1),
            "{placement}: {}",
            stdout(&pull)
        );
        let msg = json(&pull)["error"]["message"].to_string();
        assert!(msg.contains(&missing), "{placement}: pull: {msg}");

        let start = cmd(&["claude-code", "start", "--json"]);
        assert_eq!(
            start.status.code(),
            Some(1),
            "{placement}: {}{}",
            stdout(&start),
            stderr(&start)
        );
        let msg = json(&start)["error"]["message"].to_string();
        assert!(msg.contains(&missing), "{placement}: start: {msg}");
        assert!(
            support::cleanup::row_ids(&r.home.data).is_empty(),
            "{placement}: a failed start left a row"
        );
    }
}

#[test]
fn rm_keeps_an_image_a_live_process_holds_open_as_prune_does() {
    let h = Home::new();
    let dir = h.images().join(CURRENT).join("codex-amd64-qemu");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("rootfs.ext4"), vec![0x5au8; 4096]).unwrap();
    // A process (no VM row anywhere) holding the rootfs open, as a VMM would.
    let mut child = support::hold_open(&dir.join("rootfs.ext4"));
    let human = h.smolvm().args(["image", "rm", "codex"]).output().unwrap();
    let js = h
        .smolvm()
        .args(["image", "rm", "codex", "--json"])
        .output()
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let why = format!("open by process {} (sleep)", child.id());
    assert_eq!(human.status.code(), Some(1), "{}", stdout(&human));
    assert_eq!(
        stdout(&human),
        format!("Kept:    ~/.smolvm/images/{CURRENT}/codex-amd64-qemu/ ({why})\nFreed 0 B.\n")
    );
    assert_eq!(js.status.code(), Some(1));
    let v = json(&js);
    assert_eq!(v["data"]["kept"][0]["name"], "codex-amd64-qemu");
    assert_eq!(v["data"]["kept"][0]["reason"], why.as_str());
    assert!(
        dir.join("rootfs.ext4").is_file(),
        "a cache in use was removed"
    );
    // Nothing holds it now: removed.
    let out = h.smolvm().args(["image", "rm", "codex"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(!dir.exists());
}

/// SmolVM publishes libkrun images for its macOS backend: `--vmm libkrun` is SmolVM's flag,
/// so it is not a usage error here, but a clear refusal (exit 1) that downloads nothing.
#[test]
fn pull_vmm_libkrun_is_refused_as_macos_only() {
    let h = Home::new();
    for args in [
        &["image", "pull", "codex", "--vmm", "libkrun", "--json"][..],
        &["image", "pull", "--all", "--vmm", "libkrun", "--json"][..],
        &["image", "inspect", "codex", "--vmm", "libkrun", "--json"][..],
    ] {
        let out = h.smolvm().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let v = json(&out);
        assert_eq!(v["error"]["code"], "runtime_error", "{v}");
        let msg = support::error_message(&v);
        assert!(msg.contains("macOS only"), "{msg}");
        assert!(
            v["error"]["recovery"]
                .as_str()
                .is_some_and(|r| r.contains("--vmm qemu")),
            "{v}"
        );
    }
    let out = h
        .smolvm()
        .args(["image", "pull", "codex", "--vmm", "libkrun"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("macOS only"), "{}", stderr(&out));
    let left: Vec<_> = std::fs::read_dir(h.images()).unwrap().flatten().collect();
    assert!(left.is_empty(), "something was written: {left:?}");
}
