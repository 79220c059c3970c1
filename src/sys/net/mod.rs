//! Host networking: links through netlink (rtnetlink) and SmolVM's nftables tables.

pub mod guard;
pub mod listen;
pub mod nft;
pub mod tap;

use std::io;
use std::net::IpAddr;

use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkLayerType};

use super::state::Known;

/// SmolVM's host side of every NAT TAP (`DEFAULT_HOST_IP`, assigned as /32).
pub const HOST_IP: &str = "172.16.0.1";

/// A network link as netlink reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// A TUN/TAP device.
    pub is_tun: bool,
    /// `ip link set … alias` (SmolVM's bridge TAPs: `smolvm-bridge:<vm id>`).
    pub alias: Option<String>,
    pub addrs: Vec<(IpAddr, u8)>,
    /// The driver kind (`bridge`, `veth`, `tun`, …), when the link has one.
    pub kind: Option<String>,
    /// The link-layer type when there is no kind (`loopback`, `ether`).
    pub link_type: Option<String>,
    /// The index of the bridge (or bond) it is enslaved to.
    pub controller: Option<u32>,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
}

impl Link {
    pub fn has_addr(&self, ip: &str, prefix: u8) -> bool {
        self.addrs
            .iter()
            .any(|(a, p)| *p == prefix && a.to_string() == ip)
    }

    /// How this link looks like one of SmolVM's TAPs, if it does: a TUN device named
    /// `tap<N>` carrying SmolVM's host address 172.16.0.1/32, or `svmb<hex>` whose alias is
    /// `smolvm-bridge:<vm id>`. The one definition the orphan scan and [`OwnedTap::prove`]
    /// both use.
    pub fn smolvm_tap(&self) -> Option<TapShape<'_>> {
        if !self.is_tun {
            return None;
        }
        if is_nat_tap_name(&self.name) {
            return self.has_addr(HOST_IP, 32).then_some(TapShape::Nat);
        }
        let owner = self
            .alias
            .as_deref()
            .and_then(|a| a.strip_prefix("smolvm-bridge:"));
        match owner {
            Some(id) if is_bridge_tap_name(&self.name) => Some(TapShape::Bridge(id)),
            _ => None,
        }
    }
}

/// The two kinds of TAP SmolVM makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapShape<'a> {
    /// `tap<N>` with 172.16.0.1/32 (NAT networking).
    Nat,
    /// `svmb<hex>` aliased to this VM id (bridge networking).
    Bridge(&'a str),
}

fn nl_error(context: &str, e: rtnetlink::Error) -> io::Error {
    if let rtnetlink::Error::NetlinkError(msg) = &e {
        if let Some(code) = msg.code {
            let errno = -code.get();
            let os = io::Error::from_raw_os_error(errno);
            if errno == libc::EPERM || errno == libc::EACCES {
                return io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("Permission denied: cannot {context}"),
                );
            }
            return io::Error::new(os.kind(), format!("cannot {context}: {os}"));
        }
    }
    io::Error::other(format!("cannot {context}: {e}"))
}

async fn connect() -> io::Result<rtnetlink::Handle> {
    let (conn, handle, _) = rtnetlink::new_connection()?;
    tokio::spawn(conn);
    Ok(handle)
}

/// Every link in this network namespace with its kind, alias and addresses.
pub async fn links() -> io::Result<Vec<Link>> {
    let handle = connect().await?;
    let mut out = Vec::new();
    let mut stream = handle.link().get().execute();
    while let Some(msg) = stream
        .try_next()
        .await
        .map_err(|e| nl_error("list network links", e))?
    {
        let link_type = match msg.header.link_layer_type {
            LinkLayerType::Loopback => Some("loopback".to_string()),
            LinkLayerType::Ether => Some("ether".to_string()),
            _ => None,
        };
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            is_tun: false,
            alias: None,
            addrs: Vec::new(),
            kind: None,
            link_type,
            controller: None,
            up: msg.header.flags.contains(LinkFlags::Up),
        };
        for attr in msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => link.name = n,
                LinkAttribute::IfAlias(a) => link.alias = Some(a),
                LinkAttribute::Controller(i) => link.controller = Some(i),
                LinkAttribute::LinkInfo(infos) => {
                    link.is_tun = infos
                        .iter()
                        .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Tun)));
                    link.kind = infos.iter().find_map(|i| match i {
                        LinkInfo::Kind(k) => Some(k.to_string()),
                        _ => None,
                    });
                }
                _ => {}
            }
        }
        out.push(link);
    }
    let mut addrs = handle.address().get().execute();
    while let Some(msg) = addrs
        .try_next()
        .await
        .map_err(|e| nl_error("list addresses", e))?
    {
        let ip = msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(ip) => Some(*ip),
            _ => None,
        });
        let ip = ip.or_else(|| {
            msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            })
        });
        if let (Some(ip), Some(l)) = (ip, out.iter_mut().find(|l| l.index == msg.header.index)) {
            l.addrs.push((ip, msg.header.prefix_len));
        }
    }
    Ok(out)
}

