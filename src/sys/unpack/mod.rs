//! Unpacking a tar stream someone else wrote — a guest's download — into a private folder,
//! as root, without trusting one byte of it.
//!
//! The stream is read here, block by block (ustar, GNU long names, POSIX pax `path`,
//! `linkpath`, `size` and `mtime`); nothing is handed to a `tar` program. What gets made:
//!
//! - regular files, directories, and symbolic links whose target stays inside the folder
//!   (relative, every `..` first, never climbing above the link's own depth); hard links
//!   to a regular file this same stream already made;
//! - nothing else: devices, FIFOs, sockets, links that lead out, hard links to anything
//!   else, absolute paths, paths with `..`, sparse or multi-volume entries are skipped and
//!   listed in [`Unpacked::skipped`] (the stream goes on);
//! - modes are masked as they are written ([`MODE_MASK`]: no set-uid, set-gid or sticky
//!   bit, no write for others), never set wider for a moment: files are created 0600 and
//!   get their mode after their content; directories are created 0700 and get theirs
//!   once the stream has ended (the folder itself keeps 0700: its mode is returned, for
//!   the caller to set once the folder is in place);
//! - owners are never taken from the stream: everything belongs to the caller, or to
//!   [`Options::owner`] (the user who ran `sudo`); extended attributes (file capabilities
//!   among them) are ignored;
//! - every path is walked from the folder's descriptor one component at a time with
//!   `O_NOFOLLOW`, so an entry can never be written through a link the stream made.
//!
//! Limits: metadata entries (long names, pax records) are capped in size; file data stops
//! before the folder's file system would have less than [`Options::keep_free`] bytes
//! available. The byte cap of the whole stream and the operator's interrupt are the
//! reader's business: [`Watched`] wraps the source and ends the stream with a [`Stop`].

use std::collections::HashSet;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use super::users::Identity;

mod format;
#[cfg(test)]
mod tests;
mod writer;

pub use writer::unpack;
use writer::{mode_of, times};

/// The permission bits a download may carry: no set-uid, set-gid or sticky bit, and no
/// write permission for others.
pub const MODE_MASK: u32 = 0o775;

const BLOCK: usize = 512;
/// The longest GNU long name / long link name accepted.
const MAX_LONG_NAME: u64 = 64 * 1024;
/// The largest pax header accepted.
const MAX_PAX: u64 = 1024 * 1024;
/// How many skipped entries are listed one by one (the rest are counted).
const MAX_LISTED: usize = 1000;
/// Names in the skipped list are cut to this many bytes.
const MAX_LISTED_NAME: usize = 1024;
/// File data moves in chunks of this size (the free-space check runs before each one).
const CHUNK: usize = 64 * 1024;

/// Why a [`Watched`] reader ended the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// A signal arrived (its number).
    Signal(i32),
    /// Whoever started the operation cancelled it.
    Cancelled,
    /// The stream went past the byte cap.
    TooLong(u64),
    /// Nothing arrived before the deadline.
    TimedOut,
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Signal(s) => write!(f, "interrupted by {}", super::signals::name(*s)),
            Stop::Cancelled => f.write_str("cancelled"),
            Stop::TooLong(n) => write!(f, "more than {n} bytes"),
            Stop::TimedOut => f.write_str("timed out"),
        }
    }
}

impl std::error::Error for Stop {}

/// The [`Stop`] an I/O error carries, if it is one of ours.
pub fn stop_of(e: &io::Error) -> Option<Stop> {
    e.get_ref()?.downcast_ref::<Stop>().copied()
}

/// A pipe from another process (ssh's stdout), read with a watch: before every read it
/// waits with `poll` in short slices, asking `stop` between them, so a stalled peer never
/// blocks an interrupt or a cancel; it counts every byte, ends the stream past
/// `max_bytes`, and reports the count to `on_bytes`.
pub struct Watched<'a, R> {
    inner: R,
    stop: &'a dyn Fn() -> Option<Stop>,
    on_bytes: &'a dyn Fn(u64),
    max_bytes: Option<u64>,
    /// When set, the stream must end (EOF) before this instant.
    deadline: Option<std::time::Instant>,
    read: u64,
}

impl<'a, R: Read + AsFd> Watched<'a, R> {
    pub fn new(
        inner: R,
        max_bytes: Option<u64>,
        stop: &'a dyn Fn() -> Option<Stop>,
        on_bytes: &'a dyn Fn(u64),
    ) -> Self {
        Watched {
            inner,
            stop,
            on_bytes,
            max_bytes,
            deadline: None,
            read: 0,
        }
    }

    /// Bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.read
    }

    /// From now on, the stream must end within `d` ([`Stop::TimedOut`] otherwise).
    pub fn end_within(&mut self, d: Duration) {
        self.deadline = Some(std::time::Instant::now() + d);
    }

    fn stopped(&self, s: Stop) -> io::Error {
        io::Error::other(s)
    }
}

