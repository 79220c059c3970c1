//! `sandbox file upload|download`: files and directories between the host and a running
//! sandbox, as one tar stream over the VM's SSH, streamed through this process (which
//! counts the bytes for the progress bar) with no temporary copy. An upload is
//! `tar -cf - … | ssh … tar -xf -`; a download's stream comes from the guest, which is
//! hostile, so it is never given to a `tar` program on the host: it is read in Rust
//! ([`crate::sys::unpack`]), which makes only files, directories and links that stay
//! inside, never a set-uid, set-gid or sticky bit, and skips (and lists) everything else.
//! Permissions are kept (masked on a download); owners are not (files belong to whoever
//! runs smolvm — under sudo, to the user who ran it).
//!
//! The destination names the result: a file goes to exactly that path (never into a
//! directory of that name: that is an error), a directory is created there, or merged into
//! the one in the guest, or — on the host — put inside an existing directory under its own
//! name. Both sides write through a private temporary directory beside the destination and
//! move the result into place, so a failed transfer leaves nothing half written; on the
//! host that directory stays 0700 until the one rename, and SIGINT, SIGTERM, a cancel,
//! `--max-bytes` or a nearly full disk remove it. An upload is synced to the guest's disk
//! before it is reported done (a VM killed right after keeps it).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::context::Ctx;
use super::error::{io_reason, Error, ErrorCode, Result};
use super::guest;
use super::progress::Progress;
use super::ssh::SshLogin;
use crate::core::vm::VmId;
use crate::sys::child::{Child, Io};
use crate::sys::fs::{replace_with_generated, sweep_staging, Staging};
use crate::sys::open::rename_noreplace;
use crate::sys::signals::Interrupts;
use crate::sys::unpack::{
    drain_padding, finish_root, make_parents, stop_of, unpack, Options as UnpackOptions, Stop,
    UnpackError, Unpacked, Watched,
};
use crate::sys::users::Identity;

/// Bytes moved so far of about `total` (file contents; the tar stream is a little more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileProgress {
    pub done: u64,
    pub total: u64,
}

/// What a transfer did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transfer {
    pub vm_id: VmId,
    pub local_path: String,
    pub guest_path: String,
    /// `file` or `directory`.
    pub kind: &'static str,
    /// Bytes of file content moved.
    pub bytes: u64,
    /// Entries of a download's stream that were not made (devices, FIFOs, links out, …).
    pub skipped: Vec<SkippedEntry>,
}

/// Exit codes of the guest-side scripts (below ssh's 255 and tar's 1/2).
const MISSING: i32 = 20;
const IS_DIR: i32 = 21;
const NOT_DIR: i32 = 22;
const NO_PARENT: i32 = 23;

/// Download: `$1` the guest path. One header line (`f SIZE` or `d SIZE`), then the tar.
const DOWNLOAD_SCRIPT: &str = r#"p=$1
if [ -d "$p" ]; then
  printf 'd %s\n' "$(du -sb -- "$p" 2>/dev/null | cut -f1)"
  exec tar -C "$p" -cf - .
elif [ -f "$p" ]; then
  printf 'f %s\n' "$(wc -c < "$p")"
  cd -- "$(dirname -- "$p")" || exit 1
  exec tar -cf - -- "./$(basename -- "$p")"
elif [ -e "$p" ]; then exit 22
else exit 20
fi"#;

fn not_running_first(ctx: &Ctx, id: &VmId, login: &SshLogin) -> Result<()> {
    login.check()?;
    super::lifecycle::running_ip(ctx, id).map(drop)
}

fn check_guest_path(p: &str) -> Result<()> {
    if p.is_empty() || p.contains('\0') {
        return Err(Error::usage("The guest path must not be empty."));
    }
    Ok(())
}

/// The bytes of regular files under `path` (not following symbolic links).
fn content_size(path: &Path) -> u64 {
    let Ok(m) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if m.is_dir() {
        std::fs::read_dir(path)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| content_size(&e.path()))
            .sum()
    } else if m.is_file() {
        m.len()
    } else {
        0
    }
}

/// What stops a transfer, the same for both ways: SIGINT, SIGTERM or SIGHUP, held back
/// while it lives (a Ctrl-C then stops it as the dashboard's cancel does), else its job's
/// cancel.
struct Stops<'a> {
    interrupts: Interrupts,
    progress: &'a Progress<FileProgress>,
}

