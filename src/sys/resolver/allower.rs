//! The resolver's only privileged part. The resolver reads what guests send and what the
//! upstream answers, so it holds no capability at all; before it drops them it forks this
//! allower, which keeps `CAP_NET_ADMIN` and does one thing: add addresses to one guarded
//! TAP's `dyn_<tap>` set for a while. It reads requests from a socket pair only the
//! resolver holds and checks each one ([`Allow::parse`]: a TAP name smolvm makes, a time
//! within bounds, at most [`MAX_ADDRS`] addresses, none of them this host's or the
//! sandboxes' own), so even a resolver a guest took over can do no more than its honest
//! self could: it cannot flush a table, open a chain or touch a link. The allower ends
//! with the resolver (end of file on the pair, and a parent-death signal).

use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::fd::{OwnedFd, RawFd};
use std::sync::Mutex;
use std::time::Duration;

use rustix::net::{sockopt, AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

use crate::sys::users::{self, Identity};

/// The shortest time an allowed address stays reachable after an answer (seconds).
pub const MIN_TTL_SECS: u64 = 60;
/// The longest (a day), whatever the record says.
pub const MAX_TTL_SECS: u64 = 86_400;
/// The addresses one request may name.
pub const MAX_ADDRS: usize = 64;
/// The longest request the allower reads (a whole request of [`MAX_ADDRS`] is far less).
const MAX_REQUEST: usize = 2048;
/// How long the resolver waits for the allower's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Make `addrs` reachable from the sandbox behind `tap` for `ttl_secs` seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allow {
    pub tap: String,
    pub ttl_secs: u64,
    pub addrs: Vec<Ipv4Addr>,
}

/// Whether a DNS answer's address may be made reachable by name at all: never this host's
/// or the sandboxes' own addresses (loopback, link-local, the sandboxes'
/// `172.16.0.0/16`), nor the LAN's ranges ([`LAN_RANGES`](crate::sys::net::LAN_RANGES):
/// private, shared, multicast, reserved), which a guest reaches only through an
/// `--allow-cidr` range (a name under an allowed suffix must not rebind to the LAN). The
/// guard refuses them on its own; the allower refuses them before they reach it.
pub fn nameable(a: Ipv4Addr) -> bool {
    !(a.is_loopback() || a.is_link_local() || crate::sys::net::in_lan_ranges(a))
}

impl Allow {
    /// One request as the allower reads it: `SEQ TTL TAP ADDR…`.
    fn encode(&self, seq: u64) -> String {
        let mut s = format!("{seq} {} {}", self.ttl_secs, self.tap);
        for a in &self.addrs {
            s.push(' ');
            s.push_str(&a.to_string());
        }
        s
    }

    /// Read and check one request: the allower's whole trust boundary. The error names
    /// the request's sequence number when it has one (else 0) and what is wrong with it.
    pub fn parse(msg: &[u8]) -> Result<(u64, Allow), (u64, String)> {
        if msg.len() > MAX_REQUEST {
            return Err((0, format!("a request of {} bytes", msg.len())));
        }
        let text = std::str::from_utf8(msg).map_err(|_| (0, "a request not in UTF-8".into()))?;
        let mut words = text.split(' ');
        let seq = words
            .next()
            .and_then(|w| w.parse::<u64>().ok())
            .ok_or((0, "a request with no sequence number".to_string()))?;
        let bad = |what: String| (seq, what);
        let ttl_secs = words
            .next()
            .and_then(|w| w.parse::<u64>().ok())
            .filter(|t| (MIN_TTL_SECS..=MAX_TTL_SECS).contains(t))
            .ok_or_else(|| {
                bad(format!(
                    "a time outside {MIN_TTL_SECS}..={MAX_TTL_SECS} seconds"
                ))
            })?;
        let tap = words.next().unwrap_or_default();
        crate::sys::net::guard::check_tap(tap).map_err(|e| bad(e.to_string()))?;
        let mut addrs = Vec::new();
        for w in words {
            let a: Ipv4Addr = w
                .parse()
                .map_err(|_| bad(format!("not an IPv4 address: {w:?}")))?;
            if !nameable(a) {
                return Err(bad(format!("{a} is never reachable by name")));
            }
            addrs.push(a);
        }
        if addrs.is_empty() || addrs.len() > MAX_ADDRS {
            return Err(bad(format!(
                "{} addresses (1 to {MAX_ADDRS} per request)",
                addrs.len()
            )));
        }
        Ok((
            seq,
            Allow {
                tap: tap.to_string(),
                ttl_secs,
                addrs,
            },
        ))
    }
}

