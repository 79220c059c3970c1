//! Exec'ing a VMM as an unprivileged user. Root opens everything the VMM needs — its
//! binary, the disk, the kernel, the TAP, the shared folders — and the child keeps exactly
//! those descriptors, drops its supplementary groups, gid and uid (no-new-privileges on),
//! and execs the binary it was handed (`execveat` on the open file, so no path of root's is
//! walked as that user and the binary checked is the one that runs). The VMM then reaches
//! nothing by a path of root's but its control socket, which it binds in the sockets'
//! folder and which root takes over at once ([`claim_socket`]): from then on only root
//! can connect to it, and the VMM can neither remove nor replace it.
//!
//! The environment is a minimal one (`PATH`, `LANG`, plus what the caller adds): nothing
//! of root's environment — tokens a preset forwards, say — reaches the VMM.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::sys::users::Identity;

/// Whom a VMM runs as: the user and group, and the only supplementary groups it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmmIdentity {
    pub id: Identity,
    pub groups: Vec<u32>,
}

impl VmmIdentity {
    /// Whether this identity may `want` (`0o4` read, `0o2` write, `0o1` search/execute,
    /// or a sum) a file with this owner, group and mode — the kernel's check without ACLs
    /// or capabilities.
    pub fn may(&self, uid: u32, gid: u32, mode: u32, want: u32) -> bool {
        let bits = if uid == self.id.uid {
            mode >> 6
        } else if gid == self.id.gid || self.groups.contains(&gid) {
            mode >> 3
        } else {
            mode
        };
        bits & want & 0o7 == want & 0o7
    }

    /// The first folder on the way to `dir` (its ancestors and itself) this identity
    /// cannot search, with its mode; `None` when every one of them lets it through.
    pub fn blocked_on_the_way(&self, dir: &Path) -> Option<(PathBuf, u32)> {
        let mut p = PathBuf::from("/");
        let mut chain = vec![p.clone()];
        for c in dir.components().skip(1) {
            p.push(c);
            chain.push(p.clone());
        }
        chain.into_iter().find_map(|d| {
            let m = std::fs::metadata(&d).ok()?;
            (!self.may(m.uid(), m.gid(), m.mode(), 0o1)).then_some((d, m.mode() & 0o7777))
        })
    }
}

/// One VMM to exec: the open binary, its arguments, the descriptors it keeps, its user.
#[derive(Debug)]
pub struct Launch {
    binary: File,
    binary_path: PathBuf,
    argv: Vec<CString>,
    env: Vec<CString>,
    /// Descriptors the VMM keeps, each at its own number or at a fixed one.
    keep: Vec<(OwnedFd, Option<RawFd>)>,
    /// `None` when this process is not root: it cannot switch users, and is no more
    /// privileged than its own user anyway.
    user: Option<VmmIdentity>,
    /// Killed when this process dies ([`Launch::die_with_parent`]).
    die_with_parent: bool,
}

fn cstring(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in an argument"))
}

