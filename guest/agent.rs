//! smolvm's clone agent: the one program smolvm puts into a guest. `snapshot create
//! --for-clone` copies it into a running sandbox and starts it (as root) before the
//! snapshot is written, so it runs on in every clone, blocked on the guest's `ttyS1`.
//!
//! After a clone resumes, smolvm writes one line on that port:
//!
//! ```text
//! readdr NONCE ADDR GATEWAY PREFIX MAC SEED
//! ```
//!
//! and the agent, without starting any program (each `exec` in a guest under TCG costs
//! hundreds of milliseconds), moves `eth0` to the new MAC and address, puts the default
//! route back, forgets the gateway's old neighbour entry, writes the 64 seed bytes into
//! `/dev/urandom` and makes the kernel's CRNG reseed (`RNDRESEEDCRNG`), then answers
//! `ok NONCE` (`err-addr NONCE`, `err-seed NONCE`). A line repeated (the host sends it
//! again until it is answered) is done once.
//!
//! `build.rs` compiles this file alone with the toolchain's `rustc` (std only, statically
//! linked, for the target smolvm is built for) and smolvm embeds the result; an image it
//! cannot run in falls back to the shell agent (`src/core/snapshot/clone.rs`).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::raw::{c_char, c_int, c_ulong, c_ushort};

/// What `--probe` prints: the binary runs in this guest.
const PROBE: &str = "smolvm-agent-ok";
const PORT: &str = "/dev/ttyS1";
const IFACE: &[u8] = b"eth0";
/// The longest request line kept (longer ones are dropped whole).
const MAX_LINE: usize = 1024;

const AF_INET: c_ushort = 2;
const ARPHRD_ETHER: c_ushort = 1;
const SOCK_DGRAM: c_int = 2;
const SIOCSIFADDR: c_ulong = 0x8916;
const SIOCSIFNETMASK: c_ulong = 0x891c;
const SIOCSIFHWADDR: c_ulong = 0x8924;
const SIOCADDRT: c_ulong = 0x890b;
const SIOCDARP: c_ulong = 0x8953;
const RNDRESEEDCRNG: c_ulong = 0x5207;
const RTF_UP: c_ushort = 0x1;
const RTF_GATEWAY: c_ushort = 0x2;
const TCSANOW: c_int = 0;

extern "C" {
    fn ioctl(fd: c_int, request: c_ulong, ...) -> c_int;
    fn socket(domain: c_int, kind: c_int, protocol: c_int) -> c_int;
    fn close(fd: c_int) -> c_int;
    fn tcgetattr(fd: c_int, termios: *mut Termios) -> c_int;
    fn tcsetattr(fd: c_int, when: c_int, termios: *const Termios) -> c_int;
    fn cfmakeraw(termios: *mut Termios);
}

/// `struct termios`, opaque: only libc reads or writes it (larger than any libc's).
#[repr(C, align(8))]
struct Termios([u8; 256]);

/// `struct sockaddr` holding an IPv4 address or a MAC.
#[repr(C)]
#[derive(Clone, Copy)]
struct SockAddr {
    family: c_ushort,
    data: [u8; 14],
}

impl SockAddr {
    const ZERO: SockAddr = SockAddr {
        family: 0,
        data: [0; 14],
    };
    fn ipv4(a: Ipv4Addr) -> SockAddr {
        let mut data = [0u8; 14];
        data[2..6].copy_from_slice(&a.octets());
        SockAddr {
            family: AF_INET,
            data,
        }
    }
    fn mac(m: [u8; 6]) -> SockAddr {
        let mut data = [0u8; 14];
        data[..6].copy_from_slice(&m);
        SockAddr {
            family: ARPHRD_ETHER,
            data,
        }
    }
}

/// `struct ifreq`: a name and one address.
#[repr(C)]
struct IfReq {
    name: [u8; 16],
    addr: SockAddr,
    _pad: [u8; 8],
}

/// `struct rtentry`.
#[repr(C)]
struct RtEntry {
    pad1: c_ulong,
    dst: SockAddr,
    gateway: SockAddr,
    genmask: SockAddr,
    flags: c_ushort,
    pad2: i16,
    pad3: c_ulong,
    pad4: *mut u8,
    metric: i16,
    dev: *const c_char,
    mtu: c_ulong,
    window: c_ulong,
    irtt: c_ushort,
}

