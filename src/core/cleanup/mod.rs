//! `cleanup`: reconcile the state database with the live system, then tear down the
//! targeted VMs and every orphaned resource, safely. This module is the plan: the options,
//! the types a face shows, [`prepare`] (lock, reconcile, targets, orphans) and [`execute`].
//! `orphans.rs` finds and removes what no VM owns; `core::teardown` takes one VM down (also
//! what `sandbox delete`, `stop` and a failed start's rollback use).
//!
//! * **Stale rows**: running/paused rows whose process is gone, is a zombie, or whose PID
//!   now belongs to a process that does not carry this VM's control socket (PID reuse).
//!   They are marked `error` (pid cleared) unless this is a dry run.
//! * **Targets**: stale rows (new and already `error`) first, then every row whose id
//!   starts with the prefix (default `vm-`) — or every row with `all` — oldest first.
//! * **Orphans** ("stale resources"), only what is provably ours and dead (`orphans.rs`),
//!   computed again from a fresh look before anything is removed.
//! * **Teardown** of a target, each step idempotent so a rerun after a crash finishes the
//!   job (`core::teardown`): VMM, TAP, nftables entries, files, and last the row.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use super::error::{rt, Error, Result};
use super::lock::VmLock;
use super::progress::Progress;
use crate::sys::env::Env;
use crate::sys::fs::{self, VmFile};
use crate::sys::lock::Held;
use crate::sys::paths::{Paths, STATE_DB_FILE};
use crate::sys::process;
use crate::sys::state::{
    Corruption, Known, OpenMode, StateStore, VmRecord, VmStatus, DEFAULT_BUSY_TIMEOUT,
};

mod orphans;

/// The liveness rule lives in `core::vm`; kept here for callers not moved yet.
pub use super::vm::row_is_stale;

use super::teardown::{self, known_from, teardown, Ctx, TeardownOptions};
pub use super::teardown::{Target, TargetReason, VmResources};
use orphans::{orphans, remove_orphan, scan, OrphanAction};

pub const DEFAULT_PREFIX: &str = "vm-";
/// Teardowns in flight at once (`SMOLVM_CLEANUP_PARALLEL`): mostly waiting for guests to
/// power off, which costs nothing; the CPU-bound steps among them run one per core. The
/// bound keeps open descriptors (a pidfd, a control connection per VM) far below limits.
pub const DEFAULT_PARALLEL: usize = 64;
/// The most teardowns `SMOLVM_CLEANUP_PARALLEL` may run at once.
pub const MAX_PARALLEL: u64 = 1024;

/// `SMOLVM_DB_BUSY_TIMEOUT`: how long cleanup waits for a busy database.
pub fn busy_timeout(env: &Env) -> Result<Duration> {
    Ok(env.seconds("SMOLVM_DB_BUSY_TIMEOUT", DEFAULT_BUSY_TIMEOUT, false)?)
}

/// `SMOLVM_CLEANUP_PARALLEL`: [`DEFAULT_PARALLEL`], or 1 to [`MAX_PARALLEL`].
pub fn parallel(env: &Env) -> Result<usize> {
    Ok(env.count(
        "SMOLVM_CLEANUP_PARALLEL",
        DEFAULT_PARALLEL as u64,
        1,
        MAX_PARALLEL,
    )? as usize)
}

/// A cleanup prefix is never empty (it would match every VM, which is `--all`'s job) and
/// never holds whitespace or control characters (no VM id does). The error is the reason.
pub fn validate_prefix(prefix: &str) -> std::result::Result<(), String> {
    if prefix.is_empty() {
        return Err(
            "the prefix must not be empty (it would match every VM); use --all to target every VM"
                .into(),
        );
    }
    if prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(
            "the prefix must not contain whitespace or control characters; use --all to \
                    target every VM"
                .into(),
        );
    }
    Ok(())
}

