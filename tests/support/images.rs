//! Real guest images for boot tests, made here and cached outside the clone in
//! `${XDG_CACHE_HOME:-~/.cache}/smolvm-tests/`, each under a directory named by a hash of
//! its inputs, so only a fresh machine pays for them (and a change of inputs rebuilds):
//!
//! * a kernel from Debian's `linux-source-6.1` + `tests/assets/microvm-kernel.config`
//!   (`bzImage` for QEMU, `vmlinux` for Firecracker; ~8 min on 2 cores, once);
//! * a busybox rootfs whose `/init` behaves like SmolVM's (network from `ip=`, the ready
//!   line, a listener on port 22) — and a variant whose init never gets ready;
//! * a Debian bookworm minbase rootfs with `openssh-server` (`debootstrap`, ~1 min) and
//!   SmolVM's `/init` (`assets/init.sh`, the one `smolvm image build` installs).
//!
//! ext4 images are made with `mkfs.ext4 -d` (no loop mounts). Builds take a file lock, so
//! parallel tests wait for one build. [`manifest`] serves them through the images
//! issue's manifest (`SMOLVM_MANIFEST`, `file:` URLs) so `start` runs its whole path.
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

const KERNEL_SCRIPT: &str = include_str!("../assets/build-kernel.sh");
const KERNEL_FRAGMENT: &str = include_str!("../assets/microvm-kernel.config");
/// Debian 12's kernel source, which the fragment was measured on; another distribution's
/// `linux-source-*` package (scripts/install-deps.sh picks it) is taken when it is absent.
const LINUX_SOURCE: &str = "/usr/src/linux-source-6.1.tar.xz";

/// The kernel source tarball: Debian 12's, else the newest `/usr/src/linux-source-*.tar.xz`.
fn linux_source() -> Option<PathBuf> {
    if Path::new(LINUX_SOURCE).is_file() {
        return Some(PathBuf::from(LINUX_SOURCE));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/src")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("linux-source-") && n.ends_with(".tar.xz"))
        })
        .collect();
    // Version order: compare the dotted numbers, not the text.
    let version = |p: &PathBuf| -> Vec<u64> {
        let n = p.file_name().unwrap().to_string_lossy();
        n.trim_start_matches("linux-source-")
            .trim_end_matches(".tar.xz")
            .split('.')
            .map(|x| x.parse().unwrap_or(0))
            .collect()
    };
    found.sort_by_key(version);
    found.pop()
}

pub fn cache_root() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache")
        });
    base.join("smolvm-tests")
}

