//! Snapshots of a sandbox: `sandbox snapshot create|restore|list|delete`, one core
//! function each (the CLI calls them; the dashboard can).
//!
//! Files live in `~/.smolvm/snapshots/<id>/` ([`Paths::snapshot_dir`], an id checked like
//! a VM id): QEMU `full` = `state.bin` (QEMU's migration stream: RAM and device state,
//! written to a file smolvm opened and passed over QMP) + `disk.ext4`; Firecracker `full`
//! = `vmstate.bin` + `mem.bin` + `disk.ext4`; `disk` = `disk.ext4` only. The disk copy is
//! a reflink where the file system can, else sparse.
//!
//! Crash safety: the directory carries a `.partial` marker, locked (`flock`) by the create
//! for as long as it runs; the row is inserted after every file is synced, and the marker
//! removed after the row. A create killed midway leaves a marked directory with no row,
//! which the next create and `cleanup`'s stale-resource scan remove ([`sweep_partials`]).
//! `delete` marks the directory first, then deletes the row, then the files, so it too is
//! finished by the next sweep. Prune never looks here, and deleting or cleaning up the VM
//! leaves its snapshots in place.

mod agent;
mod branch;
mod clone;
mod files;
pub mod guard;
mod restore;
mod template;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

pub(crate) use agent::{agent_launch_command, AGENT_BIN};
pub use branch::{branch, check_branch, BranchEvent, BranchOptions, BranchReport};
pub(crate) use clone::remove_agent_socket;
pub use clone::{
    check_clone, check_count, clone, CloneOptions, CloneReport, ClonedVm, DEFAULT_CLONES,
    MAX_CLONES,
};
use files::{files_dir, info_of};
pub use restore::{restore, RestoreOptions, RestoreReport};

use super::context::Ctx;
use super::error::{io_reason, rt, Error, Result};
use super::lifecycle::set_vcpus_paused;
use crate::core::host::Vmm;
use crate::core::vm::{VmBackend, VmId};
use crate::sys::open;
use crate::sys::process::is_vm_id;
use crate::sys::state::{SnapshotRecord, StateStore, VmRecord, VmStatus};

/// The marker of a snapshot directory that is being written (or deleted).
pub(crate) const PARTIAL: &str = ".partial";
const STATE: &str = "state.bin";
const FC_STATE: &str = "vmstate.bin";
const FC_MEM: &str = "mem.bin";
const DISK: &str = "disk.ext4";

text_enum! {
    /// `--snapshot-type`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
    #[serde(rename_all = "lowercase")]
    pub enum SnapshotType {
        /// RAM, device state and disk: the guest's processes go on after a restore.
        #[default]
        Full = "full",
        /// SmolVM's incremental type: not supported yet (a clear error).
        Diff = "diff",
        /// The disk only: a restore boots it afresh.
        Disk = "disk",
    }
}

text_enum! {
    /// `--flush-policy`: whether the guest's file systems are synced (`sync` over SSH) before
    /// a `disk` snapshot of a running sandbox. A `full` snapshot keeps the page cache in
    /// memory, so it never needs one. `required` by default, as in SmolVM 0.0.36.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub enum FlushPolicy {
        /// The sync must succeed, or nothing is snapshotted.
        #[default]
        Required = "required",
        /// Try; go on without it when the guest does not answer.
        BestEffort = "best-effort",
        Skip = "skip",
    }
}

impl SnapshotType {
    /// Whether a snapshot of this type of a running sandbox syncs the guest's file
    /// systems first (as its [`FlushPolicy`] says): a `disk` one only.
    pub fn flushes(self) -> bool {
        self == SnapshotType::Disk
    }
}

impl FlushPolicy {
    /// What the policy does, in a few words (the dashboard's form shows it).
    pub fn meaning(self) -> &'static str {
        match self {
            FlushPolicy::Required => "sync the guest's file systems first, or fail",
            FlushPolicy::BestEffort => "try to sync them, go on without",
            FlushPolicy::Skip => "do not sync them",
        }
    }
}

