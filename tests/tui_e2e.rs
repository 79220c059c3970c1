//! The real dashboard binary driven through tmux (send-keys / capture-pane) against a temp
//! HOME with real stale caches and real VM rows, inside its own network namespace.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::cleanup::{row_ids, NetNs};
use support::{is_root, Home, CURRENT};

struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "dash"])
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "dash"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// Wait until `f(screen)` holds; panics with the last screen after 30 s.
    fn wait(&self, what: &str, f: impl Fn(&str) -> bool) {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if f(&s) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "timed out waiting for {what}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn alive(&self) -> bool {
        Command::new("tmux")
            .args(["-L", &self.socket, "has-session", "-t", "dash"])
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

fn wait_fs(what: &str, f: impl Fn() -> bool) {
    support::cleanup::wait_for(f, what);
}

/// Open the real dashboard in tmux, inside `ns`, with `h`'s environment plus `extra`.
fn open_dashboard(h: &Home, ns: &NetNs, extra: &[(&str, String)]) -> Tmux {
    let env: Vec<String> = h
        .env_vars()
        .into_iter()
        .map(|(k, v)| format!("{k}={}", v.to_string_lossy()))
        .chain(extra.iter().map(|(k, v)| format!("{k}={v}")))
        .collect();
    let cmd = format!(
        "ip netns exec {} env -i {} TERM=xterm-256color {}",
        ns.name,
        env.join(" "),
        assert_cmd::cargo::cargo_bin("smolvm").display()
    );
    let t = Tmux {
        socket: format!(
            "smolvm-e2e-{}-{}",
            std::process::id(),
            ns.name.rsplit('-').next().unwrap_or("0")
        ),
    };
    t.run(&[
        "new-session",
        "-d",
        "-s",
        "dash",
        "-x",
        "160",
        "-y",
        "48",
        &cmd,
    ]);
    t
}

fn usable() -> bool {
    if !is_root() || Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("SKIPPED: needs root (network namespace) and tmux");
        return false;
    }
    true
}

#[test]
fn prune_and_cleanup_through_the_dashboard_in_tmux() {
    if !usable() {
        return;
    }
    let (h, ns) = (Home::new(), NetNs::new());
    h.cache("0.0.12", 300_000);
    h.cache("0.0.13", 200_000);
    let current = h.cache(&format!("{CURRENT}/claude-code-amd64-qemu"), 100_000);
    support::cleanup::insert_stopped(&h, &["vm-a", "vm-b", "prod-x"]);
    let t = open_dashboard(&h, &ns, &[]);
    t.wait("the VM list", |s| {
        s.contains("VMs (3)") && s.contains("Images (3)")
    });

    // Prune: a dry-run preview, confirm, progress, the stale caches go.
    t.keys(&["p"]);
    t.wait("the prune preview", |s| {
        s.contains("Stale image caches (2):")
    });
    assert!(t.screen().contains("~/.smolvm/images/0.0.12/"));
    t.keys(&["y"]);
    wait_fs("stale caches removed", || {
        !h.images().join("0.0.12").exists() && !h.images().join("0.0.13").exists()
    });
    t.wait("the prune result", |s| {
        s.contains("reclaimed") && s.contains("2 removed")
    });
    assert!(current.join("rootfs.ext4").is_file());

    // Cleanup: edit the prefix to target one VM, see the live preview, confirm.
    t.keys(&["c"]);
    t.wait("the cleanup preview", |s| s.contains("Targets (2):"));
    t.keys(&["BSpace", "BSpace", "BSpace"]);
    t.keys(&["vm-a"]);
    t.wait("the edited preview", |s| {
        s.contains("Targets (1):") && s.contains("- vm-a")
    });
    // Enter moves to the buttons (it never deletes); `y` deletes.
    t.keys(&["Enter"]);
    t.wait("the cleanup buttons", |s| s.contains("[y] delete these"));
    assert_eq!(
        row_ids(&h.data),
        ["vm-a", "vm-b", "prod-x"],
        "Enter deleted"
    );
    t.keys(&["y"]);
    wait_fs("vm-a deleted", || row_ids(&h.data) == ["vm-b", "prod-x"]);
    t.wait("the cleanup result", |s| s.contains("1 VM(s) deleted"));
    t.wait("the refreshed list", |s| s.contains("VMs (2)"));

    // Quit.
    t.keys(&["q"]);
    let start = Instant::now();
    while t.alive() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!t.alive(), "the dashboard did not exit on q");
}

