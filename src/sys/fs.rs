//! File-system side effects that must be safe against symlinks and races: disk usage and
//! tree removal both work relative to open directory descriptors (`openat`, `fstatat`,
//! `unlinkat` with `O_NOFOLLOW`), so a symlink inside a tree is measured and removed as a
//! link and never followed, and a directory swapped for a symlink mid-walk cannot redirect
//! the walk outside the tree. Neither crosses into another mounted file system.

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
    let Ok(st) = nix::sys::stat::lstat(path) else {
        return 0;
    };
    if !is_dir(&st) {
        return if links.first_sighting(&st) {
            blocks_bytes(&st)
        } else {
            0
        };
    }
    let Ok(c) = cpath(path.as_os_str()) else {
        return 0;
    };
    match openat(nix::fcntl::AT_FDCWD, c.as_c_str(), DIR_FLAGS, Mode::empty()) {
        Ok(fd) => blocks_bytes(&st) + dir_usage(&fd, st.st_dev, links),
        Err(_) => blocks_bytes(&st),
    }
}

fn dir_usage(fd: &OwnedFd, dev: u64, links: &HardLinks) -> u64 {
    let Ok(entries) = list(fd) else {
        return 0;
    };
    let mut total = 0u64;
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
        } else if links.first_sighting(&st) {
            total += blocks_bytes(&st);
        }
    }
    let walk = |name: &CString| -> u64 {
        let Ok(child) = open_dir_at(fd, name.as_c_str()) else {
            return 0;
        };
        let Ok(st) = fstat(&child) else {
            return 0;
        };
        if st.st_dev != dev {
            return 0; // another file system mounted here: not ours to count
        }
        blocks_bytes(&st) + dir_usage(&child, dev, links)
    };
    total
        + if subdirs.len() > 1 {
            subdirs.par_iter().map(walk).sum::<u64>()
        } else {
            subdirs.iter().map(walk).sum::<u64>()
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
            crate::core::error::io_reason(&self.error)
        )
    }
}

fn errno_io(e: nix::errno::Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// Remove the entry `name` of directory `parent`: a symlink is unlinked (its target is
/// never touched), a directory is removed with everything below it. Nothing below is
/// followed through a symlink, and a mount point below stops that branch with an error
/// (`rm --one-file-system`). Removal goes on past a failure so that as much as possible
/// goes; the first failure is returned.
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
    let here = parent.join(name);
    let contents = remove_contents(&dfd, &here, st.st_dev);
    drop(dfd);
    let this =
        unlinkat(&pfd, cname.as_c_str(), UnlinkatFlags::RemoveDir).map_err(|e| at(errno_io(e)));
    contents.and(this)
}

fn remove_contents(fd: &OwnedFd, path: &Path, dev: u64) -> Result<(), RemoveError> {
    let entries = list(fd).map_err(|e| RemoveError {
        path: path.to_path_buf(),
        error: errno_io(e),
    })?;
    let mut first: Option<RemoveError> = None;
    for (name, kind) in entries {
        let child = path.join(OsStr::from_bytes(name.to_bytes()));
        if let Err(e) = remove_child(fd, &name, kind, &child, dev) {
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
    dev: u64,
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
    let st = fstat(&child).map_err(at)?;
    if st.st_dev != dev {
        return Err(RemoveError {
            path: path.to_path_buf(),
            error: io::Error::other(
                "another file system is mounted here; refusing to cross into it",
            ),
        });
    }
    let inner = remove_contents(&child, path, dev);
    drop(child);
    let this = unlinkat(fd, name, UnlinkatFlags::RemoveDir).map_err(at);
    inner.and(this)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn usage_counts_blocks_not_apparent_size_and_hard_links_once() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("d");
        std::fs::create_dir(&d).unwrap();
        let f = std::fs::File::create(d.join("sparse")).unwrap();
        f.set_len(64 << 20).unwrap();
        std::fs::write(d.join("data"), vec![7u8; 1 << 20]).unwrap();
        std::fs::hard_link(d.join("data"), d.join("data2")).unwrap();
        let got = disk_usage(&d, &HardLinks::default());
        assert!(got >= 1 << 20, "{got}");
        assert!(
            got < (1 << 20) + (1 << 18),
            "sparse or hard link counted: {got}"
        );
    }

    #[test]
    fn usage_does_not_follow_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("big"), vec![1u8; 4 << 20]).unwrap();
        let d = t.path().join("d");
        std::fs::create_dir(&d).unwrap();
        symlink(&outside, d.join("link")).unwrap();
        assert!(disk_usage(&d, &HardLinks::default()) < 1 << 20);
        assert_eq!(
            disk_usage(&t.path().join("missing"), &HardLinks::default()),
            0
        );
    }

    #[test]
    fn remove_entry_unlinks_symlinks_inside_without_touching_targets() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        std::fs::create_dir_all(outside.join("sub")).unwrap();
        std::fs::write(outside.join("sub/keep"), b"x").unwrap();
        let d = t.path().join("root/stale");
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        std::fs::write(d.join("a/b/f"), b"y").unwrap();
        symlink(&outside, d.join("a/link-dir")).unwrap();
        symlink(outside.join("sub/keep"), d.join("link-file")).unwrap();
        remove_entry(&t.path().join("root"), OsStr::new("stale")).unwrap();
        assert!(!d.exists());
        assert_eq!(std::fs::read(outside.join("sub/keep")).unwrap(), b"x");
    }

    #[test]
    fn remove_entry_on_a_symlink_removes_only_the_link() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("target");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("f"), b"x").unwrap();
        symlink(&target, t.path().join("link")).unwrap();
        remove_entry(t.path(), OsStr::new("link")).unwrap();
        assert!(std::fs::symlink_metadata(t.path().join("link")).is_err());
        assert!(target.join("f").exists());
    }
}
