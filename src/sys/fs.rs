//! File-system side effects that must be safe against symlinks and races: disk usage and
//! tree removal both work relative to open directory descriptors (`openat`, `fstatat`,
//! `unlinkat` with `O_NOFOLLOW`), so a symlink inside a tree is measured and removed as a
//! link and never followed, and a directory swapped for a symlink mid-walk cannot redirect
//! the walk outside the tree. Neither crosses a mount boundary: every directory is
//! compared by **mount id** (`statx` `STATX_MNT_ID`) with the directory the walk started
//! from, so another file system, a bind mount of the same file system (same `st_dev`) and a
//! mount on the starting directory itself are all refused.

use std::collections::HashSet;
use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::dir::{Dir, Type};
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};
use rayon::prelude::*;

mod snapshot_dir;
mod staging;
#[cfg(test)]
use snapshot_dir::is_snapshot_file;
pub use snapshot_dir::{
    check_snapshot_dir, remove_snapshot_dir, SMOLVM_SNAPSHOT_FILES, SNAPSHOT_FILES,
};
pub use staging::{sweep_staging, Staging};

/// Tracks inodes with more than one link, so a hard-linked file is counted once across
/// every call that shares the tracker.
#[derive(Default)]
pub struct HardLinks(Mutex<HashSet<(u64, u64)>>);

impl HardLinks {
    fn first_sighting(&self, st: &FileStat) -> bool {
        if st.st_nlink <= 1 || is_dir(st) {
            return true;
        }
        self.0
            .lock()
            .map(|mut s| s.insert((st.st_dev, st.st_ino)))
            .unwrap_or(true)
    }
}

fn is_dir(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}

fn is_symlink(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK
}

/// The id of the mount `fd` is on (`statx` `STATX_MNT_ID`, Linux ≥ 5.8; else the
/// `mnt_id:` line of `/proc/self/fdinfo/<fd>`). Two directories with the same `st_dev`
/// can be on different mounts (a bind mount): only the mount id tells them apart.
pub fn mount_id(fd: &impl AsFd) -> io::Result<u64> {
    use std::os::fd::AsRawFd;
    let raw = fd.as_fd().as_raw_fd();
    // SAFETY: an all-zero `statx` is a valid value for the kernel to fill in.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: a valid fd, an empty NUL-terminated path with AT_EMPTY_PATH, and a buffer
    // of the right type.
    let r = unsafe {
        libc::statx(
            raw,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_MNT_ID,
            &mut stx,
        )
    };
    if r == 0 && stx.stx_mask & libc::STATX_MNT_ID != 0 {
        return Ok(stx.stx_mnt_id);
    }
    let fdinfo = std::fs::read_to_string(format!("/proc/self/fdinfo/{raw}"))?;
    fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::other("cannot tell which mount a directory is on"))
}

/// The error for a directory that is a mount point (of any kind).
fn mount_point_error() -> io::Error {
    io::Error::other(
        "a file system or bind mount is mounted here; refusing to cross a mount boundary",
    )
}

/// Mount points strictly below the directory `fd` refers to (from `/proc/self/mountinfo`,
/// compared with the directory's real path).
fn mounts_below(fd: &OwnedFd) -> io::Result<Vec<PathBuf>> {
    use std::os::fd::AsRawFd;
    let here = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(OsStr::from_bytes(&unescape_mountinfo(p))))
        .filter(|p| p != &here && p.starts_with(&here))
        .collect())
}