impl Launch {
    /// Open `binary` (a regular file, any symbolic link resolved now: it names the program
    /// to run, as `exec` would) to run as `user`. The user must be allowed to execute it.
    pub fn new(binary: &Path, user: Option<VmmIdentity>) -> io::Result<Launch> {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(binary)?;
        let m = f.metadata()?;
        if !m.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", binary.display()),
            ));
        }
        if let Some(u) = &user {
            if !u.may(m.uid(), m.gid(), m.mode(), 0o1) {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "user {} may not execute {} (mode {:o})",
                        crate::sys::users::user_name(u.id.uid),
                        binary.display(),
                        m.mode() & 0o7777
                    ),
                ));
            }
        }
        Ok(Launch {
            binary: f,
            binary_path: binary.to_path_buf(),
            argv: vec![cstring(binary.as_os_str())?],
            env: [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "LANG=C.UTF-8",
            ]
            .into_iter()
            .map(|s| CString::new(s).expect("no NUL"))
            .collect(),
            keep: Vec::new(),
            user,
            die_with_parent: false,
        })
    }

    pub fn arg(&mut self, a: impl AsRef<OsStr>) -> io::Result<&mut Launch> {
        self.argv.push(cstring(a.as_ref())?);
        Ok(self)
    }

    pub fn args<I, S>(&mut self, args: I) -> io::Result<&mut Launch>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for a in args {
            self.arg(a)?;
        }
        Ok(self)
    }

    /// Add `KEY=VALUE` to the VMM's (otherwise minimal) environment.
    pub fn env(&mut self, key: &str, value: impl AsRef<OsStr>) -> io::Result<&mut Launch> {
        let mut kv = key.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(value.as_ref().as_bytes());
        self.env.push(
            CString::new(kv)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in env"))?,
        );
        Ok(self)
    }

    /// Keep `fd` open in the VMM; the number it has there (for its command line).
    pub fn hand_over(&mut self, fd: OwnedFd) -> RawFd {
        let n = fd.as_raw_fd();
        self.keep.push((fd, None));
        n
    }

    /// Keep `fd` open in the VMM as descriptor `at` (at least [`FIXED_FD_BASE`]): for a
    /// name that must stay valid in a later VMM (Firecracker's snapshot records its
    /// drive's `/proc/self/fd/N`).
    pub fn hand_over_at(&mut self, fd: OwnedFd, at: RawFd) -> RawFd {
        debug_assert!(at >= FIXED_FD_BASE);
        self.keep.push((fd, Some(at)));
        at
    }

    /// The VMM is this job's helper, not a VM that outlives the command (the QEMU that
    /// writes a snapshot's RAM file and never runs the guest, doctor's Firecracker probe):
    /// the kernel kills it (SIGKILL) when the thread that starts it ends, smolvm's death
    /// included, so a command killed or stopped by Ctrl-C midway leaves no VMM waiting
    /// forever, holding its files and a TAP. Only for a VMM that ends before that thread
    /// does (a runtime's worker, the calling thread).
    pub fn die_with_parent(&mut self) {
        self.die_with_parent = true;
    }

    /// The command line as it will run, program first.
    pub fn argv(&self) -> Vec<String> {
        self.argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    pub fn binary_path(&self) -> &Path {
        &self.binary_path
    }

    /// Start it in a new session with stdin from /dev/null and stdout and stderr going to
    /// `log` (a file the caller opened itself, so the VMM never opens a path of ours; for
    /// a launch without a log, output goes nowhere). The caller owns (and must eventually
    /// reap) the child.
    pub fn spawn(self, log: Option<&File>) -> io::Result<crate::sys::child::Child> {
        use std::os::unix::process::CommandExt;
        let (out, err) = match log {
            Some(l) => (Stdio::from(l.try_clone()?), Stdio::from(l.try_clone()?)),
            None => (Stdio::null(), Stdio::null()),
        };
        let exec = Exec::new(self);
        let mut c = Command::new(&exec.launch.binary_path);
        c.stdin(Stdio::null()).stdout(out).stderr(err);
        // SAFETY: the closure runs in the child between fork and exec. It touches only
        // memory prepared before the fork (the argument and environment pointer arrays,
        // the descriptor numbers, the groups) and makes async-signal-safe system calls;
        // `drop_to_groups` allocates only on its error path, which ends the child.
        unsafe {
            c.pre_exec(move || exec.run_in_child());
        }
        c.spawn().map(Into::into)
    }
}

/// The lowest fixed descriptor number [`Launch::hand_over_at`] uses: far above what a
/// VMM or this process opens, so moving a descriptor there replaces nothing in use.
pub const FIXED_FD_BASE: RawFd = 200;

/// What the child needs, laid out before the fork.
struct Exec {
    launch: Launch,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    keep: Vec<(RawFd, Option<RawFd>)>,
    user: Option<VmmIdentity>,
    root: bool,
    /// This process, when the child is to die with it.
    parent: Option<libc::pid_t>,
}

// SAFETY: the raw pointers point into `launch`'s own CStrings, which move with it and are
// never changed; the child reads them only.
unsafe impl Send for Exec {}
unsafe impl Sync for Exec {}

