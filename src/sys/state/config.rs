//! A VM's configuration, typed: `vms.config` (and a snapshot's `vm_config`) in SmolVM
//! 0.0.36's `VMConfig` keys and spellings, and smolvm's own extras, which live in tables
//! SmolVM never reads (`smolvm_vm_config`, `smolvm_snapshot_config`): SmolVM's model
//! forbids any key it does not know, so one foreign key in `vms.config` makes its
//! `sandbox list` fail.
//!
//! Reading is tolerant: a row SmolVM wrote keeps every key (those this type does not name
//! are kept in [`VmConfig::other`] and written back as they were), and a row an older
//! smolvm wrote (`mem_size_mib`, `accel`, `boot_timeout`, `source_rootfs_path`, `mounts`,
//! … inside `vms.config`) loads with those values as the fallback for the extras. Nothing
//! outside this module reads a configuration by key.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// vCPUs when a configuration names none (SmolVM's default).
pub const DEFAULT_VCPUS: u32 = 2;
/// Guest memory in MiB when a configuration names none (SmolVM's default).
pub const DEFAULT_MEMORY_MIB: u32 = 512;
/// SmolVM's `VMConfig.boot_args` default.
pub const SMOLVM_BOOT_ARGS: &str = "console=ttyS0 reboot=k panic=1 pci=off";
/// The kernel command line smolvm gives its guests (and assumes when a configuration names
/// none): SmolVM's, with the image's `/init`.
pub const DEFAULT_BOOT_ARGS: &str = "console=ttyS0 reboot=k panic=1 pci=off init=/init";

/// Keys an older smolvm wrote into `vms.config`: read as the extras' fallback, never
/// written there again.
const LEGACY_KEYS: &[&str] = &[
    "mem_size_mib",
    "accel",
    "boot_timeout",
    "source_rootfs_path",
    "mounts",
    "restoring_snapshot",
    "restored_from_snapshot",
    "adopted",
];

/// SmolVM's `VMConfig` as smolvm uses it. Every field is a SmolVM key of the same name;
/// `None` is a key the row does not have (SmolVM's default applies).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VmConfig {
    pub vm_id: Option<String>,
    pub preset: Option<String>,
    pub vcpu_count: Option<u32>,
    /// `memory`, in MiB.
    pub memory: Option<u32>,
    pub guest_os: Option<String>,
    pub boot_mode: Option<String>,
    pub kernel_path: Option<PathBuf>,
    pub initrd_path: Option<PathBuf>,
    pub rootfs_path: Option<PathBuf>,
    pub boot_args: Option<String>,
    pub backend: Option<String>,
    /// `auto`, `q35` or `microvm` (what the VM was created with).
    pub qemu_machine: Option<String>,
    pub disk_mode: Option<String>,
    pub disk_size_mib: Option<u64>,
    pub retain_disk_on_delete: Option<bool>,
    pub ssh_public_key: Option<String>,
    /// SmolVM's `InternetSettings` JSON (core's egress module reads and writes it).
    pub internet_settings: Option<serde_json::Value>,
    /// Every other SmolVM key, kept as it was and written back (`extra_drives`, `env_vars`,
    /// …). Never holds a key of [`LEGACY_KEYS`].
    pub other: serde_json::Map<String, serde_json::Value>,
    /// smolvm's own settings: stored beside the row, never in `vms.config`.
    pub extras: VmExtras,
}

