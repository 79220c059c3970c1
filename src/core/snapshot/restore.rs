//! `sandbox snapshot restore S [--resume] [--force]`: the snapshot's sandbox comes back
//! under its own id, MAC, TAP, IP and SSH port (row, leases, TAP and nftables recreated
//! when the sandbox was deleted), on a copy of the snapshot's disk at the sandbox's own
//! disk path.
//!
//! - QEMU `full`: a new QEMU with the same machine and devices started paused with
//!   `-incoming defer`; the state file is opened here and passed over QMP; `cont` with
//!   `--resume`. The guest's processes and memory go on where they were.
//! - Firecracker `full`: a new process, `PUT /snapshot/load` (resumed with `--resume`).
//! - `disk`: a cold boot of the copied disk (paused once ready unless `--resume`).
//!
//! With `--resume` it returns only when the guest's SSH server answers. A sandbox of that
//! id that exists is replaced only with `--force` (or when it is what an interrupted
//! restore of this same snapshot left). Any failure rolls back like a failed start.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{get, rt, SnapshotInfo, SnapshotType, FC_MEM, FC_STATE, STATE};
use crate::core::context::Ctx;
use crate::core::error::{io_reason, Error, Result};
use crate::core::host::{AccelRequest, Backend};
use crate::core::images::Vmm;
use crate::core::progress::Progress;
use crate::core::start::{self, StartEvent};
use crate::core::teardown;
use crate::core::vm::VmId;
use crate::sys::open;
use crate::sys::state::{Network, StateError, VmRecord, VmStatus};
use crate::sys::vmm::{firecracker, qmp::Qmp};

#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    pub snapshot_id: String,
    /// Run the guest (and wait for its SSH) instead of leaving it paused.
    pub resume: bool,
    /// Replace a sandbox of that id.
    pub force: bool,
    pub boot_timeout: Option<Duration>,
}

/// `snapshot{id, type, vm_id, created_at}` and `vm{name, status, ip_address, ssh_port}`.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub snapshot: RestoredSnapshot,
    pub vm: RestoredVm,
    /// Whether a sandbox of that id was replaced (`--force`).
    pub replaced: bool,
    pub elapsed_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoredSnapshot {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: SnapshotType,
    pub vm_id: VmId,
    pub created_at: String,
}

/// A sandbox brought up from a snapshot (by a restore, or as a clone): SmolVM's `vm` keys.
#[derive(Debug, Clone, Serialize)]
pub struct RestoredVm {
    pub name: String,
    pub status: VmStatus,
    pub ip_address: String,
    pub ssh_port: Option<u16>,
    pub pid: Option<i64>,
}

/// The snapshot's network, checked before it names a device: a pool address and its
/// `tap<N>`.
fn network_of(info: &SnapshotInfo, net: &Network) -> Result<(Ipv4Addr, String)> {
    let bad = || {
        rt(format!(
            "Snapshot '{}' has no usable network configuration (guest_ip {:?}, tap_device {:?})",
            info.id, net.guest_ip, net.tap_device
        ))
    };
    let ip: Ipv4Addr = net
        .guest_ip
        .as_deref()
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let index = crate::sys::net::tap::pool_index(ip).ok_or_else(bad)?;
    let tap = format!("tap{index}");
    if net.tap_device.as_deref() != Some(tap.as_str()) {
        return Err(bad());
    }
    Ok((ip, tap))
}

