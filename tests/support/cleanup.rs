//! Support for cleanup tests: a network namespace per test, real VMM stand-ins, SmolVM-
//! shaped rows, and a pseudo-terminal to answer prompts.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::Home;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace of its own, deleted (with every TAP in it) on drop.
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    pub fn new() -> NetNs {
        let name = format!(
            "smolvm-t{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "ip netns add {name} failed (tests need root and iproute2)"
        );
        NetNs { name }
    }

    /// A namespace with `lo` up and a default route out of a veth pair whose peer stays in
    /// the namespace: NAT has an outbound interface, and no packet can leave.
    pub fn with_uplink() -> NetNs {
        let ns = NetNs::new();
        ns.sh("ip link set lo up
             ip link add up0 type veth peer name up1
             ip addr add 10.254.0.1/24 dev up0
             ip link set up0 up && ip link set up1 up
             ip route add default via 10.254.0.2 dev up0");
        ns
    }

    /// Run a shell script inside the namespace; panics on failure.
    pub fn sh(&self, script: &str) -> String {
        let out = super::run_ok(
            Command::new("ip").args(["netns", "exec", &self.name, "sh", "-ec", script]),
            script,
        );
        super::stdout(&out)
    }

    /// A NAT TAP the way SmolVM makes one: `tap<N>` carrying 172.16.0.1/32.
    pub fn nat_tap(&self, name: &str) {
        self.sh(&format!(
            "ip tuntap add {name} mode tap && ip addr add 172.16.0.1/32 dev {name} && ip link set {name} up"
        ));
    }

    /// SmolVM's tables, maps and sets (`setup_nat`), plus these extra nft commands.
    pub fn smolvm_nft(&self, extra: &str) {
        self.sh(&format!(
            "nft -f - <<'EOF'
add table ip smolvm_nat
add chain ip smolvm_nat prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}
add chain ip smolvm_nat output {{ type nat hook output priority -100; policy accept; }}
add chain ip smolvm_nat postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}
add table inet smolvm_filter
add chain inet smolvm_filter forward {{ type filter hook forward priority filter; policy accept; }}
add map ip smolvm_nat dnat_ext {{ type inet_service : ipv4_addr . inet_service ; }}
add map ip smolvm_nat dnat_local {{ type inet_service : ipv4_addr . inet_service ; }}
add set ip smolvm_nat snat_return {{ type ipv4_addr . inet_service ; }}
add set inet smolvm_filter fwd_allow {{ type ipv4_addr . inet_service ; }}
add set inet smolvm_filter allowed_taps {{ type ifname ; }}
add rule ip smolvm_nat output ip daddr 127.0.0.1/32 dnat to tcp dport map @dnat_local comment \"smolvm:map:output:dnat_local\"
add rule inet smolvm_filter forward ct state related,established counter accept comment \"smolvm:global:forward:established\"
{extra}
EOF"
        ));
    }

    /// SmolVM's SSH forward for a VM plus its allowed_taps element.
    pub fn ssh_forward(&self, tap: &str, ip: &str, host_port: u16) {
        self.sh(&format!(
            "nft -f - <<'EOF'
add element ip smolvm_nat dnat_ext {{ {host_port} : {ip} . 22 }}
add element ip smolvm_nat dnat_local {{ {host_port} : {ip} . 22 }}
add element ip smolvm_nat snat_return {{ {ip} . 22 }}
add element inet smolvm_filter fwd_allow {{ {ip} . 22 }}
add element inet smolvm_filter allowed_taps {{ \"{tap}\" }}
EOF"
        ));
    }

    pub fn links(&self) -> String {
        self.sh("ip -o link show | awk -F': ' '{print $2}' | sort | tr '\\n' ' '")
    }

    pub fn nft_ruleset(&self) -> String {
        self.sh("nft list ruleset")
    }

    /// `smolvm <args>` (or another binary of the package) inside the namespace.
    pub fn cmd(&self, home: &Home, bin: &str) -> assert_cmd::Command {
        let mut c = assert_cmd::Command::new("ip");
        c.args(["netns", "exec", &self.name])
            .arg(assert_cmd::cargo::cargo_bin(bin));
        home.apply_env(&mut c);
        c
    }

    /// `smolvm <args>` inside the namespace with `home`'s environment, not yet started (a
    /// std command: for a pty, pipes or a kill in the middle).
    pub fn smolvm_command(&self, home: &Home, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new("ip");
        c.args(["netns", "exec", &self.name])
            .arg(assert_cmd::cargo::cargo_bin("smolvm"))
            .args(args)
            .env_clear()
            .envs(home.env_vars());
        c
    }

    /// Run `smolvm <args>` inside the namespace to the end.
    pub fn smolvm(&self, home: &Home, args: &[&str]) -> std::process::Output {
        self.cmd(home, "smolvm").args(args).output().unwrap()
    }

    /// The real Firecracker binary `bin` inside the namespace, listening on `socket`; its
    /// stdout into `log` when given, else nowhere.
    pub fn firecracker(&self, bin: &Path, socket: &Path, log: Option<&Path>) -> Child {
        let out = match log {
            Some(l) => Stdio::from(std::fs::File::create(l).unwrap()),
            None => Stdio::null(),
        };
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .arg(bin)
            .arg("--api-sock")
            .arg(socket)
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A real QEMU standing in for a VM's VMM: no machine, paused, with its QMP socket where
/// SmolVM puts it, optionally attached to a TAP (so the TAP is "in use").
pub struct QemuStandIn {
    pub child: Child,
    pub socket: PathBuf,
}

impl QemuStandIn {
    pub fn start(ns: &NetNs, socket_dir: &Path, vm_id: &str, tap: Option<&str>) -> QemuStandIn {
        Self::spawn(ns, socket_dir, vm_id, tap, None)
    }

    /// A stand-in started the way smolvm starts a VMM of this install: its socket in the
    /// home's socket dir and its output appended to `<data dir>/<id>.log` (the evidence an
    /// orphan VMM is ours).
    pub fn started_here(ns: &NetNs, home: &Home, vm_id: &str, tap: Option<&str>) -> QemuStandIn {
        std::fs::create_dir_all(&home.data).unwrap();
        let log = home.data.join(format!("{vm_id}.log"));
        Self::spawn(ns, &home.sockets(), vm_id, tap, Some(&log))
    }

    fn spawn(
        ns: &NetNs,
        socket_dir: &Path,
        vm_id: &str,
        tap: Option<&str>,
        log: Option<&Path>,
    ) -> QemuStandIn {
        let socket = socket_dir.join(format!("qmp-{vm_id}.sock"));
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &ns.name, "qemu-system-x86_64"])
            .args([
                "-machine",
                "none",
                "-S",
                "-nodefaults",
                "-nographic",
                "-display",
                "none",
            ])
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", socket.display()));
        if let Some(t) = tap {
            c.args([
                "-netdev",
                &format!("tap,id=n0,ifname={t},script=no,downscript=no"),
            ]);
        }
        let out = match log {
            Some(p) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .unwrap(),
            ),
            None => Stdio::null(),
        };
        let child = c
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .expect("qemu-system-x86_64 (install qemu-system-x86)");
        wait_for(|| socket.exists(), "QMP socket");
        QemuStandIn { child, socket }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Whether the process is still running (reaps it if it exited).
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for QemuStandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// FAKE Firecracker (Firecracker cannot run on this machine): a process whose command line
/// is `… --api-sock <dir>/fc-<id>.sock`, serving the API's `PUT /actions` on that socket.
/// `SendCtrlAltDel` makes it exit, unless `stubborn`, when it also ignores SIGTERM (so only
/// SIGKILL stops it).
pub fn fake_firecracker(socket_dir: &Path, vm_id: &str, stubborn: bool) -> Child {
    let socket = socket_dir.join(format!("fc-{vm_id}.sock"));
    let script = r#"
import os, signal, socket, sys
path = sys.argv[sys.argv.index("--api-sock") + 1]
stubborn = sys.argv[-1] == "stubborn"
if stubborn:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path); s.listen(4)
while True:
    c, _ = s.accept()
    req = c.recv(65536).decode(errors="replace")
    c.sendall(b"HTTP/1.1 204 No Content\r\nServer: Firecracker API\r\n\r\n")
    c.close()
    if "SendCtrlAltDel" in req and not stubborn:
        os.unlink(path); sys.exit(0)
"#;
    let (bin, home) = fake_firecracker_binary();
    let child = Command::new(bin)
        .env("PYTHONHOME", home)
        .args(["-c", script, "--api-sock"])
        .arg(&socket)
        .arg(if stubborn { "stubborn" } else { "polite" })
        .stdin(Stdio::null())
        .spawn()
        .expect("python3");
    wait_for(|| socket.exists(), "fake Firecracker API socket");
    child
}

/// The FAKE Firecracker's binary: a copy of the Python interpreter named `firecracker`
/// (smolvm signals only QEMU and Firecracker binaries), cached outside the clone, and the
/// `PYTHONHOME` it needs. The system's interpreter when there is one (`/usr/bin/python3`:
/// its library is readable by every user, so the fake also runs as an unprivileged VMM
/// user), else `python3` on PATH.
pub fn fake_firecracker_binary() -> (PathBuf, String) {
    static BIN: std::sync::OnceLock<(PathBuf, String)> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let python = ["/usr/bin/python3"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("python3");
        let out = Command::new(python)
            .args([
                "-c",
                "import sys; print(sys.executable); print(sys.base_prefix)",
            ])
            .output()
            .expect("python3");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut lines = text.lines();
        let exe = std::fs::canonicalize(lines.next().expect("sys.executable")).unwrap();
        let prefix = lines.next().expect("sys.base_prefix").to_string();
        // Cached beside the test kernel, keyed by the interpreter, so runs reuse one copy
        // and nothing piles up in /tmp; made under a temporary name, then renamed in.
        let key: String = exe
            .to_string_lossy()
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    b as char
                } else {
                    '_'
                }
            })
            .collect();
        let dir = super::images::cache_root().join(format!("fake-firecracker{key}"));
        std::fs::create_dir_all(&dir).unwrap();
        let bin = dir.join("firecracker");
        if !bin.is_file() {
            let tmp = dir.join(format!(".firecracker.{}", std::process::id()));
            std::fs::copy(&exe, &tmp).unwrap();
            std::fs::rename(&tmp, &bin).unwrap();
        }
        (bin, prefix)
    })
    .clone()
}

