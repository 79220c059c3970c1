//! A private copy of a state database, for reads that must change nothing on disk (a dry
//! run) or that cannot write the file (another user's database): the database and its
//! `-journal`/`-wal` are copied into a fresh `0700` directory and SQLite opens the copy
//! read-write, so a hot journal left by a killed writer is rolled back there, in the copy.
//! The store then reads it into memory and the directory goes at once: a reader that
//! lives on (`logs -f`) and is stopped by a signal, or replaced by `ssh`, leaves nothing.
//!
//! While copying, a shared lock is held on the original in SQLite's own locking protocol
//! (an open-file-description lock on its PENDING byte, then its SHARED range), so a
//! rollback-journal writer cannot change database pages half way through the copy.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// SQLite's unix VFS lock bytes (`os_unix.c`): PENDING at 1 GiB, SHARED_FIRST two bytes
/// later, 510 bytes of SHARED range.
const PENDING_BYTE: i64 = 0x4000_0000;
const SHARED_FIRST: i64 = PENDING_BYTE + 2;
const SHARED_SIZE: i64 = 510;

/// The sidecar files SQLite may need to read a database consistently (`-shm` is only an
/// index, rebuilt from the `-wal`).
pub(super) const SIDECARS: [&str; 2] = ["-journal", "-wal"];

/// A directory only this user can enter, removed with everything in it on drop.
#[derive(Debug)]
pub(super) struct PrivateDir {
    path: PathBuf,
}

impl PrivateDir {
    pub(super) fn new() -> io::Result<PrivateDir> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let base = std::env::temp_dir();
        loop {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let path = base.join(format!(
                "smolvm-state-{}-{nanos:08x}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            // mkdir never follows a symlink at the last component: a name someone else
            // made first is simply taken again with another name.
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(PrivateDir { path }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn sidecar(db: &Path, suffix: &str) -> PathBuf {
    let mut s = db.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// Whether `<db><suffix>` exists (a `stat`: no descriptor of the file is opened).
pub(super) fn has_sidecar(db: &Path, suffix: &str) -> bool {
    std::fs::symlink_metadata(sidecar(db, suffix)).is_ok()
}

fn open_nofollow(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)
}

/// Set or clear an open-file-description lock (`F_OFD_SETLK`, never blocking).
fn ofd_lock(f: &File, kind: libc::c_int, start: i64, len: i64) -> io::Result<()> {
    // SAFETY: a zeroed flock is a valid value; every field the call reads is set below.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = start as libc::off_t;
    fl.l_len = len as libc::off_t;
    // SAFETY: a valid descriptor and a valid, initialised flock.
    let r = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Why a copy could not be made.
#[derive(Debug)]
pub(super) enum CopyError {
    /// A writer held the database for longer than the busy timeout.
    Busy,
    Io(PathBuf, io::Error),
}

/// Take SQLite's SHARED lock on `db` the way SQLite does (PENDING read lock, SHARED range
/// read lock, PENDING released), waiting up to `timeout` for a writer to finish.
fn shared_lock(db: &File, timeout: Duration) -> Result<(), CopyError> {
    let start = Instant::now();
    loop {
        let r = ofd_lock(db, libc::F_RDLCK, PENDING_BYTE, 1).and_then(|()| {
            let shared = ofd_lock(db, libc::F_RDLCK, SHARED_FIRST, SHARED_SIZE);
            let _ = ofd_lock(db, libc::F_UNLCK, PENDING_BYTE, 1);
            shared
        });
        match r {
            Ok(()) => return Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => {
                if start.elapsed() >= timeout {
                    return Err(CopyError::Busy);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            // A file system without OFD locks: copy without the lock rather than not at all.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(()),
            Err(e) => return Err(CopyError::Io(PathBuf::new(), e)),
        }
    }
}

fn copy_file(mut from: &File, to: &Path) -> io::Result<()> {
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)?;
    io::copy(&mut from, &mut out)?;
    out.sync_all()
}

/// Copy `db` and whichever of its sidecars exist into `dir` (same file names), under a
/// shared lock on `db`. Symlinks are refused (`O_NOFOLLOW`), never followed.
pub(super) fn copy_database(
    db: &Path,
    dir: &Path,
    timeout: Duration,
) -> Result<PathBuf, CopyError> {
    let name = db.file_name().unwrap_or_else(|| "smolvm.db".as_ref());
    let target = dir.join(name);
    let src = open_nofollow(db).map_err(|e| CopyError::Io(db.to_path_buf(), e))?;
    shared_lock(&src, timeout).map_err(|e| match e {
        CopyError::Io(_, e) => CopyError::Io(db.to_path_buf(), e),
        e => e,
    })?;
    copy_file(&src, &target).map_err(|e| CopyError::Io(db.to_path_buf(), e))?;
    for suffix in SIDECARS {
        let from = sidecar(db, suffix);
        let f = match open_nofollow(&from) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(CopyError::Io(from, e)),
        };
        copy_file(&f, &sidecar(&target, suffix)).map_err(|e| CopyError::Io(from, e))?;
    }
    drop(src); // releases the lock
    Ok(target)
}
