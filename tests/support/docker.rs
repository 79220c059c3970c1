//! A private Docker daemon for the Docker-engine tests, which leaves the host alone:
//! Debian's `dockerd` on its own socket, exec root and pid file (in a temporary dir) and
//! a data root under the test cache (so the imported base image and the build cache
//! survive between runs), with networking untouched (`--iptables=false --bridge=none`;
//! builds use the host's network). Used through `DOCKER_HOST`; stopped when dropped.
//! The default `/var/run/docker.sock` is never started (other tests rely on "no daemon").
//!
//! No registry is reachable here, so the Debian Dockerfile's base (`debian:bookworm-slim`)
//! is `docker import`ed from a debootstrap minbase tarball (cached like the test rootfs).

use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::images::cache_root;

/// The tag `assets/Dockerfile.debian` starts from.
pub const DEBIAN_BASE_TAG: &str = "debian:bookworm-slim";

pub struct Dockerd {
    child: Child,
    /// `unix://…`, for `DOCKER_HOST`.
    pub host: String,
    _dir: tempfile::TempDir,
    /// Held while the daemon runs: one daemon per data root at a time.
    _lock: std::fs::File,
}

/// Whether these tests must run rather than skip (`.ci/run` sets it).
pub fn required() -> bool {
    std::env::var_os("SMOLVM_REQUIRE_DOCKER").is_some_and(|v| v == "1")
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

impl Dockerd {
    /// A private daemon with the Debian base imported, for a test run as root: `None` when
    /// not root (a failure where the Docker tests are required) or when dockerd is missing,
    /// with a loud line on stderr.
    pub fn for_root_test() -> Option<Dockerd> {
        if !super::is_root() {
            assert!(!required(), "the Docker test must run here");
            eprintln!("SKIPPED (LOUDLY): needs root; the Docker engine was not exercised");
            return None;
        }
        let dockerd = Dockerd::start()?;
        dockerd.ensure_debian_base();
        Some(dockerd)
    }

    /// Start the daemon and wait until it answers; `None` (with a loud line on stderr)
    /// when dockerd is not installed and the tests are not required to run.
    pub fn start() -> Option<Dockerd> {
        let Some(dockerd) = on_path("dockerd") else {
            assert!(
                !required(),
                "SMOLVM_REQUIRE_DOCKER=1 but dockerd is not installed (scripts/install-deps.sh --test installs docker.io)"
            );
            eprintln!("SKIPPED (LOUDLY): no dockerd on PATH; the Docker engine was not exercised");
            return None;
        };
        let root = cache_root().join("docker");
        std::fs::create_dir_all(&root).unwrap();
        let lock = std::fs::File::create(root.join("lock")).unwrap();
        // SAFETY: flock on a file descriptor this function owns.
        assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
        // Short paths: a unix socket's path is limited to 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("smolvm-dockerd-")
            .tempdir_in("/tmp")
            .unwrap();
        let sock = dir.path().join("docker.sock");
        let host = format!("unix://{}", sock.display());
        let log = std::fs::File::create(dir.path().join("dockerd.log")).unwrap();
        let child = Command::new(dockerd)
            .arg("-H")
            .arg(&host)
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("--pidfile")
            .arg(dir.path().join("docker.pid"))
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--ip-forward=false",
                "--ip-masq=false",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let d = Dockerd {
            child,
            host,
            _dir: dir,
            _lock: lock,
        };
        let start = Instant::now();
        while !d.answers() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "private dockerd did not answer within 60 s: {}",
                std::fs::read_to_string(d._dir.path().join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        d.tidy();
        Some(d)
    }

    /// Drop what earlier runs built (every fresh key is a new fingerprint, so a new tag):
    /// the data root keeps only the base image, and stays small between runs.
    fn tidy(&self) {
        let ids = self.ids(&["image", "ls", "-q", "--filter", "reference=smolvm-build/*"]);
        if !ids.is_empty() {
            let _ = self
                .docker()
                .args(["rmi", "-f"])
                .args(&ids)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = self
            .docker()
            .args(["image", "prune", "-f"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// `docker` against this daemon only.
    pub fn docker(&self) -> Command {
        let mut c = Command::new("docker");
        c.env("DOCKER_HOST", &self.host);
        c
    }

    fn answers(&self) -> bool {
        self.docker()
            .args(["version", "--format", "{{.Server.Version}}"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Give the daemon `debian:bookworm-slim` (imported once from a debootstrap tarball).
    /// Unlike the registry's, an imported image has no CMD: the builder must not need one.
    pub fn ensure_debian_base(&self) {
        let have = self
            .docker()
            .args(["image", "inspect", DEBIAN_BASE_TAG])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if have {
            return;
        }
        let tar = super::images::debian_base_tarball();
        let file = std::fs::File::open(&tar).unwrap();
        super::run_ok(
            self.docker()
                .args(["import", "-", DEBIAN_BASE_TAG])
                .stdin(file),
            "docker import",
        );
    }

    /// The ids `docker ARGS` prints, one a line (`ps --quiet`, `image ls -q`).
    pub fn ids(&self, args: &[&str]) -> Vec<String> {
        let out = self.docker().args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

    /// Every container of this daemon, by its full id.
    pub fn containers(&self) -> Vec<String> {
        self.ids(&["ps", "--all", "--quiet", "--no-trunc"])
    }

    /// Remove every container of this daemon.
    pub fn remove_all_containers(&self) {
        let ids = self.containers();
        if !ids.is_empty() {
            super::run_ok(self.docker().args(["rm", "-f"]).args(&ids), "docker rm -f");
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("dockerd.log")).unwrap_or_default()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // SAFETY: signalling the daemon this struct started (its pid, still our child).
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                _ if start.elapsed() > Duration::from_secs(30) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        // dockerd leaves mounts under its exec root (`netns/default`, an nsfs mount):
        // undo every mount below the private dir, deepest first, so it can be removed.
        let dir = self._dir.path().to_path_buf();
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
            .filter(|m| Path::new(m).starts_with(&dir))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let c = std::ffi::CString::new(m).unwrap();
            // SAFETY: umount2 of a path under this test's own temporary dir.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// Whether `path` is a live socket some daemon answers on.
pub fn answers_at(path: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(path).is_ok()
}
