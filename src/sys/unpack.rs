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
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use rustix::fs::{AtFlags, Mode, OFlags, Timestamps};
use rustix::io::Errno;

use super::users::Identity;

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
        loop {
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
                Ok(_) => break,
                Err(e) => return Err(e.into()),
            }
        }
        let n = match self.inner.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            r => r?,
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

/// Read exactly `buf.len()` bytes; `Ok(false)` at a clean end of stream before the first.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<bool, UnpackError> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => {
                return Err(malformed("the stream ended in the middle of a block"));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(from_io(e)),
        }
    }
    Ok(true)
}

/// Read and drop `n` bytes plus the padding to the next block.
fn skip_data(r: &mut impl Read, n: u64) -> Result<(), UnpackError> {
    let mut left = padded(n);
    let mut buf = [0u8; 8192];
    while left > 0 {
        let k = left.min(buf.len() as u64) as usize;
        if !read_full(r, &mut buf[..k])? {
            return Err(malformed("the stream ended in the middle of an entry"));
        }
        left -= k as u64;
    }
    Ok(())
}

fn padded(n: u64) -> u64 {
    n.div_ceil(BLOCK as u64) * BLOCK as u64
}

/// Read a metadata entry's data (at most `cap` bytes) and its padding.
fn read_meta(r: &mut impl Read, n: u64, cap: u64, what: &str) -> Result<Vec<u8>, UnpackError> {
    if n > cap {
        return Err(malformed(format!(
            "a {what} of {n} bytes (the limit is {cap})"
        )));
    }
    let mut v = vec![0u8; padded(n) as usize];
    if !read_full(r, &mut v)? {
        return Err(malformed("the stream ended in the middle of an entry"));
    }
    v.truncate(n as usize);
    Ok(v)
}

/// The pax records we use from one extended header.
#[derive(Default)]
struct Pax {
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    size: Option<u64>,
    mtime: Option<i64>,
}

fn parse_pax(data: &[u8]) -> Result<Pax, UnpackError> {
    let mut pax = Pax::default();
    let mut rest = data;
    while !rest.is_empty() {
        let sp = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| malformed("a pax record without a length"))?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| malformed("a pax record with a bad length"))?;
        if len <= sp + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(malformed("a pax record with a bad length"));
        }
        let rec = &rest[sp + 1..len - 1];
        let eq = rec
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| malformed("a pax record without '='"))?;
        let (key, value) = (&rec[..eq], &rec[eq + 1..]);
        let number = |v: &[u8]| -> Result<u64, UnpackError> {
            std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| malformed("a pax record with a bad number"))
        };
        match key {
            b"path" => pax.path = Some(value.to_vec()),
            b"linkpath" => pax.linkpath = Some(value.to_vec()),
            b"size" => pax.size = Some(number(value)?),
            b"mtime" => {
                let whole = value.split(|&b| b == b'.').next().unwrap_or_default();
                pax.mtime = std::str::from_utf8(whole).ok().and_then(|s| s.parse().ok());
            }
            _ => {}
        }
        rest = &rest[len..];
    }
    Ok(pax)
}

/// An entry's path as components inside the folder, or why it cannot be one.
fn components(raw: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    if raw.first() == Some(&b'/') {
        return Err("its path is absolute");
    }
    if raw.contains(&0) {
        return Err("its name holds a NUL byte");
    }
    let mut out = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("its path leaves the download"),
            c if c.len() > 255 => return Err("a name in its path is too long"),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Whether a symbolic link at depth `depth` (its parent's components) may point at
/// `target`: relative, every `..` before any name, never above the folder. (A `..` after
/// a name could climb out through a link the stream made, so it is refused.)
fn link_stays_inside(target: &[u8], depth: usize) -> bool {
    if target.is_empty() || target[0] == b'/' || target.contains(&0) {
        return false;
    }
    let mut ups = 0usize;
    let mut named = false;
    for c in target.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." if named => return false,
            b".." => ups += 1,
            _ => named = true,
        }
    }
    ups <= depth
}

fn kind_name(t: u8) -> &'static str {
    match t {
        b'0' | b'\0' | b'7' => "file",
        b'1' => "hard link",
        b'2' => "symbolic link",
        b'3' => "character device",
        b'4' => "block device",
        b'5' => "directory",
        b'6' => "FIFO",
        b'S' => "sparse file",
        b'M' => "multi-volume continuation",
        b'V' => "volume label",
        _ => "unknown entry",
    }
}

fn c_name(n: &[u8]) -> &OsStr {
    OsStr::from_bytes(n)
}

