//! TCP sockets listening in this network namespace (`/proc/net/tcp` and `tcp6`, state
//! `0A`), and the processes holding them (`/proc/<pid>/fd` links `socket:[<inode>]`).
//! Used to tell when a host service listens on a port a sandbox forward already takes.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One listening socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub addr: IpAddr,
    pub port: u16,
    pub inode: u64,
}

impl Listener {
    /// Whether connections to `127.0.0.1:<port>` would reach it: bound to 127.0.0.1, to
    /// every IPv4 address, to IPv6's `::` (dual-stack unless `IPV6_V6ONLY`, which
    /// `/proc` does not show: counted), or to their IPv4-mapped forms.
    pub fn takes_ipv4_loopback(&self) -> bool {
        let v4 = |a: Ipv4Addr| a == Ipv4Addr::LOCALHOST || a.is_unspecified();
        match self.addr {
            IpAddr::V4(a) => v4(a),
            IpAddr::V6(a) => a.is_unspecified() || a.to_ipv4_mapped().is_some_and(v4),
        }
    }
}

/// Every TCP socket listening in this network namespace (IPv4 and IPv6).
pub fn tcp_listeners() -> Vec<Listener> {
    let mut out = Vec::new();
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        if let Ok(text) = std::fs::read_to_string(file) {
            out.extend(parse(&text, v6));
        }
    }
    out
}

/// The listening sockets of one `/proc/net/tcp[6]` table.
fn parse(text: &str, v6: bool) -> Vec<Listener> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.len() < 10 || w[3] != "0A" {
                return None;
            }
            let (addr, port) = w[1].split_once(':')?;
            Some(Listener {
                addr: if v6 { ipv6(addr)? } else { ipv4(addr)? },
                port: u16::from_str_radix(port, 16).ok()?,
                inode: w[9].parse().ok()?,
            })
        })
        .collect()
}

/// The kernel prints an address as the hex of its 32-bit words in host byte order.
fn word(hex: &str) -> Option<[u8; 4]> {
    Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
}

fn ipv4(hex: &str) -> Option<IpAddr> {
    (hex.len() == 8).then_some(())?;
    Some(IpAddr::V4(Ipv4Addr::from(word(hex)?)))
}

fn ipv6(hex: &str) -> Option<IpAddr> {
    if hex.len() != 32 || !hex.is_ascii() {
        return None;
    }
    let mut b = [0u8; 16];
    for i in 0..4 {
        b[i * 4..i * 4 + 4].copy_from_slice(&word(&hex[i * 8..i * 8 + 8])?);
    }
    Some(IpAddr::V6(Ipv6Addr::from(b)))
}

/// Which live process holds each of these socket inodes: inode → (PID, `comm`). A socket
/// shared by several processes is named by the lowest PID.
pub fn socket_holders(inodes: &[u64]) -> HashMap<u64, (i32, String)> {
    let mut out: HashMap<u64, (i32, String)> = HashMap::new();
    if inodes.is_empty() {
        return out;
    }
    let mut pids: Vec<i32> = super::super::process::all_pids();
    pids.sort_unstable();
    for pid in pids {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let t = target.to_string_lossy();
            let Some(inode) = t
                .strip_prefix("socket:[")
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if inodes.contains(&inode) && !out.contains_key(&inode) {
                out.insert(inode, (pid, super::super::procfs::comm(pid)));
            }
        }
        if out.len() == inodes.len() {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tables_parse_into_listeners() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 17 1 0 100 0 0 10 0
   2: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 99 1 0 100 0 0 10 0
   3: 0200007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 18 1 0 100 0 0 10 0
";
        let l = parse(v4, false);
        assert_eq!(
            l.iter()
                .map(|l| (l.addr.to_string(), l.port, l.inode))
                .collect::<Vec<_>>(),
            [
                ("127.0.0.1".into(), 8080, 4242),
                ("0.0.0.0".into(), 22, 17),
                ("127.0.0.2".into(), 8081, 18)
            ]
        );
        assert_eq!(
            l.iter()
                .map(Listener::takes_ipv4_loopback)
                .collect::<Vec<_>>(),
            [true, true, false]
        );
        let v6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5 1 0 100 0 0 10 0
   1: 00000000000000000000000001000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 6 1 0 100 0 0 10 0
   2: 0000000000000000FFFF00000100007F:1F92 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 7 1 0 100 0 0 10 0
";
        let l = parse(v6, true);
        assert_eq!(
            l.iter()
                .map(|l| (l.addr.to_string(), l.port))
                .collect::<Vec<_>>(),
            [
                ("::".into(), 8080),
                ("::1".into(), 8081),
                ("::ffff:127.0.0.1".into(), 8082)
            ]
        );
        assert_eq!(
            l.iter()
                .map(Listener::takes_ipv4_loopback)
                .collect::<Vec<_>>(),
            [true, false, true]
        );
        assert!(parse("header\n 0: zz:1 0:0 0A a b c d e 1\n", false).is_empty());
    }

    #[test]
    fn a_listener_of_this_process_is_found_with_its_holder() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let found: Vec<Listener> = tcp_listeners()
            .into_iter()
            .filter(|x| x.port == port)
            .collect();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].takes_ipv4_loopback());
        let holders = socket_holders(&[found[0].inode]);
        assert_eq!(
            holders.get(&found[0].inode).map(|h| h.0),
            Some(std::process::id() as i32)
        );
    }
}