/// How to take a snapshot.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub vm_id: VmId,
    /// Default `snap-<8 hex>`.
    pub snapshot_id: Option<String>,
    pub kind: SnapshotType,
    /// Run the source again afterwards (it stays paused otherwise).
    pub resume_source: bool,
    /// Refuse a sandbox that is not running (no cold disk copy of a stopped one).
    pub live_only: bool,
    pub flush: FlushPolicy,
    /// A template for `sandbox clone`: the clone agent is started in the guest first (a
    /// running QEMU sandbox, full type only).
    pub for_clone: bool,
    /// A warm-start template (with `for_clone`): the fingerprint it is kept under.
    pub warm_fingerprint: Option<String>,
}

impl CreateOptions {
    /// A snapshot of `vm_id` with every other option at its default (a full snapshot,
    /// the source left paused, a required flush: read for a disk snapshot only).
    pub fn of(vm_id: VmId) -> CreateOptions {
        CreateOptions {
            vm_id,
            snapshot_id: None,
            kind: SnapshotType::default(),
            resume_source: false,
            live_only: false,
            flush: FlushPolicy::default(),
            for_clone: false,
            warm_fingerprint: None,
        }
    }
}

/// One snapshot as listed (JSON keys of `snapshot list` and `create`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotInfo {
    pub id: String,
    pub vm_id: VmId,
    #[serde(rename = "type")]
    pub kind: SnapshotType,
    pub backend: crate::core::vm::VmBackend,
    pub created_at: String,
    /// Disk usage of its directory (blocks, so a reflinked disk counts what it uses).
    pub size_bytes: u64,
    pub path: PathBuf,
    pub restored: bool,
    pub restored_vm_id: Option<VmId>,
    /// Files it needs are gone (removed by hand): it cannot be restored.
    pub missing_files: Vec<String>,
    /// SmolVM's keys for the id and type, and its `artifacts`: the files as its row
    /// names them.
    pub snapshot_id: String,
    pub snapshot_type: SnapshotType,
    pub artifacts: Artifacts,
    /// A warm-start template: the preset whose warm starts clone it (`core::warm`).
    pub warm_template_for: Option<String>,
    /// Made by SmolVM: its files in SmolVM's own layout (`<data dir>/snapshots/<id>/`, as
    /// its row names them), which smolvm lists and deletes but does not restore.
    pub smolvm_made: bool,
}

impl SnapshotInfo {
    /// Refuse a snapshot whose files are gone before anything is made of it (`verb`:
    /// `restored`, `cloned`): which files, where, and how to be rid of it.
    pub(super) fn require_files(&self, verb: &str) -> Result<()> {
        if self.smolvm_made {
            return Err(rt(format!(
                "Snapshot '{}' was made by SmolVM (its files in {}); smolvm cannot use them, so it cannot be {verb}",
                self.id,
                self.path.display()
            ))
            .with_recovery("Restore it with SmolVM, or delete it with 'smolvm sandbox snapshot delete'."));
        }
        if self.missing_files.is_empty() {
            return Ok(());
        }
        Err(rt(format!(
            "Snapshot '{}' is missing its files ({} in {}); it cannot be {verb}",
            self.id,
            self.missing_files.join(", "),
            self.path.display()
        ))
        .with_recovery(format!(
            "Delete it with 'smolvm sandbox snapshot delete {}'.",
            self.id
        )))
    }
}

/// SmolVM's `SnapshotArtifacts`: the state (QEMU's vmstate or Firecracker's), memory
/// and disk files of a snapshot (`null` where its type has none).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Artifacts {
    pub state_path: Option<String>,
    pub memory_path: Option<String>,
    pub disk_path: String,
}

