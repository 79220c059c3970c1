//! Named operation locks: `flock` on a file in `<data dir>/locks/`, SmolVM's own lock
//! directory and mechanism (`vm.py: _acquire_operation_lock`), so smolvm and a co-installed
//! SmolVM wait for each other on the same names (`<id>.create.lock`, `<id>.snapshot.lock`).
//!
//! A lock is taken with a bounded wait: it is tried at once, then again every few
//! milliseconds until the wait is over, and then the answer is [`LockError::Busy`] with
//! whatever can be learnt about the holder — the process `/proc/locks` names for the file
//! (its PID and command line) and what that process wrote into the file when it took the
//! lock (smolvm writes `<pid> <operation>`; SmolVM truncates the file when it opens it, so
//! its holder is known by its command line only).
//!
//! The directory and the files are opened without following a symbolic link; the files
//! are never removed (a lock file that disappears while someone waits on it would let
//! two holders in at once).

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

/// The folder of the lock files in a data directory (SmolVM's name).
pub const LOCK_DIR: &str = "locks";

/// How often a lock held by someone else is tried again.
const RETRY: Duration = Duration::from_millis(25);

/// A lock file held exclusively; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct Held {
    lock: Flock<File>,
    path: PathBuf,
}

impl Held {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Record what holds the lock (`<pid> <what>`, one line) for a waiter's error message.
    /// Best effort: the lock is what counts, not this text.
    fn record(&mut self, what: &str) {
        let text = format!("{} {}\n", std::process::id(), one_line(what));
        let f: &mut File = &mut self.lock;
        let _ = f
            .set_len(0)
            .and_then(|_| f.rewind())
            .and_then(|_| f.write_all(text.as_bytes()));
    }
}

/// Who holds a lock, as far as it can be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: Option<i32>,
    /// The holder's command line (`/proc/<pid>/cmdline`, words joined by spaces).
    pub command: Option<String>,
    /// What the holder wrote into the lock file (smolvm's operation name).
    pub operation: Option<String>,
}

#[derive(Debug)]
pub enum LockError {
    /// Still held by someone else when the wait was over.
    Busy {
        path: PathBuf,
        holder: Holder,
    },
    Io {
        path: PathBuf,
        error: io::Error,
    },
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Busy { path, .. } => write!(f, "{} is locked", path.display()),
            LockError::Io { path, error } => {
                write!(
                    f,
                    "cannot lock {}: {}",
                    path.display(),
                    super::io_reason(error)
                )
            }
        }
    }
}

/// `<data_dir>/locks/<name>`; `name` is a file name smolvm makes from a validated id.
pub fn path(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join(LOCK_DIR).join(name)
}

/// The lock directory, made when missing (0755, as SmolVM's `mkdir` leaves it); a
/// symbolic link or anything but a directory there is refused.
fn ensure_dir(dir: &Path) -> io::Result<()> {
    match std::fs::DirBuilder::new().mode(0o755).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if std::fs::symlink_metadata(dir)?.is_dir() {
                Ok(())
            } else {
                Err(io::Error::other(format!(
                    "{} is not a directory",
                    dir.display()
                )))
            }
        }
        Err(e) => Err(e),
    }
}

fn open(path: &Path) -> Result<File, LockError> {
    let io = |error| LockError::Io {
        path: path.to_path_buf(),
        error,
    };
    if let Some(dir) = path.parent() {
        ensure_dir(dir).map_err(io)?;
    }
    super::open::open_lock(path, 0o644).map_err(io)
}

/// Take the lock at `path`, waiting at most `wait` for another holder to let go; `what`
/// (the operation, e.g. `sandbox start vm-a`) is written into the file for the next
/// waiter's message.
pub fn acquire(path: &Path, what: &str, wait: Duration) -> Result<Held, LockError> {
    let deadline = Instant::now() + wait;
    let mut file = open(path)?;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => {
                let mut held = Held {
                    lock,
                    path: path.to_path_buf(),
                };
                held.record(what);
                return Ok(held);
            }
            Err((f, nix::errno::Errno::EWOULDBLOCK)) => {
                if Instant::now() >= deadline {
                    let holder = holder(&f);
                    return Err(LockError::Busy {
                        path: path.to_path_buf(),
                        holder,
                    });
                }
                file = f;
                std::thread::sleep(RETRY.min(deadline.saturating_duration_since(Instant::now())));
            }
            Err((_, e)) => {
                return Err(LockError::Io {
                    path: path.to_path_buf(),
                    error: io::Error::from(e),
                })
            }
        }
    }
}

/// Whether someone holds the lock at `path` right now (a probe: taken and released at
/// once when free). A missing file is free; an error counts as held (fail closed).
pub fn is_held(path: &Path) -> bool {
    let f = match super::open::open_read(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return false,
        Err(_) => return true,
    };
    match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(_probe) => false,
        Err(_) => true,
    }
}

