//! What a start writes under predictable names, made safe before anything is created: the
//! console log, the isolated disk and the control socket path (a symbolic link is refused,
//! never followed).

use std::path::{Path, PathBuf};

use super::Ctx;
use crate::core::error::Result;
pub(crate) use crate::core::error::{invalid_id, path_err};
use crate::core::images::Vmm;
use crate::sys::open;

/// The control socket path of a VM on this VMM.
fn control_socket(ctx: &Ctx, id: &str, vmm: Vmm) -> Result<PathBuf> {
    match vmm {
        Vmm::Qemu => ctx.paths.qmp_socket(id),
        Vmm::Firecracker => ctx.paths.firecracker_socket(id),
    }
    .ok_or_else(|| invalid_id(id))
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