impl Artifacts {
    /// From the row's `artifacts` JSON, else its path columns (empty text is none).
    fn of(s: &SnapshotRecord) -> Self {
        let json = |k: &str| {
            s.artifacts
                .as_ref()
                .and_then(|a| a.get(k))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let column = |c: &str| (!c.is_empty()).then(|| c.to_string());
        Artifacts {
            state_path: json("state_path").or_else(|| column(&s.snapshot_path)),
            memory_path: json("memory_path").or_else(|| column(&s.mem_file_path)),
            disk_path: json("disk_path").unwrap_or_else(|| s.disk_path.clone()),
        }
    }
}

/// What `create` did.
#[derive(Debug, Clone, Serialize)]
pub struct CreateReport {
    pub snapshot: SnapshotInfo,
    /// The source sandbox's status afterwards (`paused` unless `--resume-source`).
    pub source_status: VmStatus,
    pub elapsed_ms: f64,
}

/// The files a snapshot of this backend and type consists of (a backend smolvm does not
/// run: Firecracker's, SmolVM's default).
pub(crate) fn files_of(backend: &VmBackend, kind: SnapshotType) -> &'static [&'static str] {
    match (backend.vmm(), kind) {
        (_, SnapshotType::Disk) => &[DISK],
        (Some(Vmm::Qemu), _) => &[STATE, DISK],
        _ => &[FC_STATE, FC_MEM, DISK],
    }
}

fn snapshot_dir(ctx: &Ctx, id: &str) -> Result<PathBuf> {
    ctx.paths
        .snapshot_dir(id)
        .ok_or_else(|| invalid_snapshot_id(id))
}

pub(crate) use super::error::invalid_snapshot_id;

pub(crate) fn snapshot_not_found(id: &str) -> Error {
    Error::runtime(format!("Snapshot '{id}' not found"))
        .with_recovery("Run 'smolvm sandbox snapshot list' to see snapshots.")
}

/// `snapshot list [--vm-id ID]`: every snapshot (of one VM), oldest first, and warnings
/// for rows that could not be read.
pub fn list(ctx: &Ctx, vm_id: Option<&str>) -> Result<(Vec<SnapshotInfo>, Vec<String>)> {
    let (rows, warnings) = ctx.store.list_snapshots(vm_id).map_err(rt)?;
    Ok((rows.iter().map(|s| info_of(ctx, s)).collect(), warnings))
}

/// One snapshot by id.
pub fn get(ctx: &Ctx, id: &str) -> Result<(SnapshotRecord, SnapshotInfo)> {
    if !is_vm_id(id) {
        return Err(invalid_snapshot_id(id));
    }
    let row = ctx
        .store
        .get_snapshot(id)
        .map_err(rt)?
        .ok_or_else(|| snapshot_not_found(id))?;
    let info = info_of(ctx, &row);
    Ok((row, info))
}

