//! `smolvm sandbox prune`: files left behind by sandboxes that no longer exist, found and
//! removed as SmolVM 0.0.36 does it (`find_leftover_artifacts`): each disk of the data
//! dir's `disks/` (`<id>.ext4` or `<id>.qcow2`) whose id no row of the state database
//! names, with the files named after it (`<disk>.<anything>`: sidecars, backups, the
//! `.retained` marker), plus `<id>.log` console logs of such ids.
//!
//! What is never touched:
//! - a disk a live process holds open (a VMM started outside this database) and that
//!   sandbox's log, a log a live process holds open, or the files of a sandbox whose lock
//!   an operation holds right now (a create writes the disk before its row);
//! - a disk marked `<disk>.retained` (SmolVM's "keep my disk" on delete), unless
//!   `--include-saved`: listed as kept;
//! - anything whose name is not one smolvm generates for a valid id, anything that is not
//!   a regular file (a symbolic link is neither followed nor removed), anything outside
//!   the data dir. Removal opens the directory and unlinks by name
//!   ([`remove_generated_file`]).
//!
//! A database row that cannot be read but names a valid id still counts as live.

use std::path::{Path, PathBuf};

use super::context::Ctx;
use super::error::{Error, Result};
use super::lock::VmLock;
use super::progress::Progress;
use crate::sys::fs::{remove_generated_file, DISKS_DIR};
use crate::sys::process::is_vm_id;
use crate::sys::procfs;

/// SmolVM's marker of a disk kept on purpose.
pub const RETAINED_SUFFIX: &str = ".retained";

/// One leftover file (SmolVM's `LeftoverEntry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    pub vm_id: String,
    pub path: PathBuf,
    /// `disk` or `log`.
    pub kind: &'static str,
    pub size_bytes: u64,
    /// Its disk is marked as kept on purpose.
    pub retained: bool,
}

/// What a prune would remove and keep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeftoverPlan {
    pub candidates: Vec<Leftover>,
    pub kept: Vec<Leftover>,
}

impl LeftoverPlan {
    pub fn bytes(&self) -> u64 {
        self.candidates
            .iter()
            .fold(0u64, |sum, l| sum.saturating_add(l.size_bytes))
    }
}

/// What a prune did (SmolVM's `PruneResult`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeftoverReport {
    pub removed: Vec<Leftover>,
    pub kept: Vec<Leftover>,
    pub failed: Vec<(Leftover, String)>,
    pub dry_run: bool,
    /// Stopped by its cancel before the rest of the plan (those files stay, listed in
    /// none of the lists).
    pub cancelled: bool,
}

/// What [`remove_with`] did with each file of the plan, as it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeftoverEvent {
    Removed(Leftover),
    /// Its sandbox came back since the plan (a row, a lock): it stays.
    Kept(Leftover),
    Failed(Leftover, String),
}

impl LeftoverReport {
    pub fn freed_bytes(&self) -> u64 {
        self.removed.iter().map(|l| l.size_bytes).sum()
    }
}

fn size(path: &Path) -> u64 {
    std::fs::symlink_metadata(path)
        .map(|m| if m.is_file() { m.len() } else { 0 })
        .unwrap_or(0)
}

fn is_regular(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file())
}

/// The ids the state database names: its rows', and those of rows it cannot read but
/// that name a valid id.
fn live_ids(ctx: &Ctx) -> Result<Vec<String>> {
    let rows = ctx
        .store
        .list_vms()
        .map_err(|e| Error::runtime(e.to_string()))?;
    let mut live: Vec<String> = rows.vms.into_iter().map(|v| v.id).collect();
    live.extend(rows.skipped.into_iter().filter_map(|s| s.vm_id));
    Ok(live)
}

