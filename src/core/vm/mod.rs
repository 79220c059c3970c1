//! Rules about one VM that several operations share (cleanup, the sandbox verbs,
//! snapshots, start's report, the dashboard, the egress guard), kept out of any one of
//! them so none has to import another for them: whether a VM is live
//! ([`row_is_live`], [`row_is_stale`]), the guest address of a running one ([`running_ip`]), how long a
//! stop may take ([`stop_timeout`]), what a sandbox id is ([`VmId`]), the VMM its row
//! names ([`VmBackend`]) and the one that runs it ([`sandbox_vmm`], [`snapshot_vmm`]).

use std::path::Path;
use std::time::Duration;

use super::error::{not_found, Error, Result};
use crate::sys::env::Env;
use crate::sys::state::StateStore;

mod backend;
mod id;
mod liveness;

pub use backend::{sandbox_vmm, snapshot_vmm, VmBackend};
pub use id::VmId;
pub use liveness::{row_is_live, row_is_stale, startable};

/// The guest address of running sandbox `id` in `store`: an unknown id, a sandbox that is
/// not running (or whose process is gone) and one without a network each give their own
/// error.
pub fn running_ip(store: &StateStore, socket_dir: &Path, id: &VmId) -> Result<String> {
    let vm = store
        .get_vm(id)
        .map_err(|e| Error::runtime(e.to_string()))?
        .ok_or_else(|| not_found(id))?;
    if !vm.status.is_active() || row_is_stale(&vm, socket_dir) {
        return Err(Error::runtime(format!("Sandbox '{id}' is not running"))
            .with_recovery(format!("Run 'smolvm sandbox start {id}' first.")));
    }
    guest_ip(&vm)
        .ok_or_else(|| Error::runtime(format!("Sandbox '{id}' has no network configuration")))
}

/// A sandbox's guest address, the one rule of every face (list, info, the dashboard's
/// column and SSH command, exec): its NAT address, or a bridged sandbox's static one.
pub fn guest_ip(vm: &crate::sys::state::VmRecord) -> Option<String> {
    vm.network
        .as_ref()
        .and_then(|n| n.guest_ip.clone())
        .or_else(|| bridged_ip(vm))
}

/// A bridged sandbox's static address (smolvm's own, `a.b.c.d/prefix[,gateway]`):
/// `vms.network` holds none for it, as SmolVM's model wants.
pub fn bridged_ip(vm: &crate::sys::state::VmRecord) -> Option<String> {
    vm.config.bridge()?;
    let stored = vm.config.extras.bridge_address.as_deref()?;
    let ip: std::net::Ipv4Addr = stored.split(['/', ',']).next()?.parse().ok()?;
    Some(ip.to_string())
}

/// The budget a stop gives a VMM when neither `--timeout` nor `SMOLVM_STOP_TIMEOUT` says.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The budget `stop` and `delete` give each VMM, the same for every face: the `--timeout`
/// flag when given, else `SMOLVM_STOP_TIMEOUT`, else 10 s (the one duration parser, 0 to
/// 24 h; a bad variable is a usage error naming it).
pub fn stop_timeout(env: &Env, flag: Option<Duration>) -> Result<Duration> {
    stop_timeout_or(env, flag, DEFAULT_STOP_TIMEOUT)
}

/// SmolVM's `sandbox stop --timeout` default: 3 s.
pub const SANDBOX_STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// The budget a start's roll-back gives the VMM it spawned (it failed: no graceful
/// shutdown is owed).
pub const ROLLBACK_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The budget of a stop (`sandbox stop` and the dashboard's `s`, the same for both): the
/// `--timeout` flag when given, else `SMOLVM_STOP_TIMEOUT`, else SmolVM's 3 s.
pub fn sandbox_stop_timeout(env: &Env, flag: Option<Duration>) -> Result<Duration> {
    stop_timeout_or(env, flag, SANDBOX_STOP_TIMEOUT)
}

/// [`stop_timeout`] with another last default (`sandbox stop`'s is SmolVM's 3 s).
fn stop_timeout_or(env: &Env, flag: Option<Duration>, default: Duration) -> Result<Duration> {
    match flag {
        Some(t) => Ok(t),
        None => Ok(env.seconds("SMOLVM_STOP_TIMEOUT", default, false)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_timeout_is_flag_then_variable_then_ten_seconds() {
        let env = |v: Option<&str>| Env::from_vars(v.map(|v| ("SMOLVM_STOP_TIMEOUT", v)), 0);
        let s = Duration::from_secs;
        assert_eq!(stop_timeout(&env(None), None).unwrap(), s(10));
        // A stop's own default: SmolVM's 3 s.
        assert_eq!(sandbox_stop_timeout(&env(None), None).unwrap(), s(3));
        assert_eq!(sandbox_stop_timeout(&env(Some("2")), None).unwrap(), s(2));
        assert_eq!(sandbox_stop_timeout(&env(None), Some(s(7))).unwrap(), s(7));
        assert_eq!(stop_timeout(&env(Some("2")), None).unwrap(), s(2));
        assert_eq!(stop_timeout(&env(Some("2")), Some(s(5))).unwrap(), s(5));
        let e = stop_timeout(&env(Some("1e20")), None).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.message.starts_with("SMOLVM_STOP_TIMEOUT "),
            "{}",
            e.message
        );
        // A flag wins even over a bad variable (it is never read).
        assert_eq!(stop_timeout(&env(Some("x")), Some(s(1))).unwrap(), s(1));
    }
}
