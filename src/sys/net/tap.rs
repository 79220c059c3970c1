//! Per-VM TAP devices, SmolVM's NAT way: created persistent through the TUN ioctl, then
//! configured through netlink — `172.16.0.1/32` on the TAP, link up, a `/32` route to the
//! guest — plus `route_localnet` on the TAP and `ip_forward`.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use rtnetlink::packet_route::route::{RouteAttribute, RouteMessage};
use rtnetlink::{LinkUnspec, RouteMessageBuilder};

use super::HOST_IP;

const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETPERSIST: libc::c_ulong = 0x4004_54cb;

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Create a persistent TAP named `name` (TUN ioctl). An existing TAP of that name is
/// success (SmolVM's "File exists ⇒ already exists").
pub fn create_persistent(name: &str) -> io::Result<()> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid TAP device name '{name}'"),
        ));
    }
    let tun = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot open /dev/net/tun to create TAP device '{name}': {e}"),
            )
        })?;
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: IFF_TAP | IFF_NO_PI,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: valid fd and a properly sized, initialised ifreq.
    let r = unsafe { libc::ioctl(tun.as_raw_fd(), TUNSETIFF as _, &mut req) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::EPERM) => io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("Permission denied: cannot create TAP device '{name}' (needs root or CAP_NET_ADMIN)"),
            ),
            // A TAP of that name held open by a VMM: it exists.
            Some(libc::EBUSY) => return Ok(()),
            _ => io::Error::new(e.kind(), format!("Failed to create TAP device '{name}': {e}")),
        });
    }
    // SAFETY: valid fd; TUNSETPERSIST takes an int argument.
    let r = unsafe { libc::ioctl(tun.as_raw_fd(), TUNSETPERSIST as _, 1 as libc::c_ulong) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("Failed to make TAP device '{name}' persistent: {e}"),
        ));
    }
    Ok(())
}

const IFF_VNET_HDR: libc::c_short = 0x4000;
const TUNSETOWNER: libc::c_ulong = 0x4004_54cc;

/// Attach to the existing TAP `name` (`TUNSETIFF` on a fresh `/dev/net/tun` descriptor,
/// close-on-exec): a queue of it for a VMM that gets the descriptor (`-netdev tap,fd=N`)
/// instead of opening the device itself. With the virtio-net header, as QEMU asks for it.
/// A name that is not an existing TAP is an error (`TUNSETIFF` would make a new one).
pub fn open_queue(name: &str) -> io::Result<std::os::fd::OwnedFd> {
    attach(name, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR).map_err(|e| named(name, e))
}

fn named(name: &str, e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("cannot attach to TAP device '{name}': {e}"),
    )
}

/// Let `uid` attach to the TAP `name` itself (`TUNSETOWNER`), without CAP_NET_ADMIN: what
/// a Firecracker running as that user needs, as it opens its TAP by name.
pub fn set_owner(name: &str, uid: u32) -> io::Result<()> {
    let fd = attach(name, IFF_TAP | IFF_NO_PI).map_err(|e| named(name, e))?;
    // SAFETY: valid fd; TUNSETOWNER takes the uid as an integer argument.
    if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETOWNER as _, uid as libc::c_ulong) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Every user and group id some TAP in this network namespace names as its owner or group
/// (`TUNSETOWNER`, `TUNSETGROUP`: `/sys/class/net/<tap>/owner` and `group`, `-1` for
/// none). Whoever runs as such an id may attach to that TAP by name and send as the
/// sandbox it belongs to, even while no VMM holds it (a stopped or crashed Firecracker's
/// TAP keeps the owner it was given).
pub fn owner_ids() -> std::collections::HashSet<u32> {
    let mut ids = std::collections::HashSet::new();
    let Ok(links) = std::fs::read_dir("/sys/class/net") else {
        return ids;
    };
    for link in links.flatten() {
        let dir = link.path();
        if !dir.join("tun_flags").exists() {
            continue;
        }
        for f in ["owner", "group"] {
            let v = std::fs::read_to_string(dir.join(f)).unwrap_or_default();
            if let Ok(id) = v.trim().parse::<u32>() {
                ids.insert(id);
            }
        }
    }
    ids
}