/// `snapshot delete ID`: under the snapshot's lock, mark its directory, delete its row,
/// then its files (only the names smolvm writes there; anything else in the directory
/// refuses the removal and is reported). Returns what was deleted. Blocks (the lock's
/// wait, the removal): an async caller runs it off its threads.
pub fn delete(ctx: &Ctx, id: &str) -> Result<SnapshotInfo> {
    tracing::info!(snapshot = %id, "deleting snapshot");
    get(ctx, id)?;
    // Under the snapshot's lock: a restore, clone or create of it finishes first (or
    // this is busy, saying who holds it); then it is read again.
    let wait = crate::core::lock::lock_timeout(&ctx.env)?;
    let what = format!("sandbox snapshot delete {id}");
    let _lock = crate::core::lock::VmLock::snapshot_blocking(&ctx.data_dir, id, &what, wait)?;
    let (row, info) = get(ctx, id)?;
    // Its files where its row says they are: smolvm's directory, or SmolVM's own; one
    // that holds what neither writes refuses the delete before anything goes.
    let dir = files_dir(ctx, &row);
    let parent = dir
        .parent()
        .unwrap_or(&ctx.paths.snapshots_dir)
        .to_path_buf();
    crate::sys::fs::check_snapshot_dir(&parent, id).map_err(|e| {
        rt(format!(
            "cannot remove {}: {}",
            dir.display(),
            io_reason(&e)
        ))
    })?;
    if dir.is_dir() {
        // Marked first: a delete killed after the row went is finished by the next sweep.
        open::create_new(&dir.join(PARTIAL), 0o600)
            .map(drop)
            .or_else(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .map_err(|e| rt(format!("cannot mark {}: {}", dir.display(), io_reason(&e))))?;
        let _ = open::sync_dir(&dir);
    }
    ctx.store.delete_snapshot(id).map_err(rt)?;
    crate::sys::fs::remove_snapshot_dir(&parent, id).map_err(|e| {
        rt(format!(
            "cannot remove {}: {}",
            dir.display(),
            io_reason(&e)
        ))
    })?;
    Ok(info)
}

/// Snapshot directories under `snapshots_dir` a killed create (or delete) left: marked
/// `.partial`, the marker not locked by a live create, and no row in `store`. Marked
/// directories with a row are complete (only their marker is left over).
pub fn partials(snapshots_dir: &Path, store: &StateStore) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(snapshots_dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = rd
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|id| abandoned(snapshots_dir, store, id) == Some(true))
        .collect();
    out.sort();
    out
}

/// `Some(true)`: an abandoned partial snapshot (no row); `Some(false)`: marked but
/// complete (a row exists); `None`: not marked, a create still holds it, or not an id.
fn abandoned(snapshots_dir: &Path, store: &StateStore, id: &str) -> Option<bool> {
    if !is_vm_id(id) {
        return None;
    }
    let marker = snapshots_dir.join(id).join(PARTIAL);
    if !matches!(open::kind(&marker), Ok(Some(open::Kind::File))) {
        return None;
    }
    let f = open::open_read(&marker).ok()?;
    // Held by a live create: not ours to judge. (Released at the end: only a probe.)
    let _probe = crate::sys::lock::try_lock_file(f).ok()?.ok()?;
    match store.get_snapshot(id) {
        Ok(None) => Some(true),
        Ok(Some(_)) => Some(false),
        Err(_) => None,
    }
}

/// Remove one abandoned partial snapshot after proving it again (marked, unlocked, no
/// row); a marked complete one only loses its marker. `Ok(false)`: nothing removed.
pub fn remove_partial(
    snapshots_dir: &Path,
    store: &StateStore,
    id: &str,
) -> std::result::Result<bool, String> {
    match abandoned(snapshots_dir, store, id) {
        Some(true) => {
            crate::sys::fs::remove_snapshot_dir(snapshots_dir, id).map_err(|e| io_reason(&e))
        }
        Some(false) => crate::sys::fs::remove_generated_file(&snapshots_dir.join(id).join(PARTIAL))
            .map(|_| false)
            .map_err(|e| io_reason(&e)),
        None => Ok(false),
    }
}

/// Remove what killed creates left (before a new one starts).
pub(crate) fn sweep_partials(ctx: &Ctx) {
    let dir = &ctx.paths.snapshots_dir;
    for id in partials(dir, &ctx.store) {
        let _ = remove_partial(dir, &ctx.store, &id);
    }
}

fn random_snapshot_id() -> String {
    format!("snap-{}", open::random_hex(4))
}

