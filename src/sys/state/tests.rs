use super::*;

fn smolvm_v029_db(path: &Path) {
    // SmolVM 0.0.29's vms table before its `display` migration, written the way Python's
    // sqlite3 module writes it (rollback journal, no WAL).
    let c = Connection::open(path).unwrap();
    c.execute_batch(
        "CREATE TABLE vms (id TEXT PRIMARY KEY, status TEXT NOT NULL, config TEXT NOT NULL,
            network TEXT, pid INTEGER, socket_path TEXT,
            created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
         CREATE TABLE ip_leases (ip TEXT PRIMARY KEY, vm_id TEXT NOT NULL UNIQUE,
            tap_device TEXT NOT NULL, created_at TEXT NOT NULL,
            FOREIGN KEY (vm_id) REFERENCES vms(id) ON DELETE CASCADE);
         INSERT INTO vms VALUES ('vm-a', 'running',
            '{\"vm_id\":\"vm-a\",\"kernel_path\":\"/k\",\"rootfs_path\":\"/r\",\"backend\":\"firecracker\"}',
            '{\"guest_ip\":\"172.16.0.2\",\"gateway_ip\":\"172.16.0.1\",\"netmask\":\"255.255.255.0\",\"tap_device\":\"tap2\",\"guest_mac\":\"AA:FC:00:00:00:02\",\"ssh_host_port\":2200,\"mode\":\"nat\",\"bridge\":null}',
            4242, '/tmp/fc-vm-a.sock', '2026-05-07T12:00:00.000001+00:00', '2026-05-07T12:00:00.000001+00:00');
         INSERT INTO vms VALUES ('vm-b', 'stopped', '{}', NULL, NULL, NULL,
            '2026-05-07T11:00:00.000001+00:00', '2026-05-07T11:00:00.000001+00:00');
         INSERT INTO ip_leases VALUES ('172.16.0.2', 'vm-a', 'tap2', '2026-05-07T12:00:00+00:00');",
    )
    .unwrap();
}

fn open(path: &Path) -> StateStore {
    StateStore::open(path, OpenMode::ReadWrite, Duration::from_secs(2))
        .unwrap()
        .0
}

#[test]
fn opens_and_migrates_a_smolvm_database_and_lists_it_in_order() {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("smolvm.db");
    smolvm_v029_db(&db);
    let s = open(&db);
    let vms = s.list_vms().unwrap();
    assert_eq!(
        vms.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(),
        ["vm-b", "vm-a"]
    );
    let a = &vms[1];
    assert_eq!(a.status, VmStatus::Running);
    assert_eq!(a.pid, Some(4242));
    assert_eq!(a.backend(), Some("firecracker"));
    let net = a.network.as_ref().unwrap();
    assert_eq!(net.tap_device.as_deref(), Some("tap2"));
    assert_eq!(net.ssh_host_port, Some(2200));
    assert_eq!(
        s.leases().unwrap().ips["vm-a"],
        ("172.16.0.2".into(), "tap2".into())
    );
    let conn = s.lock();
    assert!(has_column(&conn, "vms", "display").unwrap());
    assert!(table_exists(&conn, "snapshots").unwrap());
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

/// Python's sqlite3 (what SmolVM uses) reads what we wrote, with SmolVM's own queries.
#[test]
fn python_sqlite3_reads_our_database_like_smolvm() {
    if std::process::Command::new("python3")
        .arg("-c")
        .arg("import sqlite3")
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        eprintln!("SKIPPED: python3 with sqlite3 is not installed");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("smolvm.db");
    let s = open(&db);
    let mut vm = VmRecord::new("vm-ours", VmStatus::Running);
    vm.config = serde_json::json!({"vm_id": "vm-ours", "backend": "qemu"});
    vm.network = Some(Network {
        guest_ip: Some("172.16.0.9".into()),
        tap_device: Some("tap9".into()),
        ..Network::default()
    });
    vm.pid = Some(77);
    s.insert_vm(&vm).unwrap();
    s.insert_ip_lease("vm-ours", "172.16.0.9", "tap9").unwrap();
    drop(s);
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, json, sys\n\
             c = sqlite3.connect(sys.argv[1], timeout=30.0)\n\
             c.execute('PRAGMA foreign_keys = ON')\n\
             r = c.execute(\"SELECT id, status, config, network, pid, created_at FROM vms ORDER BY created_at\").fetchall()\n\
             print(r[0][0], r[0][1], json.loads(r[0][2])['backend'], json.loads(r[0][3])['tap_device'], r[0][4], r[0][5][-6:])\n\
             c.execute(\"DELETE FROM vms WHERE id='vm-ours'\"); c.commit()\n\
             print(c.execute('SELECT COUNT(*) FROM ip_leases').fetchone()[0])",
        )
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "vm-ours running qemu tap9 77 +00:00\n0\n"
    );
}

