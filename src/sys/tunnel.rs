//! SSH local forwards smolvm runs as processes of its own (`openclaw open-ui`: a service
//! on the guest's loopback, which no nftables rule can reach): `ssh -N -L
//! 127.0.0.1:HOST:127.0.0.1:GUEST` in a session of its own, outliving the command that
//! started it. Each is recorded in `<data dir>/tunnels/<vm id>.json` (pid, start time,
//! ports; a place SmolVM never reads) and is signalled only through a pidfd proved to be
//! that process: the recorded start time, an `ssh` binary, and its command line carrying
//! exactly the recorded `-L` forward ([`prove`]).

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::process::{self, OwnedProcess, ProcInfo};

/// The records' directory inside the data dir.
pub const DIR: &str = "tunnels";
const LOCK: &str = ".lock";

/// One recorded forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub host_port: u16,
    pub guest_port: u16,
    pub pid: i32,
    pub start_ticks: u64,
}

/// `127.0.0.1:HOST:127.0.0.1:GUEST`, the `-L` value of a forward (host side bound on
/// 127.0.0.1 only, guest side the guest's own loopback).
pub fn forward_spec(host_port: u16, guest_port: u16) -> String {
    format!("127.0.0.1:{host_port}:127.0.0.1:{guest_port}")
}

fn record_path(data_dir: &Path, vm_id: &str) -> Option<PathBuf> {
    process::is_vm_id(vm_id).then(|| data_dir.join(DIR).join(format!("{vm_id}.json")))
}

/// The records of `vm_id` (none when there is no valid record file: a link or anything
/// but a regular file is not read).
pub fn read(data_dir: &Path, vm_id: &str) -> Vec<Record> {
    let Some(p) = record_path(data_dir, vm_id) else {
        return Vec::new();
    };
    super::open::read_to_string(&p)
        .ok()
        .and_then(|t| serde_json::from_str::<Vec<Record>>(&t).ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.pid > 0 && r.host_port > 0 && r.guest_port > 0)
        .collect()
}

/// Replace the records of `vm_id` atomically (0600); none removes the file.
pub fn write(data_dir: &Path, vm_id: &str, records: &[Record]) -> io::Result<()> {
    let p = record_path(data_dir, vm_id)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "invalid VM id"))?;
    if records.is_empty() {
        return match super::fs::remove_generated_file(&p) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        };
    }
    std::fs::create_dir_all(data_dir.join(DIR))?;
    let text = serde_json::to_vec(records).map_err(io::Error::other)?;
    super::open::write_atomic(&p, &text, 0o600)
}

/// The VM ids that have a record file.
pub fn recorded_ids(data_dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(data_dir.join(DIR)) else {
        return Vec::new();
    };
    let mut ids: Vec<String> = rd
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_str()?.strip_suffix(".json")?.to_string();
            process::is_vm_id(&n).then_some(n)
        })
        .collect();
    ids.sort();
    ids
}

/// The records' lock (exclusive, held while it lives): one read-modify-write at a time.
pub fn lock(data_dir: &Path) -> io::Result<nix::fcntl::Flock<std::fs::File>> {
    std::fs::create_dir_all(data_dir.join(DIR))?;
    let f = super::open::open_lock(&data_dir.join(DIR).join(LOCK), 0o600)?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| io::Error::from(e))
}

/// Whether `/proc` shows the forward `host:guest` of an `ssh` binary.
pub fn is_tunnel(i: &ProcInfo, host_port: u16, guest_port: u16) -> bool {
    let exe = std::fs::read_link(format!("/proc/{}/exe", i.pid)).ok();
    let name = exe
        .as_deref()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| i.comm.clone());
    let spec = forward_spec(host_port, guest_port);
    name == "ssh"
        && i.cmdline.iter().any(|a| a == "-N")
        && i.cmdline.windows(2).any(|w| w[0] == "-L" && w[1] == spec)
}

/// The live process of record `r`, proved ([`is_tunnel`] and its start time): `Ok(None)`
/// when it is gone (or its pid is another process's now).
pub fn prove(r: &Record) -> io::Result<Option<OwnedProcess>> {
    OwnedProcess::prove(r.pid, r.start_ticks, |i| {
        is_tunnel(i, r.host_port, r.guest_port)
    })
}

