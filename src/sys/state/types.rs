//! Typed rows of the state database, with SmolVM's JSON column shapes, and the rules a
//! row must pass before it is returned as a record.
//!
//! Decoding is per row and tolerant: a row with a value SmolVM never writes (a `pid` of
//! `'abc'`, an id that is a path, a device that is not one smolvm creates, …) is not
//! returned as a record at all but as a [`SkippedRow`] with the reason, so nothing ever
//! acts on it, and the other rows still read. Device names that may come out of the
//! reader are only `tap<N>`, `svmb<8 hex digits>` and (in `vms.network` only) `usernet`;
//! a row naming any other device (`eth0`, `docker0`, …) is skipped whole, not trimmed.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Component, Path, PathBuf};

use rusqlite::types::ValueRef;
use serde::{Deserialize, Serialize};

use super::config::VmConfig;
use crate::sys::process::is_vm_id;

text_enum! {
    /// `vms.status`: SmolVM's `created|running|paused|stopped|error` (a row with any other
    /// value is skipped). Serialized as those words.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum VmStatus {
        Created = "created",
        Running = "running",
        Paused = "paused",
        Stopped = "stopped",
        Error = "error",
    }
}

impl VmStatus {
    /// Running or paused: a VMM process should exist.
    pub fn is_active(&self) -> bool {
        matches!(self, VmStatus::Running | VmStatus::Paused)
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

/// One `vms` row. `config` is SmolVM's VMConfig, typed (every key kept, so nothing is
/// lost), with smolvm's extras from `smolvm_vm_config`.
#[derive(Debug, Clone, PartialEq)]
pub struct VmRecord {
    pub id: String,
    pub status: VmStatus,
    pub config: VmConfig,
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
            config: VmConfig::default(),
            network: None,
            pid: None,
            socket_path: None,
            display: None,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    /// `firecracker`, `qemu`, …: the config's `backend`, else guessed from the socket name.
    pub fn backend(&self) -> Option<&str> {
        self.config.backend.as_deref().or_else(|| {
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
        self.config.preset.as_deref()
    }

    /// Host files the VM's configuration points at: kernel, rootfs, initrd, extra drives.
    pub fn host_files(&self) -> Vec<PathBuf> {
        self.config.host_files()
    }
}

/// A TAP reservation (`tap_allocations`, SmolVM's bridge mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapAllocation {
    pub tap_device: String,
    pub mode: String,
    pub bridge_name: Option<String>,
}

/// Every VM's leases, by VM id. Only rows that pass validation; the others are in
/// `skipped`.
#[derive(Debug, Clone, Default)]
pub struct Leases {
    /// `ip_leases`: (IPv4 address, `tap<N>` or `svmb<hex>` device).
    pub ips: HashMap<String, (String, String)>,
    /// `ip_leases` of VMs still being created (SmolVM leases the IP with tap `pending`
    /// before it knows the TAP name; no host resource exists yet): VM id → IP.
    pub pending_ips: HashMap<String, String>,
    /// `ssh_forwards`: (host port, guest port), both in 1..=65535.
    pub ssh: HashMap<String, (u16, u16)>,
    /// `tap_allocations` (`tap<N>` or `svmb<hex>` devices, mode `nat` or `bridge`).
    pub taps: HashMap<String, TapAllocation>,
    /// Lease rows with invalid values: reported, never acted on.
    pub skipped: Vec<SkippedRow>,
}

/// Every valid `vms` row (oldest first) and the rows that were skipped.
#[derive(Debug, Clone, Default)]
pub struct VmRows {
    pub vms: Vec<VmRecord>,
    pub skipped: Vec<SkippedRow>,
}

/// A row the reader did not return because a value in it is invalid. Nothing acts on it;
/// callers show it (`Display` is the warning text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRow {
    /// `vms`, `ip_leases`, `ssh_forwards` or `tap_allocations`.
    pub table: &'static str,
    /// The row's VM id (`vms.id`, else `vm_id`) escaped and quoted for display
    /// (`"../victim/precious"`, `"vm\0x"`, `a 3-byte blob`).
    pub id: String,
    /// The raw id when it is a valid VM id: the row belongs to that VM, whose resources a
    /// caller must then not treat as unowned.
    pub vm_id: Option<String>,
    pub reason: String,
}

impl std::fmt::Display for SkippedRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "state database: skipped {} row {}: {} (it is left alone; fix or delete it)",
            self.table, self.id, self.reason
        )
    }
}

/// A SQLite value as a person should see it in a message: text quoted and escaped (and
/// cut at 64 characters), numbers as they are, blobs by size.
pub fn describe(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(t) => {
            let s = String::from_utf8_lossy(t);
            let mut short: String = s.chars().take(64).collect();
            if short.len() < s.len() {
                short.push('…');
            }
            format!("{short:?}")
        }
        ValueRef::Blob(b) => format!("a {}-byte blob", b.len()),
    }
}

/// Linux interface-name rules: 1..=15 bytes, not `.`/`..`, no `/`, `:`, whitespace or NUL.
pub fn is_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace())
}