/// `/proc/self/mountinfo` writes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], oct) {
            (b'\\', Some(d)) => {
                out.push(d.iter().fold(0u8, |a, c| a.wrapping_mul(8) + (c - b'0')));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

fn blocks_bytes(st: &FileStat) -> u64 {
    (st.st_blocks as u64).saturating_mul(512)
}

fn cpath(p: &OsStr) -> io::Result<CString> {
    CString::new(p.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// Open a configured directory path (the data dir, the socket dir, a cache dir): the path
/// is configuration and may pass through symbolic links; the names smolvm generates inside
/// it never are followed.
fn open_config_dir(dir: &Path) -> io::Result<OwnedFd> {
    let c = cpath(dir.as_os_str())?;
    openat(
        nix::fcntl::AT_FDCWD,
        c.as_c_str(),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno_io)
}

/// Whether the directory `name` in `dir` is on a mount of its own (something is mounted
/// there), or cannot be told: a walk that must not leave `dir`'s file system stops here.
/// A symbolic link, or no directory, is not one.
pub fn is_mount_below(dir: &Path, name: &OsStr) -> bool {
    let Ok(parent) = open_config_dir(dir) else {
        return true;
    };
    let Ok(c) = cpath(name) else {
        return true;
    };
    match open_dir_at(&parent, c.as_c_str()) {
        Ok(child) => match (mount_id(&parent), mount_id(&child)) {
            (Ok(a), Ok(b)) => a != b,
            _ => true,
        },
        Err(nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR) => false,
        Err(_) => true,
    }
}

/// Open `name` under `parent` as a directory, refusing symlinks.
fn open_dir_at(parent: impl AsFd, name: &CStr) -> nix::Result<OwnedFd> {
    openat(parent, name, DIR_FLAGS, Mode::empty())
}

/// The names in a directory (without `.` and `..`) with the type the kernel reported.
fn list(fd: &OwnedFd) -> nix::Result<Vec<(CString, Option<Type>)>> {
    let mut dir = Dir::from_fd(
        fd.try_clone()
            .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?,
    )?;
    let mut out = Vec::new();
    for entry in dir.iter() {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        out.push((name.to_owned(), entry.file_type()));
    }
    Ok(out)
}

/// Disk usage of `path` in bytes (`st_blocks * 512`, like `du -s`): a symlink counts as
/// the link itself, directories are walked in parallel without following symlinks or
/// leaving the file system `path` is on, hard links count once per `links`. Unreadable
/// parts are skipped (counted as what could be seen), a missing path is 0.
pub fn disk_usage(path: &Path, links: &HardLinks) -> u64 {
    walk_usage(path, links, links).on_disk
}

/// [`disk_usage`] of the regular files alone (no directory's or link's own blocks), hard
/// links once per `links`: what SmolVM's `prune` reports for a cache (`size_bytes`,
/// `freed_bytes`).
pub fn files_usage(path: &Path, links: &HardLinks) -> u64 {
    walk_usage(path, links, links).files
}

/// What one walk of a tree adds up (the walk of [`disk_usage`]: never through a symlink,
/// never across a mount below where it starts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// [`disk_usage`]: every entry's blocks, hard links once per the caller's tracker.
    pub on_disk: u64,
    /// The regular files' blocks, a hard-linked file once within this tree (SmolVM's
    /// `size_bytes` of an image: two caches sharing a file each count it).
    pub files: u64,
}

impl std::ops::Add for Usage {
    type Output = Usage;
    fn add(self, o: Usage) -> Usage {
        Usage {
            on_disk: self.on_disk.saturating_add(o.on_disk),
            files: self.files.saturating_add(o.files),
        }
    }
}

impl std::iter::Sum for Usage {
    fn sum<I: Iterator<Item = Usage>>(it: I) -> Usage {
        it.fold(Usage::default(), |a, b| a + b)
    }
}

/// Both figures of `path` in one walk: `on_disk` with hard links once per `links`, `files`
/// with hard links once within `path`.
pub fn usage(path: &Path, links: &HardLinks) -> Usage {
    walk_usage(path, links, &HardLinks::default())
}

/// The two trackers: `disk` for `on_disk`, `files` for `files` (they may be one).
struct Trackers<'a> {
    disk: &'a HardLinks,
    files: &'a HardLinks,
}

impl Trackers<'_> {
    /// What one entry adds: a directory its own blocks to `on_disk`; anything else once
    /// per tracker, and only a regular file to `files`.
    fn of(&self, st: &FileStat) -> Usage {
        let bytes = blocks_bytes(st);
        if is_dir(st) {
            return Usage {
                on_disk: bytes,
                files: 0,
            };
        }
        let first_on_disk = self.disk.first_sighting(st);
        let first_in_files = if std::ptr::eq(self.disk, self.files) {
            first_on_disk
        } else {
            self.files.first_sighting(st)
        };
        let regular = st.st_mode & libc::S_IFMT == libc::S_IFREG;
        Usage {
            on_disk: if first_on_disk { bytes } else { 0 },
            files: if regular && first_in_files { bytes } else { 0 },
        }
    }
}

