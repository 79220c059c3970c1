//! Opening, creating and replacing files under predictable names, safely as root on a
//! shared host: nothing here follows a symbolic link in the last path component
//! (`O_NOFOLLOW`), files that must be new are created with `O_EXCL`, temporary names are
//! unpredictable (pid + random), replacement is write-then-rename, and an existing path is
//! only ever unlinked when it is provably what we expect (a control socket is removed only
//! when `lstat` says it is a socket).
//!
//! Every error is an [`io::Error`] whose text is a reason without the path (callers say
//! `cannot open <path>: <reason>`); a symbolic link is reported as such, never as the
//! kernel's "Too many levels of symbolic links".

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// What is at a path, without following a symbolic link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Socket,
    /// A FIFO, a device node.
    Other,
}

impl Kind {
    pub fn describe(self) -> &'static str {
        match self {
            Kind::File => "a regular file",
            Kind::Dir => "a directory",
            Kind::Symlink => "a symbolic link",
            Kind::Socket => "a socket",
            Kind::Other => "a special file",
        }
    }
}

/// `lstat` as a [`Kind`]; `None` when nothing is there.
pub fn kind(path: &Path) -> io::Result<Option<Kind>> {
    match std::fs::symlink_metadata(path) {
        Ok(m) => {
            let t = m.file_type();
            Ok(Some(if t.is_symlink() {
                Kind::Symlink
            } else if t.is_file() {
                Kind::File
            } else if t.is_dir() {
                Kind::Dir
            } else if t.is_socket() {
                Kind::Socket
            } else {
                Kind::Other
            }))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The error for a path that is not what we may touch: "it is a symbolic link (smolvm
/// never follows one)" and the like.
pub fn refuse(k: Kind) -> io::Error {
    let why = match k {
        Kind::Symlink => "it is a symbolic link (smolvm never follows one)".to_string(),
        other => format!(
            "it is {}, not what smolvm would create there",
            other.describe()
        ),
    };
    io::Error::new(io::ErrorKind::AlreadyExists, why)
}

/// Turn the kernel's answer to an `O_NOFOLLOW` / `O_EXCL` open into a clear reason.
fn explain(path: &Path, e: io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(libc::ELOOP) | Some(libc::EEXIST) | Some(libc::ENXIO) => match kind(path) {
            Ok(Some(Kind::Symlink)) => refuse(Kind::Symlink),
            Ok(Some(k)) if e.raw_os_error() == Some(libc::EEXIST) => io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("it already exists ({})", k.describe()),
            ),
            Ok(Some(k)) if k != Kind::File => refuse(k),
            _ => e,
        },
        _ => e,
    }
}

/// The opened file must be a regular file with no other name (a hard link to someone
/// else's file would otherwise be written through).
fn check_regular(f: &File, single_link: bool) -> io::Result<()> {
    let m = f.metadata()?;
    if !m.file_type().is_file() {
        return Err(refuse(if m.file_type().is_dir() {
            Kind::Dir
        } else {
            Kind::Other
        }));
    }
    if single_link && m.nlink() > 1 {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "it is a hard link to another file (smolvm will not write through it)",
        ));
    }
    Ok(())
}

fn clear_nonblock(f: &File) -> io::Result<()> {
    use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
    let flags = fcntl_getfl(f)?;
    fcntl_setfl(f, flags - OFlags::NONBLOCK)?;
    Ok(())
}

/// Open (creating with `mode` when missing) a file we rewrite on every use, such as a
/// console log, and empty it: `O_NOFOLLOW`, `O_CLOEXEC`, read-write and append. A symbolic
/// link, a directory, a FIFO, a device or a hard-linked file there is refused before any
/// byte changes (`O_NONBLOCK` while opening, so a FIFO cannot block us).
pub fn open_truncated(path: &Path, mode: u32) -> io::Result<File> {
    let f = open_checked(
        path,
        OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(mode),
        true,
    )?;
    f.set_len(0)?;
    Ok(f)
}

/// Open with `opts` plus `O_NOFOLLOW` (and `O_NONBLOCK` while opening, so a FIFO cannot
/// block us), then accept only a regular file (with one link when `single_link`).
fn open_checked(path: &Path, opts: &mut OpenOptions, single_link: bool) -> io::Result<File> {
    let f = opts
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| explain(path, e))?;
    check_regular(&f, single_link)?;
    clear_nonblock(&f)?;
    Ok(f)
}

/// Open an existing regular file for reading and writing without following a symbolic
/// link (a per-VM disk to grow).
pub fn open_existing_rw(path: &Path) -> io::Result<File> {
    open_checked(path, OpenOptions::new().read(true).write(true), true)
}

