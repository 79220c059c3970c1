//! SQLite fixtures shared by the integration tests and the state store's unit tests
//! (`src/sys/state/tests.rs` includes this file by path), so std only.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether `python3` with its `sqlite3` module (SmolVM's writer) is installed.
pub fn have_python_sqlite3() -> bool {
    Command::new("python3")
        .args(["-c", "import sqlite3"])
        .status()
        .is_ok_and(|s| s.success())
}

/// SmolVM's writer (Python's sqlite3, rollback journal) killed mid-transaction: `n` rows
/// `vm-0…` committed to `db` (created with `schema`, its directory too), then a
/// transaction that rewrote and deleted them spilled into the file and the process died
/// (SIGKILL) before its commit, leaving a hot `-journal`.
pub fn hot_journal_db(db: &Path, n: usize, schema: &str) {
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let script = r#"
import os, signal, sqlite3, sys
db, n, schema = sys.argv[1], int(sys.argv[2]), sys.argv[3]
c = sqlite3.connect(db, isolation_level=None)
c.execute("PRAGMA journal_mode=DELETE")
c.executescript(schema)
c.execute("BEGIN")
for i in range(n):
    ts = "2026-05-07T12:00:00.%06d+00:00" % i
    c.execute("INSERT INTO vms (id, status, config, created_at, updated_at) VALUES (?, 'stopped', '{}', ?, ?)", ("vm-%d" % i, ts, ts))
c.execute("COMMIT")
c.execute("PRAGMA cache_size=1")
c.execute("BEGIN")
c.execute("UPDATE vms SET config = ?", ("x" * 4000,))
c.execute("DELETE FROM vms WHERE id != 'vm-0'")
os.kill(os.getpid(), signal.SIGKILL)
"#;
    let st = Command::new("python3")
        .args(["-c", script])
        .arg(db)
        .arg(n.to_string())
        .arg(schema)
        .status()
        .unwrap();
    assert!(!st.success(), "the writer was not killed");
    let journal = PathBuf::from(format!("{}-journal", db.display()));
    assert!(
        std::fs::metadata(&journal).is_ok_and(|m| m.len() > 0),
        "no hot journal was left behind"
    );
}

/// Every file in `dir` with its bytes, except smolvm's own log (`logs/`, which every
/// command appends a line to: not state).
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().map_or(true, |e| e.file_name() != "logs"))
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap_or_default(),
            )
        })
        .collect()
}

/// The ids `hot_journal_db(_, n, _)` committed: `vm-0` … `vm-{n-1}`.
pub fn expected_ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("vm-{i}")).collect()
}