fn walk_usage(path: &Path, disk: &HardLinks, files: &HardLinks) -> Usage {
    let t = Trackers { disk, files };
    let Ok(st) = nix::sys::stat::lstat(path) else {
        return Usage::default();
    };
    if !is_dir(&st) {
        return t.of(&st);
    }
    let Ok(c) = cpath(path.as_os_str()) else {
        return Usage::default();
    };
    match openat(nix::fcntl::AT_FDCWD, c.as_c_str(), DIR_FLAGS, Mode::empty()) {
        Ok(fd) => match mount_id(&fd) {
            Ok(mnt) => t.of(&st) + dir_usage(&fd, mnt, &t),
            Err(_) => t.of(&st),
        },
        Err(_) => t.of(&st),
    }
}

fn dir_usage(fd: &OwnedFd, mnt: u64, t: &Trackers) -> Usage {
    let Ok(entries) = list(fd) else {
        return Usage::default();
    };
    let mut total = Usage::default();
    let mut subdirs: Vec<CString> = Vec::new();
    for (name, kind) in entries {
        if kind == Some(Type::Directory) {
            subdirs.push(name);
            continue;
        }
        let Ok(st) = fstatat(fd, name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW) else {
            continue;
        };
        if is_dir(&st) {
            subdirs.push(name);
        } else {
            total = total + t.of(&st);
        }
    }
    let walk = |name: &CString| -> Usage {
        let Ok(child) = open_dir_at(fd, name.as_c_str()) else {
            return Usage::default();
        };
        let Ok(st) = fstat(&child) else {
            return Usage::default();
        };
        if mount_id(&child).ok() != Some(mnt) {
            return Usage::default(); // something is mounted here: not ours to count
        }
        t.of(&st) + dir_usage(&child, mnt, t)
    };
    total
        + if subdirs.len() > 1 {
            subdirs.par_iter().map(walk).sum::<Usage>()
        } else {
            subdirs.iter().map(walk).sum::<Usage>()
        }
}

/// Where and why a removal failed.
#[derive(Debug)]
pub struct RemoveError {
    pub path: PathBuf,
    pub error: io::Error,
}

impl std::fmt::Display for RemoveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}",
            self.path.display(),
            crate::sys::io_reason(&self.error)
        )
    }
}