/// `struct arpreq`.
#[repr(C)]
struct ArpReq {
    pa: SockAddr,
    ha: SockAddr,
    flags: c_int,
    netmask: SockAddr,
    dev: [u8; 16],
}

fn iface_name() -> [u8; 16] {
    let mut n = [0u8; 16];
    n[..IFACE.len()].copy_from_slice(IFACE);
    n
}

/// One request: `readdr NONCE ADDR GATEWAY PREFIX MAC SEED`.
struct Readdr {
    nonce: String,
    addr: Ipv4Addr,
    gateway: Ipv4Addr,
    mask: Ipv4Addr,
    mac: [u8; 6],
    seed: Vec<u8>,
}

fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The request in `line`: from its last `readdr ` on (a request whose first bytes were
/// lost in the UART runs into the next one on the same line).
fn parse(line: &str) -> Option<Readdr> {
    let w: Vec<&str> = line[line.rfind("readdr ")?..].split_whitespace().collect();
    let [verb, nonce, addr, gateway, bits, mac, seed] = w.as_slice() else {
        return None;
    };
    if *verb != "readdr" || nonce.is_empty() || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let bits: u32 = bits.parse().ok().filter(|b| (1..=32).contains(b))?;
    let m: Vec<u8> = mac
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).ok())
        .collect::<Option<_>>()?;
    Some(Readdr {
        nonce: nonce.to_string(),
        addr: addr.parse().ok()?,
        gateway: gateway.parse().ok()?,
        mask: Ipv4Addr::from(u32::MAX << (32 - bits)),
        mac: m.try_into().ok()?,
        seed: hex_bytes(seed).filter(|s| !s.is_empty())?,
    })
}

/// `ioctl(fd, request, arg)`, true when it succeeded.
fn set<T>(fd: c_int, request: c_ulong, arg: &mut T) -> bool {
    // SAFETY: `arg` is a live, properly laid out struct of the kind `request` takes.
    unsafe { ioctl(fd, request, arg as *mut T) == 0 }
}

/// Move `eth0` to the request's MAC and address (its primary address replaced; the
/// kernel drops the old prefix route, the default route through it and the interface's
/// neighbours with it), then route the default through the gateway again.
fn readdress(r: &Readdr) -> bool {
    // SAFETY: a plain socket call; the descriptor is closed below.
    let fd = unsafe { socket(AF_INET as c_int, SOCK_DGRAM, 0) };
    if fd < 0 {
        return false;
    }
    let mut req = IfReq {
        name: iface_name(),
        addr: SockAddr::mac(r.mac),
        _pad: [0; 8],
    };
    // A NIC that cannot change its MAC keeps the old one (the host's TAP takes any).
    let _ = set(fd, SIOCSIFHWADDR, &mut req);
    req.addr = SockAddr::ipv4(r.addr);
    let mut ok = set(fd, SIOCSIFADDR, &mut req);
    req.addr = SockAddr::ipv4(r.mask);
    ok = ok && set(fd, SIOCSIFNETMASK, &mut req);
    let dev = b"eth0\0";
    let mut route = RtEntry {
        pad1: 0,
        dst: SockAddr::ipv4(Ipv4Addr::UNSPECIFIED),
        gateway: SockAddr::ipv4(r.gateway),
        genmask: SockAddr::ipv4(Ipv4Addr::UNSPECIFIED),
        flags: RTF_UP | RTF_GATEWAY,
        pad2: 0,
        pad3: 0,
        pad4: std::ptr::null_mut(),
        metric: 0,
        dev: dev.as_ptr() as *const c_char,
        mtu: 0,
        window: 0,
        irtt: 0,
    };
    // EEXIST: the default route survived the move; it is what was asked for.
    ok = ok
        && (set(fd, SIOCADDRT, &mut route)
            || std::io::Error::last_os_error().raw_os_error() == Some(17));
    let mut arp = ArpReq {
        pa: SockAddr::ipv4(r.gateway),
        ha: SockAddr::ZERO,
        flags: 0,
        netmask: SockAddr::ZERO,
        dev: iface_name(),
    };
    // Usually gone already with the old address; ENXIO then.
    let _ = set(fd, SIOCDARP, &mut arp);
    // SAFETY: our own descriptor, closed once.
    unsafe { close(fd) };
    ok
}