fn hash(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn sha256_file(p: &Path) -> String {
    let mut h = Sha256::new();
    let mut f = File::open(p).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        use std::io::Read;
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn run(c: &mut Command) {
    let what = format!("{c:?}");
    super::run_ok(c, &what);
}

/// Build `dir/<done>` once: under an exclusive lock, skipping when it already exists.
fn cached(dir: &Path, done: &str, build: impl FnOnce(&Path)) -> PathBuf {
    let target = dir.join(done);
    if target.exists() {
        return target;
    }
    std::fs::create_dir_all(dir).unwrap();
    let lock = File::create(dir.join(".lock")).unwrap();
    let _l = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap();
    if !target.exists() {
        build(dir);
        assert!(
            target.exists(),
            "build did not produce {}",
            target.display()
        );
    }
    target
}

/// The test kernel: `(bzImage, vmlinux)`. Builds it (once per machine) when missing;
/// panics with the apt packages to install when the source is not there.
pub fn kernel() -> (PathBuf, PathBuf) {
    let src = linux_source().unwrap_or_else(|| {
        panic!(
            "no /usr/src/linux-source-*.tar.xz: run scripts/install-deps.sh --test (linux-source bc flex bison libelf-dev libssl-dev)"
        )
    });
    let src = src.as_path();
    let meta = std::fs::metadata(src).unwrap();
    let key = hash(&[
        KERNEL_SCRIPT.as_bytes(),
        KERNEL_FRAGMENT.as_bytes(),
        &meta.len().to_le_bytes(),
    ]);
    let dir = cache_root().join(format!("kernel-{key}"));
    let bz = cached(&dir, "bzImage", |dir| {
        eprintln!(
            "building the test kernel into {} (once per machine, ~8 min on 2 cores)",
            dir.display()
        );
        let frag = dir.join("fragment.config");
        std::fs::write(&frag, KERNEL_FRAGMENT).unwrap();
        let script = dir.join("build-kernel.sh");
        std::fs::write(&script, KERNEL_SCRIPT).unwrap();
        run(Command::new("bash")
            .arg(&script)
            .arg(src)
            .arg(&frag)
            .arg(dir));
    });
    (bz, dir.join("vmlinux"))
}

/// What a busybox rootfs's `/init` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// Like SmolVM's: network from `ip=`, a listener on port 22, the ready line.
    Ready,
    /// Never configures the network nor prints the ready line.
    NeverReady,
    /// Never gets ready; its last console line holds terminal escapes (a title change).
    Hostile,
    /// Floods its console with 1 MiB first, then as [`Init::Ready`].
    Flood,
}

const BUSYBOX_INIT: &str = r#"#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
ip=172.16.0.2 gw=172.16.0.1
for tok in $(cat /proc/cmdline); do
  case "$tok" in
    ip=*) v=${tok#ip=}; ip=$(echo "$v" | cut -d: -f1); gw=$(echo "$v" | cut -d: -f3) ;;
  esac
done
ip link set lo up
ip link set eth0 up
ip addr add "$ip/24" dev eth0 2>/dev/null
ip route add default via "$gw" 2>/dev/null
nc -ll -p 22 -e /bin/banner &
while ! netstat -ltn | grep -q ':22 '; do usleep 10000; done
echo "SmolVM init complete: IP=$ip, SSH listening on port 22"
while true; do sleep 3600; done
"#;

const NEVER_READY_INIT: &str = r#"#!/bin/sh
mount -t proc proc /proc
echo "this init never gets ready"
while true; do sleep 3600; done
"#;

const HOSTILE_INIT: &str = r#"#!/bin/sh
mount -t proc proc /proc
while true; do printf 'not ready \033]0;owned by the guest\007 \033[2J\n'; sleep 1; done
"#;

/// A busybox ext4 rootfs (32 MiB).
pub fn busybox_rootfs(init: Init) -> PathBuf {
    let flood_init = BUSYBOX_INIT.replacen(
        "ip=172.16.0.2",
        "yes FLOODFLOODFLOODFLOODFLOODFLOOD | head -c 1048576\nip=172.16.0.2",
        1,
    );
    let script = match init {
        Init::Ready => BUSYBOX_INIT,
        Init::NeverReady => NEVER_READY_INIT,
        Init::Hostile => HOSTILE_INIT,
        Init::Flood => &flood_init,
    };
    let bb = std::fs::read("/bin/busybox").expect("/bin/busybox (install busybox-static)");
    let key = hash(&[script.as_bytes(), &bb]);
    let dir = cache_root().join(format!("busybox-{key}"));
    cached(&dir, "rootfs.ext4", |dir| {
        let root = dir.join("root");
        let _ = std::fs::remove_dir_all(&root);
        for d in ["bin", "proc", "sys", "dev", "tmp", "etc"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("bin/busybox"), &bb).unwrap();
        let out = Command::new("/bin/busybox").arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&out.stdout).lines() {
            if applet != "busybox" {
                let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
            }
        }
        std::fs::write(root.join("init"), script).unwrap();
        std::fs::write(
            root.join("bin/banner"),
            "#!/bin/sh\necho SSH-2.0-smolvm-test-busybox\n",
        )
        .unwrap();
        chmod_x(&root.join("init"));
        chmod_x(&root.join("bin/banner"));
        chmod_x(&root.join("bin/busybox"));
        mkfs(&root, &dir.join("rootfs.ext4"), 32);
        std::fs::remove_dir_all(&root).unwrap();
    })
}

fn chmod_x(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn mkfs(root: &Path, out: &Path, mib: u64) {
    let tmp = out.with_extension("partial");
    let _ = std::fs::remove_file(&tmp);
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "rootfs", "-E", "root_owner=0:0", "-d"])
        .arg(root)
        .arg(&tmp)
        .arg(format!("{mib}M")));
    std::fs::rename(&tmp, out).unwrap();
}

/// SmolVM's `/init`: the same script `smolvm image build` installs.
const DEBIAN_INIT: &str = include_str!("../../assets/init.sh");