fn errno_io(e: nix::errno::Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// Remove the entry `name` of directory `parent`: a symlink is unlinked (its target is
/// never touched), a directory is removed with everything below it. Nothing below is
/// followed through a symlink. A directory that is a mount point — `name` itself, or one
/// below it — is refused (mount ids compared with `parent`'s): `name` itself being one
/// removes nothing at all, one below stops that branch with an error. Removal goes on past
/// a failure so that as much as possible goes; the first failure is returned.
pub fn remove_entry(parent: &Path, name: &OsStr) -> Result<(), RemoveError> {
    let at = |error: io::Error| RemoveError {
        path: parent.join(name),
        error,
    };
    let cparent = cpath(parent.as_os_str()).map_err(at)?;
    let cname = cpath(name).map_err(at)?;
    let pfd = openat(
        nix::fcntl::AT_FDCWD,
        cparent.as_c_str(),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| at(errno_io(e)))?;
    let st = fstatat(&pfd, cname.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
        .map_err(|e| at(errno_io(e)))?;
    if !is_dir(&st) || is_symlink(&st) {
        return unlinkat(&pfd, cname.as_c_str(), UnlinkatFlags::NoRemoveDir)
            .map_err(|e| at(errno_io(e)));
    }
    let dfd = open_dir_at(&pfd, cname.as_c_str()).map_err(|e| at(errno_io(e)))?;
    let mnt = tree_mount(&pfd, &dfd).map_err(at)?;
    let here = parent.join(name);
    let contents = remove_contents(&dfd, &here, mnt, &|_| true);
    drop(dfd);
    let this =
        unlinkat(&pfd, cname.as_c_str(), UnlinkatFlags::RemoveDir).map_err(|e| at(errno_io(e)));
    contents.and(this)
}

/// The mount of directory `dfd`, when it and everything below it are on its parent
/// `pfd`'s: a tree to remove is refused whole, before anything in it goes, when it is a
/// mount point or one lies below it (the walk's per-directory check still guards against
/// one appearing midway).
fn tree_mount(pfd: &OwnedFd, dfd: &OwnedFd) -> io::Result<u64> {
    let mnt = mount_id(pfd)?;
    if mount_id(dfd)? != mnt {
        return Err(mount_point_error());
    }
    if let Some(m) = mounts_below(dfd)?.first() {
        return Err(io::Error::other(format!(
            "{} is a mount point inside it; refusing to cross a mount boundary",
            m.display()
        )));
    }
    Ok(mnt)
}

/// Remove everything in the directory `fd` (at `path`, on mount `mnt`). A directory below
/// is entered only when `owned` accepts its owner (checked on the opened directory, so a
/// swap cannot change what is entered); one it refuses is left with everything in it.
fn remove_contents(
    fd: &OwnedFd,
    path: &Path,
    mnt: u64,
    owned: &dyn Fn(u32) -> bool,
) -> Result<(), RemoveError> {
    let entries = list(fd).map_err(|e| RemoveError {
        path: path.to_path_buf(),
        error: errno_io(e),
    })?;
    let mut first: Option<RemoveError> = None;
    for (name, kind) in entries {
        let child = path.join(OsStr::from_bytes(name.to_bytes()));
        if let Err(e) = remove_child(fd, &name, kind, &child, mnt, owned) {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

fn remove_child(
    fd: &OwnedFd,
    name: &CStr,
    kind: Option<Type>,
    path: &Path,
    mnt: u64,
    owned: &dyn Fn(u32) -> bool,
) -> Result<(), RemoveError> {
    let at = |e: nix::errno::Errno| RemoveError {
        path: path.to_path_buf(),
        error: errno_io(e),
    };
    let maybe_dir = match kind {
        Some(Type::Directory) => true,
        Some(_) => false,
        None => fstatat(fd, name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map(|st| is_dir(&st))
            .map_err(at)?,
    };
    if !maybe_dir {
        return unlinkat(fd, name, UnlinkatFlags::NoRemoveDir).map_err(at);
    }
    // O_NOFOLLOW: if the directory was swapped for a symlink since we listed it, this
    // fails (ELOOP/ENOTDIR) rather than walking into the link's target.
    let child = match open_dir_at(fd, name) {
        Ok(c) => c,
        Err(nix::errno::Errno::ELOOP) | Err(nix::errno::Errno::ENOTDIR) => {
            return unlinkat(fd, name, UnlinkatFlags::NoRemoveDir).map_err(at);
        }
        Err(e) => return Err(at(e)),
    };
    if mount_id(&child).map_err(|error| RemoveError {
        path: path.to_path_buf(),
        error,
    })? != mnt
    {
        return Err(RemoveError {
            path: path.to_path_buf(),
            error: mount_point_error(),
        });
    }
    let uid = fstat(&child).map_err(at)?.st_uid;
    if !owned(uid) {
        return Err(RemoveError {
            path: path.to_path_buf(),
            error: io::Error::other(format!("a directory of user {uid} is not ours to empty")),
        });
    }
    let inner = remove_contents(&child, path, mnt, owned);
    drop(child);
    let this = unlinkat(fd, name, UnlinkatFlags::RemoveDir).map_err(at);
    inner.and(this)
}

/// The files smolvm makes for one VM, each under a name it generates from the VM's id
/// inside a directory it owns. The only per-VM files smolvm ever removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmFile {
    /// `<data dir>/<id>.log`, the console log.
    Log,
    /// `<data dir>/disks/<id>.ext4`, the VM's own disk.
    Disk,
    /// `<data dir>/vm-ids/<id>`: the ledger entry saying this install made files for the
    /// id (written before any of them, removed after the row).
    Ledger,
    /// `<socket dir>/fc-<id>.sock`.
    FcSocket,
    /// `<socket dir>/qmp-<id>.sock`.
    QmpSocket,
    /// `<socket dir>/vsock-<id>.sock`.
    VsockSocket,
    /// `<socket dir>/agent-<id>.sock`: a clone's agent port, while it is re-addressed.
    AgentSocket,
    /// `<socket dir>/ram-<snapshot id>.sock`: the control socket of the QEMU that writes a
    /// for-clone snapshot's RAM file. Named after a snapshot, not a VM: not in
    /// [`VmFile::ALL`], so a VM's deletion never takes it.
    RamSocket,
}

/// The ledger directory inside the data dir.
pub const LEDGER_DIR: &str = "vm-ids";
/// The VMs' own disks, inside the data dir.
pub const DISKS_DIR: &str = "disks";

impl VmFile {
    pub const ALL: [VmFile; 7] = [
        VmFile::FcSocket,
        VmFile::QmpSocket,
        VmFile::VsockSocket,
        VmFile::AgentSocket,
        VmFile::Log,
        VmFile::Disk,
        VmFile::Ledger,
    ];

    pub fn is_socket(self) -> bool {
        matches!(
            self,
            VmFile::FcSocket
                | VmFile::QmpSocket
                | VmFile::VsockSocket
                | VmFile::AgentSocket
                | VmFile::RamSocket
        )
    }

    /// The directory (under `data_dir` or `socket_dir`) and the name, for a valid id only.
    /// The one place these names are made: [`Paths`](crate::sys::paths::Paths), the
    /// ownership rules and every removal use it.
    pub fn locate(
        self,
        data_dir: &Path,
        socket_dir: &Path,
        vm_id: &str,
    ) -> Option<(PathBuf, String)> {
        if !crate::sys::process::is_vm_id(vm_id) {
            return None;
        }
        Some(match self {
            VmFile::Log => (data_dir.to_path_buf(), format!("{vm_id}.log")),
            VmFile::Disk => (data_dir.join(DISKS_DIR), format!("{vm_id}.ext4")),
            VmFile::Ledger => (data_dir.join(LEDGER_DIR), vm_id.to_string()),
            VmFile::FcSocket => (socket_dir.to_path_buf(), format!("fc-{vm_id}.sock")),
            VmFile::QmpSocket => (socket_dir.to_path_buf(), format!("qmp-{vm_id}.sock")),
            VmFile::VsockSocket => (socket_dir.to_path_buf(), format!("vsock-{vm_id}.sock")),
            VmFile::AgentSocket => (socket_dir.to_path_buf(), format!("agent-{vm_id}.sock")),
            VmFile::RamSocket => (socket_dir.to_path_buf(), format!("ram-{vm_id}.sock")),
        })
    }

    /// The full path, for a valid id only.
    pub fn path(self, data_dir: &Path, socket_dir: &Path, vm_id: &str) -> Option<PathBuf> {
        self.locate(data_dir, socket_dir, vm_id)
            .map(|(d, n)| d.join(n))
    }

    /// The socket and the VM a file name in the socket dir stands for (`fc-<id>.sock`,
    /// `qmp-<id>.sock`, `vsock-<id>.sock`, `agent-<id>.sock` with a valid id; the id of
    /// `ram-<id>.sock` is a snapshot's): exactly the names [`VmFile::locate`] makes.
    pub fn parse_socket_name(name: &str) -> Option<(VmFile, &str)> {
        let stem = name.strip_suffix(".sock")?;
        [
            (VmFile::FcSocket, "fc-"),
            (VmFile::QmpSocket, "qmp-"),
            (VmFile::VsockSocket, "vsock-"),
            (VmFile::AgentSocket, "agent-"),
            (VmFile::RamSocket, "ram-"),
        ]
        .into_iter()
        .find_map(|(f, prefix)| stem.strip_prefix(prefix).map(|id| (f, id)))
        .filter(|(f, id)| {
            f.locate(Path::new(""), Path::new(""), id)
                .is_some_and(|(_, n)| n == name)
        })
    }
}

/// Remove one of a VM's files. The name is generated from the validated id, the
/// directory is opened without following a symlink, and only the expected kind of file is
/// unlinked: a regular file (a socket for sockets, owned by this user since the socket dir
/// may be shared). `Ok(false)` when there is nothing of ours to remove (absent, or a
/// socket of another user or another type, left alone); an error for a log, disk or
/// ledger entry that is not a regular file (a symlink is never followed nor removed).
pub fn remove_vm_file(
    kind: VmFile,
    data_dir: &Path,
    socket_dir: &Path,
    vm_id: &str,
) -> io::Result<bool> {
    let Some((dir, name)) = kind.locate(data_dir, socket_dir, vm_id) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid VM id {vm_id:?}"),
        ));
    };
    let expect = if kind.is_socket() {
        Expect::OwnSocket
    } else {
        Expect::Regular
    };
    unlink_generated(&dir, OsStr::new(&name), expect)
}

/// What may be unlinked at a name smolvm generated.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A regular file; anything else there is an error (and stays).
    Regular,
    /// A socket of this user; anything else there is not ours and is left alone.
    OwnSocket,
}

/// Unlink `name` in the configured directory `dir` only when it is what `expect` says,
/// checked without following a symbolic link. `Ok(false)` when nothing (of ours) is there.
fn unlink_generated(dir: &Path, name: &OsStr, expect: Expect) -> io::Result<bool> {
    let dfd = match open_config_dir(dir) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let cname = cpath(name)?;
    let st = match fstatat(&dfd, cname.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(nix::errno::Errno::ENOENT) => return Ok(false),
        Err(e) => return Err(errno_io(e)),
    };
    let fmt = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    match expect {
        Expect::OwnSocket
            if fmt != SFlag::S_IFSOCK || st.st_uid != nix::unistd::geteuid().as_raw() =>
        {
            return Ok(false)
        }
        Expect::Regular if fmt != SFlag::S_IFREG => {
            return Err(io::Error::other(format!(
                "{} is not a regular file; not removing it",
                dir.join(name).display()
            )))
        }
        _ => {}
    }
    match unlinkat(&dfd, cname.as_c_str(), UnlinkatFlags::NoRemoveDir) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::ENOENT) => Ok(false),
        Err(e) => Err(errno_io(e)),
    }
}

