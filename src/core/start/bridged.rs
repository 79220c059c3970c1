//! Bridge networking (`sandbox create --network bridge --bridge NAME`), SmolVM 0.0.36's way
//! on the host: the bridge must pass `bridge check`; the VM's TAP is reserved in SmolVM's
//! `tap_allocations` (`svmb` + 8 hex digits), created with the alias
//! `smolvm-bridge:<vm id>` that marks it as this VM's, enslaved to the bridge and brought
//! up — no host address, no route, no nftables: the guest is a machine on that network,
//! which no rule of smolvm's contains. `vms.network` and `vms.config` are written as
//! SmolVM's models accept them for a bridged sandbox (no guest address, no SSH port).
//!
//! The difference: SmolVM's guest configures itself (`smolvm.network=guest`) and is
//! reached over vsock; smolvm reaches its guests over SSH, so it gives the guest a static
//! address on the bridge's network (`--guest-ip`, kept in smolvm's own table) through
//! `ip=`, beside SmolVM's `smolvm.network=guest`.

use std::net::Ipv4Addr;

use super::{rt, Ctx, StartOptions};
use crate::core::error::{Error, ErrorCode, Result};
use crate::sys::net::tap;
use crate::sys::state::{Network, StateError, VmRecord};

/// A bridged guest's static address: `a.b.c.d/prefix`, and an optional gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestAddress {
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
}

impl GuestAddress {
    /// `--guest-ip ADDRESS/PREFIX` and `--guest-gateway ADDRESS`.
    pub fn parse(cidr: &str, gateway: Option<&str>) -> Result<GuestAddress> {
        let bad = || {
            Error::new(
                ErrorCode::InvalidInput,
                format!("--guest-ip must be an IPv4 address with its prefix length (ADDRESS/PREFIX, e.g. 192.168.50.20/24), got '{cidr}'"),
            )
        };
        let (ip, prefix) = cidr.split_once('/').ok_or_else(bad)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if !(1..=32).contains(&prefix)
            || ip.is_unspecified()
            || ip.is_loopback()
            || ip.is_multicast()
            || ip.is_broadcast()
        {
            return Err(bad());
        }
        let gateway = gateway
            .map(|g| {
                g.parse::<Ipv4Addr>().map_err(|_| {
                    Error::new(
                        ErrorCode::InvalidInput,
                        format!("--guest-gateway must be an IPv4 address, got '{g}'"),
                    )
                })
            })
            .transpose()?;
        Ok(GuestAddress {
            ip,
            prefix,
            gateway,
        })
    }

    /// How it is kept (smolvm's own table): `a.b.c.d/p` or `a.b.c.d/p,g.g.g.g`.
    pub fn to_stored(self) -> String {
        match self.gateway {
            Some(g) => format!("{}/{},{g}", self.ip, self.prefix),
            None => format!("{}/{}", self.ip, self.prefix),
        }
    }

    pub fn from_stored(text: &str) -> Option<GuestAddress> {
        let (cidr, gw) = match text.split_once(',') {
            Some((c, g)) => (c, Some(g)),
            None => (text, None),
        };
        GuestAddress::parse(cidr, gw).ok()
    }

    /// The netmask of its prefix, dotted.
    pub fn netmask(self) -> String {
        let bits = u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0);
        Ipv4Addr::from(bits).to_string()
    }
}

