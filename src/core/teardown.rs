//! Teardown of one VM, each step idempotent so a rerun after a crash finishes the job:
//! stop the VMM (Firecracker `SendCtrlAltDel` / QEMU QMP `system_powerdown`, then `quit`,
//! then SIGTERM, then SIGKILL, through a verified pidfd), delete its TAP, delete its
//! nftables elements and rules (never the shared tables, maps or global rules), remove its
//! sockets, log and disk, and last delete its row and leases in one transaction. Used for
//! cleanup's targets and, through [`teardown_vm`] and [`stop_vm`], by `sandbox delete`,
//! `stop` and a failed start's rollback.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::vm::{row_is_live, VmId};
use crate::core::error::{io_reason, rt, Error, ErrorCode, Result};

use crate::sys::fs::{self, VmFile};
use crate::sys::net::{self, nft, OwnedTap, TapClaim};
use crate::sys::paths::STATE_DB_FILE;
use crate::sys::process::{self, OwnedVmm, VmmClaim, VmmKind, VmmProcess};
use crate::sys::signals;
use crate::sys::state::{Known, Leases, StateStore, VmRecord};
use crate::sys::vmm::{firecracker, qmp::Qmp};

/// What a teardown needs to know beyond the store: where this install's files are, the
/// budget for stopping the VMM, and what the other state databases record (so a TAP
/// another VM records is never taken).
#[derive(Debug, Clone)]
pub struct TeardownOptions {
    pub data_dir: PathBuf,
    pub socket_dir: PathBuf,
    /// The whole budget for stopping one VMM, graceful steps included.
    pub stop_timeout: Duration,
    /// Teardowns in flight at once; their CPU-bound steps run at most one per core.
    pub parallel: usize,
    pub busy_timeout: Duration,
    /// Every candidate state database: the active one is the store, the others protect
    /// what they record.
    pub candidate_dbs: Vec<PathBuf>,
}

