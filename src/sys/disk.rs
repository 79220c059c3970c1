//! Per-VM disks: a reflink (FICLONE) of the cached image where the file system can, else a
//! sparse copy (holes preserved via SEEK_DATA/SEEK_HOLE), written to a temporary name of
//! our own and renamed into place (never over anything); then grown to the requested size.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

const FICLONE: libc::c_ulong = 0x4004_9409;

/// When a copy's data must be on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durable {
    /// Before it is renamed into place (`fdatasync`): a snapshot's files, which must
    /// survive a crash of the host.
    Now,
    /// When its guest first flushes: a VM's own disk. The guest's ext4 commits its
    /// journal within seconds, and QEMU turns each flush into an `fdatasync` of the whole
    /// file, our copied blocks included; a crash before that loses a VM whose memory was
    /// lost with it. Waiting for the copy to reach the disk cost a clone ~150 ms.
    ByGuest,
}

/// Copy `src` to `dst`, which must not exist yet: into a new temporary file beside it (a
/// name of our own, `O_EXCL|O_NOFOLLOW`), reflinked when possible, then renamed into place
/// only if nothing appeared at `dst` meanwhile (`RENAME_NOREPLACE`). Returns `true` when it
/// was a reflink.
pub fn isolated_copy(src: &Path, dst: &Path, durable: Durable) -> io::Result<bool> {
    let mut copy = PendingCopy::start(src, dst, durable)?;
    copy.fill()?;
    copy.commit()
}

/// An [`isolated_copy`] in steps, for a VMM that is handed the new disk before its data is
/// in: [`start`](Self::start) makes the temporary file at its full length (a reflink, or
/// holes to fill), [`fill`](Self::fill) copies the data (a VMM holding the file must not
/// run its guest until then), [`commit`](Self::commit) renames it into place. Dropped
/// before the commit, the temporary file is removed.
#[derive(Debug)]
pub struct PendingCopy {
    src: PathBuf,
    input: File,
    out: File,
    tmp: PathBuf,
    dst: PathBuf,
    durable: Durable,
    cloned: bool,
    filled: bool,
    committed: bool,
}

impl PendingCopy {
    /// The temporary file beside `dst` (which must not exist yet), `src`'s length.
    pub fn start(src: &Path, dst: &Path, durable: Durable) -> io::Result<PendingCopy> {
        let (out, tmp) = super::open::create_temp_beside(dst, ".partial", 0o600)?;
        let mut copy = PendingCopy {
            src: src.to_path_buf(),
            input: File::open(src).inspect_err(|_| {
                let _ = std::fs::remove_file(&tmp);
            })?,
            out,
            tmp,
            dst: dst.to_path_buf(),
            durable,
            cloned: false,
            filled: false,
            committed: false,
        };
        // SAFETY: two valid fds; FICLONE takes the source fd as its argument.
        copy.cloned =
            unsafe { libc::ioctl(copy.out.as_raw_fd(), FICLONE as _, copy.input.as_raw_fd()) } == 0;
        if !copy.cloned {
            copy.out.set_len(copy.input.metadata()?.len())?;
        }
        Ok(copy)
    }

    /// What is copied.
    pub fn source(&self) -> &Path {
        &self.src
    }

    /// The name the copy takes at its commit.
    pub fn destination(&self) -> &Path {
        &self.dst
    }

    /// The temporary file's path (until the commit).
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// The new file, open read-write (to hand to a VMM).
    pub fn file(&self) -> &File {
        &self.out
    }

    /// Copy the data in (nothing to do after a reflink); fsynced when [`Durable::Now`].
    pub fn fill(&mut self) -> io::Result<()> {
        if !self.cloned {
            sparse_copy(&self.input, &self.out)?;
        }
        if self.durable == Durable::Now {
            self.out.sync_data()?;
        }
        self.filled = true;
        Ok(())
    }

    /// Rename the filled file to `dst`, unless something appeared there meanwhile
    /// (`RENAME_NOREPLACE`). Returns `true` when it was a reflink.
    pub fn commit(mut self) -> io::Result<bool> {
        if !self.filled {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a disk copy named before its data was in",
            ));
        }
        super::open::rename_noreplace(&self.tmp, &self.dst)?;
        self.committed = true;
        Ok(self.cloned)
    }
}

