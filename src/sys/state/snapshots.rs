//! SmolVM's `snapshots` table (reference §1): one row per snapshot, written last by
//! `sandbox snapshot create` (after its files are synced), read by `list`/`restore`,
//! deleted by `snapshot delete`. Rows keep SmolVM's shape: `snapshot_path` /
//! `mem_file_path` / `disk_path` (empty text when the type has no such file),
//! `artifacts` as SmolVM's `SnapshotArtifacts` JSON (`state_path`, `memory_path`,
//! `disk_path`), `vm_config` and `network_config` as the VM's config and NetworkConfig
//! JSON, `backend`, `snapshot_type` (`full`/`disk`), `restored`, `restored_vm_id`.
//!
//! Also the exact-lease reservation a restore needs (the snapshot's IP, TAP and SSH port).

use std::collections::HashSet;

use rusqlite::OptionalExtension;

use super::config::{self, VmConfig};
use super::{pools, table_exists, StateError, StateStore};
use crate::sys::process::is_vm_id;
use crate::sys::time::iso_now;

/// One `snapshots` row.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotRecord {
    pub snapshot_id: String,
    pub vm_id: String,
    pub snapshot_path: String,
    pub mem_file_path: String,
    pub disk_path: String,
    /// NULL means Firecracker (SmolVM's rule).
    pub backend: Option<String>,
    pub artifacts: Option<serde_json::Value>,
    /// The VM's config when the snapshot was taken (its extras from
    /// `smolvm_snapshot_config`).
    pub vm_config: VmConfig,
    pub network_config: serde_json::Value,
    pub created_at: String,
    /// NULL or unknown means `full` (SmolVM's rule).
    pub snapshot_type: Option<String>,
    pub restored: bool,
    pub restored_vm_id: Option<String>,
}

impl SnapshotRecord {
    /// `backend`, SmolVM's default `firecracker` when NULL.
    pub fn backend(&self) -> &str {
        self.backend.as_deref().unwrap_or("firecracker")
    }

    /// `snapshot_type`: `disk` or `diff` as stored, anything else `full`.
    pub fn kind(&self) -> &str {
        match self.snapshot_type.as_deref() {
            Some("disk") => "disk",
            Some("diff") => "diff",
            _ => "full",
        }
    }
}

const COLUMNS: &str = "snapshot_id, vm_id, snapshot_path, mem_file_path, disk_path, backend, \
     artifacts, vm_config, network_config, created_at, snapshot_type, restored, restored_vm_id";

/// A refusal inside a transaction (rolled back), reported as [`StateError::Pool`].
/// One exact reservation of `value` for `vm_id` (`holder`: the SQL that names who holds
/// it): `false` when `vm_id` holds it already, `true` when it is free and `vm_id` holds no
/// other (`mine`), so the caller inserts it; else SmolVM's refusal (`Requested … is not
/// available`, `VM … already has …`).
fn reserve_exact<V: rusqlite::ToSql + std::fmt::Display + ?Sized>(
    tx: &rusqlite::Transaction<'_>,
    vm_id: &str,
    holder: &str,
    value: &V,
    noun: &str,
    short: &str,
    mine: impl FnOnce() -> rusqlite::Result<Option<String>>,
) -> rusqlite::Result<bool> {
    let held: Option<String> = tx.query_row(holder, [value], |r| r.get(0)).optional()?;
    match held {
        Some(h) if h != vm_id => Err(refuse(format!("Requested {noun} {value} is not available"))),
        Some(_) => Ok(false),
        None => match mine()? {
            Some(other) => Err(refuse(format!(
                "VM {vm_id} already has {short} {other}, cannot reserve {value}"
            ))),
            None => Ok(true),
        },
    }
}

fn refuse(msg: String) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(super::pools::PoolExhausted(msg)))
}

