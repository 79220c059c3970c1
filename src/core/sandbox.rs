//! Sandbox inventory: what the state database says, checked against live processes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::error::{Error, Result};
use super::table::VmCol;
use super::vm::row_is_stale;
use super::vm::{VmBackend, VmId};
use crate::sys::fs::{disk_usage, HardLinks};
use crate::sys::paths::Paths;
use crate::sys::procfs;
use crate::sys::state::VmRecord;

/// SmolVM's VM id pattern, which a sandbox name must match. It lives in sys (which
/// validates every id it reads before it names a path) and is re-exported here on purpose:
/// the dashboard's start form checks names with it (`tests/architecture.rs`, `REEXPORTS`).
pub use crate::sys::process::is_vm_id;

use crate::sys::state::VmStatus;

pub use super::context::CORRUPT_DB_FIX;

/// One sandbox as `sandbox list` and the dashboard show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SandboxInfo {
    pub id: VmId,
    /// The stored status.
    pub status: VmStatus,
    /// Running/paused in the store but its process is gone or not this VM's.
    pub stale: bool,
    pub backend: Option<VmBackend>,
    pub preset: Option<String>,
    pub ip: Option<String>,
    pub ssh_port: Option<u16>,
    pub tap: Option<String>,
    pub pid: Option<i64>,
    pub created_at: String,
    /// The snapshot it was cloned from (a warm start's template included).
    pub cloned_from: Option<String>,
    /// SmolVM's warnings about its stored configuration (`sandbox list`'s per-row
    /// `warnings`): each shared folder missing on this host ([`missing_folder_warnings`]).
    #[serde(skip)]
    pub warnings: Vec<String>,
    /// What `smolvm sandbox ssh <id>` runs, as one shell line
    /// ([`ssh_command`](super::lifecycle::ssh_command)); `None` without a guest IP.
    #[serde(skip)]
    pub ssh_command: Option<String>,
}

/// SmolVM 0.0.36's warning for each folder a sandbox shares that is missing on this host
/// (its `_vm_warnings`, word for word). The path is only looked at (never opened),
/// through a link as SmolVM's `exists()` looks; the faces escape it as they show it.
pub fn missing_folder_warnings(vm: &VmRecord) -> Vec<String> {
    vm.config
        .shared_folders()
        .into_iter()
        .filter(|p| !p.exists())
        .map(|p| {
            format!(
                "Shared folder is missing on your machine: '{}'. Restore it, or run 'smolvm sandbox delete {}' to remove the sandbox.",
                p.display(),
                vm.id
            )
        })
        .collect()
}

impl SandboxInfo {
    pub fn of(vm: &VmRecord, paths: &Paths) -> Self {
        let net = vm.network.clone().unwrap_or_default();
        let ip = super::vm::guest_ip(vm);
        SandboxInfo {
            id: VmId::known(&vm.id),
            status: vm.status,
            stale: row_is_stale(vm, &paths.socket_dir),
            backend: vm.backend().map(VmBackend::parse),
            preset: vm.preset().map(str::to_string),
            ssh_command: ip
                .as_deref()
                .map(|ip| super::ssh::ssh_command(&paths.keys_dir, ip)),
            ip,
            ssh_port: net.ssh_host_port,
            tap: net.tap_device,
            pid: vm.pid,
            created_at: vm.created_at.clone(),
            cloned_from: vm.config.extras.cloned_from.clone(),
            warnings: missing_folder_warnings(vm),
        }
    }

    /// The row as SmolVM shows it, for every face: a running or paused row whose process
    /// is gone is `error` with no pid (SmolVM writes that back; showing it here changes
    /// nothing on disk, `smolvm cleanup` does). `stale` stays, to say why.
    pub fn reconciled(mut self) -> Self {
        if self.stale {
            self.status = VmStatus::Error;
            self.pid = None;
        }
        self
    }

    /// Whether it may be started ([`super::vm::startable`]).
    pub fn startable(&self) -> bool {
        super::vm::startable(self.status, self.stale)
    }