/// Unpack the tar stream `r` into the existing, empty folder `root` (the caller made it,
/// 0700). Returns at the end-of-archive block, leaving the rest of the stream unread.
pub fn unpack(r: &mut impl Read, root: &Path, opts: Options) -> Result<Unpacked, UnpackError> {
    let root_fd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| UnpackError::Io(e.into()))?;
    let mut u = Unpacker {
        root: root_fd,
        opts,
        out: Unpacked::default(),
        dirs: Vec::new(),
        files: HashSet::new(),
    };
    if let Some(o) = opts.owner {
        chown_fd(&u.root, o).map_err(UnpackError::Io)?;
    }
    u.check_space(0)?;
    u.run(r)?;
    u.finish_dirs();
    Ok(u.out)
}

/// An entry's parent folder (open) and its path's components.
type Placed<'n> = (OwnedFd, Vec<&'n [u8]>);

struct Unpacker {
    root: OwnedFd,
    opts: Options,
    out: Unpacked,
    /// Directories made or named by the stream: (components, mode, mtime), to finish.
    dirs: Vec<(Vec<Vec<u8>>, u32, Option<i64>)>,
    /// Regular files this stream made (their components joined by `/`).
    files: HashSet<Vec<u8>>,
}

fn chown_fd(fd: &impl AsFd, o: Identity) -> io::Result<()> {
    rustix::fs::fchown(
        fd,
        Some(rustix::fs::Uid::from_raw(o.uid)),
        Some(rustix::fs::Gid::from_raw(o.gid)),
    )
    .map_err(io::Error::from)
}

fn mode_of(bits: u32) -> Mode {
    Mode::from_raw_mode(bits & MODE_MASK)
}