/// The Debian mirror for debootstrap: `SMOLVM_TEST_DEBIAN_MIRROR`, else Debian's.
fn mirror() -> String {
    std::env::var("SMOLVM_TEST_DEBIAN_MIRROR")
        .ok()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "http://deb.debian.org/debian".into())
}

/// A Debian bookworm minbase tree in `dir/root` (made anew), `extra` debootstrap's
/// further options, without the downloaded packages.
fn debootstrap(dir: &Path, extra: &[&str]) -> PathBuf {
    let root = dir.join("root");
    let _ = std::fs::remove_dir_all(&root);
    run(Command::new("debootstrap")
        .arg("--variant=minbase")
        .args(extra)
        .arg("bookworm")
        .arg(&root)
        .arg(mirror()));
    let _ = std::fs::remove_dir_all(root.join("var/cache/apt/archives"));
    std::fs::create_dir_all(root.join("var/cache/apt/archives/partial")).unwrap();
    root
}

/// A Debian bookworm minbase rootfs with openssh-server and SmolVM's `/init` (768 MiB).
pub fn debian_rootfs() -> PathBuf {
    let packages = "openssh-server,iproute2";
    let key = hash(&[DEBIAN_INIT.as_bytes(), packages.as_bytes(), b"bookworm"]);
    let dir = cache_root().join(format!("debian-{key}"));
    cached(&dir, "rootfs.ext4", |dir| {
        eprintln!(
            "debootstrapping the test Debian rootfs into {} (once)",
            dir.display()
        );
        let root = debootstrap(dir, &[&format!("--include={packages}")]);
        for k in std::fs::read_dir(root.join("etc/ssh")).unwrap().flatten() {
            if k.file_name().to_string_lossy().starts_with("ssh_host_") {
                std::fs::remove_file(k.path()).unwrap();
            }
        }
        std::fs::write(root.join("init"), DEBIAN_INIT).unwrap();
        chmod_x(&root.join("init"));
        mkfs(&root, &dir.join("rootfs.ext4"), 768);
        std::fs::remove_dir_all(&root).unwrap();
    })
}

/// A Debian bookworm minbase tree as a tarball (cached): the base the Docker-engine tests
/// `docker import` as `debian:bookworm-slim`, since no registry is reachable here.
pub fn debian_base_tarball() -> PathBuf {
    let key = hash(&[b"minbase", b"bookworm", mirror().as_bytes()]);
    let dir = cache_root().join(format!("debian-base-{key}"));
    cached(&dir, "rootfs.tar", |dir| {
        eprintln!(
            "debootstrapping the Docker base into {} (once)",
            dir.display()
        );
        let root = debootstrap(dir, &[]);
        let partial = dir.join("rootfs.tar.partial");
        run(Command::new("tar")
            .args(["--numeric-owner", "-C"])
            .arg(&root)
            .arg("-cf")
            .arg(&partial)
            .arg("."));
        std::fs::rename(&partial, dir.join("rootfs.tar")).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
    })
}

/// `<image>.zst` beside it (cached).
pub fn zst(rootfs: &Path) -> PathBuf {
    let dir = rootfs.parent().unwrap();
    cached(dir, "rootfs.ext4.zst", |dir| {
        let tmp = dir.join("rootfs.ext4.zst.partial");
        run(Command::new("zstd")
            .args(["-q", "-f", "-T0", "-3"])
            .arg(rootfs)
            .arg("-o")
            .arg(&tmp));
        std::fs::rename(&tmp, dir.join("rootfs.ext4.zst")).unwrap();
    })
}

/// One manifest row: this preset boots this rootfs under QEMU (and Firecracker).
pub struct Row<'a> {
    pub preset: &'a str,
    pub rootfs: &'a Path,
}