impl Drop for PendingCopy {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// The data runs of `input` into `out`, already its length (holes stay holes).
fn sparse_copy(input: &File, out: &File) -> io::Result<()> {
    let len = input.metadata()?.len();
    let (ifd, ofd) = (input.as_raw_fd(), out.as_raw_fd());
    let mut pos: i64 = 0;
    while (pos as u64) < len {
        // SAFETY: plain lseek on a valid fd.
        let data = unsafe { libc::lseek(ifd, pos, libc::SEEK_DATA) };
        if data < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENXIO) {
                break; // only a hole remains
            }
            return Err(e);
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(ifd, data, libc::SEEK_HOLE) };
        if hole < 0 {
            return Err(io::Error::last_os_error());
        }
        let (mut off_in, mut off_out) = (data, data);
        let mut left = (hole - data) as usize;
        while left > 0 {
            // SAFETY: valid fds and offsets owned by this frame.
            let n = unsafe { libc::copy_file_range(ifd, &mut off_in, ofd, &mut off_out, left, 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            if n == 0 {
                break;
            }
            left -= n as usize;
        }
        pos = hole;
    }
    Ok(())
}

/// Grow the ext4 image at `path` to `size` bytes (file and file system; never shrinks).
pub fn grow_ext4(path: &Path, size: u64) -> io::Result<()> {
    let f = super::open::open_existing_rw(path)?;
    if f.metadata()?.len() >= size {
        return Ok(());
    }
    f.set_len(size)?;
    drop(f);
    let out = std::process::Command::new("resize2fs")
        .arg(path)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run resize2fs: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "resize2fs {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};
    use std::os::unix::fs::MetadataExt;

    /// `<dir>/a`: "head", a hole, then "tail" at `tail_at`.
    fn sparse_source(dir: &Path, tail_at: u64) -> PathBuf {
        let src = dir.join("a");
        let mut f = File::create(&src).unwrap();
        f.write_all(b"head").unwrap();
        f.seek(SeekFrom::Start(tail_at)).unwrap();
        f.write_all(b"tail").unwrap();
        src
    }

    #[test]
    fn sparse_copy_keeps_data_and_holes() {
        let t = tempfile::tempdir().unwrap();
        let src = sparse_source(t.path(), 64 << 20);
        let dst = t.path().join("b");
        isolated_copy(&src, &dst, Durable::ByGuest).unwrap();
        assert_eq!(std::fs::read(&src).unwrap(), std::fs::read(&dst).unwrap());
        let m = std::fs::metadata(&dst).unwrap();
        assert!(
            m.blocks() * 512 < 8 << 20,
            "holes kept: {} blocks",
            m.blocks()
        );
        assert_eq!(
            std::fs::read_dir(t.path()).unwrap().count(),
            2,
            "no temp left"
        );
    }

    #[test]
    fn isolated_copy_never_replaces_or_follows_what_is_at_the_destination() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("a");
        std::fs::write(&src, b"image").unwrap();
        let target = t.path().join("precious");
        std::fs::write(&target, b"keep").unwrap();
        let dst = t.path().join("vm.ext4");
        std::os::unix::fs::symlink(&target, &dst).unwrap();
        assert!(isolated_copy(&src, &dst, Durable::Now).is_err());
        assert!(std::fs::symlink_metadata(&dst).unwrap().is_symlink());
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        assert!(grow_ext4(&dst, 1 << 20).is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        assert_eq!(
            std::fs::read_dir(t.path()).unwrap().count(),
            3,
            "no temp left"
        );
    }

    #[test]
    fn a_pending_copy_is_full_length_at_once_named_only_when_committed_and_gone_if_dropped() {
        let t = tempfile::tempdir().unwrap();
        let src = sparse_source(t.path(), 8 << 20);
        let dst = t.path().join("vm.ext4");
        let mut copy = PendingCopy::start(&src, &dst, Durable::ByGuest).unwrap();
        // A VMM handed the file now sees the disk's size; the name is not taken yet.
        let held = copy.file().try_clone().unwrap();
        assert_eq!(held.metadata().unwrap().len(), (8 << 20) + 4);
        assert!(copy.path().starts_with(t.path()) && copy.path() != dst);
        assert!(!dst.exists());
        copy.fill().unwrap();
        copy.commit().unwrap();
        assert_eq!(std::fs::read(&dst).unwrap(), std::fs::read(&src).unwrap());
        // The descriptor handed out earlier is the committed file's.
        assert_eq!(
            held.metadata().unwrap().ino(),
            std::fs::metadata(&dst).unwrap().ino()
        );
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 2);

        // Named before its data is in: refused, and nothing is left.
        let early = PendingCopy::start(&src, &t.path().join("vm3.ext4"), Durable::ByGuest).unwrap();
        assert!(early.commit().is_err());
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 2);

        let other = t.path().join("vm2.ext4");
        let copy = PendingCopy::start(&src, &other, Durable::ByGuest).unwrap();
        let tmp = copy.path().to_path_buf();
        assert!(tmp.exists());
        drop(copy);
        assert!(
            !tmp.exists() && !other.exists(),
            "a dropped copy leaves nothing"
        );
    }
}