/// `sandbox snapshot create VM`: pause the source, save what the type asks for, copy its
/// disk, sync, then write the row. The source stays paused unless `resume_source` (on
/// failure it is resumed if it was running; killed, its watchdog resumes it, see
/// [`guard`]). Nothing is left of a failed create. Holds the sandbox's lock and SmolVM's
/// snapshot locks throughout.
pub async fn create(ctx: &Ctx, opts: &CreateOptions) -> Result<CreateReport> {
    let t0 = std::time::Instant::now();
    if opts.kind == SnapshotType::Diff {
        return Err(Error::runtime(
            "Snapshot type 'diff' is not supported yet; use --snapshot-type full or disk",
        ));
    }
    let id = match &opts.snapshot_id {
        Some(s) if !is_vm_id(s) => return Err(invalid_snapshot_id(s)),
        Some(s) => s.clone(),
        None => random_snapshot_id(),
    };
    // A sandbox the database does not know is "not found" before any lock file is made
    // for it or for the snapshot (the row is read again under the lock).
    ctx.vm(&opts.vm_id)?;
    let _lock = ctx
        .lock_for_snapshot(
            &opts.vm_id,
            &id,
            &format!("sandbox snapshot create {}", opts.vm_id),
        )
        .await?;
    let vm = ctx.vm(&opts.vm_id)?;
    if ctx.store.get_snapshot(&id).map_err(rt)?.is_some() {
        return Err(Error::runtime(format!("Snapshot '{id}' already exists"))
            .with_recovery("Pick another --snapshot-id, or delete the old one first."));
    }
    let live = crate::core::vm::row_is_live(&vm, &ctx.paths.socket_dir);
    let vmm = crate::core::vm::sandbox_vmm(&vm)?;
    if !live && (opts.kind == SnapshotType::Full || opts.live_only) {
        return Err(Error::runtime(format!(
            "Sandbox '{}' is not running (status: {}); a {} snapshot needs a running or paused sandbox",
            vm.id,
            if vm.status.is_active() { "error" } else { vm.status.as_str() },
            if opts.live_only { "live" } else { "full" },
        ))
        .with_recovery(format!("Run 'smolvm sandbox start {}' first.", vm.id)));
    }
    if opts.for_clone
        && (vmm != Vmm::Qemu || opts.kind != SnapshotType::Full || vm.status != VmStatus::Running)
    {
        return Err(Error::runtime(format!(
            "--for-clone needs a full snapshot of a running QEMU sandbox ('{}' is {} on {})",
            vm.id,
            if live {
                vm.status.as_str()
            } else {
                "not running"
            },
            vmm.as_str()
        )));
    }
    let disk = ctx.disk_path(&vm.id)?;
    open::regular(&disk).map_err(|e| {
        rt(format!(
            "cannot snapshot the disk {}: {}",
            disk.display(),
            io_reason(&e)
        ))
    })?;
    sweep_partials(ctx);

    let dir = snapshot_dir(ctx, &id)?;
    crate::sys::sudo::create_dirs(&ctx.paths.snapshots_dir).map_err(|e| {
        rt(format!(
            "cannot create {}: {}",
            ctx.paths.snapshots_dir.display(),
            io_reason(&e)
        ))
    })?;
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| {
                rt(format!(
                    "cannot create {}: {}",
                    dir.display(),
                    io_reason(&e)
                ))
                .with_recovery(
                    "Pick another --snapshot-id (a directory of that name is in the way).",
                )
            })?;
    }
    // From here on the directory is ours: marked and locked until the row is written.
    let marker = dir.join(PARTIAL);
    let lock = open::create_new(&marker, 0o600).map_err(rt).and_then(|f| {
        match crate::sys::lock::try_lock_file(f) {
            Ok(Ok(l)) => Ok(l),
            Ok(Err(_)) => Err(rt(format!(
                "cannot lock {}: another process holds it",
                marker.display()
            ))),
            Err(e) => Err(rt(format!(
                "cannot lock {}: {}",
                marker.display(),
                io_reason(&e)
            ))),
        }
    });
    let lock = match lock {
        Ok(l) => l,
        Err(e) => {
            let _ = crate::sys::fs::remove_snapshot_dir(&ctx.paths.snapshots_dir, &id);
            return Err(e);
        }
    };
    let was_running = live && vm.status == VmStatus::Running;
    // Killed from here on (any signal), the source is resumed by the watchdog.
    let watchdog = if was_running {
        guard::start(&vm, &id)
    } else {
        None
    };
    let r = write_snapshot(ctx, &vm, &id, &dir, &disk, vmm, live, opts).await;
    match r {
        Ok(()) => {
            let _ = crate::sys::fs::remove_generated_file(&marker);
            let _ = open::sync_dir(&dir);
            drop(lock);
            let mut source_status = vm.status;
            if live {
                source_status = VmStatus::Paused;
                if opts.resume_source {
                    set_vcpus_paused(ctx, &vm, false).await?;
                    ctx.store
                        .set_status(
                            &vm.id,
                            &VmStatus::Running,
                            vm.pid,
                            vm.socket_path.as_deref(),
                        )
                        .map_err(rt)?;
                    source_status = VmStatus::Running;
                }
            }
            if let Some(w) = watchdog {
                w.release();
            }
            let (_, info) = get(ctx, &id)?;
            Ok(CreateReport {
                snapshot: info,
                source_status,
                elapsed_ms: super::start::ms(t0.elapsed()),
            })
        }
        Err(e) => {
            if was_running {
                let _ = set_vcpus_paused(ctx, &vm, false).await;
                let _ = ctx.store.set_status(
                    &vm.id,
                    &VmStatus::Running,
                    vm.pid,
                    vm.socket_path.as_deref(),
                );
            }
            if let Some(w) = watchdog {
                w.release();
            }
            drop(lock);
            let _ = crate::sys::fs::remove_snapshot_dir(&ctx.paths.snapshots_dir, &id);
            Err(e)
        }
    }
}