/// A row, or why it is skipped: ids must be valid ids (they name directories), JSON
/// columns must be JSON.
fn decode(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<SnapshotRecord, String>> {
    let text = |i: usize| -> rusqlite::Result<Option<String>> {
        Ok(match r.get_ref(i)? {
            rusqlite::types::ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
            _ => None,
        })
    };
    let Some(snapshot_id) = text(0)? else {
        return Ok(Err("snapshot_id is not text".into()));
    };
    if !is_vm_id(&snapshot_id) {
        return Ok(Err(format!(
            "snapshot id {snapshot_id:?} is not a valid id"
        )));
    }
    let vm_id = text(1)?.unwrap_or_default();
    if !is_vm_id(&vm_id) {
        return Ok(Err(format!(
            "snapshot {snapshot_id}: vm_id {vm_id:?} is not a valid id"
        )));
    }
    let json = |i: usize| -> rusqlite::Result<Option<serde_json::Value>> {
        Ok(text(i)?.and_then(|t| serde_json::from_str(&t).ok()))
    };
    let (Some(vm_config), Some(network_config)) = (json(7)?, json(8)?) else {
        return Ok(Err(format!(
            "snapshot {snapshot_id}: vm_config or network_config is not JSON"
        )));
    };
    let restored = matches!(r.get_ref(11)?, rusqlite::types::ValueRef::Integer(n) if n != 0);
    Ok(Ok(SnapshotRecord {
        snapshot_id,
        vm_id,
        snapshot_path: text(2)?.unwrap_or_default(),
        mem_file_path: text(3)?.unwrap_or_default(),
        disk_path: text(4)?.unwrap_or_default(),
        backend: text(5)?,
        artifacts: json(6)?,
        vm_config: VmConfig::from_json(&vm_config),
        network_config,
        created_at: text(9)?.unwrap_or_default(),
        snapshot_type: text(10)?,
        restored,
        restored_vm_id: text(12)?,
    }))
}

impl StateStore {
    /// Insert a snapshot row (created_at now unless set); [`StateError::AlreadyExists`]
    /// when the id is taken.
    pub fn insert_snapshot(&self, s: &SnapshotRecord) -> Result<(), StateError> {
        let n = self.write(|tx| {
            tx.execute(
                &format!(
                    "INSERT OR IGNORE INTO snapshots ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
                ),
                rusqlite::params![
                    s.snapshot_id,
                    s.vm_id,
                    s.snapshot_path,
                    s.mem_file_path,
                    s.disk_path,
                    s.backend,
                    s.artifacts.as_ref().map(|a| a.to_string()),
                    s.vm_config.to_json().to_string(),
                    s.network_config.to_string(),
                    if s.created_at.is_empty() { iso_now() } else { s.created_at.clone() },
                    s.snapshot_type,
                    i64::from(s.restored),
                    s.restored_vm_id,
                ],
            )
            .and_then(|n| {
                if n > 0 {
                    config::write_snapshot_extras(tx, &s.snapshot_id, &s.vm_config.extras)?;
                }
                Ok(n)
            })
        })?;
        if n == 0 {
            return Err(StateError::AlreadyExists(s.snapshot_id.clone()));
        }
        Ok(())
    }

    /// The snapshot row with this id; a row with invalid values is an error (reported as
    /// [`StateError::Pool`]'s plain message), never returned.
    pub fn get_snapshot(&self, id: &str) -> Result<Option<SnapshotRecord>, StateError> {
        let conn = self.lock();
        if !table_exists(&conn, "snapshots").map_err(|e| self.err(e))? {
            return Ok(None);
        }
        let row = conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM snapshots WHERE snapshot_id = ?1"),
                [id],
                decode,
            )
            .optional()
            .map_err(|e| self.err(e))?;
        match row {
            None => Ok(None),
            Some(Ok(mut s)) => {
                if let Some(text) =
                    config::snapshot_extras(&conn, &s.snapshot_id).map_err(|e| self.err(e))?
                {
                    s.vm_config.extras.merge_stored(&text);
                }
                Ok(Some(s))
            }
            Some(Err(reason)) => Err(StateError::Pool(format!(
                "state database {}: the snapshots row of {id:?} is invalid: {reason}; fix or delete that row",
                self.path.display()
            ))),
        }
    }

    /// Every valid snapshot row (of one VM when `vm_id` is given), oldest first, and the
    /// reasons rows were skipped.
    pub fn list_snapshots(
        &self,
        vm_id: Option<&str>,
    ) -> Result<(Vec<SnapshotRecord>, Vec<String>), StateError> {
        let conn = self.lock();
        let mut out = (Vec::new(), Vec::new());
        if !table_exists(&conn, "snapshots").map_err(|e| self.err(e))? {
            return Ok(out);
        }
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM snapshots WHERE ?1 IS NULL OR vm_id = ?1 ORDER BY created_at, rowid"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([vm_id], decode).map_err(|e| self.err(e))?;
        for r in rows {
            match r.map_err(|e| self.err(e))? {
                Ok(mut s) => {
                    if let Some(text) =
                        config::snapshot_extras(&conn, &s.snapshot_id).map_err(|e| self.err(e))?
                    {
                        s.vm_config.extras.merge_stored(&text);
                    }
                    out.0.push(s)
                }
                Err(reason) => out.1.push(format!(
                    "state database: skipped snapshots row: {reason} (it is left alone)"
                )),
            }
        }
        Ok(out)
    }

    /// Delete one snapshot row by id; `false` when there was none.
    pub fn delete_snapshot(&self, id: &str) -> Result<bool, StateError> {
        self.write(|tx| Ok(tx.execute("DELETE FROM snapshots WHERE snapshot_id = ?1", [id])? > 0))
    }

    /// Record that a snapshot was restored into `vm_id` (SmolVM's `restored`,
    /// `restored_vm_id`).
    pub fn mark_snapshot_restored(&self, id: &str, vm_id: &str) -> Result<(), StateError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE snapshots SET restored = 1, restored_vm_id = ?1 WHERE snapshot_id = ?2",
                rusqlite::params![vm_id, id],
            )
        })
        .map(drop)
    }

    /// Replace a VM's config JSON.
    pub fn set_config(&self, vm_id: &str, config: &VmConfig) -> Result<(), StateError> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE vms SET config = ?1, updated_at = ?2 WHERE id = ?3",
                rusqlite::params![config.to_json().to_string(), iso_now(), vm_id],
            )?;
            if n > 0 {
                config::write_vm_extras(tx, vm_id, &config.extras)?;
            }
            Ok(())
        })
    }

    /// Lease exactly this IP (on `tap`) and SSH host port to `vm_id`, in one transaction,
    /// so a later [`StateStore::allocate_network`] returns them. Taken by another VM →
    /// SmolVM's messages (`Requested IP address … is not available`).
    pub fn reserve_network(
        &self,
        vm_id: &str,
        ip: &str,
        tap: &str,
        ssh_host_port: Option<u16>,
    ) -> Result<(), StateError> {
        let r = self.write(|tx| {
            let ip_holder = "SELECT vm_id FROM ip_leases WHERE ip = ?1";
            if reserve_exact(tx, vm_id, ip_holder, ip, "IP address", "IP", || {
                tx.query_row("SELECT ip FROM ip_leases WHERE vm_id = ?1", [vm_id], |r| {
                    r.get::<_, String>(0)
                })
                .optional()
            })? {
                pools::insert_ip_lease(tx, vm_id, ip, tap)?;
            }
            if let Some(p) = ssh_host_port {
                let port_holder = "SELECT vm_id FROM ssh_forwards WHERE host_port = ?1";
                let mine = || Ok(pools::ssh_port_of(tx, vm_id)?.map(|p| p.to_string()));
                if reserve_exact(
                    tx,
                    vm_id,
                    port_holder,
                    &p,
                    "SSH host port",
                    "SSH host port",
                    mine,
                )? {
                    pools::insert_ssh_forward(tx, vm_id, p, 22)?;
                }
            }
            Ok(())
        });
        match r {
            Err(StateError::Sqlite {
                source: rusqlite::Error::ToSqlConversionFailure(e),
                ..
            }) => Err(StateError::Pool(e.to_string())),
            other => other,
        }
    }

    /// The VM ids holding this IP or this SSH host port (other than `except`).
    pub fn lease_holders(
        &self,
        ip: &str,
        ssh_host_port: Option<u16>,
        except: &str,
    ) -> Result<HashSet<String>, StateError> {
        let leases = self.leases()?;
        let mut out = HashSet::new();
        for (vm, (lip, _)) in &leases.ips {
            if lip == ip && vm != except {
                out.insert(vm.clone());
            }
        }
        for (vm, (port, _)) in &leases.ssh {
            if Some(*port) == ssh_host_port && vm != except {
                out.insert(vm.clone());
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::state::{OpenMode, VmRecord, VmStatus, DEFAULT_BUSY_TIMEOUT};

    fn record(id: &str, vm: &str) -> SnapshotRecord {
        SnapshotRecord {
            snapshot_id: id.into(),
            vm_id: vm.into(),
            snapshot_path: "/s/state.bin".into(),
            mem_file_path: "/s/state.bin".into(),
            disk_path: "/s/disk.ext4".into(),
            backend: Some("qemu".into()),
            artifacts: Some(serde_json::json!({"state_path": "/s/state.bin"})),
            vm_config: VmConfig::from_json(&serde_json::json!({"vm_id": vm})),
            network_config: serde_json::json!({"guest_ip": "172.16.0.2"}),
            created_at: String::new(),
            snapshot_type: Some("full".into()),
            restored: false,
            restored_vm_id: None,
        }
    }

    #[test]
    fn rows_round_trip_list_by_vm_and_delete() {
        let t = tempfile::tempdir().unwrap();
        let db = t.path().join("smolvm.db");
        let (s, _) = StateStore::open(&db, OpenMode::ReadWrite, DEFAULT_BUSY_TIMEOUT).unwrap();
        s.insert_snapshot(&record("snap-a", "vm-a")).unwrap();
        s.insert_snapshot(&record("snap-b", "vm-b")).unwrap();
        assert!(matches!(
            s.insert_snapshot(&record("snap-a", "vm-a")),
            Err(StateError::AlreadyExists(_))
        ));
        let a = s.get_snapshot("snap-a").unwrap().unwrap();
        assert_eq!((a.backend(), a.kind()), ("qemu", "full"));
        assert!(!a.created_at.is_empty());
        assert_eq!(s.list_snapshots(Some("vm-b")).unwrap().0.len(), 1);
        assert_eq!(s.list_snapshots(None).unwrap().0.len(), 2);
        s.mark_snapshot_restored("snap-a", "vm-a").unwrap();
        assert!(s.get_snapshot("snap-a").unwrap().unwrap().restored);
        assert!(s.delete_snapshot("snap-a").unwrap());
        assert!(!s.delete_snapshot("snap-a").unwrap());
        // A path-shaped id in a row is skipped, never returned.
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute(
            "INSERT INTO snapshots (snapshot_id, vm_id, snapshot_path, mem_file_path, disk_path, vm_config, network_config, created_at) VALUES ('../x', 'vm-a', '', '', '', '{}', '{}', 'x')",
            [],
        )
        .unwrap();
        let (rows, skipped) = s.list_snapshots(None).unwrap();
        assert_eq!((rows.len(), skipped.len()), (1, 1), "{skipped:?}");
        assert!(s.get_snapshot("../x").is_err());
    }

    #[test]
    fn exact_reservations_are_taken_once() {
        let t = tempfile::tempdir().unwrap();
        let s = crate::sys::state::tests::open(&t.path().join("smolvm.db"));
        for id in ["vm-a", "vm-b"] {
            s.insert_vm(&VmRecord::new(id, VmStatus::Created)).unwrap();
        }
        s.reserve_network("vm-a", "172.16.0.9", "tap9", Some(2300))
            .unwrap();
        // Idempotent, and allocate_network hands the same leases back.
        s.reserve_network("vm-a", "172.16.0.9", "tap9", Some(2300))
            .unwrap();
        let l = s.allocate_network("vm-a", true).unwrap();
        assert_eq!(
            (l.guest_ip.to_string(), l.tap.as_str(), l.ssh_host_port),
            ("172.16.0.9".into(), "tap9", Some(2300))
        );
        let e = s
            .reserve_network("vm-b", "172.16.0.9", "tap9", None)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Requested IP address 172.16.0.9 is not available"
        );
        let e = s
            .reserve_network("vm-b", "172.16.0.10", "tap10", Some(2300))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Requested SSH host port 2300 is not available"
        );
        assert_eq!(
            s.lease_holders("172.16.0.9", None, "vm-b").unwrap(),
            HashSet::from(["vm-a".to_string()])
        );
    }
}
