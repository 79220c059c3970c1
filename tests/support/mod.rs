//! Test support: an isolated HOME / data dir per test, and helpers for real files.
#![allow(dead_code)]

pub mod http_server;

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use assert_cmd::Command;

pub mod bench;
pub mod cleanup;
pub mod docker;
pub mod images;
pub mod pty;
pub mod sandbox;
pub mod screenshot;
pub mod smolvm_py;
pub mod sources;
pub mod sqlite;
pub mod tui;

/// The image version tests treat as current.
pub const CURRENT: &str = "0.0.14";

/// A temporary HOME with `~/.smolvm/images` and a private data dir.
pub struct Home {
    pub tmp: tempfile::TempDir,
    pub home: PathBuf,
    pub data: PathBuf,
}

impl Home {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        // Searchable by everyone (not listable), as /tmp is: the sockets' folder inside it
        // must be reachable by a VMM running as an unprivileged user.
        std::fs::set_permissions(
            tmp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o711),
        )
        .unwrap();
        let home = tmp.path().join("home");
        let data = tmp.path().join("state");
        std::fs::create_dir_all(home.join(".smolvm/images")).unwrap();
        Home { tmp, home, data }
    }

    pub fn images(&self) -> PathBuf {
        self.home.join(".smolvm/images")
    }

    /// `smolvm` with a clean environment: only PATH, this HOME, this data dir and the
    /// test's current image version.
    pub fn smolvm(&self) -> Command {
        let mut c = Command::cargo_bin("smolvm").expect("binary");
        self.apply_env(&mut c);
        c
    }

    /// Run `smolvm ARGS` (as [`Home::smolvm`]) to the end: its output.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.smolvm().args(args).output().unwrap()
    }

    /// Write the user's presets file (`~/.config/smolvm/presets.toml`).
    pub fn user_presets(&self, text: &str) {
        let dir = self.home.join(".config/smolvm");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("presets.toml"), text).unwrap();
    }

    /// [`Home::run`] with one more variable, `key=value`.
    pub fn run_env(
        &self,
        args: &[&str],
        key: &str,
        value: impl AsRef<std::ffi::OsStr>,
    ) -> std::process::Output {
        self.smolvm().env(key, value).args(args).output().unwrap()
    }

    /// [`Home::run`] that must exit 0 (else the failure shows both streams).
    pub fn ok(&self, args: &[&str]) -> std::process::Output {
        let out = self.run(args);
        assert_exit(args, &out, 0);
        out
    }

    /// The private socket dir (created).
    pub fn sockets(&self) -> PathBuf {
        let d = self.tmp.path().join("sockets");
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A clean environment: only PATH, this HOME, this data dir, this socket dir and the
    /// test's current image version.
    pub fn apply_env(&self, c: &mut Command) {
        c.env_clear().envs(self.env_vars());
    }

    pub fn env_vars(&self) -> Vec<(&'static str, std::ffi::OsString)> {
        vec![
            ("PATH", std::env::var_os("PATH").unwrap_or_default()),
            ("HOME", self.home.clone().into()),
            ("XDG_STATE_HOME", self.home.join(".local/state").into()),
            ("SMOLVM_DATA_DIR", self.data.clone().into()),
            (
                "SMOLVM_SYSTEM_DATA_DIR",
                self.tmp.path().join("system-state").into(),
            ),
            ("SMOLVM_IMAGE_VERSION", CURRENT.into()),
            ("SMOLVM_SOCKET_DIR", self.tmp.path().join("sockets").into()),
        ]
    }

    /// This environment as smolvm's own `Env`, for calling the library directly (as this
    /// process's user).
    pub fn env(&self) -> smolvm::sys::env::Env {
        smolvm::sys::env::Env::from_vars(
            self.env_vars().into_iter().map(|(k, v)| (k.to_string(), v)),
            nix::unistd::geteuid().as_raw(),
        )
    }

    /// A cache directory under the images root holding one file of `bytes` real bytes.
    pub fn cache(&self, name: &str, bytes: usize) -> PathBuf {
        let d = self.images().join(name);
        std::fs::create_dir_all(&d).unwrap();
        if bytes > 0 {
            std::fs::write(d.join("rootfs.ext4"), vec![0x5au8; bytes]).unwrap();
        }
        d
    }
}