/// What to clean and how: the targets, and each target's teardown options.
#[derive(Debug, Clone)]
pub struct CleanupOptions {
    pub all: bool,
    pub prefix: String,
    pub dry_run: bool,
    /// Where this install's files are, the stop budget, how many teardowns run at once
    /// (1: one after the other) and what the other state databases record.
    pub teardown: TeardownOptions,
    /// `~/.smolvm/snapshots`: only partial snapshots a killed create left are removed
    /// there; snapshots themselves are never a cleanup's (nor a VM teardown's) to delete.
    pub snapshots_dir: PathBuf,
    /// How long a target's teardown waits for the sandbox's lock (another operation on
    /// it), and the run for another cleanup's, before it fails `busy`
    /// (`SMOLVM_LOCK_TIMEOUT`).
    pub lock_wait: Duration,
    /// What this run is, written into the cleanup lock for a waiter's message (`cleanup`,
    /// `sandbox delete --all`).
    pub operation: String,
}

impl CleanupOptions {
    /// What each target's teardown needs of these options.
    pub fn teardown_options(&self) -> TeardownOptions {
        self.teardown.clone()
    }

    /// Options from resolved paths and the environment (`SMOLVM_STOP_TIMEOUT`,
    /// `SMOLVM_DB_BUSY_TIMEOUT`, `SMOLVM_CLEANUP_PARALLEL`). A dry run never creates the
    /// data directory.
    pub fn new(
        paths: &Paths,
        env: &Env,
        all: bool,
        prefix: Option<String>,
        dry_run: bool,
    ) -> Result<Self> {
        // Validated before anything else is looked at (durations: the one parser, 0 to 24 h).
        let stop_timeout = super::vm::stop_timeout(env, None)?;
        let busy_timeout = busy_timeout(env)?;
        let lock_wait = super::lock::lock_timeout(env)?;
        if let (false, Some(p)) = (all, &prefix) {
            validate_prefix(p).map_err(|why| Error::usage(format!("--prefix: {why}")))?;
        }
        // Reading another user's state and about to start one's own: said, nothing made
        // (a dry run says what the run would).
        if let Some(s) = super::context::WorldSplit::of(paths) {
            if s.must_choose(env.euid()) {
                return Err(s.refusal());
            }
        }
        super::context::check_data_dir(paths)?;
        // A dry run looks where the real run will work (it creates nothing to find it).
        let data_dir = if dry_run {
            paths.data_dir_planned().ok_or_else(|| {
                Error::runtime(format!(
                    "Unable to find a writable SmolVM data directory. Tried: {}. Set SMOLVM_DATA_DIR to an explicit writable path.",
                    paths
                        .data_dir_candidates()
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?
        } else {
            paths
                .data_dir()
                .map_err(|e| Error::runtime(e.to_string()))?
        };
        let parallel = parallel(env)?;
        Ok(CleanupOptions {
            all,
            prefix: prefix.unwrap_or_else(|| DEFAULT_PREFIX.to_string()),
            dry_run,
            teardown: TeardownOptions {
                data_dir,
                socket_dir: paths.socket_dir.clone(),
                stop_timeout,
                parallel,
                busy_timeout,
                candidate_dbs: paths.candidate_state_dbs(),
            },
            snapshots_dir: paths.snapshots_dir.clone(),
            lock_wait,
            operation: "cleanup".to_string(),
        })
    }
}

text_enum! {
    /// Kinds of orphaned resource.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum ResourceKind {
        Process = "process",
        Tap = "tap",
        Nft = "nft",
        Socket = "socket",
        File = "file",
        /// A partial snapshot directory a killed `snapshot create` left.
        Snapshot = "snapshot",
    }
}

/// A live resource that no VM owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleResource {
    pub kind: ResourceKind,
    pub name: String,
    pub vm_id: Option<String>,
    action: OrphanAction,
}

/// Everything a cleanup will do, computed before anything is deleted (the confirmation
/// prompt shows it). Holds the cleanup lock, so a second cleanup waits until this one is
/// executed or dropped (at most its `lock_wait`).
pub struct CleanupPlan {
    pub opts: CleanupOptions,
    pub corruption: Option<Corruption>,
    /// The running or paused rows this run finds with no live process (it marks them
    /// `error`), sorted: SmolVM's `reconciled_stale_ids`.
    pub reconciled: Vec<String>,
    pub targets: Vec<Target>,
    pub stale_resources: Vec<StaleResource>,
    pub warnings: Vec<String>,
    store: Arc<StateStore>,
    known: Arc<Known>,
    _lock: Option<Held>,
}

impl CleanupPlan {
    /// Nothing to delete at all.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty() && self.stale_resources.is_empty()
    }

    /// The plan as it is shown before anyone confirms it.
    pub fn view(&self) -> PlanView {
        let mut warnings = self.warnings.clone();
        if let Some(c) = &self.corruption {
            warnings.push(format!(
                "state database is corrupt ({}); cleanup will move it aside",
                c.reason
            ));
        }
        PlanView {
            targets: self
                .targets
                .iter()
                .map(|t| (t.vm.id.clone(), t.reason.as_str().to_string()))
                .collect(),
            stale_resources: self
                .stale_resources
                .iter()
                .map(StaleResource::label)
                .collect(),
            warnings,
        }
    }

    /// Only what `confirmed` showed goes ahead: a VM or a resource that became a target
    /// after that plan was shown (a confirmation can be minutes old) is left alone, and
    /// the warnings say so.
    pub fn keep_confirmed(&mut self, confirmed: &PlanView) {
        let vms: HashSet<&str> = confirmed
            .targets
            .iter()
            .map(|(id, _)| id.as_str())
            .collect();
        let resources: HashSet<&str> = confirmed
            .stale_resources
            .iter()
            .map(String::as_str)
            .collect();
        let mut left = Vec::new();
        self.targets.retain(|t| {
            let shown = vms.contains(t.vm.id.as_str());
            if !shown {
                left.push(t.vm.id.clone());
            }
            shown
        });
        self.stale_resources.retain(|r| {
            let label = r.label();
            let shown = resources.contains(label.as_str());
            if !shown {
                left.push(label);
            }
            shown
        });
        for what in left {
            self.warnings.push(format!(
                "{what} was not in the plan you confirmed; left alone (run cleanup again)"
            ));
        }
    }
}

/// What a cleanup plan deletes, as shown before it is confirmed: each target VM with why
/// (`stale`, `prefix`, `all`), each stale resource as `<kind> <name>`, and the warnings (a
/// corrupt state database among them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanView {
    pub targets: Vec<(String, String)>,
    pub stale_resources: Vec<String>,
    pub warnings: Vec<String>,
}