/// Removes every VM of a test home when dropped, so a failing test leaks nothing.
struct CleanupAll<'a>(&'a Home, &'a NetNs);

impl Drop for CleanupAll<'_> {
    fn drop(&mut self) {
        let _ = self
            .1
            .cmd(self.0, "smolvm")
            .args(["cleanup", "--all", "--force"])
            .output();
    }
}

#[test]
fn start_a_preset_through_the_dashboard_in_tmux() {
    if !usable() {
        return;
    }
    let h = Home::new();
    let ns = NetNs::with_uplink();
    let _cleanup = CleanupAll(&h, &ns);
    let rootfs = support::images::busybox_rootfs(support::images::Init::Ready);
    let manifest = support::images::manifest(
        h.tmp.path(),
        &[support::images::Row {
            preset: "claude-code",
            rootfs: &rootfs,
        }],
    );
    let t = open_dashboard(
        &h,
        &ns,
        &[("SMOLVM_MANIFEST", manifest.display().to_string())],
    );
    t.wait("the empty VM list", |s| {
        s.contains("No VMs. Press n to start a preset.")
    });
    // The form: preset claude-code is first; a name; Enter starts.
    t.keys(&["n"]);
    t.wait("the start form", |s| s.contains("Start a sandbox"));
    t.keys(&["Tab"]);
    t.keys(&["vm-dash"]);
    t.keys(&["Enter"]);
    // Progress through the phases, then the new VM is listed, running, and selected.
    let start = Instant::now();
    loop {
        let s = t.screen();
        if s.contains("vm-dash running at 172.16.0.") {
            break;
        }
        assert!(!s.contains("✗ #1 start"), "the start failed; screen:\n{s}");
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "timed out waiting for the VM to boot; screen:\n{s}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    t.wait("the VM row", |s| {
        s.lines()
            .any(|l| l.contains("vm-dash") && l.contains("running") && l.contains("claude-code"))
    });
    let rows = support::cleanup::row_ids(&h.data);
    assert_eq!(rows, ["vm-dash"]);
    // `l` follows its console log: SmolVM's ready line is there.
    t.keys(&["l"]);
    t.wait("the console log", |s| {
        s.contains("SmolVM init complete: IP=172.16.0.")
    });
    t.keys(&["q"]);
}

/// Bare `smolvm` without a terminal prints its help to stdout and exits 0 (SmolVM's
/// answer); `smolvm tui` asked for the dashboard, which needs one: exit 2.
#[test]
fn without_a_terminal_smolvm_prints_help_and_tui_exits_2() {
    let h = Home::new();
    for args in [&[][..], &["tui"][..], &["--readonly"][..]] {
        let out = h.smolvm().args(args).write_stdin("").output().unwrap();
        if args == ["tui"] {
            assert_eq!(out.status.code(), Some(2), "{args:?}");
            assert_eq!(support::stdout(&out), "", "{args:?}");
            let err = support::stderr(&out);
            assert!(
                err.starts_with("Error: the dashboard needs a terminal"),
                "{err}"
            );
        } else {
            assert_eq!(out.status.code(), Some(0), "{args:?}");
            let text = support::stdout(&out);
            assert!(text.contains("Usage: smolvm [OPTIONS] [COMMAND]"), "{text}");
        }
    }
}

/// On a terminal that says it cannot draw (`TERM=dumb`: an editor's shell buffer) `smolvm
/// tui` refuses, exit 2, and bare `smolvm` prints its help; neither writes an escape code: it used to fill that buffer
/// with the alternate screen, mouse capture and colours as text. (`script` gives it a
/// terminal on stdin, stdout and stderr alike; one that opened is stopped after 20 s.)
#[test]
fn on_a_dumb_terminal_the_dashboard_refuses_and_draws_nothing() {
    let h = Home::new();
    let bin = assert_cmd::cargo::cargo_bin("smolvm");
    let under_script = |args: &str| {
        Command::new("script")
            .args(["-q", "-e", "-c"])
            .arg(format!("timeout 20 {} {args}", bin.display()))
            .arg("/dev/null")
            .env_clear()
            .envs(h.env_vars())
            .env("TERM", "dumb")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    for args in ["tui", "--readonly tui"] {
        let out = under_script(args);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {text}");
        assert!(
            text.starts_with("Error: the dashboard needs a terminal that can draw (TERM=dumb)"),
            "{args:?}: {text}"
        );
        assert!(!out.stdout.contains(&0x1b), "{args:?}: {text:?}");
    }
    // Bare `smolvm` there prints its help, as without a terminal.
    let out = under_script("");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("Usage: smolvm [OPTIONS] [COMMAND]"), "{text}");
    assert!(!out.stdout.contains(&0x1b), "{text:?}");
}

