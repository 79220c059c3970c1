//! Processes: identity from `/proc`, VMM discovery, and signalling only through an
//! [`OwnedVmm`]: a pidfd opened after proving the process is a VMM of ours.
//!
//! A process is a VMM of ours when it is a QEMU or Firecracker binary (`/proc/<pid>/exe`)
//! carrying a SmolVM control socket, and either a row of a candidate state database records
//! it (its id and socket, and its PID or this install's files) or — an orphan, recorded
//! nowhere — its command line or open files name this install's data dir (the VM's
//! `<id>.log` or `disks/<id>.ext4`). A socket name alone proves nothing: any process may
//! carry one in its arguments (`tail -f /tmp/fc-x.sock`).

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::fs::VmFile;
use super::state::{Known, VmRecord};

/// What `/proc/<pid>` says about a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: i32,
    pub comm: String,
    /// `R`, `S`, `Z`, … (field 3 of `stat`).
    pub state: char,
    /// Start time in clock ticks after boot (field 22 of `stat`).
    pub start_ticks: u64,
    pub cmdline: Vec<String>,
}

impl ProcInfo {
    /// Exited but not yet reaped (or dead): not a live process.
    pub fn is_zombie(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }

    /// The process runs a QEMU or Firecracker binary: the name of `/proc/<pid>/exe` (its
    /// `comm` when that link cannot be read) is `qemu-system-*`, `qemu-kvm` or
    /// `firecracker*`.
    pub fn is_vmm_binary(&self) -> bool {
        let exe = std::fs::read_link(format!("/proc/{}/exe", self.pid)).ok();
        let exe_name = exe
            .as_deref()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned());
        let name = exe_name.as_deref().unwrap_or(&self.comm);
        let name = name.strip_suffix(" (deleted)").unwrap_or(name);
        name.starts_with("qemu-system-") || name == "qemu-kvm" || name.starts_with("firecracker")
    }

    /// The command line or an open file of the process names this VM's files in
    /// `data_dir` (`<id>.log`, `disks/<id>.ext4`): the VMM was started by this install.
    pub fn names_data_dir(&self, data_dir: &Path, vm_id: &str) -> bool {
        if !is_vm_id(vm_id) {
            return false;
        }
        let mut wanted = Vec::new();
        for dir in [
            Some(data_dir.to_path_buf()),
            std::fs::canonicalize(data_dir).ok(),
        ]
        .into_iter()
        .flatten()
        {
            for f in [VmFile::Log, VmFile::Disk] {
                wanted.extend(f.path(&dir, &dir, vm_id));
            }
        }
        let in_args = self.cmdline.iter().any(|arg| {
            arg.split([',', '='])
                .any(|part| wanted.iter().any(|w| Path::new(part) == w))
        });
        if in_args {
            return true;
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{}/fd", self.pid)) else {
            return false;
        };
        fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|t| {
                let t = t.to_string_lossy();
                let t = Path::new(t.strip_suffix(" (deleted)").unwrap_or(&t));
                wanted.iter().any(|w| t == w)
            })
        })
    }
}

/// Read `/proc/<pid>`; `None` if there is no such process (or it cannot be read).
pub fn info(pid: i32) -> Option<ProcInfo> {
    if pid <= 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parentheses: it runs to the *last* ')'.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    let state = rest.first()?.chars().next()?;
    let start_ticks = rest.get(19)?.parse().ok()?;
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    Some(ProcInfo {
        pid,
        comm,
        state,
        start_ticks,
        cmdline,
    })
}

/// A live (non-zombie) process with this PID exists.
pub fn is_alive(pid: i32) -> bool {
    info(pid).is_some_and(|i| !i.is_zombie())
}

/// A running process named so that another process can tell later, on this host, whether
/// it still runs: `<boot id>.<PID namespace>.<pid>.<start ticks>` (a reused PID, another
/// boot or another PID namespace never passes for it). `None` when it does not run.
pub fn token_of(pid: i32) -> Option<String> {
    let start = info(pid).filter(|i| !i.is_zombie())?.start_ticks;
    Some(format!("{}.{}.{pid}.{start}", boot_id()?, pid_namespace()?))
}