/// Whether some process holds the single-queue TAP `name` open: attaching to it is refused
/// with `EBUSY` exactly then (a TAP in another network namespace is not this one). Asked
/// of the kernel for this one device, so its cost does not grow with the processes on the
/// host. `Ok(false)` when it is free — our own attachment is dropped at once, and a
/// persistent TAP stays as it was. An error when the kernel cannot say (a multi-queue TAP,
/// no rights): the caller falls back to looking at every process's descriptors.
pub fn is_held(name: &str) -> io::Result<bool> {
    match attach(name, IFF_TAP | IFF_NO_PI) {
        Ok(_) => Ok(false),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Ok(true),
        Err(e) => Err(e),
    }
}

fn attach(name: &str, flags: libc::c_short) -> io::Result<std::os::fd::OwnedFd> {
    if name.is_empty()
        || name.len() >= libc::IFNAMSIZ
        || !std::path::Path::new("/sys/class/net")
            .join(name)
            .join("tun_flags")
            .exists()
    {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no TAP device '{name}'"),
        ));
    }
    tun_setiff(name, flags)
}

/// A new TAP that lives only as long as its descriptor (not persistent, down, no
/// address; the kernel names it `svmt<N>`): the NIC of a QEMU that loads a saved state
/// but never runs the guest. With the virtio-net header, as a sandbox's TAP.
pub fn open_throwaway() -> io::Result<std::os::fd::OwnedFd> {
    tun_setiff("svmt%d", IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot make a TAP device: {e}")))
}

/// `TUNSETIFF` of `name` with `flags` on a fresh `/dev/net/tun` descriptor.
fn tun_setiff(name: &str, flags: libc::c_short) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let tun = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/net/tun")
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open /dev/net/tun: {e}")))?;
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: valid fd and a properly sized, initialised ifreq.
    // The bare errno: callers tell EBUSY apart (and add the device's name to the message).
    if unsafe { libc::ioctl(tun.as_raw_fd(), TUNSETIFF as _, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(std::os::fd::OwnedFd::from(tun))
}

async fn connect() -> io::Result<rtnetlink::Handle> {
    let (conn, handle, _) = rtnetlink::new_connection()?;
    tokio::spawn(conn);
    Ok(handle)
}

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

fn nl(context: &str, e: rtnetlink::Error) -> io::Error {
    match errno(&e) {
        Some(libc::EPERM) | Some(libc::EACCES) => io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("Permission denied: cannot {context}"),
        ),
        Some(n) => io::Error::new(
            io::Error::from_raw_os_error(n).kind(),
            format!("cannot {context}: {}", io::Error::from_raw_os_error(n)),
        ),
        None => io::Error::other(format!("cannot {context}: {e}")),
    }
}

async fn index_of(handle: &rtnetlink::Handle, name: &str) -> io::Result<Option<u32>> {
    let mut s = handle.link().get().match_name(name.to_string()).execute();
    match s.try_next().await {
        Ok(Some(m)) => Ok(Some(m.header.index)),
        Ok(None) => Ok(None),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(nl(&format!("find link {name}"), e)),
    }
}

/// Create and configure the TAP for a guest: persistent TAP, `172.16.0.1/32`, up, route
/// `<guest_ip>/32 dev <tap>`, `route_localnet=1` on it and `ip_forward=1`. Idempotent.
pub async fn setup(tap: &str, guest_ip: Ipv4Addr) -> io::Result<()> {
    let name = tap.to_string();
    tokio::task::spawn_blocking(move || create_persistent(&name))
        .await
        .map_err(io::Error::other)??;
    let handle = connect().await?;
    let index = index_of(&handle, tap)
        .await?
        .ok_or_else(|| io::Error::other(format!("TAP device '{tap}' vanished after creation")))?;
    let host: Ipv4Addr = HOST_IP.parse().expect("valid host ip");
    match handle
        .address()
        .add(index, IpAddr::V4(host), 32)
        .execute()
        .await
    {
        Ok(()) => {}
        Err(e) if errno(&e) == Some(libc::EEXIST) => {}
        Err(e) => return Err(nl(&format!("add {HOST_IP}/32 to {tap}"), e)),
    }
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(|e| nl(&format!("bring {tap} up"), e))?;
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(guest_ip, 32)
        .output_interface(index)
        .build();
    handle
        .route()
        .add(route)
        .replace()
        .execute()
        .await
        .map_err(|e| nl(&format!("add route {guest_ip}/32 dev {tap}"), e))?;
    write_sysctl(&format!("net/ipv4/conf/{tap}/route_localnet"), "1")?;
    write_sysctl("net/ipv4/ip_forward", "1")?;
    Ok(())
}

/// SmolVM's ownership marker on a bridge TAP: its alias `smolvm-bridge:<vm id>`.
pub fn bridge_alias(vm_id: &str) -> String {
    format!("smolvm-bridge:{vm_id}")
}

/// SmolVM's bridge MAC for a `svmb<8 hex>` TAP: `02:53:` and the name's four octets
/// (upper-case hex).
pub fn bridge_mac(tap: &str) -> Option<String> {
    let hex = tap
        .strip_prefix("svmb")
        .filter(|h| super::is_bridge_tap_name(tap) && h.len() == 8)?;
    let octets: Vec<String> = (0..4)
        .map(|i| hex[2 * i..2 * i + 2].to_ascii_uppercase())
        .collect();
    Some(format!("02:53:{}", octets.join(":")))
}

/// Create (or take back) the bridge TAP `tap` of `vm_id` and enslave it to `bridge`, SmolVM's
/// way: a persistent TAP, its alias `smolvm-bridge:<vm id>` set at creation, `master
/// <bridge>`, up; no address, no route. An existing link of that name is used only when
/// it is a TAP whose alias already names this VM; anything else is refused and left as it
/// is. A TAP this call created is deleted again when a later step fails.
pub async fn setup_bridged(tap: &str, bridge: &str, vm_id: &str) -> io::Result<()> {
    let alias = bridge_alias(vm_id);
    let find = |links: Vec<super::Link>, name: &str| links.into_iter().find(|l| l.name == name);
    let existing = find(super::links().await?, tap);
    let created = match existing {
        Some(l) if l.is_tun && l.alias.as_deref() == Some(alias.as_str()) => false,
        Some(l) if !l.is_tun => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("Network interface '{tap}' already exists and is not a SmolVM TAP; remove the conflicting interface, then retry sandbox '{vm_id}'."),
            ))
        }
        Some(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("Network interface '{tap}' already exists but does not belong to sandbox '{vm_id}'; remove the conflicting interface, then retry."),
            ))
        }
        None => {
            let name = tap.to_string();
            tokio::task::spawn_blocking(move || create_persistent(&name))
                .await
                .map_err(io::Error::other)??;
            true
        }
    };
    let r = attach_to_bridge(tap, bridge, &alias, created).await;
    if r.is_err() && created {
        if let Ok(handle) = connect().await {
            if let Ok(Some(i)) = index_of(&handle, tap).await {
                let _ = handle.link().del(i).execute().await;
            }
        }
    }
    r
}

