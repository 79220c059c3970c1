//! How a start ends: its report (with the time of each phase), or on failure the
//! rollback — everything a `create` made goes through the same teardown `cleanup` and
//! `sandbox delete` use; a failed `sandbox start` stops the process and marks the row
//! `error`.

use std::path::Path;
use std::time::Duration;

use super::{Ctx, StartEvent, StartReport, Timings};
use crate::core::cleanup;
use crate::core::error::{Error, Result};
use crate::core::host::Runtime;
use crate::core::progress::Progress;
use crate::sys::state::{Network, VmStatus};

pub(crate) fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

pub(super) fn report(
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
        id: id.to_string(),
        status: if pid.is_some() { "running" } else { "created" }.into(),
        preset,
        ssh_command: crate::core::lifecycle::ssh_command(&ctx.paths.keys_dir, &ip),
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
    })
}

/// `create` failed after its row was inserted: remove everything it made (row, leases, TAP,
/// nftables elements, disk, log, socket, process). Returns the error to report, which
/// says so when the rollback itself failed.
pub(crate) async fn roll_back(
    ctx: &Ctx,
    id: &str,
    e: Error,
    progress: &Progress<StartEvent>,
) -> Error {
    progress.emit(StartEvent::RollingBack(e.message.clone()));
    let store = ctx.store.clone();
    if let Err(re) =
        cleanup::teardown_vm(store, id, ctx.cleanup_options(Duration::from_secs(5))).await
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
    e
}

/// `sandbox start` failed: stop the process and mark the row `error` (SmolVM's rule); its
/// resources stay for `delete`.
pub(super) async fn mark_failed(ctx: &Ctx, id: &str) {
    if let Ok(Some(vm)) = ctx.store.get_vm(id) {
        let _ = cleanup::stop_vm(
            &vm,
            &ctx.paths.socket_dir,
            &ctx.data_dir,
            Duration::from_secs(5),
        )
        .await;
    }
    let _ = ctx.store.set_status(id, &VmStatus::Error, None, None);
    let _ = crate::core::egress::resolver::sync(ctx, None).await;
}
