//! `image rm NAME…` (and the Images pane's remove): the current version's caches of a
//! preset or by their full name, SmolVM's flat caches by their full name, and images
//! `image build` made by their name — each kept when a VM uses it or a live process holds
//! it open, by the check `prune` makes.

use std::path::{Path, PathBuf};

use super::catalog::{self, matches};
use super::listing::{Kind, Row};
use crate::core::error::{Error, Result};
use crate::core::presets::Registry;
use crate::core::prune::{InUse, KeepReason};
use crate::sys::fs::{remove_entry, HardLinks};

/// What `image rm` did.
#[derive(Debug, Clone, Default)]
pub struct RmReport {
    pub removed: Vec<Row>,
    /// In use (by a VM, or open in a live process): not removed, with why.
    pub kept: Vec<(Row, KeepReason)>,
    pub failed: Vec<(Row, String)>,
    /// A state database that could not be read ([`InUse::warnings`]).
    pub warnings: Vec<String>,
    /// Stopped by its cancel token before every chosen image was handled: the ones not
    /// reached are in none of the lists.
    pub cancelled: bool,
}

impl RmReport {
    /// What the removed images held: SmolVM's `freed_bytes`, their regular files' blocks
    /// (as each row's `size_bytes`).
    pub fn freed_bytes(&self) -> u64 {
        self.removed.iter().map(|r| r.files_bytes).sum()
    }
}

/// Which images `image rm` removes: under `images_root`, the ones `args` name (presets,
/// aliases or full names), kept when a VM of `state_dbs` uses them; with `dry_run` none.
#[derive(Debug, Clone, Copy)]
pub struct RmRequest<'a> {
    pub images_root: &'a Path,
    pub current_version: &'a str,
    pub state_dbs: &'a [PathBuf],
    pub args: &'a [String],
    pub dry_run: bool,
}

/// Remove the images `req` names. An argument that names nothing is an error before
/// anything is removed; an image in use is kept ([`InUse`]). With `dry_run` nothing is
/// removed: `removed` is what would go. `cancel` is checked before each image: once it
/// is set, the images not yet handled stay and the report says it was cancelled.
pub fn remove(
    presets: &Registry,
    req: &RmRequest,
    cancel: &crate::core::job::CancelToken,
) -> Result<RmReport> {
    let RmRequest {
        images_root,
        state_dbs,
        dry_run,
        ..
    } = *req;
    let chosen = choose(presets, req)?;
    let in_use = InUse::read(state_dbs);
    let dirs: Vec<(PathBuf, bool)> = chosen
        .iter()
        .map(|r| {
            let link = std::fs::symlink_metadata(&r.path).is_ok_and(|m| m.file_type().is_symlink());
            (r.path.clone(), link)
        })
        .collect();
    let reasons = in_use.reasons(&dirs);
    let mut report = RmReport {
        warnings: in_use.warnings,
        ..RmReport::default()
    };
    for (r, reason) in chosen.into_iter().zip(reasons) {
        if cancel.is_cancelled() {
            report.cancelled = true;
            break;
        }
        if let Some(why) = reason {
            report.kept.push((r, why));
            continue;
        }
        if dry_run {
            report.removed.push(r);
            continue;
        }
        let parent = r.path.parent().unwrap_or(images_root).to_path_buf();
        match remove_entry(&parent, std::ffi::OsStr::new(&r.name)) {
            Ok(()) => report.removed.push(r),
            Err(err) => {
                let msg = err.to_string();
                report.failed.push((r, msg));
            }
        }
    }
    Ok(report)
}

/// The error for an argument that names no image: a folder of the images root that is
/// no image (no cache layout claims its name: `image ls` lists it as `other`, left alone)
/// is not smolvm's to remove, and the words say so.
fn not_named(images_root: &Path, name: &str) -> Error {
    // The listing's own rule (every built image was named before this is reached).
    let folders = super::listing::not_images(images_root, &[]);
    let Some((_, path)) = folders.iter().find(|(n, _)| n == name) else {
        return Error::runtime(format!("No cached image named '{name}'."))
            .with_recovery("Run 'smolvm image list' to see cached images.");
    };
    if let Some(image) = super::store::staged_image(name) {
        return Error::runtime(format!(
            "'{name}' is where a build or load of '{image}' stages its files; smolvm leaves it to the next build or load of '{image}', which removes it."
        ))
        .with_recovery(format!(
            "Build or load '{image}' again, or remove {} yourself once no build or load of '{image}' runs.",
            path.display()
        ));
    }
    Error::runtime(format!(
        "'{name}' is not an image smolvm or SmolVM made, so smolvm leaves it alone."
    ))
    .with_recovery(format!(
        "Remove {} yourself if you no longer need it.",
        path.display()
    ))
}

/// The rows `req.args` name, each once: our current caches by preset (or alias) or full
/// name, SmolVM's caches (any version) by full name only — a preset never reaches into
/// another installation's caches — and built images by name.
fn choose(presets: &Registry, req: &RmRequest) -> Result<Vec<Row>> {
    let RmRequest {
        images_root,
        current_version,
        state_dbs,
        args,
        ..
    } = *req;
    let ours: Vec<catalog::Entry> = catalog::list(images_root, current_version, state_dbs)?
        .into_iter()
        .filter(|e| e.current)
        .collect();
    let smolvm = catalog::list_smolvm(images_root, current_version, state_dbs);
    let built = super::store::built_names(images_root);
    // Each argument read as SmolVM reads it (an error before anything is looked at).
    let args = args
        .iter()
        .map(|a| catalog::entry_name(images_root, a))
        .collect::<Result<Vec<String>>>()?;
    for a in &args {
        let named = ours.iter().any(|e| matches(presets, a, e))
            || smolvm.iter().any(|e| e.name == *a)
            || built.contains(a);
        if !named {
            return Err(not_named(images_root, a));
        }
    }
    let links = HardLinks::default();
    let mut rows: Vec<Row> = ours
        .into_iter()
        .filter(|e| args.iter().any(|a| matches(presets, a, e)))
        .map(|e| Row::from_entry(e, Kind::Cache))
        .chain(
            smolvm
                .into_iter()
                .filter(|e| args.contains(&e.name))
                .map(|e| Row::from_entry(e, Kind::SmolvmCache)),
        )
        .collect();
    for name in built.into_iter().filter(|n| args.contains(n)) {
        rows.push(Row::built(images_root, name, &links));
    }
    Ok(rows)
}