/// smolvm's own per-VM settings, in `smolvm_vm_config` (a snapshot's copy in
/// `smolvm_snapshot_config`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VmExtras {
    /// The accelerator it was created with (`kvm`, `tcg`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accel: Option<String>,
    /// Seconds a boot may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_timeout: Option<f64>,
    /// The image its disk was copied from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_rootfs_path: Option<PathBuf>,
    /// Workspace mounts as `--mount` made them (core checks them before use).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mounts: Option<serde_json::Value>,
    /// A restore of this snapshot id began and has not finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restoring_snapshot: Option<String>,
    /// The snapshot it was restored from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_from_snapshot: Option<String>,
    /// A row made for a live VMM cleanup found without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted: Option<bool>,
    /// A bridged guest's static address on its bridge's network, `a.b.c.d/prefix` (SmolVM's
    /// guest asks DHCP itself; smolvm reaches its guests over SSH, so it must know it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge_address: Option<String>,
    /// Its QEMU has smolvm's agent port (a second serial port, the guest's `ttyS1`): set
    /// on a cold boot, kept by its snapshots so a restore or clone has the same devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_port: Option<bool>,
    /// (A snapshot's copy) the clone agent ran in the guest when it was saved: its clones
    /// can be re-addressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone_agent: Option<bool>,
    /// The snapshot this sandbox was cloned from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloned_from: Option<String>,
    /// (A snapshot's copy) a warm-start template: the fingerprint of the image, kernel,
    /// recipe, preset and sizes it was made for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_template: Option<String>,
}

impl VmExtras {
    pub fn is_empty(&self) -> bool {
        *self == VmExtras::default()
    }

    /// Each field of `self`, else `fallback`'s.
    fn or(self, fallback: VmExtras) -> VmExtras {
        VmExtras {
            accel: self.accel.or(fallback.accel),
            boot_timeout: self.boot_timeout.or(fallback.boot_timeout),
            source_rootfs_path: self.source_rootfs_path.or(fallback.source_rootfs_path),
            mounts: self.mounts.or(fallback.mounts),
            restoring_snapshot: self.restoring_snapshot.or(fallback.restoring_snapshot),
            restored_from_snapshot: self
                .restored_from_snapshot
                .or(fallback.restored_from_snapshot),
            adopted: self.adopted.or(fallback.adopted),
            bridge_address: self.bridge_address.or(fallback.bridge_address),
            agent_port: self.agent_port.or(fallback.agent_port),
            clone_agent: self.clone_agent.or(fallback.clone_agent),
            cloned_from: self.cloned_from.or(fallback.cloned_from),
            warm_template: self.warm_template.or(fallback.warm_template),
        }
    }

    /// The stored JSON text of the extras table.
    pub(super) fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// Stored extras over the legacy values already in `self` (unreadable text: none).
    pub(super) fn merge_stored(&mut self, text: &str) {
        if let Ok(stored) = serde_json::from_str::<VmExtras>(text) {
            *self = stored.or(std::mem::take(self));
        }
    }
}

impl VmConfig {
    /// A configuration read from its JSON (`vms.config`): SmolVM's keys into their fields
    /// (a value of the wrong type stays in [`other`](Self::other), as it was), an older
    /// smolvm's keys into [`extras`](Self::extras).
    pub fn from_json(value: &serde_json::Value) -> VmConfig {
        let mut map = match value {
            serde_json::Value::Object(m) => m.clone(),
            _ => serde_json::Map::new(),
        };
        fn take<T: serde::de::DeserializeOwned>(
            map: &mut serde_json::Map<String, serde_json::Value>,
            key: &str,
        ) -> Option<T> {
            // A null stays in `other` (written back as it was).
            let v = map.get(key).filter(|v| !v.is_null())?;
            let t = serde_json::from_value(v.clone()).ok()?;
            map.remove(key);
            Some(t)
        }
        let legacy_memory: Option<u32> = take(&mut map, "mem_size_mib");
        let legacy = VmExtras {
            accel: take(&mut map, "accel"),
            boot_timeout: take(&mut map, "boot_timeout"),
            source_rootfs_path: take(&mut map, "source_rootfs_path"),
            mounts: take(&mut map, "mounts"),
            restoring_snapshot: take(&mut map, "restoring_snapshot"),
            restored_from_snapshot: take(&mut map, "restored_from_snapshot"),
            adopted: take(&mut map, "adopted"),
            ..VmExtras::default()
        };
        let memory = take(&mut map, "memory").or(legacy_memory);
        let mut c = VmConfig {
            vm_id: take(&mut map, "vm_id"),
            preset: take(&mut map, "preset"),
            vcpu_count: take(&mut map, "vcpu_count"),
            memory,
            guest_os: take(&mut map, "guest_os"),
            boot_mode: take(&mut map, "boot_mode"),
            kernel_path: take(&mut map, "kernel_path"),
            initrd_path: take(&mut map, "initrd_path"),
            rootfs_path: take(&mut map, "rootfs_path"),
            boot_args: take(&mut map, "boot_args"),
            backend: take(&mut map, "backend"),
            qemu_machine: take(&mut map, "qemu_machine"),
            disk_mode: take(&mut map, "disk_mode"),
            disk_size_mib: take(&mut map, "disk_size_mib"),
            retain_disk_on_delete: take(&mut map, "retain_disk_on_delete"),
            ssh_public_key: take(&mut map, "ssh_public_key"),
            internet_settings: take(&mut map, "internet_settings"),
            other: serde_json::Map::new(),
            extras: legacy,
        };
        // A legacy key whose value had the wrong type is dropped, not written back.
        for k in LEGACY_KEYS {
            map.remove(*k);
        }
        c.other = map;
        c
    }