fn times(mtime: i64) -> Timestamps {
    let t = rustix::fs::Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

impl Unpacker {
    fn skip(&mut self, name: &[u8], kind: &'static str, reason: &'static str) {
        if self.out.skipped.len() < MAX_LISTED {
            let cut = name.len().min(MAX_LISTED_NAME);
            self.out.skipped.push(Skipped {
                name: name[..cut].to_vec(),
                kind,
                reason,
            });
        } else {
            self.out.more_skipped += 1;
        }
    }

    fn check_space(&self, need: u64) -> Result<(), UnpackError> {
        if self.opts.keep_free == 0 {
            return Ok(());
        }
        let s = rustix::fs::fstatvfs(&self.root).map_err(|e| UnpackError::Io(e.into()))?;
        let available = s.f_bavail.saturating_mul(s.f_frsize);
        if available < self.opts.keep_free.saturating_add(need) {
            return Err(UnpackError::LowSpace {
                available: available.saturating_sub(need),
                keep: self.opts.keep_free,
            });
        }
        Ok(())
    }

    fn run(&mut self, r: &mut impl Read) -> Result<(), UnpackError> {
        let mut block = [0u8; BLOCK];
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pax = Pax::default();
        loop {
            if !read_full(r, &mut block)? {
                return Err(malformed(
                    "the stream ended without an end-of-archive block",
                ));
            }
            if block.iter().all(|&b| b == 0) {
                return Ok(());
            }
            let h = tar::Header::from_byte_slice(&block);
            let sum: u32 = block[..148]
                .iter()
                .chain(&block[156..])
                .map(|&b| b as u32)
                .sum::<u32>()
                + 8 * 32;
            if h.cksum().ok() != Some(sum) {
                return Err(malformed("a header's checksum is wrong"));
            }
            let t = block[156];
            let header_size = h
                .entry_size()
                .map_err(|_| malformed("a header's size is unreadable"))?;
            match t {
                b'L' => {
                    long_name = Some(trim_nul(read_meta(
                        r,
                        header_size,
                        MAX_LONG_NAME,
                        "long name",
                    )?));
                    continue;
                }
                b'K' => {
                    long_link = Some(trim_nul(read_meta(
                        r,
                        header_size,
                        MAX_LONG_NAME,
                        "long link name",
                    )?));
                    continue;
                }
                b'x' => {
                    pax = parse_pax(&read_meta(r, header_size, MAX_PAX, "pax header")?)?;
                    continue;
                }
                b'g' => {
                    read_meta(r, header_size, MAX_PAX, "pax global header")?;
                    continue;
                }
                _ => {}
            }
            let name = long_name
                .take()
                .or(pax.path.take())
                .unwrap_or_else(|| h.path_bytes().into_owned());
            let link = long_link
                .take()
                .or(pax.linkpath.take())
                .or_else(|| h.link_name_bytes().map(|l| l.into_owned()))
                .unwrap_or_default();
            let size = pax.size.take().unwrap_or(header_size);
            let mtime = pax
                .mtime
                .take()
                .or_else(|| h.mtime().ok().map(|m| m as i64));
            let mode = h.mode().unwrap_or(0o644);
            match t {
                b'0' | b'\0' | b'7' => self.file(r, &name, size, mode, mtime)?,
                b'5' => {
                    self.dir(&name, mode, mtime)?;
                    skip_data(r, size)?;
                }
                b'2' => {
                    self.symlink(&name, &link)?;
                    skip_data(r, size)?;
                }
                b'1' => {
                    self.hard_link(&name, &link)?;
                    skip_data(r, size)?;
                }
                b'S' => {
                    // Extension blocks follow the header while the "is extended" flag
                    // (byte 482, then byte 504 of each extension) is set.
                    let mut more = block[482] != 0;
                    let mut ext = [0u8; BLOCK];
                    while more {
                        if !read_full(r, &mut ext)? {
                            return Err(malformed("the stream ended in a sparse header"));
                        }
                        more = ext[504] != 0;
                    }
                    self.skip(
                        &name,
                        "sparse file",
                        "smolvm does not unpack sparse entries",
                    );
                    skip_data(r, size)?;
                }
                other => {
                    self.skip(
                        &name,
                        kind_name(other),
                        "smolvm makes only files, directories and links",
                    );
                    skip_data(r, size)?;
                }
            }
        }
    }

    /// Open (making missing ones, 0700) every directory of `parents` below the folder,
    /// never following a link; `Ok(None)` when one is not a directory.
    fn open_parent(&self, parents: &[&[u8]]) -> Result<Option<OwnedFd>, UnpackError> {
        let mut cur = self.root.try_clone().map_err(UnpackError::Io)?;
        for c in parents {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let next = match rustix::fs::openat(&cur, c_name(c), flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    self.check_space(0)?;
                    match rustix::fs::mkdirat(&cur, c_name(c), Mode::from_raw_mode(0o700)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(UnpackError::Io(e.into())),
                    }
                    let fd = match rustix::fs::openat(&cur, c_name(c), flags, Mode::empty()) {
                        Ok(fd) => fd,
                        Err(Errno::LOOP | Errno::NOTDIR) => return Ok(None),
                        Err(e) => return Err(UnpackError::Io(e.into())),
                    };
                    if let Some(o) = self.opts.owner {
                        chown_fd(&fd, o).map_err(UnpackError::Io)?;
                    }
                    fd
                }
                Err(Errno::LOOP | Errno::NOTDIR) => return Ok(None),
                Err(e) => return Err(UnpackError::Io(e.into())),
            };
            cur = next;
        }
        Ok(Some(cur))
    }

    /// The parent directory and last name of an entry, or `None` (reported) when it has
    /// no place inside the folder.
    fn place<'n>(
        &mut self,
        name: &'n [u8],
        kind: &'static str,
    ) -> Result<Option<Placed<'n>>, UnpackError> {
        let comps = match components(name) {
            Ok(c) => c,
            Err(why) => {
                self.skip(name, kind, why);
                return Ok(None);
            }
        };
        if comps.is_empty() {
            self.skip(name, kind, "it would replace the download itself");
            return Ok(None);
        }
        match self.open_parent(&comps[..comps.len() - 1])? {
            Some(p) => Ok(Some((p, comps))),
            None => {
                self.skip(name, kind, "a folder in its path is not a folder");
                Ok(None)
            }
        }
    }

    /// Make room at `parent/last` for a new non-directory entry: nothing there is fine; a
    /// file or link there (an earlier entry of the same name) is removed; a directory
    /// stays (`false`).
    fn clear(&self, parent: &OwnedFd, last: &[u8]) -> Result<bool, UnpackError> {
        match rustix::fs::statat(parent, c_name(last), AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => Ok(true),
            Err(e) => Err(UnpackError::Io(e.into())),
            Ok(st) if rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir() => Ok(false),
            Ok(_) => {
                rustix::fs::unlinkat(parent, c_name(last), AtFlags::empty())
                    .map_err(|e| UnpackError::Io(e.into()))?;
                Ok(true)
            }
        }
    }

    fn file(
        &mut self,
        r: &mut impl Read,
        name: &[u8],
        size: u64,
        mode: u32,
        mtime: Option<i64>,
    ) -> Result<(), UnpackError> {
        let Some((parent, comps)) = self.place(name, "file")? else {
            return skip_data(r, size);
        };
        let last = comps[comps.len() - 1];
        self.check_space(0)?;
        if !self.clear(&parent, last)? {
            self.skip(name, "file", "a folder of that name came first");
            return skip_data(r, size);
        }
        let fd = rustix::fs::openat(
            &parent,
            c_name(last),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| UnpackError::Io(e.into()))?;
        let mut f = std::fs::File::from(fd);
        let mut left = size;
        let mut buf = vec![0u8; CHUNK];
        while left > 0 {
            let k = left.min(CHUNK as u64) as usize;
            self.check_space(k as u64)?;
            if !read_full(r, &mut buf[..k])? {
                return Err(malformed("the stream ended in the middle of a file"));
            }
            f.write_all(&buf[..k]).map_err(UnpackError::Io)?;
            left -= k as u64;
        }
        let pad = (padded(size) - size) as usize;
        if pad > 0 && !read_full(r, &mut buf[..pad])? {
            return Err(malformed("the stream ended in the middle of a file"));
        }
        if let Some(o) = self.opts.owner {
            chown_fd(&f, o).map_err(UnpackError::Io)?;
        }
        rustix::fs::fchmod(&f, mode_of(mode)).map_err(|e| UnpackError::Io(e.into()))?;
        if let Some(t) = mtime {
            let _ = rustix::fs::futimens(&f, &times(t));
        }
        self.out.files += 1;
        self.out.bytes += size;
        self.files.insert(comps.join(&b'/'));
        Ok(())
    }

    fn dir(&mut self, name: &[u8], mode: u32, mtime: Option<i64>) -> Result<(), UnpackError> {
        let comps = match components(name) {
            Ok(c) => c,
            Err(why) => {
                self.skip(name, "directory", why);
                return Ok(());
            }
        };
        if comps.is_empty() {
            self.out.root_mode = Some(mode & MODE_MASK);
            self.out.root_mtime = mtime;
            return Ok(());
        }
        let Some((parent, comps)) = self.place(name, "directory")? else {
            return Ok(());
        };
        let last = comps[comps.len() - 1];
        self.check_space(0)?;
        let made = match rustix::fs::mkdirat(&parent, c_name(last), Mode::from_raw_mode(0o700)) {
            Ok(()) => true,
            Err(Errno::EXIST) => false,
            Err(e) => return Err(UnpackError::Io(e.into())),
        };
        let fd = match rustix::fs::openat(
            &parent,
            c_name(last),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::LOOP | Errno::NOTDIR) => {
                self.skip(name, "directory", "a file or link of that name came first");
                return Ok(());
            }
            Err(e) => return Err(UnpackError::Io(e.into())),
        };
        if made {
            if let Some(o) = self.opts.owner {
                chown_fd(&fd, o).map_err(UnpackError::Io)?;
            }
            self.out.dirs += 1;
        }
        self.dirs
            .push((comps.iter().map(|c| c.to_vec()).collect(), mode, mtime));
        Ok(())
    }

    fn symlink(&mut self, name: &[u8], target: &[u8]) -> Result<(), UnpackError> {
        let Some((parent, comps)) = self.place(name, "symbolic link")? else {
            return Ok(());
        };
        if !link_stays_inside(target, comps.len() - 1) {
            self.skip(name, "symbolic link", "its target is outside the download");
            return Ok(());
        }
        let last = comps[comps.len() - 1];
        self.check_space(0)?;
        if !self.clear(&parent, last)? {
            self.skip(name, "symbolic link", "a folder of that name came first");
            return Ok(());
        }
        rustix::fs::symlinkat(c_name(target), &parent, c_name(last))
            .map_err(|e| UnpackError::Io(e.into()))?;
        if let Some(o) = self.opts.owner {
            rustix::fs::chownat(
                &parent,
                c_name(last),
                Some(rustix::fs::Uid::from_raw(o.uid)),
                Some(rustix::fs::Gid::from_raw(o.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| UnpackError::Io(e.into()))?;
        }
        self.out.symlinks += 1;
        Ok(())
    }

    fn hard_link(&mut self, name: &[u8], target: &[u8]) -> Result<(), UnpackError> {
        let to = match components(target) {
            Ok(c) if !c.is_empty() && self.files.contains(&c.join(&b'/')) => c,
            _ => {
                self.skip(
                    name,
                    "hard link",
                    "its target is not a file of this download",
                );
                return Ok(());
            }
        };
        let Some((parent, comps)) = self.place(name, "hard link")? else {
            return Ok(());
        };
        let Some(tparent) = self.open_parent(&to[..to.len() - 1])? else {
            self.skip(
                name,
                "hard link",
                "its target is not a file of this download",
            );
            return Ok(());
        };
        let tlast = to[to.len() - 1];
        let is_file = rustix::fs::statat(&tparent, c_name(tlast), AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_file());
        if !is_file {
            self.skip(
                name,
                "hard link",
                "its target is not a file of this download",
            );
            return Ok(());
        }
        let last = comps[comps.len() - 1];
        if comps == to {
            return Ok(());
        }
        self.check_space(0)?;
        if !self.clear(&parent, last)? {
            self.skip(name, "hard link", "a folder of that name came first");
            return Ok(());
        }
        rustix::fs::linkat(
            &tparent,
            c_name(tlast),
            &parent,
            c_name(last),
            AtFlags::empty(),
        )
        .map_err(|e| UnpackError::Io(e.into()))?;
        self.out.hard_links += 1;
        self.files.insert(comps.join(&b'/'));
        Ok(())
    }

    /// Give directories their (masked) modes and times, deepest first, now that nothing
    /// more is written into them.
    fn finish_dirs(&mut self) {
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.0.len()));
        for (comps, mode, mtime) in dirs {
            let refs: Vec<&[u8]> = comps.iter().map(|c| c.as_slice()).collect();
            if let Ok(Some(fd)) = self.open_parent(&refs) {
                let _ = rustix::fs::fchmod(&fd, mode_of(mode));
                if let Some(t) = mtime {
                    let _ = rustix::fs::futimens(&fd, &times(t));
                }
            }
        }
    }
}