impl Exec {
    fn new(launch: Launch) -> Exec {
        let ptrs = |v: &[CString]| -> Vec<*const libc::c_char> {
            v.iter()
                .map(|s| s.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect()
        };
        Exec {
            argv: ptrs(&launch.argv),
            envp: ptrs(&launch.env),
            keep: launch
                .keep
                .iter()
                .map(|(fd, at)| (fd.as_raw_fd(), *at))
                .collect(),
            user: launch.user.clone(),
            root: nix::unistd::geteuid().is_root(),
            parent: launch
                .die_with_parent
                .then(|| nix::unistd::getpid().as_raw()),
            launch,
        }
    }

    fn run_in_child(&self) -> io::Result<()> {
        // SAFETY: plain system calls on integers and on pointers prepared before the fork.
        unsafe {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            for &(fd, at) in &self.keep {
                // dup2 leaves the copy without close-on-exec; the original closes at exec.
                let r = match at {
                    Some(at) => libc::dup2(fd, at),
                    None => libc::fcntl(fd, libc::F_SETFD, 0),
                };
                if r < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            // What the VMM creates (its control socket) is its own only.
            libc::umask(0o077);
            // Its console goes through a pipe (`console`): a pump that is gone costs the
            // console's output, never the guest.
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
        match (&self.user, self.root) {
            (Some(u), true) => crate::sys::users::drop_to_groups(u.id, &u.groups, &[])?,
            // Not root: already unprivileged; still no way back up through a set-id file.
            _ => {
                // SAFETY: prctl with integer arguments only.
                if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        if let Some(parent) = self.parent {
            // After the user switch, which clears it; a parent gone before this line is
            // seen in getppid.
            // SAFETY: prctl and getppid with integer arguments only.
            unsafe {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::getppid() != parent {
                    return Err(io::Error::other(
                        "smolvm ended before its helper VMM started",
                    ));
                }
            }
        }
        // SAFETY: a valid descriptor, an empty path and NULL-terminated arrays of C
        // strings that outlive the call (it does not return on success).
        unsafe {
            libc::syscall(
                libc::SYS_execveat,
                self.launch.binary.as_raw_fd(),
                c"".as_ptr(),
                self.argv.as_ptr(),
                self.envp.as_ptr(),
                libc::AT_EMPTY_PATH,
            );
        }
        Err(io::Error::last_os_error())
    }
}

/// Take over the control socket a VMM running as `vmm_uid` bound at `path`: once a socket
/// is there (never through a symbolic link), it becomes root's with mode 0600, so only
/// root can connect and the VMM (or anyone else) can neither remove nor replace it in a
/// sticky folder. `Ok(false)` while nothing is there yet; a socket that is already this
/// process's user's is taken as it is. Anything else at the path — another user's socket,
/// a symbolic link, a file — is an error and is left alone.
pub fn claim_socket(path: &Path, vmm_uid: u32) -> io::Result<bool> {
    let fd = match open_path_nofollow(path) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let st = nix::sys::stat::fstat(&fd).map_err(io::Error::from)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "it is not a socket (a symbolic link is never followed)",
        ));
    }
    let me = nix::unistd::geteuid().as_raw();
    if st.st_uid == me {
        return Ok(true);
    }
    if st.st_uid != vmm_uid {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "the socket belongs to {}, not to the VMM's user",
                crate::sys::users::user_name(st.st_uid)
            ),
        ));
    }
    let gid = nix::unistd::getegid().as_raw();
    // SAFETY: a valid O_PATH descriptor and an empty path with AT_EMPTY_PATH.
    if unsafe { libc::fchownat(fd.as_raw_fd(), c"".as_ptr(), me, gid, libc::AT_EMPTY_PATH) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // chmod through the descriptor's /proc link: the very inode checked above.
    std::fs::set_permissions(
        format!("/proc/self/fd/{}", fd.as_raw_fd()),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )?;
    Ok(true)
}