#[test]
fn garbage_and_truncated_files_are_moved_aside_and_recreated() {
    let t = tempfile::tempdir().unwrap();
    // garbage
    let db = t.path().join("a/smolvm.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    std::fs::write(
        &db,
        b"this is not a database, just some text that is long enough",
    )
    .unwrap();
    std::fs::write(t.path().join("a/smolvm.db-wal"), b"wal junk").unwrap();
    let (s, corrupt) = StateStore::open(&db, OpenMode::ReadWrite, Duration::from_secs(1)).unwrap();
    let c = corrupt.expect("corruption reported");
    let moved = c.moved_to.unwrap();
    assert!(moved
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("smolvm.db.corrupt-"));
    assert_eq!(
        std::fs::read(&moved).unwrap(),
        b"this is not a database, just some text that is long enough"
    );
    assert_eq!(
        std::fs::read(format!("{}-wal", moved.display())).unwrap(),
        b"wal junk"
    );
    assert!(s.list_vms().unwrap().is_empty());

    // truncated: a real database cut in half
    let db = t.path().join("b/smolvm.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    {
        let s = open(&db);
        for i in 0..300 {
            let mut vm = VmRecord::new(format!("vm-{i}"), VmStatus::Stopped);
            vm.config = serde_json::json!({"pad": "x".repeat(200)});
            s.insert_vm(&vm).unwrap();
        }
        s.lock()
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE;")
            .unwrap();
    }
    let len = std::fs::metadata(&db).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    let (s, corrupt) = StateStore::open(&db, OpenMode::ReadWrite, Duration::from_secs(1)).unwrap();
    assert!(corrupt.expect("truncation detected").moved_to.is_some());
    assert!(s.list_vms().unwrap().is_empty());
}

#[test]
fn dry_run_never_writes_even_for_a_corrupt_or_missing_file() {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("smolvm.db");
    let (s, c) = StateStore::open(&db, OpenMode::DryRun, Duration::from_secs(1)).unwrap();
    assert!(c.is_none());
    assert!(s.list_vms().unwrap().is_empty());
    assert!(!db.exists(), "dry run created the database");
    std::fs::write(&db, b"garbage garbage garbage garbage garbage garbage").unwrap();
    let (s, c) = StateStore::open(&db, OpenMode::DryRun, Duration::from_secs(1)).unwrap();
    let c = c.expect("reported");
    assert!(c.moved_to.is_none());
    assert!(s.list_vms().unwrap().is_empty());
    assert!(
        s.delete_vm("x").is_err(),
        "a dry-run store accepted a write"
    );
    assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1);

    // A healthy SmolVM file is read, not migrated.
    std::fs::remove_file(&db).unwrap();
    smolvm_v029_db(&db);
    let before = std::fs::read(&db).unwrap();
    let (s, _) = StateStore::open(&db, OpenMode::DryRun, Duration::from_secs(1)).unwrap();
    assert_eq!(s.list_vms().unwrap().len(), 2);
    drop(s);
    assert_eq!(std::fs::read(&db).unwrap(), before);
}