/// Find the leftovers of the context's data dir. Changes nothing.
pub fn plan(ctx: &Ctx, include_saved: bool) -> Result<LeftoverPlan> {
    let live = live_ids(ctx)?;
    let data = &ctx.data_dir;
    let disks_dir = data.join(DISKS_DIR);

    let mut names: Vec<String> = std::fs::read_dir(&disks_dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let disk_id = |name: &str| -> Option<String> {
        let (stem, suffix) = name.split_once('.')?;
        (matches!(suffix, "ext4" | "qcow2") && is_vm_id(stem)).then(|| stem.to_string())
    };
    let disks: Vec<(String, PathBuf)> = names
        .iter()
        .filter_map(|n| disk_id(n).map(|id| (id, disks_dir.join(n))))
        .filter(|(id, p)| !live.contains(id) && is_regular(p))
        .filter(|(id, _)| !VmLock::is_held(data, id))
        .collect();
    let held = procfs::holders_under(
        &disks
            .iter()
            .map(|(_, p)| p.canonicalize().unwrap_or_else(|_| p.clone()))
            .collect::<Vec<_>>(),
    );

    let mut all: Vec<Leftover> = Vec::new();
    let mut seen_logs: Vec<PathBuf> = Vec::new();
    // The ids whose disk a live process holds: their logs stay too.
    let mut in_use: Vec<String> = Vec::new();
    for ((id, disk), holder) in disks.iter().zip(held) {
        if let Some(h) = holder {
            tracing::debug!(disk = %disk.display(), pid = h.pid, "leftover disk in use; skipped");
            in_use.push(id.clone());
            continue;
        }
        let disk_name = disk
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let retained = is_regular(&disks_dir.join(format!("{disk_name}{RETAINED_SUFFIX}")));
        let companions = names
            .iter()
            .filter(|n| {
                n.strip_prefix(disk_name)
                    .is_some_and(|rest| rest.len() > 1 && rest.starts_with('.'))
            })
            .map(|n| disks_dir.join(n))
            .filter(|p| is_regular(p));
        for path in std::iter::once(disk.clone()).chain(companions) {
            all.push(Leftover {
                vm_id: id.clone(),
                size_bytes: size(&path),
                path,
                kind: "disk",
                retained,
            });
        }
        let log = data.join(format!("{id}.log"));
        if is_regular(&log) {
            seen_logs.push(log.clone());
            all.push(Leftover {
                vm_id: id.clone(),
                size_bytes: size(&log),
                path: log,
                kind: "log",
                retained,
            });
        }
    }
    let mut logs: Vec<(String, PathBuf)> = std::fs::read_dir(data)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_str()?.to_string();
                    let id = name.strip_suffix(".log")?;
                    is_vm_id(id).then(|| (id.to_string(), e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    logs.sort();
    logs.retain(|(id, log)| {
        !(live.contains(id)
            || in_use.contains(id)
            || seen_logs.contains(log)
            || !is_regular(log)
            || VmLock::is_held(data, id))
    });
    // A log a live process still writes (a VMM this database does not know) stays.
    let held = procfs::holders_under(
        &logs
            .iter()
            .map(|(_, l)| l.canonicalize().unwrap_or_else(|_| l.clone()))
            .collect::<Vec<_>>(),
    );
    for ((id, log), holder) in logs.into_iter().zip(held) {
        if holder.is_some() {
            continue;
        }
        all.push(Leftover {
            vm_id: id,
            size_bytes: size(&log),
            path: log,
            kind: "log",
            retained: false,
        });
    }
    all.sort_by(|a, b| (&a.vm_id, &a.path).cmp(&(&b.vm_id, &b.path)));
    let (candidates, kept) = all.into_iter().partition(|l| include_saved || !l.retained);
    Ok(LeftoverPlan { candidates, kept })
}

/// Remove what `plan` found, one file at a time (a failure does not stop the others).
/// Each is checked again first: a file whose sandbox came back (a row, a lock) stays.
pub fn remove(ctx: &Ctx, plan: LeftoverPlan) -> Result<LeftoverReport> {
    remove_with(ctx, plan, &Progress::none())
}

/// [`remove`], each file said through `progress` as it goes; its cancel stops before the
/// next file (the confirmed plan is what goes, and only as far as it got).
pub fn remove_with(
    ctx: &Ctx,
    plan: LeftoverPlan,
    progress: &Progress<LeftoverEvent>,
) -> Result<LeftoverReport> {
    let live = live_ids(ctx)?;
    let mut report = LeftoverReport {
        kept: plan.kept,
        ..Default::default()
    };
    for l in plan.candidates {
        if progress.cancelled() {
            report.cancelled = true;
            break;
        }
        let back = live.contains(&l.vm_id) || VmLock::is_held(&ctx.data_dir, &l.vm_id);
        if back {
            progress.emit(LeftoverEvent::Kept(l.clone()));
            report.kept.push(l);
            continue;
        }
        match remove_generated_file(&l.path) {
            Ok(true) => {
                progress.emit(LeftoverEvent::Removed(l.clone()));
                report.removed.push(l);
            }
            Ok(false) => {}
            Err(e) => {
                let why = crate::sys::io_reason(&e);
                progress.emit(LeftoverEvent::Failed(l.clone(), why.clone()));
                report.failed.push((l, why));
            }
        }
    }
    Ok(report)
}