async fn attach_to_bridge(tap: &str, bridge: &str, alias: &str, created: bool) -> io::Result<()> {
    let links = super::links().await?;
    let link = links
        .iter()
        .find(|l| l.name == tap)
        .ok_or_else(|| io::Error::other(format!("TAP device '{tap}' vanished after creation")))?;
    if !link.is_tun {
        return Err(io::Error::other(format!(
            "Created interface '{tap}' is not a TAP device"
        )));
    }
    let br = links
        .iter()
        .find(|l| l.name == bridge && l.kind.as_deref() == Some("bridge"))
        .ok_or_else(|| io::Error::other(format!("'{bridge}' is not a bridge")))?;
    let handle = connect().await?;
    let mut msg = LinkUnspec::new_with_index(link.index).controller(br.index);
    if created {
        msg = msg.alias(alias);
    }
    handle
        .link()
        .set(msg.build())
        .execute()
        .await
        .map_err(|e| nl(&format!("attach TAP '{tap}' to bridge '{bridge}'"), e))?;
    handle
        .link()
        .set(LinkUnspec::new_with_index(link.index).up().build())
        .execute()
        .await
        .map_err(|e| nl(&format!("bring {tap} up"), e))?;
    let now = super::links().await?;
    let after = now.iter().find(|l| l.name == tap);
    if after.and_then(|l| l.controller) != Some(br.index) {
        return Err(io::Error::other(format!(
            "TAP '{tap}' is not attached to '{bridge}'"
        )));
    }
    if after.and_then(|l| l.alias.as_deref()) != Some(alias) {
        return Err(io::Error::other(format!(
            "TAP '{tap}' did not keep its alias '{alias}'"
        )));
    }
    Ok(())
}