    /// The JSON of `vms.config`: SmolVM's keys only (a `None` field is absent, or null
    /// where the row read had it null).
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = self.other.clone();
        let mut put = |k: &str, v: serde_json::Value| {
            m.insert(k.to_string(), v);
        };
        // Each field under its own name, in this order, when it is set.
        macro_rules! put_set {
            ($($field:ident),*) => {
                $(if let Some(v) = &self.$field {
                    put(stringify!($field), serde_json::json!(v));
                })*
            };
        }
        put_set!(
            vm_id,
            preset,
            vcpu_count,
            memory,
            guest_os,
            boot_mode,
            kernel_path,
            initrd_path,
            rootfs_path,
            boot_args,
            backend,
            qemu_machine,
            disk_mode,
            disk_size_mib,
            retain_disk_on_delete,
            ssh_public_key,
            internet_settings
        );
        serde_json::Value::Object(m)
    }

    /// The mode of SmolVM's `network_attachment` (`nat`, `bridge`), when it names one.
    pub fn attachment_mode(&self) -> Option<&str> {
        self.other.get("network_attachment")?.get("mode")?.as_str()
    }

    /// The host folders this VM shares with its guest: SmolVM's `workspace_mounts`
    /// (`host_path` of each) and smolvm's own `--mount`s (its extras), as stored —
    /// unchecked, for reading only.
    pub fn shared_folders(&self) -> Vec<PathBuf> {
        let smolvm = self
            .other
            .get("workspace_mounts")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .filter_map(|m| m.get("host_path")?.as_str());
        let ours = self
            .extras
            .mounts
            .as_ref()
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .filter_map(|m| m.get("host_path")?.as_str());
        let mut out: Vec<PathBuf> = Vec::new();
        for p in smolvm.chain(ours).map(PathBuf::from) {
            if !out.contains(&p) {
                out.push(p);
            }
        }
        out
    }

    /// The bridge of SmolVM's `network_attachment` when its mode is `bridge`.
    pub fn bridge(&self) -> Option<&str> {
        let a = self.other.get("network_attachment")?;
        (self.attachment_mode()? == "bridge")
            .then(|| a.get("bridge")?.as_str())
            .flatten()
    }

    /// The guest OS as SmolVM guesses it without a live guest: a keyword (`ubuntu`,
    /// `alpine`) in the kernel, initrd or rootfs path.
    pub fn os_from_paths(&self) -> Option<&'static str> {
        [&self.kernel_path, &self.initrd_path, &self.rootfs_path]
            .into_iter()
            .flatten()
            .find_map(|p| {
                let p = p.to_string_lossy().to_lowercase();
                ["ubuntu", "alpine"].into_iter().find(|k| p.contains(k))
            })
    }

    /// The rootfs's size in MiB as SmolVM reports it (`disk_size`: the file's size).
    pub fn rootfs_size_mib(&self) -> Option<u64> {
        let path = self.rootfs_path.as_ref()?;
        std::fs::metadata(path)
            .ok()
            .map(|m| m.len() / (1024 * 1024))
    }

    /// Attach to `bridge` as SmolVM's `VMConfig` says it: `network_attachment` in bridge
    /// mode and `guest_managed_networking` (its validator refuses a bridged row without
    /// it, and one whose `comm_channel` is `ssh`: that key stays as it is, null or vsock).
    pub fn set_bridge(&mut self, bridge: &str) {
        use serde_json::json;
        self.other.insert(
            "network_attachment".into(),
            json!({"mode": "bridge", "bridge": bridge}),
        );
        self.other
            .insert("guest_managed_networking".into(), json!(true));
    }

    /// vCPUs (SmolVM's default when the row names none).
    pub fn vcpus(&self) -> u32 {
        self.vcpu_count.unwrap_or(DEFAULT_VCPUS)
    }

    /// Memory in MiB (SmolVM's default when the row names none).
    pub fn memory_mib(&self) -> u32 {
        self.memory.unwrap_or(DEFAULT_MEMORY_MIB)
    }

    /// The kernel command line (smolvm's default when the row names none).
    pub fn boot_args(&self) -> &str {
        self.boot_args.as_deref().unwrap_or(DEFAULT_BOOT_ARGS)
    }

    /// `isolated` unless the row says otherwise.
    pub fn disk_mode(&self) -> &str {
        self.disk_mode.as_deref().unwrap_or("isolated")
    }

    /// Host files the configuration points at: kernel, rootfs, initrd, extra drives.
    pub fn host_files(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = [&self.kernel_path, &self.rootfs_path, &self.initrd_path]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        if let Some(drives) = self.other.get("extra_drives").and_then(|d| d.as_array()) {
            out.extend(drives.iter().filter_map(|d| {
                d.as_str()
                    .or_else(|| d.get("path").and_then(|p| p.as_str()))
                    .map(PathBuf::from)
            }));
        }
        out
    }
}

