//! Staging folders that say whether they are in use: a folder [`create_unique_dir`] made,
//! on which the process working in it holds an exclusive `flock` for as long as it does.
//! A later run removes one only when nobody holds that lock *and* the PID in its name is
//! gone here, so a folder in use is kept whether its process runs in another PID namespace
//! (the lock is the proof there) or is an older smolvm that took no lock (the PID is). Only
//! on a local file system: on a network one a lock (or a PID) proves nothing about
//! another host sharing the folder, so nothing is swept there.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::dir::Type;
use nix::sys::stat::{fstat, fstatat};
use nix::unistd::{unlinkat, UnlinkatFlags};

use super::{
    cpath, errno_io, list, open_config_dir, open_dir_at, remove_contents, tree_mount, RemoveError,
};
use crate::sys::lock::{try_lock_file, FileLock};
use crate::sys::open::{create_unique_dir, dir_nofollow, rename_noreplace, unique_dir_name};

/// A new folder `<parent>/<prefix><pid>-<random>` (see [`create_unique_dir`]) that this
/// process holds locked until the value is dropped; renaming it keeps the lock with it.
#[derive(Debug)]
pub struct Staging {
    path: PathBuf,
    /// The folder as made, opened once: what [`Staging::remove`] empties, wherever it is.
    dir: OwnedFd,
    /// `None` where the file system refuses `flock` on a folder (some network ones): the
    /// sweep removes nothing there anyway.
    _lock: Option<FileLock>,
}

/// What a folder is named between its `mkdir` and its lock (`<prefix>new-<pid>-<random>`):
/// a middle the sweep passes over, so no sweep can take a folder before it is locked.
const UNLOCKED: &str = "new-";

impl Staging {
    /// On a local file system the folder is made under a name the sweep passes over,
    /// locked, then renamed (`RENAME_NOREPLACE`) to its own; elsewhere (nothing is swept
    /// there, and NFS or 9p refuse that rename) or where the file system refuses the
    /// rename's flag, it is made under its own name at once, locked if the file system
    /// allows.
    pub fn create(parent: &Path, prefix: &str, mode: u32) -> io::Result<Staging> {
        let local = open_config_dir(parent).is_ok_and(|fd| local_fs(&fd));
        if local {
            match Self::create_hidden(parent, prefix, mode) {
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                made => return made,
            }
        }
        let path = create_unique_dir(parent, prefix, mode)?;
        let made = (|| {
            let dir = dir_nofollow(&path)?;
            let lock = match try_lock_file(File::from(dir.try_clone()?)) {
                Ok(Ok(lock)) => Some(lock),
                Ok(Err(_)) => return Err(held_already()),
                Err(_) if !local => None,
                Err(e) => return Err(e),
            };
            Ok((dir, lock))
        })();
        match made {
            Ok((dir, lock)) => Ok(Staging {
                path,
                dir,
                _lock: lock,
            }),
            Err(e) => {
                rmdir_made(&path, None);
                Err(e)
            }
        }
    }

    /// Made as `<prefix>new-<pid>-<random>`, locked, renamed to `<prefix><pid>-<random>`.
    fn create_hidden(parent: &Path, prefix: &str, mode: u32) -> io::Result<Staging> {
        let made = create_unique_dir(parent, &format!("{prefix}{UNLOCKED}"), mode)?;
        let dir = match dir_nofollow(&made) {
            Ok(dir) => dir,
            Err(e) => {
                rmdir_made(&made, None);
                return Err(e);
            }
        };
        let renamed = (|| {
            let own = made
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix(prefix))
                .and_then(|n| n.strip_prefix(UNLOCKED))
                .map(|rest| parent.join(format!("{prefix}{rest}")))
                .ok_or_else(|| io::Error::other("a folder name that is not UTF-8"))?;
            let lock = try_lock_file(File::from(dir.try_clone()?))?.map_err(|_| held_already())?;
            rename_noreplace(&made, &own)?;
            Ok((own, lock))
        })();
        match renamed {
            Ok((path, lock)) => Ok(Staging {
                path,
                dir,
                _lock: Some(lock),
            }),
            Err(e) => {
                rmdir_made(&made, Some(&dir));
                Err(e)
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Remove the folder this made: everything in it through the descriptor opened when it
    /// was made (a folder below entered only when `owned` accepts its owner; no link
    /// followed, no mount crossed), then its name, only while that still names it. Another
    /// user who may rename things in it (the `sudo` user owns a download's) cannot swap
    /// something of theirs in for it.
    pub fn remove(&self, owned: &dyn Fn(u32) -> bool) -> Result<(), RemoveError> {
        let at = |error: io::Error| RemoveError {
            path: self.path.clone(),
            error,
        };
        let (pfd, cname) = parent_and_name(&self.path).map_err(at)?;
        let mnt = tree_mount(&pfd, &self.dir).map_err(at)?;
        remove_contents(&self.dir, &self.path, mnt, owned)?;
        unlink_if_still(&pfd, &cname, &self.dir, &self.path)
    }
}

fn held_already() -> io::Error {
    io::Error::other("another process holds a folder just made")
}

/// Undo a folder's `mkdir` when making it a staging folder failed: `rmdir` (it is still
/// empty: nothing else removed), and with `dir` only while its name still names that
/// directory. Without `dir` (it could not even be opened), by name: an `rmdir` removes
/// nothing but an empty folder.
fn rmdir_made(path: &Path, dir: Option<&OwnedFd>) {
    let Ok((pfd, cname)) = parent_and_name(path) else {
        return;
    };
    match dir {
        Some(dir) => {
            let _ = unlink_if_still(&pfd, &cname, dir, path);
        }
        None => {
            let _ = unlinkat(&pfd, cname.as_c_str(), UnlinkatFlags::RemoveDir);
        }
    }
}

/// `path`'s folder, opened, and its last component as a C string.
fn parent_and_name(path: &Path) -> io::Result<(OwnedFd, CString)> {
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => Ok((open_config_dir(parent)?, cpath(name)?)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a path with no folder and name",
        )),
    }
}

