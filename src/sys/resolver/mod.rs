//! The sandboxes' resolver as a process: where it listens (the sandboxes' gateway
//! 172.16.0.1, a free port, bound before the address exists), its record
//! (`<data dir>/egress-dns.json`: pid, start time, port), its control socket
//! (`<data dir>/egress-dns.sock`, root's only, one JSON line each way) and the proof that
//! a process is it: the recorded start time, `__egress-dns --data-dir <this dir>` as its
//! command line, and the same pid answering on the control socket (`SO_PEERCRED`).

use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rustix::net::{sockopt, AddressFamily, SocketType};
use serde::{Deserialize, Serialize};

use crate::sys::process::{self, OwnedProcess, ProcInfo};

pub mod allower;

/// The hidden subcommand the resolver runs as.
pub const SUBCOMMAND: &str = "__egress-dns";
const RECORD: &str = "egress-dns.json";
const SOCKET: &str = "egress-dns.sock";
pub const LOG: &str = "egress-dns.log";

/// What a running resolver recorded about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub pid: i32,
    pub start_ticks: u64,
    pub port: u16,
}

pub fn record_path(data_dir: &Path) -> PathBuf {
    data_dir.join(RECORD)
}

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET)
}

/// The record, if there is a valid one (a regular file, not a link).
pub fn read_record(data_dir: &Path) -> Option<Record> {
    let text = super::open::read_to_string(&record_path(data_dir)).ok()?;
    let r: Record = serde_json::from_str(&text).ok()?;
    (r.pid > 0 && r.port > 0).then_some(r)
}

/// Write the record atomically (0600).
pub fn write_record(data_dir: &Path, r: &Record) -> io::Result<()> {
    let text = serde_json::to_vec(r).map_err(io::Error::other)?;
    super::open::write_atomic(&record_path(data_dir), &text, 0o600)
}

/// Remove the record and the control socket of a resolver that is gone.
pub fn forget(data_dir: &Path) {
    // Only a regular file at the record's name and only a socket at the socket's.
    let _ = super::fs::remove_generated_file(&record_path(data_dir));
    let _ = super::open::remove_socket(&socket_path(data_dir));
}

fn bound_socket(kind: SocketType, port: u16) -> io::Result<std::os::fd::OwnedFd> {
    let fd = rustix::net::socket(AddressFamily::INET, kind, None)?;
    sockopt::set_ip_freebind(fd.as_fd(), true)?;
    if kind == SocketType::STREAM {
        sockopt::set_socket_reuseaddr(fd.as_fd(), true)?;
    }
    let gw: Ipv4Addr = super::net::HOST_IP.parse().expect("gateway address");
    rustix::net::bind(fd.as_fd(), &SocketAddrV4::new(gw, port))?;
    if kind == SocketType::STREAM {
        rustix::net::listen(fd.as_fd(), 64)?;
    }
    Ok(fd)
}

/// UDP and TCP listeners on the gateway address, on one free port (the address need not
/// exist yet: the first TAP brings it).
pub fn bind_listeners() -> io::Result<(UdpSocket, TcpListener, u16)> {
    let mut last = None;
    for _ in 0..16 {
        let udp = UdpSocket::from(bound_socket(SocketType::DGRAM, 0)?);
        let port = udp.local_addr()?.port();
        match bound_socket(SocketType::STREAM, port) {
            Ok(tcp) => return Ok((udp, TcpListener::from(tcp), port)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free port for the resolver")))
}

/// The control socket, made anew (a stale socket file of ours is replaced; anything
/// else at the path is refused), mode 0600.
pub fn control_listener(data_dir: &Path) -> io::Result<UnixListener> {
    let p = socket_path(data_dir);
    super::open::prepare_socket_path(&p)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
    let l = UnixListener::bind(&p)?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// Start `exe __egress-dns --data-dir <dir>` in a session of its own, its output appended
/// to the log in the data dir. It outlives the command that started it.
pub fn spawn(exe: &Path, data_dir: &Path) -> io::Result<Child> {
    let log = super::open::open_append(&data_dir.join(LOG), 0o600)?;
    let err = log.try_clone()?;
    let mut c = Command::new(exe);
    c.arg(SUBCOMMAND)
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0);
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        c.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    c.spawn()
}

/// Whether `/proc` shows the resolver of this data dir.
fn is_resolver_of(i: &ProcInfo, data_dir: &Path) -> bool {
    i.cmdline.get(1).map(String::as_str) == Some(SUBCOMMAND)
        && i.cmdline.get(2).map(String::as_str) == Some("--data-dir")
        && i.cmdline.get(3).map(Path::new) == Some(data_dir)
}

/// Send one request and read one answer; also the pid of the process that answered.
pub fn request(
    data_dir: &Path,
    msg: &serde_json::Value,
    timeout: Duration,
) -> io::Result<(serde_json::Value, i32)> {
    let s = UnixStream::connect(socket_path(data_dir))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let peer = sockopt::socket_peercred(s.as_fd())?;
    let mut w = &s;
    w.write_all(format!("{msg}\n").as_bytes())?;
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line)?;
    let v = serde_json::from_str(&line)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("resolver: {e}")))?;
    Ok((v, peer.pid.as_raw_nonzero().get()))
}

