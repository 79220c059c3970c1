//! A snapshot's directory: the names smolvm (and SmolVM, in its own layout) writes there,
//! and its removal, which takes only those and never follows a link or crosses a mount.

use std::ffi::OsStr;
use std::io;
use std::path::Path;

use nix::fcntl::AtFlags;
use nix::sys::stat::{fstatat, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

use super::{cpath, errno_io, list, mount_id, mount_point_error, open_config_dir, open_dir_at};

/// The names smolvm writes inside a snapshot's directory (`~/.smolvm/snapshots/<id>/`):
/// QEMU's migration stream, Firecracker's state and memory files, the disk copy, and the
/// `.partial` marker a snapshot carries until its row is written (and again while it is
/// being deleted). Temporary copies are `.<one of these>.<pid>-<hex>.partial`.
pub const SNAPSHOT_FILES: [&str; 7] = [
    "state.bin",
    "ram.bin",
    "clone-state.bin",
    "vmstate.bin",
    "mem.bin",
    "disk.ext4",
    ".partial",
];

/// The files SmolVM 0.0.36 writes in its own snapshot directory
/// (`<data dir>/snapshots/<id>/`): Firecracker's state and memory, the disk copy, QEMU's
/// qcow2 disk or increment, and a live backup's manifests.
pub const SMOLVM_SNAPSHOT_FILES: [&str; 7] = [
    "vmstate.bin",
    "mem.bin",
    "disk.ext4",
    "disk.qcow2",
    "increment.qcow2",
    "live-backup.json",
    "manifest.json",
];

/// Whether `name` is one smolvm (or SmolVM, in its own layout) writes in a snapshot
/// directory ([`SNAPSHOT_FILES`], [`SMOLVM_SNAPSHOT_FILES`] or a temporary copy of one of
/// smolvm's).
pub(super) fn is_snapshot_file(name: &str) -> bool {
    SNAPSHOT_FILES.contains(&name)
        || SMOLVM_SNAPSHOT_FILES.contains(&name)
        || SNAPSHOT_FILES.iter().any(|f| {
            name.strip_prefix('.')
                .and_then(|r| r.strip_prefix(f))
                .and_then(|r| r.strip_prefix('.'))
                .and_then(|r| r.strip_suffix(".partial"))
                .is_some_and(|mid| {
                    mid.split_once('-').is_some_and(|(pid, hex)| {
                        !pid.is_empty()
                            && pid.bytes().all(|b| b.is_ascii_digit())
                            && !hex.is_empty()
                            && hex.bytes().all(|b| b.is_ascii_hexdigit())
                    })
                })
        })
}

/// Remove one snapshot's directory `<snapshots dir>/<id>`: only when every entry in it is
/// a regular file under a name smolvm writes there ([`SNAPSHOT_FILES`], temporary copies);
/// anything else (a link, a directory, a file of another name) refuses the whole removal
/// and nothing is touched. The id must be a valid id; nothing is followed. `Ok(false)` when
/// the directory does not exist.
pub fn remove_snapshot_dir(snapshots_dir: &Path, id: &str) -> io::Result<bool> {
    snapshot_dir_at(snapshots_dir, id, true)
}

/// Whether [`remove_snapshot_dir`] would remove `<snapshots dir>/<id>` (or find none):
/// the same checks, nothing removed — asked before anything else of the snapshot goes.
pub fn check_snapshot_dir(snapshots_dir: &Path, id: &str) -> io::Result<()> {
    snapshot_dir_at(snapshots_dir, id, false).map(drop)
}

fn snapshot_dir_at(snapshots_dir: &Path, id: &str, remove: bool) -> io::Result<bool> {
    if !crate::sys::process::is_vm_id(id) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid snapshot id {id:?}"),
        ));
    }
    let parent = match open_config_dir(snapshots_dir) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let cid = cpath(OsStr::new(id))?;
    let dfd = match open_dir_at(&parent, cid.as_c_str()) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(false),
        Err(e) => return Err(errno_io(e)),
    };
    if mount_id(&dfd)? != mount_id(&parent)? {
        return Err(mount_point_error());
    }
    let here = snapshots_dir.join(id);
    let entries = list(&dfd).map_err(errno_io)?;
    for (name, _) in &entries {
        let shown = String::from_utf8_lossy(name.to_bytes()).into_owned();
        let st = fstatat(&dfd, name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW).map_err(errno_io)?;
        let regular = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG;
        if !regular || !is_snapshot_file(&shown) {
            return Err(io::Error::other(format!(
                "{} holds {shown:?}, which smolvm did not write; not removing it",
                here.display()
            )));
        }
    }
    if !remove {
        return Ok(true);
    }
    for (name, _) in &entries {
        match unlinkat(&dfd, name.as_c_str(), UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(errno_io(e)),
        }
    }
    drop(dfd);
    match unlinkat(&parent, cid.as_c_str(), UnlinkatFlags::RemoveDir) {
        Ok(()) | Err(nix::errno::Errno::ENOENT) => Ok(true),
        Err(e) => Err(errno_io(e)),
    }
}
