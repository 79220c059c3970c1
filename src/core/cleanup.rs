//! `cleanup`: reconcile the state database with the live system, then tear down the
//! targeted VMs and every orphaned resource, safely.
//!
//! * **Stale rows**: running/paused rows whose process is gone, is a zombie, or whose PID
//!   now belongs to a process that does not carry this VM's control socket (PID reuse).
//!   They are marked `error` (pid cleared) unless this is a dry run.
//! * **Targets**: stale rows (new and already `error`) first, then every row whose id
//!   starts with the prefix (default `vm-`) — or every row with `all` — oldest first.
//! * **Orphans** ("stale resources"), only what is provably ours and dead: VMM processes in
//!   our socket dir with no row; `tap<N>` devices carrying 172.16.0.1/32 and `svmb<hex>`
//!   devices whose `smolvm-bridge:<id>` alias names no row, that no live process holds open;
//!   nftables elements and commented rules in `smolvm_nat`/`smolvm_filter` that belong to
//!   no row and no live TAP or VMM; control sockets in our socket dir and per-VM files in
//!   the data dir whose VM has no row and no live process.
//! * **Teardown** of a target, each step idempotent so a rerun after a crash finishes the
//!   job: stop the VMM (Firecracker `SendCtrlAltDel` / QEMU QMP `system_powerdown`, then
//!   `quit`, then SIGTERM, then SIGKILL, through a verified pidfd), delete its TAP, delete
//!   its nftables elements and rules (never the shared tables, maps or global rules), remove
//!   its sockets, log and disk, and last delete its row and leases in one transaction.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use nix::fcntl::{Flock, FlockArg};

use super::error::{io_reason, Error, Result};
use super::progress::Progress;
use crate::sys::env::Env;
use crate::sys::fs::{self, VmFile};
use crate::sys::net::{self, nft, Link, OwnedTap, TapClaim};
use crate::sys::paths::{Paths, STATE_DB_FILE};
use crate::sys::process::{self, is_vm_id, OwnedVmm, ProcInfo, VmmClaim, VmmKind, VmmProcess};
use crate::sys::procfs;
use crate::sys::state::{
    Corruption, Known, Leases, OpenMode, StateStore, VmRecord, VmStatus, DEFAULT_BUSY_TIMEOUT,
};
use crate::sys::vmm::{firecracker, qmp::Qmp};

pub const DEFAULT_PREFIX: &str = "vm-";
pub const DEFAULT_PARALLEL: usize = 8;
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

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

/// What to clean and how.
#[derive(Debug, Clone)]
pub struct CleanupOptions {
    pub all: bool,
    pub prefix: String,
    pub dry_run: bool,
    pub data_dir: PathBuf,
    pub socket_dir: PathBuf,
    /// The whole budget for stopping one VMM, graceful steps included.
    pub stop_timeout: Duration,
    pub parallel: usize,
    pub busy_timeout: Duration,
    /// Every candidate state database ([`Paths::candidate_state_dbs`]): the active one
    /// supplies targets, the others protect what they record.
    pub candidate_dbs: Vec<PathBuf>,
}

impl CleanupOptions {
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
        let stop_timeout = super::lifecycle::stop_timeout(env, None)?;
        let busy_timeout = env.seconds("SMOLVM_DB_BUSY_TIMEOUT", DEFAULT_BUSY_TIMEOUT, false)?;
        if let (false, Some(p)) = (all, &prefix) {
            validate_prefix(p).map_err(|why| Error::usage(format!("--prefix: {why}")))?;
        }
        let data_dir = if dry_run {
            let candidates = paths.data_dir_candidates();
            candidates
                .iter()
                .find(|d| d.join(STATE_DB_FILE).exists())
                .or(candidates.first())
                .cloned()
                .ok_or_else(|| Error::runtime("no data directory candidates"))?
        } else {
            paths
                .data_dir()
                .map_err(|e| Error::runtime(e.to_string()))?
        };
        let parallel = match env.get_str("SMOLVM_CLEANUP_PARALLEL") {
            None => DEFAULT_PARALLEL,
            Some(v) => v.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                Error::usage(format!(
                    "SMOLVM_CLEANUP_PARALLEL must be at least 1, got '{v}'"
                ))
            })?,
        };
        Ok(CleanupOptions {
            all,
            prefix: prefix.unwrap_or_else(|| DEFAULT_PREFIX.to_string()),
            dry_run,
            data_dir,
            socket_dir: paths.socket_dir.clone(),
            stop_timeout,
            parallel,
            busy_timeout,
            candidate_dbs: paths.candidate_state_dbs(),
        })
    }
}

/// Why a VM is a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetReason {
    Stale,
    Prefix,
    All,
}

impl TargetReason {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetReason::Stale => "stale",
            TargetReason::Prefix => "prefix",
            TargetReason::All => "all",
        }
    }
}

/// The host resources a VM row points at (its network JSON and its leases).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmResources {
    pub tap: Option<String>,
    pub bridge: bool,
    pub guest_ip: Option<String>,
    pub ssh_host_port: Option<u16>,
}

