//! `sandbox branch SANDBOX [--count N] [--prefix P] [--snapshot-id ID]`: a running QEMU
//! sandbox branched into N clones in one step — a `--for-clone` snapshot of it (the source
//! pauses for it and runs on: its RAM is written to the template's own file, which it never
//! maps), then N clones of that snapshot, brought up at once (up to
//! [`default_parallel`](super::clone::default_parallel)), each reporting its own progress.
//! The dashboard's "branch" runs this same function.
//!
//! The template snapshot stays and is listed (clones map its RAM file; deleting it under
//! running clones is harmless: their QEMUs hold the file open). A clone that fails is
//! rolled back alone; the clones made are kept and named in the error, and no further
//! clone begins. A cancel stops the clones being made (each rolled back) and begins no
//! other; the error says what was made.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::{create, CloneOptions, ClonedVm, CreateOptions, SnapshotInfo, SnapshotType};
use crate::core::context::Ctx;
use crate::core::error::{Error, ErrorCode, Result};
use crate::core::progress::Progress;
use crate::core::start::{self, StartEvent};
use crate::core::vm::VmId;
use crate::sys::state::VmStatus;

/// How to branch a sandbox.
#[derive(Debug, Clone)]
pub struct BranchOptions {
    pub vm_id: VmId,
    /// Clones to make (at least 1).
    pub count: u32,
    /// Clone ids `<prefix>-1`, `<prefix>-2`, … (ids taken are skipped); default
    /// `<sandbox>-b1`, `<sandbox>-b2`, ….
    pub prefix: Option<String>,
    /// The template snapshot's id (default `snap-<8 hex>`).
    pub snapshot_id: Option<String>,
    pub boot_timeout: Option<Duration>,
}

impl BranchOptions {
    pub fn of(vm_id: VmId, count: u32) -> BranchOptions {
        BranchOptions {
            vm_id,
            count,
            prefix: None,
            snapshot_id: None,
            boot_timeout: None,
        }
    }

    /// The clone ids' prefix: the one asked for, else `<sandbox>-b` (a valid id prefix:
    /// ids are at most 64 characters, so a long sandbox id is cut).
    pub fn prefix(&self) -> String {
        self.prefix.clone().unwrap_or_else(|| {
            let id = self.vm_id.as_str();
            let keep = id.len().min(56);
            format!("{}-b", id[..keep].trim_end_matches(['-', '_']))
        })
    }
}

/// A branch's progress, in order.
#[derive(Debug, Clone)]
pub enum BranchEvent {
    /// The template snapshot is being written (the source is paused meanwhile).
    Snapshotting,
    /// The template snapshot is written; the source runs again.
    Snapshotted(String),
    /// Clone `index` of `count` (from 1) is being made.
    Cloning {
        id: VmId,
        index: usize,
        count: usize,
    },
    /// A step of that clone's start.
    Clone(VmId, StartEvent),
    /// That clone answers SSH.
    Cloned(ClonedVm),
}

/// What a branch made.
#[derive(Debug, Clone, Serialize)]
pub struct BranchReport {
    /// The sandbox branched.
    pub sandbox: VmId,
    pub source_status: VmStatus,
    pub snapshot: SnapshotInfo,
    pub clones: Vec<ClonedVm>,
    pub elapsed_ms: f64,
}

impl BranchReport {
    /// The one line both faces say: `Branched ID into N sandboxes in S s (template
    /// snapshot SNAP; ID is running).`
    pub fn summary(&self) -> String {
        format!(
            "Branched {} into {} sandbox{} in {:.2} s (template snapshot {}; {} is {}).",
            self.sandbox,
            self.clones.len(),
            if self.clones.len() == 1 { "" } else { "es" },
            self.elapsed_ms / 1000.0,
            self.snapshot.id,
            self.sandbox,
            self.source_status
        )
    }
}

