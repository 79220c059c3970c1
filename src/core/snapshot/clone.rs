//! `sandbox clone SNAPSHOT [--count N] [--prefix P | --name NAME]`: new sandboxes from one
//! full QEMU snapshot made with `snapshot create --for-clone`. Each clone is a sandbox of
//! its own — id, row, IP lease, MAC, TAP, SSH port, the snapshot's egress policy, a disk
//! copied from the snapshot's (a reflink where the file system can, else sparse) — that
//! loads the snapshot's RAM and device state, so the guest's processes go on in every
//! clone. The clones of one run are brought up at once (up to [`default_parallel`]).
//!
//! Re-addressing: a clone wakes up with the template's address. Every cold QEMU boot has a
//! second UART (the guest's `ttyS1`, [`AgentPort`](crate::sys::vmm::qemu::AgentPort));
//! `snapshot create --for-clone` copies the clone agent ([`AGENT_BIN`](super::agent::AGENT_BIN))
//! into the guest over SSH and starts it, waiting on that port, before the state is saved.
//! A clone's QEMU gives the port a Unix socket as its host end; once the clone runs,
//! smolvm sends one line — the new address, MAC and 64 fresh random bytes — and the agent
//! moves `eth0` to the new address, drops the gateway's neighbour entry, writes the bytes
//! into `/dev/urandom` and forces the kernel's CRNG to reseed (`RNDRESEEDCRNG`), so two
//! clones never produce the same random bytes; all with system calls, no program started.
//! Until it has answered, the clone sits alone on its own TAP (the host routes the old
//! address to the template's TAP, and the egress guard drops its packets from any other
//! source address); a clone that does not answer is rolled back — never two guests on one
//! address. SSH host keys are the template's: every clone has the same ones.

use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{get, rt, SnapshotInfo, SnapshotType, STATE};
use crate::core::context::Ctx;
use crate::core::error::{io_reason, Error, Result};
use crate::core::host::{AccelRequest, Backend};
use crate::core::images::Vmm;
use crate::core::progress::Progress;
use crate::core::start::{self, StartEvent};
use crate::core::vm::VmId;
use crate::sys::open;
use crate::sys::state::{Network, VmStatus};

#[derive(Debug, Clone, Default)]
pub struct CloneOptions {
    pub snapshot_id: String,
    pub count: u32,
    /// Clone ids `<prefix>-1`, `<prefix>-2`, … (ids taken are skipped).
    pub prefix: Option<String>,
    /// The one clone's id (`count` 1 only).
    pub name: Option<String>,
    pub boot_timeout: Option<Duration>,
    /// Load the snapshot's RAM into each clone's own memory (as a restore does) instead
    /// of mapping its RAM file.
    pub copy_memory: bool,
    /// The clone's egress policy and SSH publication (default: its snapshot's).
    pub network: Option<crate::core::egress::Settings>,
    /// How many clones are brought up at once (default [`default_parallel`]).
    pub parallel: Option<usize>,
    /// Leave each clone's agent socket after its re-addressing, for a warm start to
    /// forward through (it removes the socket then; a rollback removes it too).
    pub keep_agent_socket: bool,
}

/// What `clone` made: the snapshot and one entry per clone.
#[derive(Debug, Clone, Serialize)]
pub struct CloneReport {
    pub snapshot_id: String,
    pub template_vm_id: VmId,
    pub clones: Vec<ClonedVm>,
    pub elapsed_ms: f64,
}

impl CloneReport {
    /// The line both faces end a clone with: `Cloned snapshot S into N sandbox(es) in
    /// T s.`
    pub fn summary(&self) -> String {
        format!(
            "Cloned snapshot {} into {} sandbox{} in {:.2} s.",
            self.snapshot_id,
            self.clones.len(),
            if self.clones.len() == 1 { "" } else { "es" },
            self.elapsed_ms / 1000.0
        )
    }
}

/// One clone: the restored sandbox's keys, and how long it took.
#[derive(Debug, Clone, Serialize)]
pub struct ClonedVm {
    #[serde(flatten)]
    pub vm: super::restore::RestoredVm,
    /// From the start of this clone to its SSH server answering.
    pub elapsed_ms: f64,
}

