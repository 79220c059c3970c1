//! smolvm's own per-sandbox network settings (`smolvm_vm_network`) and the copy a snapshot
//! keeps (`smolvm_snapshot_network`): JSON text that core defines and validates. A VM's
//! settings change together with SmolVM's `internet_settings` key of its config, in one
//! transaction, so the two never disagree.

use rusqlite::OptionalExtension;

use super::{table_exists, StateError, StateStore, VmConfig};
use crate::sys::time::iso_now;

impl StateStore {
    /// The VM's stored settings JSON, if any.
    pub fn vm_network_settings(
        &self,
        vm_id: &str,
    ) -> Result<Option<serde_json::Value>, StateError> {
        self.settings_of("smolvm_vm_network", "vm_id", vm_id)
    }

    /// The snapshot's stored settings JSON, if any.
    pub fn snapshot_network_settings(
        &self,
        snapshot_id: &str,
    ) -> Result<Option<serde_json::Value>, StateError> {
        self.settings_of("smolvm_snapshot_network", "snapshot_id", snapshot_id)
    }

    fn settings_of(
        &self,
        table: &str,
        key: &str,
        id: &str,
    ) -> Result<Option<serde_json::Value>, StateError> {
        let conn = self.lock();
        if !table_exists(&conn, table).map_err(|e| self.err(e))? {
            return Ok(None);
        }
        let text: Option<String> = conn
            .query_row(
                &format!("SELECT settings FROM {table} WHERE {key} = ?1"),
                [id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// Store the VM's settings and set (or, with `None`, remove) the `internet_settings`
    /// key of its config, in one transaction. `false` when no such VM row exists.
    pub fn set_vm_network_settings(
        &self,
        vm_id: &str,
        settings: &serde_json::Value,
        internet_settings: Option<&serde_json::Value>,
    ) -> Result<bool, StateError> {
        let text = settings.to_string();
        let internet = internet_settings.map(|v| v.to_string());
        self.write(|tx| {
            let config: Option<String> = tx
                .query_row("SELECT config FROM vms WHERE id = ?1", [vm_id], |r| {
                    r.get(0)
                })
                .optional()?;
            let Some(config) = config else {
                return Ok(false);
            };
            // Typed: an older smolvm's keys move to smolvm_vm_config as it is rewritten.
            let mut config = VmConfig::from_json(
                &serde_json::from_str(&config).unwrap_or(serde_json::Value::Null),
            );
            if let Some(stored) = super::config::vm_extras(tx, vm_id)? {
                config.extras.merge_stored(&stored);
            }
            config.internet_settings = internet
                .as_deref()
                .map(|v| serde_json::from_str(v).unwrap_or_default());
            let now = iso_now();
            tx.execute(
                "UPDATE vms SET config = ?1, updated_at = ?2 WHERE id = ?3",
                rusqlite::params![config.to_json().to_string(), now, vm_id],
            )?;
            super::config::write_vm_extras(tx, vm_id, &config.extras)?;
            tx.execute(
                "INSERT INTO smolvm_vm_network (vm_id, settings, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(vm_id) DO UPDATE SET settings = excluded.settings,
                 updated_at = excluded.updated_at",
                rusqlite::params![vm_id, text, now],
            )?;
            Ok(true)
        })
    }

    /// Keep a snapshot's copy of its VM's settings (the snapshot row must exist).
    pub fn set_snapshot_network_settings(
        &self,
        snapshot_id: &str,
        settings: &serde_json::Value,
    ) -> Result<(), StateError> {
        let text = settings.to_string();
        self.write(|tx| {
            tx.execute(
                "INSERT INTO smolvm_snapshot_network (snapshot_id, settings, created_at)
                 VALUES (?1, ?2, ?3) ON CONFLICT(snapshot_id) DO UPDATE SET
                 settings = excluded.settings",
                rusqlite::params![snapshot_id, text, iso_now()],
            )
            .map(drop)
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::sys::state::{VmRecord, VmStatus};

    #[test]
    fn settings_change_with_the_configs_internet_settings_and_go_with_the_row() {
        let dir = tempfile::tempdir().unwrap();
        let s = crate::sys::state::tests::open(&dir.path().join("smolvm.db"));
        assert!(!s
            .set_vm_network_settings("vm-a", &serde_json::json!({}), None)
            .unwrap());
        let mut row = VmRecord::new("vm-a", VmStatus::Created);
        row.config = crate::sys::state::VmConfig::from_json(
            &serde_json::json!({"vm_id": "vm-a", "memory": 512}),
        );
        s.insert_vm(&row).unwrap();
        let settings = serde_json::json!({"internet": {"mode": "off"}});
        let off = serde_json::json!({"mode": "off"});
        assert!(s
            .set_vm_network_settings("vm-a", &settings, Some(&off))
            .unwrap());
        assert_eq!(s.vm_network_settings("vm-a").unwrap(), Some(settings));
        let got = s.get_vm("vm-a").unwrap().unwrap();
        assert_eq!(got.config.internet_settings, Some(off));
        assert_eq!(got.config.memory, Some(512));
        s.set_vm_network_settings("vm-a", &serde_json::json!({}), None)
            .unwrap();
        assert!(s
            .get_vm("vm-a")
            .unwrap()
            .unwrap()
            .config
            .internet_settings
            .is_none());
        s.delete_vm("vm-a").unwrap();
        assert_eq!(s.vm_network_settings("vm-a").unwrap(), None);
    }
}