/// Whether the process a [`token_of`] names has ended: `Some(true)` for a token of this
/// boot and PID namespace whose process (that PID with that start time) no longer runs,
/// `Some(false)` while it runs, `None` for a token of another boot or namespace, or for
/// text that is not a token (not ours to judge).
pub fn token_ended(token: &str) -> Option<bool> {
    let mut parts = token.split('.');
    let (boot, ns, pid, start) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || boot != boot_id()? || ns != pid_namespace()? {
        return None;
    }
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !digits(start) {
        return None;
    }
    let pid: i32 = pid.parse().ok().filter(|p| *p > 0)?;
    let start: u64 = start.parse().ok()?;
    match info(pid) {
        Some(i) => Some(i.is_zombie() || i.start_ticks != start),
        // Ended only when no such process is there at all; one that cannot be read (a
        // `/proc` mounted otherwise, out of descriptors) is not judged.
        None => gone(pid).then_some(true),
    }
}

/// The process with this PID has ended: a zombie, or no process at all (`/proc/<pid>` is
/// not there). One that cannot be read has not, as far as anyone can tell.
pub fn ended(pid: i32) -> bool {
    match info(pid) {
        Some(i) => i.is_zombie(),
        None => gone(pid),
    }
}

/// No process with this PID exists (`/proc/<pid>` is not there), as opposed to one that
/// cannot be read.
fn gone(pid: i32) -> bool {
    std::fs::symlink_metadata(format!("/proc/{pid}"))
        .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`).
fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let id = id.trim();
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
        .then(|| id.to_string())
}

/// This process's PID namespace (the inode of `/proc/self/ns/pid`, `pid:[N]`).
fn pid_namespace() -> Option<String> {
    let link = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let n = link.to_str()?.strip_prefix("pid:[")?.strip_suffix(']')?;
    (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then(|| n.to_string())
}

/// Every PID in `/proc`.
pub fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

text_enum! {
    /// Which VMM a socket name belongs to.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum VmmKind {
        Firecracker = "firecracker",
        Qemu = "qemu",
    }
}

/// The VM a SmolVM control-socket file name belongs to: `fc-<id>.sock` (Firecracker) or
/// `qmp-<id>.sock` (QEMU) — the inverse of [`VmFile::locate`].
pub fn socket_vm(name: &str) -> Option<(VmmKind, &str)> {
    match VmFile::parse_socket_name(name)? {
        (VmFile::FcSocket, id) => Some((VmmKind::Firecracker, id)),
        (VmFile::QmpSocket, id) => Some((VmmKind::Qemu, id)),
        _ => None,
    }
}

/// SmolVM's VM id pattern: `^[a-z0-9][a-z0-9_-]{0,62}[a-z0-9]$|^[a-z0-9]$`.
pub fn is_vm_id(id: &str) -> bool {
    let b = id.as_bytes();
    let inner = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-';
    let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match b.len() {
        1 => edge(&b[0]),
        2..=64 => edge(&b[0]) && edge(&b[b.len() - 1]) && b.iter().all(inner),
        _ => false,
    }
}

/// A VMM process: its command line names a SmolVM control socket inside `socket_dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmmProcess {
    pub pid: i32,
    pub start_ticks: u64,
    pub comm: String,
    pub kind: VmmKind,
    pub vm_id: String,
    pub socket: PathBuf,
}

/// The SmolVM control socket this command line carries, if any
/// (`--api-sock <dir>/fc-<id>.sock`, `-qmp unix:<dir>/qmp-<id>.sock,server=on,…`), only in
/// `socket_dir` when given.
pub fn socket_in_cmdline(
    cmdline: &[String],
    socket_dir: Option<&Path>,
) -> Option<(VmmKind, String, PathBuf)> {
    for arg in cmdline {
        for part in arg.split(',') {
            let p = Path::new(part.strip_prefix("unix:").unwrap_or(part));
            if !p.is_absolute() || socket_dir.is_some_and(|d| p.parent() != Some(d)) {
                continue;
            }
            if let Some((kind, id)) = p.file_name().and_then(|n| n.to_str()).and_then(socket_vm) {
                return Some((kind, id.to_string(), p.to_path_buf()));
            }
        }
    }
    None
}

/// Live VMM processes: QEMU or Firecracker binaries whose command line carries a SmolVM
/// control socket, in `socket_dir` when given (processes with sockets elsewhere — another
/// SmolVM install, parallel tests — are then not listed), else anywhere.
pub fn vmm_processes(socket_dir: Option<&Path>) -> Vec<VmmProcess> {
    let me = std::process::id() as i32;
    all_pids()
        .into_iter()
        .filter(|&pid| pid != me)
        .filter_map(info)
        .filter(|i| !i.is_zombie() && i.is_vmm_binary())
        .filter_map(|i| {
            let (kind, vm_id, socket) = socket_in_cmdline(&i.cmdline, socket_dir)?;
            Some(VmmProcess {
                pid: i.pid,
                start_ticks: i.start_ticks,
                comm: i.comm,
                kind,
                vm_id,
                socket,
            })
        })
        .collect()
}

/// Why a process is claimed as a VMM of ours.
#[derive(Debug, Clone, Copy)]
pub enum VmmClaim<'a> {
    /// `vm`, a row of the active state database, records this VMM: same id, its control
    /// socket is the row's (`socket_path`) or the one smolvm names in `socket_dir`, and
    /// the process is the row's PID or names the VM's files in `data_dir`.
    Row {
        vm: &'a VmRecord,
        socket_dir: &'a Path,
        data_dir: &'a Path,
    },
    /// No candidate database records it (`known`): an orphan, ours only when its socket is
    /// in `socket_dir` and it names the VM's files in `data_dir`.
    Orphan {
        socket_dir: &'a Path,
        data_dir: &'a Path,
        known: &'a Known,
    },
}