/// The resolver's end of the pair, and the allower's pid.
pub struct Allower {
    link: Mutex<(OwnedFd, u64)>,
    pub pid: i32,
}

impl Allower {
    /// Ask the allower to do `req`, and wait for its answer. Requests go one at a time.
    pub fn allow(&self, req: &Allow) -> io::Result<()> {
        let mut link = self.link.lock().unwrap_or_else(|p| p.into_inner());
        link.1 += 1;
        let seq = link.1;
        rustix::net::send(&link.0, req.encode(seq).as_bytes(), SendFlags::NOSIGNAL)?;
        let mut buf = [0u8; 512];
        loop {
            let (n, _) = rustix::net::recv(&link.0, &mut buf, RecvFlags::empty())?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the allower is gone",
                ));
            }
            let text = String::from_utf8_lossy(&buf[..n.min(buf.len())]);
            let (got, rest) = text.split_once(' ').unwrap_or((&text, ""));
            // An answer to an earlier request that timed out: not this one's.
            if got.parse::<u64>().ok() != Some(seq) {
                continue;
            }
            return match rest.strip_prefix("err ") {
                None if rest == "ok" => Ok(()),
                Some(e) => Err(io::Error::other(e.to_string())),
                None => Err(io::Error::other(format!("the allower answered {rest:?}"))),
            };
        }
    }
}

fn log(line: &str) {
    let _ = writeln!(
        io::stderr(),
        "{} allower: {line}",
        crate::sys::time::iso_now()
    );
}

/// Fork the allower, running as `user` with `CAP_NET_ADMIN` only; `close` are the
/// resolver's listeners, which it must not hold. Call while this process is still
/// root and has a single thread; returns once the allower has dropped its privileges.
pub fn fork(user: Identity, close: &[RawFd]) -> io::Result<Allower> {
    let (ours, theirs) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?;
    let parent = std::process::id() as i32;
    // SAFETY: the resolver calls this before it starts any thread (its runtime comes
    // later), so the child is a whole copy; it runs only `serve` and leaves by `_exit`.
    match unsafe { nix::unistd::fork() }.map_err(io::Error::from)? {
        nix::unistd::ForkResult::Child => {
            drop(ours);
            for fd in close {
                // SAFETY: the listeners' descriptors, closed in this copy only.
                unsafe { libc::close(*fd) };
            }
            let code = serve(user, parent, theirs);
            // SAFETY: leaves this process without running the resolver's exit paths.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(theirs);
            sockopt::set_socket_timeout(&ours, sockopt::Timeout::Recv, Some(ANSWER_TIMEOUT))?;
            let mut buf = [0u8; 16];
            let ready = rustix::net::recv(&ours, &mut buf, RecvFlags::empty());
            if !matches!(ready, Ok((5, _)) if &buf[..5] == b"ready") {
                let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                let _ = nix::sys::wait::waitpid(child, None);
                return Err(io::Error::other(
                    "the allower did not start (see the resolver's log)",
                ));
            }
            Ok(Allower {
                link: Mutex::new((ours, 0)),
                pid: child.as_raw(),
            })
        }
    }
}

