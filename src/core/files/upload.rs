//! `sandbox file upload`: `tar -cf - … | ssh … tar -xf -`, the stream pumped through this
//! process (which counts it for the progress bar and watches it for a stop), into a
//! private temporary folder in the guest that the guest's script moves into place and
//! syncs.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use super::{
    cancelled, check_guest_path, content_size, first_line, not_running_first, spawn, stderr_of,
    wait_child, FileProgress, Stops, Transfer, IS_DIR, NOT_DIR, NO_PARENT,
};
use crate::core::context::Ctx;
use crate::core::error::{io_reason, Error, Result};
use crate::core::guest;
use crate::core::progress::Progress;
use crate::core::ssh::SshLogin;
use crate::core::vm::VmId;
use crate::sys::child::{Child, Io};
use crate::sys::unpack::Stop;

/// Upload: `$1` destination, `$2` 1 to create missing parents, `$3` the one entry's name
/// for a file (empty for a directory, whose contents come as `.`).
const UPLOAD_SCRIPT: &str = r#"dst=$1; mk=$2; name=$3
case "$dst" in */) [ -n "$name" ] && exit 21;; esac
parent=$(dirname -- "$dst")
if [ -n "$name" ]; then
  [ -d "$dst" ] && exit 21
  if [ ! -d "$parent" ]; then [ "$mk" = 1 ] || exit 23; mkdir -p -- "$parent" || exit 1; fi
  t=$(mktemp -d "$parent/.smolvm-upload.XXXXXX") || exit 1
  trap 'rm -rf -- "$t"' EXIT
  tar -xpf - --no-same-owner -C "$t" || exit 1
  mv -f -- "$t/$name" "$dst" || exit 1
  sync -- "$dst" 2>/dev/null || sync
else
  [ -e "$dst" ] && [ ! -d "$dst" ] && exit 22
  if [ ! -d "$dst" ]; then
    if [ ! -d "$parent" ]; then [ "$mk" = 1 ] || exit 23; fi
    mkdir -p -- "$dst" || exit 1
  fi
  tar -xpf - --no-same-owner -C "$dst" || exit 1
  sync -f -- "$dst" 2>/dev/null || sync
fi"#;

/// Copy `from` to `to`, reporting bytes; stops quietly when the reader is done or the
/// writer has gone (its exit status tells why). `false` when it stopped because the job
/// was stopped (`halted`: checked before each chunk, and by a watched writer while it
/// waits).
pub(super) fn pump(
    mut from: impl Read,
    mut to: impl Write,
    total: u64,
    progress: &Progress<FileProgress>,
    halted: &dyn Fn() -> bool,
) -> bool {
    let mut buf = vec![0u8; 256 * 1024];
    let mut done = 0u64;
    progress.emit(FileProgress { done, total });
    loop {
        if halted() {
            return false;
        }
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        match to.write_all(&buf[..n]) {
            Err(e) if crate::sys::child::WatchedStdin::is_stop(&e) => return false,
            Err(_) => break,
            Ok(()) => {}
        }
        done += n as u64;
        progress.emit(FileProgress {
            done: done.min(total),
            total,
        });
    }
    // A stream cut short by the stop (a terminal's Ctrl-C ends the host's tar too) was not
    // sent; one that came whole (its contents at least) was.
    let _ = to.flush();
    done >= total || !halted()
}

/// The upload's ssh waited for once the whole stream is sent (`pumped`), until the job is
/// stopped (`stop`: its cancel, a signal): a guest may take all of it and never end its
/// script. `Err` when it was stopped, before (`stopped`) or now: both children (our own)
/// are then killed and reaped, and the guest's script sees its stream cut (a file's
/// temporary folder goes with it; a directory keeps what was unpacked so far).
pub(super) fn settle_upload(
    ssh: &mut Child,
    tar: &mut Child,
    stopped: Option<Stop>,
    stop: &dyn Fn() -> Option<Stop>,
) -> std::result::Result<std::process::ExitStatus, Stop> {
    let never = Instant::now() + Duration::from_secs(100 * 365 * 86_400);
    let status = match stopped {
        Some(s) => Err(s),
        None => match wait_child(ssh, stop, never) {
            // A terminal's Ctrl-C reaches ssh and tar too (one process group): a session
            // that ended badly once a stop was recorded ended by it (not "cannot reach").
            Ok(st) if !st.success() => stop().map_or(Ok(st), Err),
            r => r,
        },
    };
    if status.is_err() {
        let _ = ssh.kill();
        let _ = tar.kill();
        let _ = ssh.wait();
        let _ = tar.wait();
    }
    status
}

/// What stopped an upload, for its error: `cancelled` or `interrupted by SIGINT`.
fn upload_stop(s: Stop) -> String {
    match s {
        Stop::Signal(sig) => format!("interrupted by {}", crate::sys::signals::name(sig)),
        _ => "cancelled".into(),
    }
}