pub async fn restore(
    ctx: &Ctx,
    opts: &RestoreOptions,
    progress: &Progress<StartEvent>,
) -> Result<RestoreReport> {
    tracing::info!(snapshot = %opts.snapshot_id, "restoring snapshot");
    let t0 = Instant::now();
    let mut abort = start::Abort::new(format!("Restore of snapshot '{}'", opts.snapshot_id));
    abort.check(progress)?;
    let (row, info) = get(ctx, &opts.snapshot_id)?;
    if info.kind == SnapshotType::Diff {
        return Err(rt(format!(
            "Snapshot '{}' is a diff snapshot, which this smolvm cannot restore yet",
            info.id
        )));
    }
    info.require_files("restored")?;
    // A row's id that names no sandbox is "not found" (the lock's rule before).
    let id = VmId::parse(&row.vm_id)?;
    // The sandbox's lock before its row is read: a restore replaces it.
    let _lock = ctx
        .lock_for_snapshot(
            &id,
            &info.id,
            &format!("sandbox snapshot restore {}", info.id),
        )
        .await?;
    // From here on a Ctrl-C rolls back instead of leaving a half-restored sandbox.
    abort.hold_signals();
    abort.check(progress)?;
    let vmm = crate::core::vm::snapshot_vmm(&row)?;
    let net: Network = serde_json::from_value(row.network_config.clone()).unwrap_or_default();
    // A bridged sandbox has no pool address or `tap<N>`: its TAP is made afresh on its
    // bridge (as `sandbox start` makes it) and its address is smolvm's own record.
    let bridged = row.vm_config.bridge().is_some();
    let (ip, tap) = if bridged {
        let ip = row
            .vm_config
            .extras
            .bridge_address
            .as_deref()
            .and_then(|s| s.split(['/', ',']).next()?.parse().ok())
            .ok_or_else(|| {
                rt(format!(
                    "Snapshot '{}' is of a bridged sandbox without smolvm's guest address; it cannot be restored",
                    info.id
                ))
            })?;
        (ip, String::new())
    } else {
        network_of(&info, &net)?
    };
    let accel = match row.vm_config.extras.accel.as_deref() {
        None => None,
        Some(a) => Some(AccelRequest::parse(a).ok_or_else(|| {
            rt(format!(
                "Snapshot '{}' has an unknown accelerator '{a}'",
                info.id
            ))
        })?),
    };
    let mut runtime = start::runtime(
        ctx,
        Backend::from_vmm(Some(vmm)),
        accel,
        opts.boot_timeout,
        progress,
    )?;
    // The saved state loads only into the same machine type: the stored one, resolved as
    // `sandbox start` resolves it.
    start::set_machine(&mut runtime, row.vm_config.qemu_machine.as_deref(), |m| {
        rt(format!(
            "Snapshot '{}' has an unknown QEMU machine '{m}'",
            info.id
        ))
    })?;

    // Refusals before anything changes.
    // What the VMM will be given (a Firecracker full snapshot loads without its kernel).
    if !(vmm == Vmm::Firecracker && info.kind != SnapshotType::Disk) {
        start::check_kernel_and_mounts(ctx, start::Whose::Snapshot(&info.id), &row.vm_config)?;
    }
    let existing = ctx.store.get_vm(&id).map_err(rt)?;
    let holders = if bridged {
        Default::default()
    } else {
        ctx.store
            .lease_holders(&ip.to_string(), net.ssh_host_port, &id)
            .map_err(rt)?
    };
    if let Some(other) = holders.iter().next() {
        return Err(rt(format!(
            "The snapshot's address {ip} or SSH port is taken by sandbox '{other}'"
        ))
        .with_recovery(format!(
            "Delete '{other}' first ('smolvm sandbox delete {other}')."
        )));
    }
    let replaced = existing.is_some();
    if let Some(vm) = &existing {
        let live = crate::core::vm::row_is_live(vm, &ctx.paths.socket_dir);
        // Only a restore that never finished carries the marker (it is removed on success).
        let interrupted = vm.config.extras.restoring_snapshot.as_deref() == Some(info.id.as_str());
        if !opts.force && !interrupted {
            let state = if live { "running" } else { vm.status.as_str() };
            return Err(Error::runtime(format!(
                "Sandbox '{id}' already exists ({state}); restoring would replace it"
            ))
            .with_recovery(format!(
                "Pass --force to replace it, or delete it first ('smolvm sandbox delete {id}')."
            )));
        }
        // Replacing it is deleting it: delete's budget (`SMOLVM_STOP_TIMEOUT`, else 10 s).
        let budget = crate::core::vm::stop_timeout(&ctx.env, None)?;
        teardown::teardown_vm(ctx.store.clone(), &id, ctx.teardown_options(budget))
            .await
            .map_err(|e| rt(format!("cannot replace sandbox '{id}': {e}")))
            .map_err(|e| abort.failure(e, progress))?;
    }

    let disk = ctx.disk_path(&id)?;
    let mut config = insert_restoring_row(ctx, &id, &info.id, &row.vm_config, &disk, |_| {})?;
    // The snapshot's egress policy, before the network is set up.
    let settings = crate::core::egress::snapshot_settings(&ctx.store, &info.id, &row.vm_config);
    let r = match crate::core::egress::save(&ctx.store, &id, &settings) {
        Ok(()) => {
            bring_up(
                ctx, &info, &runtime, vmm, ip, &tap, &net, &disk, opts, &abort, progress,
            )
            .await
        }
        Err(e) => Err(e),
    };
    // A stop that came as it finished still rolls back (nothing is recorded as restored),
    // and a failure once one came is that stop.
    let r = abort.settle(r, progress);
    let (status, pid) = match r {
        Ok(v) => v,
        Err(e) => return Err(start::roll_back(ctx, &id, e, progress).await),
    };
    config.extras.restoring_snapshot = None;
    config.extras.restored_from_snapshot = Some(info.id.clone());
    ctx.store.set_config(&id, &config).map_err(rt)?;
    ctx.store
        .mark_snapshot_restored(&info.id, &id)
        .map_err(rt)?;
    Ok(RestoreReport {
        snapshot: RestoredSnapshot {
            id: info.id.clone(),
            kind: info.kind,
            vm_id: id.clone(),
            created_at: info.created_at.clone(),
        },
        vm: RestoredVm {
            name: id.to_string(),
            status,
            ip_address: ip.to_string(),
            ssh_port: net.ssh_host_port,
            pid,
        },
        replaced,
        elapsed_ms: start::ms(t0.elapsed()),
    })
}

