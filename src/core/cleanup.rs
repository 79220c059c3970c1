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

use super::error::{Error, Result};
use super::progress::Progress;
use crate::sys::env::Env;
use crate::sys::net::{self, nft, Link};
use crate::sys::paths::{Paths, STATE_DB_FILE};
use crate::sys::process::{self, is_vm_id, Pidfd, ProcInfo, VmmKind, VmmProcess};
use crate::sys::procfs;
use crate::sys::state::{
    Corruption, Leases, OpenMode, StateStore, VmRecord, VmStatus, DEFAULT_BUSY_TIMEOUT,
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
    /// Delete exactly these VMs (the dashboard's delete of selected rows): no prefix or
    /// stale targeting, no orphan removal.
    pub only: Option<Vec<String>>,
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
        let stop_timeout = env.seconds("SMOLVM_STOP_TIMEOUT", DEFAULT_STOP_TIMEOUT, false)?;
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
            only: None,
        })
    }
}

/// Why a VM is a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetReason {
    Stale,
    Prefix,
    All,
    Selected,
}

impl TargetReason {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetReason::Stale => "stale",
            TargetReason::Prefix => "prefix",
            TargetReason::All => "all",
            TargetReason::Selected => "selected",
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
    Nft(String),
    Unlink(PathBuf),
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
    vmms: Vec<VmmProcess>,
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
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)
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
    // dir, so they are targeted (or spared) by the usual rules instead of being killed as
    // orphans.
    if corruption.is_some() {
        let known: HashSet<String> = rows.iter().map(|r| r.id.clone()).collect();
        for v in live.vmms_here.iter().filter(|v| !known.contains(&v.vm_id)) {
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
    if let Some(only) = &opts.only {
        let targets = only
            .iter()
            .filter_map(|id| by_id.get(id.as_str()))
            .map(|vm| Target {
                vm: (*vm).clone(),
                reason: TargetReason::Selected,
                resources: VmResources::of(vm, &leases),
            })
            .collect();
        return Ok(CleanupPlan {
            opts,
            corruption,
            stale_ids,
            targets,
            stale_resources: Vec::new(),
            warnings,
            store,
            vmms: live.vmms_here,
            _lock: lock,
        });
    }
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
        orphans(&opts, &rows, &leases, &live, &mut warnings)
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
        vmms: live.vmms_here,
        _lock: lock,
    })
}

/// A running/paused row is stale when its PID is missing, dead, a zombie, or now a
/// process that does not carry this VM's control socket (the PID was reused).
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
        Some(info) => !carries_socket_of(&info, vm, socket_dir),
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