/// Store (or, when empty, remove) a VM's extras, inside the caller's transaction.
pub(super) fn write_vm_extras(
    tx: &rusqlite::Transaction<'_>,
    vm_id: &str,
    extras: &VmExtras,
) -> rusqlite::Result<()> {
    write_extras(tx, "smolvm_vm_config", "vm_id", "updated_at", vm_id, extras)
}

/// Store (or, when empty, remove) a snapshot's copy of its VM's extras.
pub(super) fn write_snapshot_extras(
    tx: &rusqlite::Transaction<'_>,
    snapshot_id: &str,
    extras: &VmExtras,
) -> rusqlite::Result<()> {
    write_extras(
        tx,
        "smolvm_snapshot_config",
        "snapshot_id",
        "created_at",
        snapshot_id,
        extras,
    )
}

fn write_extras(
    tx: &rusqlite::Transaction<'_>,
    table: &str,
    key: &str,
    stamp: &str,
    id: &str,
    extras: &VmExtras,
) -> rusqlite::Result<()> {
    if extras.is_empty() {
        tx.execute(&format!("DELETE FROM {table} WHERE {key} = ?1"), [id])?;
    } else {
        tx.execute(
            &format!(
                "INSERT INTO {table} ({key}, extras, {stamp}) VALUES (?1, ?2, ?3)
                 ON CONFLICT({key}) DO UPDATE SET extras = excluded.extras, {stamp} = excluded.{stamp}"
            ),
            rusqlite::params![id, extras.to_text(), crate::sys::time::iso_now()],
        )?;
    }
    Ok(())
}