/// A child killed and reaped on drop, so a failed assertion leaves no process behind.
pub struct Reap(pub std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A live process (`sh`, then `sleep 60`) holding `file` open, as a VMM holds its rootfs;
/// returned once the file is open. The caller kills and reaps it.
pub fn hold_open(file: &Path) -> std::process::Child {
    let mut child = StdCommand::new("sh")
        .arg("-c")
        .arg("exec 3<\"$1\"; echo ready; exec sleep 60")
        .arg("sh")
        .arg(file)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    first_line(&mut child);
    child
}

/// The first line `child` writes to its piped stdout (trimmed): its "ready" word.
pub fn first_line(child: &mut std::process::Child) -> String {
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    line.trim().to_string()
}

/// `out` exited with `code` (else the failure shows stdout, then stderr).
pub fn assert_code(out: &std::process::Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}{}",
        stdout(out),
        stderr(out)
    );
}

/// `smolvm ARGS` exited with `code` (else the failure shows both streams).
pub fn assert_exit(args: &[&str], out: &std::process::Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "smolvm {args:?}\nstdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
}

/// A user preset `marker` (its image: the manifest's `marker` row) whose launch command
/// prints `word` and exits 3.
pub fn marker_presets(word: &str) -> String {
    format!(
        "[marker]\ndescription = \"attach test\"\nmemory_mib = 512\ndisk_mib = 1024\n\
         launch = \"sh -c 'echo {word}; exit 3'\"\n"
    )
}

/// Run a helper program (not smolvm) that must succeed: its output. A failure names
/// `what` and shows both streams.
pub fn run_ok(c: &mut StdCommand, what: &str) -> std::process::Output {
    let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    out
}

/// An error exit: exactly exit code `code`, nothing on stdout and exactly `message` on
/// stderr.
pub fn assert_error(out: &std::process::Output, code: i32, message: &str) {
    assert_eq!(
        (
            out.status.code(),
            stdout(out).as_str(),
            stderr(out).as_str()
        ),
        (Some(code), "", message)
    );
}

/// Parse stdout as the one JSON document a `--json` command must print.
/// `doctor --json`'s check named `name` (it must be there).
pub fn doctor_check(v: &serde_json::Value, name: &str) -> serde_json::Value {
    v["data"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no doctor check {name}: {v}"))
}

pub fn json(out: &std::process::Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not one JSON document ({e}):\n{text}"))
}

/// The item of the JSON array `list` whose `key` is `value` (a copy); panics showing the
/// list when none is.
pub fn item(list: &serde_json::Value, key: &str, value: &str) -> serde_json::Value {
    list.as_array()
        .and_then(|l| l.iter().find(|i| i[key] == value))
        .cloned()
        .unwrap_or_else(|| panic!("no item with {key} = {value:?} in {list}"))
}

/// Assert the command exited with `code` (showing its stdout and stderr if not), then
/// parse its stdout as [`json`].
pub fn json_exit(out: &std::process::Output, code: i32) -> serde_json::Value {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
    json(out)
}

pub fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The entries of `dir`, by name, sorted.
pub fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Makes a directory impossible to empty for as long as it lives: `chattr +i` where the
/// file system supports it, else (root only) a read-only bind mount of the directory onto
/// itself. `None` when neither is possible here (then the caller says it skipped).
pub struct Undeletable {
    dir: PathBuf,
    bind: bool,
}

impl Undeletable {
    pub fn new(dir: &Path) -> Option<Self> {
        if run("chattr", &["+i"], dir) {
            return Some(Undeletable {
                dir: dir.to_path_buf(),
                bind: false,
            });
        }
        if is_root()
            && StdCommand::new("mount")
                .args(["--bind"])
                .arg(dir)
                .arg(dir)
                .status()
                .is_ok_and(|s| s.success())
            && StdCommand::new("mount")
                .args(["-o", "remount,ro,bind"])
                .arg(dir)
                .status()
                .is_ok_and(|s| s.success())
        {
            return Some(Undeletable {
                dir: dir.to_path_buf(),
                bind: true,
            });
        }
        None
    }
}

impl Drop for Undeletable {
    fn drop(&mut self) {
        if self.bind {
            let _ = StdCommand::new("umount").arg(&self.dir).status();
        } else {
            run("chattr", &["-i"], &self.dir);
        }
    }
}

fn run(cmd: &str, args: &[&str], path: &Path) -> bool {
    StdCommand::new(cmd)
        .args(args)
        .arg(path)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// SmolVM's exact `vms` table DDL (reference §1) and a row in its JSON shapes.
pub fn smolvm_db_with_vm(db: &Path, id: &str, status: &str, rootfs: &Path, kernel: &Path) {
    let c = rusqlite::Connection::open(db).unwrap();
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS vms (
            id TEXT PRIMARY KEY, status TEXT NOT NULL, config TEXT NOT NULL, network TEXT,
            pid INTEGER, socket_path TEXT, display TEXT,
            created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
         CREATE INDEX IF NOT EXISTS idx_vms_status ON vms(status);",
    )
    .unwrap();
    let config = serde_json::json!({
        "vm_id": id, "vcpu_count": 2, "memory": 512,
        "kernel_path": kernel, "rootfs_path": rootfs,
        "boot_args": "console=ttyS0 reboot=k panic=1 pci=off",
        "backend": "qemu", "guest_os": "alpine", "disk_mode": "isolated"
    });
    let network = serde_json::json!({
        "guest_ip": "172.16.0.2", "gateway_ip": "172.16.0.1", "netmask": "255.255.255.0",
        "tap_device": "tap2", "guest_mac": "AA:FC:00:00:00:02", "ssh_host_port": 2200,
        "mode": "nat", "bridge": null
    });
    c.execute(
        "INSERT INTO vms (id, status, config, network, pid, socket_path, display, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, 4242, '/tmp/qmp-x.sock', NULL,
                 '2026-05-07T12:00:00.123456+00:00', '2026-05-07T12:00:00.123456+00:00')",
        rusqlite::params![id, status, config.to_string(), network.to_string()],
    )
    .unwrap();
}

/// What `/proc/<pid>/status` says about a process's privileges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Privileges {
    /// Real, effective, saved and file-system uids.
    pub uids: [u32; 4],
    pub gids: [u32; 4],
    pub groups: Vec<u32>,
    /// `Seccomp:` (0 none, 2 filter).
    pub seccomp: u32,
    pub no_new_privs: bool,
    pub cap_eff: u64,
}