/// The usage errors of `opts`, before anything is looked up (the count, the clones' ids
/// the prefix makes, the snapshot id): a face makes these checks before it opens the state
/// database, so a bad request changes nothing on disk.
pub fn check_branch(opts: &BranchOptions) -> Result<()> {
    super::clone::check_clone(&CloneOptions {
        count: opts.count,
        prefix: Some(opts.prefix()),
        ..CloneOptions::default()
    })?;
    match &opts.snapshot_id {
        Some(s) if !crate::sys::process::is_vm_id(s) => Err(super::invalid_snapshot_id(s)),
        _ => Ok(()),
    }
}

/// Snapshot `opts.vm_id` for cloning (the source runs on) and make `opts.count` clones of
/// it, several at once.
pub async fn branch(
    ctx: &Ctx,
    opts: &BranchOptions,
    progress: &Progress<BranchEvent>,
) -> Result<BranchReport> {
    let t0 = Instant::now();
    check_branch(opts)?;
    if progress.cancelled() {
        return Err(Error::new(
            ErrorCode::Interrupted,
            format!("Branch of '{}' cancelled before it began", opts.vm_id),
        ));
    }
    let prefix = opts.prefix();
    // The ids, checked before the snapshot pauses the source.
    let ids = super::clone::clone_ids(
        ctx,
        &CloneOptions {
            count: opts.count,
            prefix: Some(prefix),
            ..CloneOptions::default()
        },
    )?;
    progress.emit(BranchEvent::Snapshotting);
    let made = create(
        ctx,
        &CreateOptions {
            snapshot_id: opts.snapshot_id.clone(),
            kind: SnapshotType::Full,
            resume_source: true,
            for_clone: true,
            ..CreateOptions::of(opts.vm_id.clone())
        },
    )
    .await?;
    let snapshot_id = made.snapshot.id.clone();
    progress.emit(BranchEvent::Snapshotted(snapshot_id.clone()));
    let kept = |clones: &[ClonedVm]| -> String {
        let names: Vec<&str> = clones.iter().map(|c| c.vm.name.as_str()).collect();
        format!(
            "template snapshot '{snapshot_id}' kept; clones made: {}",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        )
    };
    let cloned = super::clone::clone_all(
        ctx,
        &snapshot_id,
        &ids,
        &CloneOptions {
            snapshot_id: snapshot_id.clone(),
            count: opts.count,
            boot_timeout: opts.boot_timeout,
            ..CloneOptions::default()
        },
        &super::clone::Hooks {
            progress: &|id| {
                let tag = id.clone();
                progress.map(move |e: StartEvent| BranchEvent::Clone(tag.clone(), e))
            },
            starting: &|i, id| {
                progress.emit(BranchEvent::Cloning {
                    id: id.clone(),
                    index: i + 1,
                    count: ids.len(),
                })
            },
            done: &|c| progress.emit(BranchEvent::Cloned(c.clone())),
            cancelled: &|| progress.cancelled(),
        },
    )
    .await
    .map_err(|e| Error::new(e.code, format!("{} ({})", e.message, kept(&[]))))?;
    if let Some(f) = cloned.failed {
        let cancelled = crate::core::job::is_cancel(&f.error) && f.more == 0;
        let e = f.error(&kept(&cloned.clones));
        return Err(if cancelled {
            Error::new(
                ErrorCode::Interrupted,
                format!("Branch of '{}' cancelled: {}", opts.vm_id, e.message),
            )
        } else {
            e
        });
    }
    let clones = cloned.clones;
    Ok(BranchReport {
        sandbox: opts.vm_id.clone(),
        source_status: made.source_status,
        snapshot: made.snapshot,
        clones,
        elapsed_ms: start::ms(t0.elapsed()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_prefix_is_the_sandbox_id_and_stays_a_valid_id() {
        let o = BranchOptions::of(VmId::new("agent-1").unwrap(), 2);
        assert_eq!(o.prefix(), "agent-1-b");
        let long = "a".repeat(64);
        let o = BranchOptions::of(VmId::new(&long).unwrap(), 1);
        let p = o.prefix();
        assert!(VmId::new(&format!("{p}-99")).is_some(), "{p}");
        let o = BranchOptions {
            prefix: Some("w".into()),
            ..BranchOptions::of(VmId::new("x").unwrap(), 1)
        };
        assert_eq!(o.prefix(), "w");
    }
}