/// Ctrl-Z suspends the dashboard as it does any terminal program: the terminal guard gives
/// the terminal back (main screen, cooked mode), the shell reports the job stopped, `fg`
/// brings the dashboard back, and `q` leaves the shell a working terminal.
/// An interactive bash (prompt `PROMPT> `) in a tmux session of its own, 120×30.
/// `None` (the test skipped, and says so) where there is no tmux.
fn shell_in_tmux(name: &str) -> Option<Tmux> {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("SKIPPED: needs tmux");
        return None;
    }
    let t = Tmux {
        socket: format!("smolvm-e2e-{name}-{}", std::process::id()),
    };
    t.run(&[
        "new-session",
        "-d",
        "-s",
        "dash",
        "-x",
        "120",
        "-y",
        "30",
        "env -i PATH=/usr/bin:/bin TERM=xterm-256color PS1='PROMPT> ' bash --norc --noprofile -i",
    ]);
    t.wait("the shell", |s| s.contains("PROMPT>"));
    Some(t)
}

/// The dashboard's screen (its panes' titles), not the shell's.
fn is_dashboard(s: &str) -> bool {
    s.contains("Images") && s.contains("Tasks")
}

/// The shell line that opens the dashboard with `h`'s environment only.
fn dashboard_command(h: &Home) -> String {
    let env: Vec<String> = h
        .env_vars()
        .into_iter()
        .map(|(k, v)| format!("{k}={}", v.to_string_lossy()))
        .collect();
    format!(
        "env -i {} TERM=xterm-256color {}",
        env.join(" "),
        assert_cmd::cargo::cargo_bin("smolvm").display()
    )
}

#[test]
fn ctrl_z_suspends_to_the_shell_and_fg_brings_the_dashboard_back_in_tmux() {
    let h = Home::new();
    let Some(t) = shell_in_tmux("suspend") else {
        return;
    };
    t.keys(&[&dashboard_command(&h), "Enter"]);
    let dashboard = is_dashboard;
    t.wait("the dashboard", dashboard);
    t.keys(&["C-z"]);
    t.wait("the shell, the dashboard stopped", |s| {
        s.contains("Stopped") && !dashboard(s)
    });
    // The shell has a working terminal: what is typed echoes and runs.
    t.keys(&["echo back-$((20+22))", "Enter"]);
    t.wait("the shell to run a command", |s| s.contains("back-42"));
    t.keys(&["fg", "Enter"]);
    t.wait("the dashboard again", dashboard);
    t.keys(&["q"]);
    t.wait("the shell after quitting", |s| {
        !dashboard(s) && s.trim_end().ends_with("PROMPT>")
    });
    t.keys(&["echo done-$((1+1))", "Enter"]);
    t.wait("the shell to run a command", |s| s.contains("done-2"));
}

/// A paste reaches the dashboard as text, not keys (bracketed paste): a pasted `q` does not
/// quit, the status says it was ignored, and a paste into the palette is typed there.
#[test]
fn a_paste_is_text_not_keys_in_tmux() {
    let h = Home::new();
    let Some(t) = shell_in_tmux("paste") else {
        return;
    };
    t.keys(&[&dashboard_command(&h), "Enter"]);
    t.wait("the dashboard", is_dashboard);
    let paste = |text: &str| {
        t.run(&["set-buffer", "-b", "p", text]);
        t.run(&["paste-buffer", "-p", "-b", "p", "-t", "dash"]);
    };
    paste("q");
    t.wait("the paste ignored", |s| {
        is_dashboard(s) && s.contains("pasted text ignored")
    });
    t.keys(&[":"]);
    paste("filter pasted-q");
    t.wait("the paste in the palette", |s| {
        s.contains("║filter pasted-q")
    });
    t.keys(&["Escape"]);
    t.wait("the palette closed", |s| !s.contains("║filter pasted-q"));
    t.keys(&["q"]);
    t.wait("the shell after quitting", |s| {
        !is_dashboard(s) && s.trim_end().ends_with("PROMPT>")
    });
}