/// The IPv4 ranges a guest on smolvm's network never reaches unless the user lists them
/// (`--allow-cidr`): the private and shared ranges a LAN, a VPN or a container network
/// uses (RFC 1918, 100.64.0.0/10), `0.0.0.0/8`, IETF protocol assignments, the
/// benchmarking range, multicast and the reserved `240.0.0.0/4`. Loopback and link-local
/// are refused outright elsewhere. With the networks of the outbound interface itself
/// ([`attached_networks`]) this is what smolvm calls the LAN.
pub const LAN_RANGES: [(std::net::Ipv4Addr, u8); 9] = {
    use std::net::Ipv4Addr as A;
    [
        (A::new(0, 0, 0, 0), 8),
        (A::new(10, 0, 0, 0), 8),
        (A::new(100, 64, 0, 0), 10),
        (A::new(172, 16, 0, 0), 12),
        (A::new(192, 0, 0, 0), 24),
        (A::new(192, 168, 0, 0), 16),
        (A::new(198, 18, 0, 0), 15),
        (A::new(224, 0, 0, 0), 4),
        (A::new(240, 0, 0, 0), 4),
    ]
};

/// Whether `a` is in one of the [`LAN_RANGES`].
pub fn in_lan_ranges(a: std::net::Ipv4Addr) -> bool {
    LAN_RANGES.iter().any(|(net, prefix)| {
        let mask = u32::MAX.checked_shl(32 - u32::from(*prefix)).unwrap_or(0);
        u32::from(a) & mask == u32::from(*net)
    })
}

/// The IPv4 networks this host is attached to: every route of the main table without a
/// gateway (`/proc/net/route` of this network namespace), as network and prefix — the
/// machines a guest would reach without a router. A prefix shorter than /8 (a default
/// route without a gateway, say) is left out: it would be most of the internet.
pub fn attached_networks() -> io::Result<Vec<(std::net::Ipv4Addr, u8)>> {
    Ok(parse_routes(&std::fs::read_to_string("/proc/net/route")?))
}

fn parse_routes(text: &str) -> Vec<(std::net::Ipv4Addr, u8)> {
    const RTF_UP: u32 = 0x1;
    const RTF_GATEWAY: u32 = 0x2;
    let hex = |s: &str| u32::from_str_radix(s, 16).ok();
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(dest), Some(gw), Some(flags), Some(mask)) = (
            f.get(1).and_then(|s| hex(s)),
            f.get(2).and_then(|s| hex(s)),
            f.get(3).and_then(|s| hex(s)),
            f.get(7).and_then(|s| hex(s)),
        ) else {
            continue;
        };
        // The kernel prints each big-endian word as the host reads it.
        let (dest, mask) = (u32::from_be(dest), u32::from_be(mask));
        let prefix = mask.leading_ones();
        if flags & RTF_UP == 0
            || flags & RTF_GATEWAY != 0
            || gw != 0
            || prefix < 8
            || mask.count_ones() != prefix
        {
            continue;
        }
        out.push((std::net::Ipv4Addr::from(dest & mask), prefix as u8));
    }
    out
}

/// SmolVM's NAT TAP names: `tap<N>`, N a pool index (0..=65535, no leading zero).
pub fn is_nat_tap_name(name: &str) -> bool {
    name.strip_prefix("tap").is_some_and(|n| {
        n.bytes().all(|b| b.is_ascii_digit())
            && !(n.len() > 1 && n.starts_with('0'))
            && n.parse::<u32>().is_ok_and(|i| i <= 65535)
    })
}