pub fn wait_for(mut f: impl FnMut() -> bool, what: &str) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A row in SmolVM's shapes.
pub struct Row<'a> {
    pub id: &'a str,
    pub status: &'a str,
    pub pid: Option<i32>,
    pub tap: Option<(&'a str, &'a str, u16)>, // (tap, guest ip, ssh host port)
    pub backend: &'a str,
}

impl<'a> Row<'a> {
    /// A running Firecracker row of `id` on `tap` whose VMM is a live
    /// [`fake_firecracker`] with its socket under `socket_dir` (reaped on drop).
    pub fn live(
        socket_dir: &Path,
        id: &'a str,
        tap: (&'a str, &'a str, u16),
    ) -> (Self, super::Reap) {
        let vmm = super::Reap(fake_firecracker(socket_dir, id, false));
        let row = Row {
            status: "running",
            pid: Some(vmm.0.id() as i32),
            tap: Some(tap),
            backend: "firecracker",
            ..Row::stopped(id)
        };
        (row, vmm)
    }

    pub fn stopped(id: &'a str) -> Self {
        Row {
            id,
            status: "stopped",
            pid: None,
            tap: None,
            backend: "qemu",
        }
    }
}

/// Rows of stopped VMs `ids` (in order) in `home`'s database, as [`insert_rows`].
pub fn insert_stopped(home: &Home, ids: &[&str]) {
    let rows: Vec<Row<'_>> = ids.iter().map(|id| Row::stopped(id)).collect();
    insert_rows(&home.data, &home.sockets(), &rows);
}