impl VmResources {
    fn of(vm: &VmRecord, leases: &Leases) -> Self {
        let net = vm.network.clone().unwrap_or_default();
        let lease = leases.ips.get(&vm.id);
        let alloc = leases.taps.get(&vm.id);
        let tap = net
            .tap_device
            .clone()
            .filter(|t| t != "usernet" && !t.is_empty())
            .or_else(|| lease.map(|l| l.1.clone()))
            .or_else(|| alloc.map(|a| a.tap_device.clone()));
        let bridge = net.mode.as_deref() == Some("bridge")
            || alloc.is_some_and(|a| a.mode == "bridge")
            || tap.as_deref().is_some_and(|t| t.starts_with("svmb"));
        // Guest IPs and SSH ports only have host-side rules for TAP (NAT) networking.
        let (guest_ip, ssh_host_port) = if tap.is_some() && !bridge {
            (
                net.guest_ip.clone().or_else(|| lease.map(|l| l.0.clone())),
                net.ssh_host_port
                    .or_else(|| leases.ssh.get(&vm.id).map(|s| s.0)),
            )
        } else {
            (None, None)
        };
        VmResources {
            tap,
            bridge,
            guest_ip,
            ssh_host_port,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Target {
    pub vm: VmRecord,
    pub reason: TargetReason,
    pub resources: VmResources,
}

/// Kinds of orphaned resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Process,
    Tap,
    Nft,
    Socket,
    File,
}

impl ResourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Process => "process",
            ResourceKind::Tap => "tap",
            ResourceKind::Nft => "nft",
            ResourceKind::Socket => "socket",
            ResourceKind::File => "file",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum OrphanAction {
    Stop(VmmProcess),
    DeleteLink(String),
    Nft(nft::Deletion),
    Remove(VmFile, String),
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
/// executed or dropped.
pub struct CleanupPlan {
    pub opts: CleanupOptions,
    pub corruption: Option<Corruption>,
    /// Stale VMs: newly reconciled, then rows already in `error`.
    pub stale_ids: Vec<String>,
    pub targets: Vec<Target>,
    pub stale_resources: Vec<StaleResource>,
    pub warnings: Vec<String>,
    store: Arc<StateStore>,
    known: Arc<Known>,
    _lock: Option<Flock<File>>,
}

impl CleanupPlan {
    /// Nothing to delete at all.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty() && self.stale_resources.is_empty()
    }
}

/// Progress of a cleanup, in target order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CleanupEvent {
    Deleted {
        vm_id: String,
    },
    Failed {
        vm_id: String,
        error: String,
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
    pub stale_ids: Vec<String>,
    pub targets: Vec<String>,
    pub deleted: Vec<String>,
    pub failed: Vec<(String, String)>,
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

fn runtime(e: impl std::fmt::Display) -> Error {
    Error::runtime(e.to_string())
}

/// What every candidate state database records: the other databases read without
/// changing them, plus the active one's `rows` and `leases`.
fn known_from(opts: &CleanupOptions, rows: &[VmRecord], leases: &Leases) -> (Known, Vec<String>) {
    let active = opts.data_dir.join(STATE_DB_FILE);
    let others: Vec<PathBuf> = opts
        .candidate_dbs
        .iter()
        .filter(|d| **d != active)
        .cloned()
        .collect();
    let (mut known, warnings) = Known::read(&others, opts.busy_timeout);
    known.add(rows, leases);
    (known, warnings)
}

/// Take the cleanup lock (waiting for another cleanup to finish), open the store,
/// reconcile it with the live system (stored unless a dry run) and compute the targets
/// and orphans. Deletes nothing.
pub async fn prepare(opts: CleanupOptions) -> Result<CleanupPlan> {
    let lock = if opts.dry_run {
        None
    } else {
        let path = opts.data_dir.join("cleanup.lock");
        Some(
            tokio::task::spawn_blocking(move || -> Result<Flock<File>> {
                let f = crate::sys::open::open_lock(&path, 0o600)
                    .map_err(|e| runtime(format!("cannot open {}: {e}", path.display())))?;
                Flock::lock(f, FlockArg::LockExclusive)
                    .map_err(|(_, e)| runtime(format!("cannot lock {}: {e}", path.display())))
            })
            .await
            .map_err(runtime)??,
        )
    };
    let db = opts.data_dir.join(STATE_DB_FILE);
    let mode = if opts.dry_run {
        OpenMode::DryRun
    } else {
        OpenMode::ReadWrite
    };
    let busy = opts.busy_timeout;
    let (store, corruption) =
        tokio::task::spawn_blocking(move || StateStore::open(&db, mode, busy))
            .await
            .map_err(runtime)?
            .map_err(runtime)?;
    let store = Arc::new(store);

    let live = scan(&opts).await;
    let mut warnings = Vec::new();
    let listed = store.list_vms().map_err(runtime)?;
    let mut rows = listed.vms;
    let leases = store.leases().map_err(runtime)?;
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
            let started_here =
                process::info(v.pid).is_some_and(|i| i.names_data_dir(&opts.data_dir, &v.vm_id));
            if !started_here {
                continue;
            }
            let mut rec = VmRecord::new(v.vm_id.clone(), VmStatus::Running);
            rec.pid = Some(i64::from(v.pid));
            rec.socket_path = Some(v.socket.display().to_string());
            rec.config = serde_json::json!({
                "vm_id": v.vm_id, "backend": v.kind.as_str(), "adopted": true
            });
            if !opts.dry_run {
                store.insert_vm(&rec).map_err(runtime)?;
                if let Some(r) = store.get_vm(&v.vm_id).map_err(runtime)? {
                    rec = r;
                }
            }
            rows.push(rec);
        }
    }
    let (known, read_warnings) = {
        let opts = opts.clone();
        let (rows, leases) = (rows.clone(), leases.clone());
        tokio::task::spawn_blocking(move || known_from(&opts, &rows, &leases))
            .await
            .map_err(runtime)?
    };
    warnings.extend(read_warnings);

    // Reconcile: which running/paused rows have no live, matching process.
    let newly_stale: Vec<String> = rows
        .iter()
        .filter(|r| row_is_stale(r, &opts.socket_dir))
        .map(|r| r.id.clone())
        .collect();
    if !opts.dry_run {
        store.mark_stale(&newly_stale).map_err(runtime)?;
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

    let stale_resources = if sweep_orphans {
        orphans(&opts, &known, &live, &mut warnings)
    } else {
        warnings.push(
            "orphaned resources were not looked for: the state database has rows that could not be read (above)"
                .into(),
        );
        Vec::new()
    };
    Ok(CleanupPlan {
        opts,
        corruption,
        stale_ids,
        targets,
        stale_resources,
        warnings,
        store,
        known,
        _lock: lock,
    })
}

/// A running/paused row is stale when its PID is missing, dead, a zombie, or now a
/// process that is not a VMM carrying this VM's control socket (the PID was reused).
pub fn row_is_stale(vm: &VmRecord, socket_dir: &Path) -> bool {
    if !vm.status.is_active() {
        return false;
    }
    let Some(pid) = vm.pid.filter(|p| *p > 0 && *p <= i64::from(i32::MAX)) else {
        return true;
    };
    match process::info(pid as i32) {
        None => true,
        Some(info) if info.is_zombie() => true,
        Some(info) => !info.is_vmm_binary() || !carries_socket_of(&info, vm, socket_dir),
    }
}

fn carries_socket_of(info: &ProcInfo, vm: &VmRecord, socket_dir: &Path) -> bool {
    process::socket_in_cmdline(&info.cmdline, None).is_some_and(|(_, id, path)| {
        id == vm.id
            && (path.parent() == Some(socket_dir)
                || vm.socket_path.as_deref() == Some(path.to_string_lossy().as_ref()))
    })
}

/// The live system as cleanup sees it.
struct Live {
    /// VMMs whose control socket is in our socket dir (the only ones we may stop).
    vmms_here: Vec<VmmProcess>,
    /// VM ids of every live VMM anywhere (for liveness checks only).
    ids_anywhere: HashSet<String>,
    links: std::result::Result<Vec<Link>, String>,
    nft: std::result::Result<nft::NftState, String>,
    /// TAP name → PIDs holding it open.
    attached: HashMap<String, Vec<i32>>,
}

async fn scan(opts: &CleanupOptions) -> Live {
    let socket_dir = opts.socket_dir.clone();
    let blocking = tokio::task::spawn_blocking(move || {
        let all = process::vmm_processes(None);
        let ids_anywhere = all.iter().map(|v| v.vm_id.clone()).collect();
        let here = all
            .into_iter()
            .filter(|v| v.socket.parent() == Some(socket_dir.as_path()))
            .collect();
        (
            here,
            ids_anywhere,
            nft::read().map_err(|e| e.to_string()),
            procfs::tun_attachments(),
        )
    });
    let links = net::links().await.map_err(|e| e.to_string());
    let (vmms_here, ids_anywhere, nft, attached) = blocking.await.unwrap_or_else(|e| {
        (
            Vec::new(),
            HashSet::new(),
            Err(e.to_string()),
            HashMap::new(),
        )
    });
    Live {
        vmms_here,
        ids_anywhere,
        links,
        nft,
        attached,
    }
}

/// `tap<N>` for a pool address 172.16.a.b (N = a·256 + b), SmolVM's NAT naming.
fn tap_for_ip(ip: &str) -> Option<String> {
    let rest = ip.strip_prefix("172.16.")?;
    let (a, b) = rest.split_once('.')?;
    let n = a.parse::<u32>().ok()? * 256 + b.parse::<u32>().ok()?;
    Some(format!("tap{n}"))
}

/// Whether a process is listening on the Unix socket at `path` (a dead socket file
/// refuses the connection).
fn socket_listening(path: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(path).is_ok()
}

/// Orphans: only what is provably this install's and dead. Nothing is an orphan while a
/// candidate state database could not be read (it might record it).
fn orphans(
    opts: &CleanupOptions,
    known: &Known,
    live: &Live,
    warnings: &mut Vec<String>,
) -> Vec<StaleResource> {
    let mut out = Vec::new();
    if known.incomplete {
        return out;
    }

    // 1. VMM processes no database records, started with this install's files.
    let claim = VmmClaim::Orphan {
        socket_dir: &opts.socket_dir,
        data_dir: &opts.data_dir,
        known,
    };
    let mut dying: HashSet<i32> = HashSet::new();
    for v in &live.vmms_here {
        if claim.holds(v) {
            dying.insert(v.pid);
            out.push(StaleResource {
                kind: ResourceKind::Process,
                name: format!("{} {}", v.pid, v.comm),
                vm_id: Some(v.vm_id.clone()),
                action: OrphanAction::Stop(v.clone()),
            });
        }
    }
    let dying_ids: HashSet<&str> = live
        .vmms_here
        .iter()
        .filter(|v| dying.contains(&v.pid))
        .map(|v| v.vm_id.as_str())
        .collect();
    let attached = |tap: &str| {
        live.attached
            .get(tap)
            .is_some_and(|pids| pids.iter().any(|p| !dying.contains(p)))
    };
    let vm_alive = |id: &str| {
        live.vmms_here
            .iter()
            .any(|v| v.vm_id == id && !dying.contains(&v.pid))
            || (live.ids_anywhere.contains(id) && !live.vmms_here.iter().any(|v| v.vm_id == id))
    };

    // 2. TAP devices: SmolVM-shaped, recorded nowhere, held by nothing (the same rules
    //    `OwnedTap::prove` checks again right before the delete).
    match &live.links {
        Ok(links) => {
            for l in links.iter().filter(|l| l.is_tun) {
                let bridge_owner = l
                    .alias
                    .as_deref()
                    .and_then(|a| a.strip_prefix("smolvm-bridge:"));
                let shaped = (net::is_nat_tap_name(&l.name) && l.has_addr(net::HOST_IP, 32))
                    || (net::is_bridge_tap_name(&l.name)
                        && bridge_owner.is_some_and(|id| !known.ids.contains(id)));
                if shaped && !known.taps.contains_key(&l.name) && !attached(&l.name) {
                    out.push(StaleResource {
                        kind: ResourceKind::Tap,
                        name: l.name.clone(),
                        vm_id: bridge_owner.map(str::to_string),
                        action: OrphanAction::DeleteLink(l.name.clone()),
                    });
                }
            }
        }
        Err(e) => warnings.push(format!("cannot list network links: {e}")),
    }

    // 3. nftables elements and rules of SmolVM's tables that no database records.
    if let Ok(state) = &live.nft {
        let ip_dead = |ip: &str| {
            !known.guest_ips.contains(ip) && !tap_for_ip(ip).is_some_and(|t| attached(&t))
        };
        for e in &state.elements {
            let orphan = match (&e.key, e.set.as_str()) {
                (nft::ElemKey::Ifname(t), "allowed_taps") => {
                    !known.taps.contains_key(t.as_str()) && !attached(t)
                }
                (nft::ElemKey::Port(p), "dnat_ext" | "dnat_local") => {
                    !known.ports.contains(p) && e.target.as_deref().is_none_or(ip_dead)
                }
                (nft::ElemKey::AddrPort(ip, _), "snat_return" | "fwd_allow") => ip_dead(ip),
                _ => false,
            };
            if let Some(d) = e.deletion().filter(|_| orphan) {
                out.push(StaleResource {
                    kind: ResourceKind::Nft,
                    name: e.describe(),
                    vm_id: None,
                    action: OrphanAction::Nft(d),
                });
            }
        }
        for r in &state.rules {
            let parts: Vec<&str> = r.comment.split(':').collect();
            let (orphan, vm_id) = match parts.as_slice() {
                ["smolvm", "map" | "global", ..] => (false, None),
                ["smolvm", "egress", tap, ..] | ["smolvm", "nat", "tap", tap, ..] => {
                    (!known.taps.contains_key(*tap) && !attached(tap), None)
                }
                ["smolvm", id, _, ..] if is_vm_id(id) => (
                    !known.ids.contains(*id) && !vm_alive(id),
                    Some(id.to_string()),
                ),
                _ => (false, None),
            };
            if let Some(d) = r.deletion().filter(|_| orphan) {
                out.push(StaleResource {
                    kind: ResourceKind::Nft,
                    name: r.describe(),
                    vm_id,
                    action: OrphanAction::Nft(d),
                });
            }
        }
    }

    // 4. Dead control sockets in our socket dir (no listener) of VMs recorded nowhere.
    if let Ok(rd) = std::fs::read_dir(&opts.socket_dir) {
        let mut found: Vec<(String, VmFile, PathBuf)> = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let parsed = VmFile::parse_socket_name(&name).map(|(f, id)| (id.to_string(), f));
            let Some((id, file)) = parsed else { continue };
            let mine = e.metadata().is_ok_and(|m| {
                use std::os::unix::fs::{FileTypeExt, MetadataExt};
                m.file_type().is_socket() && m.uid() == nix::unistd::geteuid().as_raw()
            });
            // A socket still answering belongs to a live process, unless that is an
            // orphan VMM stopped just before (its socket then goes with it).
            let dying_vm = dying_ids.contains(id.as_str());
            if mine
                && !known.ids.contains(id.as_str())
                && !known.sockets.contains(&e.path())
                && !vm_alive(&id)
                && (dying_vm || !socket_listening(&e.path()))
            {
                found.push((id, file, e.path()));
            }
        }
        found.sort_by(|a, b| a.2.cmp(&b.2));
        for (id, file, path) in found {
            out.push(StaleResource {
                kind: ResourceKind::Socket,
                name: path.display().to_string(),
                vm_id: Some(id.clone()),
                action: OrphanAction::Remove(file, id),
            });
        }
    }

    // 5. Per-VM files (`<id>.log`, `disks/<id>.ext4`) of VMs this install's ledger says it
    //    made files for, that no database records any more. Nothing else in the data dir
    //    is ever touched, whatever its name.
    //    An orphan VMM proved ours (it was started with these files) makes its id known too.
    let mut files: Vec<(String, VmFile, PathBuf)> = Vec::new();
    let mut ids = fs::recorded_vm_ids(&opts.data_dir);
    ids.extend(dying_ids.iter().map(|s| s.to_string()));
    ids.sort();
    ids.dedup();
    for id in ids {
        if known.ids.contains(id.as_str()) || vm_alive(&id) {
            continue;
        }
        for f in [VmFile::Log, VmFile::Disk] {
            if let Some(p) = f.path(&opts.data_dir, &opts.socket_dir, &id) {
                if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()) {
                    files.push((id.clone(), f, p));
                }
            }
        }
    }
    files.sort_by(|a, b| a.2.cmp(&b.2));
    for (id, file, path) in files {
        out.push(StaleResource {
            kind: ResourceKind::File,
            name: path.display().to_string(),
            vm_id: Some(id.clone()),
            action: OrphanAction::Remove(file, id),
        });
    }
    out
}

