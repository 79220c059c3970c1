//! `prune`: find image caches that belong to other versions and remove them.
//!
//! A *stale* cache is an entry of the images root whose name is a version (`0.0.12`, the
//! documented layout) or carries `-v<version>-` (SmolVM's flat layout, e.g.
//! `codex-v0.0.24.post3-amd64-firecracker`), for a version other than the current one, and
//! which is a directory or a symlink to one. Everything else is left alone. A stale cache
//! is still *kept* (and reported) when a running VM uses it, a live process holds a file in
//! it open, it holds a `.fingerprint` (a custom image), or it is a protected directory.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use rayon::prelude::*;
use regex::Regex;

use super::error::{io_reason, Error, Result};
use super::progress::Progress;
use crate::sys::fs::{files_usage, remove_entry, HardLinks};
use crate::sys::paths::Paths;
use crate::sys::{procfs, pysmolvm, state};

/// SmolVM's version pattern (`cli/prune.py`), used both as a whole name and inside
/// `-v<version>-`.
const VERSION: &str = r"\d+\.\d+\.\d+[a-z0-9]*(?:\.[a-z0-9]+)*";
static WHOLE_VERSION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("^(?:{VERSION})$")).expect("valid regex"));
static DASH_VERSION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("-v({VERSION})-")).expect("valid regex"));

/// The version an images-root entry name belongs to, if it is a versioned cache name.
pub fn cache_version(name: &str) -> Option<&str> {
    if WHOLE_VERSION.is_match(name) {
        return Some(name);
    }
    DASH_VERSION
        .captures(name)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str())
}

/// What to prune and where to look.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    pub images_root: PathBuf,
    pub current_version: String,
    pub dry_run: bool,
    /// Never candidates, whatever their name (`~/.smolvm/snapshots`, `~/.smolvm/keys`).
    pub protected: Vec<PathBuf>,
    /// State databases whose running/paused VMs' files must not be removed.
    pub state_dbs: Vec<PathBuf>,
    /// SmolVM (Python) installations on this host: the caches of their versions are
    /// current to them and never candidates.
    pub smolvm_installs: Vec<pysmolvm::Install>,
}

impl PruneOptions {
    pub fn new(paths: &Paths, current_version: impl Into<String>, dry_run: bool) -> Self {
        PruneOptions {
            images_root: paths.images_root.clone(),
            current_version: current_version.into(),
            dry_run,
            protected: paths.protected_dirs(),
            state_dbs: paths.existing_state_dbs(),
            smolvm_installs: pysmolvm::installed(&paths.home, &paths.exec_path),
        }
    }

    /// The options `image prune` and the dashboard's prune both work with: the current
    /// image version from the environment (`SMOLVM_IMAGE_VERSION` or this build's), in
    /// the layout `paths` names.
    pub fn resolve(paths: &Paths, env: &crate::sys::env::Env, dry_run: bool) -> Result<Self> {
        let version = super::version::image_version(env)?;
        Ok(PruneOptions::new(paths, version, dry_run))
    }
}

/// A stale cache that may be removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleCache {
    pub path: PathBuf,
    pub version: String,
    /// The entry is a symlink: removing it unlinks the link, never its target.
    pub is_symlink: bool,
    /// Disk usage before removal (`st_blocks * 512`, hard links once).
    pub size_bytes: u64,
    name: OsString,
}

/// Why a stale-named entry is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeepReason {
    InUseByVm {
        vm_id: String,
    },
    OpenByProcess {
        pid: i32,
        comm: String,
    },
    CustomImage,
    Protected,
    /// Its version is the one a SmolVM installed on this host uses.
    CurrentForSmolVm {
        version: String,
        dist_info: PathBuf,
    },
    /// Stale now, but not in the plan the user confirmed (it became stale since).
    NotConfirmed,
}

impl std::fmt::Display for KeepReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeepReason::InUseByVm { vm_id } => write!(f, "in use by VM {vm_id}"),
            KeepReason::OpenByProcess { pid, comm } => {
                write!(f, "open by process {pid} ({comm})")
            }
            KeepReason::CustomImage => f.write_str("custom image (has .fingerprint)"),
            KeepReason::Protected => f.write_str("protected directory"),
            KeepReason::CurrentForSmolVm { version, dist_info } => write!(
                f,
                "current for SmolVM {version} installed on this host ({})",
                dist_info.display()
            ),
            KeepReason::NotConfirmed => f.write_str("not in the plan you confirmed"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub path: PathBuf,
    pub is_symlink: bool,
    pub reason: KeepReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub path: PathBuf,
    pub error: String,
}

