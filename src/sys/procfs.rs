//! Reading `/proc`: which live processes hold files open.

use std::path::{Path, PathBuf};

/// A live process, as `/proc` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: i32,
    pub comm: String,
}

/// For each of `dirs` (canonical paths), the first live process other than this one whose
/// executable or an open file descriptor lies under it. Processes whose `/proc` entries we
/// may not read (other users', when not root) are invisible here.
pub fn holders_under(dirs: &[PathBuf]) -> Vec<Option<Holder>> {
    let mut found: Vec<Option<Holder>> = vec![None; dirs.len()];
    if dirs.is_empty() {
        return found;
    }
    let me = std::process::id() as i32;
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return found;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let base = p.path();
        let mut targets: Vec<PathBuf> = Vec::new();
        if let Ok(t) = std::fs::read_link(base.join("exe")) {
            targets.push(t);
        }
        if let Ok(fds) = std::fs::read_dir(base.join("fd")) {
            targets.extend(
                fds.flatten()
                    .filter_map(|fd| std::fs::read_link(fd.path()).ok()),
            );
        }
        for t in &targets {
            let t = strip_deleted(t);
            for (i, d) in dirs.iter().enumerate() {
                if found[i].is_none() && t.starts_with(d) {
                    found[i] = Some(Holder {
                        pid,
                        comm: comm(pid),
                    });
                }
            }
        }
        if found.iter().all(Option::is_some) {
            break;
        }
    }
    found
}

fn strip_deleted(p: &Path) -> PathBuf {
    let s = p.as_os_str().to_string_lossy();
    match s.strip_suffix(" (deleted)") {
        Some(rest) => PathBuf::from(rest),
        None => p.to_path_buf(),
    }
}

/// The process's short name (`/proc/<pid>/comm`), or `?` if it has gone.
pub fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim_end().to_string())
        .unwrap_or_else(|_| "?".to_string())
}

/// TAP/TUN interfaces held open by live processes of this network namespace: interface
/// name → PIDs (from the `iff:` line of `/proc/<pid>/fdinfo/<fd>` for fds on
/// `/dev/net/tun`). A TAP in this map has a VMM attached and is not an orphan, whichever
/// database knows about it. Interface names are per namespace, so a process in another
/// network namespace holding its own `tap2` says nothing about ours.
pub fn tun_attachments() -> std::collections::HashMap<String, Vec<i32>> {
    let mut out: std::collections::HashMap<String, Vec<i32>> = Default::default();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    let here = std::fs::read_link("/proc/self/ns/net").ok();
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        // A process whose namespace cannot be read counts as ours (the safe side).
        let ns = std::fs::read_link(p.path().join("ns/net")).ok();
        if here.is_some() && ns.is_some() && ns != here {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).ok().as_deref() != Some(Path::new("/dev/net/tun")) {
                continue;
            }
            let info = std::fs::read_to_string(p.path().join("fdinfo").join(fd.file_name()))
                .unwrap_or_default();
            if let Some(name) = info
                .lines()
                .find_map(|l| l.strip_prefix("iff:"))
                .map(str::trim)
            {
                out.entry(name.to_string()).or_default().push(pid);
            }
        }
    }
    out
}

/// CPU time (user + system, in clock ticks), resident memory and start time of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStats {
    pub cpu_ticks: u64,
    pub rss_bytes: u64,
    pub start_ticks: u64,
}

/// Read `/proc/<pid>/stat`; `None` if the process is gone.
pub fn stats(pid: i32) -> Option<ProcStats> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest: Vec<&str> = stat
        .get(stat.rfind(')')? + 2..)?
        .split_whitespace()
        .collect();
    let num = |i: usize| rest.get(i).and_then(|v| v.parse::<u64>().ok());
    // Fields after the command: state is index 0, utime 11, stime 12, starttime 19, rss 21.
    Some(ProcStats {
        cpu_ticks: num(11)? + num(12)?,
        start_ticks: num(19)?,
        rss_bytes: num(21)?.saturating_mul(page_size()),
    })
}

/// Whom a process runs as and how it is confined (`/proc/<pid>/status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confinement {
    /// The effective uid and gid.
    pub uid: u32,
    pub gid: u32,
    /// Under a seccomp filter (`Seccomp: 2`).
    pub seccomp: bool,
}

/// Read `/proc/<pid>/status`; `None` if the process is gone.
pub fn confinement(pid: i32) -> Option<Confinement> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |k: &str| s.lines().find_map(|l| l.strip_prefix(k)).map(str::trim);
    Some(Confinement {
        uid: field("Uid:")?.split_whitespace().nth(1)?.parse().ok()?,
        gid: field("Gid:")?.split_whitespace().nth(1)?.parse().ok()?,
        seccomp: field("Seccomp:")? == "2",
    })
}

/// Every user and group id some process runs with (real, effective, saved and file-system
/// ids, from `/proc/*/status`).
pub fn ids_in_use() -> std::collections::HashSet<u32> {
    let mut ids = std::collections::HashSet::new();
    for pid in super::process::all_pids() {
        let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        for l in s.lines() {
            if let Some(v) = l.strip_prefix("Uid:").or_else(|| l.strip_prefix("Gid:")) {
                ids.extend(v.split_whitespace().filter_map(|n| n.parse::<u32>().ok()));
            }
        }
    }
    ids
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
pub fn ticks_per_second() -> u64 {
    match rustix::param::clock_ticks_per_second() {
        0 => 100,
        t => t,
    }
}

fn page_size() -> u64 {
    rustix::param::page_size() as u64
}

/// Seconds since boot (`/proc/uptime`).
pub fn uptime_secs() -> Option<f64> {
    std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_child_holding_a_file_open() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().canonicalize().unwrap().join("held");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("f"), b"x").unwrap();
        let other = t.path().canonicalize().unwrap().join("free");
        std::fs::create_dir(&other).unwrap();
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg("exec 3<\"$1\"; echo ready; exec sleep 30")
            .arg("sh")
            .arg(dir.join("f"))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        let found = holders_under(&[dir.clone(), other]);
        child.kill().unwrap();
        child.wait().unwrap();
        let h = found[0].clone().expect("holder found");
        assert_eq!(h.pid, child.id() as i32);
        assert!(found[1].is_none());
    }

    #[test]
    fn stats_of_this_process() {
        let s = stats(std::process::id() as i32).unwrap();
        assert!(s.rss_bytes > 0);
        let up = uptime_secs().unwrap();
        assert!((s.start_ticks as f64) / (ticks_per_second() as f64) <= up + 1.0);
        assert!(stats(i32::MAX).is_none());
    }
}