/// `kill` (SIGTERM) of a running dashboard gives the terminal back as it found it: the
/// alternate screen left, the shell's prompt and a working line (it died with the
/// dashboard drawn over the shell and the terminal raw).
#[test]
fn sigterm_gives_the_terminal_back_in_tmux() {
    let h = Home::new();
    let Some(t) = shell_in_tmux("sigterm") else {
        return;
    };
    t.keys(&[&format!("{}; echo exit=$?", dashboard_command(&h)), "Enter"]);
    let dashboard = is_dashboard;
    t.wait("the dashboard", dashboard);
    let pid = dashboard_pid(&t);
    // SAFETY: signalling the dashboard process this test started (through tmux).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    t.wait("the shell after SIGTERM", |s| {
        !dashboard(s) && s.contains("exit=0") && s.trim_end().ends_with("PROMPT>")
    });
    t.keys(&["echo done-$((1+1))", "Enter"]);
    t.wait("the shell to run a command", |s| s.contains("done-2"));
}

/// The dashboard running in `t`'s shell: the shell's child or grandchild (through a
/// subshell), by the binary it runs.
fn dashboard_pid(t: &Tmux) -> i32 {
    let shell: i32 = t
        .run(&["list-panes", "-t", "dash", "-F", "#{pane_pid}"])
        .trim()
        .parse()
        .unwrap();
    let bin = assert_cmd::cargo::cargo_bin("smolvm");
    support::children_of(shell)
        .into_iter()
        .flat_map(|c| std::iter::once(c).chain(support::children_of(c)))
        .find(|p| std::fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|e| e == bin))
        .expect("the dashboard's process")
}

/// A dashboard started with SIGHUP ignored (`nohup`, `trap '' HUP`) keeps it ignored: a
/// hang-up does not end it (it took SIGHUP over and quit).
#[test]
fn a_dashboard_started_with_sighup_ignored_outlives_a_hangup_in_tmux() {
    let h = Home::new();
    let Some(t) = shell_in_tmux("nohup") else {
        return;
    };
    t.keys(&[
        &format!("(trap '' HUP; {}); echo exit=$?", dashboard_command(&h)),
        "Enter",
    ]);
    let dashboard = is_dashboard;
    t.wait("the dashboard", dashboard);
    let sub = dashboard_pid(&t);
    // SAFETY: signalling the dashboard process this test started (through tmux).
    assert_eq!(unsafe { libc::kill(sub, libc::SIGHUP) }, 0);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        support::alive(sub as u32),
        "the hang-up ended the dashboard"
    );
    assert!(dashboard(&t.screen()), "{}", t.screen());
    t.keys(&["q"]);
    t.wait("the shell after quitting", |s| {
        !dashboard(s) && s.contains("exit=0") && s.trim_end().ends_with("PROMPT>")
    });
}