fn trim_nul(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// A tar stream written block by block, hostile entries included.
    #[derive(Default)]
    struct Tar(Vec<u8>);

    impl Tar {
        fn raw(mut self, name: &[u8], t: u8, mode: u32, data: &[u8], link: &[u8]) -> Self {
            let mut h = tar::Header::new_ustar();
            h.as_mut_bytes()[..name.len()].copy_from_slice(name);
            h.as_mut_bytes()[157..157 + link.len()].copy_from_slice(link);
            h.set_size(data.len() as u64);
            h.set_mode(mode);
            h.set_entry_type(tar::EntryType::new(t));
            h.set_mtime(1_600_000_000);
            h.set_cksum();
            self.0.extend_from_slice(h.as_bytes());
            self.0.extend_from_slice(data);
            self.0.resize(padded(self.0.len() as u64) as usize, 0);
            self
        }
        fn file(self, name: &str, mode: u32, data: &[u8]) -> Self {
            self.raw(name.as_bytes(), b'0', mode, data, b"")
        }
        fn dir(self, name: &str, mode: u32) -> Self {
            self.raw(name.as_bytes(), b'5', mode, b"", b"")
        }
        fn symlink(self, name: &str, target: &str) -> Self {
            self.raw(name.as_bytes(), b'2', 0o777, b"", target.as_bytes())
        }
        fn hard(self, name: &str, target: &str) -> Self {
            self.raw(name.as_bytes(), b'1', 0o644, b"", target.as_bytes())
        }
        fn end(mut self) -> Vec<u8> {
            self.0.extend_from_slice(&[0u8; 2 * BLOCK]);
            self.0
        }
    }

    /// A folder to unpack into (`<tmp>/dl`, 0700), with its parent to check nothing lands
    /// beside it.
    fn folder() -> (tempfile::TempDir, std::path::PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("dl");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&root)
            .unwrap();
        (t, root)
    }

    use std::os::unix::fs::DirBuilderExt;

    fn run(stream: &[u8], root: &Path) -> Result<Unpacked, UnpackError> {
        unpack(&mut &stream[..], root, Options::default())
    }

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    fn skipped(u: &Unpacked) -> Vec<(String, &'static str)> {
        u.skipped
            .iter()
            .map(|s| (String::from_utf8_lossy(&s.name).into_owned(), s.kind))
            .collect()
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn files_folders_and_inside_links_are_made_with_set_id_sticky_and_world_write_masked() {
        let (_t, root) = folder();
        let s = Tar::default()
            .dir("./", 0o1777)
            .dir("./bin", 0o1777)
            .file("./bin/suid", 0o4755, b"#!/bin/sh\n")
            .file("./bin/sgid", 0o2711, b"x")
            .file("./shared", 0o666, b"all")
            .symlink("./bin/ok", "suid")
            .symlink("./bin/up", "../shared")
            .hard("./again", "./shared")
            .end();
        let u = run(&s, &root).unwrap();
        assert!(u.skipped.is_empty(), "{:?}", u.skipped);
        assert_eq!((u.files, u.dirs, u.symlinks, u.hard_links), (3, 1, 2, 1));
        assert_eq!(u.bytes, 14);
        assert_eq!(mode(&root.join("bin/suid")), 0o755);
        assert_eq!(mode(&root.join("bin/sgid")), 0o711);
        assert_eq!(mode(&root.join("shared")), 0o664);
        assert_eq!(mode(&root.join("bin")), 0o775);
        // The folder itself stays 0700; its mode is handed back (masked).
        assert_eq!(mode(&root), 0o700);
        assert_eq!(u.root_mode, Some(0o775));
        assert_eq!(
            std::fs::read_link(root.join("bin/ok")).unwrap(),
            Path::new("suid")
        );
        assert_eq!(std::fs::read(root.join("bin/up")).unwrap(), b"all");
        let (a, b) = (
            std::fs::metadata(root.join("again")).unwrap(),
            std::fs::metadata(root.join("shared")).unwrap(),
        );
        assert_eq!(a.ino(), b.ino());
        assert_eq!(
            std::fs::metadata(root.join("bin/sgid")).unwrap().mtime(),
            1_600_000_000
        );
        finish_root(&root, u.root_mode, u.root_mtime).unwrap();
        assert_eq!(mode(&root), 0o775);
    }

    #[test]
    fn devices_fifos_and_unknown_kinds_are_skipped_and_listed() {
        let (_t, root) = folder();
        let s = Tar::default()
            .raw(b"./null", b'3', 0o666, b"", b"")
            .raw(b"./sda", b'4', 0o660, b"", b"")
            .raw(b"./fifo", b'6', 0o666, b"", b"")
            .raw(b"./odd", b'Z', 0o644, b"payload", b"")
            .file("./after", 0o644, b"still read")
            .end();
        let u = run(&s, &root).unwrap();
        assert_eq!(
            skipped(&u),
            [
                ("./null".to_string(), "character device"),
                ("./sda".to_string(), "block device"),
                ("./fifo".to_string(), "FIFO"),
                ("./odd".to_string(), "unknown entry"),
            ]
        );
        assert_eq!(listing(&root), ["after"]);
        assert_eq!(std::fs::read(root.join("after")).unwrap(), b"still read");
    }

    #[test]
    fn paths_that_leave_the_folder_are_skipped_and_nothing_lands_outside() {
        let (t, root) = folder();
        let s = Tar::default()
            .file("../escaped", 0o644, b"x")
            .file("./a/../../escaped2", 0o644, b"x")
            .file("/tmp/abs", 0o644, b"x")
            .dir("..", 0o755)
            .symlink("../lnk", "x")
            .file("./", 0o644, b"x")
            .end();
        let u = run(&s, &root).unwrap();
        assert_eq!(u.skipped.len(), 6, "{:?}", skipped(&u));
        assert_eq!(listing(t.path()), ["dl"]);
        assert!(listing(&root).is_empty());
    }

    #[test]
    fn links_out_are_skipped_and_nothing_is_written_through_a_link() {
        let (t, root) = folder();
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let s = Tar::default()
            .dir("./sub", 0o755)
            .symlink("./abs", "/etc/passwd")
            .symlink("./sub/up2", "../../outside")
            .symlink("./sub/sneaky", "x/../../..")
            .symlink("./dot", ".")
            .symlink("./dotdot", "dot/..")
            .symlink("./empty", "")
            .symlink("./sub/fine", "../dot")
            // A link the stream made (inside), then entries through it.
            .symlink("./via", "sub")
            .file("./via/planted", 0o644, b"x")
            .dir("./via/d", 0o755)
            .end();
        let u = run(&s, &root).unwrap();
        let mut got = skipped(&u);
        got.sort();
        assert_eq!(
            got,
            [
                ("./abs".to_string(), "symbolic link"),
                ("./dotdot".to_string(), "symbolic link"),
                ("./empty".to_string(), "symbolic link"),
                ("./sub/sneaky".to_string(), "symbolic link"),
                ("./sub/up2".to_string(), "symbolic link"),
                ("./via/d".to_string(), "directory"),
                ("./via/planted".to_string(), "file"),
            ]
        );
        assert_eq!(listing(&root), ["dot", "sub", "via"]);
        assert_eq!(listing(&root.join("sub")), ["fine"]);
        assert!(listing(&outside).is_empty());
    }

    #[test]
    fn hard_links_only_to_files_of_this_stream() {
        let (t, root) = folder();
        let secret = t.path().join("secret");
        std::fs::write(&secret, b"host secret").unwrap();
        let s = Tar::default()
            .file("./mine", 0o644, b"mine")
            .symlink("./l", "mine")
            .hard("./h-abs", secret.to_str().unwrap())
            .hard("./h-up", "../secret")
            .hard("./h-later", "./later")
            .hard("./h-link", "./l")
            .hard("./h-none", "")
            .file("./later", 0o644, b"later")
            .hard("./h-ok", "mine")
            .end();
        let u = run(&s, &root).unwrap();
        let names: Vec<String> = skipped(&u).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            ["./h-abs", "./h-up", "./h-later", "./h-link", "./h-none"]
        );
        assert!(u.skipped.iter().all(|s| s.kind == "hard link"));
        assert_eq!(listing(&root), ["h-ok", "l", "later", "mine"]);
        assert_eq!(std::fs::metadata(&secret).unwrap().nlink(), 1);
    }

    #[test]
    fn a_later_entry_replaces_a_file_but_never_a_folder() {
        let (_t, root) = folder();
        let s = Tar::default()
            .file("./x", 0o644, b"first")
            .file("./x", 0o600, b"second")
            .dir("./d", 0o755)
            .file("./d", 0o644, b"file over a folder")
            .symlink("./d", "x")
            .file("./f", 0o644, b"file")
            .dir("./f", 0o755)
            .end();
        let u = run(&s, &root).unwrap();
        assert_eq!(std::fs::read(root.join("x")).unwrap(), b"second");
        assert_eq!(mode(&root.join("x")), 0o600);
        assert!(root.join("d").is_dir());
        assert!(root.join("f").is_file());
        assert_eq!(u.skipped.len(), 3, "{:?}", skipped(&u));
    }

    #[test]
    fn gnu_long_names_and_pax_paths_are_read() {
        let (_t, root) = folder();
        let long = format!("./{}/{}", "d".repeat(150), "f".repeat(120));
        let mut ln = long.clone().into_bytes();
        ln.push(0);
        let pax_rec = |k: &str, v: &str| {
            let body = format!(" {k}={v}\n");
            let mut n = body.len() + 1;
            while format!("{n}{body}").len() != n {
                n += 1;
            }
            format!("{n}{body}")
        };
        let pax = pax_rec("path", "./pax-name") + &pax_rec("mtime", "1234.5");
        let s = Tar::default()
            .raw(b"././@LongLink", b'L', 0o644, &ln, b"")
            .file("./short-ignored", 0o644, b"long")
            .raw(b"./PaxHeaders/x", b'x', 0o644, pax.as_bytes(), b"")
            .file("./ustar-ignored", 0o644, b"pax")
            .raw(b"./g", b'g', 0o644, b"9 a=b\n", b"")
            .end();
        let u = run(&s, &root).unwrap();
        assert!(u.skipped.is_empty(), "{:?}", skipped(&u));
        assert_eq!(std::fs::read(root.join(&long)).unwrap(), b"long");
        assert_eq!(std::fs::read(root.join("pax-name")).unwrap(), b"pax");
        assert_eq!(
            std::fs::metadata(root.join("pax-name")).unwrap().mtime(),
            1234
        );
        assert_eq!(listing(&root).len(), 2);
    }

    #[test]
    fn broken_and_oversized_streams_are_errors_not_allocations() {
        let (_t, root) = folder();
        // A long name announced at 1 TiB: refused before any allocation.
        let mut h = tar::Header::new_gnu();
        h.as_mut_bytes()[..13].copy_from_slice(b"././@LongLink");
        h.set_size(1 << 40);
        h.set_entry_type(tar::EntryType::new(b'L'));
        h.set_cksum();
        let e = run(h.as_bytes(), &root).unwrap_err();
        assert!(
            matches!(e, UnpackError::Malformed(ref m) if m.contains("long name")),
            "{e}"
        );
        // A bad checksum.
        let mut s = Tar::default().file("./a", 0o644, b"x").end();
        s[0] ^= 1;
        assert!(matches!(run(&s, &root), Err(UnpackError::Malformed(_))));
        // Cut in the middle of a file's data, and with no end-of-archive block.
        let s = Tar::default().file("./big", 0o644, &[7u8; 5000]).end();
        assert!(matches!(
            run(&s[..2048], &root),
            Err(UnpackError::Malformed(_))
        ));
        let s = Tar::default().file("./ok", 0o644, b"x").0;
        assert!(matches!(run(&s, &root), Err(UnpackError::Malformed(_))));
        // Padding after the end: zeros are fine, anything else is not.
        assert!(drain_padding(&mut &[0u8; 9216][..], 1 << 20).is_ok());
        assert!(drain_padding(&mut &[0u8, 1][..], 1 << 20).is_err());
        assert!(drain_padding(&mut &vec![0u8; 4096][..], 1024).is_err());
    }

    #[test]
    fn the_free_space_floor_stops_before_anything_is_written() {
        let (_t, root) = folder();
        let s = Tar::default().file("./a", 0o644, b"x").end();
        let opts = Options {
            owner: None,
            keep_free: u64::MAX / 4,
        };
        let e = unpack(&mut &s[..], &root, opts).unwrap_err();
        assert!(matches!(e, UnpackError::LowSpace { .. }), "{e}");
        assert!(listing(&root).is_empty());
    }

    #[test]
    fn everything_made_belongs_to_the_given_owner() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("SKIPPED: needs root (chown)");
            return;
        }
        let (_t, root) = folder();
        let s = Tar::default()
            .file("./deep/er/file", 0o644, b"x")
            .dir("./d", 0o755)
            .symlink("./l", "d")
            .hard("./h", "deep/er/file")
            .end();
        let who = Identity {
            uid: 4321,
            gid: 4322,
        };
        let opts = Options {
            owner: Some(who),
            keep_free: 0,
        };
        unpack(&mut &s[..], &root, opts).unwrap();
        for p in ["", "deep", "deep/er", "deep/er/file", "d", "l", "h"] {
            let m = std::fs::symlink_metadata(root.join(p)).unwrap();
            assert_eq!((m.uid(), m.gid()), (4321, 4322), "{p:?}");
        }
        let t = tempfile::tempdir().unwrap();
        make_parents(&t.path().join("a/b/c"), Some(who)).unwrap();
        for p in ["a", "a/b", "a/b/c"] {
            let m = std::fs::metadata(t.path().join(p)).unwrap();
            assert_eq!((m.uid(), m.gid()), (4321, 4322), "{p:?}");
        }
        assert_eq!(std::fs::metadata(t.path()).unwrap().uid(), 0);
    }

    #[test]
    fn link_targets_inside_are_relative_ups_first_and_never_above_the_folder() {
        for (t, depth, ok) in [
            ("a", 0, true),
            ("./a/b", 0, true),
            ("../a", 1, true),
            ("../../a", 1, false),
            ("../a", 0, false),
            ("a/../b", 3, false),
            ("/a", 5, false),
            ("", 0, false),
            ("..", 1, true),
            (".", 0, true),
        ] {
            assert_eq!(
                link_stays_inside(t.as_bytes(), depth),
                ok,
                "{t:?} at {depth}"
            );
        }
    }

    #[test]
    fn a_watched_pipe_stops_on_request_and_past_its_cap() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let (r, mut w) = std::io::pipe().unwrap();
        let flag = AtomicBool::new(false);
        let stop = || flag.load(Ordering::SeqCst).then_some(Stop::Cancelled);
        let seen = std::sync::atomic::AtomicU64::new(0);
        let on_bytes = |n| seen.store(n, Ordering::SeqCst);
        let mut watched = Watched::new(r, Some(10), &stop, &on_bytes);
        w.write_all(b"12345").unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(watched.read(&mut buf).unwrap(), 5);
        assert_eq!(seen.load(Ordering::SeqCst), 5);
        // The writer stalls with its side open: a stop request still ends the read.
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(300));
                flag.store(true, Ordering::SeqCst);
            });
            let t0 = std::time::Instant::now();
            let e = watched.read(&mut buf).unwrap_err();
            assert_eq!(stop_of(&e), Some(Stop::Cancelled));
            assert!(t0.elapsed() < Duration::from_secs(2));
        });
        flag.store(false, Ordering::SeqCst);
        w.write_all(b"678901").unwrap();
        let e = watched.read(&mut buf).unwrap_err();
        assert_eq!(stop_of(&e), Some(Stop::TooLong(10)));
        // A deadline for the end of the stream.
        let (r, _w) = std::io::pipe().unwrap();
        let mut watched = Watched::new(r, None, &stop, &on_bytes);
        watched.end_within(Duration::from_millis(200));
        let e = watched.read(&mut buf).unwrap_err();
        assert_eq!(stop_of(&e), Some(Stop::TimedOut));
    }
}
