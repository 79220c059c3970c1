//! Sandbox inventory: what the state database says, checked against live processes.

use std::time::Duration;

use super::cleanup::row_is_stale;
use super::error::{Error, Result};
use crate::sys::paths::{Paths, STATE_DB_FILE};
use crate::sys::state::{OpenMode, StateStore, VmRecord, DEFAULT_BUSY_TIMEOUT};

/// One sandbox as `sandbox list` and the dashboard show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SandboxInfo {
    pub id: String,
    /// The stored status.
    pub status: String,
    /// Running/paused in the store but its process is gone or not this VM's.
    pub stale: bool,
    pub backend: Option<String>,
    pub preset: Option<String>,
    pub ip: Option<String>,
    pub ssh_port: Option<u16>,
    pub tap: Option<String>,
    pub pid: Option<i64>,
    pub created_at: String,
    /// What `smolvm sandbox ssh <id>` runs, as one shell line
    /// ([`ssh_command`](super::lifecycle::ssh_command)); `None` without a guest IP.
    #[serde(skip)]
    pub ssh_command: Option<String>,
}

impl SandboxInfo {
    pub fn of(vm: &VmRecord, paths: &Paths) -> Self {
        let net = vm.network.clone().unwrap_or_default();
        SandboxInfo {
            id: vm.id.clone(),
            status: vm.status.to_string(),
            stale: row_is_stale(vm, &paths.socket_dir),
            backend: vm.backend().map(str::to_string),
            preset: vm.preset().map(str::to_string),
            ssh_command: net
                .guest_ip
                .as_deref()
                .map(|ip| super::lifecycle::ssh_command(&paths.keys_dir, ip)),
            ip: net.guest_ip,
            ssh_port: net.ssh_host_port,
            tap: net.tap_device,
            pid: vm.pid,
            created_at: vm.created_at.clone(),
        }
    }

    /// The status a person should see: `error (stale)` style hints for dead processes.
    pub fn shown_status(&self) -> String {
        if self.stale {
            format!("{} (stale)", self.status)
        } else {
            self.status.clone()
        }
    }
}

/// What `sandbox list` shows: every valid row, and a warning for each row skipped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listing {
    pub vms: Vec<SandboxInfo>,
    /// One line per skipped row (its table, escaped id and reason).
    pub warnings: Vec<String>,
}

/// Every sandbox in the first existing state database, oldest first. Read-only: changes
/// nothing on disk. Rows with invalid values are not listed but reported in `warnings`.
pub fn list(paths: &Paths, busy_timeout: Option<Duration>) -> Result<Listing> {
    let Some(db) = paths
        .data_dir_candidates()
        .into_iter()
        .map(|d| d.join(STATE_DB_FILE))
        .find(|p| p.exists())
    else {
        return Ok(Listing::default());
    };
    let (store, corrupt) = StateStore::open(
        &db,
        OpenMode::DryRun,
        busy_timeout.unwrap_or(DEFAULT_BUSY_TIMEOUT),
    )
    .map_err(|e| Error::runtime(e.to_string()))?;
    if let Some(c) = corrupt {
        return Err(Error::runtime(format!(
            "state database {} is corrupt ({}); run 'smolvm cleanup' to move it aside and rebuild it",
            c.path.display(),
            c.reason
        )));
    }
    let rt = |e: crate::sys::state::StateError| Error::runtime(e.to_string());
    let rows = store.list_vms().map_err(rt)?;
    // Leases are read only for their warnings: what cleanup would skip, list reports.
    let leases = store.leases().map_err(rt)?;
    Ok(Listing {
        vms: rows.vms.iter().map(|r| SandboxInfo::of(r, paths)).collect(),
        warnings: rows
            .skipped
            .iter()
            .chain(&leases.skipped)
            .map(ToString::to_string)
            .collect(),
    })
}