/// Open an existing regular file for reading without following a symbolic link.
pub fn open_read(path: &Path) -> io::Result<File> {
    open_checked(path, OpenOptions::new().read(true), false)
}

/// [`open_read`] the whole file as text.
pub fn read_to_string(path: &Path) -> io::Result<String> {
    use std::io::Read;
    let mut s = String::new();
    open_read(path)?.read_to_string(&mut s)?;
    Ok(s)
}

/// A lock file: opened (created with `mode` when missing) read-write, never through a
/// symbolic link, never truncated.
pub fn open_lock(path: &Path, mode: u32) -> io::Result<File> {
    open_checked(
        path,
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(mode),
        false,
    )
}

/// A log file: opened for appending (created with `mode` when missing), never through a
/// symbolic link, never truncated.
pub fn open_append(path: &Path, mode: u32) -> io::Result<File> {
    open_checked(
        path,
        OpenOptions::new().append(true).create(true).mode(mode),
        false,
    )
}

/// Create a file that must not exist yet (`O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC`), read-write.
/// Anything already there — a file, a symbolic link, a dangling one — is an error.
pub fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| explain(path, e))
}

/// `n` random bytes as hex (the kernel's `getrandom`).
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    let mut filled = 0;
    while filled < n {
        // SAFETY: writes at most `n - filled` bytes into `b[filled..]`.
        let r = unsafe { libc::getrandom(b[filled..].as_mut_ptr().cast(), n - filled, 0) };
        if r <= 0 {
            // No entropy source: fall back to the clock (names stay unique with the pid).
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            for (i, x) in b.iter_mut().enumerate().skip(filled) {
                *x = (t >> ((i % 16) * 8)) as u8;
            }
            break;
        }
        filled += r as usize;
    }
    hex(&b)
}

/// Bytes as lower-case hex, two digits each (a digest as SmolVM's manifests and our
/// archives and fingerprints write it).
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A name of our own making beside `path`: `.<file name><tag>.<pid>-<random><suffix>`.
pub fn sibling_temp_name(path: &Path, suffix: &str) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(
        ".{name}.{}-{}{suffix}",
        std::process::id(),
        random_hex(6)
    ))
}

/// A new temporary file beside `path` (see [`sibling_temp_name`]), created with `O_EXCL`;
/// returns it and its path.
pub fn create_temp_beside(path: &Path, suffix: &str, mode: u32) -> io::Result<(File, PathBuf)> {
    let mut last = None;
    for _ in 0..8 {
        let tmp = sibling_temp_name(path, suffix);
        match create_new(&tmp, mode) {
            Ok(f) => return Ok((f, tmp)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("cannot pick a temporary name")))
}

/// fsync a directory (after a rename in it).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)?
        .sync_all()
}

/// Replace `path` atomically with `data`: a new temporary file beside it (`O_EXCL`),
/// written, given exactly `mode` (not masked by the umask), fsynced, renamed over `path` (a symbolic link at `path` is replaced, never
/// followed), then the directory fsynced.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let (mut f, tmp) = create_temp_beside(path, ".tmp", mode)?;
    let r = f
        .write_all(data)
        .and_then(|_| f.set_permissions(std::fs::Permissions::from_mode(mode)))
        .and_then(|_| f.sync_all())
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = r {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Rename `from` to `to` only if nothing is at `to` (`renameat2(RENAME_NOREPLACE)`).
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    nix::fcntl::renameat2(
        nix::fcntl::AT_FDCWD,
        from,
        nix::fcntl::AT_FDCWD,
        to,
        nix::fcntl::RenameFlags::RENAME_NOREPLACE,
    )
    .map_err(|e| {
        if e == nix::errno::Errno::EEXIST {
            match kind(to) {
                Ok(Some(k)) => io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("it already exists ({})", k.describe()),
                ),
                _ => io::Error::from(e),
            }
        } else {
            io::Error::from(e)
        }
    })
}

/// Make the path of a control socket free for a VMM to bind: nothing there is fine; an
/// existing socket (a stale one) is unlinked; anything else — a symbolic link, a regular
/// file, a directory — is left alone and is an error.
pub fn prepare_socket_path(path: &Path) -> io::Result<()> {
    match kind(path)? {
        None => Ok(()),
        Some(Kind::Socket) => match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        },
        Some(k) => Err(refuse(k)),
    }
}

/// Remove a control socket if one is there: only a socket is unlinked. Returns whether
/// one was; something else at the path is an error (and stays).
pub fn remove_socket(path: &Path) -> io::Result<bool> {
    match kind(path)? {
        None => Ok(false),
        Some(Kind::Socket) => match std::fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        },
        Some(k) => Err(refuse(k)),
    }
}