    /// The status a person should see: [`SandboxInfo::reconciled`]'s, `(stale)` after
    /// it when the process is gone (`error (stale)`).
    pub fn shown_status(&self) -> String {
        if self.stale {
            format!("{} (stale)", VmStatus::Error)
        } else {
            self.status.to_string()
        }
    }

    /// The text of a column that this row alone decides (`-` for nothing), for every face's
    /// tables; `None` for the columns live stats fill (uptime, CPU, memory, traffic).
    pub fn cell(&self, col: VmCol) -> Option<String> {
        let dash = || "-".to_string();
        Some(match col {
            VmCol::Id => self.id.to_string(),
            VmCol::Status => self.shown_status(),
            VmCol::Backend => self.backend.as_ref().map_or_else(dash, ToString::to_string),
            VmCol::Preset => self.preset.clone().unwrap_or_else(dash),
            VmCol::Ip => self.ip.clone().unwrap_or_else(dash),
            VmCol::Ssh => self.ssh_port.map_or_else(dash, |p| p.to_string()),
            // A stale row's process is gone: no pid, as [`SandboxInfo::reconciled`] says.
            VmCol::Pid => self
                .pid
                .filter(|_| !self.stale)
                .map_or_else(dash, |p| p.to_string()),
            VmCol::Created => self.created_at.clone(),
            VmCol::Template => self.cloned_from.clone().unwrap_or_else(dash),
            VmCol::Net | VmCol::Egress | VmCol::Uptime | VmCol::Cpu | VmCol::Rss => return None,
        })
    }
}

/// What `sandbox list` shows: every valid row, and a warning for each row skipped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listing {
    /// The database read (or, none existing yet, the one that would be) and where
    /// changes go: every face names it.
    pub source: super::context::StateSource,
    /// Changes would go to another database than the one read.
    pub split: Option<super::context::WorldSplit>,
    pub vms: Vec<SandboxInfo>,
    /// One line per skipped row (its table, escaped id and reason).
    pub warnings: Vec<String>,
}

/// Every sandbox in the first existing state database, oldest first. Read-only: changes
/// nothing on disk. Rows with invalid values are not listed but reported in `warnings`.
/// The snapshots' ids, read as `sandbox list` reads (nothing on disk changes).
pub fn snapshot_ids(paths: &Paths) -> Result<Vec<String>> {
    let Some(store) = super::context::open_for_reading(paths, None)? else {
        return Ok(Vec::new());
    };
    let (rows, _) = store
        .list_snapshots(None)
        .map_err(|e| Error::runtime(e.to_string()))?;
    Ok(rows.into_iter().map(|s| s.snapshot_id).collect())
}

/// What `sandbox list` reads: every valid row of the first existing state database (see
/// [`open_for_reading`](super::context::open_for_reading)), reconciled, and the warnings.
pub fn list(paths: &Paths, busy_timeout: Option<Duration>) -> Result<Listing> {
    let source = super::context::StateSource::of(paths);
    let Some(store) = super::context::open_for_reading(paths, busy_timeout)? else {
        return Ok(Listing {
            source,
            ..Listing::default()
        });
    };
    let rt = |e: crate::sys::state::StateError| Error::runtime(e.to_string());
    let rows = store.list_vms().map_err(rt)?;
    // Leases are read only for their warnings: what cleanup would skip, list reports.
    let leases = store.leases().map_err(rt)?;
    Ok(Listing {
        source,
        split: super::context::WorldSplit::of(paths),
        vms: rows.vms.iter().map(|r| SandboxInfo::of(r, paths)).collect(),
        warnings: rows
            .skipped
            .iter()
            .chain(&leases.skipped)
            .map(ToString::to_string)
            .collect(),
    })
}

/// What `/proc` says about a sandbox's VMM process now (the dashboard's VM table).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LiveFigures {
    /// CPU use since the previous sample of the same process; `None` on the first.
    pub cpu_pct: Option<f64>,
    pub rss_bytes: Option<u64>,
    pub uptime_secs: Option<u64>,
}