/// Insert rows (in order; `created_at` ascending) into `<data>/smolvm.db`, creating it
/// with SmolVM's full schema, plus `ip_leases`/`ssh_forwards` for rows with a TAP.
pub fn insert_rows(data: &Path, socket_dir: &Path, rows: &[Row<'_>]) {
    std::fs::create_dir_all(data).unwrap();
    let c = rusqlite::Connection::open(data.join("smolvm.db")).unwrap();
    c.execute_batch(include_str!("../../src/sys/state/schema.sql"))
        .unwrap();
    let base: i64 = c
        .query_row("SELECT COUNT(*) FROM vms", [], |r| r.get(0))
        .unwrap();
    for (i, r) in rows.iter().enumerate() {
        let ts = format!("2026-05-07T12:00:{:02}.000000+00:00", base + i as i64);
        let sock = match r.backend {
            "firecracker" => socket_dir.join(format!("fc-{}.sock", r.id)),
            _ => socket_dir.join(format!("qmp-{}.sock", r.id)),
        };
        let network = r.tap.map(|(tap, ip, port)| {
            serde_json::json!({
                "guest_ip": ip, "gateway_ip": "172.16.0.1", "netmask": "255.255.255.0",
                "tap_device": tap, "guest_mac": "AA:FC:00:00:00:02", "ssh_host_port": port,
                "mode": "nat", "bridge": null
            })
            .to_string()
        });
        let config = serde_json::json!({
            "vm_id": r.id, "vcpu_count": 2, "memory": 512, "backend": r.backend,
            "kernel_path": "/k", "rootfs_path": "/r"
        });
        c.execute(
            "INSERT INTO vms (id, status, config, network, pid, socket_path, display, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7, ?7)",
            rusqlite::params![
                r.id,
                r.status,
                config.to_string(),
                network,
                r.pid,
                r.pid.map(|_| sock.display().to_string()),
                ts
            ],
        )
        .unwrap();
        if let Some((tap, ip, port)) = r.tap {
            c.execute(
                "INSERT INTO ip_leases VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![ip, r.id, tap, ts],
            )
            .unwrap();
            c.execute(
                "INSERT INTO ssh_forwards VALUES (?1, ?2, 22, ?3)",
                rusqlite::params![r.id, port, ts],
            )
            .unwrap();
        }
    }
}

/// What a booted VM `id` may leave besides nft entries (the callers look for those their own
/// way): TAP links in `ns`, its control socket, disk and log, a VMM process, its row.
pub fn vm_leftovers(h: &Home, ns: &NetNs, id: &str) -> Vec<String> {
    let mut left = Vec::new();
    for l in ns.links().split_whitespace() {
        if l.starts_with("tap") {
            left.push(format!("link {l}"));
        }
    }
    for p in [
        h.sockets().join(format!("qmp-{id}.sock")),
        h.data.join(format!("disks/{id}.ext4")),
        h.data.join(format!("{id}.log")),
    ] {
        if p.exists() {
            left.push(format!("file {}", p.display()));
        }
    }
    if smolvm::sys::process::vmm_processes(Some(&h.sockets()))
        .iter()
        .any(|v| v.vm_id == id)
    {
        left.push(format!("process of {id}"));
    }
    if row_ids(&h.data).contains(&id.to_string()) {
        left.push(format!("row {id}"));
    }
    left
}

/// VM ids in the database, oldest first.
pub fn row_ids(data: &Path) -> Vec<String> {
    let c = rusqlite::Connection::open(data.join("smolvm.db")).unwrap();
    let mut s = c.prepare("SELECT id FROM vms ORDER BY created_at").unwrap();
    let ids = s
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<Vec<String>, _>>()
        .unwrap();
    ids
}

/// Run a command with a pseudo-terminal as its stdin, type `input` once the prompt
/// appears, and return its output (stdout is a pipe, so it is captured exactly).
pub fn run_with_pty(cmd: Command, input: &[u8]) -> Output {
    run_with_pty_then(cmd, || {}, input)
}

/// [`run_with_pty`], running `meanwhile` after the prompt appears and before answering
/// (the world changing while a user reads the prompt).
pub fn run_with_pty_then(mut cmd: Command, meanwhile: impl FnOnce(), input: &[u8]) -> Output {
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let slave: OwnedFd = pty.slave;
    // The child gets the slave as stdin only: neither original descriptor may leak into it.
    for fd in [&pty.master, &slave] {
        nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .expect("FD_CLOEXEC");
    }
    let mut master = std::fs::File::from(pty.master);
    cmd.stdin(Stdio::from(slave))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Make the pty the child's controlling terminal, so Ctrl-C typed into it is SIGINT.
    // SAFETY: setsid and ioctl are async-signal-safe; no memory of the parent is touched.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // Read until the prompt, then answer.
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("Continue? [y/N] ") {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "no prompt; got: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    meanwhile();
    master.write_all(input).unwrap();
    master.flush().unwrap();
    let _ = master.as_raw_fd();
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    seen.extend(rest);
    let mut out = child.wait_with_output().unwrap();
    drop(master);
    out.stdout = seen;
    out
}