/// Mix `seed` into the input pool and make the CRNG reseed from it now.
fn reseed(seed: &[u8]) -> bool {
    let Ok(mut f) = OpenOptions::new().write(true).open("/dev/urandom") else {
        return false;
    };
    // SAFETY: RNDRESEEDCRNG takes no argument.
    f.write_all(seed).is_ok() && unsafe { ioctl(f.as_raw_fd(), RNDRESEEDCRNG, 0usize) } == 0
}

fn raw(port: &File) {
    let mut t = Termios([0; 256]);
    // SAFETY: `t` is larger than the libc's termios; libc alone reads and writes it.
    unsafe {
        if tcgetattr(port.as_raw_fd(), &mut t) == 0 {
            cfmakeraw(&mut t);
            tcsetattr(port.as_raw_fd(), TCSANOW, &t);
        }
    }
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--probe") {
        println!("{PROBE}");
        return;
    }
    let Ok(port) = OpenOptions::new().read(true).write(true).open(PORT) else {
        std::process::exit(2);
    };
    raw(&port);
    let (mut line, mut last, mut buf) = (Vec::new(), String::new(), [0u8; 512]);
    let mut dropping = false;
    loop {
        let n = match (&port).read(&mut buf) {
            Ok(0) | Err(_) => {
                std::thread::sleep(std::time::Duration::from_millis(50));
                continue;
            }
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if b != b'\n' {
                if line.len() < MAX_LINE {
                    line.push(b);
                } else {
                    dropping = true;
                }
                continue;
            }
            let text = String::from_utf8_lossy(&line).into_owned();
            line.clear();
            if std::mem::take(&mut dropping) {
                continue;
            }
            let Some(r) = parse(&text) else { continue };
            if r.nonce == last {
                continue;
            }
            let word = if !readdress(&r) {
                "err-addr"
            } else if !reseed(&r.seed) {
                "err-seed"
            } else {
                "ok"
            };
            last = r.nonce.clone();
            let _ = (&port).write_all(format!("{word} {}\n", r.nonce).as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "00ff10";

    #[test]
    fn a_request_parses_into_what_the_guest_is_given() {
        let r = parse(&format!(
            "readdr 0a1b 172.16.0.9 172.16.0.1 24 aa:fc:00:00:00:09 {SEED}      "
        ))
        .unwrap();
        assert_eq!(r.nonce, "0a1b");
        assert_eq!(r.addr, Ipv4Addr::new(172, 16, 0, 9));
        assert_eq!(r.gateway, Ipv4Addr::new(172, 16, 0, 1));
        assert_eq!(r.mask, Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(r.mac, [0xaa, 0xfc, 0, 0, 0, 9]);
        assert_eq!(r.seed, [0, 0xff, 0x10]);
        // The tail of a request whose head the UART lost, then a whole one.
        let r = parse(&format!(
            "0.1 24 aa:fc:00readdr 77 10.0.0.2 10.0.0.1 30 aa:fc:00:00:00:02 {SEED}"
        ))
        .unwrap();
        assert_eq!(
            (r.nonce.as_str(), r.mask),
            ("77", Ipv4Addr::new(255, 255, 255, 252))
        );
    }

    #[test]
    fn anything_else_is_no_request() {
        let ok = format!("readdr 1 10.0.0.2 10.0.0.1 24 aa:fc:00:00:00:02 {SEED}");
        assert!(parse(&ok).is_some());
        for bad in [
            ok.replace("readdr", "Readdr"),
            ok.replace(" 1 ", " n1 "),
            ok.replace(" 24 ", " 0 "),
            ok.replace(" 24 ", " 33 "),
            ok.replace("10.0.0.2", "10.0.0.256"),
            ok.replace(":02 ", ":02:03 "),
            ok.replace(":02 ", ":zz "),
            ok.replace(SEED, "abc"),
            ok.replace(SEED, ""),
            format!("{ok} extra"),
            String::new(),
        ] {
            assert!(parse(&bad).is_none(), "{bad:?}");
        }
    }
}