/// A VM's stored extras text (none when the table does not exist: a database only SmolVM
/// or a read-only open has seen).
pub(super) fn vm_extras(
    conn: &rusqlite::Connection,
    vm_id: &str,
) -> rusqlite::Result<Option<String>> {
    extras_of(conn, "smolvm_vm_config", "vm_id", vm_id)
}

/// A snapshot's stored extras text.
pub(super) fn snapshot_extras(
    conn: &rusqlite::Connection,
    snapshot_id: &str,
) -> rusqlite::Result<Option<String>> {
    extras_of(conn, "smolvm_snapshot_config", "snapshot_id", snapshot_id)
}

fn extras_of(
    conn: &rusqlite::Connection,
    table: &str,
    key: &str,
    id: &str,
) -> rusqlite::Result<Option<String>> {
    use rusqlite::OptionalExtension;
    if !super::table_exists(conn, table)? {
        return Ok(None);
    }
    conn.query_row(
        &format!("SELECT extras FROM {table} WHERE {key} = ?1"),
        [id],
        |r| r.get(0),
    )
    .optional()
}

/// Every VM's stored extras text, by VM id.
pub(super) fn all_vm_extras(
    conn: &rusqlite::Connection,
) -> rusqlite::Result<std::collections::HashMap<String, String>> {
    if !super::table_exists(conn, "smolvm_vm_config")? {
        return Ok(Default::default());
    }
    let mut stmt = conn.prepare("SELECT vm_id, extras FROM smolvm_vm_config")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    rows.filter_map(|r| r.ok().map(Ok)).collect()
}

impl Serialize for VmConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_older_smolvm_row_reads_with_its_extras_and_writes_smolvm_keys_only() {
        let old = json!({
            "vm_id": "vm-a", "vcpu_count": 3, "mem_size_mib": 384, "accel": "tcg",
            "boot_timeout": 120.0, "source_rootfs_path": "/img/rootfs.ext4",
            "mounts": [], "qemu_machine": "q35", "backend": "qemu",
        });
        let c = VmConfig::from_json(&old);
        assert_eq!((c.vcpus(), c.memory_mib()), (3, 384));
        assert_eq!(c.extras.accel.as_deref(), Some("tcg"));
        assert_eq!(c.extras.boot_timeout, Some(120.0));
        assert_eq!(
            c.extras.source_rootfs_path,
            Some(PathBuf::from("/img/rootfs.ext4"))
        );
        assert_eq!(c.extras.mounts, Some(json!([])));
        let out = c.to_json();
        for k in LEGACY_KEYS {
            assert!(out.get(*k).is_none(), "{k} in {out}");
        }
        assert_eq!(out["memory"], 384);
        assert_eq!(out["qemu_machine"], "q35");
    }

    #[test]
    fn a_smolvm_row_keeps_every_key_and_defaults_apply_when_absent() {
        let theirs = json!({
            "vm_id": "vm-b", "env_vars": {"A": "1"}, "extra_drives": ["/d/x.img"],
            "network_attachment": {"mode": "nat", "bridge": null}, "preset": null,
            "initrd_path": null, "disk_size_mib": null, "comm_channel": null,
        });
        let c = VmConfig::from_json(&theirs);
        assert_eq!(
            (c.vcpus(), c.memory_mib()),
            (DEFAULT_VCPUS, DEFAULT_MEMORY_MIB)
        );
        assert_eq!(c.boot_args(), DEFAULT_BOOT_ARGS);
        assert_eq!(c.host_files(), [PathBuf::from("/d/x.img")]);
        assert_eq!(c.to_json(), theirs);
    }

    #[test]
    fn stored_extras_win_over_legacy_keys() {
        let mut c = VmConfig::from_json(&json!({"accel": "kvm", "boot_timeout": 5}));
        c.extras.merge_stored(r#"{"accel": "tcg"}"#);
        assert_eq!(c.extras.accel.as_deref(), Some("tcg"));
        assert_eq!(c.extras.boot_timeout, Some(5.0));
    }
}
