//! The network phase: IP and SSH-port leases, TAP, route and nftables for a VM, and its
//! guard (`core::egress`): applied here, before any VMM runs.

use std::time::Instant;

use super::files::path_err;
use super::{rt, Ctx, Phase, StartEvent};
use crate::core::error::{io_reason, Error, Result};
use crate::core::progress::Progress;
use crate::sys::net::{nft, tap};
use crate::sys::open;
use crate::sys::state::{Network, StateError};

/// The data dir's `network.lock`, held while nftables are changed (one writer at a
/// time per install).
pub(crate) struct NetworkLock(#[allow(dead_code)] crate::sys::lock::FileLock);

/// Take the data dir's network lock.
pub(crate) async fn network_lock(ctx: &Ctx) -> Result<NetworkLock> {
    let lock_path = ctx.data_dir.join("network.lock");
    tokio::task::spawn_blocking(move || -> Result<NetworkLock> {
        let f = open::open_lock(&lock_path, 0o600).map_err(|e| path_err("open", &lock_path, &e))?;
        crate::sys::lock::lock_file(f)
            .map(NetworkLock)
            .map_err(|e| {
                rt(format!(
                    "cannot lock {}: {}",
                    lock_path.display(),
                    io_reason(&e)
                ))
            })
    })
    .await
    .map_err(rt)?
}

/// The interface of the default route: NAT's way out, and the only way out of an open
/// sandbox.
pub(crate) async fn outbound_interface() -> Result<String> {
    tap::default_interface().await.map_err(rt)?.ok_or_else(|| {
        Error::runtime("Could not detect default outbound network interface")
            .with_recovery("Add a default route (NAT needs an outbound interface) and try again.")
    })
}

/// SmolVM's `dnat_ext` element of this VM's SSH port (its forward on the outbound
/// interface) present only when published: the 127.0.0.1 forward (`dnat_local`) stays.
pub(crate) async fn set_ssh_publication(net: &Network, publish: bool) -> Result<()> {
    let (Some(hp), Some(gip)) = (net.ssh_host_port, net.guest_ip.clone()) else {
        return Ok(());
    };
    tokio::task::spawn_blocking(move || -> Result<()> {
        let state = nft::read().map_err(rt)?;
        if publish {
            nft::apply(&[format!(
                "add element ip smolvm_nat dnat_ext {{ {hp} : {gip} . 22 }}"
            )])
            .map_err(rt)
        } else {
            let gone: Vec<nft::Deletion> = state
                .elements
                .iter()
                .filter(|e| {
                    e.set == "dnat_ext"
                        && e.key == nft::ElemKey::Port(hp)
                        && e.target.as_deref() == Some(gip.as_str())
                })
                .filter_map(|e| e.deletion())
                .collect();
            if gone.is_empty() {
                return Ok(());
            }
            nft::delete(&gone).map_err(rt)
        }
    })
    .await
    .map_err(rt)?
}

/// Leases, TAP, route, nftables and the guard for a VM; stores its NetworkConfig JSON.
/// Idempotent (a restart re-applies it).
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
    let row = ctx
        .store
        .get_vm(id)
        .map_err(rt)?
        .ok_or_else(|| super::not_found(id))?;
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
