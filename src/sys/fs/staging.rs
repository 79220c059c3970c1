//! Staging folders that say whether they are in use: a folder [`create_unique_dir`] made,
//! on which the process working in it holds an exclusive `flock` for as long as it does.
//! A later run removes one only when nobody holds that lock *and* the PID in its name is
//! gone here, so a folder in use is kept whether its process runs in another PID namespace,
//! on another host sharing the folder (the lock is the proof there), or is an older smolvm
//! that took no lock (the PID is).

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::dir::Type;
use nix::sys::stat::{fstat, fstatat};
use nix::unistd::{unlinkat, UnlinkatFlags};

use super::{
    errno_io, list, open_config_dir, open_dir_at, remove_contents, remove_entry, tree_mount,
    RemoveError,
};
use crate::sys::lock::{try_lock_file, FileLock};
use crate::sys::open::{create_unique_dir, dir_nofollow, unique_dir_name};

/// A new folder `<parent>/<prefix><pid>-<random>` (see [`create_unique_dir`]) that this
/// process holds locked until the value is dropped; renaming it keeps the lock with it.
#[derive(Debug)]
pub struct Staging {
    path: PathBuf,
    _lock: FileLock,
}

impl Staging {
    pub fn create(parent: &Path, prefix: &str, mode: u32) -> io::Result<Staging> {
        let path = create_unique_dir(parent, prefix, mode)?;
        let locked = dir_nofollow(&path)
            .map(File::from)
            .and_then(try_lock_file)
            .and_then(|r| {
                r.map_err(|_| io::Error::other("another process holds a folder just made"))
            });
        match locked {
            Ok(lock) => Ok(Staging { path, _lock: lock }),
            Err(e) => {
                if let Some(name) = path.file_name() {
                    let _ = remove_entry(parent, name);
                }
                Err(e)
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Remove the staging folders in `parent` that processes killed midway left: named
/// exactly as [`Staging::create`] names them with `prefix`, whose PID no longer runs here,
/// a directory (never a link) of an owner `owned` accepts, that nobody holds locked. What
/// is removed is the directory that was opened and locked, never a name looked up again:
/// a folder below is entered only when `owned` accepts its owner (one it refuses stays,
/// and with it the staging folder), nothing is followed through a link and no mount is
/// crossed. Only in a `parent` of root's or of an owner `owned` accepts that nobody else
/// can rename entries in (not writable by group or others, or sticky): elsewhere another
/// user could give one of their folders, or one of root's they may move, such a name. The
/// paths removed whole, in name order.
pub fn sweep_staging(parent: &Path, prefix: &str, owned: &dyn Fn(u32) -> bool) -> Vec<PathBuf> {
    let Ok(pfd) = open_config_dir(parent) else {
        return Vec::new();
    };
    let private = fstat(&pfd).is_ok_and(|st| {
        (st.st_uid == 0 || owned(st.st_uid))
            && (st.st_mode & 0o022 == 0 || st.st_mode & libc::S_ISVTX != 0)
    });
    if !private {
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
        let Some((_, pid)) = name
            .to_str()
            .ok()
            .and_then(|n| unique_dir_name(n, prefix))
            .filter(|(middle, _)| middle.is_empty())
        else {
            continue;
        };
        if !crate::sys::process::ended(pid) {
            continue;
        }
        let path = parent.join(name.to_str().unwrap_or_default());
        if remove_unheld(&pfd, &name, &path, owned).is_ok_and(|removed| removed) {
            gone.push(path);
        }
    }
    gone
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
    let still = fstatat(pfd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
        .is_ok_and(|now| (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino));
    if !still {
        return Err(at(io::Error::other(
            "the folder was moved while it was emptied",
        )));
    }
    unlinkat(pfd, name, UnlinkatFlags::RemoveDir).map_err(|e| at(errno_io(e)))?;
    drop(lock);
    Ok(true)
}

#[cfg(test)]
mod tests;