/// End the proved process: SIGTERM, then SIGKILL after `patience`. True when it is gone.
pub fn end(owned: &OwnedProcess, patience: Duration) -> bool {
    let _ = owned.signal(libc::SIGTERM);
    let t = Instant::now();
    while t.elapsed() < patience {
        if owned.has_exited() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = owned.signal(libc::SIGKILL);
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(2) {
        if owned.has_exited() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A started forward: the ssh child until it listens.
pub struct Started {
    child: std::process::Child,
    pub pid: i32,
}

/// Start `argv` (an `ssh -N -L …`) in a session of its own, stdin and stdout closed, its
/// stderr kept for [`Started::wait_listening`]'s error.
pub fn spawn(argv: &[String]) -> io::Result<Started> {
    let (first, rest) = argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no program to run"))?;
    let mut c = Command::new(first);
    c.args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        c.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = c.spawn()?;
    let pid = child.id() as i32;
    Ok(Started { child, pid })
}

impl Started {
    /// Wait until the process listens on `127.0.0.1:port` (its own socket) within
    /// `timeout`: its start time then. It exiting first is an error with its stderr; at the
    /// timeout it is killed.
    pub fn wait_listening(mut self, port: u16, timeout: Duration) -> io::Result<u64> {
        let t = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait()? {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                let first = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                return Err(io::Error::other(format!(
                    "the SSH forward exited ({st}) before it listened{}",
                    if first.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", first.trim())
                    }
                )));
            }
            if listens(self.pid, port) {
                let ticks = process::info(self.pid)
                    .map(|i| i.start_ticks)
                    .ok_or_else(|| io::Error::other("the SSH forward vanished"))?;
                // Reaped by a thread of ours if it ends while this process lives (the CLI
                // exits first: then init reaps it).
                let mut child = self.child;
                drop(child.stderr.take());
                std::thread::spawn(move || child.wait());
                return Ok(ticks);
            }
            if t.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the SSH forward did not listen within {} s",
                        timeout.as_secs()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `pid` holds a socket listening on `127.0.0.1:port`.
pub fn listens(pid: i32, port: u16) -> bool {
    use super::net::listen;
    let inodes: Vec<u64> = listen::tcp_listeners()
        .into_iter()
        .filter(|l| l.port == port && l.addr == std::net::Ipv4Addr::LOCALHOST)
        .map(|l| l.inode)
        .collect();
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|t| {
            let t = t.to_string_lossy();
            inodes.iter().any(|i| t == format!("socket:[{i}]"))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_an_empty_list_removes_the_file() {
        let d = tempfile::tempdir().unwrap();
        let r = Record {
            host_port: 40000,
            guest_port: 18789,
            pid: 42,
            start_ticks: 7,
        };
        write(d.path(), "vm-a", &[r]).unwrap();
        assert_eq!(read(d.path(), "vm-a"), [r]);
        assert_eq!(recorded_ids(d.path()), ["vm-a"]);
        write(d.path(), "vm-a", &[]).unwrap();
        assert!(read(d.path(), "vm-a").is_empty());
        assert!(recorded_ids(d.path()).is_empty());
        assert!(write(d.path(), "../x", &[r]).is_err());
        assert!(read(d.path(), "../x").is_empty());
    }

    #[test]
    fn only_an_ssh_with_the_recorded_forward_is_a_tunnel() {
        let me = process::info(std::process::id() as i32).unwrap();
        assert!(!is_tunnel(&me, 1, 2));
        let mut fake = me.clone();
        fake.pid = i32::MAX; // no /proc entry: comm decides
        fake.comm = "ssh".into();
        fake.cmdline = ["ssh", "-N", "-L", "127.0.0.1:1:127.0.0.1:2", "root@x"]
            .map(String::from)
            .to_vec();
        assert!(is_tunnel(&fake, 1, 2));
        assert!(!is_tunnel(&fake, 1, 3));
        fake.cmdline.retain(|a| a != "-N");
        assert!(!is_tunnel(&fake, 1, 2));
    }
}