/// The allower's life: drop to `user` keeping `CAP_NET_ADMIN`, then answer requests until
/// the resolver is gone.
fn serve(user: Identity, parent: i32, link: OwnedFd) -> i32 {
    if let Err(e) = users::drop_to(user, &[users::CAP_NET_ADMIN]) {
        log(&format!("dropping privileges: {e}"));
        return 1;
    }
    // After the drop: a change of credentials clears the parent-death signal.
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if nix::unistd::getppid().as_raw() != parent
        || rustix::net::send(&link, b"ready", SendFlags::NOSIGNAL).is_err()
    {
        return 1;
    }
    let mut buf = vec![0u8; MAX_REQUEST + 1];
    loop {
        let n = match rustix::net::recv(&link, &mut buf, RecvFlags::empty()) {
            Ok((0, _)) => return 0,
            Ok((n, _)) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return 1,
        };
        let answer = match Allow::parse(&buf[..n.min(buf.len())]) {
            Ok((seq, a)) => {
                match crate::sys::net::guard::allow_resolved(&a.tap, &a.addrs, a.ttl_secs) {
                    Ok(()) => format!("{seq} ok"),
                    Err(e) => format!("{seq} err {e}"),
                }
            }
            Err((seq, e)) => {
                log(&format!("refused a request: {e}"));
                format!("{seq} err refused: {e}")
            }
        };
        if rustix::net::send(&link, answer.as_bytes(), SendFlags::NOSIGNAL).is_err() {
            return 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(tap: &str, ttl_secs: u64, addrs: &[&str]) -> Allow {
        Allow {
            tap: tap.into(),
            ttl_secs,
            addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn a_request_reads_back_as_it_was_sent() {
        let a = allow("tap3", 300, &["93.184.216.34", "203.0.113.7"]);
        assert_eq!(a.encode(7), "7 300 tap3 93.184.216.34 203.0.113.7");
        assert_eq!(Allow::parse(a.encode(7).as_bytes()), Ok((7, a)));
        let b = allow("svmb0a1b2c3d", MAX_TTL_SECS, &["198.51.100.1"]);
        assert_eq!(Allow::parse(b.encode(1).as_bytes()), Ok((1, b)));
    }

    #[test]
    fn a_request_a_hijacked_resolver_could_forge_is_refused() {
        let refused = |msg: &str| match Allow::parse(msg.as_bytes()) {
            Err((_, e)) => e,
            Ok(a) => panic!("{msg:?} was accepted: {a:?}"),
        };
        // Not a TAP smolvm makes, or words that are not a name at all.
        assert!(refused("1 60 eth0 1.2.3.4").contains("not a smolvm TAP name"));
        assert!(refused("1 60 tap0;flush 1.2.3.4").contains("TAP name"));
        assert!(refused("1 60 tap0\nflush 1.2.3.4").contains("TAP name"));
        // Times out of bounds: a set element that never expires, or one at once.
        assert!(refused("1 0 tap0 1.2.3.4").contains("a time outside"));
        assert!(refused("1 86401 tap0 1.2.3.4").contains("a time outside"));
        // Addresses: none, too many, not IPv4, or the host's and the sandboxes' own.
        assert!(refused("1 60 tap0").contains("0 addresses"));
        let many = vec!["1.2.3.4"; MAX_ADDRS + 1].join(" ");
        assert!(refused(&format!("1 60 tap0 {many}")).contains("65 addresses"));
        assert!(refused("1 60 tap0 1.2.3.4/0").contains("not an IPv4 address"));
        assert!(refused("1 60 tap0 ::1").contains("not an IPv4 address"));
        assert!(refused("1 60 tap0 01.2.3.4").contains("not an IPv4 address"));
        for a in [
            "127.0.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.16.0.9",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "10.0.0.7",
            "192.168.1.1",
        ] {
            assert!(
                refused(&format!("1 60 tap0 {a}")).contains("never reachable"),
                "{a}"
            );
        }
        // The sequence number comes back with the refusal, so the resolver reads it.
        assert_eq!(Allow::parse(b"9 60 eth0 1.2.3.4").unwrap_err().0, 9);
        // Not text, no number, too long.
        assert!(refused("\u{fffd}").contains("sequence"));
        assert_eq!(
            Allow::parse(&[0xff, b' ', b'1']).unwrap_err().1,
            "a request not in UTF-8"
        );
        assert!(refused(&"9".repeat(MAX_REQUEST + 1)).contains("bytes"));
    }

    #[test]
    fn only_addresses_beyond_the_host_its_sandboxes_and_the_lan_are_nameable() {
        for a in ["93.184.216.34", "8.8.8.8", "203.0.113.80", "172.32.0.1"] {
            assert!(nameable(a.parse().unwrap()), "{a}");
        }
        for a in [
            "127.1.2.3",
            "169.254.0.1",
            "172.16.255.255",
            "0.1.2.3",
            "239.1.1.1",
            "10.1.2.3",
            "192.168.1.1",
            "172.17.0.1",
            "172.31.255.255",
            "100.100.100.100",
            "198.19.0.1",
            "255.255.255.255",
        ] {
            assert!(!nameable(a.parse().unwrap()), "{a}");
        }
    }
}