fn write_sysctl(key: &str, value: &str) -> io::Result<()> {
    let path = format!("/proc/sys/{key}");
    if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    std::fs::write(&path, value).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot set {}={value}: {e}", key.replace('/', ".")),
        )
    })
}

/// The interface of the IPv4 default route (SmolVM's outbound interface for NAT).
pub async fn default_interface() -> io::Result<Option<String>> {
    let handle = connect().await?;
    let mut routes = handle
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute();
    let mut oif = None;
    while let Some(r) = routes.try_next().await.map_err(|e| nl("list routes", e))? {
        if is_main_default(&r) {
            oif = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(i) => Some(*i),
                _ => None,
            });
            if oif.is_some() {
                break;
            }
        }
    }
    let Some(oif) = oif else { return Ok(None) };
    let mut s = handle.link().get().match_index(oif).execute();
    let msg = s
        .try_next()
        .await
        .map_err(|e| nl("find the default route's interface", e))?;
    Ok(msg.and_then(|m| {
        m.attributes.into_iter().find_map(|a| match a {
            rtnetlink::packet_route::link::LinkAttribute::IfName(n) => Some(n),
            _ => None,
        })
    }))
}

fn is_main_default(r: &RouteMessage) -> bool {
    let table = r
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(r.header.table));
    r.header.destination_prefix_length == 0 && table == 254
}

/// SmolVM's NAT MAC for pool index `n`: `AA:FC:00:00:<n>>8>:<n&0xff>` (upper-case hex).
pub fn mac_for_index(n: u32) -> String {
    format!("AA:FC:00:00:{:02X}:{:02X}", (n >> 8) & 0xff, n & 0xff)
}

/// Pool index of a 172.16.a.b address (a·256 + b).
pub fn pool_index(ip: Ipv4Addr) -> Option<u32> {
    let o = ip.octets();
    (o[0] == 172 && o[1] == 16).then(|| u32::from(o[2]) * 256 + u32::from(o[3]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_and_index_follow_smolvm() {
        assert_eq!(mac_for_index(2), "AA:FC:00:00:00:02");
        assert_eq!(mac_for_index(261), "AA:FC:00:00:01:05");
        assert_eq!(pool_index("172.16.1.5".parse().unwrap()), Some(261));
        assert_eq!(pool_index("10.0.2.15".parse().unwrap()), None);
    }

    #[test]
    fn bridge_mac_and_alias_follow_smolvm() {
        assert_eq!(
            bridge_mac("svmb0a1b2c3d").as_deref(),
            Some("02:53:0A:1B:2C:3D")
        );
        assert_eq!(bridge_mac("tap2"), None);
        assert_eq!(bridge_mac("svmb0a1b2c3"), None);
        assert_eq!(bridge_alias("vm-1"), "smolvm-bridge:vm-1");
    }
}
