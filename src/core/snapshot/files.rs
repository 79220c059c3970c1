//! Where a snapshot's files are and which of them are missing: smolvm's own directory,
//! or SmolVM 0.0.36's (`<data dir>/snapshots/<id>/`) when the row names files there; the
//! listed [`SnapshotInfo`] of a row.

use std::path::PathBuf;

use super::{files_of, Artifacts, SnapshotInfo, SnapshotType};
use crate::core::context::Ctx;
use crate::core::vm::{VmBackend, VmId};
use crate::sys::fs::HardLinks;
use crate::sys::open;
use crate::sys::process::is_vm_id;
use crate::sys::state::SnapshotRecord;

/// SmolVM 0.0.36's own directory of snapshot `id`: `<data dir>/snapshots/<id>` of the
/// database that has its row (its `VMManager.snapshot_dir`), when its row names files in
/// it — the proof that it is this snapshot's — with the names of those files.
fn smolvm_layout(ctx: &Ctx, s: &SnapshotRecord) -> Option<(PathBuf, Vec<String>)> {
    if !is_vm_id(&s.snapshot_id) {
        return None;
    }
    let dir = ctx.data_dir.join("snapshots").join(&s.snapshot_id);
    if ctx.paths.snapshot_dir(&s.snapshot_id).as_ref() == Some(&dir) {
        return None;
    }
    let a = Artifacts::of(s);
    let files: Vec<String> = [a.state_path, a.memory_path, Some(a.disk_path)]
        .into_iter()
        .flatten()
        .map(PathBuf::from)
        .filter(|p| p.parent() == Some(dir.as_path()))
        .filter_map(|p| Some(p.file_name()?.to_str()?.to_string()))
        .collect();
    (!files.is_empty()).then_some((dir, files))
}

/// The directory that holds snapshot `s`'s files: SmolVM's ([`smolvm_layout`]) or
/// smolvm's own, with whether it is SmolVM's.
pub(super) fn files_dir(ctx: &Ctx, s: &SnapshotRecord) -> (PathBuf, bool) {
    match smolvm_layout(ctx, s) {
        Some((dir, _)) => (dir, true),
        None => (
            ctx.paths
                .snapshot_dir(&s.snapshot_id)
                .unwrap_or_else(|| ctx.paths.snapshots_dir.clone()),
            false,
        ),
    }
}

pub(super) fn info_of(ctx: &Ctx, s: &SnapshotRecord) -> SnapshotInfo {
    let kind = SnapshotType::parse(s.kind()).unwrap_or_default();
    let backend = VmBackend::parse(s.backend());
    let (dir, names): (PathBuf, Vec<String>) = match smolvm_layout(ctx, s) {
        Some(found) => found,
        None => (
            files_dir(ctx, s).0,
            files_of(&backend, kind)
                .iter()
                .map(|f| f.to_string())
                .collect(),
        ),
    };
    let smolvm_made = files_dir(ctx, s).1;
    let missing = names
        .into_iter()
        .filter(|f| !matches!(open::kind(&dir.join(f)), Ok(Some(open::Kind::File))))
        .collect();
    SnapshotInfo {
        id: s.snapshot_id.clone(),
        vm_id: VmId::known(&s.vm_id),
        kind,
        backend,
        created_at: s.created_at.clone(),
        size_bytes: crate::sys::fs::disk_usage(&dir, &HardLinks::default()),
        path: dir,
        restored: s.restored,
        restored_vm_id: s.restored_vm_id.as_deref().map(VmId::known),
        missing_files: missing,
        snapshot_id: s.snapshot_id.clone(),
        snapshot_type: SnapshotType::parse(s.kind()).unwrap_or_default(),
        artifacts: Artifacts::of(s),
        warm_template_for: s
            .vm_config
            .extras
            .warm_template
            .as_ref()
            .map(|_| s.vm_config.preset.clone().unwrap_or_default()),
        smolvm_made,
    }
}