impl<R: Read + AsFd> Read for Watched<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = loop {
            if let Some(s) = (self.stop)() {
                return Err(self.stopped(s));
            }
            if self
                .deadline
                .is_some_and(|d| std::time::Instant::now() >= d)
            {
                return Err(self.stopped(Stop::TimedOut));
            }
            let mut fds = [rustix::event::PollFd::new(
                &self.inner,
                rustix::event::PollFlags::IN,
            )];
            let slice = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 100_000_000,
            };
            match rustix::event::poll(&mut fds, Some(&slice)) {
                Ok(0) | Err(Errno::INTR) => continue,
                Ok(_) => {}
                Err(e) => return Err(e.into()),
            }
            // A read a signal interrupted is asked again (never taken for the end of the
            // stream, which would cut a download short at an entry's edge).
            match self.inner.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r?,
            }
        };
        self.read += n as u64;
        if let Some(max) = self.max_bytes {
            if self.read > max {
                return Err(self.stopped(Stop::TooLong(max)));
            }
        }
        (self.on_bytes)(self.read);
        Ok(n)
    }
}

/// How to unpack.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Who owns everything made (the folder included); `None`: the caller.
    pub owner: Option<Identity>,
    /// Stop before the folder's file system has fewer bytes available than this (0: no
    /// floor; a full disk is then the writer's error).
    pub keep_free: u64,
}

/// An entry not made, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The entry's name as the stream gave it (cut to 1024 bytes).
    pub name: Vec<u8>,
    /// `character device`, `FIFO`, `symbolic link`, …
    pub kind: &'static str,
    pub reason: &'static str,
}

/// What an unpack made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unpacked {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hard_links: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Entries not made, in stream order (the first [`MAX_LISTED`]).
    pub skipped: Vec<Skipped>,
    /// Skipped entries beyond the list.
    pub more_skipped: u64,
    /// The mode (masked) and modification time the stream gave the folder itself (`.`),
    /// for the caller to apply once the folder is in place.
    pub root_mode: Option<u32>,
    pub root_mtime: Option<i64>,
}

/// Why an unpack failed. Whatever was made stays in the folder (the caller removes it).
#[derive(Debug)]
pub enum UnpackError {
    /// The reader ended the stream (interrupt, cancel, byte cap).
    Stopped(Stop),
    /// The file system would have had less than `keep` bytes available.
    LowSpace { available: u64, keep: u64 },
    /// The stream is not a tar archive we can read (truncated, bad checksum, …).
    Malformed(String),
    /// Reading the stream or writing the folder failed.
    Io(io::Error),
}

impl std::fmt::Display for UnpackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnpackError::Stopped(s) => write!(f, "{s}"),
            UnpackError::LowSpace { available, keep } => write!(
                f,
                "only {available} bytes would be left available, below the {keep} kept free"
            ),
            UnpackError::Malformed(m) => write!(f, "not a readable tar stream: {m}"),
            UnpackError::Io(e) => write!(f, "{}", super::io_reason(e)),
        }
    }
}

fn from_io(e: io::Error) -> UnpackError {
    match stop_of(&e) {
        Some(s) => UnpackError::Stopped(s),
        None if e.kind() == io::ErrorKind::UnexpectedEof => {
            UnpackError::Malformed("the stream ended in the middle of an entry".into())
        }
        None => UnpackError::Io(e),
    }
}

fn malformed(m: impl Into<String>) -> UnpackError {
    UnpackError::Malformed(m.into())
}

/// Give a folder now in place the mode (already masked) and time the stream gave it.
pub fn finish_root(path: &Path, mode: Option<u32>, mtime: Option<i64>) -> io::Result<()> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    if let Some(m) = mode {
        rustix::fs::fchmod(&fd, mode_of(m))?;
    }
    if let Some(t) = mtime {
        let _ = rustix::fs::futimens(&fd, &times(t));
    }
    Ok(())
}

/// Drain what follows the end-of-archive block (tar pads its output to whole records):
/// zeros are expected, at most `max` bytes of them. An error names what came instead.
pub fn drain_padding(r: &mut impl Read, max: u64) -> Result<(), UnpackError> {
    let mut seen = 0u64;
    let mut buf = [0u8; 8192];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(from_io(e)),
        };
        seen += n as u64;
        if seen > max || buf[..n].iter().any(|&b| b != 0) {
            return Err(malformed("data follows the end of the archive"));
        }
    }
}

/// Make the missing folders of `path` (like `mkdir -p`, mode 0755 under the umask),
/// each one given to `owner` when set. Existing ones are left as they are.
pub fn make_parents(path: &Path, owner: Option<Identity>) -> io::Result<()> {
    let missing = super::fs::missing_dirs(path)?;
    for d in missing.into_iter().rev() {
        match std::fs::create_dir(d) {
            Ok(()) => {
                if let Some(o) = owner {
                    std::os::unix::fs::lchown(d, Some(o.uid), Some(o.gid))?;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