/// What a prune would do, computed without changing anything.
#[derive(Debug, Clone)]
pub struct PrunePlan {
    pub images_root: PathBuf,
    pub current_version: String,
    pub stale: Vec<StaleCache>,
    pub kept: Vec<Kept>,
    pub warnings: Vec<String>,
}

impl PrunePlan {
    pub fn reclaimable_bytes(&self) -> u64 {
        self.stale.iter().map(|s| s.size_bytes).sum()
    }
}

/// What a prune did (for a dry run: what it would do; `removed` and `failed` are empty).
#[derive(Debug, Clone)]
pub struct PruneReport {
    pub plan: PrunePlan,
    pub dry_run: bool,
    pub removed: Vec<StaleCache>,
    pub failed: Vec<Failure>,
    /// Stopped early on request; what was not reached is neither removed nor failed.
    pub cancelled: bool,
}

impl PruneReport {
    pub fn freed_bytes(&self) -> u64 {
        self.removed.iter().map(|s| s.size_bytes).sum()
    }
}

/// Progress of a prune, in the order it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PruneEvent {
    Warning(String),
    Planned {
        stale: usize,
        reclaimable_bytes: u64,
    },
    Kept(Kept),
    Removing(StaleCache),
    Removed(StaleCache),
    Failed {
        cache: StaleCache,
        error: String,
    },
}

/// A root the user named (`--image-dir DIR`, `flag`) must exist: a missing one is a typo,
/// not a clean cache (only the default root may be absent). A usage error naming it.
pub fn check_named_root(root: &Path, flag: &str) -> Result<()> {
    match std::fs::metadata(root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::new(
            crate::core::error::ErrorCode::InvalidInput,
            format!(
                "image cache directory {} does not exist (from {flag})",
                root.display()
            ),
        )),
        _ => Ok(()),
    }
}