impl<'a> Stops<'a> {
    fn watch(progress: &'a Progress<FileProgress>) -> Result<Stops<'a>> {
        let interrupts = Interrupts::catch()
            .map_err(|e| Error::runtime(format!("cannot watch for Ctrl-C: {}", io_reason(&e))))?;
        Ok(Stops {
            interrupts,
            progress,
        })
    }

    fn now(&self) -> Option<Stop> {
        (self.interrupts.caught().map(Stop::Signal))
            .or_else(|| self.progress.cancelled().then_some(Stop::Cancelled))
    }
}

/// A transfer stopped by its job's cancel or a signal (an interrupted error, so a face
/// tells it from a failure).
fn cancelled(what: String) -> Error {
    Error::new(ErrorCode::Interrupted, what)
}

fn spawn<S: AsRef<std::ffi::OsStr>>(
    argv: &[S],
    stdin: Io,
    stdout: Io,
    what: &str,
) -> Result<Child> {
    crate::sys::child::spawn(argv, stdin, stdout, Io::Piped)
        .map_err(|e| Error::runtime(format!("cannot run {what}: {e}")))
}

/// What a child prints on stderr, read by a thread of its own: the first
/// [`STDERR_KEPT`] bytes are kept, the rest read and dropped (a guest must not fill our
/// memory through ssh's stderr).
struct StderrReader {
    kept: Arc<Mutex<Vec<u8>>>,
    done: std::sync::mpsc::Receiver<()>,
}

const STDERR_KEPT: usize = 64 * 1024;

impl StderrReader {
    /// The text so far, once the stream has ended (or after 2 s, whatever there is).
    fn text(&self) -> String {
        let _ = self.done.recv_timeout(Duration::from_secs(2));
        let kept = self.kept.lock().map(|k| k.clone()).unwrap_or_default();
        String::from_utf8_lossy(&kept).into_owned()
    }
}

fn stderr_of(child: &mut Child) -> StderrReader {
    let kept = Arc::new(Mutex::new(Vec::new()));
    let (tx, done) = std::sync::mpsc::channel();
    let mut err = child.take_stderr();
    let k = kept.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        if let Some(e) = err.as_mut() {
            loop {
                match e.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if let Ok(mut k) = k.lock() {
                            let room = STDERR_KEPT.saturating_sub(k.len());
                            k.extend_from_slice(&buf[..n.min(room)]);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        }
        let _ = tx.send(());
    });
    StderrReader { kept, done }
}

fn first_line(s: &str) -> &str {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

/// How a download may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownloadOptions {
    /// Create missing parents of the local path.
    pub create_dirs: bool,
    /// Stop a stream longer than this many bytes (`--max-bytes`). Without it a download
    /// stops before the destination's free space falls below [`KEEP_FREE`].
    pub max_bytes: Option<u64>,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions {
            create_dirs: true,
            max_bytes: None,
        }
    }
}

/// What a download without `--max-bytes` leaves free on the destination's file system.
pub const KEEP_FREE: u64 = 1 << 30;
const KEEP_FREE_TEXT: &str = "1 GiB";

/// How long a guest may keep its side open once its archive has ended.
const CLOSE_WITHIN: Duration = Duration::from_secs(60);

/// The start of a download's staging folder's name, beside its destination.
const DOWNLOAD_PREFIX: &str = ".smolvm-download.";

/// An entry of the guest's stream that was not made on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedEntry {
    /// Its path inside the download, as the guest named it (invalid UTF-8 replaced).
    pub path: String,
    /// `character device`, `block device`, `FIFO`, `symbolic link`, `hard link`, …
    pub kind: &'static str,
    pub reason: &'static str,
}

