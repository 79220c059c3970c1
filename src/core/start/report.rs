//! How a start ends: its report (with the time of each phase), or on failure the
//! rollback — everything a `create` made goes through the same teardown `cleanup` and
//! `sandbox delete` use; a failed `sandbox start` (its own VMM already stopped) marks the
//! row `error`.

use std::path::Path;
use std::time::Duration;

use super::{Ctx, StartEvent, StartReport, Timings};
use crate::core::error::{Error, Result};
use crate::core::host::Runtime;
use crate::core::progress::Progress;
use crate::core::teardown;
use crate::core::vm::VmId;
use crate::sys::fs::{remove_vm_file, VmFile};
use crate::sys::state::{Network, VmStatus};

pub(crate) fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

pub(crate) fn report(
    ctx: &Ctx,
    id: &str,
    runtime: &Runtime,
    preset: Option<String>,
    kernel: &Path,
    net: &Network,
    pid: Option<i64>,
) -> Result<StartReport> {
    let ip = net.guest_ip.clone().unwrap_or_default();
    Ok(StartReport {
        id: VmId::known(id),
        status: if pid.is_some() {
            VmStatus::Running
        } else {
            VmStatus::Created
        },
        preset,
        ssh_command: crate::core::ssh::ssh_command(&ctx.paths.keys_dir, &ip),
        ip,
        ssh_host_port: net.ssh_host_port,
        backend: runtime.vmm,
        accelerator: runtime.accel,
        machine: runtime.machine,
        pid,
        kernel_path: kernel.to_path_buf(),
        disk_path: ctx.disk_path(id)?,
        log_path: ctx.log_path(id)?,
        timings: Timings::default(),
        forwarded: None,
        warm: None,
        warm_choice: None,
    })
}

/// `create` failed after its row was inserted: remove everything it made (row, leases, TAP,
/// nftables elements, disk, log, socket, process). Returns the error to report, which
/// says so when the rollback itself failed.
pub(crate) async fn roll_back(
    ctx: &Ctx,
    id: &VmId,
    e: Error,
    progress: &Progress<StartEvent>,
) -> Error {
    progress.emit(StartEvent::RollingBack(e.message.clone()));
    let store = ctx.store.clone();
    if let Err(re) = teardown::teardown_vm(
        store,
        id,
        ctx.teardown_options(crate::core::vm::ROLLBACK_STOP_TIMEOUT),
    )
    .await
    {
        return Error::new(
            e.code,
            format!(
                "{} (and rolling back failed: {re}; run 'smolvm cleanup')",
                e.message
            ),
        );
    }
    // A resolver started for this sandbox alone goes with it.
    let _ = crate::core::egress::resolver::sync(ctx, None).await;
    super::rolled_back(e)
}

/// `sandbox start` was cancelled (its own VMM already stopped by `boot`): the row goes
/// back to `status`, the one it had before, with no process or socket recorded. Returns
/// the error to report (`…cancelled; rolled back`, or that putting it back failed).
pub(super) async fn put_back(ctx: &Ctx, id: &str, status: &VmStatus, e: Error) -> Error {
    // A row that records a live VMM by now is not this start's to put back (as in
    // [`mark_failed`]): left as it is, and said.
    if let Some(pid) = live_vmm_recorded(ctx, id) {
        return Error::new(
            e.code,
            format!(
                "{} (its row records a running VMM, pid {pid}: left as it is)",
                e.message
            ),
        );
    }
    if let Err(re) = ctx.store.set_status(id, status, None, None) {
        return Error::new(
            e.code,
            format!("{} (and its row could not be put back: {re})", e.message),
        );
    }
    // Its control socket, as a stop removes it.
    for f in [VmFile::QmpSocket, VmFile::FcSocket] {
        let _ = remove_vm_file(f, &ctx.data_dir, &ctx.paths.socket_dir, id);
    }
    let _ = crate::core::egress::resolver::sync(ctx, None).await;
    super::rolled_back(e)
}

/// `sandbox start` failed (the VMM it spawned, if any, is already stopped: `boot` kills
/// its own child): mark the row `error` (SmolVM's rule), its resources kept for `delete`
/// or another `start`. A row that records a live VMM by now is someone else's start (a
/// SmolVM that takes no lock to start): it is left as it is, never moved to `error` by
/// this failure.
pub(super) async fn mark_failed(ctx: &Ctx, id: &str) {
    if let Some(pid) = live_vmm_recorded(ctx, id) {
        tracing::warn!(vm = %id, pid, "start failed; the row records another live VMM, left as it is");
        return;
    }
    let _ = ctx.store.set_status(id, &VmStatus::Error, None, None);
    let _ = crate::core::egress::resolver::sync(ctx, None).await;
}

/// The pid of the live VMM sandbox `id`'s row records by now (`None`: none, or no row): a
/// failed or stopped start leaves such a row as it is.
fn live_vmm_recorded(ctx: &Ctx, id: &str) -> Option<i64> {
    let vm = ctx.store.get_vm(id).ok()??;
    crate::core::vm::row_is_live(&vm, &ctx.paths.socket_dir).then(|| vm.pid.unwrap_or(0))
}