/// Who holds the lock on `file`: the `FLOCK` entry of `/proc/locks` for its device and
/// inode (not a waiter's `->` line), that process's command line, and the text in the file.
fn holder(file: &File) -> Holder {
    let mut operation = String::new();
    let mut f = file;
    let _ = f
        .rewind()
        .and_then(|_| f.take(4096).read_to_string(&mut operation));
    let meta = file.metadata().ok();
    let pid = meta.and_then(|m| {
        let locks = std::fs::read_to_string("/proc/locks").ok()?;
        lock_holder_pid(&locks, m.dev(), m.ino())
    });
    // The text is the holder's own only when its PID is the one /proc/locks names.
    let operation = operation.lines().next().and_then(|l| {
        let (p, what) = l.split_once(' ')?;
        let p: i32 = p.parse().ok()?;
        (Some(p) == pid || pid.is_none() && super::process::is_alive(p))
            .then(|| what.trim().to_string())
            .filter(|w| !w.is_empty())
    });
    let command = pid.and_then(super::process::info).and_then(|i| {
        let words = one_line(&i.cmdline.join(" "));
        (!words.is_empty()).then(|| shorten(&words, 120))
    });
    Holder {
        pid,
        command,
        operation,
    }
}

/// The PID of the `FLOCK` lock `/proc/locks` (`text`) lists for the file on device `dev`,
/// inode `ino` (its `MAJ:MIN:INODE` field, major and minor in hex).
fn lock_holder_pid(text: &str, dev: u64, ino: u64) -> Option<i32> {
    let want = format!(
        "{:02x}:{:02x}:{ino}",
        nix::sys::stat::major(dev),
        nix::sys::stat::minor(dev)
    );
    text.lines().find_map(|l| {
        let mut w = l.split_whitespace().skip(1);
        let kind = w.next()?;
        if kind != "FLOCK" {
            return None; // a waiter (`->`) or another kind of lock
        }
        let (_, _, pid, id) = (w.next()?, w.next()?, w.next()?, w.next()?);
        (id == want).then(|| pid.parse().ok()).flatten()
    })
}

/// One line of words: control characters (a newline included) are spaces, runs of
/// spaces one; at most 512 characters.
fn one_line(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    shorten(&t.split_whitespace().collect::<Vec<_>>().join(" "), 512)
}

/// At most `max` characters, an ellipsis marking a cut.
fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max - 1).collect();
    t.push('…');
    t
}

/// An exclusive `flock` on an open file, released when dropped (or when the process
/// dies). Reads the file through `Deref`.
#[derive(Debug)]
pub struct FileLock(Flock<File>);

impl std::ops::Deref for FileLock {
    type Target = File;
    fn deref(&self) -> &File {
        &self.0
    }
}

/// Lock `file` exclusively, waiting as long as another holder keeps it.
pub fn lock_file(file: File) -> io::Result<FileLock> {
    Flock::lock(file, FlockArg::LockExclusive)
        .map(FileLock)
        .map_err(|(_, e)| io::Error::from(e))
}

/// Lock `file` exclusively if nobody holds it: `Ok(Err(file))` (the file back) when
/// another holder has it.
pub fn try_lock_file(file: File) -> io::Result<Result<FileLock, File>> {
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok(Ok(FileLock(l))),
        Err((f, nix::errno::Errno::EWOULDBLOCK)) => Ok(Err(f)),
        Err((_, e)) => Err(io::Error::from(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_is_found_by_device_and_inode_and_waiters_are_skipped() {
        let dev = nix::sys::stat::makedev(0xfe, 0);
        let text = "\
1: POSIX  ADVISORY  WRITE 10 fe:00:77 0 EOF
2: FLOCK  ADVISORY  WRITE 11 fe:00:777 0 EOF
3: FLOCK  ADVISORY  WRITE 12 fe:00:77 0 EOF
3: -> FLOCK  ADVISORY  WRITE 13 fe:00:77 0 EOF
";
        assert_eq!(lock_holder_pid(text, dev, 77), Some(12));
        assert_eq!(lock_holder_pid(text, dev, 78), None);
        assert_eq!(
            lock_holder_pid(text, nix::sys::stat::makedev(8, 1), 77),
            None
        );
    }

    #[test]
    fn a_second_taker_waits_then_is_told_who_holds_it() {
        let t = tempfile::tempdir().unwrap();
        let p = path(t.path(), "vm-a.create.lock");
        let held = acquire(&p, "sandbox start vm-a", Duration::ZERO).unwrap();
        assert!(is_held(&p));
        let t0 = Instant::now();
        let e = acquire(&p, "sandbox stop vm-a", Duration::from_millis(200)).unwrap_err();
        assert!(t0.elapsed() >= Duration::from_millis(200));
        match e {
            LockError::Busy { holder, .. } => {
                assert_eq!(holder.pid, Some(std::process::id() as i32));
                assert_eq!(holder.operation.as_deref(), Some("sandbox start vm-a"));
                assert!(holder.command.is_some());
            }
            other => panic!("{other}"),
        }
        drop(held);
        assert!(!is_held(&p));
        acquire(&p, "sandbox stop vm-a", Duration::ZERO).unwrap();
        // A symbolic link in place of the directory is refused.
        let other = tempfile::tempdir().unwrap();
        let d2 = t.path().join("d2");
        std::fs::create_dir(&d2).unwrap();
        std::os::unix::fs::symlink(other.path(), d2.join(LOCK_DIR)).unwrap();
        assert!(acquire(&path(&d2, "x.lock"), "x", Duration::ZERO).is_err());
        assert!(std::fs::read_dir(other.path()).unwrap().next().is_none());
    }
}
