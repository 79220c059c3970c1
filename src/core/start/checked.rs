//! The paths a VM's stored configuration names, checked before a VMM is given them.
//!
//! A `vms.config` (or a snapshot's `vm_config`) comes from the state DB — written by this
//! smolvm, by SmolVM's Python CLI, or by anyone who could edit the file — and the VMM runs
//! as root: the rootfs is opened read-write, workspace folders are shared with the guest.
//! So a restart or a restore boots only what this module accepts, and refuses anything else
//! with a message that names the value, before anything is changed:
//! - `rootfs_path` must be the VM's own disk, the name smolvm generates for it
//!   (`<data dir>/disks/<id>.ext4`), and a regular file (a symbolic link is not followed);
//! - `kernel_path` must be an absolute path without `.`/`..` components naming a regular
//!   file (it is only read);
//! - `mounts` must parse, with absolute, already-resolved host folders (no symbolic link in
//!   them now either) that are directories, guest paths and tags as `--mount` makes them.

use std::path::{Component, Path, PathBuf};

use super::Ctx;
use crate::core::error::{io_reason, Error, Result};
use crate::core::presets::mounts::{self, Mount};
use crate::sys::open;
use crate::sys::state::VmConfig;

/// What a boot of a stored VM may hand to its VMM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckedConfig {
    pub kernel: PathBuf,
    pub rootfs: PathBuf,
    pub mounts: Vec<Mount>,
}

/// Whose stored configuration is checked: a sandbox row, or a snapshot about to become
/// one (named in the refusal and its way out).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Whose<'a> {
    Sandbox(&'a str),
    Snapshot(&'a str),
}

impl Whose<'_> {
    fn refuse(self, what: &str, detail: String) -> Error {
        let (name, recovery) = match self {
            Whose::Sandbox(id) => (
                format!("Sandbox '{id}'"),
                format!("Delete it ('smolvm sandbox delete {id}') and create a new one."),
            ),
            Whose::Snapshot(s) => (
                format!("Snapshot '{s}'"),
                format!("Delete it ('smolvm sandbox snapshot delete {s}')."),
            ),
        };
        Error::runtime(format!(
            "{name} has an unusable {what} in its stored configuration: {detail}; nothing was started"
        ))
        .with_recovery(recovery)
    }
}

/// Check the configuration of VM `id` (its row's `config`) against the rules above.
pub(crate) fn check(ctx: &Ctx, id: &str, config: &VmConfig) -> Result<CheckedConfig> {
    with_disk(ctx, id, config, check_disk(ctx, id, config)?)
}

/// The disk alone, for a VMM that needs nothing else (a Firecracker loading a full
/// snapshot): the kernel is left empty (not handed over), no mounts.
pub(crate) fn check_disk_only(ctx: &Ctx, id: &str, config: &VmConfig) -> Result<CheckedConfig> {
    Ok(CheckedConfig {
        kernel: PathBuf::new(),
        rootfs: check_disk(ctx, id, config)?,
        mounts: Vec::new(),
    })
}

/// [`check`] for a VM whose disk is not in place yet (a clone's, still being copied under
/// a temporary name): the disk's name is checked, not the file.
pub(crate) fn check_disk_to_come(ctx: &Ctx, id: &str, config: &VmConfig) -> Result<CheckedConfig> {
    with_disk(ctx, id, config, own_disk(ctx, id, config)?)
}

/// The checked kernel and mounts of `config`, with its `rootfs` checked already.
fn with_disk(ctx: &Ctx, id: &str, config: &VmConfig, rootfs: PathBuf) -> Result<CheckedConfig> {
    let (kernel, mounts) = check_kernel_and_mounts(ctx, Whose::Sandbox(id), config)?;
    Ok(CheckedConfig {
        kernel,
        rootfs,
        mounts,
    })
}