/// Remove a regular file smolvm made under a name it generated (a temporary file, a
/// sidecar, a partial download, a build's scratch file): the directory is opened, the
/// entry checked without following a symbolic link, and only a regular file unlinked.
/// `Ok(false)` when nothing is there; an error (nothing removed) for anything else.
pub fn remove_generated_file(path: &Path) -> io::Result<bool> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a file path",
        ));
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    unlink_generated(dir, name, Expect::Regular)
}

/// Remove a cache directory a failed download left holding nothing but its lock file
/// (`.lock`, a regular file), which the caller holds. The directory is opened without
/// following a symbolic link and listed; anything else in it, or a `.lock` that is not a
/// regular file, and it stays (`Ok(false)`). A waiter on the old lock finds its file gone
/// and locks afresh (the pull's lock loop checks the locked file is the one at the path).
pub fn remove_lock_only_dir(dir: &Path) -> io::Result<bool> {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return Ok(false);
    };
    let pfd = open_config_dir(if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    })?;
    let cname = cpath(name)?;
    let dfd = match open_dir_at(&pfd, cname.as_c_str()) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(false),
        Err(e) => return Err(errno_io(e)),
    };
    let names = list(&dfd).map_err(errno_io)?;
    let lock = c".lock";
    match names.as_slice() {
        [] => {}
        [(n, _)] if n.as_c_str() == lock => {
            let st = fstatat(&dfd, lock, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(errno_io)?;
            if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
                return Ok(false);
            }
            unlinkat(&dfd, lock, UnlinkatFlags::NoRemoveDir).map_err(errno_io)?;
        }
        _ => return Ok(false),
    }
    // rmdir removes only an empty directory: anything that appeared meanwhile keeps it.
    match unlinkat(&pfd, cname.as_c_str(), UnlinkatFlags::RemoveDir) {
        Ok(()) => Ok(true),
        Err(
            nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTEMPTY | nix::errno::Errno::EEXIST,
        ) => Ok(false),
        Err(e) => Err(errno_io(e)),
    }
}