#[test]
fn a_lock_held_elsewhere_is_a_clear_error_after_the_timeout() {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("smolvm.db");
    let s = open(&db);
    let mut vm = VmRecord::new("vm-1", VmStatus::Stopped);
    vm.config = serde_json::json!({});
    s.insert_vm(&vm).unwrap();
    let holder = Connection::open(&db).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let s2 = StateStore::open(&db, OpenMode::ReadWrite, Duration::from_millis(300));
    let err = match s2 {
        Ok((s2, _)) => s2.delete_vm("vm-1").unwrap_err(),
        Err(e) => e,
    };
    assert!(matches!(err, StateError::Locked { .. }), "{err}");
    assert!(
        err.to_string().contains("is locked by another process"),
        "{err}"
    );
    holder.execute_batch("ROLLBACK").unwrap();
    assert_eq!(
        s.list_vms().unwrap().len(),
        1,
        "the row changed despite the lock"
    );
}

#[test]
fn delete_removes_the_row_and_its_leases_and_is_idempotent() {
    let t = tempfile::tempdir().unwrap();
    let s = open(&t.path().join("smolvm.db"));
    s.insert_vm(&VmRecord::new("vm-1", VmStatus::Running))
        .unwrap();
    s.insert_ip_lease("vm-1", "172.16.0.2", "tap2").unwrap();
    s.insert_ssh_forward("vm-1", 2200, 22).unwrap();
    assert!(matches!(
        s.insert_vm(&VmRecord::new("vm-1", VmStatus::Running)),
        Err(StateError::AlreadyExists(_))
    ));
    assert!(s.delete_vm("vm-1").unwrap());
    let l = s.leases().unwrap();
    assert!(l.ips.is_empty() && l.ssh.is_empty());
    assert!(!s.delete_vm("vm-1").unwrap());
}

#[test]
fn mark_stale_only_touches_active_rows() {
    let t = tempfile::tempdir().unwrap();
    let s = open(&t.path().join("smolvm.db"));
    let mut a = VmRecord::new("vm-a", VmStatus::Running);
    a.pid = Some(1234);
    s.insert_vm(&a).unwrap();
    s.insert_vm(&VmRecord::new("vm-b", VmStatus::Stopped))
        .unwrap();
    s.mark_stale(&["vm-a".into(), "vm-b".into()]).unwrap();
    let a = s.get_vm("vm-a").unwrap().unwrap();
    assert_eq!((a.status, a.pid), (VmStatus::Error, None));
    assert_eq!(s.get_vm("vm-b").unwrap().unwrap().status, VmStatus::Stopped);
}

#[test]
fn active_vms_reads_paths_read_only() {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("smolvm.db");
    smolvm_v029_db(&db);
    let before = std::fs::read(&db).unwrap();
    let got = active_vms(&db).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, "vm-a");
    assert_eq!(got[0].files, vec![PathBuf::from("/k"), PathBuf::from("/r")]);
    assert_eq!(std::fs::read(&db).unwrap(), before);
}

fn have_python_sqlite3() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import sqlite3"])
        .status()
        .is_ok_and(|s| s.success())
}

/// SmolVM (Python's sqlite3, rollback journal) killed mid-transaction: `n` rows `vm-0…`
/// committed, then a transaction that rewrote and deleted them spilled into the file and
/// the process died before its commit, leaving a hot `-journal`.
fn hot_journal_db(db: &Path, n: usize) {
    let script = r#"
import os, sqlite3, sys
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
os._exit(0)
"#;
    let st = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(db)
        .arg(n.to_string())
        .arg(SCHEMA)
        .status()
        .unwrap();
    assert!(st.success());
    let journal = PathBuf::from(format!("{}-journal", db.display()));
    assert!(
        std::fs::metadata(&journal).is_ok_and(|m| m.len() > 0),
        "no hot journal was left behind"
    );
}

