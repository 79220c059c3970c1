//! What a start writes under predictable names, made safe before anything is created: the
//! console log, the isolated disk and the control socket path (a symbolic link is refused,
//! never followed), and the SSH key pair every sandbox is given.

use std::path::{Path, PathBuf};

use super::{rt, Ctx};
use crate::core::error::{io_reason, Error, Result};
use crate::core::images::Vmm;
use crate::sys::open;

/// `~/.smolvm/keys/id_ed25519` (+ `.pub`), generated with `ssh-keygen` when missing: into a
/// fresh private directory of our own (a name this process generated, mode 0700), then
/// renamed into place, public key last, so a half-made pair is never used. A symbolic link
/// (or anything but a regular file) at either name is refused, never followed. Under
/// `sudo` the folder and the pair it makes are the invoking user's (`sys::sudo`).
pub fn ensure_key(dir: &Path) -> Result<PathBuf> {
    let key = dir.join("id_ed25519");
    let public = dir.join("id_ed25519.pub");
    let kinds = (open::kind(&key), open::kind(&public));
    match kinds {
        (Ok(Some(open::Kind::File)), Ok(Some(open::Kind::File))) => return Ok(key),
        (Ok(k), Ok(p)) => {
            for (path, kind) in [(&key, k), (&public, p)] {
                if let Some(kind) = kind.filter(|k| *k != open::Kind::File) {
                    return Err(path_err("use SSH key", path, &open::refuse(kind)));
                }
            }
        }
        (Err(e), _) => return Err(path_err("read", &key, &e)),
        (_, Err(e)) => return Err(path_err("read", &public, &e)),
    }
    crate::sys::sudo::create_dirs(dir).map_err(|e| path_err("create", dir, &e))?;
    let _ = std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700));
    let tmp_dir = open::create_unique_dir(dir, ".keygen-", 0o700)
        .map_err(|e| path_err("create a directory in", dir, &e))?;
    let r = (|| {
        let tmp = tmp_dir.join("id_ed25519");
        let mut argv: Vec<&std::ffi::OsStr> = [
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "smolvm",
            "-f",
        ]
        .iter()
        .map(std::ffi::OsStr::new)
        .collect();
        argv.push(tmp.as_os_str());
        let out = crate::sys::child::output(&argv).map_err(|e| {
            rt(format!(
                "cannot run ssh-keygen ({}); install openssh-client",
                io_reason(&e)
            ))
        })?;
        if !out.status.is_some_and(|s| s.success()) {
            return Err(rt(format!(
                "ssh-keygen failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        // Renames replace whatever is at the destination name without following it.
        crate::sys::fs::replace_with_generated(&tmp, &key)
            .map_err(|e| path_err("write", &key, &e))?;
        crate::sys::fs::replace_with_generated(&tmp_dir.join("id_ed25519.pub"), &public)
            .map_err(|e| path_err("write", &public, &e))?;
        // Under sudo the pair is the invoking user's (SmolVM's rule), as is its folder.
        crate::sys::sudo::give_file(&key);
        crate::sys::sudo::give_file(&public);
        Ok(())
    })();
    if let Some(name) = tmp_dir.file_name() {
        let _ = crate::sys::fs::remove_entry(dir, name);
    }
    r.map(|_| key)
}

pub(crate) fn path_err(what: &str, p: &Path, e: &std::io::Error) -> Error {
    Error::runtime(format!("cannot {what} {}: {}", p.display(), io_reason(e)))
}

/// The control socket path of a VM on this VMM.
fn control_socket(ctx: &Ctx, id: &str, vmm: Vmm) -> Result<PathBuf> {
    match vmm {
        Vmm::Qemu => ctx.paths.qmp_socket(id),
        Vmm::Firecracker => ctx.paths.firecracker_socket(id),
    }
    .ok_or_else(|| invalid_id(id))
}

/// A sandbox id that cannot name files (a row from a foreign database, say).
pub(crate) fn invalid_id(id: &str) -> Error {
    Error::runtime(format!(
        "Invalid sandbox id '{id}': it cannot name the sandbox's files"
    ))
}

/// Nothing, or a stale socket, at a control socket path (anything else is refused).
fn check_socket_path(socket: &Path) -> Result<()> {
    match open::kind(socket) {
        Ok(None) | Ok(Some(open::Kind::Socket)) => Ok(()),
        Ok(Some(k)) => Err(path_err(
            "use control socket path",
            socket,
            &open::refuse(k),
        )),
        Err(e) => Err(path_err("use control socket path", socket, &e)),
    }
}

/// Before a new sandbox gets a row: its console log may be missing or a regular file (it
/// is emptied at each start), its disk must not exist yet, and its control socket path may
/// hold only a stale socket. Anything else — a symbolic link above all — is refused here,
/// before anything is pulled, created or spawned.
pub(super) fn preflight_new(ctx: &Ctx, id: &str, vmm: Vmm) -> Result<()> {
    let log = ctx.log_path(id)?;
    open::absent_or_regular(&log).map_err(|e| path_err("write", &log, &e))?;
    let disk = ctx.disk_path(id)?;
    open::absent(&disk).map_err(|e| {
        path_err("create disk", &disk, &e).with_recovery(
            "Move it away (or run 'smolvm cleanup' if it is left from a deleted sandbox), or pick another --name.",
        )
    })?;
    check_socket_path(&control_socket(ctx, id, vmm)?)
}

/// What a start writes under predictable names, made safe before the network or the VMM
/// is touched: the disk must be a regular file (never a symbolic link: the VMM opens it),
/// the control socket path free or a stale socket (unlinked), and the console log opened
/// here — `O_NOFOLLOW`, a single-link regular file, emptied — and handed to the VMM as its
/// stdout/stderr, so no VMM ever opens the log path itself. Nothing is changed when
/// something is refused. Returns the open log and the socket path.
pub(crate) fn prepare_files(
    ctx: &Ctx,
    id: &str,
    vmm: Vmm,
    disk: &Path,
) -> Result<(std::fs::File, PathBuf)> {
    open::regular(disk).map_err(|e| path_err("use disk", disk, &e))?;
    let socket = control_socket(ctx, id, vmm)?;
    check_socket_path(&socket)?;
    std::fs::create_dir_all(&ctx.paths.socket_dir)
        .map_err(|e| path_err("create", &ctx.paths.socket_dir, &e))?;
    let log = ctx.log_path(id)?;
    let log_file = open::open_truncated(&log, 0o600).map_err(|e| path_err("write", &log, &e))?;
    open::prepare_socket_path(&socket)
        .map_err(|e| path_err("use control socket path", &socket, &e))?;
    Ok((log_file, socket))
}