/// `open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC)`: the entry itself, a symbolic link
/// refused.
fn open_path_nofollow(path: &Path) -> io::Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_PATH ignores the access mode; std wants one, and read is harmless here.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "it is a symbolic link (never followed)",
                )
            } else {
                e
            }
        })?;
    let fd = OwnedFd::from(f);
    let st = nix::sys::stat::fstat(&fd).map_err(io::Error::from)?;
    if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "it is a symbolic link (never followed)",
        ));
    }
    Ok(fd)
}

/// The control socket at `path` as something to connect to without following a symbolic
/// link: an `O_PATH` descriptor of the socket itself (owned by this process's user: a VMM
/// socket smolvm took over, or one a VMM running as this user made) and the
/// `/proc/self/fd/N` name that reaches exactly it. Keep the descriptor until connected.
pub fn socket_target(path: &Path) -> io::Result<(OwnedFd, PathBuf)> {
    let fd = open_path_nofollow(path)?;
    let st = nix::sys::stat::fstat(&fd).map_err(io::Error::from)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "it is not a socket",
        ));
    }
    if st.st_uid != nix::unistd::geteuid().as_raw() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "the control socket belongs to {}, not to this user; not connecting",
                crate::sys::users::user_name(st.st_uid)
            ),
        ));
    }
    let name = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    Ok((fd, name))
}

/// Connect to the control socket at `path` (see [`socket_target`]).
pub async fn connect(path: &Path) -> io::Result<tokio::net::UnixStream> {
    let (_fd, name) = socket_target(path)?;
    tokio::net::UnixStream::connect(&name).await
}

/// [`connect`], blocking.
pub fn connect_blocking(path: &Path) -> io::Result<std::os::unix::net::UnixStream> {
    let (_fd, name) = socket_target(path)?;
    std::os::unix::net::UnixStream::connect(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_follows_owner_group_other() {
        let u = VmmIdentity {
            id: Identity { uid: 5, gid: 6 },
            groups: vec![7],
        };
        assert!(u.may(5, 0, 0o700, 0o7));
        assert!(
            !u.may(5, 0, 0o070, 0o1),
            "the owner's bits decide for the owner"
        );
        assert!(u.may(0, 6, 0o750, 0o5));
        assert!(u.may(0, 7, 0o770, 0o3));
        assert!(!u.may(0, 8, 0o770, 0o1));
        assert!(u.may(0, 8, 0o1777, 0o3));
        assert!(!u.may(0, 0, 0o755, 0o2));
    }

    #[test]
    fn a_blocked_folder_on_the_way_is_named() {
        let t = tempfile::tempdir().unwrap();
        let inner = t.path().join("a/b");
        std::fs::create_dir_all(&inner).unwrap();
        std::fs::set_permissions(
            t.path().join("a"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        let stranger = VmmIdentity {
            id: Identity {
                uid: 4_000_000,
                gid: 4_000_000,
            },
            groups: Vec::new(),
        };
        let me = nix::unistd::geteuid().as_raw();
        if me == 0 || std::fs::metadata(t.path()).unwrap().uid() == me {
            // The temporary folder itself is private (0700): it blocks first.
            let (d, mode) = stranger.blocked_on_the_way(&inner).unwrap();
            assert!(d == t.path() || d == t.path().join("a"), "{}", d.display());
            assert_eq!(mode & 0o077, 0);
        }
    }

    #[test]
    fn sockets_are_claimed_and_connected_without_following_links() {
        let t = tempfile::tempdir().unwrap();
        let sock = t.path().join("qmp-x.sock");
        assert!(!claim_socket(&sock, 1234).unwrap(), "nothing there yet");
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        assert!(claim_socket(&sock, 1234).unwrap(), "already ours");
        let c = connect_blocking(&sock).unwrap();
        drop(c);
        let _ = listener.accept().unwrap();
        let link = t.path().join("qmp-y.sock");
        std::os::unix::fs::symlink(&sock, &link).unwrap();
        let e = connect_blocking(&link).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        let e = claim_socket(&link, 1234).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        let file = t.path().join("qmp-z.sock");
        std::fs::write(&file, b"").unwrap();
        assert!(claim_socket(&file, 1234).is_err());
        assert!(connect_blocking(&file).is_err());
    }
}