impl StaleResource {
    /// `<kind> <name>`, as a plan and a task show it.
    pub fn label(&self) -> String {
        format!("{} {}", self.kind.as_str(), self.name)
    }
}

/// Progress of a cleanup, in target order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CleanupEvent {
    Deleted {
        vm_id: String,
    },
    /// A target's teardown failed; the error keeps its code.
    Failed {
        vm_id: String,
        error: Error,
    },
    Cleaned(StaleResource),
    CleanFailed {
        resource: StaleResource,
        error: String,
    },
}

/// What a cleanup did.
#[derive(Debug, Clone)]
pub struct CleanupReport {
    pub dry_run: bool,
    pub corruption: Option<Corruption>,
    /// [`CleanupPlan::reconciled`].
    pub reconciled: Vec<String>,
    pub targets: Vec<String>,
    pub deleted: Vec<String>,
    /// Each failed target with its error (code included).
    pub failed: Vec<(String, Error)>,
    /// Every orphan with the error its removal hit (`None`: removed, or a dry run).
    pub stale_resources: Vec<(StaleResource, Option<String>)>,
    pub warnings: Vec<String>,
    /// Stopped early on request: targets not started are neither deleted nor failed.
    pub cancelled: bool,
}

impl CleanupReport {
    pub fn failure_count(&self) -> usize {
        self.failed.len()
            + self
                .stale_resources
                .iter()
                .filter(|(_, e)| e.is_some())
                .count()
    }
}