/// An HTTP GET of 127.0.0.1:port inside the namespace: the body, or "".
fn http_get(ns: &NetNs, port: u16) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "timeout", "10", "bash", "-c"])
        .arg(format!(
            "exec 3<>/dev/tcp/127.0.0.1/{port} && printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3"
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The VMs pane's row of `id`.
fn vm_row(screen: &str, id: &str) -> String {
    screen
        .lines()
        .find(|l| l.starts_with('┃') && l.contains(id))
        .unwrap_or("")
        .to_string()
}

#[test]
fn attach_from_the_start_form_then_pause_resume_and_expose_through_the_keys_in_tmux() {
    if !usable() {
        return;
    }
    let h = Home::new();
    let ns = NetNs::with_uplink();
    let _cleanup = CleanupAll(&h, &ns);
    let debian = support::images::debian_rootfs();
    let manifest = support::images::manifest(
        h.tmp.path(),
        &[support::images::Row {
            preset: "marker",
            rootfs: &debian,
        }],
    );
    // The test preset (as in tests/presets.rs): published in the test manifest.
    h.user_presets(&support::marker_presets("SMOLVM-DASH-MARKER"));
    let t = open_dashboard(
        &h,
        &ns,
        &[("SMOLVM_MANIFEST", manifest.display().to_string())],
    );
    t.wait("the empty VM list", |s| {
        s.contains("No VMs. Press n to start a preset.")
    });

    // The form offers the user's preset: choose it, name the VM, tick attach, start.
    t.keys(&["n"]);
    t.wait("the start form", |s| {
        s.contains("Start a sandbox") && s.contains(" marker ")
    });
    let builtin = smolvm::core::presets::Registry::builtin();
    let presets = builtin
        .names()
        .into_iter()
        .chain(["marker"])
        .collect::<std::collections::BTreeSet<_>>();
    let right = presets.iter().position(|p| *p == "marker").unwrap();
    for _ in 0..right {
        t.keys(&["Right"]);
    }
    t.keys(&["Tab"]);
    t.keys(&["vm-att"]);
    // Name → Memory → CPUs → Disk → Mounts → Writable → Internet → Allow CIDRs → Allow
    // names → Publish SSH → Attach.
    for _ in 0..10 {
        t.keys(&["Tab"]);
    }
    t.keys(&["Space"]);
    t.wait("attach ticked", |s| s.contains("Attach      [x]"));
    t.keys(&["Enter"]);

    // The VM boots, the session runs the launch command in the foreground, and the
    // dashboard comes back with the VM listed and selected.
    let start = Instant::now();
    loop {
        let s = t.screen();
        if s.contains("session in vm-att ended (exit 3)") {
            break;
        }
        assert!(!s.contains("✗ #1 start"), "the start failed; screen:\n{s}");
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "timed out waiting for the session; screen:\n{s}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // What the session printed is on the normal screen the dashboard left for it.
    let normal = t.run(&["capture-pane", "-p", "-a", "-t", "dash"]);
    assert!(normal.contains("SMOLVM-DASH-MARKER"), "{normal}");
    t.wait("the VM row, running", |s| {
        let row = vm_row(s, "vm-att");
        row.contains("running") && row.contains("marker")
    });
    assert_eq!(support::cleanup::row_ids(&h.data), ["vm-att"]);

    // A guest HTTP server (busybox from the host, as tests/toolkit.rs does).
    let cli = |args: &[&str]| {
        let out = ns.smolvm(&h, args);
        assert!(
            out.status.success(),
            "smolvm {args:?}: {}",
            support::stderr(&out)
        );
    };
    cli(&[
        "sandbox",
        "file",
        "upload",
        "vm-att",
        "/usr/bin/busybox",
        "/usr/local/bin/busybox",
    ]);
    cli(&[
        "sandbox",
        "exec",
        "vm-att",
        "--",
        "sh",
        "-c",
        "mkdir -p /srv && echo hello-from-dashboard > /srv/index.html && busybox httpd -p 8000 -h /srv",
    ]);

    // e: the port form; the forward answers on 127.0.0.1:18081.
    t.keys(&["e"]);
    t.wait("the port form", |s| s.contains("Expose a port of vm-att"));
    t.keys(&["18081:8000"]);
    t.keys(&["Enter"]);
    t.wait("the exposed port", |s| {
        s.contains("exposed 127.0.0.1:18081 → vm-att:8000")
    });
    assert!(ns.sh("ss -ltn; nft list ruleset").contains("18081"));
    assert!(http_get(&ns, 18081).contains("hello-from-dashboard"));

    // z pauses: the row says paused and the guest stops answering; z resumes.
    t.keys(&["z"]);
    t.wait("the paused row", |s| vm_row(s, "vm-att").contains("paused"));
    assert!(!http_get(&ns, 18081).contains("hello-from-dashboard"));
    t.keys(&["z"]);
    t.wait("the resumed row", |s| {
        vm_row(s, "vm-att").contains("running") && s.contains("1 resumed, 0 failed")
    });
    support::cleanup::wait_for(
        || http_get(&ns, 18081).contains("hello-from-dashboard"),
        "the guest answering again",
    );

    // Enter: the detail view lists the forward.
    t.keys(&["Enter"]);
    t.wait("the detail view", |s| {
        s.contains("VM vm-att") && s.contains("127.0.0.1:18081 → 8000")
    });
    // Escape alone, then wait for the view to close: an Escape read together with the
    // next key is that key with Alt (the terminal's ambiguity), not two keys.
    t.keys(&["Escape"]);
    t.wait("the detail view closed", |s| !s.contains("┏ VM vm-att"));

    // U: upload a file through the form; it is in the guest.
    let local = h.tmp.path().join("to-guest.txt");
    std::fs::write(&local, b"uploaded-from-the-dashboard\n").unwrap();
    t.keys(&["U"]);
    t.wait("the upload form", |s| s.contains("Upload to vm-att"));
    t.keys(&[local.to_str().unwrap()]);
    t.keys(&["Down"]);
    t.keys(&["/root/from-dash.txt"]);
    t.keys(&["Enter"]);
    t.wait("the upload result", |s| s.contains("copied file"));
    let out = ns.smolvm(
        &h,
        &[
            "sandbox",
            "exec",
            "vm-att",
            "--",
            "cat",
            "/root/from-dash.txt",
        ],
    );
    assert!(
        support::stdout(&out).contains("uploaded-from-the-dashboard"),
        "{}",
        support::stderr(&out)
    );

    // D: download a folder holding a FIFO through the form. The dashboard runs the CLI's
    // own download: the FIFO is skipped (and said so), the file lands.
    cli(&[
        "sandbox",
        "exec",
        "vm-att",
        "--",
        "sh",
        "-c",
        "mkdir -p /root/dl && echo from-the-guest > /root/dl/f && mkfifo /root/dl/pipe",
    ]);
    let back = h.tmp.path().join("dl-back");
    t.keys(&["D"]);
    t.wait("the download form", |s| s.contains("Download from vm-att"));
    t.keys(&["/root/dl"]);
    t.keys(&["Down"]);
    t.keys(&[back.to_str().unwrap()]);
    t.keys(&["Enter"]);
    t.wait("the download result", |s| s.contains("1 entry skipped"));
    assert_eq!(std::fs::read(back.join("f")).unwrap(), b"from-the-guest\n");
    assert!(std::fs::symlink_metadata(back.join("pipe")).is_err());

    // S: a full snapshot, the source resumed; the detail view lists it; x deletes it.
    t.keys(&["S"]);
    t.wait("the snapshot form", |s| {
        s.contains("Snapshot") && s.contains("Resume")
    });
    t.keys(&["snap-dash", "Tab", "Tab", "Space", "Enter"]);
    t.wait("the snapshot result", |s| {
        s.contains("1 snapshotted, 0 failed")
    });
    t.wait("the source running again", |s| {
        vm_row(s, "vm-att").contains("running")
    });
    t.keys(&["Enter"]);
    t.wait("the snapshot in the detail view", |s| {
        s.contains("Snapshots (1)") && s.contains("snap-dash")
    });
    t.keys(&["x"]);
    t.wait("the confirmation", |s| s.contains("Delete snapshots"));
    t.keys(&["y"]);
    t.wait("the snapshot gone", |s| {
        s.contains("1 snapshot(s) deleted, 0 failed") && s.contains("Snapshots (0)")
    });
    t.keys(&["Escape"]);
    t.wait("the detail view closed", |s| !s.contains("┏ VM vm-att"));

    // :exec: what the guest prints reaches the screen escaped, shown, never obeyed — an
    // OSC 0 would retitle the operator's window, a CSI 2J clear the screen.
    let title = || t.run(&["display-message", "-p", "-t", "dash", "#{pane_title}"]);
    let before = title();
    t.keys(&[":"]);
    t.run(&[
        "send-keys",
        "-t",
        "dash",
        "-l",
        r"exec vm-att -- printf '\033]0;PWNED\007EXEC-MARK\033[2J'",
    ]);
    t.keys(&["Enter"]);
    t.wait("the exec note", |s| {
        s.contains(r"\x1b]0;PWNED\x07EXEC-MARK\x1b[2J") && s.contains("exited 0")
    });
    assert_eq!(title(), before, "the guest retitled the operator's window");
    assert!(!title().contains("PWNED"));
    t.keys(&["Escape"]);
    t.wait("the note closed", |s| !s.contains("EXEC-MARK"));
    t.keys(&["q"]);
}
