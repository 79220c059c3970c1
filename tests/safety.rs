//! Safe as root on a shared host: regression tests for what an adversarial review found
//! smolvm deleting that was not its own. Each runs the real binary as root in its own mount
//! namespace (`unshare -m`) and/or network namespace (`ip netns`).

mod support;

use std::path::Path;
use std::process::Command;

use support::cleanup::{insert_rows, row_ids, run_with_pty_then, NetNs, QemuStandIn, Row};
use support::{json, stderr, stdout, Home};

/// Run `script` with `sh -ec` in a private mount namespace, with `$SMOLVM` the binary and
/// the test's environment; returns (status code, stdout, stderr).
fn in_mount_ns(h: &Home, script: &str) -> (Option<i32>, String, String) {
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-ec", script])
        .env_clear()
        .envs(h.env_vars())
        .env("SMOLVM", assert_cmd::cargo::cargo_bin("smolvm"))
        .output()
        .expect("unshare (util-linux)");
    (out.status.code(), stdout(&out), stderr(&out))
}

fn write(p: &Path, text: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

// 1. prune crosses mounts: a bind mount of the same file system inside a stale cache, a
//    stale cache that is itself a bind mount, a tmpfs mounted on a stale cache.
#[test]
fn prune_refuses_every_kind_of_mount_and_deletes_nothing_behind_it() {
    require_root!();
    let h = Home::new();
    let outside = h.tmp.path().join("outside");
    write(&outside.join("inner/precious"), "inner");
    write(&outside.join("whole/precious"), "whole");
    let inside = h.cache("0.0.10", 4096);
    std::fs::create_dir(inside.join("sub")).unwrap();
    h.cache("0.0.11", 0);
    h.cache("0.0.12", 0);
    h.cache("0.0.13", 4096); // an ordinary stale cache: still removed
    let img = h.images();
    let script = format!(
        "mount --bind {o}/inner {i}/0.0.10/sub
         mount --bind {o}/whole {i}/0.0.11
         mount -t tmpfs none {i}/0.0.12 && echo tmp > {i}/0.0.12/precious
         status=0; \"$SMOLVM\" prune --json > {t}/out.json || status=$?
         cat {i}/0.0.12/precious
         exit $status",
        o = outside.display(),
        i = img.display(),
        t = h.tmp.path().display()
    );
    let (code, out, err) = in_mount_ns(&h, &script);
    assert_eq!(code, Some(1), "{out}{err}");
    assert_eq!(out, "tmp\n", "the tmpfs's file was deleted: {err}");
    assert_eq!(
        std::fs::read_to_string(outside.join("inner/precious")).unwrap(),
        "inner"
    );
    assert_eq!(
        std::fs::read_to_string(outside.join("whole/precious")).unwrap(),
        "whole"
    );
    // The cache holding a mount is left whole: nothing in it was deleted either.
    assert!(inside.join("rootfs.ext4").is_file());
    assert!(!img.join("0.0.13").exists());
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(h.tmp.path().join("out.json")).unwrap())
            .unwrap();
    let failed: Vec<(String, String)> = v["data"]["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string(),
                f["error"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(failed.len(), 3, "{v}");
    for (name, error) in &failed {
        assert!(["0.0.10", "0.0.11", "0.0.12"].contains(&name.as_str()));
        assert!(error.contains("mount"), "{name}: {error}");
    }
}

/// The user state dir's database (a candidate database that is not the active one).
fn user_db_dir(h: &Home) -> std::path::PathBuf {
    h.home.join(".local/state/smolvm")
}

// 3. cleanup killed processes that are not its VMMs: any process whose arguments name a
//    control socket in the socket dir, and a VM recorded in another candidate database.
#[test]
fn cleanup_never_signals_a_process_that_is_not_provably_its_vmm() {
    require_root!();
    let (h, ns) = (Home::new(), NetNs::new());
    let sockets = h.sockets();
    // Not a VMM binary, though its arguments name a control socket in our socket dir.
    let fake = sockets.join("fc-vm-zzz.sock");
    std::fs::write(&fake, "").unwrap();
    let mut tail = Command::new("tail").arg("-f").arg(&fake).spawn().unwrap();
    // A real VMM started with this install's files, but recorded in the user's database
    // (root's cleanup on a shared host, the user's VM).
    let mut users = QemuStandIn::started_here(&ns, &h, "vm-user", None);
    insert_rows(
        &user_db_dir(&h),
        &sockets,
        &[Row {
            id: "vm-user",
            status: "running",
            pid: Some(users.pid()),
            tap: None,
            backend: "qemu",
        }],
    );
    // A VMM recorded nowhere and not started with this install's files.
    let mut stranger = QemuStandIn::start(&ns, &sockets, "vm-stranger", None);
    let dry = ns.smolvm(&h, &["cleanup", "--dry-run"]);
    assert_eq!(stdout(&dry), "No matching VMs to clean.\n");
    let out = ns.smolvm(&h, &["cleanup", "--all", "--force", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["data"]["stale_resources"], serde_json::json!([]));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        support::alive(tail.id()),
        "a tail -f of a socket path was killed"
    );
    assert!(users.alive(), "a VM in the user's database was stopped");
    assert!(
        stranger.alive(),
        "a VMM not started by this install was stopped"
    );
    assert_eq!(row_ids(&user_db_dir(&h)), ["vm-user"]);
    let _ = tail.kill();
    let _ = tail.wait();
}

// 4. cleanup deleted another install's TAP and nft entries (a stopped VM in a user's
//    database could no longer boot).
#[test]
fn cleanup_leaves_taps_and_forwards_that_another_database_records() {
    require_root!();
    let (h, ns) = (Home::new(), NetNs::new());
    let sockets = h.sockets();
    ns.smolvm_nft("");
    ns.nat_tap("tap3");
    ns.ssh_forward("tap3", "172.16.0.3", 2203);
    ns.nat_tap("tap4"); // recorded nowhere: an orphan, still cleaned
    let mut user_vm = Row::stopped("vm-user-stopped");
    user_vm.tap = Some(("tap3", "172.16.0.3", 2203));
    insert_rows(&user_db_dir(&h), &sockets, &[user_vm]);
    let out = ns.smolvm(&h, &["cleanup", "--all", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Cleaned: tap tap4"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("tap3"), "{}", stdout(&out));
    let links = ns.links();
    assert!(
        links.contains("tap3") && !links.contains("tap4 "),
        "{links}"
    );
    let rules = ns.nft_ruleset();
    assert!(
        rules.contains("2203") && rules.contains("172.16.0.3"),
        "{rules}"
    );
    assert!(rules.contains("\"tap3\""), "{rules}");
}

// 5. Hostile database values: ids that are paths, a socket_path naming another file,
//    tap names of host interfaces, and a tap<N> that is not SmolVM's.
#[test]
fn hostile_database_values_never_name_what_cleanup_deletes() {
    require_root!();
    let (h, ns) = (Home::new(), NetNs::new());
    let sockets = h.sockets();
    // Host interfaces by those names (veth pairs here), and a TUN `tap5` without SmolVM's
    // address.
    ns.sh(
        "for i in eth0 docker0 wg0; do ip link add $i type veth peer name $i-p; done
           ip tuntap add tap5 mode tap",
    );
    let victim = h.tmp.path().join("victim");
    write(&victim.join("precious.log"), "log");
    std::fs::create_dir_all(h.data.join("disks")).unwrap();
    write(&victim.join("precious.ext4"), "disk");
    let elsewhere = h.tmp.path().join("elsewhere/qmp-vm-sock.sock");
    write(&elsewhere, "a regular file named like a socket");
    insert_rows(
        &h.data,
        &sockets,
        &[Row::stopped("vm-sock"), Row::stopped("vm-tap5")],
    );
    let c = rusqlite::Connection::open(h.data.join("smolvm.db")).unwrap();
    let net = |tap: &str| {
        serde_json::json!({"guest_ip": "172.16.0.9", "tap_device": tap, "ssh_host_port": 2209})
            .to_string()
    };
    c.execute(
        "UPDATE vms SET socket_path = ?1 WHERE id = 'vm-sock'",
        [elsewhere.display().to_string()],
    )
    .unwrap();
    c.execute(
        "UPDATE vms SET network = ?1 WHERE id = 'vm-tap5'",
        [net("tap5")],
    )
    .unwrap();
    for (id, tap) in [
        ("../victim/precious", "tap9"),
        (&*format!("{}/precious", victim.display()), "tap9"),
        ("vm-eth0", "eth0"),
        ("vm-docker0", "docker0"),
    ] {
        c.execute(
            "INSERT INTO vms (id, status, config, network, created_at, updated_at)
             VALUES (?1, 'stopped', '{}', ?2, 'x', 'x')",
            [id, &net(tap)],
        )
        .unwrap();
    }
    c.execute(
        "INSERT INTO vms (id, status, config, created_at, updated_at)
         VALUES ('vm-wg0', 'stopped', '{}', 'x', 'x')",
        [],
    )
    .unwrap();
    c.execute(
        "INSERT INTO ip_leases VALUES ('172.16.0.10', 'vm-wg0', 'wg0', 'x')",
        [],
    )
    .unwrap();
    drop(c);
    let out = ns.smolvm(&h, &["cleanup", "--all", "--force", "--json"]);
    let v = json(&out);
    let deleted: Vec<&str> = v["data"]["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    // vm-wg0's row is valid; only its lease naming wg0 is skipped (and never acted on).
    assert_eq!(deleted, ["vm-sock", "vm-tap5", "vm-wg0"], "{v}");
    let warnings = v["data"]["warnings"].to_string();
    for bad in ["precious", "eth0", "docker0", "wg0"] {
        assert!(warnings.contains(bad), "{bad} not reported: {warnings}");
    }
    assert_eq!(
        std::fs::read_to_string(victim.join("precious.log")).unwrap(),
        "log"
    );
    assert_eq!(
        std::fs::read_to_string(victim.join("precious.ext4")).unwrap(),
        "disk"
    );
    assert!(
        elsewhere.is_file(),
        "a file named by socket_path was removed"
    );
    let links = ns.links();
    for l in ["eth0", "docker0", "wg0", "tap5"] {
        assert!(links.contains(l), "{l} was deleted: {links}");
    }
}

// 8. Orphan-file cleanup deleted every `*.log` and `disks/*.ext4` whose name looks like
//    an id.
#[test]
fn files_in_the_data_dir_that_smolvm_did_not_make_are_never_orphans() {
    require_root!();
    let (h, ns) = (Home::new(), NetNs::new());
    h.sockets();
    for f in [
        "build.log",
        "notes.log",
        "disks/backup.ext4",
        "vm-1234abcd.log",
    ] {
        write(&h.data.join(f), "mine");
    }
    // One this install did make (its ledger entry) for a VM whose row is gone: cleaned.
    write(&h.data.join("vm-ids/vm-made"), "");
    write(&h.data.join("disks/vm-made.ext4"), "disk");
    let out = ns.smolvm(&h, &["cleanup", "--force", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let names: Vec<String> = json(&out)["data"]["stale_resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["name"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(names, ["vm-made.ext4"]);
    for f in [
        "build.log",
        "notes.log",
        "disks/backup.ext4",
        "vm-1234abcd.log",
    ] {
        assert_eq!(
            std::fs::read_to_string(h.data.join(f)).unwrap(),
            "mine",
            "{f}"
        );
    }
    assert!(!h.data.join("disks/vm-made.ext4").exists());
    assert!(!h.data.join("vm-ids/vm-made").exists());
}

// 9. Orphans were deleted without a re-check after the prompt: a TAP taken over by a new
//    VM while the prompt waited was deleted.
#[test]
fn an_orphan_taken_over_while_the_prompt_waits_is_left_alone() {
    require_root!();
    let (h, ns) = (Home::new(), NetNs::new());
    let sockets = h.sockets();
    ns.smolvm_nft("");
    ns.nat_tap("tap7");
    insert_rows(&h.data, &sockets, &[Row::stopped("keep-me")]);
    let mut vmm: Option<QemuStandIn> = None;
    let out = run_with_pty_then(
        ns.smolvm_command(&h, &["cleanup"]),
        || {
            // A new VM takes tap7 over: its row records it and its VMM holds it.
            let q = QemuStandIn::started_here(&ns, &h, "vm-new", Some("tap7"));
            insert_rows(
                &h.data,
                &sockets,
                &[Row {
                    id: "vm-new",
                    status: "running",
                    pid: Some(q.pid()),
                    tap: Some(("tap7", "172.16.0.7", 2207)),
                    backend: "qemu",
                }],
            );
            vmm = Some(q);
        },
        b"y\n",
    );
    let text = stdout(&out);
    assert!(
        text.contains("  - tap tap7"),
        "tap7 was not planned: {text}"
    );
    assert!(
        ns.links().contains("tap7"),
        "a TAP taken over meanwhile was deleted"
    );
    assert!(
        stderr(&out).contains("tap tap7 is no longer stale"),
        "{}",
        stderr(&out)
    );
    let mut q = vmm.expect("the new VM");
    assert!(q.alive(), "the new VM was stopped");
    assert!(row_ids(&h.data).contains(&"vm-new".to_string()));
}

/// TAP names are per network namespace: a VMM in another namespace holding its own `tap2`
/// does not make this namespace's `tap2` "in use" (a teardown deletes it), and the other
/// namespace's device is untouched.
#[test]
fn a_tap_held_in_another_network_namespace_does_not_block_ours() {
    require_root!();
    let (h, ns) = (Home::new(), NetNs::new());
    let other = NetNs::new();
    let sockets = h.sockets();
    ns.nat_tap("tap2");
    other.nat_tap("tap2");
    let elsewhere = h.tmp.path().join("other-sockets");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let mut holder = QemuStandIn::start(&other, &elsewhere, "vm-other", Some("tap2"));
    let mut vm = Row::stopped("vm-mine");
    vm.tap = Some(("tap2", "172.16.0.2", 2200));
    insert_rows(&h.data, &sockets, &[vm]);
    let out = ns.smolvm(&h, &["cleanup", "--force"]);
    support::assert_code(&out, 0);
    assert!(!ns.links().contains("tap2"), "{}", ns.links());
    assert!(other.links().contains("tap2"), "{}", other.links());
    assert!(holder.alive());
}

/// A stored configuration (SmolVM's `vms.config`, or one edited by anyone) names the
/// files a restart hands to QEMU running as root — its rootfs read-write, its workspace
/// folders shared with the guest. `sandbox start` boots only the disk smolvm made for the
/// id, a plainly named kernel file and resolved mount folders: anything else is refused
/// with exit 1 and a message naming the value, before a TAP, a process or the row change.
#[test]
fn a_restart_hands_qemu_only_the_paths_smolvm_made_for_the_vm() {
    require_root!();
    let h = Home::new();
    let ns = NetNs::with_uplink();
    let id = "vm-cfgchk";
    let tmp = h.tmp.path();
    let victim = tmp.join("victim.ext4");
    std::fs::write(&victim, b"not yours").unwrap();
    let kernel = tmp.join("vmlinuz");
    std::fs::write(&kernel, b"a kernel").unwrap();
    let disk = h.data.join("disks").join(format!("{id}.ext4"));
    write(&disk.clone(), "own disk");
    let db = h.data.join("smolvm.db");
    support::smolvm_db_with_vm(&db, id, "stopped", &disk, &kernel);
    let set = |key: &str, value: serde_json::Value| {
        let c = rusqlite::Connection::open(&db).unwrap();
        let cfg: String = c
            .query_row("SELECT config FROM vms WHERE id = ?1", [id], |r| r.get(0))
            .unwrap();
        let mut cfg: serde_json::Value = serde_json::from_str(&cfg).unwrap();
        cfg[key] = value;
        c.execute(
            "UPDATE vms SET config = ?1 WHERE id = ?2",
            rusqlite::params![cfg.to_string(), id],
        )
        .unwrap();
    };
    let links_before = ns.links();
    let refused = |what: &str, needle: &str| {
        let out = ns.smolvm(&h, &["sandbox", "start", id, "--json"]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{what}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        let v = json(&out);
        let m = v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            m.contains(&format!("Sandbox '{id}' has an unusable {what}")) && m.contains(needle),
            "{what}: {m}"
        );
        assert_eq!(std::fs::read(&victim).unwrap(), b"not yours");
        assert_eq!(ns.links(), links_before, "{what}: the network changed");
        let list = json(&ns.smolvm(&h, &["sandbox", "list", "--all", "--json"]));
        assert!(
            list.to_string().contains("\"stopped\""),
            "{what}: the row changed: {list}"
        );
    };

    // A rootfs that is not the VM's own disk.
    set("rootfs_path", serde_json::json!(victim));
    refused("disk", &victim.display().to_string());
    // Its own disk's name, but a symbolic link to someone else's file.
    set("rootfs_path", serde_json::json!(disk));
    std::fs::remove_file(&disk).unwrap();
    std::os::unix::fs::symlink(&victim, &disk).unwrap();
    refused("disk", "symbolic link");
    std::fs::remove_file(&disk).unwrap();
    write(&disk, "own disk");
    // A kernel behind a symbolic link, or named with `..`.
    let link = tmp.join("kernel-link");
    std::os::unix::fs::symlink(&kernel, &link).unwrap();
    set("kernel_path", serde_json::json!(link));
    refused("kernel", "symbolic link");
    let dotted = format!(
        "{}/../{}/vmlinuz",
        tmp.display(),
        tmp.file_name().unwrap().to_str().unwrap()
    );
    set("kernel_path", serde_json::json!(dotted));
    refused("kernel", "without '.' or '..'");
    set("kernel_path", serde_json::json!(kernel));
    // A workspace folder that has become a symbolic link (to /etc, say).
    let ws = tmp.join("project");
    std::os::unix::fs::symlink("/etc", &ws).unwrap();
    set(
        "mounts",
        serde_json::json!([{"host_path": ws, "guest_path": "/workspace", "tag": "workspace0", "writable": true}]),
    );
    refused("mount", "not a resolved path");
    // A mount list that does not parse is not silently dropped.
    set("mounts", serde_json::json!("everything"));
    refused("mounts", "not a list of mounts");
}