/// What a bridged create asks, checked before anything is made (SmolVM's
/// `_apply_network_attachment` and `_validate_bridge_mode`, plus smolvm's address).
pub(super) fn check_request(opts: &StartOptions, bridge: &str) -> Result<GuestAddress> {
    if !crate::core::bridge::valid_bridge_name(bridge) {
        return Err(Error::new(
            ErrorCode::InvalidInput,
            format!("bridge name contains characters that are not valid in a Linux interface name, or is longer than 15 bytes: '{bridge}'"),
        ));
    }
    let id = opts.name.as_deref().unwrap_or("<name>");
    let nat = format!("smolvm sandbox create --name {id} --network nat");
    if !opts.mounts.is_empty() {
        return Err(Error::runtime(format!(
            "Bridged sandbox '{id}' cannot share host folders yet; run '{nat}'."
        )));
    }
    if opts.network.internet != Default::default() {
        return Err(Error::new(
            ErrorCode::InvalidInput,
            "Network restrictions are not supported with bridge networking; drop --internet, --allow-cidr and --allow-domain, or use --network nat.",
        ));
    }
    if opts.network.publish_ssh {
        return Err(Error::new(
            ErrorCode::InvalidInput,
            "A bridged sandbox has no SSH forward to publish: it is reachable on the bridge's network; drop --publish-ssh (and SMOLVM_PUBLISH_SSH), or use --network nat.",
        ));
    }
    opts.bridge_address.ok_or_else(|| {
        Error::usage(format!(
            "--network bridge needs --guest-ip ADDRESS/PREFIX here: smolvm reaches its guests over SSH, so it gives a bridged guest a static address on the bridge's network (e.g. --network bridge --bridge {bridge} --guest-ip 192.168.50.20/24)"
        ))
    })
}

/// The bridge passes `bridge check` (SmolVM checks it before every start).
pub(super) async fn check_bridge(bridge: &str) -> Result<()> {
    let r = crate::core::bridge::inspect(bridge).await?;
    if r.ok {
        return Ok(());
    }
    Err(Error::runtime(r.reason.unwrap_or_else(|| {
        format!("Bridge '{bridge}' is not ready for bridged networking")
    })))
}

/// Reserve, create and attach the VM's bridge TAP; store SmolVM's `vms.network` for it.
/// Returns the network the VMM is given: the stored one with the guest's static address
/// (for its `ip=`), which `vms.network` never holds (SmolVM's model forbids it there).
pub(super) async fn setup(ctx: &Ctx, row: &VmRecord, bridge: &str) -> Result<Network> {
    let id = row.id.as_str();
    let address = row
        .config
        .extras
        .bridge_address
        .as_deref()
        .and_then(GuestAddress::from_stored)
        .ok_or_else(|| {
            Error::runtime(format!(
                "Bridged sandbox '{id}' has no guest address of smolvm's; delete it and create it again with --guest-ip"
            ))
        })?;
    check_bridge(bridge).await?;
    let tap_name = ctx
        .store
        .reserve_bridge_tap(id, bridge)
        .map_err(|e| match e {
            StateError::Pool(m) => Error::runtime(m),
            other => rt(other),
        })?;
    tap::setup_bridged(&tap_name, bridge, id)
        .await
        .map_err(|e| Error::runtime(crate::sys::io_reason(&e)))?;
    let stored = Network {
        guest_ip: None,
        gateway_ip: None,
        netmask: None,
        tap_device: Some(tap_name.clone()),
        guest_mac: tap::bridge_mac(&tap_name),
        ssh_host_port: None,
        mode: Some("bridge".into()),
        bridge: Some(bridge.to_string()),
        extra: Default::default(),
    };
    ctx.store.set_network(id, &stored).map_err(rt)?;
    Ok(Network {
        guest_ip: Some(address.ip.to_string()),
        gateway_ip: address.gateway.map(|g| g.to_string()),
        netmask: Some(address.netmask()),
        ..stored
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_address_is_an_ipv4_with_its_prefix() {
        let a = GuestAddress::parse("192.168.50.20/24", None).unwrap();
        assert_eq!(a.netmask(), "255.255.255.0");
        assert_eq!(a.to_stored(), "192.168.50.20/24");
        let g = GuestAddress::parse("10.1.2.3/16", Some("10.1.0.1")).unwrap();
        assert_eq!(g.netmask(), "255.255.0.0");
        assert_eq!(GuestAddress::from_stored(&g.to_stored()), Some(g));
        for bad in [
            "10.0.0.1",
            "10.0.0.1/33",
            "10.0.0.1/0",
            "x/24",
            "127.0.0.1/8",
            "0.0.0.0/8",
        ] {
            let e = GuestAddress::parse(bad, None).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidInput, "{bad}");
        }
        assert!(GuestAddress::parse("10.0.0.2/24", Some("nope")).is_err());
    }
}