impl VmmClaim<'_> {
    /// Whether the claim holds for the process `i` carrying socket `socket` of `vm_id`;
    /// the reason when it does not.
    fn check(&self, i: &ProcInfo, vm_id: &str, socket: &Path) -> Result<(), String> {
        if !i.is_vmm_binary() {
            return Err("not a QEMU or Firecracker binary".into());
        }
        match *self {
            VmmClaim::Row {
                vm,
                socket_dir,
                data_dir,
            } => {
                let ours: Vec<PathBuf> = [VmFile::FcSocket, VmFile::QmpSocket]
                    .iter()
                    .filter_map(|f| f.path(data_dir, socket_dir, vm_id))
                    .collect();
                let recorded = vm.socket_path.as_deref().map(Path::new) == Some(socket);
                if vm.id != vm_id || !(recorded || ours.iter().any(|o| o == socket)) {
                    return Err(format!("its control socket is not VM {}'s", vm.id));
                }
                if vm.pid != Some(i64::from(i.pid)) && !i.names_data_dir(data_dir, vm_id) {
                    return Err(
                        "neither the row's PID nor started with this install's files".into(),
                    );
                }
                Ok(())
            }
            VmmClaim::Orphan {
                socket_dir,
                data_dir,
                known,
            } => {
                if known.incomplete {
                    Err("a state database could not be read".into())
                } else if socket.parent() != Some(socket_dir) {
                    Err("its control socket is not in this install's socket dir".into())
                } else if known.ids.contains(vm_id) || known.sockets.contains(socket) {
                    Err(format!("a state database records VM {vm_id}"))
                } else if !i.names_data_dir(data_dir, vm_id) {
                    Err("it was not started with this install's files".into())
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Whether the claim holds for `p` as it was scanned.
    pub fn holds(&self, p: &VmmProcess) -> bool {
        info(p.pid).is_some_and(|i| {
            i.start_ticks == p.start_ticks && self.check(&i, &p.vm_id, &p.socket).is_ok()
        })
    }
}

/// A VMM process proved to be ours: the only thing smolvm signals. Built only by
/// [`OwnedVmm::prove`], through a pidfd, so a reused PID is never hit.
#[derive(Debug)]
pub struct OwnedVmm {
    pidfd: Pidfd,
    pub process: VmmProcess,
}

impl OwnedVmm {
    /// Prove that `p` (seen by a scan) is still that VMM — same start time, a VMM binary,
    /// the same control socket in its command line — and that `claim` holds for it now.
    /// `Ok(None)` when it has already gone; an error (nothing signalled) when it is not
    /// provably ours.
    pub fn prove(p: &VmmProcess, claim: VmmClaim<'_>) -> io::Result<Option<OwnedVmm>> {
        let mut why = String::new();
        let pidfd = Pidfd::open_verified(p.pid, |i| {
            let same = i.start_ticks == p.start_ticks
                && socket_in_cmdline(&i.cmdline, None)
                    .is_some_and(|(_, id, s)| id == p.vm_id && s == p.socket);
            if !same {
                why = "it is no longer the process that was found".into();
                return false;
            }
            match claim.check(i, &p.vm_id, &p.socket) {
                Ok(()) => true,
                Err(e) => {
                    why = e;
                    false
                }
            }
        })
        .map_err(|e| {
            if e.kind() == io::ErrorKind::PermissionDenied && !why.is_empty() {
                io::Error::new(
                    e.kind(),
                    format!(
                        "process {} ({}) is not provably VM {}'s VMM ({why}); refusing to signal it",
                        p.pid, p.comm, p.vm_id
                    ),
                )
            } else {
                e
            }
        })?;
        Ok(pidfd.map(|pidfd| OwnedVmm {
            pidfd,
            process: p.clone(),
        }))
    }

    /// Send `sig` to exactly this process.
    pub fn signal(&self, sig: i32) -> io::Result<()> {
        tracing::info!(pid = self.process.pid, vm = %self.process.vm_id, sig, "signalling VMM");
        self.pidfd.signal(sig)
    }

    /// Wait up to `timeout` for the process to exit; `true` if it did.
    pub async fn wait_exit(&self, timeout: Duration) -> bool {
        self.pidfd.wait_exit(timeout).await
    }
}

/// A process of smolvm's own other than a VMM (the sandboxes' resolver), proved through a
/// pidfd the same way: the recorded start time and whatever `is_ours` checks must hold
/// for the process the pidfd refers to. The only way to signal one.
#[derive(Debug)]
pub struct OwnedProcess {
    pidfd: Pidfd,
    pub pid: i32,
}

impl OwnedProcess {
    /// `Ok(None)` when no such live process exists (or it is another one now: a different
    /// start time); an error, nothing signalled, when `is_ours` refuses it.
    pub fn prove(
        pid: i32,
        start_ticks: u64,
        is_ours: impl Fn(&ProcInfo) -> bool,
    ) -> io::Result<Option<OwnedProcess>> {
        match info(pid) {
            Some(i) if i.start_ticks == start_ticks => {}
            _ => return Ok(None),
        }
        let pidfd = Pidfd::open_verified(pid, |i| i.start_ticks == start_ticks && is_ours(i))?;
        Ok(pidfd.map(|pidfd| OwnedProcess { pidfd, pid }))
    }

    /// Send `sig` to exactly this process.
    pub fn signal(&self, sig: i32) -> io::Result<()> {
        tracing::info!(pid = self.pid, sig, "signalling smolvm helper");
        self.pidfd.signal(sig)
    }

    /// Wait up to `timeout` for the process to exit; `true` if it did.
    pub async fn wait_exit(&self, timeout: Duration) -> bool {
        self.pidfd.wait_exit(timeout).await
    }

    /// Whether it has exited.
    pub fn has_exited(&self) -> bool {
        self.pidfd.has_exited()
    }
}

/// A handle on one specific process (Linux pidfd): signals go to that process or fail,
/// never to a later process that reused its PID.
#[derive(Debug)]
struct Pidfd {
    fd: OwnedFd,
}

impl Pidfd {
    /// A pidfd for `pid`, but only if the process is the one `is_expected` accepts.
    /// `Ok(None)` when there is no such live process (already gone). Verification happens
    /// after the pidfd is open and is confirmed by signal 0 through it, so the accepted
    /// `/proc` facts belong to the process the pidfd refers to.
    fn open_verified(
        pid: i32,
        mut is_expected: impl FnMut(&ProcInfo) -> bool,
    ) -> io::Result<Option<Pidfd>> {
        if pid <= 0 {
            return Ok(None);
        }
        let Some(rpid) = rustix::process::Pid::from_raw(pid) else {
            return Ok(None);
        };
        let pfd = match rustix::process::pidfd_open(rpid, rustix::process::PidfdFlags::empty()) {
            Ok(fd) => Pidfd { fd },
            Err(rustix::io::Errno::SRCH) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(info) = info(pid) else {
            return Ok(None);
        };
        if info.is_zombie() {
            return Ok(None);
        }
        if !is_expected(&info) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "process {pid} ({}) is not the expected VMM; refusing to signal it",
                    info.comm
                ),
            ));
        }
        // Still alive after the checks (a pidfd turns readable when its process exits),
        // so the facts accepted above are this process's.
        if pfd.has_exited() {
            Ok(None)
        } else {
            Ok(Some(pfd))
        }
    }

    /// Send `sig` to exactly this process.
    fn signal(&self, sig: i32) -> io::Result<()> {
        let sig = rustix::process::Signal::from_named_raw(sig)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("signal {sig}")))?;
        rustix::process::pidfd_send_signal(&self.fd, sig).map_err(io::Error::from)
    }

    /// Whether the process has exited (a pidfd becomes readable on exit).
    fn has_exited(&self) -> bool {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        poll(&mut fds, Some(&zero)).is_ok_and(|n| n > 0)
    }

    /// Wait up to `timeout` for the process to exit; `true` if it did.
    async fn wait_exit(&self, timeout: Duration) -> bool {
        if self.has_exited() {
            return true;
        }
        let Ok(dup) = self.fd.try_clone() else {
            return false;
        };
        // SAFETY: the AsyncFd owns `dup`, so the descriptor stays open for as long as it
        // is registered.
        let Ok(afd) = (unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(dup, tokio::io::Interest::READABLE)
        }) else {
            return false;
        };
        tokio::time::timeout(timeout, afd.readable()).await.is_ok() || self.has_exited()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token says whether its process runs: a running one, one that ended, and one whose
    /// PID now has another start; a token of another boot or namespace, or none at all, is
    /// not judged.
    #[test]
    fn a_process_token_tells_whether_that_process_still_runs() {
        let me = token_of(std::process::id() as i32).unwrap();
        assert_eq!(token_ended(&me), Some(false));
        let mut child = std::process::Command::new("sleep")
            .arg("1000")
            .spawn()
            .unwrap();
        let token = token_of(child.id() as i32).unwrap();
        assert_eq!(token_ended(&token), Some(false));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(token_ended(&token), Some(true));
        assert_eq!(token_of(child.id() as i32), None);
        let parts: Vec<&str> = me.split('.').collect();
        let [boot, ns, pid, start] = parts[..] else {
            panic!("{me}");
        };
        let reused = format!("{boot}.{ns}.{pid}.{}", start.parse::<u64>().unwrap() + 1);
        assert_eq!(token_ended(&reused), Some(true), "another start of the PID");
        for other in [
            format!("00000000-0000-0000-0000-000000000000.{ns}.{pid}.{start}"),
            format!("{boot}.1.{pid}.{start}"),
            format!("{boot}.{ns}.+{pid}.{start}"),
            format!("{me}.1"),
            "x".to_string(),
            String::new(),
        ] {
            assert_eq!(token_ended(&other), None, "{other}");
        }
    }

    #[test]
    fn socket_names_and_ids() {
        assert_eq!(
            socket_vm("fc-vm-1.sock"),
            Some((VmmKind::Firecracker, "vm-1"))
        );
        assert_eq!(socket_vm("qmp-a.sock"), Some((VmmKind::Qemu, "a")));
        assert_eq!(socket_vm("qmp-Bad.sock"), None);
        assert_eq!(socket_vm("vsock-vm-1.sock"), None);
        assert_eq!(socket_vm("fc-.sock"), None);
        assert!(is_vm_id("vm-12345") && is_vm_id("a") && !is_vm_id("-a") && !is_vm_id("a-"));
        assert!(!is_vm_id(&"a".repeat(65)));
    }

    #[test]
    fn finds_sockets_in_both_vmm_command_lines_only_in_our_dir() {
        let dir = Path::new("/run/t");
        let qemu: Vec<String> = [
            "qemu-system-x86_64",
            "-qmp",
            "unix:/run/t/qmp-vm-1.sock,server=on,wait=off",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            socket_in_cmdline(&qemu, Some(dir)),
            Some((
                VmmKind::Qemu,
                "vm-1".into(),
                PathBuf::from("/run/t/qmp-vm-1.sock")
            ))
        );
        let fc: Vec<String> = ["firecracker", "--api-sock", "/run/t/fc-x.sock"]
            .map(String::from)
            .to_vec();
        assert_eq!(socket_in_cmdline(&fc, Some(dir)).unwrap().1, "x");
        assert_eq!(socket_in_cmdline(&fc, Some(Path::new("/tmp"))), None);
        assert_eq!(socket_in_cmdline(&fc, None).unwrap().1, "x");
    }

    #[tokio::test]
    async fn pidfd_refuses_an_unexpected_process_and_stops_an_expected_one() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let err = Pidfd::open_verified(pid, |i| i.comm == "not-sleep").unwrap_err();
        assert!(err.to_string().contains("not the expected VMM"), "{err}");
        assert!(is_alive(pid));
        let pfd = Pidfd::open_verified(pid, |i| i.comm == "sleep")
            .unwrap()
            .unwrap();
        assert!(!pfd.wait_exit(Duration::from_millis(50)).await);
        pfd.signal(libc::SIGTERM).unwrap();
        assert!(pfd.wait_exit(Duration::from_secs(5)).await);
        assert!(!is_alive(pid), "a zombie counts as gone");
        child.wait().unwrap();
        assert!(Pidfd::open_verified(pid, |_| true).unwrap().is_none());
    }
}
