//! How much a VMM's seccomp filter actually filters. `Seccomp: 2` in `/proc` only says a
//! filter is installed; a Firecracker built without its policies (any glibc build) installs
//! one that allows every system call. The filter's length tells them apart: Firecracker's
//! real policies are hundreds of BPF instructions, an allow-all one a handful.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use super::launch::{Launch, VmmIdentity};

/// Below this many BPF instructions a filter cannot be restricting a VMM's system calls
/// (it checks the architecture and allows, or little more).
pub const MEANINGFUL_FILTER: usize = 32;

/// The length in instructions of thread `tid`'s newest seccomp filter, read with
/// `PTRACE_SECCOMP_GET_FILTER` (root): `None` when it has none. The thread is stopped for
/// the moment of the read and let go.
pub fn filter_len(tid: i32) -> io::Result<Option<usize>> {
    const PTRACE_SECCOMP_GET_FILTER: libc::c_uint = 0x420c;
    // SAFETY: ptrace requests on a thread id with null or integer arguments; the thread
    // is detached on every path after a successful seize.
    unsafe {
        if libc::ptrace(libc::PTRACE_SEIZE, tid, 0usize, 0usize) < 0 {
            return Err(io::Error::last_os_error());
        }
        let r = (|| {
            if libc::ptrace(libc::PTRACE_INTERRUPT, tid, 0usize, 0usize) < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut status = 0;
            if libc::waitpid(tid, &mut status, libc::__WALL) < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = libc::ptrace(PTRACE_SECCOMP_GET_FILTER, tid, 0usize, 0usize);
            if n < 0 {
                let e = io::Error::last_os_error();
                // No filter at that index: EINVAL (ENOENT on some kernels).
                return match e.raw_os_error() {
                    Some(libc::EINVAL) | Some(libc::ENOENT) => Ok(None),
                    _ => Err(e),
                };
            }
            Ok(Some(n as usize))
        })();
        libc::ptrace(libc::PTRACE_DETACH, tid, 0usize, 0usize);
        r
    }
}

/// The longest seccomp filter among the threads of `pid` (`None`: no thread has one).
pub fn longest_filter(pid: i32) -> io::Result<Option<usize>> {
    let mut best: Option<usize> = None;
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))?.flatten() {
        let Some(tid) = t.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Some(n) = filter_len(tid)? {
            best = Some(best.map_or(n, |b| b.max(n)));
        }
    }
    Ok(best)
}

/// Start Firecracker `bin` as `user` listening on a socket in a private folder (no VM),
/// and measure the filters its API thread installs at once: the longest one's length
/// (`None`: no filter at all). The process is stopped and the folder removed afterwards;
/// the folders probes killed midway left (unlocked, their process gone, this user's or the
/// probe user's, whom doctor always picks the same way) go first.
pub fn probe_firecracker(bin: &Path, user: Option<VmmIdentity>) -> io::Result<Option<usize>> {
    let tmp = Path::new("/tmp");
    let me = crate::sys::users::euid();
    let probe = user.as_ref().map(|u| u.id.uid);
    let ours = |u: u32| u == me || Some(u) == probe;
    crate::sys::fs::sweep_staging(tmp, PROBE_PREFIX, &ours);
    let staging = crate::sys::fs::Staging::create(tmp, PROBE_PREFIX, 0o700)?;
    let dir = staging.path().to_path_buf();
    let r = (|| {
        if let Some(u) = &user {
            std::os::unix::fs::chown(&dir, Some(u.id.uid), Some(u.id.gid))?;
        }
        let sock = dir.join("fc.sock");
        let mut l = Launch::new(bin, user)?;
        l.arg("--api-sock")?.arg(&sock)?;
        // Measured and stopped on this thread: a doctor killed meanwhile takes it along.
        l.die_with_parent();
        let mut child = l.spawn(None)?;
        let deadline = Instant::now() + Duration::from_secs(5);
        let r = loop {
            if let Ok(Some(st)) = child.try_wait() {
                break Err(io::Error::other(format!("it exited at once ({st})")));
            }
            if sock.exists() {
                // The API thread installs its filter before it serves.
                std::thread::sleep(Duration::from_millis(50));
                break longest_filter(child.id() as i32);
            }
            if Instant::now() >= deadline {
                break Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "its API socket never appeared",
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let _ = child.kill();
        let _ = child.wait();
        r
    })();
    // Through the folder as made: the probe's user owns it, and may rename it in /tmp.
    let _ = staging.remove(&ours);
    r
}

/// The start of a probe's folder's name in `/tmp`.
const PROBE_PREFIX: &str = ".smolvm-fc-probe-";