/// Copy `local` (a file or a directory) to `guest` in sandbox `id`. Missing parents of
/// `guest` are created unless `create_dirs` is false.
pub fn upload(
    ctx: &Ctx,
    id: &VmId,
    login: &SshLogin,
    local: &Path,
    guest_path: &str,
    create_dirs: bool,
    progress: &Progress<FileProgress>,
) -> Result<Transfer> {
    check_guest_path(guest_path)?;
    if progress.cancelled() {
        return Err(cancelled(format!(
            "Upload to sandbox '{id}' cancelled; nothing was copied"
        )));
    }
    // The path the user named is followed (an upload reads); nothing below it is.
    let meta = std::fs::metadata(local).map_err(|e| {
        Error::runtime(format!(
            "Local path not found: {} ({})",
            local.display(),
            io_reason(&e)
        ))
    })?;
    let is_dir = meta.is_dir();
    if !is_dir && !meta.is_file() {
        return Err(Error::runtime(format!(
            "Local path is neither a file nor a directory: {}",
            local.display()
        )));
    }
    let src = std::fs::canonicalize(local).map_err(|e| {
        Error::runtime(format!(
            "cannot resolve {}: {}",
            local.display(),
            io_reason(&e)
        ))
    })?;
    not_running_first(ctx, id, login)?;
    // A Ctrl-C (or SIGTERM, SIGHUP) stops it as the dashboard's cancel does: both children
    // stopped and reaped, never left holding a guest that does not read.
    let stops = Stops::watch(progress)?;
    let stop = || stops.now();
    let total = content_size(&src);
    let (dir, entry, name) = if is_dir {
        (src.clone(), ".".to_string(), String::new())
    } else {
        let name = src
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        (
            src.parent().unwrap_or(Path::new("/")).to_path_buf(),
            format!("./{name}"),
            name,
        )
    };
    if name.contains('/') || (!is_dir && name.is_empty()) {
        return Err(Error::runtime(format!(
            "cannot upload {}: unusable file name",
            local.display()
        )));
    }
    let tar_argv: [&std::ffi::OsStr; 6] = [
        "tar".as_ref(),
        "-C".as_ref(),
        dir.as_os_str(),
        "-cf".as_ref(),
        "-".as_ref(),
        "--".as_ref(),
    ];
    let mut tar_argv = tar_argv.to_vec();
    tar_argv.push(entry.as_ref());
    let mut tar = spawn(&tar_argv, Io::Null, Io::Piped, "tar")?;
    let tar_err = stderr_of(&mut tar);
    let words = guest::sh(
        UPLOAD_SCRIPT,
        &[guest_path, if create_dirs { "1" } else { "0" }, &name],
    );
    let mut ssh = match guest::argv(ctx, id, login, &words) {
        Ok(argv) => spawn(&argv, Io::Piped, Io::Null, "ssh"),
        Err(e) => Err(e),
    }
    .inspect_err(|_| {
        // Its stream's reader goes first: a file over a pipe's size would block it for good.
        drop(tar.take_stdout());
        let _ = tar.wait();
    })?;
    let ssh_err = stderr_of(&mut ssh);
    let tar_out = tar.take_stdout().expect("piped");
    // A guest that stops taking the stream must not hold a stop: the write is watched.
    let halted = || stop().is_some();
    let ssh_in =
        match crate::sys::child::WatchedStdin::new(ssh.take_stdin().expect("piped"), &halted) {
            Ok(w) => w,
            Err(e) => {
                // Nothing was sent: both children are stopped as for a cancel.
                let _ = settle_upload(&mut ssh, &mut tar, Some(Stop::Cancelled), &stop);
                return Err(Error::runtime(format!(
                    "cannot watch ssh's input: {}",
                    io_reason(&e)
                )));
            }
        };
    let pumped = pump(tar_out, ssh_in, total, progress, &halted);
    let stopped = (!pumped).then(|| stop().unwrap_or(Stop::Cancelled));
    let ssh_status = match settle_upload(&mut ssh, &mut tar, stopped, &stop) {
        Ok(st) => st,
        Err(s) => {
            let how = upload_stop(s);
            return Err(cancelled(if pumped {
                // All was sent: the guest's script may have put it in place before it hung.
                format!(
                    "Upload to sandbox '{id}' {how} while the guest was finishing; {guest_path} may have been written"
                )
            } else if is_dir {
                format!(
                    "Upload to sandbox '{id}' {how}; {guest_path} may hold part of the directory"
                )
            } else {
                format!("Upload to sandbox '{id}' {how}; {guest_path} was not written")
            }));
        }
    };
    let tar_status = tar.wait().map_err(|e| Error::runtime(e.to_string()))?;
    let (ssh_err, tar_err) = (ssh_err.text(), tar_err.text());
    match ssh_status.code() {
        Some(0) => {}
        Some(guest::SSH_FAILED) => return Err(guest::unreachable(id, ssh_err.as_bytes())),
        Some(IS_DIR) => {
            return Err(Error::runtime(format!(
                "Guest path is a directory: {guest_path} (give the file's full path)"
            )))
        }
        Some(NOT_DIR) => {
            return Err(Error::runtime(format!(
                "Guest path exists and is not a directory: {guest_path}"
            )))
        }
        Some(NO_PARENT) => {
            return Err(Error::runtime(format!(
                "Guest directory does not exist: {} (drop --no-create-dirs to create it)",
                parent_of(guest_path)
            )))
        }
        c => {
            return Err(Error::runtime(format!(
                "Upload to sandbox '{id}' failed (exit {}): {}",
                c.map_or("-".into(), |c| c.to_string()),
                first_line(&ssh_err)
            )))
        }
    }
    if !tar_status.success() {
        return Err(Error::runtime(format!(
            "Reading {} failed: {}",
            local.display(),
            first_line(&tar_err)
        )));
    }
    Ok(Transfer {
        vm_id: VmId::known(id),
        local_path: local.display().to_string(),
        guest_path: guest_path.to_string(),
        kind: if is_dir { "directory" } else { "file" },
        bytes: total,
        skipped: Vec::new(),
    })
}

fn parent_of(p: &str) -> String {
    match Path::new(p).parent() {
        Some(d) if !d.as_os_str().is_empty() => d.display().to_string(),
        _ => ".".into(),
    }
}
