//! `sandbox file upload|download`: files and directories between the host and a running
//! sandbox, as one tar stream over the VM's SSH (`tar -cf - … | ssh … tar -xf -`), streamed
//! through this process (which counts the bytes for the progress bar) with no temporary
//! copy. Permissions are kept; owners are not (files belong to whoever extracts them).
//!
//! The destination names the result: a file goes to exactly that path (never into a
//! directory of that name: that is an error), a directory is created there, or merged into
//! the one in the guest, or — on the host — put inside an existing directory under its own
//! name. Both sides write through a private temporary directory beside the destination and
//! move the result into place, so a failed transfer leaves nothing half written. An upload
//! is synced to the guest's disk before it is reported done (a VM killed right after keeps
//! it).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde::Serialize;

use super::error::{io_reason, Error, Result};
use super::guest;
use super::lifecycle::SshLogin;
use super::progress::Progress;
use super::start::Ctx;
use crate::sys::fs::{remove_entry, replace_with_generated};
use crate::sys::open::{create_unique_dir, rename_noreplace};

/// Bytes moved so far of about `total` (file contents; the tar stream is a little more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileProgress {
    pub done: u64,
    pub total: u64,
}

/// What a transfer did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transfer {
    pub vm_id: String,
    pub local_path: String,
    pub guest_path: String,
    /// `file` or `directory`.
    pub kind: &'static str,
    /// Bytes of file content moved.
    pub bytes: u64,
}

/// Exit codes of the guest-side scripts (below ssh's 255 and tar's 1/2).
const MISSING: i32 = 20;
const IS_DIR: i32 = 21;
const NOT_DIR: i32 = 22;
const NO_PARENT: i32 = 23;

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

fn not_running_first(ctx: &Ctx, id: &str, login: &SshLogin) -> Result<()> {
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

/// Copy `from` to `to`, reporting bytes; stops quietly when the reader is done or the
/// writer has gone (its exit status tells why).
fn pump(
    mut from: impl Read,
    mut to: impl Write,
    total: u64,
    progress: &Progress<FileProgress>,
) -> u64 {
    let mut buf = vec![0u8; 256 * 1024];
    let mut done = 0u64;
    progress.emit(FileProgress { done, total });
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        done += n as u64;
        progress.emit(FileProgress {
            done: done.min(total),
            total,
        });
    }
    let _ = to.flush();
    done
}

fn spawn(cmd: &mut Command, what: &str) -> Result<Child> {
    cmd.stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::runtime(format!("cannot run {what}: {e}")))
}

fn stderr_of(child: &mut Child) -> std::thread::JoinHandle<String> {
    let mut err = child.stderr.take();
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    })
}

fn first_line(s: &str) -> &str {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

/// Copy `local` (a file or a directory) to `guest` in sandbox `id`. Missing parents of
/// `guest` are created unless `create_dirs` is false.
pub fn upload(
    ctx: &Ctx,
    id: &str,
    login: &SshLogin,
    local: &Path,
    guest_path: &str,
    create_dirs: bool,
    progress: &Progress<FileProgress>,
) -> Result<Transfer> {
    check_guest_path(guest_path)?;
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
    let mut tar = spawn(
        Command::new("tar")
            .arg("-C")
            .arg(&dir)
            .args(["-cf", "-", "--"])
            .arg(&entry)
            .stdin(Stdio::null())
            .stdout(Stdio::piped()),
        "tar",
    )?;
    let tar_err = stderr_of(&mut tar);
    let words = guest::sh(
        UPLOAD_SCRIPT,
        &[guest_path, if create_dirs { "1" } else { "0" }, &name],
    );
    let mut ssh = match guest::command(ctx, id, login, &words) {
        Ok(mut c) => spawn(c.stdin(Stdio::piped()).stdout(Stdio::null()), "ssh"),
        Err(e) => Err(e),
    }
    .inspect_err(|_| {
        let _ = tar.wait();
    })?;
    let ssh_err = stderr_of(&mut ssh);
    let tar_out = tar.stdout.take().expect("piped");
    let ssh_in = ssh.stdin.take().expect("piped");
    pump(tar_out, ssh_in, total, progress);
    let ssh_status = ssh.wait().map_err(|e| Error::runtime(e.to_string()))?;
    let tar_status = tar.wait().map_err(|e| Error::runtime(e.to_string()))?;
    let (ssh_err, tar_err) = (
        ssh_err.join().unwrap_or_default(),
        tar_err.join().unwrap_or_default(),
    );
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
        vm_id: id.to_string(),
        local_path: local.display().to_string(),
        guest_path: guest_path.to_string(),
        kind: if is_dir { "directory" } else { "file" },
        bytes: total,
    })
}

fn parent_of(p: &str) -> String {
    match Path::new(p).parent() {
        Some(d) if !d.as_os_str().is_empty() => d.display().to_string(),
        _ => ".".into(),
    }
}