/// CPU% needs two samples: the previous CPU time of each PID.
#[derive(Default)]
pub struct CpuSampler {
    last: HashMap<i32, (u64, u64, Instant)>,
}

impl CpuSampler {
    /// The live figures of each sandbox, in order: none for one without a process or whose
    /// row is stale (its PID is not its VMM any more).
    pub fn figures(&mut self, vms: &[SandboxInfo]) -> Vec<LiveFigures> {
        let hz = procfs::ticks_per_second();
        let up = procfs::uptime_secs();
        vms.iter()
            .map(|info| {
                let st = info
                    .pid
                    .filter(|_| !info.stale)
                    .and_then(|p| i32::try_from(p).ok())
                    .and_then(|p| procfs::stats(p).map(|s| (p, s)));
                LiveFigures {
                    cpu_pct: st.and_then(|(p, s)| self.sample(p, &s, hz)),
                    rss_bytes: st.map(|(_, s)| s.rss_bytes),
                    uptime_secs: st.and_then(|(_, s)| {
                        up.map(|u| (u - s.start_ticks as f64 / hz as f64).max(0.0) as u64)
                    }),
                }
            })
            .collect()
    }

    fn sample(&mut self, pid: i32, st: &procfs::ProcStats, hz: u64) -> Option<f64> {
        let now = Instant::now();
        let prev = self.last.insert(pid, (st.start_ticks, st.cpu_ticks, now));
        let (start, ticks, at) = prev?;
        if start != st.start_ticks {
            return None; // a different process now has this PID
        }
        let wall = now.duration_since(at).as_secs_f64();
        (wall > 0.0).then(|| (st.cpu_ticks.saturating_sub(ticks)) as f64 / hz as f64 / wall * 100.0)
    }
}

/// Bytes used under `~/.smolvm` (image caches, sandbox disks, logs), counted like `du -s`:
/// hard links once, without following symlinks or leaving the file system.
pub fn smolvm_disk_usage(paths: &Paths) -> u64 {
    disk_usage(&paths.home.join(".smolvm"), &HardLinks::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(pid: Option<i64>, stale: bool) -> SandboxInfo {
        SandboxInfo {
            id: VmId::known("vm-1"),
            status: VmStatus::Running,
            stale,
            backend: None,
            preset: None,
            ip: None,
            ssh_port: None,
            tap: None,
            pid,
            created_at: String::new(),
            cloned_from: None,
            warnings: Vec::new(),
            ssh_command: None,
        }
    }

    #[test]
    fn live_figures_come_from_the_process_and_cpu_from_two_samples() {
        let me = i64::from(std::process::id());
        let vms = [
            info(Some(me), false),
            info(Some(me), true),
            info(None, false),
        ];
        let mut sampler = CpuSampler::default();
        let first = sampler.figures(&vms);
        assert!(first[0].rss_bytes.is_some_and(|b| b > 0), "{first:?}");
        assert!(first[0].uptime_secs.is_some());
        assert_eq!(first[0].cpu_pct, None, "one sample gives no CPU%");
        assert_eq!(
            first[1],
            LiveFigures::default(),
            "a stale row shows nothing"
        );
        assert_eq!(first[2], LiveFigures::default());
        std::thread::sleep(Duration::from_millis(20));
        let second = sampler.figures(&vms);
        assert!(second[0].cpu_pct.is_some_and(|c| c >= 0.0), "{second:?}");
    }

    #[test]
    fn disk_usage_counts_under_dot_smolvm_only() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        std::fs::create_dir_all(home.join(".smolvm")).unwrap();
        std::fs::write(home.join(".smolvm/a"), vec![1u8; 64 * 1024]).unwrap();
        std::fs::write(home.join("outside"), vec![1u8; 256 * 1024]).unwrap();
        let env = crate::sys::env::Env::from_vars([("HOME", home.as_os_str())], 1000);
        let used = smolvm_disk_usage(&Paths::resolve(&env, None));
        assert!((64 * 1024..256 * 1024).contains(&used), "{used}");
    }
}