/// Every file in `dir` with its bytes.
fn snapshot(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap_or_default(),
            )
        })
        .collect()
}

fn ids(s: &StateStore) -> Vec<String> {
    s.list_vms().unwrap().into_iter().map(|v| v.id).collect()
}

fn expected_ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("vm-{i}")).collect()
}

#[test]
fn a_hot_journal_is_rolled_back_not_taken_for_corruption() {
    if !have_python_sqlite3() {
        eprintln!("SKIPPED: python3 with sqlite3 is not installed");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("smolvm.db");
    hot_journal_db(&db, 30);
    let (s, corrupt) = StateStore::open(&db, OpenMode::ReadWrite, Duration::from_secs(2)).unwrap();
    assert_eq!(corrupt, None);
    assert_eq!(ids(&s), expected_ids(30));
    let names: Vec<String> = snapshot(t.path()).into_keys().collect();
    assert!(
        !names
            .iter()
            .any(|n| n.contains("corrupt") || n.ends_with("-journal")),
        "{names:?}"
    );
}

#[test]
fn a_dry_run_rolls_a_hot_journal_back_in_a_private_copy_and_changes_nothing() {
    if !have_python_sqlite3() {
        eprintln!("SKIPPED: python3 with sqlite3 is not installed");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("smolvm.db");
    hot_journal_db(&db, 30);
    let before = snapshot(t.path());
    let (s, corrupt) = StateStore::open(&db, OpenMode::DryRun, Duration::from_secs(2)).unwrap();
    assert_eq!(corrupt, None);
    assert_eq!(ids(&s), expected_ids(30));
    assert!(
        s.delete_vm("vm-1").is_err(),
        "a dry-run store accepted a write"
    );
    drop(s);
    assert_eq!(
        snapshot(t.path()),
        before,
        "a dry run changed the directory"
    );
}

#[test]
fn a_dry_run_of_a_wal_database_creates_no_files() {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("smolvm.db");
    {
        let s = open(&db);
        s.insert_vm(&VmRecord::new("vm-1", VmStatus::Stopped))
            .unwrap();
    }
    let before = snapshot(t.path());
    assert_eq!(before.len(), 1, "{:?}", before.keys());
    let (s, corrupt) = StateStore::open(&db, OpenMode::DryRun, Duration::from_secs(2)).unwrap();
    assert_eq!(corrupt, None);
    assert_eq!(ids(&s), ["vm-1"]);
    drop(s);
    assert_eq!(snapshot(t.path()), before);
}

#[test]
fn a_corrupt_database_is_moved_aside_with_its_journal() {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("smolvm.db");
    std::fs::write(
        &db,
        b"not a database at all, but long enough to have a header",
    )
    .unwrap();
    std::fs::write(t.path().join("smolvm.db-journal"), b"journal junk").unwrap();
    let (s, corrupt) = StateStore::open(&db, OpenMode::ReadWrite, Duration::from_secs(1)).unwrap();
    let moved = corrupt.expect("reported").moved_to.expect("moved");
    assert_eq!(
        std::fs::read(format!("{}-journal", moved.display())).unwrap(),
        b"journal junk"
    );
    assert!(!t.path().join("smolvm.db-journal").exists());
    assert!(s.list_vms().unwrap().is_empty());
}

#[test]
fn an_unopenable_database_is_an_error_and_nothing_is_moved() {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("smolvm.db");
    std::fs::create_dir(&db).unwrap();
    std::fs::write(db.join("inside"), b"x").unwrap();
    for mode in [OpenMode::ReadWrite, OpenMode::DryRun] {
        let err = StateStore::open(&db, mode, Duration::from_secs(1)).unwrap_err();
        assert!(err.to_string().contains("smolvm.db"), "{err}");
        let names: Vec<String> = snapshot(t.path()).into_keys().collect();
        assert_eq!(names, ["smolvm.db"], "{mode:?}");
    }
}
