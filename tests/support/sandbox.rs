//! A HOME in its own network namespace (with an uplink), where `smolvm` runs as CI runs
//! it: the environment cleared down to the HOME's variables, no stdin. The tests that boot
//! real guests share it; what only one file needs stays in that file (as another `impl
//! Sandboxes` block there).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::cleanup::NetNs;
use super::images::{self, Row};
use super::{json, stderr, stdout, Home};

/// How long one `smolvm` command may run before the test kills it and fails: a hung boot
/// or download must fail the test, not hang it.
const COMMAND_LIMIT: Duration = Duration::from_secs(400);

pub struct Sandboxes {
    pub h: Home,
    pub ns: NetNs,
    /// The manifest `SMOLVM_MANIFEST` names (test images as presets), when there is one.
    pub manifest: Option<PathBuf>,
    /// More variables for every command.
    pub extra: Vec<(String, String)>,
    /// How long one `smolvm` command may run before the test kills it and fails.
    pub limit: Duration,
}

impl Sandboxes {
    /// A fresh HOME and namespace; presets come from `rows` (none: no manifest).
    pub fn with_presets(rows: &[Row<'_>]) -> Sandboxes {
        let h = Home::new();
        let manifest = (!rows.is_empty()).then(|| images::manifest(h.tmp.path(), rows));
        Sandboxes {
            h,
            ns: NetNs::with_uplink(),
            manifest,
            extra: Vec::new(),
            limit: COMMAND_LIMIT,
        }
    }

    /// A fresh HOME and namespace without a manifest.
    pub fn new() -> Sandboxes {
        Sandboxes::with_presets(&[])
    }

    /// The Debian test image (sshd, a login shell) as `codex`'s.
    pub fn debian_codex() -> Sandboxes {
        let rootfs = images::debian_rootfs();
        Sandboxes::with_presets(&[Row {
            preset: "codex",
            rootfs: &rootfs,
        }])
    }

    /// [`Sandboxes::debian_codex`] with sandbox `id` started ([`Sandboxes::codex_start`]):
    /// the sandboxes and the start's envelope.
    pub fn debian_codex_started(id: &str) -> (Sandboxes, serde_json::Value) {
        let e = Sandboxes::debian_codex();
        let v = e.codex_start(id);
        (e, v)
    }

    /// `smolvm ARGS` in the namespace with `vars` added, not yet started (stdin closed).
    pub fn command(&self, args: &[&str], vars: &[(&str, &str)]) -> Command {
        let mut c = self.ns.smolvm_command(&self.h, args);
        if let Some(m) = &self.manifest {
            c.env("SMOLVM_MANIFEST", m);
        }
        c.envs(self.extra.iter().map(|(k, v)| (k, v)))
            .envs(vars.iter().copied())
            .stdin(Stdio::null());
        c
    }

    /// `smolvm ARGS` with `vars` added, started with its stdout and stderr piped.
    pub fn spawn_piped(&self, args: &[&str], vars: &[(&str, &str)]) -> std::process::Child {
        self.command(args, vars)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// [`Sandboxes::spawn_piped`] in a process group of its own, as a terminal runs its
    /// foreground job: [`interrupt`] can then reach it and everything it runs.
    pub fn spawn_grouped(&self, args: &[&str], vars: &[(&str, &str)]) -> std::process::Child {
        use std::os::unix::process::CommandExt;
        self.command(args, vars)
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Run to the end with `vars` added (killed after `limit`).
    pub fn run_with(&self, args: &[&str], vars: &[(&str, &str)]) -> Output {
        let mut child = self.spawn_piped(args, vars);
        let t0 = Instant::now();
        let drain = |mut r: Box<dyn std::io::Read + Send>| {
            std::thread::spawn(move || {
                let mut b = Vec::new();
                let _ = r.read_to_end(&mut b);
                b
            })
        };
        let o = drain(Box::new(child.stdout.take().unwrap()));
        let e = drain(Box::new(child.stderr.take().unwrap()));
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if t0.elapsed() > self.limit {
                let _ = child.kill();
                eprintln!("smolvm {args:?}: killed after {} s", self.limit.as_secs());
                break child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Output {
            status,
            stdout: o.join().unwrap(),
            stderr: e.join().unwrap(),
        }
    }

    /// Run `smolvm ARGS`, send it SIGINT (a terminal's Ctrl-C) as soon as `ready` says so
    /// (polled every few ms; the command must not end first), and return its output once
    /// it exits.
    pub fn interrupted_when(&self, args: &[&str], mut ready: impl FnMut() -> bool) -> Output {
        let mut child = self.spawn_piped(args, &[]);
        let t = Instant::now();
        while !ready() {
            if let Some(st) = child.try_wait().unwrap() {
                let out = child.wait_with_output().unwrap();
                panic!(
                    "smolvm {args:?} ended ({st}) before the interrupt: {}{}",
                    stdout(&out),
                    stderr(&out)
                );
            }
            assert!(t.elapsed() < self.limit, "smolvm {args:?}: never ready");
            std::thread::sleep(Duration::from_millis(2));
        }
        let sent = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(sent, "kill -INT failed");
        let t = Instant::now();
        while child.try_wait().unwrap().is_none() {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "smolvm {args:?}: no exit after SIGINT"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[])
    }

    /// Must exit 0.
    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        super::assert_exit(args, &out, 0);
        out
    }

    /// Must exit 0; its JSON envelope.
    pub fn ok_json(&self, args: &[&str]) -> serde_json::Value {
        json(&self.ok(args))
    }

    /// Must exit `code` with a message containing `needle`: on stderr, or with `--json`
    /// in the envelope on stdout.
    pub fn fails(&self, args: &[&str], code: i32, needle: &str) {
        let out = self.run(args);
        let text = if args.contains(&"--json") {
            stdout(&out)
        } else {
            stderr(&out)
        };
        assert_eq!(
            out.status.code(),
            Some(code),
            "smolvm {args:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(
            text.contains(needle),
            "smolvm {args:?}: {needle:?} not in {text}"
        );
    }

    /// A root script in the guest run by `shell` (e.g. `["sh", "-c"]`) over `sandbox exec`
    /// (must succeed): its stdout as printed.
    pub fn exec_in(&self, id: &str, shell: [&str; 2], script: &str) -> String {
        let out = self.run(&exec_args(id, shell, script));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{script}\nstdout: {}\nstderr: {}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    /// A root `sh -c` script in the guest over `sandbox exec` (must succeed): its output,
    /// trimmed.
    pub fn exec(&self, id: &str, script: &str) -> String {
        self.exec_in(id, ["sh", "-c"], script).trim().to_string()
    }

    /// `codex start` of the Debian image under QEMU with 512 MiB: its JSON envelope.
    pub fn codex_start(&self, id: &str) -> serde_json::Value {
        self.ok_json(&[
            "codex",
            "start",
            "--backend",
            "qemu",
            "--name",
            id,
            "--memory",
            "512",
            "--json",
        ])
    }

    /// The first line a TCP server at `host:port` sends to a client in the namespace,
    /// three tries a second apart while nothing answers (a TCG guest's first answer after
    /// a boot can be slow on a loaded host). "" when it never answers.
    pub fn first_line(&self, host: &str, port: u16) -> String {
        for _ in 0..3 {
            let l = self.first_line_once(host, port);
            if !l.is_empty() {
                return l;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        self.first_line_once(host, port)
    }

    /// One try of [`Sandboxes::first_line`] (for a check that something must NOT answer).
    pub fn first_line_once(&self, host: &str, port: u16) -> String {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns.name,
                "timeout",
                "10",
                "bash",
                "-c",
            ])
            .arg(format!("exec 3<>/dev/tcp/{host}/{port} && head -n1 <&3"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Sandboxes {
    fn drop(&mut self) {
        let _ = self.run(&["cleanup", "--all", "--force", "--json"]);
    }
}

/// Skip (loudly) a test that needs root: namespaces, TAPs, nftables, or what `$why` says
/// (`"(a test user)"`, `"to run the binary as another user"`).
#[macro_export]
macro_rules! require_root {
    () => {
        $crate::require_root!("(network namespaces, TAPs, nftables)")
    };
    ($why:literal) => {
        if !support::is_root() {
            eprintln!(concat!("SKIPPED: needs root ", $why));
            return;
        }
    };
}

/// `sandbox create --kernel KERNEL --rootfs ROOTFS --name ID --backend BACKEND MORE...`.
pub fn create_args<'a>(
    kernel: &'a str,
    rootfs: &'a str,
    id: &'a str,
    backend: &'a str,
    more: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "sandbox",
        "create",
        "--kernel",
        kernel,
        "--rootfs",
        rootfs,
        "--name",
        id,
        "--backend",
        backend,
    ];
    // A create boots unless told not to (SmolVM's rule): without `--start`, these create only.
    if !more.contains(&"--start") {
        args.push("--no-start");
    }
    args.extend_from_slice(more);
    args
}

/// `sandbox exec ID --timeout 300 -- SHELL FLAG SCRIPT`: a root script in the guest.
pub fn exec_args<'a>(id: &'a str, shell: [&'a str; 2], script: &'a str) -> [&'a str; 9] {
    let [sh, flag] = shell;
    [
        "sandbox",
        "exec",
        id,
        "--timeout",
        "300",
        "--",
        sh,
        flag,
        script,
    ]
}

/// SIGINT to `child` alone or, with `group`, to its whole process group (a terminal's
/// Ctrl-C: [`Sandboxes::spawn_grouped`]); its output once it exits (killed after 60 s).
pub fn interrupt(mut child: std::process::Child, group: bool) -> Output {
    let pid = child.id() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(if group { -pid } else { pid }),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    child.wait_with_output().unwrap()
}