/// Flush (disk type), pause, save state (full), copy the disk, sync, insert the row.
#[allow(clippy::too_many_arguments)]
async fn write_snapshot(
    ctx: &Ctx,
    vm: &VmRecord,
    id: &str,
    dir: &Path,
    disk: &Path,
    vmm: Vmm,
    live: bool,
    opts: &CreateOptions,
) -> Result<()> {
    if opts.for_clone {
        agent::launch_agent(ctx, vm).await?;
    }
    if live && vm.status == VmStatus::Running {
        if opts.kind.flushes() && opts.flush != FlushPolicy::Skip {
            if let Err(e) = flush_guest(ctx, vm).await {
                if opts.flush == FlushPolicy::Required {
                    return Err(e.with_recovery(
                        "Take it without the sync: flush policy best-effort or skip (--flush-policy best-effort).",
                    ));
                }
            }
        }
        set_vcpus_paused(ctx, vm, true).await?;
        ctx.store
            .set_status(&vm.id, &VmStatus::Paused, vm.pid, vm.socket_path.as_deref())
            .map_err(rt)?;
    }
    let budget = Duration::from_secs(600);
    let (snapshot_path, mem_path) = if opts.kind == SnapshotType::Full {
        if vmm == Vmm::Qemu {
            let state = dir.join(STATE);
            let f = open::create_new(&state, 0o600).map_err(rt)?;
            let sock = ctx
                .paths
                .qmp_socket(&vm.id)
                .ok_or_else(|| super::start::invalid_id(&vm.id))?;
            let mut q = crate::sys::vmm::qmp::Qmp::connect(&sock, Duration::from_secs(10))
                .await
                .map_err(|e| rt(format!("cannot reach QEMU of '{}': {e}", vm.id)))?;
            q.save_state(&f, budget)
                .await
                .map_err(|e| rt(format!("QEMU could not save the VM state: {e}")))?;
            f.sync_all().map_err(rt)?;
            (state, None)
        } else {
            let (state, mem) = (dir.join(FC_STATE), dir.join(FC_MEM));
            let sock = ctx
                .paths
                .firecracker_socket(&vm.id)
                .ok_or_else(|| super::start::invalid_id(&vm.id))?;
            fc_snapshot_create(ctx, vm, &sock, &state, &mem, budget).await?;
            for p in [&state, &mem] {
                open::open_read(p).and_then(|f| f.sync_all()).map_err(rt)?;
            }
            (state, Some(mem))
        }
    } else {
        (PathBuf::new(), None)
    };
    let disk_copy = dir.join(DISK);
    let (src, dst) = (disk.to_path_buf(), disk_copy.clone());
    tokio::task::spawn_blocking(move || {
        crate::sys::disk::isolated_copy(&src, &dst, crate::sys::disk::Durable::Now)
    })
    .await
    .map_err(rt)?
    .map_err(|e| {
        rt(format!(
            "cannot copy {} to {}: {}",
            disk.display(),
            disk_copy.display(),
            io_reason(&e)
        ))
    })?;
    let mem_path = if opts.for_clone {
        template::write(ctx, vm, dir, id).await?;
        open::sync_dir(dir).map_err(rt)?;
        Some(dir.join(template::RAM))
    } else {
        mem_path
    };
    open::sync_dir(dir).map_err(rt)?;
    let text = |p: &Path| p.display().to_string();
    let mut config = vm.config.clone();
    config.rootfs_path = Some(disk.to_path_buf());
    if opts.for_clone {
        config.extras.clone_agent = Some(true);
        config.extras.warm_template = opts.warm_fingerprint.clone();
    }
    let row = SnapshotRecord {
        snapshot_id: id.to_string(),
        vm_id: vm.id.clone(),
        snapshot_path: if snapshot_path.as_os_str().is_empty() {
            String::new()
        } else {
            text(&snapshot_path)
        },
        mem_file_path: mem_path.as_deref().map(text).unwrap_or_default(),
        disk_path: text(&disk_copy),
        backend: Some(vmm.as_str().to_string()),
        artifacts: Some(serde_json::json!({
            "state_path": (!snapshot_path.as_os_str().is_empty()).then(|| text(&snapshot_path)),
            "memory_path": mem_path.as_deref().map(text),
            "disk_path": text(&disk_copy),
        })),
        vm_config: config,
        network_config: serde_json::to_value(vm.network.clone().unwrap_or_default())
            .unwrap_or_default(),
        created_at: String::new(),
        snapshot_type: Some(opts.kind.as_str().into()),
        restored: false,
        restored_vm_id: None,
    };
    ctx.store.insert_snapshot(&row).map_err(rt)?;
    // The sandbox's network settings go with the snapshot (its restores and clones get
    // the same egress policy, names included).
    let settings = crate::core::egress::settings_of(&ctx.store, vm);
    ctx.store
        .set_snapshot_network_settings(id, &serde_json::to_value(&settings).map_err(rt)?)
        .map_err(rt)
}

