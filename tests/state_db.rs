//! The state database as the real binary reads it: a SmolVM (Python) writer killed
//! mid-transaction, rows with invalid values, a file this user cannot write. Real SQLite
//! files, the real `smolvm` binary.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use support::cleanup::NetNs;
use support::sqlite::{expected_ids, have_python_sqlite3, hot_journal_db, snapshot};
use support::{is_root, json, stderr, Home};

const SCHEMA: &str = include_str!("../src/sys/state/schema.sql");

macro_rules! require_python {
    () => {
        if !have_python_sqlite3() {
            eprintln!("SKIPPED: needs python3 with sqlite3 (SmolVM's writer)");
            return;
        }
    };
}

fn listed_ids(out: &Output) -> Vec<String> {
    let v = json(out);
    assert_eq!(v["exit_code"], 0, "{v}\n{}", stderr(out));
    v["data"]["vms"]
        .as_array()
        .unwrap_or_else(|| panic!("no vms: {v}"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn no_corrupt_copies(dir: &Path) {
    let names: Vec<String> = snapshot(dir).into_keys().collect();
    assert!(
        !names.iter().any(|n| n.contains(".corrupt-")),
        "moved aside: {names:?}"
    );
}

/// `smolvm <args>` as the unprivileged user 65534 (nobody), with this test's environment.
fn as_nobody(h: &Home, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(assert_cmd::cargo::cargo_bin("smolvm"))
        .args(args)
        .env_clear()
        .envs(h.env_vars())
        .output()
        .unwrap()
}

#[test]
fn dry_runs_read_every_committed_row_past_a_hot_journal_and_change_nothing() {
    require_python!();
    let h = Home::new();
    hot_journal_db(&h.data.join("smolvm.db"), 30, SCHEMA);
    let before = snapshot(&h.data);

    let out = h.ok(&["sandbox", "list", "--all", "--json"]);
    assert_eq!(listed_ids(&out), expected_ids(30));
    assert_eq!(
        snapshot(&h.data),
        before,
        "sandbox list changed the data dir"
    );

    let human = h.run(&["sandbox", "list", "--all"]);
    assert_eq!(human.status.code(), Some(0), "{}", stderr(&human));
    assert_eq!(snapshot(&h.data), before);

    if is_root() {
        let ns = NetNs::new();
        let out = ns.smolvm(&h, &["cleanup", "--dry-run", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let v = json(&out);
        assert_eq!(strings(&v["data"]["targets"]), expected_ids(30), "{v}");
        assert_eq!(
            v["data"]["corrupt_database"],
            serde_json::Value::Null,
            "{v}"
        );
        assert_eq!(
            snapshot(&h.data),
            before,
            "cleanup --dry-run changed the data dir"
        );
    }
}

#[test]
fn doctor_reads_past_a_hot_journal_without_calling_it_corrupt_or_changing_anything() {
    require_python!();
    let h = Home::new();
    hot_journal_db(&h.data.join("smolvm.db"), 5, SCHEMA);
    let before = snapshot(&h.data);
    let out = h.run(&["doctor", "--json"]);
    let check = support::doctor_check(&json(&out), "state-db");
    assert_eq!(check["status"], "pass", "{check}");
    assert_eq!(snapshot(&h.data), before, "doctor changed the data dir");
}

/// A hot journal: `sandbox info` (a read) sees the rows as they were before the
/// interrupted write and leaves both files as they are; the next command that writes
/// recovers the journal in place — never "corrupt", never moved aside.
#[test]
fn a_hot_journal_is_read_by_info_and_recovered_in_place_by_a_writer() {
    require_python!();
    let h = Home::new();
    hot_journal_db(&h.data.join("smolvm.db"), 30, SCHEMA);
    let before = snapshot(&h.data);
    let out = h.ok(&["sandbox", "info", "vm-17", "--json"]);
    assert_eq!(json(&out)["data"]["id"], "vm-17");
    assert!(!stderr(&out).contains("Warning"), "{}", stderr(&out));
    assert_eq!(
        snapshot(&h.data).len(),
        before.len(),
        "a read changed the data dir"
    );
    assert!(h.data.join("smolvm.db-journal").exists());

    let out = h.ok(&["sandbox", "delete", "vm-17", "--json"]);
    assert_eq!(json(&out)["data"]["deleted"][0], "vm-17");
    assert!(!stderr(&out).contains("Warning"), "{}", stderr(&out));
    no_corrupt_copies(&h.data);
    assert!(!h.data.join("smolvm.db-journal").exists());
    let c = rusqlite::Connection::open(h.data.join("smolvm.db")).unwrap();
    let n: i64 = c
        .query_row("SELECT COUNT(*) FROM vms", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 29);
}

#[test]
fn a_user_who_cannot_write_the_database_reads_a_private_copy() {
    require_python!();
    if !is_root() || Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("SKIPPED: needs root and setpriv to run the binary as another user");
        return;
    }
    let h = Home::new();
    hot_journal_db(&h.data.join("smolvm.db"), 12, SCHEMA);
    // Readable, not writable, by nobody.
    for p in [h.tmp.path(), h.home.as_path(), &h.data] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for f in ["smolvm.db", "smolvm.db-journal"] {
        std::fs::set_permissions(h.data.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let before = snapshot(&h.data);

    let out = as_nobody(&h, &["sandbox", "list", "--all", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(listed_ids(&out), expected_ids(12));

    let out = as_nobody(&h, &["sandbox", "info", "vm-11", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["data"]["id"], "vm-11");

    assert_eq!(
        snapshot(&h.data),
        before,
        "an unprivileged read changed the data dir"
    );
}

/// A command that writes (here `sandbox stop`) and finds the database corrupt leaves it
/// byte for byte where it is and fails with the fix (cleanup, which adopts the running
/// sandboxes into a new database, is what moves it aside: tests/cleanup.rs); a read
/// (`sandbox info`) leaves it too: tests/readonly.rs.
#[test]
fn a_corrupt_database_found_by_a_writer_is_left_with_the_fix() {
    let h = Home::new();
    std::fs::create_dir_all(&h.data).unwrap();
    let garbage = b"this is not a database, just some text that is long enough";
    std::fs::write(h.data.join("smolvm.db"), garbage).unwrap();
    for args in [
        &["sandbox", "stop", "vm-1", "--json"][..],
        &["sandbox", "delete", "vm-1", "--force", "--json"],
        &[
            "sandbox",
            "network",
            "set",
            "vm-1",
            "--internet",
            "off",
            "--json",
        ],
    ] {
        let out = h.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let v = json(&out);
        assert_eq!(
            v["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .split(" (")
                .next(),
            Some(
                format!(
                    "state database {} is corrupt",
                    h.data.join("smolvm.db").display()
                )
                .as_str()
            ),
            "{args:?}: {v}"
        );
        assert!(
            v["error"]["recovery"]
                .as_str()
                .unwrap_or_default()
                .starts_with("Run 'smolvm cleanup --dry-run'"),
            "{args:?}: {v}"
        );
        no_corrupt_copies(&h.data);
        assert_eq!(std::fs::read(h.data.join("smolvm.db")).unwrap(), garbage);
    }
}

/// Raw rows in SmolVM's schema: `(id, status, pid, network JSON)` (`pid` and `id` as SQL
/// literals, so a test can store what SmolVM's types never would), plus raw `ip_leases`.
fn raw_db(data: &Path, vms: &[(&str, &str, &str, Option<&str>)], leases: &[(&str, &str, &str)]) {
    std::fs::create_dir_all(data).unwrap();
    let c = rusqlite::Connection::open(data.join("smolvm.db")).unwrap();
    c.execute_batch(SCHEMA).unwrap();
    for (i, (id, status, pid, network)) in vms.iter().enumerate() {
        let ts = format!("2026-05-07T12:00:{i:02}.000000+00:00");
        c.execute(
            &format!(
                "INSERT INTO vms (id, status, config, network, pid, created_at, updated_at)
                 VALUES ({id}, ?1, '{{\"backend\":\"qemu\"}}', ?2, {pid}, ?3, ?3)"
            ),
            rusqlite::params![status, network, ts],
        )
        .unwrap();
    }
    for (ip, vm, tap) in leases {
        c.execute(
            "INSERT INTO ip_leases VALUES (?1, ?2, ?3, 'x')",
            rusqlite::params![ip, vm, tap],
        )
        .unwrap();
    }
}

const NAT: &str = r#"{"guest_ip":"172.16.0.2","gateway_ip":"172.16.0.1","netmask":"255.255.255.0","tap_device":"tap2","guest_mac":"AA:FC:00:00:00:02","ssh_host_port":2200,"mode":"nat","bridge":null}"#;
const ETH0: &str = r#"{"guest_ip":"172.16.0.3","gateway_ip":"172.16.0.1","netmask":"255.255.255.0","tap_device":"eth0","guest_mac":"AA:FC:00:00:00:03","ssh_host_port":2201,"mode":"nat","bridge":null}"#;

/// Good rows, and rows SmolVM never writes: a mistyped pid, ids that are paths, a network
/// naming the host's `eth0`, a lease naming it.
fn mixed_db(data: &Path) {
    raw_db(
        data,
        &[
            ("'vm-good-1'", "stopped", "NULL", None),
            ("'vm-badpid'", "stopped", "'abc'", None),
            ("'vm-good-2'", "stopped", "NULL", Some(NAT)),
            ("'../victim/precious'", "stopped", "NULL", None),
            ("'/abs/x'", "stopped", "NULL", None),
            ("'vm-eth0'", "stopped", "NULL", Some(ETH0)),
            ("'vm-lease'", "stopped", "NULL", None),
        ],
        &[
            ("172.16.0.2", "vm-good-2", "tap2"),
            ("172.16.0.7", "vm-lease", "eth0"),
        ],
    );
}

const GOOD: [&str; 3] = ["vm-good-1", "vm-good-2", "vm-lease"];

/// Each bad row is named in exactly one warning.
fn assert_reports_bad_rows(warnings: &[String]) {
    for bad in [
        "\"vm-badpid\"",
        "\"../victim/precious\"",
        "\"/abs/x\"",
        "\"vm-eth0\"",
        "\"vm-lease\"",
    ] {
        assert_eq!(
            warnings.iter().filter(|w| w.contains(bad)).count(),
            1,
            "{bad} in {warnings:#?}"
        );
    }
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("eth0") && w.contains("ip_leases")),
        "{warnings:#?}"
    );
}

#[test]
fn invalid_rows_are_reported_and_skipped_by_sandbox_list() {
    let h = Home::new();
    mixed_db(&h.data);
    let out = h.ok(&["sandbox", "list", "--all", "--json"]);
    assert_eq!(listed_ids(&out), GOOD);
    assert_reports_bad_rows(&strings(&json(&out)["data"]["warnings"]));

    let out = h.ok(&["sandbox", "list", "--all"]);
    let err = stderr(&out);
    let mut warnings: Vec<String> = err.lines().map(str::to_string).collect();
    // The last line names the database read; every other one is a warning.
    let state = warnings.pop().unwrap_or_default();
    assert!(state.starts_with("State: "), "{err}");
    assert!(warnings.iter().all(|w| w.starts_with("Warning: ")), "{err}");
    assert_reports_bad_rows(&warnings);
    for id in GOOD {
        assert!(
            support::stdout(&out).contains(id),
            "{}",
            support::stdout(&out)
        );
    }

    let out = h.run(&["sandbox", "info", "vm-badpid", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let msg = json(&out)["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("vm-badpid") && msg.contains("pid"), "{msg}");
}

#[test]
fn invalid_rows_are_reported_and_never_acted_on_by_cleanup() {
    require_root!("(network namespaces)");
    let (h, ns) = (Home::new(), NetNs::new());
    mixed_db(&h.data);
    // What the path-shaped id would name if it were ever used as one.
    let victim_log = h.tmp.path().join("victim/precious.log");
    let victim_disk = h.data.join("victim/precious.ext4");
    // Files of VMs whose rows are skipped: theirs, not orphans.
    let badpid_log = h.data.join("vm-badpid.log");
    let eth0_disk = h.data.join("disks/vm-eth0.ext4");
    let kept = [&victim_log, &victim_disk, &badpid_log, &eth0_disk];
    for f in kept {
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, b"precious").unwrap();
    }

    let out = ns.smolvm(&h, &["cleanup", "--dry-run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(strings(&v["data"]["targets"]), GOOD, "{v}");
    assert_reports_bad_rows(&strings(&v["data"]["warnings"]));

    let out = ns.smolvm(&h, &["cleanup", "--all", "--force", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(strings(&v["data"]["deleted"]), GOOD, "{v}");
    assert_reports_bad_rows(&strings(&v["data"]["warnings"]));
    for f in kept {
        assert_eq!(std::fs::read(f).unwrap(), b"precious", "{}", f.display());
    }
    assert_eq!(
        support::cleanup::row_ids(&h.data),
        ["vm-badpid", "../victim/precious", "/abs/x", "vm-eth0"]
    );
}

/// `sandbox list` shows the preset a sandbox was started from, as the dashboard's VMs
/// pane does (and `--preset` filters on): both read the one row-to-cell rule.
#[test]
fn sandbox_list_shows_the_preset_column() {
    let h = Home::new();
    std::fs::create_dir_all(&h.data).unwrap();
    let db = h.data.join("smolvm.db");
    let disk = h.tmp.path().join("disk.ext4");
    std::fs::write(&disk, b"").unwrap();
    support::smolvm_db_with_vm(&db, "vm-plain", "stopped", &disk, &disk);
    support::smolvm_db_with_vm(&db, "vm-agent", "stopped", &disk, &disk);
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute(
        "UPDATE vms SET config = json_set(config, '$.preset', 'codex') WHERE id = 'vm-agent'",
        [],
    )
    .unwrap();
    drop(c);
    let out = h
        .smolvm()
        .args(["sandbox", "list", "--all"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
    let text = support::stdout(&out);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "STATUS", "BACKEND", "PRESET", "TEMPLATE", "IP", "PID", "CREATED"],
        "{text}"
    );
    let preset_of = |id: &str| {
        text.lines()
            .find(|l| l.starts_with(id))
            .map(|l| l.split_whitespace().nth(3).unwrap().to_string())
            .unwrap_or_else(|| panic!("{id} not listed: {text}"))
    };
    assert_eq!(preset_of("vm-agent"), "codex");
    assert_eq!(preset_of("vm-plain"), "-");
}

/// Every list says which state database it read, on stderr after its table (a script
/// reading the table from stdout gets the rows only), with the home shown as `~`, also when
/// nothing is listed or no database exists yet; `--json` always has `state_db` (the path
/// read, with `state_db_exists`) and `writes_to`.
#[test]
fn sandbox_and_snapshot_lists_name_the_state_database_they_read() {
    let h = Home::new();
    let data = h.home.join(".local/state/smolvm");
    let db = data.join("smolvm.db");
    let run = |args: &[&str]| h.run_env(args, "SMOLVM_DATA_DIR", &data);
    let last_err = |out: &Output| stderr(out).lines().last().unwrap_or("").to_string();
    // No database yet: nothing was read, and the line says so.
    for args in [&["sandbox", "list"][..], &["sandbox", "list", "--all"]] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert!(support::stdout(&out).starts_with("No "), "{args:?}");
        assert!(!support::stdout(&out).contains("State:"), "{args:?}");
        assert_eq!(
            last_err(&out),
            "State: ~/.local/state/smolvm/smolvm.db (none yet)",
            "{args:?}"
        );
    }
    let v = json(&run(&["sandbox", "list", "--json"]));
    assert_eq!(v["data"]["state_db"], db.to_str().unwrap(), "{v}");
    assert_eq!(v["data"]["state_db_exists"], false, "{v}");
    assert_eq!(v["data"]["writes_to"], db.to_str().unwrap(), "{v}");
    assert!(!db.exists(), "a list created the database");
    // A database with a sandbox and a snapshot.
    std::fs::create_dir_all(&data).unwrap();
    let disk = h.tmp.path().join("disk.ext4");
    std::fs::write(&disk, b"").unwrap();
    support::smolvm_db_with_vm(&db, "vm-one", "stopped", &disk, &disk);
    for args in [
        &["sandbox", "list"][..],
        &["sandbox", "list", "--all"],
        &["sandbox", "snapshot", "list"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        let text = support::stdout(&out);
        assert!(!text.contains("State:"), "{args:?}: {text}");
        assert_eq!(
            last_err(&out),
            "State: ~/.local/state/smolvm/smolvm.db",
            "{args:?}"
        );
    }
    // The table on stdout is the header and the rows, nothing else.
    let out = run(&["sandbox", "list", "--all"]);
    let text = support::stdout(&out);
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{text}");
    assert!(rows[0].starts_with("vm-one "), "{text}");
    for args in [
        &["sandbox", "list", "--all", "--json"][..],
        &["sandbox", "snapshot", "list", "--json"],
    ] {
        let v = json(&run(args));
        assert_eq!(v["data"]["state_db"], db.to_str().unwrap(), "{args:?}: {v}");
        assert_eq!(v["data"]["state_db_exists"], true, "{args:?}: {v}");
        assert_eq!(
            v["data"]["writes_to"],
            db.to_str().unwrap(),
            "{args:?}: {v}"
        );
    }
}

/// `image ls` names the images root it listed (in its last line on stdout, as before) and,
/// on stderr, the state databases whose sandboxes its IN USE column comes from; `--json`
/// has `images_root` and `state_dbs`.
#[test]
fn image_ls_names_the_state_databases_its_in_use_column_read() {
    let h = Home::new();
    let data = h.home.join(".local/state/smolvm");
    let db = data.join("smolvm.db");
    let run = |args: &[&str]| h.run_env(args, "SMOLVM_DATA_DIR", &data);
    let out = run(&["image", "ls"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        support::stdout(&out).contains("~/.smolvm/images"),
        "{}",
        support::stdout(&out)
    );
    assert_eq!(
        stderr(&out).lines().last(),
        Some("State: none yet (no sandbox uses an image)"),
        "{}",
        stderr(&out)
    );
    let v = json(&run(&["image", "ls", "--json"]));
    assert_eq!(v["data"]["state_dbs"], serde_json::json!([]), "{v}");
    std::fs::create_dir_all(&data).unwrap();
    let disk = h.tmp.path().join("disk.ext4");
    std::fs::write(&disk, b"").unwrap();
    support::smolvm_db_with_vm(&db, "vm-one", "stopped", &disk, &disk);
    let out = run(&["image", "ls"]);
    assert_eq!(
        stderr(&out).lines().last(),
        Some("State: ~/.local/state/smolvm/smolvm.db"),
        "{}",
        stderr(&out)
    );
    assert!(!support::stdout(&out).contains("State:"));
    let v = json(&run(&["image", "ls", "--json"]));
    assert_eq!(
        v["data"]["state_dbs"],
        serde_json::json!([db.to_str().unwrap()]),
        "{v}"
    );
    assert_eq!(
        v["data"]["images_root"],
        h.images().to_str().unwrap(),
        "{v}"
    );
}
