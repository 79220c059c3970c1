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
/// database that has its row (its `VMManager.snapshot_dir`), when its row's artifacts `a`
/// name files in it — the proof that it is this snapshot's — with the names of those
/// files.
fn smolvm_layout(ctx: &Ctx, s: &SnapshotRecord, a: &Artifacts) -> Option<(PathBuf, Vec<String>)> {
    if !is_vm_id(&s.snapshot_id) {
        return None;
    }
    let dir = ctx.data_dir.join("snapshots").join(&s.snapshot_id);
    if ctx.paths.snapshot_dir(&s.snapshot_id).as_ref() == Some(&dir) {
        return None;
    }
    let files: Vec<String> = [
        a.state_path.as_deref(),
        a.memory_path.as_deref(),
        Some(a.disk_path.as_str()),
    ]
    .into_iter()
    .flatten()
    .map(std::path::Path::new)
    .filter(|p| p.parent() == Some(dir.as_path()))
    .filter_map(|p| Some(p.file_name()?.to_str()?.to_string()))
    .collect();
    (!files.is_empty()).then_some((dir, files))
}

/// The directory that holds snapshot `s`'s files, and the names of the files SmolVM's row
/// names there when it is SmolVM's ([`smolvm_layout`]; `None`: smolvm's own directory).
fn place(ctx: &Ctx, s: &SnapshotRecord, a: &Artifacts) -> (PathBuf, Option<Vec<String>>) {
    match smolvm_layout(ctx, s, a) {
        Some((dir, files)) => (dir, Some(files)),
        None => (
            ctx.paths
                .snapshot_dir(&s.snapshot_id)
                .unwrap_or_else(|| ctx.paths.snapshots_dir.clone()),
            None,
        ),
    }
}

/// The directory that holds snapshot `s`'s files ([`place`]).
pub(super) fn files_dir(ctx: &Ctx, s: &SnapshotRecord) -> PathBuf {
    place(ctx, s, &Artifacts::of(s)).0
}

pub(super) fn info_of(ctx: &Ctx, s: &SnapshotRecord) -> SnapshotInfo {
    let kind = SnapshotType::parse(s.kind()).unwrap_or_default();
    let backend = VmBackend::parse(s.backend());
    let artifacts = Artifacts::of(s);
    let (dir, smolvm_files) = place(ctx, s, &artifacts);
    let smolvm_made = smolvm_files.is_some();
    let names = smolvm_files.unwrap_or_else(|| {
        files_of(&backend, kind)
            .iter()
            .map(|f| f.to_string())
            .collect()
    });
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
        snapshot_type: kind,
        artifacts,
        warm_template_for: s
            .vm_config
            .extras
            .warm_template
            .as_ref()
            .map(|_| s.vm_config.preset.clone().unwrap_or_default()),
        smolvm_made,
    }
}