/// The running resolver of this data dir, proved: `Ok(None)` when there is none (a stale
/// record is forgotten); an error when a process holds the record's pid and start time
/// but is not provably it (nothing is signalled then).
pub fn prove(data_dir: &Path) -> io::Result<Option<(OwnedProcess, Record)>> {
    let Some(r) = read_record(data_dir) else {
        return Ok(None);
    };
    let owned = OwnedProcess::prove(r.pid, r.start_ticks, |i| is_resolver_of(i, data_dir))?;
    let Some(owned) = owned else {
        forget(data_dir);
        return Ok(None);
    };
    match request(
        data_dir,
        &serde_json::json!({"op": "hello"}),
        Duration::from_secs(2),
    ) {
        Ok((_, pid)) if pid == r.pid => Ok(Some((owned, r))),
        Ok((_, pid)) => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "the resolver's control socket is answered by process {pid}, not {}: refusing to use it",
                r.pid
            ),
        )),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("the resolver (process {}) does not answer: {e}", r.pid),
        )),
    }
}

/// Start time of this process, for its record.
pub fn own_start_ticks() -> io::Result<u64> {
    process::info(std::process::id() as i32)
        .map(|i| i.start_ticks)
        .ok_or_else(|| io::Error::other("cannot read /proc/self/stat"))
}

/// The host's resolver the sandboxes' resolver forwards to: `SMOLVM_EGRESS_DNS_UPSTREAM`
/// (given as `override_`, `IP` or `IP:PORT`), else the first `nameserver` of
/// /etc/resolv.conf, else 127.0.0.1:53.
pub fn upstream(override_: Option<&str>) -> Result<std::net::SocketAddr, String> {
    if let Some(v) = override_.filter(|v| !v.is_empty()) {
        if let Ok(a) = v.parse::<std::net::SocketAddr>() {
            return Ok(a);
        }
        return v
            .parse::<std::net::IpAddr>()
            .map(|ip| std::net::SocketAddr::new(ip, 53))
            .map_err(|_| {
                format!("SMOLVM_EGRESS_DNS_UPSTREAM must be an address or address:port, got '{v}'")
            });
    }
    let conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let first = conf.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next() == Some("nameserver"))
            .then(|| w.next()?.parse::<std::net::IpAddr>().ok())
            .flatten()
    });
    Ok(std::net::SocketAddr::new(
        first.unwrap_or(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST)),
        53,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_naming_another_process_never_gets_it_signalled() {
        let dir = tempfile::tempdir().unwrap();
        let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = sleeper.id() as i32;
        let ticks = process::info(pid).unwrap().start_ticks;
        // The pid and start time of a live process that is not the resolver: refused.
        write_record(
            dir.path(),
            &Record {
                pid,
                start_ticks: ticks,
                port: 5353,
            },
        )
        .unwrap();
        let e = prove(dir.path()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
        assert!(process::is_alive(pid));
        // Another start time (the pid was reused): not ours, and the record is stale.
        write_record(
            dir.path(),
            &Record {
                pid,
                start_ticks: ticks + 1,
                port: 5353,
            },
        )
        .unwrap();
        assert!(prove(dir.path()).unwrap().is_none());
        assert!(read_record(dir.path()).is_none());
        assert!(process::is_alive(pid));
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
    }

    #[test]
    fn upstream_is_validated() {
        assert_eq!(
            upstream(Some("10.0.0.1")).unwrap().to_string(),
            "10.0.0.1:53"
        );
        assert_eq!(
            upstream(Some("10.0.0.1:5353")).unwrap().to_string(),
            "10.0.0.1:5353"
        );
        assert!(upstream(Some("dns.example")).is_err());
    }

    #[test]
    fn the_resolver_is_recognised_by_its_command_line_and_data_dir() {
        let i = |args: &[&str]| ProcInfo {
            pid: 1,
            comm: "smolvm".into(),
            state: 'S',
            start_ticks: 1,
            cmdline: args.iter().map(|s| s.to_string()).collect(),
        };
        let d = Path::new("/var/lib/smolvm");
        assert!(is_resolver_of(
            &i(&[
                "/usr/bin/smolvm",
                SUBCOMMAND,
                "--data-dir",
                "/var/lib/smolvm"
            ]),
            d
        ));
        assert!(!is_resolver_of(
            &i(&["/usr/bin/smolvm", SUBCOMMAND, "--data-dir", "/tmp/other"]),
            d
        ));
        assert!(!is_resolver_of(&i(&["sleep", "100"]), d));
    }
}