/// Firecracker's `PUT /snapshot/create` into `state` and `mem`. A Firecracker running as an
/// unprivileged user cannot reach the snapshots folder: it writes into a private folder of
/// its user in the sockets' folder, and the files are copied from there (checked to be its
/// own regular files, read through descriptors) into the snapshot, root's 0600.
async fn fc_snapshot_create(
    ctx: &Ctx,
    vm: &VmRecord,
    sock: &Path,
    state: &Path,
    mem: &Path,
    budget: Duration,
) -> Result<()> {
    use crate::sys::vmm::{firecracker, prepare};
    let me = crate::sys::users::euid();
    let owner = vm
        .pid
        .and_then(|p| i32::try_from(p).ok())
        .and_then(crate::sys::procfs::confinement)
        .filter(|c| c.uid != me);
    let Some(owner) = owner else {
        return firecracker::snapshot_create(sock, state, mem, budget)
            .await
            .map_err(rt);
    };
    let id = crate::sys::users::Identity {
        uid: owner.uid,
        gid: owner.gid,
    };
    let x = prepare::exchange_dir(&ctx.paths.socket_dir, &vm.id, id, &[]).map_err(|e| {
        rt(format!(
            "cannot make a folder for Firecracker's snapshot files in {}: {}",
            ctx.paths.socket_dir.display(),
            io_reason(&e)
        ))
    })?;
    let r = async {
        firecracker::snapshot_create(sock, &x.join(FC_STATE), &x.join(FC_MEM), budget)
            .await
            .map_err(rt)?;
        for (name, dest) in [(FC_STATE, state), (FC_MEM, mem)] {
            prepare::take_file(&x, name, owner.uid, dest).map_err(|e| {
                rt(format!(
                    "cannot take Firecracker's {name}: {}",
                    io_reason(&e)
                ))
            })?;
        }
        Ok(())
    }
    .await;
    prepare::remove_exchange_dir(&x);
    r
}