/// The most clones one run makes (`--count`, the dashboard's `:clone` and branch form).
pub const MAX_CLONES: u32 = 64;

/// How many clones `sandbox clone` and `sandbox branch` make when no count is given (the
/// dashboard's branch form and `:clone` too).
pub const DEFAULT_CLONES: u32 = 1;

/// A clone count is 1 to [`MAX_CLONES`].
pub fn check_count(count: u32) -> Result<()> {
    if (1..=MAX_CLONES).contains(&count) {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "--count must be from 1 to {MAX_CLONES}, got {count}"
        )))
    }
}

/// The usage errors of `opts`, before anything is looked up: a face makes these checks
/// before it opens the state database, so a bad request changes nothing on disk.
pub fn check_clone(opts: &CloneOptions) -> Result<()> {
    check_count(opts.count)?;
    if let Some(n) = &opts.name {
        if opts.count != 1 {
            return Err(Error::usage(
                "--name names one clone; use --prefix with --count",
            ));
        }
        VmId::name(n)?;
    }
    if let Some(p) = &opts.prefix {
        check_prefix(p, opts.count)?;
    }
    Ok(())
}

/// `prefix` makes valid sandbox ids (`<prefix>-<n>`, the first `count` of them).
fn check_prefix(prefix: &str, count: u32) -> Result<()> {
    match VmId::new(&format!("{prefix}-{count}")) {
        Some(_) => Ok(()),
        None => Err(bad_prefix(prefix)),
    }
}

fn bad_prefix(prefix: &str) -> Error {
    Error::usage(format!(
        "--prefix '{prefix}' does not make valid sandbox ids (lower-case letters, digits, '-' and '_')"
    ))
}