/// Copy `guest` (a file or a directory) from sandbox `id` to `local`. A file replaces a
/// file at `local` (never a directory: an error); a directory is created at `local`, or put
/// inside it under its own name when `local` is an existing directory. Missing parents of
/// `local` are created unless `opts.create_dirs` is false.
///
/// The guest's tar stream is read here ([`crate::sys::unpack`]): only files, directories
/// and links that stay inside are made, with no set-id bit ever, owned by this user (the
/// one who ran `sudo`, under it); every other entry is skipped and listed in
/// [`Transfer::skipped`]. The stream goes into a 0700 folder beside the destination that
/// is renamed into place once, at the end; SIGINT, SIGTERM, a cancel, `max_bytes` or a
/// nearly full disk remove it and nothing is left.
pub fn download(
    ctx: &Ctx,
    id: &VmId,
    login: &SshLogin,
    guest_path: &str,
    local: &Path,
    opts: DownloadOptions,
    progress: &Progress<FileProgress>,
) -> Result<Transfer> {
    check_guest_path(guest_path)?;
    if progress.cancelled() {
        return Err(stop_error(id, Stop::Cancelled, local));
    }
    not_running_first(ctx, id, login)?;
    let stops = Stops::watch(progress)?;
    let owner = ctx.env.sudo_ids().map(|(uid, gid)| Identity { uid, gid });
    let stop = || stops.now();
    let total = AtomicU64::new(0);
    let on_bytes = |done: u64| {
        let total = total.load(Ordering::Relaxed);
        progress.emit(FileProgress {
            done: done.min(total),
            total,
        });
    };
    let parent = match local.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let no_parent = || {
        Error::runtime(format!(
            "Local directory does not exist: {} (drop --no-create-dirs to create it)",
            parent.display()
        ))
    };
    let mut ssh = spawn(
        &guest::argv(ctx, id, login, &guest::sh(DOWNLOAD_SCRIPT, &[guest_path]))?,
        Io::Null,
        Io::Piped,
        "ssh",
    )?;
    let ssh_err = stderr_of(&mut ssh);
    let stdout = ssh.take_stdout().expect("piped");
    let mut out = BufReader::with_capacity(
        256 * 1024,
        Watched::new(stdout, opts.max_bytes, &stop, &on_bytes),
    );
    let stopped = |s: Stop, target: &Path| stop_error(id, s, target);
    let mut header = Vec::new();
    let header_read = out.by_ref().take(64).read_until(b'\n', &mut header);
    let mut fail = |e: Error| -> Result<Transfer> {
        let _ = ssh.kill_on_error();
        Err(e)
    };
    if let Err(e) = &header_read {
        if let Some(s) = stop_of(e) {
            return fail(stopped(s, local));
        }
    }
    let header = String::from_utf8_lossy(&header).into_owned();
    let (is_dir, announced) = match header.trim_end().split_once(' ') {
        Some(("d", n)) => (true, n.trim().parse().unwrap_or(0)),
        Some(("f", n)) => (false, n.trim().parse().unwrap_or(0)),
        _ => {
            drop(out);
            let status = match wait_child(&mut ssh, &stop, Instant::now() + CLOSE_WITHIN) {
                Ok(s) => s,
                Err(s) => {
                    let _ = ssh.kill_on_error();
                    return Err(stopped(s, local));
                }
            };
            let err = ssh_err.text();
            return Err(match status.code() {
                Some(MISSING) => Error::runtime(format!("Guest path not found: {guest_path}")),
                Some(NOT_DIR) => Error::runtime(format!(
                    "Guest path is neither a file nor a directory: {guest_path}"
                )),
                Some(guest::SSH_FAILED) => guest::unreachable(id, err.as_bytes()),
                c => Error::runtime(format!(
                    "Download from sandbox '{id}' failed (exit {}): {}",
                    c.map_or("-".into(), |c| c.to_string()),
                    first_line(&err)
                )),
            });
        }
    };
    total.store(announced, Ordering::Relaxed);
    if let Some(max) = opts.max_bytes.filter(|&m| announced > m) {
        return fail(Error::runtime(format!(
            "Download from sandbox '{id}' refused: {guest_path} is {announced} bytes, more than --max-bytes {max}; nothing was written"
        )));
    }
    // Where the result goes, checked now that its kind is known (nothing written yet).
    let target = match std::fs::symlink_metadata(local) {
        Ok(m) if m.is_dir() && is_dir => {
            let name = Path::new(guest_path.trim_end_matches('/'))
                .file_name()
                .map(|n| n.to_os_string());
            match name {
                Some(n) if n != ".." && n != "." => local.join(n),
                _ => {
                    return fail(Error::runtime(format!(
                        "Local path already exists: {}",
                        local.display()
                    )))
                }
            }
        }
        Ok(m) if m.is_dir() => {
            return fail(Error::runtime(format!(
                "Local path is a directory: {} (give the file's full path)",
                local.display()
            )))
        }
        Ok(_) if is_dir => {
            return fail(Error::runtime(format!(
                "Local path exists and is not a directory: {}",
                local.display()
            )))
        }
        _ => local.to_path_buf(),
    };
    if is_dir && std::fs::symlink_metadata(&target).is_ok() {
        return fail(Error::runtime(format!(
            "Local path already exists: {}",
            target.display()
        )));
    }
    let parent_dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent_dir.is_dir() {
        if !opts.create_dirs {
            return fail(no_parent());
        }
        if let Err(e) = make_parents(&parent_dir, owner) {
            return fail(Error::runtime(format!(
                "cannot create {}: {}",
                parent_dir.display(),
                io_reason(&e)
            )));
        }
    }
    // What a download killed midway (SIGKILL, a lost machine) left beside its destination
    // goes first: only a folder of ours that no download holds, whose process is gone.
    // A download makes its folder (all but for an instant) and everything in it the
    // user's under sudo, root's without it.
    let ours = |uid: u32| owner.map_or(ctx.env.euid(), |o| o.uid) == uid;
    sweep_staging(&parent_dir, DOWNLOAD_PREFIX, &ours);
    // Held locked until the download ends, so no other download's sweep takes it.
    let staging = match Staging::create(&parent_dir, DOWNLOAD_PREFIX, 0o700) {
        Ok(t) => t,
        Err(e) => {
            return fail(Error::runtime(format!(
                "cannot write in {}: {}",
                parent_dir.display(),
                io_reason(&e)
            )))
        }
    };
    let tmp = staging.path().to_path_buf();
    let keep_free = if opts.max_bytes.is_some() {
        0
    } else {
        KEEP_FREE
    };
    let r = (|| -> Result<Unpacked> {
        let unpack_error = |e: UnpackError| {
            match e {
            UnpackError::Stopped(s) => stop_error(id, s, &target),
            UnpackError::LowSpace { available, .. } => Error::runtime(format!(
                "Download from sandbox '{id}' stopped before {} had less than {KEEP_FREE_TEXT} free ({} available); nothing was written",
                parent_dir.display(),
                crate::core::units::format_size(available)
            ))
            .with_recovery(format!(
                "Free some space, or pass --max-bytes to set the limit yourself (it lifts the {KEEP_FREE_TEXT} floor)."
            )),
            UnpackError::Malformed(m) => Error::runtime(format!(
                "Download from sandbox '{id}' failed: its tar stream is unreadable ({m}); nothing was written"
            )),
            UnpackError::Io(e) => Error::runtime(format!(
                "Writing {} failed: {}",
                target.display(),
                io_reason(&e)
            )),
        }
        };
        let unpacked = match unpack(&mut out, &tmp, UnpackOptions { owner, keep_free }) {
            Ok(u) => u,
            Err(UnpackError::Malformed(m)) => {
                // A stream cut short is most often the guest side failing: give ssh a
                // moment to exit on its own and say why.
                let status = wait_child(&mut ssh, &stop, Instant::now() + Duration::from_secs(2));
                let _ = ssh.kill_on_error();
                let err = ssh_err_text(&ssh_err);
                return Err(match status.ok().and_then(|s| s.code()) {
                    Some(guest::SSH_FAILED) => guest::unreachable(id, err.as_bytes()),
                    Some(c) if c != 0 => Error::runtime(format!(
                        "Download from sandbox '{id}' failed (exit {c}): {}",
                        first_line(&err)
                    )),
                    _ => unpack_error(UnpackError::Malformed(m)),
                });
            }
            Err(e) => return Err(unpack_error(e)),
        };
        out.get_mut().end_within(CLOSE_WITHIN);
        drain_padding(&mut out, 1 << 20).map_err(&unpack_error)?;
        let status = wait_child(&mut ssh, &stop, Instant::now() + CLOSE_WITHIN)
            .map_err(|s| stop_error(id, s, &target))?;
        match status.code() {
            Some(0) => {}
            Some(guest::SSH_FAILED) => {
                return Err(guest::unreachable(id, ssh_err_text(&ssh_err).as_bytes()))
            }
            c => {
                return Err(Error::runtime(format!(
                    "Download from sandbox '{id}' failed (exit {}): {}",
                    c.map_or("-".into(), |c| c.to_string()),
                    first_line(&ssh_err_text(&ssh_err))
                )))
            }
        }
        let place = |e: std::io::Error| {
            Error::runtime(format!(
                "cannot write {}: {}",
                target.display(),
                io_reason(&e)
            ))
        };
        if is_dir {
            rename_noreplace(&tmp, &target).map_err(place)?;
            // The folder kept 0700 until now; the guest's mode (masked) is set in place.
            let _ = finish_root(&target, unpacked.root_mode, unpacked.root_mtime);
        } else {
            let mut entries = std::fs::read_dir(&tmp)
                .map_err(place)?
                .flatten()
                .collect::<Vec<_>>();
            let one = match (entries.pop(), entries.is_empty()) {
                (Some(e), true) if e.file_type().is_ok_and(|t| t.is_file()) => e.path(),
                _ => {
                    return Err(Error::runtime(format!(
                        "Download from sandbox '{id}' sent something other than one file"
                    )))
                }
            };
            replace_with_generated(&one, &target).map_err(place)?;
        }
        Ok(unpacked)
    })();
    if r.is_err() {
        let _ = ssh.kill_on_error();
    }
    if r.is_err() || !is_dir {
        // Through the folder as made: under sudo it is the user's, who may rename it.
        let _ = staging.remove(&ours);
    }
    // A signal that arrived while the result was being placed still ends the command
    // (after the download is complete: nothing half written).
    let unpacked = r?;
    let mut skipped: Vec<SkippedEntry> = unpacked
        .skipped
        .iter()
        .map(|s| SkippedEntry {
            path: shown_entry(&s.name),
            kind: s.kind,
            reason: s.reason,
        })
        .collect();
    if unpacked.more_skipped > 0 {
        skipped.push(SkippedEntry {
            path: format!("… {} more", unpacked.more_skipped),
            kind: "entries",
            reason: "not listed one by one",
        });
    }
    Ok(Transfer {
        vm_id: VmId::known(id),
        local_path: target.display().to_string(),
        guest_path: guest_path.to_string(),
        kind: if is_dir { "directory" } else { "file" },
        bytes: unpacked.bytes,
        skipped,
    })
}

