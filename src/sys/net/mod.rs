//! Host networking: links through netlink (rtnetlink) and SmolVM's nftables tables.

pub mod nft;
pub mod tap;

use std::io;
use std::net::IpAddr;

use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkInfo};

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
}

impl Link {
    pub fn has_addr(&self, ip: &str, prefix: u8) -> bool {
        self.addrs
            .iter()
            .any(|(a, p)| *p == prefix && a.to_string() == ip)
    }
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
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            is_tun: false,
            alias: None,
            addrs: Vec::new(),
        };
        for attr in msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => link.name = n,
                LinkAttribute::IfAlias(a) => link.alias = Some(a),
                LinkAttribute::LinkInfo(infos) => {
                    link.is_tun = infos
                        .iter()
                        .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Tun)));
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

/// Delete the link named `name`; `Ok(false)` if there is none (already gone).
pub async fn delete_link(name: &str) -> io::Result<bool> {
    let handle = connect().await?;
    let mut found = handle.link().get().match_name(name.to_string()).execute();
    let index = match found.try_next().await {
        Ok(Some(msg)) => msg.header.index,
        Ok(None) => return Ok(false),
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