/// Copy `guest` (a file or a directory) from sandbox `id` to `local`. A file replaces a
/// file at `local` (never a directory: an error); a directory is created at `local`, or put
/// inside it under its own name when `local` is an existing directory. Missing parents of
/// `local` are created unless `create_dirs` is false.
pub fn download(
    ctx: &Ctx,
    id: &str,
    login: &SshLogin,
    guest_path: &str,
    local: &Path,
    create_dirs: bool,
    progress: &Progress<FileProgress>,
) -> Result<Transfer> {
    check_guest_path(guest_path)?;
    not_running_first(ctx, id, login)?;
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
        guest::command(ctx, id, login, &guest::sh(DOWNLOAD_SCRIPT, &[guest_path]))?
            .stdin(Stdio::null())
            .stdout(Stdio::piped()),
        "ssh",
    )?;
    let ssh_err = stderr_of(&mut ssh);
    let mut out = BufReader::with_capacity(256 * 1024, ssh.stdout.take().expect("piped"));
    let mut header = String::new();
    let _ = out.by_ref().take(64).read_line(&mut header);
    let mut fail = |e: Error| -> Result<Transfer> {
        let _ = ssh.kill_on_error();
        Err(e)
    };
    let (is_dir, total) = match header.trim_end().split_once(' ') {
        Some(("d", n)) => (true, n.trim().parse().unwrap_or(0)),
        Some(("f", n)) => (false, n.trim().parse().unwrap_or(0)),
        _ => {
            drop(out);
            let status = ssh.wait().map_err(|e| Error::runtime(e.to_string()))?;
            let err = ssh_err.join().unwrap_or_default();
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
        if !create_dirs {
            return fail(no_parent());
        }
        if let Err(e) = std::fs::create_dir_all(&parent_dir) {
            return fail(Error::runtime(format!(
                "cannot create {}: {}",
                parent_dir.display(),
                io_reason(&e)
            )));
        }
    }
    let tmp = match create_unique_dir(&parent_dir, ".smolvm-download.", 0o700) {
        Ok(t) => t,
        Err(e) => {
            return fail(Error::runtime(format!(
                "cannot write in {}: {}",
                parent_dir.display(),
                io_reason(&e)
            )))
        }
    };
    let cleanup_tmp = |tmp: &Path| {
        if let (Some(p), Some(n)) = (tmp.parent(), tmp.file_name()) {
            let _ = remove_entry(p, n);
        }
    };
    let r = (|| -> Result<()> {
        let mut tar = spawn(
            Command::new("tar")
                .args(["-xpf", "-", "--no-same-owner", "-C"])
                .arg(&tmp)
                .stdin(Stdio::piped())
                .stdout(Stdio::null()),
            "tar",
        )?;
        let tar_err = stderr_of(&mut tar);
        let tar_in = tar.stdin.take().expect("piped");
        pump(&mut out, tar_in, total, progress);
        let tar_status = tar.wait().map_err(|e| Error::runtime(e.to_string()))?;
        let ssh_status = ssh.wait().map_err(|e| Error::runtime(e.to_string()))?;
        let (tar_err, ssh_err) = (
            tar_err.join().unwrap_or_default(),
            ssh_err.join().unwrap_or_default(),
        );
        match ssh_status.code() {
            Some(0) => {}
            Some(guest::SSH_FAILED) => return Err(guest::unreachable(id, ssh_err.as_bytes())),
            c => {
                return Err(Error::runtime(format!(
                    "Download from sandbox '{id}' failed (exit {}): {}",
                    c.map_or("-".into(), |c| c.to_string()),
                    first_line(&ssh_err)
                )))
            }
        }
        if !tar_status.success() {
            return Err(Error::runtime(format!(
                "Writing {} failed: {}",
                target.display(),
                first_line(&tar_err)
            )));
        }
        // No set-id bits from a guest land on this host.
        strip_setid(&tmp);
        let place = |e: std::io::Error| {
            Error::runtime(format!(
                "cannot write {}: {}",
                target.display(),
                io_reason(&e)
            ))
        };
        if is_dir {
            rename_noreplace(&tmp, &target).map_err(place)
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
            replace_with_generated(&one, &target).map_err(place)
        }
    })();
    if r.is_err() || !is_dir {
        cleanup_tmp(&tmp);
    }
    r?;
    Ok(Transfer {
        vm_id: id.to_string(),
        local_path: target.display().to_string(),
        guest_path: guest_path.to_string(),
        kind: if is_dir { "directory" } else { "file" },
        bytes: total,
    })
}

/// Clear set-user-id, set-group-id and sticky bits below `dir` (never through a link).
fn strip_setid(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(m) = std::fs::symlink_metadata(dir) else {
        return;
    };
    if m.file_type().is_symlink() {
        return;
    }
    let mode = m.permissions().mode();
    if mode & 0o7000 != 0 {
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o777));
    }
    if m.is_dir() {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            strip_setid(&e.path());
        }
    }
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