/// The ids the clones get, checked before anything is made.
pub(super) fn clone_ids(ctx: &Ctx, opts: &CloneOptions) -> Result<Vec<VmId>> {
    if let Some(n) = &opts.name {
        let id = VmId::name(n)?;
        if ctx.store.get_vm(&id).map_err(rt)?.is_some() {
            return Err(Error::runtime(format!("Sandbox '{n}' already exists"))
                .with_recovery("Pick another --name, or delete it first."));
        }
        return Ok(vec![id]);
    }
    let mut ids = Vec::new();
    match &opts.prefix {
        Some(p) => {
            let mut i = 1u32;
            while ids.len() < opts.count as usize {
                let Some(id) = VmId::new(&format!("{p}-{i}")) else {
                    return Err(bad_prefix(p));
                };
                if ctx.store.get_vm(&id).map_err(rt)?.is_none() {
                    ids.push(id);
                }
                i += 1;
            }
        }
        None => {
            while ids.len() < opts.count as usize {
                let id = VmId::random();
                if ctx.store.get_vm(&id).map_err(rt)?.is_none() && !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
    }
    Ok(ids)
}

/// How many clones are brought up at once by default: the host's CPU count, at least 2 (a
/// clone mostly waits — on its disk copy, its QEMU, its guest's agent and SSH server).
pub fn default_parallel() -> usize {
    std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
        .max(2)
}

/// What a clone run tells its caller about each clone.
pub(super) struct Hooks<'a> {
    /// Clone `id`'s own progress sink.
    pub progress: &'a (dyn Fn(&VmId) -> Progress<StartEvent> + Sync),
    /// Clone `index` (from 0) of the run begins.
    pub starting: &'a (dyn Fn(usize, &VmId) + Sync),
    /// A clone answers SSH.
    pub done: &'a (dyn Fn(&ClonedVm) + Sync),
    /// Whether the run was cancelled: no further clone begins.
    pub cancelled: &'a (dyn Fn() -> bool + Sync),
}

/// What a clone run made: the clones that answer SSH (in id order), and when some did not,
/// the first failure (in id order) and how many failed or never began.
pub(super) struct Made {
    pub clones: Vec<ClonedVm>,
    pub failed: Option<Failure>,
}

pub(super) struct Failure {
    pub error: Error,
    /// The other clones that failed.
    pub more: usize,
    /// The clones never begun (a failure or a cancel came first).
    pub not_begun: Vec<VmId>,
}

impl Failure {
    /// The first error, naming what else failed, what was never begun and what was kept
    /// (`kept`: how the caller names the clones made).
    pub fn error(self, kept: &str) -> Error {
        let mut notes = Vec::new();
        if self.more > 0 {
            notes.push(format!("{} more failed", self.more));
        }
        if !self.not_begun.is_empty() {
            let ids: Vec<&str> = self.not_begun.iter().map(VmId::as_str).collect();
            notes.push(format!("not begun: {}", ids.join(", ")));
        }
        if !kept.is_empty() {
            notes.push(kept.to_string());
        }
        if notes.is_empty() {
            return self.error;
        }
        let message = format!("{} ({})", self.error.message, notes.join("; "));
        Error {
            message,
            ..self.error
        }
    }
}

/// Clone a `--for-clone` full QEMU snapshot into `count` running sandboxes, up to
/// [`default_parallel`] at once; a clone that fails is rolled back alone, the others are
/// kept (the error says which) and no further clone begins.
pub async fn clone(
    ctx: &Ctx,
    opts: &CloneOptions,
    progress: &Progress<(VmId, StartEvent)>,
) -> Result<CloneReport> {
    tracing::info!(snapshot = %opts.snapshot_id, count = opts.count, "cloning snapshot");
    let t0 = Instant::now();
    check_clone(opts)?;
    // A cancel that came first: nothing begins.
    if progress.cancelled() {
        return Err(Error::new(
            crate::core::error::ErrorCode::Interrupted,
            format!("Clone of snapshot '{}' cancelled", opts.snapshot_id),
        ));
    }
    let (_, info) = checked_snapshot(ctx, &opts.snapshot_id)?;
    let ids = clone_ids(ctx, opts)?;
    let made = clone_all(
        ctx,
        &opts.snapshot_id,
        &ids,
        opts,
        &Hooks {
            // Each event names its clone: the clones of a run come up at once.
            progress: &|id| {
                let tag = id.clone();
                progress.map(move |e: StartEvent| (tag.clone(), e))
            },
            starting: &|_, _| {},
            done: &|_| {},
            cancelled: &|| progress.cancelled(),
        },
    )
    .await?;
    if let Some(f) = made.failed {
        let names: Vec<&str> = made.clones.iter().map(|c| c.vm.name.as_str()).collect();
        let kept = if names.is_empty() {
            String::new()
        } else {
            format!("clones made, kept: {}", names.join(", "))
        };
        return Err(f.error(&kept));
    }
    Ok(CloneReport {
        snapshot_id: info.id.clone(),
        template_vm_id: info.vm_id.clone(),
        clones: made.clones,
        elapsed_ms: start::ms(t0.elapsed()),
    })
}

/// Snapshot `snapshot_id` if clones can be made of it: a full QEMU snapshot made for
/// cloning, its files all there.
fn checked_snapshot(
    ctx: &Ctx,
    snapshot_id: &str,
) -> Result<(crate::sys::state::SnapshotRecord, SnapshotInfo)> {
    let (row, info) = get(ctx, snapshot_id)?;
    if info.kind != SnapshotType::Full
        || crate::core::vm::snapshot_vmm(&row).ok() != Some(crate::core::host::Vmm::Qemu)
    {
        return Err(Error::runtime(format!(
            "Snapshot '{}' is a {} {} snapshot; clones need a full QEMU snapshot",
            info.id,
            row.backend(),
            info.kind
        ))
        .with_recovery("Take one with 'smolvm sandbox snapshot create VM --for-clone'."));
    }
    if row.vm_config.extras.clone_agent != Some(true) {
        return Err(Error::runtime(format!(
            "Snapshot '{}' was not made for cloning: its clones could not be re-addressed",
            info.id
        ))
        .with_recovery(format!(
            "Take one with 'smolvm sandbox snapshot create {} --for-clone'.",
            info.vm_id
        )));
    }
    info.require_files("cloned")?;
    Ok((row, info))
}

/// Clones `ids` of snapshot `snapshot_id`, up to `opts.parallel` (else
/// [`default_parallel`]) at once. Every clone's lock is taken first, then the snapshot's
/// (the lock order of every snapshot operation), and held for the run: a lock that cannot
/// be had fails the run before anything is made. Each clone's IP lease, TAP and SSH port
/// come from one database transaction each, its nftables under the network lock. A clone
/// that fails is rolled back alone; after a failure or a cancel no further clone begins.
pub(super) async fn clone_all(
    ctx: &Ctx,
    snapshot_id: &str,
    ids: &[VmId],
    opts: &CloneOptions,
    hooks: &Hooks<'_>,
) -> Result<Made> {
    use futures::StreamExt as _;
    use std::sync::atomic::{AtomicBool, Ordering};

    let what = format!("sandbox clone {snapshot_id}");
    let mut locks = Vec::with_capacity(ids.len());
    for id in ids {
        locks.push(ctx.lock_for_clone(id, &what).await?);
    }
    let _snapshot_lock = ctx.lock_snapshot(snapshot_id, &what).await?;
    // Checked again under the lock: the snapshot may have gone meanwhile.
    let (row, info) = checked_snapshot(ctx, snapshot_id)?;
    let memory = SharedRam::begin(&info, opts);
    let parallel = opts.parallel.unwrap_or_else(default_parallel).max(1);
    tracing::debug!(snapshot = %snapshot_id, count = ids.len(), parallel, "cloning at once");
    let stop = AtomicBool::new(false);
    let (row, info, stop, memory) = (&row, &info, &stop, memory.as_ref());
    let mut results: Vec<(usize, Option<Result<ClonedVm>>)> =
        // Owned items: the stream stays `Send` for the dashboard's task.
        futures::stream::iter(ids.iter().cloned().zip(locks).enumerate())
            .map(|(i, (id, lock))| async move {
                if stop.load(Ordering::SeqCst) || (hooks.cancelled)() {
                    return (i, None);
                }
                (hooks.starting)(i, &id);
                let p = (hooks.progress)(&id);
                let r = clone_one(ctx, row, info, memory, &id, lock, opts, &p).await;
                match &r {
                    Ok(c) => (hooks.done)(c),
                    Err(_) => stop.store(true, Ordering::SeqCst),
                }
                (i, Some(r))
            })
            .buffer_unordered(parallel)
            .collect()
            .await;
    results.sort_by_key(|(i, _)| *i);
    let mut made = Made {
        clones: Vec::new(),
        failed: None,
    };
    let mut not_begun = Vec::new();
    let mut errors = Vec::new();
    for (i, r) in results {
        match r {
            Some(Ok(c)) => made.clones.push(c),
            Some(Err(e)) => errors.push(e),
            None => not_begun.push(ids[i].clone()),
        }
    }
    let mut errors = errors.into_iter();
    let first = match errors.next() {
        Some(e) => Some(e),
        // Nothing failed, yet some never began: the run was cancelled.
        None if !not_begun.is_empty() => Some(Error::new(
            crate::core::error::ErrorCode::Interrupted,
            format!("Clones of snapshot '{snapshot_id}' cancelled"),
        )),
        None => None,
    };
    made.failed = first.map(|error| Failure {
        error,
        more: errors.len(),
        not_begun,
    });
    Ok(made)
}

/// The snapshot's RAM as one sealed in-memory copy for every clone of a run to map
/// private ([`start::Ram::Maps`]). Clones never map `ram.bin` itself: QEMU 7.2 opens a
/// RAM file read-write even to map it private, so a VMM its guest took over could write
/// into what its siblings map. The copy begins with the run, beside each clone's disk
/// and network, and a clone waits for it only as its QEMU is about to spawn.
pub(super) struct SharedRam {
    copying: std::sync::Mutex<Option<tokio::task::JoinHandle<Result<OwnedFd>>>>,
    copied: tokio::sync::OnceCell<OwnedFd>,
}

impl SharedRam {
    /// Begin the copy when the snapshot has a RAM file and `--copy-memory` is not asked
    /// for; `None`: each clone loads the RAM from `state.bin` into its own memory.
    fn begin(info: &SnapshotInfo, opts: &CloneOptions) -> Option<SharedRam> {
        let (ram, ram_state) = (
            info.path.join(super::template::RAM),
            info.path.join(super::template::CLONE_STATE),
        );
        let regular = |p: &std::path::Path| matches!(open::kind(p), Ok(Some(open::Kind::File)));
        if opts.copy_memory || !regular(&ram) || !regular(&ram_state) {
            return None;
        }
        let copying = tokio::task::spawn_blocking(move || {
            let t = Instant::now();
            let copy = open::open_read(&ram).and_then(|f| crate::sys::vmm::prepare::sealed_ram(&f));
            let mib = copy
                .as_ref()
                .ok()
                .and_then(crate::sys::vmm::prepare::memory_bytes)
                .map(|b| b >> 20);
            tracing::debug!(
                ms = start::ms(t.elapsed()),
                mib,
                "clone: RAM copied and sealed"
            );
            copy.map_err(|e| {
                rt(format!(
                    "cannot copy the snapshot's RAM ({}): {}",
                    ram.display(),
                    io_reason(&e)
                ))
            })
        });
        Some(SharedRam {
            copying: std::sync::Mutex::new(Some(copying)),
            copied: tokio::sync::OnceCell::new(),
        })
    }

    /// The sealed copy, once it is made (the first clone to ask waits for it).
    async fn get(&self) -> Result<&OwnedFd> {
        self.copied
            .get_or_try_init(|| async {
                let copying = self.copying.lock().map_err(rt)?.take();
                match copying {
                    Some(c) => c.await.map_err(rt)?,
                    None => Err(rt("the snapshot's RAM could not be copied")),
                }
            })
            .await
    }
}

#[allow(clippy::too_many_arguments)]
async fn clone_one(
    ctx: &Ctx,
    row: &crate::sys::state::SnapshotRecord,
    info: &SnapshotInfo,
    memory: Option<&SharedRam>,
    id: &VmId,
    _lock: crate::core::lock::VmLock,
    opts: &CloneOptions,
    progress: &Progress<StartEvent>,
) -> Result<ClonedVm> {
    let t0 = Instant::now();
    let mut abort = start::Abort::new(format!("Clone '{id}' of snapshot '{}'", info.id));
    abort.hold_signals();
    abort.check(progress)?;
    let runtime = qemu_runtime(ctx, &row.vm_config, &info.id, opts.boot_timeout, progress)?;
    start::check_kernel_and_mounts(ctx, start::Whose::Snapshot(&info.id), &row.vm_config)?;

    let disk = ctx.disk_path(id)?;
    let mut config =
        super::restore::insert_restoring_row(ctx, id, &info.id, &row.vm_config, &disk, |c| {
            c.extras.restored_from_snapshot = None;
            c.extras.clone_agent = None;
            c.extras.cloned_from = Some(info.id.clone());
            c.extras.warm_template = None;
        })?;
    let settings = match &opts.network {
        Some(s) => s.clone(),
        None => crate::core::egress::snapshot_settings(&ctx.store, &info.id, &row.vm_config),
    };
    let r = match crate::core::egress::save(&ctx.store, id, &settings) {
        Ok(()) => {
            let up = bring_up(
                ctx, info, memory, &runtime, id, &disk, opts, &abort, progress,
            );
            up.await
        }
        Err(e) => Err(e),
    };
    let r = abort.settle(r, progress);
    let (net, pid) = match r {
        Ok(v) => v,
        Err(e) => return Err(start::roll_back(ctx, id, e, progress).await),
    };
    config.extras.restoring_snapshot = None;
    ctx.store.set_config(id, &config).map_err(rt)?;
    Ok(ClonedVm {
        vm: super::restore::RestoredVm {
            name: id.to_string(),
            status: VmStatus::Running,
            ip_address: net.guest_ip.clone().unwrap_or_default(),
            ssh_port: net.ssh_host_port,
            pid: Some(pid),
        },
        elapsed_ms: start::ms(t0.elapsed()),
    })
}

/// The QEMU runtime a snapshot's config asks for: its accelerator and its machine,
/// resolved as `sandbox start` resolves them (the saved state loads only into the same).
pub(crate) fn qemu_runtime(
    ctx: &Ctx,
    config: &crate::sys::state::VmConfig,
    snapshot_id: &str,
    boot_timeout: Option<Duration>,
    progress: &Progress<StartEvent>,
) -> Result<crate::core::host::Runtime> {
    let accel = match config.extras.accel.as_deref() {
        None => None,
        Some(a) => Some(AccelRequest::parse(a).ok_or_else(|| {
            rt(format!(
                "Snapshot '{snapshot_id}' has an unknown accelerator '{a}'"
            ))
        })?),
    };
    let mut runtime = start::runtime(
        ctx,
        Backend::from_vmm(Some(Vmm::Qemu)),
        accel,
        boot_timeout,
        progress,
    )?;
    start::set_machine(&mut runtime, config.qemu_machine.as_deref(), |m| {
        rt(format!(
            "Snapshot '{snapshot_id}' has an unknown QEMU machine '{m}'"
        ))
    })?;
    Ok(runtime)
}

/// The prefix length of a dotted netmask (`255.255.255.0` → 24).
fn prefix_len(mask: &str) -> Option<u32> {
    let m: Ipv4Addr = mask.parse().ok()?;
    let bits = u32::from(m);
    (bits.leading_ones() + bits.trailing_zeros() == 32).then(|| bits.leading_ones())
}

/// Remove clone `id`'s agent socket (nothing more may connect to it).
pub(crate) fn remove_agent_socket(ctx: &Ctx, id: &VmId) {
    let _ = crate::sys::fs::remove_vm_file(
        crate::sys::fs::VmFile::AgentSocket,
        &ctx.data_dir,
        &ctx.paths.socket_dir,
        id,
    );
}

/// The line the agent reads: `readdr NONCE ADDR GATEWAY PREFIX MAC SEED` (64 random bytes
/// as hex).
fn readdr_line(nonce: &str, net: &Network) -> Result<String> {
    let bad = || rt("the clone's network configuration is incomplete");
    let ip: Ipv4Addr = net
        .guest_ip
        .as_deref()
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let gw: Ipv4Addr = net
        .gateway_ip
        .as_deref()
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let bits = prefix_len(net.netmask.as_deref().unwrap_or("255.255.255.0")).ok_or_else(bad)?;
    let mac = net
        .guest_mac
        .as_deref()
        .ok_or_else(bad)?
        .to_ascii_lowercase();
    if mac.len() != 17 || !mac.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
        return Err(bad());
    }
    Ok(format!(
        "readdr {nonce} {ip} {gw} {bits} {mac} {}",
        open::random_hex(64)
    ))
}

