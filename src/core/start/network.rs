//! The network phase: IP and SSH-port leases, TAP, route and nftables for a VM, and its
//! guard (`core::egress`): applied here, before any VMM runs.

use std::time::Instant;

use super::{rt, Ctx, Phase, StartEvent};
use crate::core::egress::{network_lock, outbound_interface, set_ssh_publication};
use crate::core::error::{Error, Result};
use crate::core::progress::Progress;
use crate::core::vm::VmId;
use crate::sys::net::{nft, tap};
use crate::sys::state::{Network, StateError};

/// Leases, TAP, route, nftables and the guard for a VM; stores its NetworkConfig JSON.
/// Idempotent (a restart re-applies it).
pub(crate) async fn setup_network(
    ctx: &Ctx,
    id: &VmId,
    progress: &Progress<StartEvent>,
) -> Result<Network> {
    progress.emit(StartEvent::PhaseStarted(Phase::Network));
    let t = Instant::now();
    let row = ctx
        .store
        .get_vm(id)
        .map_err(rt)?
        .ok_or_else(|| super::not_found(id))?;
    if let Some(bridge) = row.config.bridge() {
        let net = super::bridged::setup(ctx, &row, bridge).await?;
        progress.emit(StartEvent::PhaseDone(Phase::Network, t.elapsed()));
        return Ok(net);
    }
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
    let iface = outbound_interface().await?;
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
    let settings = crate::core::egress::settings_of(&ctx.store, &row);
    let lock = network_lock(ctx).await?;
    let (tap_name, gip, port, i) = (
        lease.tap.clone(),
        lease.guest_ip.to_string(),
        lease.ssh_host_port,
        iface.clone(),
    );
    tokio::task::spawn_blocking(move || -> Result<()> {
        let state = nft::read().map_err(rt)?;
        let cmds = nft::setup_commands(
            &state,
            &i,
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
    // Recorded first: the resolver learns the sandbox's address and TAP from the row.
    ctx.store.set_network(id, &net).map_err(rt)?;
    set_ssh_publication(&net, settings.publish_ssh).await?;
    crate::core::egress::apply(ctx, id, &net, &iface).await?;
    drop(lock);
    progress.emit(StartEvent::PhaseDone(Phase::Network, t.elapsed()));
    Ok(net)
}