/// Nothing at `path`, or a regular file (never a symbolic link, a directory or a special
/// file): what may be at a path we are about to rewrite.
pub fn absent_or_regular(path: &Path) -> io::Result<()> {
    match kind(path)? {
        None | Some(Kind::File) => Ok(()),
        Some(k) => Err(refuse(k)),
    }
}

/// Nothing at all at `path` (a file we are about to create must be new).
pub fn absent(path: &Path) -> io::Result<()> {
    match kind(path)? {
        None => Ok(()),
        Some(Kind::Symlink) => Err(refuse(Kind::Symlink)),
        Some(k) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("it already exists ({})", k.describe()),
        )),
    }
}

/// A regular file must be at `path` (not a symbolic link).
pub fn regular(path: &Path) -> io::Result<()> {
    match kind(path)? {
        Some(Kind::File) => Ok(()),
        None => Err(io::Error::from(io::ErrorKind::NotFound)),
        Some(k) => Err(refuse(k)),
    }
}

/// A directory, opened as what it is now (`O_DIRECTORY | O_NOFOLLOW`, close-on-exec): a
/// symbolic link in the last component is refused, never followed.
pub fn dir_nofollow(path: &Path) -> io::Result<std::os::fd::OwnedFd> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| explain(path, e))?;
    Ok(std::os::fd::OwnedFd::from(f))
}

/// A new directory `<parent>/<prefix><pid>-<random>` (mkdir with `mode`, so it fails
/// rather than reuse anything already there): a name this process generated, so it is
/// ours to remove later.
pub fn create_unique_dir(parent: &Path, prefix: &str, mode: u32) -> io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let mut last = None;
    for _ in 0..8 {
        let mut name = OsString::from(prefix).into_vec();
        name.extend_from_slice(format!("{}-{}", std::process::id(), random_hex(6)).as_bytes());
        let p = parent.join(OsString::from_vec(name));
        match std::fs::DirBuilder::new().mode(mode).create(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("cannot pick a directory name")))
}

/// A folder [`create_unique_dir`] made whose process no longer runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftDir {
    /// What stood between the prefix and the PID, with its dash: `vm-a-` of
    /// `.snapshot-vm-a-<pid>-<hex>` made with the prefix `.snapshot-`, `-` of
    /// `.keygen--<pid>-<hex>`; empty only when the PID follows the prefix.
    pub middle: String,
    pub path: PathBuf,
}

/// The folders in `dir` that [`left_unique_dir`] accepts, in name order: what processes
/// killed midway left.
pub fn left_unique_dirs(dir: &Path, prefix: &str, owned: impl Fn(u32) -> bool) -> Vec<LeftDir> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<LeftDir> = rd
        .flatten()
        .filter_map(|e| left_unique_dir(&e.path(), prefix, &owned))
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// `path` if it is a folder named as [`create_unique_dir`] names them with `prefix`
/// (`<prefix><middle><pid>-<12 hex>`), a directory (not a link) of an owner `owned`
/// accepts, whose process no longer runs — one whose PID another process has now is kept.
pub fn left_unique_dir(path: &Path, prefix: &str, owned: impl Fn(u32) -> bool) -> Option<LeftDir> {
    use std::os::unix::fs::MetadataExt;
    let (middle, pid) = unique_dir_name(path.file_name()?.to_str()?, prefix)?;
    let dead = crate::sys::process::ended(pid);
    let ours = dead && std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir() && owned(m.uid()));
    ours.then(|| LeftDir {
        middle,
        path: path.to_path_buf(),
    })
}