/// Disk, leases, network, QEMU waiting for the state; the state loaded, the guest run,
/// re-addressed and reseeded through its agent, then its SSH server waited for.
#[allow(clippy::too_many_arguments)]
async fn bring_up(
    ctx: &Ctx,
    info: &SnapshotInfo,
    memory: Option<&SharedRam>,
    runtime: &crate::core::host::Runtime,
    id: &VmId,
    disk: &std::path::Path,
    opts: &CloneOptions,
    abort: &start::Abort,
    progress: &Progress<StartEvent>,
) -> Result<(Network, i64)> {
    // The disk's file first (full length, under a temporary name), then its data going in
    // off the async threads while the network (lease, TAP, rules) is set up and QEMU starts
    // and loads the state, none of which reads the disk: the guest runs only once the data
    // is in and the file has the disk's name. A failure anywhere rolls the clone back whole
    // (`start::roll_back`); a copy still going is waited for and its file removed.
    let t0 = Instant::now();
    let source = info.path.join(super::DISK);
    let pending = super::restore::start_disk_copy(ctx, id, &source, disk).await?;
    let (disk_file, staged) = (
        pending.file().try_clone().map_err(rt)?,
        pending.path().to_path_buf(),
    );
    let filling = super::restore::fill_disk(pending);
    let net = start::setup_network(ctx, id, progress).await;
    tracing::debug!(vm = %id, ms = start::ms(t0.elapsed()), "clone: network set up");
    let net = net?;
    abort.check(progress)?;
    let (log, socket) = start::prepare_files(ctx, id, Vmm::Qemu, &staged)?;
    let row = ctx
        .store
        .get_vm(id)
        .map_err(rt)?
        .ok_or_else(|| rt(format!("Sandbox '{id}' vanished while cloning")))?;
    let ip: Ipv4Addr = net
        .guest_ip
        .as_deref()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| rt("the clone got no address"))?;
    let agent_socket = ctx
        .paths
        .agent_socket(id)
        .ok_or_else(|| start::invalid_id(id))?;
    // The run's sealed copy of the snapshot's RAM mapped private when it has one, else
    // its RAM loaded from the state.
    let ram_state = info.path.join(super::template::CLONE_STATE);
    let shared = memory.is_some();
    progress.emit(StartEvent::PhaseStarted(start::Phase::Spawn));
    let t_spawn = Instant::now();
    let checked = start::check_disk_to_come(ctx, id, &row.config)?;
    let ram = match memory {
        Some(m) => Some(m.get().await?),
        None => None,
    };
    let spawned = start::spawn_vmm(
        ctx,
        runtime,
        start::VmmJob {
            incoming: true,
            disk: Some(&disk_file),
            agent_socket: Some(&agent_socket),
            ram: ram.map(start::Ram::Maps),
            ..start::VmmJob::new(&row, &checked, &net, &socket, &log)
        },
    )?;
    let (mut child, user) = (spawned.child, spawned.user);
    let pid = i64::from(child.id());
    let deadline = Instant::now() + runtime.boot_timeout;
    let r = async {
        start::record_spawned(ctx, id, VmStatus::Paused, pid, &socket)?;
        let doing = format!("cloning '{id}'");
        let loading = async {
            let mut q = super::restore::connect_qmp(
                &mut child, &socket, &user, &log, deadline, &doing, abort, progress,
            )
            .await?;
            let state = if shared {
                super::template::ignore_shared(&mut q).await?;
                open::open_read(&ram_state).map_err(rt)?
            } else {
                open::open_read(&info.path.join(STATE)).map_err(rt)?
            };
            tracing::debug!(vm = %id, ms = start::ms(t_spawn.elapsed()), "clone: QEMU spawned, QMP connected");
            let t_load = Instant::now();
            let budget = deadline.saturating_duration_since(Instant::now());
            q.set_timeout(budget.max(Duration::from_secs(60)));
            super::restore::load_state(&mut q, &state, budget, &log).await?;
            tracing::debug!(vm = %id, ms = start::ms(t_load.elapsed()), "clone: state loaded");
            Ok::<_, Error>(q)
        };
        // Both to their end, whatever either does: the copy is never left running.
        let (loaded, filled) = tokio::join!(loading, filling.wait());
        let mut q = loaded?;
        super::restore::commit_disk(filled?)?;
        tracing::debug!(vm = %id, ms = start::ms(t0.elapsed()), "clone: disk in place");
        progress.emit(StartEvent::PhaseDone(
            start::Phase::Spawn,
            t_spawn.elapsed(),
        ));
        abort.check(progress)?;
        // The agent's socket is root's before anyone talks to it.
        start::claim_leftover_socket(&agent_socket, &user);
        q.execute("cont", None).await.map_err(rt)?;
        drop(q);
        start::record_spawned(ctx, id, VmStatus::Running, pid, &socket)?;
        progress.emit(StartEvent::PhaseStarted(start::Phase::Boot));
        let t = Instant::now();
        let nonce = open::random_hex(8);
        let line = readdr_line(&nonce, &net)?;
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(5));
        let answer = crate::sys::vmm::agent::exchange(&agent_socket, &line, &nonce, left)
            .await
            .map_err(|e| {
                rt(format!(
                    "the clone's guest agent did not re-address it: {}{}",
                    io_reason(&e),
                    start::log_tail(&log)
                ))
            })?;
        tracing::debug!(vm = %id, ms = start::ms(t.elapsed()), "clone: agent answered");
        let t_ssh = Instant::now();
        // The socket has done its work: nothing else may connect to it (a warm start
        // removes it once it has forwarded through it).
        if !opts.keep_agent_socket {
            remove_agent_socket(ctx, id);
        }
        match answer.as_str() {
            "ok" => {}
            "err-seed" => {
                return Err(rt(
                    "the clone's guest could not reseed its random number generator",
                ))
            }
            other => {
                return Err(rt(format!(
                    "the clone's guest could not take its new address {ip} ({other})"
                )))
            }
        }
        let up = crate::core::ssh::wait_ssh_unless(ip, deadline, || abort.stopped(progress)).await;
        abort.check(progress)?;
        if !up {
            return Err(rt(format!(
                "the clone's SSH server at {ip}:22 did not answer in time"
            ))
            .with_recovery("Raise --boot-timeout."));
        }
        tracing::debug!(vm = %id, ms = start::ms(t_ssh.elapsed()), "clone: SSH answered");
        progress.emit(StartEvent::PhaseDone(start::Phase::Boot, t.elapsed()));
        Ok(())
    }
    .await;
    start::settle(child, r, &[&socket, &agent_socket], &user)?;
    Ok((net, pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Core refuses a count outside 1…64 whichever face asks (the CLI's `--count`, the
    /// dashboard's `:clone`, a branch).
    #[test]
    fn a_clone_count_is_one_to_sixty_four() {
        for ok in [1, 64] {
            assert!(check_count(ok).is_ok());
        }
        for bad in [0, 65, 4_000_000_000] {
            let e = check_count(bad).unwrap_err();
            assert_eq!(e.code, crate::core::ErrorCode::Usage);
            assert_eq!(
                e.message,
                format!("--count must be from 1 to 64, got {bad}")
            );
        }
    }

    #[test]
    fn netmasks_become_prefix_lengths_and_bad_ones_do_not() {
        assert_eq!(prefix_len("255.255.255.0"), Some(24));
        assert_eq!(prefix_len("255.255.255.255"), Some(32));
        assert_eq!(prefix_len("255.0.255.0"), None);
        assert_eq!(prefix_len("nope"), None);
    }

    #[test]
    fn the_readdr_line_carries_the_new_address_and_fresh_random_bytes() {
        let net = Network {
            guest_ip: Some("172.16.0.7".into()),
            gateway_ip: Some("172.16.0.1".into()),
            netmask: Some("255.255.255.0".into()),
            guest_mac: Some("AA:FC:00:00:00:07".into()),
            ..Network::default()
        };
        let a = readdr_line("n1", &net).unwrap();
        let w: Vec<&str> = a.split(' ').collect();
        assert_eq!(
            &w[..6],
            &[
                "readdr",
                "n1",
                "172.16.0.7",
                "172.16.0.1",
                "24",
                "aa:fc:00:00:00:07"
            ]
        );
        assert_eq!(w[6].len(), 128);
        assert_ne!(readdr_line("n1", &net).unwrap(), a, "the seed is fresh");
        let bad = Network {
            guest_mac: Some("aa:bb; rm -rf /".into()),
            ..net
        };
        assert!(readdr_line("n1", &bad).is_err());
    }

    #[test]
    fn a_failed_run_names_what_else_failed_what_never_began_and_what_was_kept() {
        let f = |more, not_begun: &[&str]| Failure {
            error: Error::runtime("Clone 'c-2' failed").with_recovery("Raise --boot-timeout."),
            more,
            not_begun: not_begun.iter().map(|i| VmId::new(i).unwrap()).collect(),
        };
        let e = f(0, &[]).error("");
        assert_eq!(e.message, "Clone 'c-2' failed");
        assert_eq!(e.recovery.as_deref(), Some("Raise --boot-timeout."));
        assert_eq!(
            f(1, &["c-4"]).error("clones made, kept: c-1").message,
            "Clone 'c-2' failed (1 more failed; not begun: c-4; clones made, kept: c-1)"
        );
        assert_eq!(
            f(0, &[]).error("clones made, kept: c-1, c-3").message,
            "Clone 'c-2' failed (clones made, kept: c-1, c-3)"
        );
        assert!(default_parallel() >= 2);
    }
}
