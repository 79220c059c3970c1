//! `sudo smolvm …` (issue 22, item 7): the folders smolvm creates on the way to its own
//! inside the invoking user's home are that user's; smolvm's own folders (data dir, images
//! root) stay root's; the SSH key folder and pair are the user's, as SmolVM makes them.
//! A real user is made for the test (its home a temporary folder it owns) and smolvm runs
//! as root with the variables `sudo` sets.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use support::cleanup::NetNs;
use support::sandbox::create_args;
use support::{is_root, json};

/// A system user made for one test, deleted on drop.
struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
}

/// `useradd`/`userdel`, again while another program holds the password files' lock.
fn user_tool(args: &[&str]) -> bool {
    for _ in 0..50 {
        let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
        if out.status.success() {
            return true;
        }
        // 10: cannot lock /etc/passwd (someone else is changing it); anything else is final.
        if out.status.code() != Some(10) {
            eprintln!("{args:?}: {}", String::from_utf8_lossy(&out.stderr));
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

impl TestUser {
    fn create(home: &Path) -> Option<TestUser> {
        // One name per test: the tests of this file run at once, and two users of one
        // name would share one password entry (and one home).
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("smolvm-sudo-t{}-{n}", std::process::id());
        let ok = user_tool(&[
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            home.to_str().unwrap(),
            "--shell",
            "/usr/sbin/nologin",
            &name,
        ]);
        if !ok {
            return None;
        }
        let u = nix::unistd::User::from_name(&name).unwrap().unwrap();
        Some(TestUser {
            name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        })
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        user_tool(&["userdel", &self.name]);
    }
}

/// A test user whose home is `<dir>/home` (made, theirs); `None` (said) when no user can be
/// made here.
fn user_with_home(dir: &Path) -> Option<(std::path::PathBuf, TestUser)> {
    let home = dir.join("home");
    std::fs::create_dir(&home).unwrap();
    let Some(user) = TestUser::create(&home) else {
        eprintln!("SKIPPED: cannot make a test user (useradd)");
        return None;
    };
    std::os::unix::fs::chown(&home, Some(user.uid), Some(user.gid)).unwrap();
    Some((home, user))
}

/// A folder others may enter (`0755`, so the test user reaches its home inside it) and a
/// test user whose home is in it; `None` (said) when no user can be made here (not root).
fn open_folder_with_user() -> Option<(tempfile::TempDir, std::path::PathBuf, TestUser)> {
    if !is_root() {
        eprintln!("SKIPPED: needs root (a test user)");
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let (home, user) = user_with_home(tmp.path())?;
    Some((tmp, home, user))
}

fn owner(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .uid()
}

#[test]
fn a_sudo_run_leaves_the_users_folders_theirs_and_its_own_roots() {
    require_root!("(a test user, network namespaces)");
    let tmp = tempfile::tempdir().unwrap();
    let Some((home, user)) = user_with_home(tmp.path()) else {
        return;
    };
    let ns = NetNs::with_uplink();
    let (kernel, rootfs) = (tmp.path().join("vmlinux"), tmp.path().join("rootfs.ext4"));
    std::fs::write(&kernel, b"kernel").unwrap();
    std::fs::write(&rootfs, vec![0u8; 1 << 20]).unwrap();
    let manifest = support::images::tiny_manifest(tmp.path());
    let run = |args: &[&str]| -> Output {
        Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(assert_cmd::cargo::cargo_bin("smolvm"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("SUDO_USER", &user.name)
            .env("SUDO_UID", user.uid.to_string())
            .env("SUDO_GID", user.gid.to_string())
            .env("SUDO_COMMAND", "/usr/local/bin/smolvm")
            .env("SMOLVM_SYSTEM_DATA_DIR", tmp.path().join("system"))
            .env("SMOLVM_SOCKET_DIR", tmp.path().join("sockets"))
            .env("SMOLVM_IMAGE_VERSION", support::CURRENT)
            .env("SMOLVM_MANIFEST", &manifest)
            .output()
            .unwrap()
    };

    // A sandbox made under sudo: the data dir in the user's home, the key pair.
    let args = create_args(
        kernel.to_str().unwrap(),
        rootfs.to_str().unwrap(),
        "vm-sudo",
        "qemu",
        &["--json"],
    );
    let out = run(&args);
    support::assert_exit(&args, &out, 0);
    // An image pull (the tiny manifest's checksum is wrong: it stops at the download, after
    // making the images root).
    let out = run(&["image", "pull", "codex", "--json"]);
    assert_eq!(json(&out)["ok"], false);

    let data = home.join(".local/state/smolvm");
    for (path, uid) in [
        (home.join(".local"), user.uid),
        (home.join(".local/state"), user.uid),
        (data.clone(), 0),
        (data.join("smolvm.db"), 0),
        (data.join("disks"), 0),
        (data.join("disks/vm-sudo.ext4"), 0),
        (data.join("locks"), 0),
        (home.join(".smolvm"), user.uid),
        (home.join(".smolvm/keys"), user.uid),
        (home.join(".smolvm/keys/id_ed25519"), user.uid),
        (home.join(".smolvm/keys/id_ed25519.pub"), user.uid),
        (home.join(".smolvm/images"), 0),
    ] {
        assert_eq!(owner(&path), uid, "owner of {}", path.display());
    }
    assert_eq!(
        std::fs::metadata(home.join(".smolvm/keys")).unwrap().mode() & 0o777,
        0o700
    );
    // Whatever smolvm found there is left as it was.
    assert_eq!(owner(&home), user.uid);

    let args = ["sandbox", "delete", "vm-sudo", "--json"];
    support::assert_exit(&args, &run(&args), 0);
}

/// `sudo smolvm completion bash --install` writes as the user who ran sudo, never as root:
/// a `~/.bashrc` they point at a root-owned file is not written through (exit 1, the file
/// unchanged), and what it makes in their home is theirs.
#[test]
fn completion_install_under_sudo_writes_with_the_users_rights() {
    let Some((tmp, home, user)) = open_folder_with_user() else {
        return;
    };
    let victim = tmp.path().join("root-owned.conf");
    std::fs::write(&victim, "root's settings\n").unwrap();
    std::os::unix::fs::symlink(&victim, home.join(".bashrc")).unwrap();
    std::os::unix::fs::lchown(home.join(".bashrc"), Some(user.uid), Some(user.gid)).unwrap();
    let run = || -> Output {
        Command::new(assert_cmd::cargo::cargo_bin("smolvm"))
            .args(["completion", "bash", "--install"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", "/root")
            .env("SUDO_USER", &user.name)
            .env("SUDO_UID", user.uid.to_string())
            .env("SUDO_GID", user.gid.to_string())
            .output()
            .unwrap()
    };
    let out = run();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "root's settings\n"
    );
    let script = home.join(".smolvm/completions/smolvm.bash");
    for p in [
        home.join(".smolvm"),
        home.join(".smolvm/completions"),
        script.clone(),
    ] {
        assert_eq!(owner(&p), user.uid, "{}", p.display());
    }

    // Their own regular startup file: set up, and still theirs.
    std::fs::remove_file(home.join(".bashrc")).unwrap();
    let out = run();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rc = home.join(".bashrc");
    assert_eq!(owner(&rc), user.uid);
    assert_eq!(
        std::fs::read_to_string(&rc).unwrap(),
        format!("source {}  # smolvm tab completion\n", script.display())
    );
}

/// A user who is not root on a host where root's state holds sandboxes reads that state;
/// a change of theirs would start a state of their own (and hide root's from then on).
/// They are told which database each command read, and a change is refused, with
/// nothing written, until they choose (sudo, or making their own state folder).
#[test]
fn a_user_reading_roots_state_is_told_before_a_change_starts_another() {
    let Some((tmp, home, user)) = open_folder_with_user() else {
        return;
    };
    let sys = tmp.path().join("sys");
    std::fs::create_dir(&sys).unwrap();
    let disk = tmp.path().join("disk.ext4");
    std::fs::write(&disk, b"").unwrap();
    let root_db = sys.join("smolvm.db");
    support::smolvm_db_with_vm(&root_db, "vm-of-root", "stopped", &disk, &disk);
    std::fs::set_permissions(
        &root_db,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let own = home.join(".local/state/smolvm");
    let as_user = |args: &[&str]| -> Output {
        Command::new("setpriv")
            .args([
                "--reuid",
                &user.uid.to_string(),
                "--regid",
                &user.gid.to_string(),
            ])
            .args(["--clear-groups", "--"])
            .arg(assert_cmd::cargo::cargo_bin("smolvm"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("SMOLVM_SYSTEM_DATA_DIR", &sys)
            .env("SMOLVM_IMAGE_DIR", home.join("images"))
            .output()
            .unwrap()
    };
    // Reads: root's sandboxes, and which database that was.
    let out = as_user(&["sandbox", "list", "--all", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["data"]["vms"][0]["name"], "vm-of-root", "{v}");
    assert_eq!(v["data"]["state_db"], root_db.to_str().unwrap());
    assert_eq!(
        v["data"]["writes_to"],
        own.join("smolvm.db").to_str().unwrap()
    );
    let text = as_user(&["sandbox", "list", "--all"]);
    let err = String::from_utf8_lossy(&text.stderr);
    assert!(err.contains(root_db.to_str().unwrap()), "{err}");
    // A change is refused, and writes nothing: no state of theirs appears.
    for args in [
        &["sandbox", "stop", "vm-of-root"][..],
        &["cleanup", "--force"],
        &["cleanup", "--dry-run"],
        &["sandbox", "prune", "--force"],
    ] {
        let out = as_user(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("would start a new state database")
                && err.contains(root_db.to_str().unwrap()),
            "{args:?}: {err}"
        );
        assert!(err.contains("sudo"), "{args:?}: {err}");
        assert!(!home.join(".local").exists(), "{args:?} wrote a state");
    }
    // Once they make their own state folder, changes go there, and every command says so.
    let mk = Command::new("setpriv")
        .args([
            "--reuid",
            &user.uid.to_string(),
            "--regid",
            &user.gid.to_string(),
        ])
        .args(["--clear-groups", "--", "mkdir", "-p"])
        .arg(&own)
        .status()
        .unwrap();
    assert!(mk.success());
    let out = as_user(&["sandbox", "stop", "vm-of-root"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("changes go to"), "{err}");
    assert!(own.join("smolvm.db").exists());
    // Root's database was never written.
    let c = rusqlite::Connection::open(&root_db).unwrap();
    let status: String = c
        .query_row("SELECT status FROM vms WHERE id = 'vm-of-root'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(status, "stopped");
}