text_enum! {
    /// Why a VM is a target.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum TargetReason {
        Stale = "stale",
        Prefix = "prefix",
        All = "all",
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
    pub(super) fn of(vm: &VmRecord, leases: &Leases) -> Self {
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

/// What every candidate state database records: the other databases read without
/// changing them, plus the active one's `rows` and `leases`.
pub(super) fn known_from(
    opts: &TeardownOptions,
    rows: &[VmRecord],
    leases: &Leases,
) -> (Known, Vec<String>) {
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

/// What every teardown of one cleanup shares: the store, what every database records
/// (so a TAP another VM records is never taken), and the options.
pub(super) struct Ctx {
    pub(super) store: Arc<StateStore>,
    pub(super) known: Arc<Known>,
    pub(super) opts: TeardownOptions,
    /// Live VMM processes, scanned once for the whole run (after the prompt); each one a
    /// target claims is proved again, through a pidfd, right before it is signalled.
    pub(super) vmms: Vec<VmmProcess>,
    /// Permits for the steps that cost CPU (reading the row, proving the TAP, nftables,
    /// files, the row's deletion): one per core. Waiting — for a guest to power off, for
    /// the kernel to let a deleted link go — holds none, so many teardowns wait at once
    /// while the work itself never oversubscribes the machine.
    pub(super) cpu: Arc<tokio::sync::Semaphore>,
    /// The nftables deletions of teardowns that reach that step together, made as one.
    pub(super) nft: NftQueue,
}

/// Teardowns that reach the nftables step together share one look at the tables and one
/// atomic batch: whoever gets the turn reads the tables once and deletes every waiting
/// VM's elements and rules (`nft` three times, not three times per VM). When the combined
/// batch fails, each VM's deletions are retried on their own, so one VM's problem is only
/// its own.
#[derive(Default)]
pub(super) struct NftQueue {
    pending: std::sync::Mutex<Vec<NftRequest>>,
    turn: tokio::sync::Mutex<()>,
}

struct NftRequest {
    vm_id: String,
    res: VmResources,
    done: tokio::sync::oneshot::Sender<Result<()>>,
}

impl NftQueue {
    /// Delete VM `vm_id`'s nftables elements and rules (see [`vm_nft_deletions`]).
    async fn delete(
        &self,
        vm_id: &str,
        res: &VmResources,
        cpu: &tokio::sync::Semaphore,
    ) -> Result<()> {
        let (done, result) = tokio::sync::oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(NftRequest {
                vm_id: vm_id.to_string(),
                res: res.clone(),
                done,
            });
        {
            let _turn = self.turn.lock().await;
            let batch = std::mem::take(
                &mut *self
                    .pending
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            if !batch.is_empty() {
                let _cpu = cpu.acquire().await.map_err(rt)?;
                let reqs: Vec<(String, VmResources)> = batch
                    .iter()
                    .map(|r| (r.vm_id.clone(), r.res.clone()))
                    .collect();
                let outcomes = tokio::task::spawn_blocking(move || nft_delete_all(&reqs))
                    .await
                    .map_err(rt)?;
                for (r, o) in batch.into_iter().zip(outcomes) {
                    let _ = r.done.send(o);
                }
            }
        }
        result
            .await
            .unwrap_or_else(|_| Err(rt("the nftables step was dropped")))
    }
}

/// Every VM's deletions as one batch (re-read and retried on a conflict); when that keeps
/// failing, each VM on its own. One outcome per request, in order.
fn nft_delete_all(reqs: &[(String, VmResources)]) -> Vec<Result<()>> {
    for _ in 0..3 {
        let state = match nft::read() {
            Ok(s) => s,
            Err(e) => {
                // Nothing provable to remove without rights to look: an error only for a
                // VM that has a network.
                return reqs
                    .iter()
                    .map(|(_, res)| {
                        if res.tap.is_some() {
                            Err(rt(&e))
                        } else {
                            Ok(())
                        }
                    })
                    .collect();
            }
        };
        let all: Vec<nft::Deletion> = reqs
            .iter()
            .flat_map(|(id, res)| vm_nft_deletions(&state, id, res))
            .collect();
        if nft::delete(&all).is_ok() {
            return reqs.iter().map(|_| Ok(())).collect();
        }
        if reqs.len() > 1 {
            break;
        }
    }
    reqs.iter()
        .map(|(id, res)| nft_delete_one(id, res))
        .collect()
}

/// One VM's deletions: read, delete, re-read on a conflict (a parallel change).
fn nft_delete_one(id: &str, res: &VmResources) -> Result<()> {
    for attempt in 0..3 {
        let state = match nft::read() {
            Ok(s) => s,
            Err(e) if res.tap.is_some() => return Err(rt(e)),
            Err(_) => return Ok(()),
        };
        match nft::delete(&vm_nft_deletions(&state, id, res)) {
            Ok(()) => return Ok(()),
            Err(e) if attempt == 2 => return Err(rt(e)),
            Err(_) => continue,
        }
    }
    Ok(())
}

/// One permit per core (at most `in_flight`): how many teardowns do CPU-bound work at once.
pub(super) fn cpu_permits(in_flight: usize) -> Arc<tokio::sync::Semaphore> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Arc::new(tokio::sync::Semaphore::new(cores.min(in_flight.max(1))))
}

/// Tear down one VM. Each step tolerates "already gone"; the row goes last, so a run
/// interrupted at any point is finished by the next one. The row is read again first: a
/// row deleted meanwhile is done, and a stale VM that was started again meanwhile is left
/// alone.
pub(super) async fn teardown(t: &Target, ctx: &Ctx) -> Result<()> {
    let cpu = ctx.cpu.acquire().await.map_err(rt)?;
    let store = ctx.store.clone();
    let id = t.vm.id.clone();
    let (fresh, leases) = tokio::task::spawn_blocking(move || {
        Ok::<_, Error>((store.get_vm(&id).map_err(rt)?, store.leases().map_err(rt)?))
    })
    .await
    .map_err(rt)??;
    let Some(vm) = fresh else { return Ok(()) };
    if t.reason == TargetReason::Stale && row_is_live(&vm, &ctx.opts.socket_dir) {
        return Err(Error::new(
            ErrorCode::Refused,
            format!(
                "VM {} was started again since the plan ({}); not deleted",
                vm.id, vm.status
            ),
        ));
    }
    // Stopping is mostly waiting for the guest: no CPU permit held meanwhile.
    drop(cpu);
    stop_found(
        &vm,
        &ctx.vmms,
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

/// Of the live VMM processes `vmms`, those of this VM that its row proves ours: carrying
/// the row's control socket (ours in the socket dir, or the one the row records), and being
/// the row's PID or started with this install's files.
fn vm_processes(
    vm: &VmRecord,
    vmms: &[VmmProcess],
    socket_dir: &Path,
    data_dir: &Path,
) -> Vec<VmmProcess> {
    let claim = VmmClaim::Row {
        vm,
        socket_dir,
        data_dir,
    };
    vmms.iter()
        .filter(|p| p.vm_id == vm.id && claim.holds(p))
        .cloned()
        .collect()
}

/// Stop this VM's VMM processes (graceful first, SIGKILL last, proved pidfds only).
pub async fn stop_vm(
    vm: &VmRecord,
    socket_dir: &Path,
    data_dir: &Path,
    budget: Duration,
) -> Result<()> {
    let vmms = tokio::task::spawn_blocking(|| process::vmm_processes(None))
        .await
        .map_err(rt)?;
    stop_found(vm, &vmms, socket_dir, data_dir, budget).await
}

/// The PIDs of the live VMM processes of `vm` that its row proves ours (the same claim
/// [`stop_vm`] acts on), for a restart that must not put a second VMM on the disk.
pub async fn live_vmms(vm: &VmRecord, socket_dir: &Path, data_dir: &Path) -> Result<Vec<i32>> {
    let (v, s, d) = (vm.clone(), socket_dir.to_path_buf(), data_dir.to_path_buf());
    tokio::task::spawn_blocking(move || {
        let all: Vec<VmmProcess> = process::vmm_processes(None)
            .into_iter()
            .filter(|p| p.vm_id == v.id)
            .collect();
        vm_processes(&v, &all, &s, &d)
            .into_iter()
            .map(|p| p.pid)
            .collect()
    })
    .await
    .map_err(rt)
}

/// [`stop_vm`] over an existing scan of the live VMMs.
async fn stop_found(
    vm: &VmRecord,
    vmms: &[VmmProcess],
    socket_dir: &Path,
    data_dir: &Path,
    budget: Duration,
) -> Result<()> {
    let candidates: Vec<VmmProcess> = vmms.iter().filter(|p| p.vm_id == vm.id).cloned().collect();
    if candidates.is_empty() {
        return Ok(());
    }
    let (v, s, d) = (vm.clone(), socket_dir.to_path_buf(), data_dir.to_path_buf());
    let procs = tokio::task::spawn_blocking(move || vm_processes(&v, &candidates, &s, &d))
        .await
        .map_err(rt)?;
    for p in &procs {
        let claim = VmmClaim::Row {
            vm,
            socket_dir,
            data_dir,
        };
        let owned = match OwnedVmm::prove(p, claim) {
            Ok(Some(o)) => o,
            Ok(None) => continue,
            Err(e) => return Err(rt(e)),
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
    vm_id: &VmId,
    opts: TeardownOptions,
) -> Result<()> {
    let id = vm_id.to_string();
    let st = store.clone();
    let o = opts.clone();
    let (vm, known, vmms) = tokio::task::spawn_blocking(move || {
        let vm = st.get_vm(&id).map_err(rt)?;
        let rows = st.list_vms().map_err(rt)?;
        let leases = st.leases().map_err(rt)?;
        let known = known_from(&o, &rows.vms, &leases).0;
        Ok::<_, Error>((vm, known, process::vmm_processes(None)))
    })
    .await
    .map_err(rt)??;
    let Some(vm) = vm else { return Ok(()) };
    let t = Target {
        resources: VmResources::default(),
        vm,
        reason: TargetReason::All,
    };
    let ctx = Ctx {
        store,
        known: Arc::new(known),
        cpu: cpu_permits(opts.parallel),
        nft: NftQueue::default(),
        opts,
        vmms,
    };
    teardown(&t, &ctx).await
}

/// Steps 2–5 of a teardown: everything but the VMM process.
async fn teardown_resources(t: &Target, ctx: &Ctx) -> Result<()> {
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
        let cpu = ctx.cpu.acquire().await.map_err(rt)?;
        let proved = OwnedTap::prove(tap, claim).await;
        // Deleting a link is mostly the kernel waiting for RCU grace periods: no permit.
        drop(cpu);
        match proved {
            Ok(Some(owned)) => {
                net::delete_link(&owned).await.map_err(rt)?;
            }
            Ok(None) => {}
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {}
            Err(e) => return Err(rt(e)),
        }
    }

    // 3. nftables: exactly this VM's elements and rules, in one atomic batch — shared with
    //    the teardowns that get there at the same time ([`NftQueue`]).
    ctx.nft.delete(&vm.id, &t.resources, &ctx.cpu).await?;
    let _cpu = ctx.cpu.acquire().await.map_err(rt)?;
    // The guard's objects of this TAP (smolvm's own table), unless another database
    // records the TAP (then they guard that VM).
    let res = &t.resources;
    if let Some(tap) = res
        .tap
        .clone()
        .filter(|tap| !res.bridge && !ctx.known.tap_recorded_by_other(tap, &vm.id))
    {
        let ip = res.guest_ip.clone();
        tokio::task::spawn_blocking(move || crate::core::egress::remove_guard(&tap, ip.as_deref()))
            .await
            .map_err(rt)?
            .map_err(rt)?;
    }

    // 3b. The VM's SSH forwards (`openclaw open-ui`): their processes, proved, and their
    //     record.
    {
        let (d, id) = (ctx.opts.data_dir.clone(), vm.id.clone());
        tokio::task::spawn_blocking(move || crate::core::ports::end_tunnels(&d, &id, None))
            .await
            .map_err(rt)??;
    }

    // 4. Files, by the names smolvm generates for this id in the dirs it owns: control
    //    sockets, console log, isolated disk (never a path read from the row); its
    //    ledger entry goes with the row, below.
    for f in VmFile::ALL
        .into_iter()
        .filter(|f| !matches!(f, VmFile::Ledger))
    {
        fs::remove_vm_file(f, &ctx.opts.data_dir, &ctx.opts.socket_dir, &vm.id).map_err(|e| {
            let path = f.path(&ctx.opts.data_dir, &ctx.opts.socket_dir, &vm.id);
            let shown = path.as_deref().unwrap_or(Path::new(&vm.id)).display();
            Error::runtime(format!("{}: cannot remove {shown}", io_reason(&e)))
        })?;
    }

    // 5. The row and its leases, in one transaction; then the ledger entry.
    let store = ctx.store.clone();
    let id = vm.id.clone();
    tokio::task::spawn_blocking(move || store.delete_vm(&id).map(drop))
        .await
        .map_err(rt)?
        .map_err(rt)?;
    fs::remove_vm_file(
        VmFile::Ledger,
        &ctx.opts.data_dir,
        &ctx.opts.socket_dir,
        &vm.id,
    )
    .map(drop)
    .map_err(rt)
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

/// Stop one VMM within `budget`: ask the guest to power off (Firecracker
/// `SendCtrlAltDel`, QEMU `system_powerdown` when it is running), then QEMU `quit`, then
/// SIGTERM, then SIGKILL, each with a bounded wait. Signals go only to a VMM proved ours
/// ([`OwnedVmm`]). A process that is already gone is success.
pub(super) async fn stop_vmm(owned: &OwnedVmm, budget: Duration) -> Result<()> {
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
    let signal = |sig: i32| -> Result<()> {
        match owned.signal(sig) {
            Ok(()) => Ok(()),
            Err(e) if signals::is_gone(&e) => Ok(()),
            Err(e) if signals::is_not_permitted(&e) => Err(Error::runtime(format!(
                "Permission denied: cannot stop process {} ({})",
                p.pid, p.comm
            ))),
            Err(e) => Err(Error::runtime(format!(
                "cannot signal process {}: {e}",
                p.pid
            ))),
        }
    };
    let remaining = budget.saturating_sub(started.elapsed());
    signal(signals::SIGTERM)?;
    if owned.wait_exit(remaining / 2).await {
        return Ok(());
    }
    signal(signals::SIGKILL)?;
    if owned
        .wait_exit((remaining / 2).max(Duration::from_secs(1)))
        .await
    {
        return Ok(());
    }
    Err(Error::runtime(format!(
        "process {} ({}) did not exit",
        p.pid, p.comm
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::state::VmStatus;

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
        let rule = nft::Rule::nat_output;
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