/// The middle (with its dash; see [`LeftDir::middle`]) and the PID of `name`, when it is
/// exactly as [`create_unique_dir`] names a folder with `prefix`: `<prefix><middle><pid>-<12
/// lower-case hex>`, the PID in decimal as this process's id prints it.
pub fn unique_dir_name(name: &str, prefix: &str) -> Option<(String, i32)> {
    let rest = name.strip_prefix(prefix)?;
    let (head, random) = rest.rsplit_once('-')?;
    // `<middle>-<pid>` (the middle keeps its dash), or the PID alone.
    let (middle, pid) = head
        .rsplit_once('-')
        .map_or((String::new(), head), |(m, p)| (format!("{m}-"), p));
    let named = random.len() == 12
        && random
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && !pid.is_empty()
        && !pid.starts_with('0')
        && pid.bytes().all(|b| b.is_ascii_digit());
    let pid = pid.parse::<i32>().ok().filter(|&p| named && p > 0)?;
    Some((middle, pid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn reason(e: io::Error) -> String {
        e.to_string()
    }

    #[test]
    fn open_truncated_refuses_symlinks_and_hard_links_and_keeps_targets() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("target");
        std::fs::write(&target, b"precious").unwrap();
        let link = t.path().join("vm.log");
        symlink(&target, &link).unwrap();
        let e = reason(open_truncated(&link, 0o600).unwrap_err());
        assert!(e.contains("symbolic link"), "{e}");
        let dangling = t.path().join("d.log");
        symlink(t.path().join("nowhere"), &dangling).unwrap();
        assert!(open_truncated(&dangling, 0o600).is_err());
        assert!(!t.path().join("nowhere").exists());
        let hard = t.path().join("h.log");
        std::fs::hard_link(&target, &hard).unwrap();
        let e = reason(open_truncated(&hard, 0o600).unwrap_err());
        assert!(e.contains("hard link"), "{e}");
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        // A FIFO neither blocks nor is accepted.
        let fifo = t.path().join("f.log");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(open_truncated(&fifo, 0o600).is_err());
        // A regular file is emptied.
        let log = t.path().join("ok.log");
        std::fs::write(&log, b"old").unwrap();
        let mut f = open_truncated(&log, 0o600).unwrap();
        f.write_all(b"new").unwrap();
        assert_eq!(std::fs::read(&log).unwrap(), b"new");
    }

    #[test]
    fn create_new_and_temps_never_reuse_a_path() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("target");
        std::fs::write(&target, b"x").unwrap();
        let link = t.path().join("new");
        symlink(&target, &link).unwrap();
        let e = reason(create_new(&link, 0o600).unwrap_err());
        assert!(e.contains("symbolic link"), "{e}");
        let e = reason(create_new(&target, 0o600).unwrap_err());
        assert!(e.contains("already exists"), "{e}");
        let (_, a) = create_temp_beside(&t.path().join("f"), ".partial", 0o600).unwrap();
        let (_, b) = create_temp_beside(&t.path().join("f"), ".partial", 0o600).unwrap();
        assert_ne!(a, b);
        let n = a.file_name().unwrap().to_string_lossy().into_owned();
        assert!(n.starts_with(".f.") && n.ends_with(".partial"), "{n}");
    }

    #[test]
    fn write_atomic_replaces_a_symlink_without_following_it() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("target");
        std::fs::write(&target, b"keep").unwrap();
        let p = t.path().join("sidecar");
        symlink(&target, &p).unwrap();
        write_atomic(&p, b"new", 0o644).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        assert_eq!(kind(&p).unwrap(), Some(Kind::File));
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(
            std::fs::read_dir(t.path()).unwrap().count(),
            2,
            "no temp left"
        );
        let e = reason(
            read_to_string(&{
                let l = t.path().join("l");
                symlink(&target, &l).unwrap();
                l
            })
            .unwrap_err(),
        );
        assert!(e.contains("symbolic link"), "{e}");
    }

    #[test]
    fn only_a_socket_is_removed_from_a_socket_path() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("qmp-a.sock");
        std::fs::write(&file, b"x").unwrap();
        assert!(prepare_socket_path(&file).is_err());
        assert!(remove_socket(&file).is_err());
        assert!(file.exists());
        let link = t.path().join("qmp-b.sock");
        symlink(&file, &link).unwrap();
        let e = reason(prepare_socket_path(&link).unwrap_err());
        assert!(e.contains("symbolic link"), "{e}");
        let sock = t.path().join("qmp-c.sock");
        let l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        drop(l);
        prepare_socket_path(&sock).unwrap();
        assert!(kind(&sock).unwrap().is_none());
        assert!(!remove_socket(&sock).unwrap());
        prepare_socket_path(&t.path().join("none.sock")).unwrap();
    }

    #[test]
    fn rename_noreplace_and_private_dirs() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a");
        let b = t.path().join("b");
        std::fs::write(&a, b"a").unwrap();
        std::fs::write(&b, b"b").unwrap();
        assert!(rename_noreplace(&a, &b).is_err());
        assert_eq!(std::fs::read(&b).unwrap(), b"b");
        std::fs::remove_file(&b).unwrap();
        rename_noreplace(&a, &b).unwrap();
        let d1 = create_unique_dir(t.path(), ".x.staging-", 0o700).unwrap();
        let d2 = create_unique_dir(t.path(), ".x.staging-", 0o700).unwrap();
        assert_ne!(d1, d2);
        assert!(d1.is_dir());
    }
}
