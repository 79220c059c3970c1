//! The network phase: IP and SSH-port leases, TAP, route and nftables for a VM.

use std::time::Instant;

use super::files::path_err;
use super::{rt, Ctx, Phase, StartEvent};
use crate::core::error::{Error, Result};
use crate::core::progress::Progress;
use crate::sys::net::{nft, tap};
use crate::sys::open;
use crate::sys::state::{Network, StateError};

/// Leases, TAP, route and nftables for a VM; stores its NetworkConfig JSON. Idempotent
/// (a restart re-applies it).
pub(crate) async fn setup_network(
    ctx: &Ctx,
    id: &str,
    progress: &Progress<StartEvent>,
) -> Result<Network> {
    progress.emit(StartEvent::PhaseStarted(Phase::Network));
    let t = Instant::now();
    let store = ctx.store.clone();
    let vm = id.to_string();
    let lease = tokio::task::spawn_blocking(move || store.allocate_network(&vm, true))
        .await
        .map_err(rt)?
        .map_err(|e| match e {
            StateError::Pool(m) => Error::runtime(m)
                .with_recovery("Delete unused sandboxes ('smolvm cleanup') and try again."),
            other => rt(other),
        })?;
    tap::setup(&lease.tap, lease.guest_ip).await.map_err(rt)?;
    let iface = tap::default_interface().await.map_err(rt)?.ok_or_else(|| {
        Error::runtime("Could not detect default outbound network interface")
            .with_recovery("Add a default route (NAT needs an outbound interface) and try again.")
    })?;
    let lock_path = ctx.data_dir.join("network.lock");
    let (tap_name, gip, port) = (
        lease.tap.clone(),
        lease.guest_ip.to_string(),
        lease.ssh_host_port,
    );
    tokio::task::spawn_blocking(move || -> Result<()> {
        let f = open::open_lock(&lock_path, 0o600).map_err(|e| path_err("open", &lock_path, &e))?;
        let _lock = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| rt(format!("cannot lock {}: {e}", lock_path.display())))?;
        let state = nft::read().map_err(rt)?;
        let cmds = nft::setup_commands(
            &state,
            &iface,
            &nft::VmNat {
                tap: &tap_name,
                guest_ip: &gip,
                ssh_host_port: port,
            },
        );
        nft::apply(&cmds).map_err(rt)
    })
    .await
    .map_err(rt)??;
    let net = Network {
        guest_ip: Some(lease.guest_ip.to_string()),
        gateway_ip: Some(crate::sys::net::HOST_IP.into()),
        netmask: Some("255.255.255.0".into()),
        tap_device: Some(lease.tap.clone()),
        guest_mac: Some(tap::mac_for_index(lease.index)),
        ssh_host_port: lease.ssh_host_port,
        mode: Some("nat".into()),
        bridge: None,
        extra: Default::default(),
    };
    ctx.store.set_network(id, &net).map_err(rt)?;
    progress.emit(StartEvent::PhaseDone(Phase::Network, t.elapsed()));
    Ok(net)
}