/// Move a file smolvm just wrote under a generated name (`from`) to its place `to`,
/// replacing only a regular file, a symbolic link (the link itself, its target untouched)
/// or nothing; a directory or a special file at `to` is an error and stays.
pub fn replace_with_generated(from: &Path, to: &Path) -> io::Result<()> {
    let replaceable = |st: &FileStat| {
        let fmt = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        fmt == SFlag::S_IFREG || fmt == SFlag::S_IFLNK
    };
    match nix::sys::stat::lstat(to) {
        Ok(st) if !replaceable(&st) => {
            return Err(io::Error::other(format!(
                "{} is not a regular file or a link; not replacing it",
                to.display()
            )));
        }
        Ok(_) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(errno_io(e)),
    }
    std::fs::rename(from, to)
}

/// Record in the ledger that this install makes files for `vm_id` (before making them).
pub fn record_vm_id(data_dir: &Path, vm_id: &str) -> io::Result<()> {
    let Some((dir, name)) = VmFile::Ledger.locate(data_dir, data_dir, vm_id) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid VM id {vm_id:?}"),
        ));
    };
    std::fs::create_dir_all(&dir)?;
    let dfd = open_config_dir(&dir)?;
    let cname = cpath(OsStr::new(&name))?;
    match openat(
        &dfd,
        cname.as_c_str(),
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    ) {
        Ok(_) => Ok(()),
        Err(e) => Err(errno_io(e)),
    }
}

/// The VM ids this install's ledger records (valid ids only, regular files only).
pub fn recorded_vm_ids(data_dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(data_dir.join(LEDGER_DIR)) else {
        return Vec::new();
    };
    let mut ids: Vec<String> = rd
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|id| crate::sys::process::is_vm_id(id))
        .collect();
    ids.sort();
    ids
}

/// `path` and those of its ancestors that do not exist (not followed: a dangling link
/// exists), deepest first, up to the first that exists; an error other than "not found"
/// while looking is returned.
pub fn missing_dirs(path: &Path) -> io::Result<Vec<&Path>> {
    let mut missing = Vec::new();
    let mut p = path;
    loop {
        match std::fs::symlink_metadata(p) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                missing.push(p);
                match p.parent() {
                    Some(q) if !q.as_os_str().is_empty() => p = q,
                    _ => break,
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(missing)
}

/// The bytes an unprivileged writer may still use on the file system that holds `path`
/// (`statvfs`: available blocks times the fragment size); `None` when it cannot be read.
pub fn free_space(path: &Path) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    Some(st.blocks_available() as u64 * st.fragment_size() as u64)
}

/// The names in `dir`, sorted (what tests compare a folder's contents by).
#[cfg(test)]
pub(crate) fn sorted_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests;