fn is_nat_tap_name(name: &str) -> bool {
    name.strip_prefix("tap")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn is_bridge_tap_name(name: &str) -> bool {
    name.strip_prefix("svmb").is_some_and(|h| {
        h.len() == 8
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn orphans(
    opts: &CleanupOptions,
    rows: &[VmRecord],
    leases: &Leases,
    live: &Live,
    warnings: &mut Vec<String>,
) -> Vec<StaleResource> {
    let row_ids: HashSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let res: Vec<VmResources> = rows.iter().map(|r| VmResources::of(r, leases)).collect();
    let owned_taps: HashSet<&str> = res.iter().filter_map(|r| r.tap.as_deref()).collect();
    let owned_ips: HashSet<&str> = res.iter().filter_map(|r| r.guest_ip.as_deref()).collect();
    let owned_ports: HashSet<u16> = res.iter().filter_map(|r| r.ssh_host_port).collect();
    let mut out = Vec::new();

    // 1. VMM processes with no row.
    let mut dying: HashSet<i32> = HashSet::new();
    for v in &live.vmms_here {
        if !row_ids.contains(v.vm_id.as_str()) {
            dying.insert(v.pid);
            out.push(StaleResource {
                kind: ResourceKind::Process,
                name: format!("{} {}", v.pid, v.comm),
                vm_id: Some(v.vm_id.clone()),
                action: OrphanAction::Stop(v.clone()),
            });
        }
    }
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

    // 2. TAP devices.
    match &live.links {
        Ok(links) => {
            for l in links.iter().filter(|l| l.is_tun) {
                let bridge_owner = l
                    .alias
                    .as_deref()
                    .and_then(|a| a.strip_prefix("smolvm-bridge:"));
                let ours = (is_nat_tap_name(&l.name) && l.has_addr(net::HOST_IP, 32))
                    || (is_bridge_tap_name(&l.name)
                        && bridge_owner.is_some_and(|id| !row_ids.contains(id)));
                if ours && !owned_taps.contains(l.name.as_str()) && !attached(&l.name) {
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

    // 3. nftables elements and rules.
    if let Ok(state) = &live.nft {
        let ip_dead =
            |ip: &str| !owned_ips.contains(ip) && !tap_for_ip(ip).is_some_and(|t| attached(&t));
        for e in &state.elements {
            let orphan = match (&e.key, e.set.as_str()) {
                (nft::ElemKey::Ifname(t), "allowed_taps") => {
                    !owned_taps.contains(t.as_str()) && !attached(t)
                }
                (nft::ElemKey::Port(p), "dnat_ext" | "dnat_local") => {
                    !owned_ports.contains(p) && e.target.as_deref().is_none_or(ip_dead)
                }
                (nft::ElemKey::AddrPort(ip, _), "snat_return" | "fwd_allow") => ip_dead(ip),
                _ => false,
            };
            if orphan {
                out.push(StaleResource {
                    kind: ResourceKind::Nft,
                    name: e.describe(),
                    vm_id: None,
                    action: OrphanAction::Nft(e.delete_command()),
                });
            }
        }
        for r in &state.rules {
            let parts: Vec<&str> = r.comment.split(':').collect();
            let (orphan, vm_id) = match parts.as_slice() {
                ["smolvm", "map" | "global", ..] => (false, None),
                ["smolvm", "egress", tap, ..] | ["smolvm", "nat", "tap", tap, ..] => {
                    (!owned_taps.contains(tap) && !attached(tap), None)
                }
                ["smolvm", id, _, ..] if is_vm_id(id) => {
                    (!row_ids.contains(id) && !vm_alive(id), Some(id.to_string()))
                }
                _ => (false, None),
            };
            if orphan {
                out.push(StaleResource {
                    kind: ResourceKind::Nft,
                    name: r.describe(),
                    vm_id,
                    action: OrphanAction::Nft(r.delete_command()),
                });
            }
        }
    }

    // 4. Control sockets in our socket dir.
    if let Ok(rd) = std::fs::read_dir(&opts.socket_dir) {
        let mut found: Vec<(String, PathBuf)> = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = process::socket_vm(&name)
                .map(|(_, id)| id.to_string())
                .or_else(|| {
                    name.strip_prefix("vsock-")
                        .and_then(|s| s.strip_suffix(".sock"))
                        .filter(|id| is_vm_id(id))
                        .map(str::to_string)
                });
            let Some(id) = id else { continue };
            let is_socket = e.file_type().is_ok_and(|t| {
                use std::os::unix::fs::FileTypeExt;
                t.is_socket()
            });
            if is_socket && !row_ids.contains(id.as_str()) && !vm_alive(&id) {
                found.push((id, e.path()));
            }
        }
        found.sort_by(|a, b| a.1.cmp(&b.1));
        for (id, path) in found {
            out.push(StaleResource {
                kind: ResourceKind::Socket,
                name: path.display().to_string(),
                vm_id: Some(id),
                action: OrphanAction::Unlink(path),
            });
        }
    }

    // 5. Per-VM files in the data dir: `<id>.log`, `disks/<id>.ext4`.
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for (dir, suffix) in [
        (opts.data_dir.clone(), ".log"),
        (opts.data_dir.join("disks"), ".ext4"),
    ] {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(suffix) else {
                continue;
            };
            if !is_vm_id(id) || id == "smolvm" || !e.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            if !row_ids.contains(id) && !vm_alive(id) {
                files.push((id.to_string(), e.path()));
            }
        }
    }
    files.sort_by(|a, b| a.1.cmp(&b.1));
    for (id, path) in files {
        out.push(StaleResource {
            kind: ResourceKind::File,
            name: path.display().to_string(),
            vm_id: Some(id),
            action: OrphanAction::Unlink(path),
        });
    }
    out
}

/// Tear down every target (in parallel, bounded by `opts.parallel`; events in target
/// order), then remove every orphan. A failure does not stop the others.
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
        vmms: plan.vmms.clone(),
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
    for r in &plan.stale_resources {
        if progress.cancelled() {
            report.cancelled = true;
            break;
        }
        let outcome = remove_orphan(r, &plan.opts).await;
        match &outcome {
            Ok(()) => progress.emit(CleanupEvent::Cleaned(r.clone())),
            Err(e) => progress.emit(CleanupEvent::CleanFailed {
                resource: r.clone(),
                error: e.clone(),
            }),
        }
        report.stale_resources.push((r.clone(), outcome.err()));
    }
    report
}

struct Ctx {
    store: Arc<StateStore>,
    vmms: Vec<VmmProcess>,
    opts: CleanupOptions,
}

/// Tear down one VM. Each step tolerates "already gone"; the row goes last, so a run
/// interrupted at any point is finished by the next one.
async fn teardown(t: &Target, ctx: &Ctx) -> std::result::Result<(), String> {
    let vm = &t.vm;
    // 1. The VMM.
    for p in &vm_processes(vm, &ctx.vmms, &ctx.opts.socket_dir) {
        stop_vmm(p, ctx.opts.stop_timeout).await?;
    }
    teardown_resources(t, ctx).await
}

/// Every live process carrying this VM's socket in our socket dir, and the row's PID when
/// it still carries the row's own socket (SmolVM's /tmp sockets).
fn vm_processes(vm: &VmRecord, vmms: &[VmmProcess], socket_dir: &Path) -> Vec<VmmProcess> {
    let mut procs: Vec<VmmProcess> = vmms.iter().filter(|v| v.vm_id == vm.id).cloned().collect();
    if let Some(info) = vm
        .pid
        .filter(|p| *p > 0 && *p <= i64::from(i32::MAX))
        .and_then(|p| process::info(p as i32))
    {
        if !info.is_zombie() && !procs.iter().any(|p| p.pid == info.pid) {
            if let Some((kind, vm_id, socket)) = process::socket_in_cmdline(&info.cmdline, None) {
                if carries_socket_of(&info, vm, socket_dir) {
                    procs.push(VmmProcess {
                        pid: info.pid,
                        start_ticks: info.start_ticks,
                        comm: info.comm.clone(),
                        kind,
                        vm_id,
                        socket,
                    });
                }
            }
        }
    }
    procs
}

/// Stop this VM's VMM processes (graceful first, SIGKILL last, verified pidfds only).
pub async fn stop_vm(
    vm: &VmRecord,
    socket_dir: &Path,
    budget: Duration,
) -> std::result::Result<(), String> {
    let dir = socket_dir.to_path_buf();
    let vmms = tokio::task::spawn_blocking(move || process::vmm_processes(Some(&dir)))
        .await
        .map_err(|e| e.to_string())?;
    for p in &vm_processes(vm, &vmms, socket_dir) {
        stop_vmm(p, budget).await?;
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
    let (vm, leases) = tokio::task::spawn_blocking(move || {
        Ok::<_, String>((
            st.get_vm(&id).map_err(|e| e.to_string())?,
            st.leases().map_err(|e| e.to_string())?,
        ))
    })
    .await
    .map_err(|e| e.to_string())??;
    let Some(vm) = vm else { return Ok(()) };
    stop_vm(&vm, &opts.socket_dir, opts.stop_timeout).await?;
    let t = Target {
        resources: VmResources::of(&vm, &leases),
        vm,
        reason: TargetReason::All,
    };
    let ctx = Ctx {
        store,
        vmms: Vec::new(),
        opts,
    };
    teardown_resources(&t, &ctx).await
}

/// Steps 2–5 of a teardown: everything but the VMM process.
async fn teardown_resources(t: &Target, ctx: &Ctx) -> std::result::Result<(), String> {
    let vm = &t.vm;
    // 2. The TAP device (a bridge TAP only if its alias says it is this VM's).
    if let Some(tap) = &t.resources.tap {
        let mine = if t.resources.bridge {
            let want = format!("smolvm-bridge:{}", vm.id);
            match net::links().await {
                Ok(links) => links
                    .iter()
                    .find(|l| &l.name == tap)
                    .is_none_or(|l| l.alias.as_deref() == Some(want.as_str())),
                Err(e) => return Err(e.to_string()),
            }
        } else {
            true
        };
        if mine {
            net::delete_link(tap).await.map_err(|e| e.to_string())?;
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
            let cmds = vm_nft_commands(&state, &id, &res);
            match nft::apply(&cmds) {
                Ok(()) => return Ok(()),
                Err(e) if attempt == 2 => return Err(e.to_string()),
                Err(_) => continue,
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| e.to_string())??;

    // 4. Files: control sockets, console log, isolated disk.
    let mut files = vec![
        ctx.opts.socket_dir.join(format!("fc-{}.sock", vm.id)),
        ctx.opts.socket_dir.join(format!("qmp-{}.sock", vm.id)),
        ctx.opts.socket_dir.join(format!("vsock-{}.sock", vm.id)),
        ctx.opts.data_dir.join(format!("{}.log", vm.id)),
        ctx.opts
            .data_dir
            .join("disks")
            .join(format!("{}.ext4", vm.id)),
    ];
    if let Some(s) = &vm.socket_path {
        let s = PathBuf::from(s);
        if s.file_name()
            .and_then(|n| n.to_str())
            .and_then(process::socket_vm)
            .is_some_and(|(_, sid)| sid == vm.id)
        {
            files.push(s);
        }
    }
    for f in files {
        remove_file_if_exists(&f)?;
    }

    // 5. The row and its leases, in one transaction.
    let store = ctx.store.clone();
    let id = vm.id.clone();
    tokio::task::spawn_blocking(move || store.delete_vm(&id).map(drop))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// This VM's nftables elements and rules, as delete commands.
fn vm_nft_commands(state: &nft::NftState, vm_id: &str, res: &VmResources) -> Vec<String> {
    let mut cmds = Vec::new();
    for e in &state.elements {
        let mine = match (&e.key, e.set.as_str()) {
            (nft::ElemKey::Ifname(t), "allowed_taps") => res.tap.as_deref() == Some(t.as_str()),
            (nft::ElemKey::Port(p), "dnat_ext" | "dnat_local") => res.ssh_host_port == Some(*p),
            (nft::ElemKey::AddrPort(ip, _), "snat_return" | "fwd_allow") => {
                res.guest_ip.as_deref() == Some(ip.as_str())
            }
            _ => false,
        };
        if mine {
            cmds.push(e.delete_command());
        }
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
            cmds.push(r.delete_command());
        }
    }
    cmds
}

fn remove_file_if_exists(p: &Path) -> std::result::Result<(), String> {
    match std::fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!(
            "{}: cannot remove {}",
            super::error::io_reason(&e),
            p.display()
        )),
    }
}

async fn remove_orphan(
    r: &StaleResource,
    opts: &CleanupOptions,
) -> std::result::Result<(), String> {
    match &r.action {
        OrphanAction::Stop(p) => stop_vmm(p, opts.stop_timeout).await,
        OrphanAction::DeleteLink(name) => net::delete_link(name)
            .await
            .map(drop)
            .map_err(|e| e.to_string()),
        OrphanAction::Nft(cmd) => {
            let cmd = cmd.clone();
            tokio::task::spawn_blocking(move || nft::apply(&[cmd]))
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
        OrphanAction::Unlink(p) => remove_file_if_exists(p),
    }
}

/// Stop one VMM within `budget`: ask the guest to power off (Firecracker
/// `SendCtrlAltDel`, QEMU `system_powerdown` when it is running), then QEMU `quit`, then
/// SIGTERM, then SIGKILL, each with a bounded wait. Signals go through a pidfd opened only
/// after proving the process is this VMM (same start time, same control socket). A
/// process that is already gone is success.
pub async fn stop_vmm(p: &VmmProcess, budget: Duration) -> std::result::Result<(), String> {
    let expected = |i: &ProcInfo| {
        i.start_ticks == p.start_ticks
            && process::socket_in_cmdline(&i.cmdline, None)
                .is_some_and(|(_, id, s)| id == p.vm_id && s == p.socket)
    };
    let pfd = match Pidfd::open_verified(p.pid, expected) {
        Ok(Some(f)) => f,
        Ok(None) => return Ok(()),
        Err(e) => return Err(e.to_string()),
    };
    let share = |n: u32| budget * n / 10;
    let step = share(1).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let started = Instant::now();
    match p.kind {
        VmmKind::Qemu => {
            if let Ok(mut q) = Qmp::connect(&p.socket, step).await {
                if q.query_status().await.ok().as_deref() == Some("running")
                    && q.execute("system_powerdown", None).await.is_ok()
                    && pfd.wait_exit(share(5)).await
                {
                    return Ok(());
                }
                let _ = q.execute("quit", None).await;
                if pfd.wait_exit(share(2)).await {
                    return Ok(());
                }
            }
        }
        VmmKind::Firecracker => {
            if firecracker::send_ctrl_alt_del(&p.socket, step)
                .await
                .is_ok()
                && pfd.wait_exit(share(5)).await
            {
                return Ok(());
            }
        }
    }
    let signal = |sig: i32| -> std::result::Result<(), String> {
        match pfd.signal(sig) {
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
    if pfd.wait_exit(remaining / 2).await {
        return Ok(());
    }
    signal(libc::SIGKILL)?;
    if pfd
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
        assert!(is_nat_tap_name("tap2") && !is_nat_tap_name("tap") && !is_nat_tap_name("tapx"));
        assert!(is_bridge_tap_name("svmb0a1b2c3d") && !is_bridge_tap_name("svmb0A1B2C3D"));
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
                e("allowed_taps", nft::ElemKey::Ifname("tap2".into())),
                e("allowed_taps", nft::ElemKey::Ifname("tap3".into())),
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
            vm_nft_commands(&state, "vm-a", &res),
            [
                "delete element ip smolvm_nat dnat_ext { 2200 }",
                "delete element ip smolvm_nat snat_return { 172.16.0.2 . 22 }",
                "delete element ip smolvm_nat allowed_taps { \"tap2\" }",
                "delete rule ip smolvm_nat output handle 1",
                "delete rule ip smolvm_nat output handle 4",
            ]
        );
    }
}