/// `command` in the sandbox's guest over SSH with `stdin` fed to it (none: `/dev/null`),
/// bounded by 30 s (`what` names it when the time runs out); its output, whatever its
/// exit status.
pub(super) async fn in_guest(
    ctx: &Ctx,
    vm: &VmRecord,
    command: &[String],
    stdin: Option<&[u8]>,
    what: &str,
) -> Result<crate::sys::child::Captured> {
    let argv = super::lifecycle::ssh_argv(ctx, &VmId::known(&vm.id), command, false)?;
    let input = stdin.map(<[u8]>::to_vec);
    let out = tokio::task::spawn_blocking(move || {
        crate::sys::child::run_with_input(&argv, input.as_deref(), Some(Duration::from_secs(30)))
    })
    .await
    .map_err(|e| rt(format!("{what} failed: {e}")))?
    .map_err(|e| rt(format!("cannot run ssh: {}", io_reason(&e))))?;
    if out.status.is_none() {
        return Err(rt(format!("{what} timed out")));
    }
    Ok(out)
}

/// `sync` in the guest over SSH (bounded), so a disk copy holds what was written.
async fn flush_guest(ctx: &Ctx, vm: &VmRecord) -> Result<()> {
    let out = in_guest(
        ctx,
        vm,
        &["sync".to_string()],
        None,
        "flushing the guest's file systems",
    )
    .await?;
    if out.status.is_some_and(|s| s.success()) {
        Ok(())
    } else {
        Err(rt(format!(
            "flushing the guest's file systems failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A restore and a clone refuse a snapshot with missing files in the same words: the
    /// files, where they were, and how to be rid of it (the clone's copy named neither).
    #[test]
    fn restore_and_clone_refuse_missing_files_alike() {
        let mut info = SnapshotInfo {
            id: "snap-1".into(),
            vm_id: VmId::known("vm-a"),
            kind: SnapshotType::Full,
            backend: crate::core::vm::VmBackend::parse("qemu"),
            created_at: String::new(),
            size_bytes: 0,
            path: PathBuf::from("/s/snap-1"),
            restored: false,
            restored_vm_id: None,
            missing_files: Vec::new(),
            snapshot_id: "snap-1".into(),
            snapshot_type: SnapshotType::Full,
            artifacts: Artifacts {
                state_path: None,
                memory_path: None,
                disk_path: String::new(),
            },
            warm_template_for: None,
            smolvm_made: false,
        };
        assert!(info.require_files("cloned").is_ok());
        info.missing_files = vec!["disk.ext4".into(), "state".into()];
        for verb in ["restored", "cloned"] {
            let e = info.require_files(verb).unwrap_err();
            assert_eq!(
                e.message,
                format!("Snapshot 'snap-1' is missing its files (disk.ext4, state in /s/snap-1); it cannot be {verb}")
            );
            assert_eq!(
                e.recovery.as_deref(),
                Some("Delete it with 'smolvm sandbox snapshot delete snap-1'.")
            );
        }
    }
}