fn check_disk(ctx: &Ctx, id: &str, config: &VmConfig) -> Result<PathBuf> {
    let rootfs = own_disk(ctx, id, config)?;
    open::regular(&rootfs).map_err(|e| {
        Whose::Sandbox(id).refuse("disk", format!("{}: {}", rootfs.display(), io_reason(&e)))
    })?;
    Ok(rootfs)
}

/// The disk the config names, which must be the one smolvm names for `id`.
fn own_disk(ctx: &Ctx, id: &str, config: &VmConfig) -> Result<PathBuf> {
    let whose = Whose::Sandbox(id);
    // The disk: only the one smolvm names for this id.
    let own = ctx.disk_path(id)?;
    let rootfs = match config.rootfs_path.as_deref() {
        None => return Err(whose.refuse("disk", "no rootfs_path".into())),
        Some(p) if p == own => own,
        Some(p) => {
            return Err(whose.refuse(
                "disk",
                format!(
                    "{} (disk_mode {}) is not its own disk {}",
                    p.display(),
                    config.disk_mode(),
                    own.display()
                ),
            ));
        }
    };
    Ok(rootfs)
}

/// The kernel and the workspace mounts of a stored configuration (a restore checks these
/// before it replaces anything; its disk is made afterwards).
pub(crate) fn check_kernel_and_mounts(
    ctx: &Ctx,
    whose: Whose<'_>,
    config: &VmConfig,
) -> Result<(PathBuf, Vec<Mount>)> {
    // The kernel: read only, but still a plain file named plainly.
    let kernel = match config.kernel_path.as_deref() {
        None => return Err(whose.refuse("kernel", "no kernel_path".into())),
        Some(p) if p.as_os_str().is_empty() => {
            return Err(whose.refuse("kernel", "no kernel_path".into()))
        }
        Some(p) => p.to_path_buf(),
    };
    if !plain_absolute(&kernel) {
        return Err(whose.refuse(
            "kernel",
            format!(
                "{} is not an absolute path without '.' or '..'",
                kernel.display()
            ),
        ));
    }
    open::regular(&kernel)
        .map_err(|e| whose.refuse("kernel", format!("{}: {}", kernel.display(), io_reason(&e))))?;
    let mounts = checked_mounts(whose, config)?;
    // The mount rules hold for a stored configuration too (unless it was made with
    // --unsafe-mount).
    mounts::check_protected(&mounts, &super::protected_folders(ctx))
        .map_err(|e| whose.refuse("mount", e.message))?;
    Ok((kernel, mounts))
}

/// `/a/b`, never `a/b`, `/a/../b` or `/a/./b`.
fn plain_absolute(p: &Path) -> bool {
    p.is_absolute()
        && p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
        && !p.as_os_str().as_encoded_bytes().contains(&b'\0')
}

fn checked_mounts(whose: Whose<'_>, config: &VmConfig) -> Result<Vec<Mount>> {
    let Some(raw) = config.extras.mounts.as_ref().filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let kept: Vec<Mount> = serde_json::from_value(raw.clone())
        .map_err(|e| whose.refuse("mounts", format!("not a list of mounts ({e})")))?;
    if !kept.iter().all(mounts::is_ours) {
        return Err(whose.refuse(
            "mounts",
            "a guest path or tag that --mount never makes".into(),
        ));
    }
    for m in &kept {
        let host = &m.host_path;
        // Resolved when it was given; a symbolic link (or `..`) in it now is not followed.
        let real = std::fs::canonicalize(host)
            .map_err(|e| whose.refuse("mount", format!("{}: {}", host.display(), io_reason(&e))))?;
        if !plain_absolute(host) || real != *host {
            return Err(whose.refuse(
                "mount",
                format!(
                    "{} is not a resolved path (it leads to {})",
                    host.display(),
                    real.display()
                ),
            ));
        }
        if !real.is_dir() {
            return Err(whose.refuse("mount", format!("{} is not a directory", host.display())));
        }
    }
    Ok(kept)
}
