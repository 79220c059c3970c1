use super::*;

#[path = "../../../tests/support/sqlite.rs"]
mod sqlite;
use sqlite::{expected_ids, have_python_sqlite3, hot_journal_db, snapshot};

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

pub(super) fn open(path: &Path) -> StateStore {
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
    let vms = s.list_vms().unwrap().vms;
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
    vm.config = VmConfig::from_json(&serde_json::json!({"vm_id": "vm-ours", "backend": "qemu"}));
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

/// `garbage` (not a database) at `db` with `junk` in its `suffix` sidecar, opened
/// read-write.
fn open_garbage(
    db: &Path,
    garbage: &[u8],
    suffix: &str,
    junk: &[u8],
) -> (StateStore, Option<Corruption>) {
    std::fs::write(db, garbage).unwrap();
    std::fs::write(format!("{}{suffix}", db.display()), junk).unwrap();
    StateStore::open(db, OpenMode::ReadWrite, Duration::from_secs(1)).unwrap()
}

#[test]
fn garbage_and_truncated_files_are_moved_aside_and_recreated() {
    let t = tempfile::tempdir().unwrap();
    // garbage
    let db = t.path().join("a/smolvm.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let garbage = b"this is not a database, just some text that is long enough";
    let (s, corrupt) = open_garbage(&db, garbage, "-wal", b"wal junk");
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
    assert!(s.list_vms().unwrap().vms.is_empty());

    // truncated: a real database cut in half
    let db = t.path().join("b/smolvm.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    {
        let s = open(&db);
        for i in 0..300 {
            let mut vm = VmRecord::new(format!("vm-{i}"), VmStatus::Stopped);
            vm.config = VmConfig::from_json(&serde_json::json!({"pad": "x".repeat(200)}));
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
    assert!(s.list_vms().unwrap().vms.is_empty());
}

#[test]
fn dry_run_never_writes_even_for_a_corrupt_or_missing_file() {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("smolvm.db");
    let (s, c) = StateStore::open(&db, OpenMode::DryRun, Duration::from_secs(1)).unwrap();
    assert!(c.is_none());
    assert!(s.list_vms().unwrap().vms.is_empty());
    assert!(!db.exists(), "dry run created the database");
    std::fs::write(&db, b"garbage garbage garbage garbage garbage garbage").unwrap();
    let (s, c) = StateStore::open(&db, OpenMode::DryRun, Duration::from_secs(1)).unwrap();
    let c = c.expect("reported");
    assert!(c.moved_to.is_none());
    assert!(s.list_vms().unwrap().vms.is_empty());
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
    assert_eq!(s.list_vms().unwrap().vms.len(), 2);
    drop(s);
    assert_eq!(std::fs::read(&db).unwrap(), before);
}

#[test]
fn a_lock_held_elsewhere_is_a_clear_error_after_the_timeout() {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("smolvm.db");
    let s = open(&db);
    let mut vm = VmRecord::new("vm-1", VmStatus::Stopped);
    vm.config = VmConfig::default();
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
        s.list_vms().unwrap().vms.len(),
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

fn ids(s: &StateStore) -> Vec<String> {
    s.list_vms()
        .unwrap()
        .vms
        .into_iter()
        .map(|v| v.id)
        .collect()
}

/// A hot-journal database (see [`hot_journal_db`]) of `n` rows in a new directory, or
/// `None` (the test skipped) without python3's sqlite3.
fn hot_journal_in_tempdir(n: usize) -> Option<(tempfile::TempDir, PathBuf)> {
    if !have_python_sqlite3() {
        eprintln!("SKIPPED: python3 with sqlite3 is not installed");
        return None;
    }
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("smolvm.db");
    hot_journal_db(&db, n, SCHEMA);
    Some((t, db))
}

#[test]
fn a_hot_journal_is_rolled_back_not_taken_for_corruption() {
    let Some((t, db)) = hot_journal_in_tempdir(30) else {
        return;
    };
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
    let Some((t, db)) = hot_journal_in_tempdir(30) else {
        return;
    };
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
    let garbage = b"not a database at all, but long enough to have a header";
    let (s, corrupt) = open_garbage(&db, garbage, "-journal", b"journal junk");
    let moved = corrupt.expect("reported").moved_to.expect("moved");
    assert_eq!(
        std::fs::read(format!("{}-journal", moved.display())).unwrap(),
        b"journal junk"
    );
    assert!(!t.path().join("smolvm.db-journal").exists());
    assert!(s.list_vms().unwrap().vms.is_empty());
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

/// `KeepCorrupt` reports a corrupt file and leaves it byte for byte, with nothing beside
/// it; `ReadWrite` (cleanup's) moves it aside and starts a new one.
#[test]
fn keep_corrupt_leaves_a_corrupt_file_where_read_write_moves_it() {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("smolvm.db");
    let garbage = b"not a database at all, but long enough to be read as one".to_vec();
    std::fs::write(&db, &garbage).unwrap();
    let (s, c) = StateStore::open(&db, OpenMode::KeepCorrupt, Duration::from_secs(1)).unwrap();
    let c = c.expect("reported");
    assert_eq!(
        (c.path.as_path(), c.moved_to.as_ref()),
        (db.as_path(), None)
    );
    assert!(s.list_vms().unwrap().vms.is_empty());
    drop(s);
    assert_eq!(std::fs::read(&db).unwrap(), garbage);
    let names: Vec<String> = snapshot(t.path()).into_keys().collect();
    assert_eq!(names, ["smolvm.db"]);
    let (_, c) = StateStore::open(&db, OpenMode::ReadWrite, Duration::from_secs(1)).unwrap();
    assert!(c.and_then(|c| c.moved_to).is_some_and(|to| to.exists()));
    assert_ne!(std::fs::read(&db).unwrap(), garbage);
}

/// A database in SmolVM's schema with rows inserted raw (values as SQL literals).
fn raw_store(t: &Path, vms: &[(&str, &str, &str, &str)], extra_sql: &str) -> StateStore {
    let db = t.join("smolvm.db");
    let c = Connection::open(&db).unwrap();
    c.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
    c.execute_batch(SCHEMA).unwrap();
    for (i, (id, status, pid, network)) in vms.iter().enumerate() {
        c.execute_batch(&format!(
            "INSERT INTO vms (id, status, config, network, pid, created_at, updated_at)
             VALUES ({id}, {status}, '{{}}', {network}, {pid}, '2026-05-07T12:00:{i:02}', 'x')"
        ))
        .unwrap();
    }
    c.execute_batch(extra_sql).unwrap();
    drop(c);
    open(&db)
}

#[test]
fn rows_with_invalid_values_are_skipped_with_their_reasons() {
    let t = tempfile::tempdir().unwrap();
    let net = |tap: &str| {
        format!(
            "'{{\"guest_ip\":\"172.16.0.2\",\"tap_device\":\"{tap}\",\"ssh_host_port\":2200,\"mode\":\"nat\"}}'"
        )
    };
    let s = raw_store(
        t.path(),
        &[
            ("'vm-good'", "'running'", "4242", &net("tap2")),
            ("'vm-slirp'", "'stopped'", "NULL", &net("usernet")),
            ("'vm-bridge'", "'stopped'", "NULL", &net("svmb0a1b2c3d")),
            ("'vm-badpid'", "'stopped'", "'abc'", "NULL"),
            ("'vm-negpid'", "'stopped'", "-5", "NULL"),
            ("'vm-bigpid'", "'stopped'", "4294967296", "NULL"),
            ("'vm-realpid'", "'stopped'", "1.5", "NULL"),
            ("'../victim/precious'", "'stopped'", "NULL", "NULL"),
            ("'/abs/x'", "'stopped'", "NULL", "NULL"),
            ("''", "'stopped'", "NULL", "NULL"),
            ("'VM-UPPER'", "'stopped'", "NULL", "NULL"),
            ("'vm' || char(0) || 'x'", "'stopped'", "NULL", "NULL"),
            ("x'766d2d62'", "'stopped'", "NULL", "NULL"),
            ("'vm-status'", "'bogus'", "NULL", "NULL"),
            ("'vm-eth0'", "'stopped'", "NULL", &net("eth0")),
            ("'vm-docker0'", "'stopped'", "NULL", &net("docker0")),
            ("'vm-slash'", "'stopped'", "NULL", &net("tap2/../x")),
            ("'vm-json'", "'stopped'", "NULL", "'{not json'"),
            (
                "'vm-ip'",
                "'stopped'",
                "NULL",
                "'{\"guest_ip\":\"172.16.0.300\"}'",
            ),
            ("'vm-port0'", "'stopped'", "NULL", "'{\"ssh_host_port\":0}'"),
            (
                "'vm-port-big'",
                "'stopped'",
                "NULL",
                "'{\"ssh_host_port\":70000}'",
            ),
        ],
        "UPDATE vms SET socket_path = '/run/../etc/fc-vm-good.sock' WHERE id = 'vm-status';
         INSERT INTO vms (id, status, config, socket_path, created_at, updated_at)
            VALUES ('vm-sock', 'stopped', '{}', 'relative/fc-vm-sock.sock', 'z', 'z');",
    );
    let rows = s.list_vms().unwrap();
    assert_eq!(
        rows.vms.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(),
        ["vm-good", "vm-slirp", "vm-bridge"]
    );
    let skipped: Vec<(&str, &str)> = rows
        .skipped
        .iter()
        .map(|r| (r.id.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(skipped.len(), 19, "{skipped:#?}");
    for (id, reason) in [
        ("\"vm-badpid\"", "pid \"abc\" is not a process id"),
        ("\"vm-negpid\"", "pid -5 is not a process id"),
        ("\"vm-bigpid\"", "pid 4294967296 is not a process id"),
        ("\"vm-realpid\"", "pid 1.5 is not a process id"),
        ("\"../victim/precious\"", "id \"../victim/precious\" is not a valid VM id"),
        ("\"/abs/x\"", "id \"/abs/x\" is not a valid VM id"),
        ("\"\"", "id \"\" is not a valid VM id"),
        ("\"VM-UPPER\"", "id \"VM-UPPER\" is not a valid VM id"),
        ("\"vm\\0x\"", "id \"vm\\0x\" is not a valid VM id"),
        ("a 4-byte blob", "id a 4-byte blob is not a valid VM id"),
        (
            "\"vm-status\"",
            "status \"bogus\" is not one of created, running, paused, stopped, error",
        ),
        (
            "\"vm-eth0\"",
            "network.tap_device \"eth0\" is not a device smolvm creates (tap<N>, svmb<8 hex digits>, usernet)",
        ),
        ("\"vm-ip\"", "network.guest_ip \"172.16.0.300\" is not an IPv4 address"),
        ("\"vm-port0\"", "network.ssh_host_port 0 is not a port"),
        (
            "\"vm-sock\"",
            "socket_path \"relative/fc-vm-sock.sock\" is not an absolute path without '.' or '..'",
        ),
    ] {
        assert!(skipped.contains(&(id, reason)), "{id}: {reason}\n{skipped:#?}");
    }
    let by_id = |id: &str| rows.skipped.iter().find(|r| r.id == id).unwrap();
    assert_eq!(by_id("\"vm-badpid\"").vm_id.as_deref(), Some("vm-badpid"));
    assert_eq!(by_id("\"/abs/x\"").vm_id, None);
    assert!(by_id("\"vm-json\"")
        .reason
        .starts_with("network is not a NetworkConfig"));
    assert!(by_id("\"vm-port-big\"")
        .reason
        .starts_with("network is not a NetworkConfig"));
    assert_eq!(
        by_id("\"vm-badpid\"").to_string(),
        "state database: skipped vms row \"vm-badpid\": pid \"abc\" is not a process id (it is left alone; fix or delete it)"
    );

    // get_vm: the valid row, a clear error for an invalid one, nothing for no row.
    assert_eq!(s.get_vm("vm-good").unwrap().unwrap().pid, Some(4242));
    let e = s.get_vm("vm-badpid").unwrap_err();
    assert!(matches!(e, StateError::InvalidRow { .. }));
    assert_eq!(
        e.to_string(),
        format!(
            "state database {}: the vms row of \"vm-badpid\" is invalid: pid \"abc\" is not a process id; fix or delete that row",
            s.path().display()
        )
    );
    assert!(s.get_vm("../victim/precious").is_err());
    assert_eq!(s.get_vm("vm-none").unwrap(), None);
}

#[test]
fn lease_rows_with_invalid_values_are_skipped_and_pending_taps_are_not_devices() {
    let t = tempfile::tempdir().unwrap();
    let s = raw_store(
        t.path(),
        &[("'vm-a'", "'running'", "NULL", "NULL")],
        "INSERT INTO ip_leases VALUES ('172.16.0.2', 'vm-a', 'tap2', 'x');
         INSERT INTO ip_leases VALUES ('172.16.0.3', 'vm-b', 'eth0', 'x');
         INSERT INTO ip_leases VALUES ('172.16.0.4', 'vm-c', 'usernet', 'x');
         INSERT INTO ip_leases VALUES ('172.16.0.5', 'vm-new', 'pending', 'x');
         INSERT INTO ip_leases VALUES ('nope', 'vm-d', 'tap6', 'x');
         INSERT INTO ip_leases VALUES ('172.16.0.7', '../x', 'tap7', 'x');
         INSERT INTO ip_leases VALUES ('172.16.0.8', 'vm-e', 'tap 8', 'x');
         INSERT INTO ssh_forwards VALUES ('vm-a', 2200, 22, 'x');
         INSERT INTO ssh_forwards VALUES ('vm-b', 0, 22, 'x');
         INSERT INTO ssh_forwards VALUES ('vm-c', 70000, 22, 'x');
         INSERT INTO ssh_forwards VALUES ('vm-d', 2203, 'ssh', 'x');
         INSERT INTO tap_allocations VALUES ('vm-a', 'svmb0a1b2c3d', 'bridge', 'br0', 'x');
         INSERT INTO tap_allocations VALUES ('vm-b', 'docker0', 'bridge', 'br0', 'x');
         INSERT INTO tap_allocations VALUES ('vm-c', 'svmb00000001', 'weird', NULL, 'x');
         INSERT INTO tap_allocations VALUES ('vm-d', 'svmb00000002', 'bridge', 'br0:1', 'x');",
    );
    let l = s.leases().unwrap();
    assert_eq!(l.ips.len(), 1);
    assert_eq!(l.ips["vm-a"], ("172.16.0.2".into(), "tap2".into()));
    assert_eq!(l.pending_ips["vm-new"], "172.16.0.5");
    assert_eq!(l.ssh.len(), 1);
    assert_eq!(l.ssh["vm-a"], (2200, 22));
    assert_eq!(l.taps.len(), 1);
    assert_eq!(l.taps["vm-a"].tap_device, "svmb0a1b2c3d");
    let skipped: Vec<String> = l
        .skipped
        .iter()
        .map(|r| format!("{} {} {}", r.table, r.id, r.reason))
        .collect();
    assert_eq!(
        skipped,
        [
            "ip_leases \"vm-b\" tap_device \"eth0\" is not a TAP smolvm creates (tap<N>, svmb<8 hex digits>)",
            "ip_leases \"vm-c\" tap_device \"usernet\" is not a TAP smolvm creates (tap<N>, svmb<8 hex digits>)",
            "ip_leases \"vm-d\" ip \"nope\" is not an IPv4 address",
            "ip_leases \"../x\" vm_id \"../x\" is not a valid VM id",
            "ip_leases \"vm-e\" tap_device \"tap 8\" is not a TAP smolvm creates (tap<N>, svmb<8 hex digits>)",
            "ssh_forwards \"vm-b\" host_port 0 is not a port (1-65535)",
            "ssh_forwards \"vm-c\" host_port 70000 is not a port (1-65535)",
            "ssh_forwards \"vm-d\" guest_port \"ssh\" is not a port (1-65535)",
            "tap_allocations \"vm-b\" tap_device \"docker0\" is not a TAP smolvm creates (tap<N>, svmb<8 hex digits>)",
            "tap_allocations \"vm-c\" mode \"weird\" is not nat or bridge",
            "tap_allocations \"vm-d\" bridge_name \"br0:1\" is not an interface name",
        ]
    );
}

#[test]
fn device_name_rules() {
    for ok in ["tap2", "tap65534", "svmb0a1b2c3d", "usernet"] {
        assert!(is_smolvm_device(ok), "{ok}");
    }
    for bad in [
        "",
        "tap",
        "tapx",
        "tap02",
        "tap-1",
        "tap65536",
        "tap123456789012",
        "svmb0A1B2C3D",
        "svmb0a1b2c3",
        "svmb0a1b2c3d4",
        "eth0",
        "docker0",
        "wg0",
        "lo",
        "tap2/..",
        "tap2:1",
        "tap 2",
        "tap2\0",
        "../tap2",
    ] {
        assert!(!is_smolvm_device(bad), "{bad:?}");
    }
    assert!(!is_smolvm_tap("usernet"));
    assert!(is_ifname("br0") && is_ifname("a-very-long-nm") && !is_ifname("sixteen-bytes-xx"));
    assert!(!is_ifname("br 0") && !is_ifname("br/0") && !is_ifname("..") && !is_ifname(""));
}

/// Several smolvm commands at once on a machine with no state database yet (a CI job
/// starting sandboxes in parallel): each opens it, the first creates it, none fails as
/// "locked" (one of two warm starts did: the other was making the file at that moment,
/// and SQLite answered busy at once, without waiting).
#[test]
fn commands_at_once_on_a_new_database_all_open_it() {
    let mut failures = Vec::new();
    for _ in 0..40 {
        let t = tempfile::tempdir().unwrap();
        let db = t.path().join("state").join("smolvm.db");
        let go = std::sync::Arc::new(std::sync::Barrier::new(6));
        let opens: Vec<_> = (0..6)
            .map(|_| {
                let (db, go) = (db.clone(), go.clone());
                std::thread::spawn(move || {
                    go.wait();
                    StateStore::open(&db, OpenMode::ReadWrite, Duration::from_secs(10))
                        .and_then(|(s, _)| s.list_vms().map(drop))
                        .err()
                        .map(|e| e.to_string())
                })
            })
            .collect();
        failures.extend(opens.into_iter().filter_map(|h| h.join().unwrap()));
    }
    assert!(
        failures.is_empty(),
        "{} opens failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
}