/// Write `<dir>/manifest.json` publishing these rows for amd64/ubuntu with `file:` URLs to
/// the cached kernel and `.zst` images; returns its path (for `SMOLVM_MANIFEST`).
pub fn manifest(dir: &Path, rows: &[Row<'_>]) -> PathBuf {
    let (bz, vmlinux) = kernel();
    let mut images = Vec::new();
    for r in rows {
        let z = zst(r.rootfs);
        let zsha = sha256_sidecar(&z);
        for (vmm, k) in [("qemu", &bz), ("firecracker", &vmlinux)] {
            images.push(serde_json::json!({
                "preset": r.preset, "arch": "amd64", "vmm": vmm, "os": "ubuntu",
                "kernel_url": format!("file://{}", k.display()),
                "kernel_sha256": sha256_sidecar(k),
                "rootfs_url": format!("file://{}", z.display()),
                "rootfs_sha256": zsha,
            }));
        }
    }
    let m = serde_json::json!({"release": "test-images", "images": images});
    let path = dir.join("manifest.json");
    std::fs::write(&path, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    path
}

/// Write `<dir>/manifest.json` publishing the `codex` preset (amd64/ubuntu, QEMU and
/// Firecracker) as a tiny file with a wrong checksum: a start or build that reached the
/// download fails fast there instead of fetching anything real. Returns its path.
pub fn tiny_manifest(dir: &Path) -> PathBuf {
    let tiny = dir.join("tiny");
    std::fs::write(&tiny, b"tiny").unwrap();
    let rows: Vec<serde_json::Value> = ["qemu", "firecracker"]
        .iter()
        .map(|vmm| {
            serde_json::json!({
                "preset": "codex", "arch": "amd64", "vmm": vmm, "os": "ubuntu",
                "kernel_url": format!("file://{}", tiny.display()),
                "kernel_sha256": "0".repeat(64),
                "rootfs_url": format!("file://{}", tiny.display()),
                "rootfs_sha256": "0".repeat(64),
            })
        })
        .collect();
    let m = dir.join("manifest.json");
    std::fs::write(
        &m,
        serde_json::json!({"release": "t", "images": rows}).to_string(),
    )
    .unwrap();
    m
}

/// The file's SHA-256, cached beside it (`.<name>.sha256`) keyed by size and mtime.
fn sha256_sidecar(p: &Path) -> String {
    let m = std::fs::metadata(p).unwrap();
    let stamp = format!(
        "{}:{:?}",
        m.len(),
        m.modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
    );
    let side = p.with_file_name(format!(
        ".{}.sha256",
        p.file_name().unwrap().to_string_lossy()
    ));
    if let Ok(text) = std::fs::read_to_string(&side) {
        if let Some((s, h)) = text.trim().split_once(' ') {
            if s == stamp {
                return h.to_string();
            }
        }
    }
    let h = sha256_file(p);
    let _ = std::fs::write(&side, format!("{stamp} {h}\n"));
    h
}

/// A real preset image (claude-code, codex), built by `smolvm image build --preset P` on
/// the Debian base (debootstrap; apt and npm from the package registries) with the test
/// kernel, into `<cache root>/presets/` — outside the clone. The builder's own fingerprint
/// (recipe, base, `/init`, kernel SHA-256) is the cache key: unchanged inputs return at
/// once, a changed recipe or kernel rebuilds (2–6 minutes on 2 cores, ~1.2 GB).
/// Returns the image directory (`<preset>-local/`) for [`install_preset_image`].
pub fn preset_image(preset: &str) -> PathBuf {
    let (bz, _) = kernel();
    let cache = cache_root().join("presets");
    std::fs::create_dir_all(&cache).unwrap();
    let home = cache.join(".home");
    std::fs::create_dir_all(&home).unwrap();
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("smolvm"));
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("SMOLVM_DATA_DIR", home.join("state"))
        .args(["image", "build", "--preset", preset, "--base", "debian"])
        .args(["--engine", "debootstrap", "--json", "--kernel"])
        .arg(&bz)
        .arg("--cache-dir")
        .arg(&cache);
    if let Ok(m) = std::env::var("SMOLVM_TEST_DEBIAN_MIRROR") {
        c.env("SMOLVM_DEBIAN_MIRROR", m);
    }
    let t = std::time::Instant::now();
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "building the {preset} image failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    if v["data"]["cached"] != true {
        eprintln!(
            "built the {preset} preset image in {:.0} s into {}",
            t.elapsed().as_secs_f64(),
            cache.display()
        );
    }
    cache.join(format!("{preset}-local"))
}

/// Put a cached preset image into a test's images root (hard links: instant, and the
/// start only reads it).
pub fn install_preset_image(image: &Path, images_root: &Path) {
    std::fs::create_dir_all(images_root).unwrap();
    run(Command::new("cp").arg("-al").arg(image).arg(images_root));
}