/// Unlink the (now empty) directory `name` of `pfd` only while it is still the one `dir`
/// is open on.
fn unlink_if_still(
    pfd: &OwnedFd,
    name: &CStr,
    dir: &OwnedFd,
    path: &Path,
) -> Result<(), RemoveError> {
    let at = |error: io::Error| RemoveError {
        path: path.to_path_buf(),
        error,
    };
    let st = fstat(dir).map_err(|e| at(errno_io(e)))?;
    let still = fstatat(pfd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
        .is_ok_and(|now| (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino));
    if !still {
        return Err(at(io::Error::other(
            "the folder was moved while it was emptied",
        )));
    }
    unlinkat(pfd, name, UnlinkatFlags::RemoveDir).map_err(|e| at(errno_io(e)))
}

/// Remove the staging folders in `parent` that processes killed midway left: named
/// exactly as [`Staging::create`] names them with `prefix`, whose PID no longer runs here,
/// a directory (never a link) of an owner `owned` accepts, that nobody holds locked. What
/// is removed is the directory that was opened and locked, never a name looked up again:
/// a folder below is entered only when `owned` accepts its owner (one it refuses stays,
/// and with it the staging folder), nothing is followed through a link and no mount is
/// crossed. Only in a `parent` of root's or of an owner `owned` accepts that nobody else
/// can rename entries in (not writable by group or others, or sticky): elsewhere another
/// user could give one of their folders, or one of root's they may move, such a name; and
/// only on a local file system ([`local_fs`]). The paths removed whole, in name order.
pub fn sweep_staging(parent: &Path, prefix: &str, owned: &dyn Fn(u32) -> bool) -> Vec<PathBuf> {
    let Ok(pfd) = open_config_dir(parent) else {
        return Vec::new();
    };
    let private = fstat(&pfd).is_ok_and(|st| {
        (st.st_uid == 0 || owned(st.st_uid))
            && (st.st_mode & 0o022 == 0 || st.st_mode & libc::S_ISVTX != 0)
    });
    if !private || !local_fs(&pfd) {
        return Vec::new();
    }
    let Ok(mut names) = list(&pfd) else {
        return Vec::new();
    };
    names.sort_by(|a, b| a.0.cmp(&b.0));
    let mut gone = Vec::new();
    for (name, kind) in names {
        if !matches!(kind, Some(Type::Directory) | None) {
            continue;
        }
        let Ok(text) = name.to_str() else {
            continue;
        };
        let Some((_, pid)) = unique_dir_name(text, prefix).filter(|(middle, _)| middle.is_empty())
        else {
            continue;
        };
        if !crate::sys::process::ended(pid) {
            continue;
        }
        let path = parent.join(text);
        if remove_unheld(&pfd, &name, &path, owned).is_ok_and(|removed| removed) {
            gone.push(path);
        }
    }
    gone
}

/// Whether the folder `fd` is on a local file system, where a `flock` and a PID are this
/// host's to judge (ext2/3/4, XFS, Btrfs, tmpfs, ramfs, F2FS, ZFS, overlayfs, bcachefs).
fn local_fs(fd: &OwnedFd) -> bool {
    const LOCAL: [u32; 9] = [
        0xEF53,
        0x5846_5342,
        0x9123_683E,
        0x0102_1994,
        0x8584_58F6,
        0xF2F5_2010,
        0x2FC1_2FC1,
        0x794C_7630,
        0xCA45_1A4E,
    ];
    // `f_type` is a C long; the magic numbers are its low 32 bits.
    let local = |st: nix::sys::statfs::Statfs| LOCAL.contains(&(st.filesystem_type().0 as u32));
    nix::sys::statfs::fstatfs(fd).is_ok_and(local)
}

/// Remove the folder `name` of `pfd` if it is a directory of an owner `owned` accepts
/// that nobody holds locked: its contents through the descriptor opened and locked here,
/// then the name, only while it still names that directory. `Ok(false)`: not one to
/// remove, nothing changed.
fn remove_unheld(
    pfd: &OwnedFd,
    name: &CStr,
    path: &Path,
    owned: &dyn Fn(u32) -> bool,
) -> Result<bool, RemoveError> {
    let at = |error: io::Error| RemoveError {
        path: path.to_path_buf(),
        error,
    };
    let Ok(dfd) = open_dir_at(pfd, name) else {
        return Ok(false);
    };
    let st = fstat(&dfd).map_err(|e| at(errno_io(e)))?;
    if !owned(st.st_uid) {
        return Ok(false);
    }
    let lock = match try_lock_file(File::from(dfd)) {
        Ok(Ok(lock)) => lock,
        _ => return Ok(false),
    };
    // A second descriptor of the same open file: the lock lasts while `lock` lives.
    let dfd = OwnedFd::from(lock.try_clone().map_err(at)?);
    let mnt = tree_mount(pfd, &dfd).map_err(at)?;
    remove_contents(&dfd, path, mnt, owned)?;
    unlink_if_still(pfd, name, &dfd, path)?;
    drop(lock);
    Ok(true)
}

#[cfg(test)]
mod tests;