pub fn privileges(pid: i64) -> Privileges {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |k: &str| -> String {
        s.lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or_else(|| panic!("no {k} in /proc/{pid}/status"))
            .trim()
            .to_string()
    };
    let nums = |k: &str| -> Vec<u32> {
        field(k)
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect()
    };
    let four = |v: Vec<u32>| [v[0], v[1], v[2], v[3]];
    Privileges {
        uids: four(nums("Uid:")),
        gids: four(nums("Gid:")),
        groups: nums("Groups:"),
        seccomp: field("Seccomp:").parse().unwrap(),
        no_new_privs: field("NoNewPrivs:") == "1",
        cap_eff: u64::from_str_radix(&field("CapEff:"), 16).unwrap(),
    }
}

/// The processes whose command line holds `text` (from `/proc/*/cmdline`).
pub fn processes_with(text: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().parse::<i32>().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            String::from_utf8_lossy(&cmdline)
                .contains(text)
                .then_some(pid)
        })
        .collect()
}

/// The processes whose parent is `pid` (from `/proc/*/stat`).
pub fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`: the command may hold spaces and parentheses.
        let after = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
        if after.split_whitespace().nth(1) == Some(&pid.to_string()) {
            out.push(child);
        }
    }
    out
}

/// The VMM `pid` runs as `uid` (every id of it), never root in any group, with no
/// capability, no way back up, under a seccomp filter.
pub fn assert_unprivileged_vmm(pid: i64, uid: u32) {
    let p = privileges(pid);
    assert_eq!(p.uids, [uid; 4], "{p:?}");
    assert!(
        uid != 0 && !p.gids.contains(&0) && !p.groups.contains(&0),
        "{p:?}"
    );
    assert_eq!(p.seccomp, 2, "no seccomp filter: {p:?}");
    assert!(p.no_new_privs, "{p:?}");
    assert_eq!(p.cap_eff, 0, "{p:?}");
}

/// Sandbox `id`'s stored config (the `vms.config` JSON of the state DB in `data`).
pub fn stored_config(data: &Path, id: &str) -> serde_json::Value {
    let c = rusqlite::Connection::open(data.join("smolvm.db")).unwrap();
    let config: String = c
        .query_row("SELECT config FROM vms WHERE id = ?1", [id], |r| r.get(0))
        .unwrap();
    serde_json::from_str(&config).unwrap()
}

/// The message of a `--json` envelope's error.
pub fn error_message(v: &serde_json::Value) -> &str {
    v["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {v}"))
}

/// Whether process `pid` runs (exists and is not a zombie waiting to be reaped).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

/// The `key` text of each object in JSON array `v` (the names, kinds… a test compares).
pub fn texts<'a>(v: &'a serde_json::Value, key: &str) -> Vec<&'a str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x[key].as_str().unwrap())
        .collect()
}