/// Take the cleanup lock (waiting for another cleanup to finish, at most
/// `opts.lock_wait`: then `busy`, naming it), open the store, reconcile it with the live
/// system (stored unless a dry run) and compute the targets and orphans. Deletes nothing.
pub async fn prepare(opts: CleanupOptions) -> Result<CleanupPlan> {
    let lock = if opts.dry_run {
        None
    } else {
        let path = opts.teardown.data_dir.join("cleanup.lock");
        let (what, wait) = (opts.operation.clone(), opts.lock_wait);
        Some(
            tokio::task::spawn_blocking(move || {
                crate::sys::lock::acquire(&path, &what, wait)
                    .map_err(|e| super::lock::busy_doing("Cleanup", wait, e))
            })
            .await
            .map_err(rt)??,
        )
    };
    let db = opts.teardown.data_dir.join(STATE_DB_FILE);
    let mode = if opts.dry_run {
        OpenMode::DryRun
    } else {
        OpenMode::ReadWrite
    };
    let busy = opts.teardown.busy_timeout;
    let (store, corruption) =
        tokio::task::spawn_blocking(move || StateStore::open(&db, mode, busy))
            .await
            .map_err(rt)?
            .map_err(rt)?;
    let store = Arc::new(store);

    let live = scan(&opts).await;
    let mut warnings = Vec::new();
    let listed = store.list_vms().map_err(rt)?;
    let mut rows = listed.vms;
    let leases = store.leases().map_err(rt)?;
    // Rows with invalid values are reported and never acted on. The resources such a row
    // names are unknown, so nothing may be judged unowned: no orphan sweep this time.
    let skipped: Vec<String> = listed
        .skipped
        .iter()
        .chain(&leases.skipped)
        .map(ToString::to_string)
        .collect();
    let sweep_orphans = skipped.is_empty();
    warnings.extend(skipped);

    // A database rebuilt after corruption adopts the VMMs still running from our socket
    // dir that were started with this install's files, so they are targeted (or spared)
    // by the usual rules instead of being killed as orphans.
    if corruption.is_some() {
        let known: HashSet<String> = rows.iter().map(|r| r.id.clone()).collect();
        for v in live.vmms_here.iter().filter(|v| !known.contains(&v.vm_id)) {
            let started_here = process::info(v.pid)
                .is_some_and(|i| i.names_data_dir(&opts.teardown.data_dir, &v.vm_id));
            if !started_here {
                continue;
            }
            let mut rec = VmRecord::new(v.vm_id.clone(), VmStatus::Running);
            rec.pid = Some(i64::from(v.pid));
            rec.socket_path = Some(v.socket.display().to_string());
            rec.config.vm_id = Some(v.vm_id.clone());
            rec.config.backend = Some(v.kind.as_str().into());
            rec.config.extras.adopted = Some(true);
            if !opts.dry_run {
                store.insert_vm(&rec).map_err(rt)?;
                if let Some(r) = store.get_vm(&v.vm_id).map_err(rt)? {
                    rec = r;
                }
            }
            rows.push(rec);
        }
    }
    let (known, read_warnings) = {
        let opts = opts.clone();
        let (rows, leases) = (rows.clone(), leases.clone());
        tokio::task::spawn_blocking(move || known_from(&opts.teardown_options(), &rows, &leases))
            .await
            .map_err(rt)?
    };
    warnings.extend(read_warnings);

    // Reconcile: which running/paused rows have no live, matching process. A sandbox an
    // operation holds the lock of is changing under it (a start between its spawn and
    // its row): not judged now.
    let newly_stale: Vec<String> = rows
        .iter()
        .filter(|r| row_is_stale(r, &opts.teardown.socket_dir))
        .filter(|r| !VmLock::is_held(&opts.teardown.data_dir, &r.id))
        .map(|r| r.id.clone())
        .collect();
    if !opts.dry_run {
        store.mark_stale(&newly_stale).map_err(rt)?;
    }
    let mut stale_ids = newly_stale.clone();
    stale_ids.extend(
        rows.iter()
            .filter(|r| r.status == VmStatus::Error && !newly_stale.contains(&r.id))
            .map(|r| r.id.clone()),
    );

    let by_id: HashMap<&str, &VmRecord> = rows.iter().map(|r| (r.id.as_str(), r)).collect();
    let known = Arc::new(known);
    let mut targets: Vec<Target> = Vec::new();
    for id in &stale_ids {
        if let Some(vm) = by_id.get(id.as_str()) {
            let mut vm = (*vm).clone();
            if newly_stale.contains(id) {
                vm.status = VmStatus::Error;
                vm.pid = None;
            }
            targets.push(Target {
                resources: VmResources::of(&vm, &leases),
                vm,
                reason: TargetReason::Stale,
            });
        }
    }
    for vm in &rows {
        if stale_ids.contains(&vm.id) {
            continue;
        }
        let reason = if opts.all {
            TargetReason::All
        } else if vm.id.starts_with(&opts.prefix) {
            TargetReason::Prefix
        } else {
            continue;
        };
        targets.push(Target {
            vm: vm.clone(),
            reason,
            resources: VmResources::of(vm, &leases),
        });
    }
    // Every sandbox: SmolVM's `run_cleanup` order, oldest first, the reconciled among them.
    if opts.all {
        let order: HashMap<&str, usize> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.as_str(), i))
            .collect();
        targets.sort_by_key(|t| order.get(t.vm.id.as_str()).copied().unwrap_or(usize::MAX));
    }

    let stale_resources = if sweep_orphans {
        let mut found = orphans(&opts, &known, &live, &mut warnings);
        found.extend(snapshot_partials(&opts, &store));
        found
    } else {
        warnings.push(
            "orphaned resources were not looked for: the state database has rows that could not be read (above)"
                .into(),
        );
        Vec::new()
    };
    let mut reconciled = newly_stale;
    reconciled.sort();
    Ok(CleanupPlan {
        opts,
        corruption,
        reconciled,
        targets,
        stale_resources,
        warnings,
        store,
        known,
        _lock: lock,
    })
}

