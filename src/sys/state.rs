//! The SmolVM state database (`<data dir>/smolvm.db`), read-only view.
//!
//! Prune only needs to know which caches running VMs use; it opens the database read-only
//! and never creates or migrates it. (The full store, with writes and migrations, grows
//! from here.)

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// A VM that is running or paused according to the database, and the host files its
/// configuration points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveVm {
    pub id: String,
    pub files: Vec<PathBuf>,
}

/// VMs in status `running` or `paused` and their `kernel_path`, `rootfs_path`,
/// `initrd_path` and extra drive paths (SmolVM's VMConfig JSON). A database without a
/// `vms` table has none.
pub fn active_vms(db: &Path) -> rusqlite::Result<Vec<ActiveVm>> {
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let has_vms: bool = conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'vms')",
        [],
        |r| r.get(0),
    )?;
    if !has_vms {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare(
        "SELECT id, config FROM vms WHERE status IN ('running', 'paused') ORDER BY created_at",
    )?;
    let rows = stmt.query_map([], |r| {
        let id: String = r.get(0)?;
        let config: String = r.get(1)?;
        Ok(ActiveVm {
            files: config_files(&config),
            id,
        })
    })?;
    rows.collect()
}

fn config_files(config: &str) -> Vec<PathBuf> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(config) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = ["kernel_path", "rootfs_path", "initrd_path"]
        .iter()
        .filter_map(|k| v.get(k).and_then(|p| p.as_str()))
        .map(PathBuf::from)
        .collect();
    if let Some(drives) = v.get("extra_drives").and_then(|d| d.as_array()) {
        out.extend(drives.iter().filter_map(|d| {
            d.as_str()
                .or_else(|| d.get("path").and_then(|p| p.as_str()))
                .map(PathBuf::from)
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_running_and_paused_rows_paths() {
        let t = tempfile::tempdir().unwrap();
        let db = t.path().join("smolvm.db");
        let c = Connection::open(&db).unwrap();
        c.execute_batch(
            "CREATE TABLE vms (id TEXT PRIMARY KEY, status TEXT NOT NULL, config TEXT NOT NULL,
               network TEXT, pid INTEGER, socket_path TEXT, display TEXT,
               created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
             INSERT INTO vms VALUES ('a','running','{\"kernel_path\":\"/k\",\"rootfs_path\":\"/r\",\"extra_drives\":[\"/x\"]}',NULL,1,NULL,NULL,'1','1');
             INSERT INTO vms VALUES ('b','stopped','{\"rootfs_path\":\"/s\"}',NULL,NULL,NULL,NULL,'2','2');
             INSERT INTO vms VALUES ('c','paused','not json',NULL,NULL,NULL,NULL,'3','3');",
        )
        .unwrap();
        drop(c);
        let got = active_vms(&db).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].id, "a");
        assert_eq!(
            got[0].files,
            vec![
                PathBuf::from("/k"),
                PathBuf::from("/r"),
                PathBuf::from("/x")
            ]
        );
        assert_eq!(got[1].id, "c");
        assert!(got[1].files.is_empty());
    }

    #[test]
    fn a_database_without_tables_has_no_vms_and_is_not_modified() {
        let t = tempfile::tempdir().unwrap();
        let db = t.path().join("smolvm.db");
        Connection::open(&db).unwrap();
        let before = std::fs::metadata(&db).unwrap().len();
        assert!(active_vms(&db).unwrap().is_empty());
        assert_eq!(std::fs::metadata(&db).unwrap().len(), before);
    }
}