/// SmolVM's bridge TAP names: `svmb<8 lowercase hex>`.
pub fn is_bridge_tap_name(name: &str) -> bool {
    name.strip_prefix("svmb").is_some_and(|h| {
        h.len() == 8
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Why a TAP is claimed as ours.
#[derive(Debug, Clone, Copy)]
pub enum TapClaim<'a> {
    /// The TAP a row of the active database records for `vm_id` (a bridge TAP when
    /// `bridge`); no other VM of any candidate database (`known`) records it.
    Vm {
        vm_id: &'a str,
        bridge: bool,
        known: &'a Known,
    },
    /// No candidate database records it (or, for a bridge TAP, the VM its alias names).
    Orphan { known: &'a Known },
}

/// A TAP device proved to be smolvm's and unused: the only kind of link smolvm deletes.
/// Built only by [`OwnedTap::prove`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedTap {
    index: u32,
    name: String,
}

impl OwnedTap {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Prove that the link `name` is a TAP of ours, now: a TUN device named `tap<N>`
    /// carrying SmolVM's host address 172.16.0.1/32, or `svmb<hex>` whose alias is
    /// `smolvm-bridge:<vm id>`; held open by no live process; and `claim` holds.
    /// `Ok(None)` when there is no such link; an error when it is not provably ours
    /// (`PermissionDenied`) or still in use (`ResourceBusy`).
    pub async fn prove(name: &str, claim: TapClaim<'_>) -> io::Result<Option<OwnedTap>> {
        let refuse = |why: String| {
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("TAP device {name} is not provably smolvm's ({why}); leaving it"),
            ))
        };
        if !is_nat_tap_name(name) && !is_bridge_tap_name(name) {
            return refuse("not a name smolvm gives its TAPs".into());
        }
        let Some(link) = links().await?.into_iter().find(|l| l.name == name) else {
            return Ok(None);
        };
        if !link.is_tun {
            return refuse("not a TUN/TAP device".into());
        }
        let Some(shape) = link.smolvm_tap() else {
            return refuse("no 172.16.0.1/32 and no smolvm-bridge alias".into());
        };
        let alias_id = match shape {
            TapShape::Bridge(id) => Some(id),
            TapShape::Nat => None,
        };
        match claim {
            TapClaim::Vm {
                vm_id,
                bridge,
                known,
            } => {
                if bridge && alias_id != Some(vm_id) {
                    return refuse(format!("its alias does not name VM {vm_id}"));
                }
                if known.tap_recorded_by_other(name, vm_id) {
                    return refuse("another VM's row records it".into());
                }
            }
            TapClaim::Orphan { known } => {
                if known.incomplete {
                    return refuse("a state database could not be read".into());
                }
                if known.taps.contains_key(name)
                    || alias_id.is_some_and(|id| known.ids.contains(id))
                {
                    return refuse("a state database records it".into());
                }
            }
        }
        // Held open by a process? The kernel says so for this one TAP (cheap, however many
        // processes run); only when it cannot, every process's descriptors are looked at.
        let holder =
            |scan: Option<Vec<i32>>| scan.and_then(|p| p.first().map(|p| format!("process {p}")));
        let held = match tap::is_held(name) {
            Ok(false) => None,
            Ok(true) => Some(
                holder(crate::sys::procfs::tun_attachments().remove(name))
                    .unwrap_or_else(|| "a process".into()),
            ),
            Err(_) => holder(crate::sys::procfs::tun_attachments().remove(name)),
        };
        if let Some(who) = held {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!("TAP device {name} is held open by {who}; not deleting it"),
            ));
        }
        Ok(Some(OwnedTap {
            index: link.index,
            name: link.name,
        }))
    }
}

/// Delete a TAP proved ours; `Ok(false)` if it has gone meanwhile. The link is deleted by
/// the index that was proved, after checking the index still carries the same name.
pub async fn delete_link(tap: &OwnedTap) -> io::Result<bool> {
    tracing::info!(tap = %tap.name, "deleting TAP");
    let (index, name) = (tap.index, tap.name.as_str());
    let handle = connect().await?;
    let mut found = handle.link().get().match_index(index).execute();
    match found.try_next().await {
        Ok(Some(msg))
            if msg
                .attributes
                .iter()
                .any(|a| matches!(a, LinkAttribute::IfName(n) if n == name)) => {}
        Ok(_) => return Ok(false),
        Err(rtnetlink::Error::NetlinkError(m))
            if m.code.map(|c| -c.get()) == Some(libc::ENODEV) =>
        {
            return Ok(false)
        }
        Err(e) => return Err(nl_error(&format!("find TAP device {name}"), e)),
    };
    match handle.link().del(index).execute().await {
        Ok(()) => Ok(true),
        Err(rtnetlink::Error::NetlinkError(m))
            if m.code.map(|c| -c.get()) == Some(libc::ENODEV) =>
        {
            Ok(false)
        }
        Err(e) => Err(nl_error(&format!("delete TAP device {name}"), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn attached_networks_are_the_routes_without_a_gateway() {
        let text =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
tap2\t020010AC\t00000000\t0005\t0\t0\t0\tFFFFFFFF\t0\t0\t0
wg0\t0000000A\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0
ppp0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0
eth1\t0000A8C0\t0101A8C0\t0003\t0\t0\t0\t0000FFFF\t0\t0\t0
down\t0000A8C0\t00000000\t0000\t0\t0\t0\t0000FFFF\t0\t0\t0
garbage line
";
        let nets = parse_routes(text);
        let want = [
            (Ipv4Addr::new(192, 0, 2, 0), 24),
            (Ipv4Addr::new(172, 16, 0, 2), 32),
            (Ipv4Addr::new(10, 0, 0, 0), 8),
        ];
        assert_eq!(nets, want, "{nets:?}");
        // This machine's own table reads (whatever it holds).
        attached_networks().unwrap();
    }

    #[test]
    fn the_lan_ranges_are_private_shared_and_special_not_public() {
        for a in [
            "10.9.8.7",
            "100.64.0.1",
            "172.31.0.1",
            "192.168.0.1",
            "0.0.0.1",
            "224.0.0.251",
            "255.255.255.255",
            "198.18.0.1",
            "192.0.0.9",
        ] {
            assert!(in_lan_ranges(a.parse().unwrap()), "{a}");
        }
        for a in [
            "8.8.8.8",
            "100.128.0.1",
            "172.32.0.1",
            "192.169.0.1",
            "203.0.113.80",
            "127.0.0.1",
            "169.254.169.254",
        ] {
            assert!(!in_lan_ranges(a.parse().unwrap()), "{a}");
        }
    }
}