/// Disk, leases, network, VMM; the state loaded (full) or the disk booted (disk).
#[allow(clippy::too_many_arguments)]
async fn bring_up(
    ctx: &Ctx,
    info: &SnapshotInfo,
    runtime: &crate::core::host::Runtime,
    vmm: Vmm,
    ip: Ipv4Addr,
    tap: &str,
    net: &Network,
    disk: &std::path::Path,
    opts: &RestoreOptions,
    abort: &start::Abort,
    progress: &Progress<StartEvent>,
) -> Result<(VmStatus, Option<i64>)> {
    let id = info.vm_id.clone();
    copy_disk(ctx, &id, &info.path.join(super::DISK), disk).await?;
    abort.check(progress)?;
    // A bridged sandbox's TAP is reserved when its network is set up.
    if !tap.is_empty() {
        ctx.store
            .reserve_network(&id, &ip.to_string(), tap, net.ssh_host_port)
            .map_err(|e| rt(e).with_recovery("Delete the sandbox holding it and try again."))?;
    }
    let (log, socket) = start::prepare_files(ctx, &id, vmm, disk)?;
    if info.kind == SnapshotType::Disk {
        let row = ctx
            .store
            .get_vm(&id)
            .map_err(rt)?
            .ok_or_else(|| rt(format!("Sandbox '{id}' vanished while restoring")))?;
        let checked = start::check_config(ctx, &id, &row.config)?;
        let rep = start::boot(ctx, &id, &checked, runtime, log, socket, abort, progress).await?;
        if opts.resume {
            return Ok((VmStatus::Running, rep.pid));
        }
        let vm = ctx
            .store
            .get_vm(&id)
            .map_err(rt)?
            .ok_or_else(|| rt(format!("Sandbox '{id}' vanished while restoring")))?;
        crate::core::lifecycle::set_vcpus_paused(ctx, &vm, true).await?;
        ctx.store
            .set_status(&id, &VmStatus::Paused, rep.pid, vm.socket_path.as_deref())
            .map_err(rt)?;
        return Ok((VmStatus::Paused, rep.pid));
    }

    let net_now = start::setup_network(ctx, &id, progress).await?;
    abort.check(progress)?;
    let row = ctx
        .store
        .get_vm(&id)
        .map_err(rt)?
        .ok_or_else(|| rt(format!("Sandbox '{id}' vanished while restoring")))?;
    progress.emit(StartEvent::PhaseStarted(start::Phase::Spawn));
    let t_spawn = Instant::now();
    // The same machine and devices as the saved one, from the checked config; QEMU waits
    // paused for the state (Firecracker gets its API socket, and its disk where the saved
    // state names it).
    let checked = match vmm {
        Vmm::Qemu => start::check_config(ctx, &id, &row.config)?,
        Vmm::Firecracker => start::check_disk_only(ctx, &id, &row.config)?,
    };
    let spawned = start::spawn_vmm(
        ctx,
        runtime,
        start::VmmJob {
            incoming: true,
            ..start::VmmJob::new(&row, &checked, &net_now, &socket, &log)
        },
    )?;
    let (mut child, user) = (spawned.child, spawned.user);
    let pid = i64::from(child.id());
    let deadline = Instant::now() + runtime.boot_timeout;
    let r = async {
        start::record_spawned(ctx, &id, VmStatus::Paused, pid, &socket)?;
        let what = if vmm == Vmm::Qemu {
            "QEMU"
        } else {
            "Firecracker"
        };
        let budget = deadline.saturating_duration_since(Instant::now());
        match vmm {
            Vmm::Qemu => {
                let doing = format!("restoring '{id}'");
                let mut q = connect_qmp(
                    &mut child, &socket, &user, &log, deadline, &doing, abort, progress,
                )
                .await?;
                let state = open::open_read(&info.path.join(STATE)).map_err(rt)?;
                load_state(&mut q, &state, budget, &log).await?;
                progress.emit(StartEvent::PhaseDone(
                    start::Phase::Spawn,
                    t_spawn.elapsed(),
                ));
                abort.check(progress)?;
                if opts.resume {
                    q.execute("cont", None).await.map_err(rt)?;
                }
            }
            Vmm::Firecracker => {
                loop {
                    abort.check(progress)?;
                    if start::control_socket_up(vmm, &socket, &user).await? {
                        break;
                    }
                    if Instant::now() >= deadline {
                        return Err(rt(format!("Timed out waiting for {what} control socket")));
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                // An unprivileged Firecracker reads copies in a private folder of its
                // user (it cannot reach the snapshots folder); they go once it has loaded.
                let (state, mem) = (info.path.join(FC_STATE), info.path.join(FC_MEM));
                let x = match &user.identity {
                    Some(u) => Some(
                        crate::sys::vmm::prepare::exchange_dir(
                            &ctx.paths.socket_dir,
                            &id,
                            u.id,
                            &[(&state, FC_STATE), (&mem, FC_MEM)],
                        )
                        .map_err(|e| {
                            rt(format!(
                                "cannot hand the snapshot's files to Firecracker: {}",
                                io_reason(&e)
                            ))
                        })?,
                    ),
                    None => None,
                };
                let (s, m) = match &x {
                    Some(x) => (x.join(FC_STATE), x.join(FC_MEM)),
                    None => (state, mem),
                };
                let loaded = firecracker::snapshot_load(
                    &socket,
                    &s,
                    &m,
                    opts.resume,
                    Duration::from_secs(60),
                )
                .await
                .map_err(rt);
                if let Some(x) = &x {
                    crate::sys::vmm::prepare::remove_exchange_dir(x);
                }
                loaded?;
                start::give_disk_back(&user, &checked.rootfs)?;
                progress.emit(StartEvent::PhaseDone(
                    start::Phase::Spawn,
                    t_spawn.elapsed(),
                ));
            }
        }
        if opts.resume {
            start::record_spawned(ctx, &id, VmStatus::Running, pid, &socket)?;
            progress.emit(StartEvent::PhaseStarted(start::Phase::Boot));
            let t = Instant::now();
            let up =
                crate::core::guest::wait_ssh_unless(ip, deadline, || abort.stopped(progress)).await;
            abort.check(progress)?;
            if !up {
                return Err(rt(format!(
                    "the restored guest's SSH server at {ip}:22 did not answer in time"
                ))
                .with_recovery(
                    "Raise --boot-timeout, or restore without --resume and inspect it.",
                ));
            }
            progress.emit(StartEvent::PhaseDone(start::Phase::Boot, t.elapsed()));
        }
        Ok(())
    }
    .await;
    start::settle(child, r, &[&socket], &user)?;
    let status = if opts.resume {
        VmStatus::Running
    } else {
        VmStatus::Paused
    };
    Ok((status, Some(pid)))
}

/// Record `id` as this data dir's and copy the snapshot's disk `src` to the sandbox's
/// `disk` (a reflink where the file system can, else sparse), off the async threads.
pub(super) async fn copy_disk(
    ctx: &Ctx,
    id: &str,
    src: &std::path::Path,
    disk: &std::path::Path,
) -> Result<()> {
    in_disk_home(ctx, id, src, disk, |s, d| {
        crate::sys::disk::isolated_copy(s, d, crate::sys::disk::Durable::ByGuest)
            .map(drop)
            .map_err(|e| copy_err(s, d, &e))
    })
    .await
}

/// [`copy_disk`] in two steps, for a clone's QEMU to be started meanwhile: the disk's
/// file made at its full length under a temporary name beside `disk` ...
pub(super) async fn start_disk_copy(
    ctx: &Ctx,
    id: &str,
    src: &std::path::Path,
    disk: &std::path::Path,
) -> Result<crate::sys::disk::PendingCopy> {
    in_disk_home(ctx, id, src, disk, |s, d| {
        crate::sys::disk::PendingCopy::start(s, d, crate::sys::disk::Durable::ByGuest)
            .map_err(|e| copy_err(s, d, &e))
    })
    .await
}

/// Off the async threads: record `id` as this data dir's, make `disk`'s folder, then
/// `copy(src, disk)`.
async fn in_disk_home<T: Send + 'static>(
    ctx: &Ctx,
    id: &str,
    src: &std::path::Path,
    disk: &std::path::Path,
    copy: impl FnOnce(&std::path::Path, &std::path::Path) -> Result<T> + Send + 'static,
) -> Result<T> {
    let (d, s, data_dir, vm_id) = (
        disk.to_path_buf(),
        src.to_path_buf(),
        ctx.data_dir.clone(),
        id.to_string(),
    );
    tokio::task::spawn_blocking(move || {
        crate::sys::fs::record_vm_id(&data_dir, &vm_id).map_err(rt)?;
        if let Some(p) = d.parent() {
            std::fs::create_dir_all(p).map_err(rt)?;
        }
        copy(&s, &d)
    })
    .await
    .map_err(rt)?
}

/// ... then its data copied in, started at once off the async threads ...
pub(super) fn fill_disk(mut copy: crate::sys::disk::PendingCopy) -> Filling {
    let (tx, rx) = std::sync::mpsc::channel();
    tokio::task::spawn_blocking(move || {
        let t = std::time::Instant::now();
        let r = copy.fill();
        tracing::debug!(ms = start::ms(t.elapsed()), "clone: disk copied");
        let _ = tx.send((copy, r));
    });
    Filling(Some(rx))
}

/// A disk copy going in. [`Filling::wait`] gives it back once its data is in; dropped
/// instead (a clone failing before it waited), it waits for the copy to end and drops it,
/// which removes its file — the process may exit right after, and no temporary file of a
/// copy is left behind.
pub(super) struct Filling(Option<std::sync::mpsc::Receiver<FillResult>>);

type FillResult = (crate::sys::disk::PendingCopy, std::io::Result<()>);

impl Filling {
    /// ... waited for ...
    pub(super) async fn wait(mut self) -> Result<crate::sys::disk::PendingCopy> {
        let rx = self
            .0
            .take()
            .ok_or_else(|| rt("the disk copy was waited for twice"))?;
        let (copy, r) = tokio::task::spawn_blocking(move || rx.recv())
            .await
            .map_err(rt)?
            .map_err(|_| rt("the disk copy stopped before its end"))?;
        r.map_err(|e| copy_err(copy.source(), copy.destination(), &e))?;
        Ok(copy)
    }
}

impl Drop for Filling {
    fn drop(&mut self) {
        if let Some(rx) = self.0.take() {
            // Blocks this thread until the copy ends (it is bounded by the disk's data);
            // what it sends is dropped here, its temporary file with it.
            let _ = rx.recv();
        }
    }
}

/// ... and renamed to the disk's name.
pub(super) fn commit_disk(copy: crate::sys::disk::PendingCopy) -> Result<()> {
    let (s, d) = (
        copy.source().to_path_buf(),
        copy.destination().to_path_buf(),
    );
    copy.commit().map(drop).map_err(|e| copy_err(&s, &d, &e))
}

fn copy_err(s: &std::path::Path, d: &std::path::Path, e: &std::io::Error) -> Error {
    rt(format!(
        "cannot copy {} to {}: {}",
        s.display(),
        d.display(),
        io_reason(e)
    ))
}

/// The row a restore or a clone boots under: the snapshot's config with this sandbox's id,
/// disk and `restoring_snapshot` marker (and `adjust`'s changes), inserted as `created`,
/// never over a row that appeared meanwhile. Its config is returned.
pub(super) fn insert_restoring_row(
    ctx: &Ctx,
    id: &str,
    snapshot_id: &str,
    base: &crate::sys::state::VmConfig,
    disk: &std::path::Path,
    adjust: impl FnOnce(&mut crate::sys::state::VmConfig),
) -> Result<crate::sys::state::VmConfig> {
    let mut config = base.clone();
    config.vm_id = Some(id.to_string());
    config.rootfs_path = Some(disk.to_path_buf());
    config.extras.restoring_snapshot = Some(snapshot_id.to_string());
    adjust(&mut config);
    let mut vm = VmRecord::new(id.to_string(), VmStatus::Created);
    vm.config = config.clone();
    match ctx.store.insert_vm(&vm) {
        Ok(()) => Ok(config),
        Err(StateError::AlreadyExists(_)) => Err(rt(format!(
            "Sandbox '{id}' appeared meanwhile; not replaced"
        ))),
        Err(e) => Err(rt(e)),
    }
}

/// A restoring QEMU's QMP once its control socket is up: waited for until `deadline`,
/// while its process lives (`doing` names the work when it exits early: "restoring
/// 'vm-1'") and `abort` has not been heard.
#[allow(clippy::too_many_arguments)]
pub(super) async fn connect_qmp(
    child: &mut crate::sys::child::Child,
    socket: &std::path::Path,
    user: &start::VmmUser,
    log: &std::fs::File,
    deadline: Instant,
    doing: &str,
    abort: &start::Abort,
    progress: &Progress<StartEvent>,
) -> Result<Qmp> {
    loop {
        abort.check(progress)?;
        if let Ok(Some(st)) = child.try_wait() {
            return Err(rt(format!(
                "QEMU exited early while {doing} ({st}){}",
                start::log_tail(log)
            )));
        }
        if let Some(q) = start::qmp_when_up(socket, user).await? {
            return Ok(q);
        }
        if Instant::now() >= deadline {
            return Err(rt("Timed out waiting for QEMU control socket"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Load a snapshot's device `state` into `q`, bounded by `budget` (at least a minute);
/// QEMU's refusal comes with the tail of its log.
pub(super) async fn load_state(
    q: &mut Qmp,
    state: &std::fs::File,
    budget: Duration,
    log: &std::fs::File,
) -> Result<()> {
    q.load_state(state, budget.max(Duration::from_secs(60)))
        .await
        .map_err(|e| {
            rt(format!(
                "QEMU could not load the snapshot's state: {e}{}",
                start::log_tail(log)
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disk_copy_nobody_waits_for_is_gone_when_its_filling_is_dropped() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("snap.ext4");
        let f = std::fs::File::create(&src).unwrap();
        f.set_len(64 << 20).unwrap();
        std::os::unix::fs::FileExt::write_at(&f, &[7u8; 1 << 20], 32 << 20).unwrap();
        let dst = t.path().join("vm.ext4");
        let listing = || -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(t.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            v.sort();
            v
        };
        crate::core::runtime::block_on(async {
            let copy = crate::sys::disk::PendingCopy::start(
                &src,
                &dst,
                crate::sys::disk::Durable::ByGuest,
            )
            .unwrap();
            // A clone failing before it waited: the process may exit right after the drop.
            drop(fill_disk(copy));
            assert_eq!(listing(), ["snap.ext4"], "no temporary file left");

            let copy = crate::sys::disk::PendingCopy::start(
                &src,
                &dst,
                crate::sys::disk::Durable::ByGuest,
            )
            .unwrap();
            commit_disk(fill_disk(copy).wait().await.unwrap()).unwrap();
            assert_eq!(listing(), ["snap.ext4", "vm.ext4"]);
            assert_eq!(std::fs::read(&dst).unwrap(), std::fs::read(&src).unwrap());
        })
        .unwrap();
    }
}
