//! Typed rows of the state database, with SmolVM's JSON column shapes.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `vms.status`: SmolVM's `created|running|paused|stopped|error`; anything else is kept
/// verbatim so a newer SmolVM's rows still list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VmStatus {
    Created,
    Running,
    Paused,
    Stopped,
    Error,
    Other(String),
}

impl VmStatus {
    pub fn parse(s: &str) -> Self {
        match s {
            "created" => VmStatus::Created,
            "running" => VmStatus::Running,
            "paused" => VmStatus::Paused,
            "stopped" => VmStatus::Stopped,
            "error" => VmStatus::Error,
            other => VmStatus::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            VmStatus::Created => "created",
            VmStatus::Running => "running",
            VmStatus::Paused => "paused",
            VmStatus::Stopped => "stopped",
            VmStatus::Error => "error",
            VmStatus::Other(s) => s,
        }
    }

    /// Running or paused: a VMM process should exist.
    pub fn is_active(&self) -> bool {
        matches!(self, VmStatus::Running | VmStatus::Paused)
    }
}

impl std::fmt::Display for VmStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `vms.network`: SmolVM's NetworkConfig JSON. Unknown keys are kept and written back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Network {
    #[serde(default)]
    pub guest_ip: Option<String>,
    #[serde(default)]
    pub gateway_ip: Option<String>,
    #[serde(default)]
    pub netmask: Option<String>,
    #[serde(default)]
    pub tap_device: Option<String>,
    #[serde(default)]
    pub guest_mac: Option<String>,
    #[serde(default)]
    pub ssh_host_port: Option<u16>,
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub bridge: Option<String>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// One `vms` row. `config` is SmolVM's VMConfig JSON, kept whole so nothing is lost.
#[derive(Debug, Clone, PartialEq)]
pub struct VmRecord {
    pub id: String,
    pub status: VmStatus,
    pub config: serde_json::Value,
    pub network: Option<Network>,
    pub pid: Option<i64>,
    pub socket_path: Option<String>,
    pub display: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl VmRecord {
    /// A new row with empty config (tests and adoption of live VMMs fill it in).
    pub fn new(id: impl Into<String>, status: VmStatus) -> Self {
        VmRecord {
            id: id.into(),
            status,
            config: serde_json::json!({}),
            network: None,
            pid: None,
            socket_path: None,
            display: None,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    /// Read a row by column name, tolerating columns an older SmolVM lacks (`display`).
    pub fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        let opt_str = |name: &str| -> rusqlite::Result<Option<String>> {
            match r.get::<_, Option<String>>(name) {
                Ok(v) => Ok(v),
                Err(rusqlite::Error::InvalidColumnName(_)) => Ok(None),
                Err(e) => Err(e),
            }
        };
        let config: String = r.get("config")?;
        Ok(VmRecord {
            id: r.get("id")?,
            status: VmStatus::parse(&r.get::<_, String>("status")?),
            config: serde_json::from_str(&config).unwrap_or(serde_json::Value::String(config)),
            network: opt_str("network")?.and_then(|n| serde_json::from_str(&n).ok()),
            pid: r.get("pid")?,
            socket_path: opt_str("socket_path")?,
            display: opt_str("display")?,
            created_at: r.get("created_at")?,
            updated_at: r.get("updated_at")?,
        })
    }

    fn config_str(&self, key: &str) -> Option<&str> {
        self.config.get(key).and_then(|v| v.as_str())
    }

    /// `firecracker`, `qemu`, …: the config's `backend`, else guessed from the socket name.
    pub fn backend(&self) -> Option<&str> {
        self.config_str("backend").or_else(|| {
            let sock = self.socket_path.as_deref()?;
            let name = sock.rsplit('/').next()?;
            if name.starts_with("fc-") {
                Some("firecracker")
            } else if name.starts_with("qmp-") {
                Some("qemu")
            } else {
                None
            }
        })
    }

    pub fn preset(&self) -> Option<&str> {
        self.config_str("preset")
    }

    /// Host files the VM's configuration points at: kernel, rootfs, initrd, extra drives.
    pub fn host_files(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = ["kernel_path", "rootfs_path", "initrd_path"]
            .iter()
            .filter_map(|k| self.config_str(k))
            .map(PathBuf::from)
            .collect();
        if let Some(drives) = self.config.get("extra_drives").and_then(|d| d.as_array()) {
            out.extend(drives.iter().filter_map(|d| {
                d.as_str()
                    .or_else(|| d.get("path").and_then(|p| p.as_str()))
                    .map(PathBuf::from)
            }));
        }
        out
    }
}

/// A TAP reservation (`tap_allocations`, SmolVM's bridge mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapAllocation {
    pub tap_device: String,
    pub mode: String,
    pub bridge_name: Option<String>,
}

/// Every VM's leases, by VM id.
#[derive(Debug, Clone, Default)]
pub struct Leases {
    /// `ip_leases`: (ip, tap device).
    pub ips: HashMap<String, (String, String)>,
    /// `ssh_forwards`: (host port, guest port).
    pub ssh: HashMap<String, (u16, u16)>,
    /// `tap_allocations`.
    pub taps: HashMap<String, TapAllocation>,
}
