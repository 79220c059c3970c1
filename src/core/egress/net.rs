//! What the network phase of a start and a live egress change both hold or touch: the
//! data dir's network lock, the outbound interface and a VM's published SSH forward.

use super::rt;
use crate::core::context::Ctx;
use crate::core::error::{io_reason, path_err, Error, Result};
use crate::sys::net::{nft, tap};
use crate::sys::open;
use crate::sys::state::Network;

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