/// A TAP smolvm creates: `tap<N>` (NAT, N a pool index: 0..=65535, no leading zero) or
/// `svmb<8 lowercase hex>` (bridge).
pub fn is_smolvm_tap(name: &str) -> bool {
    is_ifname(name)
        && (crate::sys::net::is_nat_tap_name(name) || crate::sys::net::is_bridge_tap_name(name))
}

/// A `vms.network.tap_device` smolvm could own: a TAP it creates, or `usernet` (user-mode
/// networking, no host device).
pub fn is_smolvm_device(name: &str) -> bool {
    name == "usernet" || is_smolvm_tap(name)
}

fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// An absolute path with no `.`/`..` components and no NUL.
fn is_clean_absolute(p: &str) -> bool {
    !p.contains('\0')
        && Path::new(p).is_absolute()
        && Path::new(p)
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
        && !p.split('/').skip(1).any(|c| c == "." || c == "..")
}

/// A `vms` row: the record, or why it was skipped. `Err` only for SQLite failures.
pub(super) fn decode_vm(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<VmRecord, SkippedRow>> {
    let id_value = column(r, "id")?.unwrap_or(ValueRef::Null);
    let skip = |reason: String| SkippedRow {
        table: "vms",
        id: describe(id_value),
        vm_id: text(id_value).filter(|s| is_vm_id(s)).map(str::to_string),
        reason,
    };
    Ok(check_vm(r, id_value).map_err(skip))
}

fn check_vm(r: &rusqlite::Row<'_>, id_value: ValueRef<'_>) -> Result<VmRecord, String> {
    let get = |name: &str| column(r, name).map_err(|e| format!("{name}: {e}"));
    let id = text(id_value)
        .filter(|s| is_vm_id(s))
        .ok_or_else(|| format!("id {} is not a valid VM id", describe(id_value)))?
        .to_string();
    let status_value = get("status")?.unwrap_or(ValueRef::Null);
    let status = text(status_value)
        .and_then(VmStatus::parse)
        .ok_or_else(|| {
            format!(
                "status {} is not one of created, running, paused, stopped, error",
                describe(status_value)
            )
        })?;
    let config_value = get("config")?.unwrap_or(ValueRef::Null);
    let config_text = text(config_value)
        .ok_or_else(|| format!("config {} is not text", describe(config_value)))?;
    let config =
        VmConfig::from_json(&serde_json::from_str(config_text).unwrap_or(serde_json::Value::Null));
    let network = match get("network")? {
        None | Some(ValueRef::Null) => None,
        Some(v) => {
            let t = text(v).ok_or_else(|| format!("network {} is not text", describe(v)))?;
            let n: Option<Network> = serde_json::from_str(t)
                .map_err(|e| format!("network is not a NetworkConfig ({e})"))?;
            if let Some(n) = &n {
                check_network(n)?;
            }
            n
        }
    };
    let pid = match get("pid")? {
        None | Some(ValueRef::Null) => None,
        Some(ValueRef::Integer(p)) if p > 0 && p <= i64::from(i32::MAX) => Some(p),
        Some(v) => return Err(format!("pid {} is not a process id", describe(v))),
    };
    let socket_path = optional_text(get("socket_path")?, "socket_path")?;
    if let Some(p) = &socket_path {
        if !is_clean_absolute(p) {
            return Err(format!(
                "socket_path {p:?} is not an absolute path without '.' or '..'"
            ));
        }
    }
    let display = optional_text(get("display")?, "display")?;
    let stamp = |name: &str| -> Result<String, String> {
        let v = get(name)?.unwrap_or(ValueRef::Null);
        text(v)
            .map(str::to_string)
            .ok_or_else(|| format!("{name} {} is not text", describe(v)))
    };
    Ok(VmRecord {
        id,
        status,
        config,
        network,
        pid,
        socket_path,
        display,
        created_at: stamp("created_at")?,
        updated_at: stamp("updated_at")?,
    })
}

fn check_network(n: &Network) -> Result<(), String> {
    if let Some(t) = &n.tap_device {
        if !is_smolvm_device(t) {
            return Err(format!(
                "network.tap_device {t:?} is not a device smolvm creates (tap<N>, svmb<8 hex digits>, usernet)"
            ));
        }
    }
    for (key, v) in [
        ("guest_ip", &n.guest_ip),
        ("gateway_ip", &n.gateway_ip),
        ("netmask", &n.netmask),
    ] {
        if let Some(v) = v {
            if v.parse::<Ipv4Addr>().is_err() {
                return Err(format!("network.{key} {v:?} is not an IPv4 address"));
            }
        }
    }
    if n.ssh_host_port == Some(0) {
        return Err("network.ssh_host_port 0 is not a port".into());
    }
    if let Some(m) = &n.guest_mac {
        if !is_mac(m) {
            return Err(format!("network.guest_mac {m:?} is not a MAC address"));
        }
    }
    if let Some(b) = &n.bridge {
        if !is_ifname(b) {
            return Err(format!("network.bridge {b:?} is not an interface name"));
        }
    }
    Ok(())
}

/// Column `name` of the row; `None` when the table has no such column (an older SmolVM).
pub(super) fn column<'a>(
    r: &'a rusqlite::Row<'_>,
    name: &str,
) -> rusqlite::Result<Option<ValueRef<'a>>> {
    match r.get_ref(name) {
        Ok(v) => Ok(Some(v)),
        Err(rusqlite::Error::InvalidColumnName(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The value as UTF-8 text, only if it is stored as text.
pub(super) fn text(v: ValueRef<'_>) -> Option<&str> {
    match v {
        ValueRef::Text(t) => std::str::from_utf8(t).ok(),
        _ => None,
    }
}

fn optional_text(v: Option<ValueRef<'_>>, name: &str) -> Result<Option<String>, String> {
    match v {
        None | Some(ValueRef::Null) => Ok(None),
        Some(v) => text(v)
            .map(|s| Some(s.to_string()))
            .ok_or_else(|| format!("{name} {} is not text", describe(v))),
    }
}

/// A lease row's VM id, or the skip record for it.
fn lease_vm(table: &'static str, v: ValueRef<'_>) -> Result<String, SkippedRow> {
    text(v)
        .filter(|s| is_vm_id(s))
        .map(str::to_string)
        .ok_or_else(|| SkippedRow {
            table,
            id: describe(v),
            vm_id: None,
            reason: format!("vm_id {} is not a valid VM id", describe(v)),
        })
}

fn port(v: ValueRef<'_>) -> Option<u16> {
    match v {
        ValueRef::Integer(p) => u16::try_from(p).ok().filter(|p| *p > 0),
        _ => None,
    }
}

/// An `ip_leases` row (`vm_id, ip, tap_device`): `Ok((vm, ip, Some(tap)))`, or `None` for
/// SmolVM's placeholder tap `pending`.
pub(super) type IpLease = (String, String, Option<String>);

pub(super) fn decode_ip_lease(
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<Result<IpLease, SkippedRow>> {
    let (vm, ip, tap) = (r.get_ref(0)?, r.get_ref(1)?, r.get_ref(2)?);
    Ok((|| {
        let id = lease_vm("ip_leases", vm)?;
        let skip = |reason: String| SkippedRow {
            table: "ip_leases",
            id: describe(vm),
            vm_id: Some(id.clone()),
            reason,
        };
        let ip = text(ip)
            .filter(|s| s.parse::<Ipv4Addr>().is_ok())
            .ok_or_else(|| skip(format!("ip {} is not an IPv4 address", describe(ip))))?
            .to_string();
        let tap = match text(tap) {
            Some("pending") => None,
            Some(t) if is_smolvm_tap(t) => Some(t.to_string()),
            _ => {
                return Err(skip(format!(
                    "tap_device {} is not a TAP smolvm creates (tap<N>, svmb<8 hex digits>)",
                    describe(tap)
                )))
            }
        };
        Ok((id, ip, tap))
    })())
}

pub(super) fn decode_ssh_forward(
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<Result<(String, u16, u16), SkippedRow>> {
    let (vm, host, guest) = (r.get_ref(0)?, r.get_ref(1)?, r.get_ref(2)?);
    Ok((|| {
        let id = lease_vm("ssh_forwards", vm)?;
        let skip = |what: &str, v: ValueRef<'_>| SkippedRow {
            table: "ssh_forwards",
            id: describe(vm),
            vm_id: Some(id.clone()),
            reason: format!("{what} {} is not a port (1-65535)", describe(v)),
        };
        let h = port(host).ok_or_else(|| skip("host_port", host))?;
        let g = port(guest).ok_or_else(|| skip("guest_port", guest))?;
        Ok((id, h, g))
    })())
}

pub(super) fn decode_tap_allocation(
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<Result<(String, TapAllocation), SkippedRow>> {
    let (vm, tap, mode, bridge) = (r.get_ref(0)?, r.get_ref(1)?, r.get_ref(2)?, r.get_ref(3)?);
    Ok((|| {
        let id = lease_vm("tap_allocations", vm)?;
        let skip = |reason: String| SkippedRow {
            table: "tap_allocations",
            id: describe(vm),
            vm_id: Some(id.clone()),
            reason,
        };
        let tap_device = text(tap)
            .filter(|t| is_smolvm_tap(t))
            .ok_or_else(|| {
                skip(format!(
                    "tap_device {} is not a TAP smolvm creates (tap<N>, svmb<8 hex digits>)",
                    describe(tap)
                ))
            })?
            .to_string();
        let mode = text(mode)
            .filter(|m| matches!(*m, "nat" | "bridge"))
            .ok_or_else(|| skip(format!("mode {} is not nat or bridge", describe(mode))))?
            .to_string();
        let bridge_name = match bridge {
            ValueRef::Null => None,
            v => Some(
                text(v)
                    .filter(|b| is_ifname(b))
                    .ok_or_else(|| {
                        skip(format!(
                            "bridge_name {} is not an interface name",
                            describe(v)
                        ))
                    })?
                    .to_string(),
            ),
        };
        Ok((
            id,
            TapAllocation {
                tap_device,
                mode,
                bridge_name,
            },
        ))
    })())
}
