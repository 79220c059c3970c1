//! Whether a VM the state DB calls running or paused is live: the one rule cleanup, the
//! sandbox verbs (stop, delete, pause, restore, ports), snapshots, the dashboard's list
//! and the egress guard ask.

use std::path::Path;

use crate::sys::process::{self, ProcInfo};
use crate::sys::state::VmRecord;

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

/// A row the state DB calls running or paused whose VMM is still this VM's (not
/// [`row_is_stale`]).
pub fn row_is_live(vm: &VmRecord, socket_dir: &Path) -> bool {
    vm.status.is_active() && !row_is_stale(vm, socket_dir)
}

fn carries_socket_of(info: &ProcInfo, vm: &VmRecord, socket_dir: &Path) -> bool {
    process::socket_in_cmdline(&info.cmdline, None).is_some_and(|(_, id, path)| {
        id == vm.id
            && (path.parent() == Some(socket_dir)
                || vm.socket_path.as_deref() == Some(path.to_string_lossy().as_ref()))
    })
}

/// Whether a row of `status` (`stale`: [`row_is_stale`]) may be started: created,
/// stopped, in error, or a running/paused row whose VMM is gone. The one rule of `sandbox
/// start` and of the dashboard's `s` (start rather than stop).
pub fn startable(status: crate::sys::state::VmStatus, stale: bool) -> bool {
    use crate::sys::state::VmStatus;
    stale
        || matches!(
            status,
            VmStatus::Created | VmStatus::Stopped | VmStatus::Error
        )
}