/// Find the stale caches, size them and decide which must be kept. Changes nothing.
pub fn plan(opts: &PruneOptions) -> Result<PrunePlan> {
    let root = &opts.images_root;
    let mut plan = PrunePlan {
        images_root: root.clone(),
        current_version: opts.current_version.clone(),
        stale: Vec::new(),
        kept: Vec::new(),
        warnings: Vec::new(),
    };
    let read_err = |e: &std::io::Error| {
        Error::runtime(format!(
            "cannot read image cache directory {}: {}",
            root.display(),
            io_reason(e)
        ))
    };
    let entries = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(plan),
        Err(e) => return Err(read_err(&e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        names.push(entry.map_err(|e| read_err(&e))?.file_name());
    }
    names.sort();

    for name in names {
        let Some(version) = name.to_str().and_then(cache_version) else {
            continue;
        };
        if version == opts.current_version {
            continue;
        }
        let path = root.join(&name);
        let Ok(lmeta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let is_symlink = lmeta.file_type().is_symlink();
        // A stale cache is a directory, or a symlink to one; files are never caches.
        if !path.is_dir() {
            continue;
        }
        let keep = |reason| Kept {
            path: path.clone(),
            is_symlink,
            reason,
        };
        if is_protected(&path, is_symlink, &opts.protected) {
            plan.kept.push(keep(KeepReason::Protected));
        } else if let Some(i) = opts.smolvm_installs.iter().find(|i| i.version == version) {
            plan.kept.push(keep(KeepReason::CurrentForSmolVm {
                version: i.version.clone(),
                dist_info: i.dist_info.clone(),
            }));
        } else if !is_symlink && std::fs::symlink_metadata(path.join(".fingerprint")).is_ok() {
            plan.kept.push(keep(KeepReason::CustomImage));
        } else {
            plan.stale.push(StaleCache {
                version: version.to_string(),
                path,
                is_symlink,
                size_bytes: 0,
                name,
            });
        }
    }
    if plan.stale.is_empty() {
        return Ok(plan);
    }

    let links = HardLinks::default();
    let sizes: Vec<u64> = plan
        .stale
        .par_iter()
        .map(|s| {
            // SmolVM's figure: what the regular files in it take (a link frees nothing
            // but itself, which takes no file's blocks).
            if s.is_symlink {
                0
            } else {
                files_usage(&s.path, &links)
            }
        })
        .collect();
    for (s, size) in plan.stale.iter_mut().zip(sizes) {
        s.size_bytes = size;
    }

    let in_use = in_use_reasons(&plan.stale, &opts.state_dbs, &mut plan.warnings);
    let mut stale = Vec::with_capacity(plan.stale.len());
    for (s, reason) in plan.stale.drain(..).zip(in_use) {
        match reason {
            Some(reason) => plan.kept.push(Kept {
                path: s.path,
                is_symlink: s.is_symlink,
                reason,
            }),
            None => stale.push(s),
        }
    }
    plan.stale = stale;
    plan.kept.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(plan)
}

/// A protected directory (keys, snapshots) must not be removed through this entry: the
/// entry is one of them, or (by real path) holds one or lies inside one. A symlink entry is
/// only unlinked, so only its own path matters.
fn is_protected(path: &Path, is_symlink: bool, protected: &[PathBuf]) -> bool {
    if protected.iter().any(|p| p == path) {
        return true;
    }
    if is_symlink {
        return false;
    }
    let Ok(canon) = path.canonicalize() else {
        return false;
    };
    protected
        .iter()
        .filter_map(|p| p.canonicalize().ok())
        .any(|p| p.starts_with(&canon) || canon.starts_with(&p))
}

/// The one in-use check for image caches, shared by `prune` and `image rm`: a cache is in
/// use when a running/paused VM recorded in any candidate state database
/// ([`Paths::existing_state_dbs`]) has a file under it (by its path as configured or its
/// real path), or when a live process holds a file under it open. A symlink entry only
/// counts as used through its own path: removing the link never touches what it points at.
pub struct InUse {
    vms: Vec<state::ActiveVm>,
    /// A state database that could not be read (the check then relies on open files).
    pub warnings: Vec<String>,
}

impl InUse {
    /// Read the running/paused VMs of every database in `state_dbs`.
    pub fn read(state_dbs: &[PathBuf]) -> InUse {
        let mut vms = Vec::new();
        let mut warnings = Vec::new();
        for db in state_dbs {
            match state::active_vms(db) {
                Ok(mut v) => vms.append(&mut v),
                Err(e) => warnings.push(format!(
                    "cannot read state database {} ({e}); in-use checks rely on open files of live processes only",
                    db.display()
                )),
            }
        }
        InUse { vms, warnings }
    }

    /// The VMs (ids, in database order) with a file under `dir`.
    pub fn vms_using(&self, dir: &Path, is_symlink: bool) -> Vec<String> {
        let canon = if is_symlink {
            None
        } else {
            dir.canonicalize().ok()
        };
        self.vms
            .iter()
            .filter(|vm| {
                vm.files.iter().any(|f| {
                    f.starts_with(dir)
                        || canon.as_ref().is_some_and(|c| {
                            f.starts_with(c) || f.canonicalize().is_ok_and(|fc| fc.starts_with(c))
                        })
                })
            })
            .map(|vm| vm.id.clone())
            .collect()
    }

    /// For each `(dir, is_symlink)`, why it is in use, if it is: a VM first, else a live
    /// process holding a file under it open.
    pub fn reasons(&self, dirs: &[(PathBuf, bool)]) -> Vec<Option<KeepReason>> {
        let mut reasons: Vec<Option<KeepReason>> = dirs
            .iter()
            .map(|(d, link)| {
                let ids = self.vms_using(d, *link);
                (!ids.is_empty()).then(|| KeepReason::InUseByVm {
                    vm_id: ids.join(", "),
                })
            })
            .collect();
        let unresolved: Vec<(usize, PathBuf)> = dirs
            .iter()
            .enumerate()
            .filter(|(i, (_, link))| reasons[*i].is_none() && !link)
            .filter_map(|(i, (d, _))| d.canonicalize().ok().map(|c| (i, c)))
            .collect();
        let canon: Vec<PathBuf> = unresolved.iter().map(|(_, c)| c.clone()).collect();
        for ((i, _), holder) in unresolved.iter().zip(procfs::holders_under(&canon)) {
            if let Some(h) = holder {
                reasons[*i] = Some(KeepReason::OpenByProcess {
                    pid: h.pid,
                    comm: h.comm,
                });
            }
        }
        reasons
    }
}

/// For each candidate, why it is in use, if it is ([`InUse`]).
fn in_use_reasons(
    stale: &[StaleCache],
    state_dbs: &[PathBuf],
    warnings: &mut Vec<String>,
) -> Vec<Option<KeepReason>> {
    let in_use = InUse::read(state_dbs);
    warnings.extend(in_use.warnings.iter().cloned());
    let dirs: Vec<(PathBuf, bool)> = stale
        .iter()
        .map(|s| (s.path.clone(), s.is_symlink))
        .collect();
    in_use.reasons(&dirs)
}

/// Prune: plan, then (unless a dry run) remove each stale cache that is not kept. One
/// failure does not stop the others; each is reported in `failed`. Progress goes to
/// `progress` as it happens.
pub fn run(opts: &PruneOptions, progress: &Progress<PruneEvent>) -> Result<PruneReport> {
    tracing::info!("pruning image caches");
    execute(opts, plan(opts)?, progress)
}

/// Prune what the user confirmed: the plan is made again (a cache a VM started using since
/// is kept), and of its stale caches only those in `confirmed` (their paths, as the
/// confirmed plan listed them) are removed; one that became stale since is kept, said as
/// [`KeepReason::NotConfirmed`]. A confirmed cache that is no longer stale is not touched.
pub fn run_confirmed(
    opts: &PruneOptions,
    confirmed: &[PathBuf],
    progress: &Progress<PruneEvent>,
) -> Result<PruneReport> {
    tracing::info!("pruning the confirmed image caches");
    let mut plan = plan(opts)?;
    let (keep, stale): (Vec<StaleCache>, Vec<StaleCache>) = plan
        .stale
        .into_iter()
        .partition(|s| !confirmed.contains(&s.path));
    plan.stale = stale;
    plan.kept.extend(keep.into_iter().map(|s| Kept {
        path: s.path,
        is_symlink: s.is_symlink,
        reason: KeepReason::NotConfirmed,
    }));
    execute(opts, plan, progress)
}

fn execute(
    opts: &PruneOptions,
    plan: PrunePlan,
    progress: &Progress<PruneEvent>,
) -> Result<PruneReport> {
    for w in &plan.warnings {
        progress.emit(PruneEvent::Warning(w.clone()));
    }
    progress.emit(PruneEvent::Planned {
        stale: plan.stale.len(),
        reclaimable_bytes: plan.reclaimable_bytes(),
    });
    for k in &plan.kept {
        progress.emit(PruneEvent::Kept(k.clone()));
    }
    let mut report = PruneReport {
        dry_run: opts.dry_run,
        removed: Vec::new(),
        failed: Vec::new(),
        cancelled: false,
        plan,
    };
    if opts.dry_run {
        return Ok(report);
    }
    for s in &report.plan.stale {
        if progress.cancelled() {
            report.cancelled = true;
            break;
        }
        progress.emit(PruneEvent::Removing(s.clone()));
        match remove_entry(&report.plan.images_root, &s.name) {
            Ok(()) => {
                progress.emit(PruneEvent::Removed(s.clone()));
                report.removed.push(s.clone());
            }
            Err(e) => {
                let error = match e.path.strip_prefix(&s.path) {
                    Ok(rel) if !rel.as_os_str().is_empty() => {
                        format!("{}: {}", rel.display(), io_reason(&e.error))
                    }
                    _ => io_reason(&e.error),
                };
                progress.emit(PruneEvent::Failed {
                    cache: s.clone(),
                    error: error.clone(),
                });
                report.failed.push(Failure {
                    path: s.path.clone(),
                    error,
                });
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_in_both_layouts() {
        assert_eq!(cache_version("0.0.12"), Some("0.0.12"));
        assert_eq!(cache_version("0.0.24.post3"), Some("0.0.24.post3"));
        assert_eq!(
            cache_version("openclaw-v0.0.13-amd64-firecracker"),
            Some("0.0.13")
        );
        assert_eq!(
            cache_version("base-kernel-v0.0.14a0-arm64"),
            Some("0.0.14a0")
        );
        assert_eq!(
            cache_version("codex-v0.0.24.post3-amd64-firecracker"),
            Some("0.0.24.post3")
        );
    }

    #[test]
    fn unversioned_names_are_not_caches() {
        for n in [
            "s3",
            "_guest-agent",
            "alpine-ssh",
            "some-random-dir",
            "v0.0.1",
            "0.0",
            "x-v0.0.1",
            "0.0.12-extra",
            "0.0.12/",
        ] {
            assert_eq!(cache_version(n), None, "{n}");
        }
    }
}