/// Tear down every target (`opts.teardown.parallel` in flight, their CPU-bound steps one per core;
/// events in target order), then remove every orphan. A failure does not stop the others. The prompt may
/// have waited minutes since the plan: each target's row is read again before it is torn
/// down, and the orphans are computed again from a fresh look at every database and the
/// live system — only those still orphans are removed, each proved again at its delete.
pub async fn execute(plan: CleanupPlan, progress: &Progress<CleanupEvent>) -> CleanupReport {
    let mut report = CleanupReport {
        dry_run: plan.opts.dry_run,
        corruption: plan.corruption.clone(),
        reconciled: plan.reconciled.clone(),
        targets: plan.targets.iter().map(|t| t.vm.id.clone()).collect(),
        deleted: Vec::new(),
        failed: Vec::new(),
        stale_resources: Vec::new(),
        warnings: plan.warnings.clone(),
        cancelled: false,
    };
    if plan.opts.dry_run {
        report.stale_resources = plan
            .stale_resources
            .iter()
            .map(|r| (r.clone(), None))
            .collect();
        return report;
    }
    // Cancelled before its first item (the dashboard's `x` while it planned): nothing is
    // touched, and it says so even when there was nothing to do.
    if progress.cancelled() {
        report.cancelled = true;
        return report;
    }
    // One scan of the live VMMs for every target (after the prompt: fresh).
    let vmms = tokio::task::spawn_blocking(|| crate::sys::process::vmm_processes(None))
        .await
        .unwrap_or_default();
    let ctx = Arc::new(Ctx {
        store: plan.store.clone(),
        known: plan.known.clone(),
        cpu: teardown::cpu_permits(plan.opts.teardown.parallel),
        nft: teardown::NftQueue::default(),
        opts: plan.opts.teardown_options(),
        vmms,
    });
    let lock_wait = plan.opts.lock_wait;
    let mut results = futures::stream::iter(plan.targets.iter().cloned().map(|t| {
        let ctx = ctx.clone();
        let cancelled = progress.cancelled();
        async move {
            let id = t.vm.id.clone();
            if cancelled {
                return (id, None);
            }
            let r = tokio::spawn(async move {
                // The sandbox's lock before its row is read again: an operation on it
                // finishes first (or this target fails `busy`).
                let _lock = VmLock::acquire(
                    &ctx.opts.data_dir,
                    &t.vm.id,
                    &format!("cleanup {}", t.vm.id),
                    lock_wait,
                )
                .await?;
                teardown(&t, &ctx).await
            })
            .await
            .unwrap_or_else(|e| Err(rt(format!("teardown task failed: {e}"))));
            (id, Some(r))
        }
    }))
    .buffered(plan.opts.teardown.parallel.max(1));
    while let Some((vm_id, r)) = results.next().await {
        let Some(r) = r else {
            report.cancelled = true;
            continue;
        };
        match r {
            Ok(()) => {
                progress.emit(CleanupEvent::Deleted {
                    vm_id: vm_id.clone(),
                });
                report.deleted.push(vm_id);
            }
            Err(error) => {
                progress.emit(CleanupEvent::Failed {
                    vm_id: vm_id.clone(),
                    error: error.clone(),
                });
                report.failed.push((vm_id, error));
            }
        }
    }
    // The sandboxes' resolver runs only while a sandbox needs it.
    if !plan.opts.dry_run {
        if let Err(e) = crate::core::egress::resolver::sync_with(
            &plan.store,
            &plan.opts.teardown.data_dir,
            None,
        )
        .await
        {
            report.warnings.push(e.message);
        }
    }
    if plan.stale_resources.is_empty() {
        return report;
    }
    // A fresh look before any orphan is touched.
    let fresh = match fresh_known(&plan).await {
        Ok(k) => k,
        Err(e) => {
            report
                .warnings
                .push(format!("stale resources left alone: {e}"));
            return report;
        }
    };
    let live = scan(&plan.opts).await;
    let mut still: Vec<StaleResource> = orphans(&plan.opts, &fresh, &live, &mut Vec::new());
    still.extend(snapshot_partials(&plan.opts, &plan.store));
    for r in &plan.stale_resources {
        if progress.cancelled() {
            report.cancelled = true;
            break;
        }
        if !still.iter().any(|s| s.kind == r.kind && s.name == r.name) {
            report.warnings.push(format!(
                "{} {} is no longer stale (it changed since the plan); left alone",
                r.kind.as_str(),
                r.name
            ));
            continue;
        }
        let outcome = if r.kind == ResourceKind::Snapshot {
            crate::core::snapshot::remove_partial(&plan.opts.snapshots_dir, &plan.store, &r.name)
                .map(drop)
        } else {
            remove_orphan(r, &plan.opts, &fresh).await
        };
        match &outcome {
            Ok(()) => progress.emit(CleanupEvent::Cleaned(r.clone())),
            Err(e) => progress.emit(CleanupEvent::CleanFailed {
                resource: r.clone(),
                error: e.clone(),
            }),
        }
        report.stale_resources.push((r.clone(), outcome.err()));
    }
    // Ledger entries whose VM is recorded nowhere and whose files are all gone.
    for id in fs::recorded_vm_ids(&plan.opts.teardown.data_dir) {
        let files_left = [VmFile::Log, VmFile::Disk].iter().any(|f| {
            f.path(
                &plan.opts.teardown.data_dir,
                &plan.opts.teardown.socket_dir,
                &id,
            )
            .is_some_and(|p| std::fs::symlink_metadata(p).is_ok())
        });
        if !fresh.ids.contains(&id) && !files_left {
            let _ = fs::remove_vm_file(
                VmFile::Ledger,
                &plan.opts.teardown.data_dir,
                &plan.opts.teardown.socket_dir,
                &id,
            );
        }
    }
    report
}

/// Partial snapshot directories a killed create left (proved again at removal).
fn snapshot_partials(opts: &CleanupOptions, store: &StateStore) -> Vec<StaleResource> {
    crate::core::snapshot::partials(&opts.snapshots_dir, store)
        .into_iter()
        .map(|id| StaleResource {
            kind: ResourceKind::Snapshot,
            name: id,
            vm_id: None,
            action: OrphanAction::Snapshot,
        })
        .collect()
}

/// Every candidate database read again now.
async fn fresh_known(plan: &CleanupPlan) -> std::result::Result<Known, String> {
    let store = plan.store.clone();
    let opts = plan.opts.clone();
    tokio::task::spawn_blocking(move || {
        let rows = store.list_vms().map_err(|e| e.to_string())?;
        let leases = store.leases().map_err(|e| e.to_string())?;
        let (known, _) = known_from(&opts.teardown_options(), &rows.vms, &leases);
        if known.incomplete || !rows.skipped.is_empty() || !leases.skipped.is_empty() {
            return Err("a state database could not be read".to_string());
        }
        Ok(known)
    })
    .await
    .map_err(|e| e.to_string())?
}
