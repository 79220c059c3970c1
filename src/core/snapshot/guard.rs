//! A snapshot create pauses its source; a create killed before it is done (SIGKILL
//! included) must not leave the source paused. Before it pauses a running source, the
//! create starts a watchdog (`smolvm __guard snapshot-source VM PID SNAPSHOT`, see
//! `sys::guard`), and tells it when it is finished. A watchdog whose create died takes
//! the sandbox's lock (the dead create's is released by the kernel) and, if the sandbox is
//! still the same VMM (same PID, alive), runs it again — cancelling a save QEMU may still
//! be writing — and marks the row `running`. The create's partial snapshot directory is
//! left to the next create or `cleanup`'s stale-resource scan, as for any killed create.

use std::time::Duration;

use super::rt;
use crate::core::context::Ctx;
use crate::core::error::{Error, Result};
use crate::core::lock::{lock_timeout, VmLock};
use crate::sys::guard::{self, Watchdog};
use crate::sys::state::{VmRecord, VmStatus};

/// The watchdog's kind, its first word.
pub const KIND: &str = "snapshot-source";

/// How long a watchdog waits for the sandbox's lock at most (someone else may be working
/// on the sandbox by then; its own wait is never shorter than `SMOLVM_LOCK_TIMEOUT`).
const LOCK_WAIT: Duration = Duration::from_secs(600);

/// Start the watchdog of a create about to pause `vm` (running, VMM `pid`).
pub(super) fn start(vm: &VmRecord, snapshot_id: &str) -> Option<Watchdog> {
    let pid = vm.pid?.to_string();
    match guard::spawn(&[KIND, &vm.id, &pid, snapshot_id]) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(vm = %vm.id, error = %e, "no watchdog for the snapshot's source");
            None
        }
    }
}

/// The watchdog's work once its create is gone without releasing it: `Ok(true)` when the
/// source was run again.
pub async fn resume_source(ctx: &Ctx, vm_id: &str, pid: i64, snapshot_id: &str) -> Result<bool> {
    let wait = lock_timeout(&ctx.env)?.max(LOCK_WAIT);
    let _lock = VmLock::acquire_for_snapshot(
        &ctx.data_dir,
        vm_id,
        Some(snapshot_id),
        &format!("sandbox snapshot create {vm_id} (resuming after it was killed)"),
        wait,
    )
    .await?;
    tracing::info!(vm = %vm_id, snapshot = %snapshot_id, "a snapshot create died: resuming its source");
    let resumed = match ctx.store.get_vm(vm_id).map_err(rt)? {
        // Still the VMM the create paused (or was pausing): run it again.
        Some(vm)
            if vm.pid == Some(pid) && crate::core::vm::row_is_live(&vm, &ctx.paths.socket_dir) =>
        {
            run_again(ctx, &vm).await?;
            ctx.store
                .set_status(vm_id, &VmStatus::Running, vm.pid, vm.socket_path.as_deref())
                .map_err(rt)?;
            true
        }
        _ => false,
    };
    Ok(resumed)
}

async fn run_again(ctx: &Ctx, vm: &VmRecord) -> Result<()> {
    let budget = Duration::from_secs(30);
    match crate::core::vm::sandbox_vmm(vm)? {
        crate::core::host::Vmm::Firecracker => {
            crate::core::lifecycle::set_vcpus_paused(ctx, vm, false).await
        }
        crate::core::host::Vmm::Qemu => {
            let sock = ctx
                .paths
                .qmp_socket(&vm.id)
                .ok_or_else(|| crate::core::start::invalid_id(&vm.id))?;
            let mut q = crate::sys::vmm::qmp::Qmp::connect(&sock, budget)
                .await
                .map_err(|e| rt(format!("cannot reach QEMU of '{}': {e}", vm.id)))?;
            q.resume_abandoned(budget)
                .await
                .map_err(|e| Error::runtime(format!("cannot resume '{}': {e}", vm.id)))
        }
    }
}

/// `smolvm __guard snapshot-source VM PID SNAPSHOT`: wait on `input` (the pipe) for the
/// create to finish; if it dies instead, resume its source. The exit code: 0, or 1 when
/// the source could not be resumed (logged).
pub fn run(ctx: &Ctx, args: &[String], input: impl std::io::Read) -> i32 {
    let [vm_id, pid, snapshot_id] = args else {
        return 2;
    };
    let Ok(pid) = pid.parse::<i64>() else {
        return 2;
    };
    if guard::wait_for_release(input) {
        return 0;
    }
    match crate::core::runtime::block_on(resume_source(ctx, vm_id, pid, snapshot_id)) {
        Ok(Ok(_)) => 0,
        Ok(Err(e)) => {
            tracing::error!(vm = %vm_id, error = %e.message, "could not resume a killed snapshot's source");
            1
        }
        Err(e) => {
            tracing::error!(vm = %vm_id, error = %e.message, "could not resume a killed snapshot's source");
            1
        }
    }
}