/// Tear down every target (in parallel, bounded by `opts.parallel`; events in target
/// order), then remove every orphan. A failure does not stop the others. The prompt may
/// have waited minutes since the plan: each target's row is read again before it is torn
/// down, and the orphans are computed again from a fresh look at every database and the
/// live system — only those still orphans are removed, each proved again at its delete.
pub async fn execute(plan: CleanupPlan, progress: &Progress<CleanupEvent>) -> CleanupReport {
    let mut report = CleanupReport {
        dry_run: plan.opts.dry_run,
        corruption: plan.corruption.clone(),
        stale_ids: plan.stale_ids.clone(),
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
    let ctx = Arc::new(Ctx {
        store: plan.store.clone(),
        known: plan.known.clone(),
        opts: plan.opts.clone(),
    });
    let mut results = futures::stream::iter(plan.targets.iter().cloned().map(|t| {
        let ctx = ctx.clone();
        let cancelled = progress.cancelled();
        async move {
            let id = t.vm.id.clone();
            if cancelled {
                return (id, None);
            }
            let r = tokio::spawn(async move { teardown(&t, &ctx).await })
                .await
                .unwrap_or_else(|e| Err(format!("teardown task failed: {e}")));
            (id, Some(r))
        }
    }))
    .buffered(plan.opts.parallel.max(1));
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
    let still: Vec<StaleResource> = orphans(&plan.opts, &fresh, &live, &mut Vec::new());
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
        let outcome = remove_orphan(r, &plan.opts, &fresh).await;
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
    for id in fs::recorded_vm_ids(&plan.opts.data_dir) {
        let files_left = [VmFile::Log, VmFile::Disk].iter().any(|f| {
            f.path(&plan.opts.data_dir, &plan.opts.socket_dir, &id)
                .is_some_and(|p| std::fs::symlink_metadata(p).is_ok())
        });
        if !fresh.ids.contains(&id) && !files_left {
            let _ = fs::remove_vm_file(
                VmFile::Ledger,
                &plan.opts.data_dir,
                &plan.opts.socket_dir,
                &id,
            );
        }
    }
    report
}

/// Every candidate database read again now.
async fn fresh_known(plan: &CleanupPlan) -> std::result::Result<Known, String> {
    let store = plan.store.clone();
    let opts = plan.opts.clone();
    tokio::task::spawn_blocking(move || {
        let rows = store.list_vms().map_err(|e| e.to_string())?;
        let leases = store.leases().map_err(|e| e.to_string())?;
        let (known, _) = known_from(&opts, &rows.vms, &leases);
        if known.incomplete || !rows.skipped.is_empty() || !leases.skipped.is_empty() {
            return Err("a state database could not be read".to_string());
        }
        Ok(known)
    })
    .await
    .map_err(|e| e.to_string())?
}

struct Ctx {
    store: Arc<StateStore>,
    known: Arc<Known>,
    opts: CleanupOptions,
}

/// Tear down one VM. Each step tolerates "already gone"; the row goes last, so a run
/// interrupted at any point is finished by the next one. The row is read again first: a
/// row deleted meanwhile is done, and a stale VM that was started again meanwhile is left
/// alone.
async fn teardown(t: &Target, ctx: &Ctx) -> std::result::Result<(), String> {
    let store = ctx.store.clone();
    let id = t.vm.id.clone();
    let (fresh, leases) = tokio::task::spawn_blocking(move || {
        Ok::<_, String>((
            store.get_vm(&id).map_err(|e| e.to_string())?,
            store.leases().map_err(|e| e.to_string())?,
        ))
    })
    .await
    .map_err(|e| e.to_string())??;
    let Some(vm) = fresh else { return Ok(()) };
    if t.reason == TargetReason::Stale
        && vm.status.is_active()
        && !row_is_stale(&vm, &ctx.opts.socket_dir)
    {
        return Err(format!(
            "VM {} was started again since the plan ({}); not deleted",
            vm.id, vm.status
        ));
    }
    stop_vm(
        &vm,
        &ctx.opts.socket_dir,
        &ctx.opts.data_dir,
        ctx.opts.stop_timeout,
    )
    .await?;
    let t = Target {
        resources: VmResources::of(&vm, &leases),
        vm,
        reason: t.reason,
    };
    teardown_resources(&t, ctx).await
}

/// Every live VMM process of this VM that its row proves ours: carrying the row's control
/// socket (ours in the socket dir, or the one the row records), and being the row's PID or
/// started with this install's files.
fn vm_processes(vm: &VmRecord, socket_dir: &Path, data_dir: &Path) -> Vec<VmmProcess> {
    let claim = VmmClaim::Row {
        vm,
        socket_dir,
        data_dir,
    };
    process::vmm_processes(None)
        .into_iter()
        .filter(|p| p.vm_id == vm.id && claim.holds(p))
        .collect()
}

/// Stop this VM's VMM processes (graceful first, SIGKILL last, proved pidfds only).
pub async fn stop_vm(
    vm: &VmRecord,
    socket_dir: &Path,
    data_dir: &Path,
    budget: Duration,
) -> std::result::Result<(), String> {
    let (v, s, d) = (vm.clone(), socket_dir.to_path_buf(), data_dir.to_path_buf());
    let procs = tokio::task::spawn_blocking(move || vm_processes(&v, &s, &d))
        .await
        .map_err(|e| e.to_string())?;
    for p in &procs {
        let claim = VmmClaim::Row {
            vm,
            socket_dir,
            data_dir,
        };
        let owned = match OwnedVmm::prove(p, claim) {
            Ok(Some(o)) => o,
            Ok(None) => continue,
            Err(e) => return Err(e.to_string()),
        };
        stop_vmm(&owned, budget).await?;
    }
    Ok(())
}

/// Tear one VM down completely, as `cleanup` does for a target: its VMM, TAP, nftables
/// elements and rules, sockets, log, disk, and last its row and leases. What `sandbox
/// delete` and a failed start's rollback use, so creation and teardown stay symmetric.
/// A VM with no row is success.
pub async fn teardown_vm(
    store: Arc<StateStore>,
    vm_id: &str,
    opts: CleanupOptions,
) -> std::result::Result<(), String> {
    let id = vm_id.to_string();
    let st = store.clone();
    let o = opts.clone();
    let (vm, known) = tokio::task::spawn_blocking(move || {
        let vm = st.get_vm(&id).map_err(|e| e.to_string())?;
        let rows = st.list_vms().map_err(|e| e.to_string())?;
        let leases = st.leases().map_err(|e| e.to_string())?;
        Ok::<_, String>((vm, known_from(&o, &rows.vms, &leases).0))
    })
    .await
    .map_err(|e| e.to_string())??;
    let Some(vm) = vm else { return Ok(()) };
    let t = Target {
        resources: VmResources::default(),
        vm,
        reason: TargetReason::All,
    };
    let ctx = Ctx {
        store,
        known: Arc::new(known),
        opts,
    };
    teardown(&t, &ctx).await
}

/// Steps 2–5 of a teardown: everything but the VMM process.
async fn teardown_resources(t: &Target, ctx: &Ctx) -> std::result::Result<(), String> {
    let vm = &t.vm;
    // 2. The TAP device, when it is provably this VM's: a TAP another VM records, or one
    //    without SmolVM's address or alias, is not ours and is left alone; one still held
    //    open by a live process fails the teardown (the row stays for a later run).
    if let Some(tap) = &t.resources.tap {
        let claim = TapClaim::Vm {
            vm_id: &vm.id,
            bridge: t.resources.bridge,
            known: &ctx.known,
        };
        match OwnedTap::prove(tap, claim).await {
            Ok(Some(owned)) => {
                net::delete_link(&owned).await.map_err(|e| e.to_string())?;
            }
            Ok(None) => {}
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {}
            Err(e) => return Err(e.to_string()),
        }
    }

    // 3. nftables: exactly this VM's elements and rules, as one batch. Re-read on a
    //    conflict (a parallel teardown changed the tables).
    let res = t.resources.clone();
    let id = vm.id.clone();
    let has_net = res.tap.is_some();
    tokio::task::spawn_blocking(move || -> std::result::Result<(), String> {
        for attempt in 0..3 {
            let state = match nft::read() {
                Ok(s) => s,
                Err(e) if has_net => return Err(e.to_string()),
                Err(_) => return Ok(()), // nothing provable to remove without rights to look
            };
            match nft::delete(&vm_nft_deletions(&state, &id, &res)) {
                Ok(()) => return Ok(()),
                Err(e) if attempt == 2 => return Err(e.to_string()),
                Err(_) => continue,
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| e.to_string())??;

    // 4. Files, by the names smolvm generates for this id in the dirs it owns: control
    //    sockets, console log, isolated disk (never a path read from the row).
    for f in [
        VmFile::FcSocket,
        VmFile::QmpSocket,
        VmFile::VsockSocket,
        VmFile::Log,
        VmFile::Disk,
    ] {
        fs::remove_vm_file(f, &ctx.opts.data_dir, &ctx.opts.socket_dir, &vm.id).map_err(|e| {
            let path = f.path(&ctx.opts.data_dir, &ctx.opts.socket_dir, &vm.id);
            let shown = path.as_deref().unwrap_or(Path::new(&vm.id)).display();
            format!("{}: cannot remove {shown}", io_reason(&e))
        })?;
    }

    // 5. The row and its leases, in one transaction; then the ledger entry.
    let store = ctx.store.clone();
    let id = vm.id.clone();
    tokio::task::spawn_blocking(move || store.delete_vm(&id).map(drop))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    fs::remove_vm_file(
        VmFile::Ledger,
        &ctx.opts.data_dir,
        &ctx.opts.socket_dir,
        &vm.id,
    )
    .map(drop)
    .map_err(|e| e.to_string())
}

/// This VM's nftables elements and rules, as deletions.
fn vm_nft_deletions(state: &nft::NftState, vm_id: &str, res: &VmResources) -> Vec<nft::Deletion> {
    let mut out = Vec::new();
    for e in &state.elements {
        let mine = match (&e.key, e.set.as_str()) {
            (nft::ElemKey::Ifname(t), "allowed_taps") => res.tap.as_deref() == Some(t.as_str()),
            (nft::ElemKey::Port(p), "dnat_ext" | "dnat_local") => res.ssh_host_port == Some(*p),
            (nft::ElemKey::AddrPort(ip, _), "snat_return" | "fwd_allow") => {
                res.guest_ip.as_deref() == Some(ip.as_str())
            }
            _ => false,
        };
        out.extend(e.deletion().filter(|_| mine));
    }
    let by_id = format!("smolvm:{vm_id}:");
    let tap_prefixes: Vec<String> = res
        .tap
        .iter()
        .flat_map(|t| {
            [
                format!("smolvm:egress:{t}:"),
                format!("smolvm:nat:tap:{t}:to:"),
            ]
        })
        .collect();
    for r in &state.rules {
        if r.comment.starts_with(&by_id) || tap_prefixes.iter().any(|p| r.comment.starts_with(p)) {
            out.extend(r.deletion());
        }
    }
    out
}

async fn remove_orphan(
    r: &StaleResource,
    opts: &CleanupOptions,
    known: &Known,
) -> std::result::Result<(), String> {
    match &r.action {
        OrphanAction::Stop(p) => {
            let claim = VmmClaim::Orphan {
                socket_dir: &opts.socket_dir,
                data_dir: &opts.data_dir,
                known,
            };
            match OwnedVmm::prove(p, claim) {
                Ok(Some(owned)) => stop_vmm(&owned, opts.stop_timeout).await,
                Ok(None) => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        }
        OrphanAction::DeleteLink(name) => {
            match OwnedTap::prove(name, TapClaim::Orphan { known }).await {
                Ok(Some(owned)) => net::delete_link(&owned)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string()),
                Ok(None) => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        }
        OrphanAction::Nft(d) => {
            let d = d.clone();
            tokio::task::spawn_blocking(move || nft::delete(&[d]))
                .await
                .map_err(|e| e.to_string())?
                .or_else(|e| {
                    // Already gone (e.g. removed with its VM or TAP a moment ago).
                    if e.to_string().contains("No such file or directory") {
                        Ok(())
                    } else {
                        Err(e.to_string())
                    }
                })
        }
        OrphanAction::Remove(file, id) => {
            fs::remove_vm_file(*file, &opts.data_dir, &opts.socket_dir, id)
                .map(drop)
                .map_err(|e| format!("{}: cannot remove {}", io_reason(&e), r.name))
        }
    }
}

/// Stop one VMM within `budget`: ask the guest to power off (Firecracker
/// `SendCtrlAltDel`, QEMU `system_powerdown` when it is running), then QEMU `quit`, then
/// SIGTERM, then SIGKILL, each with a bounded wait. Signals go only to a VMM proved ours
/// ([`OwnedVmm`]). A process that is already gone is success.
async fn stop_vmm(owned: &OwnedVmm, budget: Duration) -> std::result::Result<(), String> {
    let p = &owned.process;
    let share = |n: u32| budget * n / 10;
    let step = share(1).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let started = Instant::now();
    match p.kind {
        VmmKind::Qemu => {
            if let Ok(mut q) = Qmp::connect(&p.socket, step).await {
                if q.query_status().await.ok().as_deref() == Some("running")
                    && q.execute("system_powerdown", None).await.is_ok()
                    && owned.wait_exit(share(5)).await
                {
                    return Ok(());
                }
                let _ = q.execute("quit", None).await;
                if owned.wait_exit(share(2)).await {
                    return Ok(());
                }
            }
        }
        VmmKind::Firecracker => {
            if firecracker::send_ctrl_alt_del(&p.socket, step)
                .await
                .is_ok()
                && owned.wait_exit(share(5)).await
            {
                return Ok(());
            }
        }
    }
    let signal = |sig: i32| -> std::result::Result<(), String> {
        match owned.signal(sig) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => Err(format!(
                "Permission denied: cannot stop process {} ({})",
                p.pid, p.comm
            )),
            Err(e) => Err(format!("cannot signal process {}: {e}", p.pid)),
        }
    };
    let remaining = budget.saturating_sub(started.elapsed());
    signal(libc::SIGTERM)?;
    if owned.wait_exit(remaining / 2).await {
        return Ok(());
    }
    signal(libc::SIGKILL)?;
    if owned
        .wait_exit((remaining / 2).max(Duration::from_secs(1)))
        .await
    {
        return Ok(());
    }
    Err(format!("process {} ({}) did not exit", p.pid, p.comm))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_names_and_pool_addresses() {
        assert_eq!(tap_for_ip("172.16.0.2").as_deref(), Some("tap2"));
        assert_eq!(tap_for_ip("172.16.1.5").as_deref(), Some("tap261"));
        assert_eq!(tap_for_ip("10.0.2.15"), None);
        assert!(
            net::is_nat_tap_name("tap2")
                && !net::is_nat_tap_name("tap")
                && !net::is_nat_tap_name("tapx")
        );
        assert!(
            net::is_bridge_tap_name("svmb0a1b2c3d") && !net::is_bridge_tap_name("svmb0A1B2C3D")
        );
    }

    #[test]
    fn resources_come_from_network_json_and_leases() {
        let mut vm = VmRecord::new("vm-a", VmStatus::Running);
        vm.network = serde_json::from_value(serde_json::json!({
            "guest_ip": "172.16.0.2", "tap_device": "tap2", "ssh_host_port": 2200, "mode": "nat"
        }))
        .ok();
        let r = VmResources::of(&vm, &Leases::default());
        assert_eq!(r.tap.as_deref(), Some("tap2"));
        assert_eq!(
            (r.guest_ip.as_deref(), r.ssh_host_port),
            (Some("172.16.0.2"), Some(2200))
        );
        // slirp networking has no host-side resources
        vm.network = serde_json::from_value(serde_json::json!({
            "guest_ip": "10.0.2.15", "tap_device": "usernet", "ssh_host_port": 2201
        }))
        .ok();
        assert_eq!(
            VmResources::of(&vm, &Leases::default()),
            VmResources::default()
        );
        // only a lease
        vm.network = None;
        let mut l = Leases::default();
        l.ips
            .insert("vm-a".into(), ("172.16.0.7".into(), "tap7".into()));
        l.ssh.insert("vm-a".into(), (2207, 22));
        let r = VmResources::of(&vm, &l);
        assert_eq!(r.tap.as_deref(), Some("tap7"));
        assert_eq!(r.ssh_host_port, Some(2207));
    }

    #[test]
    fn vm_nft_commands_pick_only_this_vms_entries() {
        let e = |set: &str, key: nft::ElemKey| nft::Element {
            family: "ip".into(),
            table: "smolvm_nat".into(),
            set: set.into(),
            key,
            target: None,
        };
        let filter = |mut e: nft::Element| {
            e.family = "inet".into();
            e.table = "smolvm_filter".into();
            e
        };
        let rule = |h: u64, c: &str| nft::Rule {
            family: "ip".into(),
            table: "smolvm_nat".into(),
            chain: "output".into(),
            handle: h,
            comment: c.into(),
        };
        let state = nft::NftState {
            elements: vec![
                e("dnat_ext", nft::ElemKey::Port(2200)),
                e("dnat_ext", nft::ElemKey::Port(2201)),
                e(
                    "snat_return",
                    nft::ElemKey::AddrPort("172.16.0.2".into(), 22),
                ),
                filter(e("allowed_taps", nft::ElemKey::Ifname("tap2".into()))),
                filter(e("allowed_taps", nft::ElemKey::Ifname("tap3".into()))),
            ],
            rules: vec![
                rule(1, "smolvm:vm-a:local:8080:80"),
                rule(2, "smolvm:vm-ab:local:8080:80"),
                rule(3, "smolvm:global:forward:established"),
                rule(4, "smolvm:egress:tap2:drop"),
            ],
        };
        let res = VmResources {
            tap: Some("tap2".into()),
            bridge: false,
            guest_ip: Some("172.16.0.2".into()),
            ssh_host_port: Some(2200),
        };
        assert_eq!(
            vm_nft_deletions(&state, "vm-a", &res)
                .iter()
                .map(|d| d.command())
                .collect::<Vec<_>>(),
            [
                "delete element ip smolvm_nat dnat_ext { 2200 }",
                "delete element ip smolvm_nat snat_return { 172.16.0.2 . 22 }",
                "delete element inet smolvm_filter allowed_taps { \"tap2\" }",
                "delete rule ip smolvm_nat output handle 1",
                "delete rule ip smolvm_nat output handle 4",
            ]
        );
    }
}