/// A skipped entry's name as the guest sent it, without the leading `./`.
fn shown_entry(name: &[u8]) -> String {
    let mut s = String::from_utf8_lossy(name).into_owned();
    while let Some(rest) = s.strip_prefix("./") {
        s = rest.to_string();
    }
    s
}

/// The error for a download the reader stopped.
fn stop_error(id: &str, s: Stop, target: &Path) -> Error {
    match s {
        Stop::Signal(sig) => Error::new(
            ErrorCode::Interrupted,
            format!(
                "Download from sandbox '{id}' interrupted by {}; nothing was written to {}",
                crate::sys::signals::name(sig),
                target.display()
            ),
        ),
        Stop::Cancelled => cancelled(format!(
            "Download from sandbox '{id}' cancelled; nothing was written to {}",
            target.display()
        )),
        Stop::TooLong(max) => Error::runtime(format!(
            "Download from sandbox '{id}' stopped: the guest sent more than --max-bytes {max} bytes; nothing was written to {}",
            target.display()
        )),
        Stop::TimedOut => Error::runtime(format!(
            "Download from sandbox '{id}' failed: the guest kept its side open {} s after its archive ended; nothing was written to {}",
            CLOSE_WITHIN.as_secs(),
            target.display()
        )),
    }
}

/// Wait for our ssh child to exit, asking `stop` every 50 ms; past `deadline` it is a
/// [`Stop::TimedOut`].
fn wait_child(
    child: &mut Child,
    stop: &dyn Fn() -> Option<Stop>,
    deadline: Instant,
) -> std::result::Result<std::process::ExitStatus, Stop> {
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Ok(s);
        }
        if let Some(s) = stop() {
            return Err(s);
        }
        if Instant::now() >= deadline {
            return Err(Stop::TimedOut);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What ssh printed on stderr, once it has exited (empty if the reader is still busy).
fn ssh_err_text(h: &StderrReader) -> String {
    h.text()
}

trait KillOnError {
    fn kill_on_error(&mut self) -> std::io::Result<()>;
}

impl KillOnError for Child {
    /// Our own ssh child, stopped when the local side refuses the transfer.
    fn kill_on_error(&mut self) -> std::io::Result<()> {
        let r = self.kill();
        let _ = self.wait();
        r
    }
}

/// The entries of directory `dir` whose names start with `word` (`.`-names only when the
/// word starts with `.`), each with whether it is a directory, sorted: the transfer form's
/// path completion. It only reads the directory: an entry's type is the directory's own
/// record of it (a symbolic link is not followed, and counts as no directory), and no
/// entry is opened.
pub fn list_dir(dir: &Path, word: &str) -> Result<Vec<(String, bool)>, String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Err(format!("cannot list {}", dir.display()));
    };
    let mut found: Vec<(String, bool)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let is_dir = e.file_type().ok()?.is_dir();
            (name.starts_with(word) && (!name.starts_with('.') || word.starts_with('.')))
                .then_some((name, is_dir))
        })
        .collect();
    found.sort();
    Ok(found)
}

mod upload;
pub use upload::upload;
#[cfg(test)]
use upload::{pump, settle_upload};

#[cfg(test)]
mod tests;
