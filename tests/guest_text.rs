//! Guest text on the operator's terminal (#22, item 2). A guest writes what it likes to
//! its console: OSC 52 (the operator's clipboard), title changes, screen clears and
//! carriage returns that fake output. On a terminal smolvm shows those bytes visibly —
//! C0 controls (but newline and tab), DEL and C1 controls as `\xNN` / `\u{NN}`, invalid
//! UTF-8 as `\xNN`, `\r\n` as a newline — and `--raw` prints them as they are. Pipes and
//! `--json` are unchanged.

mod support;

use std::process::Command;
use std::time::Duration;

use support::cleanup::{insert_rows, NetNs, QemuStandIn, Row};
use support::images::{self, Init};
use support::pty::run_on_pty;
use support::sandbox::{create_args, Sandboxes};
use support::Home;

/// A console log as a hostile guest writes it.
const HOSTILE: &[u8] = b"boot ok\r\n\x1b]52;c;ZXZpbA==\x07clip\n\x1b]0;pwned\x07title\n\x1b[2J\x1b[Hcleared\nreal\rfake\n\x7fdel \xc2\x9b31mcsi \xff\xfe bad\ttab\n";

/// What a terminal shows of it.
const SHOWN: &str = "boot ok\n\\x1b]52;c;ZXZpbA==\\x07clip\n\\x1b]0;pwned\\x07title\n\\x1b[2J\\x1b[Hcleared\nreal\\x0dfake\n\\x7fdel \\u{9b}31mcsi \\xff\\xfe bad\ttab\n";

fn home_with_log(id: &str, log: &[u8]) -> Home {
    let h = Home::new();
    std::fs::create_dir_all(&h.data).unwrap();
    insert_rows(&h.data, &h.sockets(), &[Row::stopped(id)]);
    std::fs::write(h.data.join(format!("{id}.log")), log).unwrap();
    h
}

fn smolvm(h: &Home, args: &[&str]) -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("smolvm"));
    c.args(args).env_clear().envs(h.env_vars());
    c
}

/// stdout and stderr on a terminal: exit 0 and exactly these bytes.
fn on_terminal(h: &Home, args: &[&str]) -> Vec<u8> {
    let (status, out) = run_on_pty(smolvm(h, args), Duration::from_secs(60));
    assert!(
        status.success(),
        "{args:?}: {status}: {}",
        String::from_utf8_lossy(&out)
    );
    out
}

fn piped(h: &Home, args: &[&str]) -> Vec<u8> {
    let out = smolvm(h, args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", support::stderr(&out));
    out.stdout
}

fn shown(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn sandbox_logs_on_a_terminal_shows_control_bytes_visibly() {
    let h = home_with_log("vm-esc", HOSTILE);
    // The whole log, following a stopped VM, the tail: escaped on a terminal.
    for args in [
        &["sandbox", "logs", "vm-esc"][..],
        &["sandbox", "logs", "vm-esc", "-f"],
        &["sandbox", "logs", "vm-esc", "--follow"],
        &["sandbox", "logs", "vm-esc", "--tail", "100"],
        &["sandbox", "logs", "vm-esc", "--tail", "100", "-f"],
    ] {
        assert_eq!(shown(&on_terminal(&h, args)), SHOWN, "{args:?}");
    }
    let last_two = "real\\x0dfake\n\\x7fdel \\u{9b}31mcsi \\xff\\xfe bad\ttab\n";
    assert_eq!(
        shown(&on_terminal(
            &h,
            &["sandbox", "logs", "vm-esc", "--tail", "2"]
        )),
        last_two
    );
    // --raw: the bytes as they are, on a terminal too.
    assert_eq!(
        on_terminal(&h, &["sandbox", "logs", "vm-esc", "--raw"]),
        HOSTILE
    );
    assert_eq!(
        on_terminal(&h, &["sandbox", "logs", "vm-esc", "--raw", "--tail", "2"]),
        b"real\rfake\n\x7fdel \xc2\x9b31mcsi \xff\xfe bad\ttab\n"
    );
    // --json: the envelope as before (its strings escape control characters themselves).
    let out = on_terminal(&h, &["sandbox", "logs", "vm-esc", "--json", "--tail", "5"]);
    assert!(!out.contains(&0x1b), "{}", shown(&out));
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["data"]["lines"][0], "\x1b]52;c;ZXZpbA==\x07clip");
    // Pipes: unchanged.
    assert_eq!(piped(&h, &["sandbox", "logs", "vm-esc"]), HOSTILE);
    assert_eq!(
        shown(&piped(&h, &["sandbox", "logs", "vm-esc", "--tail", "2"])),
        "real\rfake\n\x7fdel \u{9b}31mcsi \u{fffd}\u{fffd} bad\ttab\n"
    );
}

/// A QEMU stand-in for sandbox `id`, recorded as running in `h`'s state database.
fn running_stand_in(h: &Home, ns: &NetNs, id: &str) -> QemuStandIn {
    let vmm = QemuStandIn::start(ns, &h.sockets(), id, None);
    insert_rows(
        &h.data,
        &h.sockets(),
        &[Row {
            id,
            status: "running",
            pid: Some(vmm.pid()),
            tap: None,
            backend: "qemu",
        }],
    );
    vmm
}

#[test]
fn a_log_split_anywhere_by_a_follower_still_shows_whole_characters() {
    require_root!("(a QEMU stand-in in a network namespace)");
    // A UTF-8 character and a \r\n cut where -f has read so far: the rest arrives later.
    // Nothing is shown as invalid, nothing as a lone carriage return.
    let h = Home::new();
    let ns = NetNs::new();
    let vmm = running_stand_in(&h, &ns, "vm-split");
    let log = h.data.join("vm-split.log");
    std::fs::write(&log, b"caf\xc3").unwrap();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        std::io::Write::write_all(&mut f, b"\xa9 ok\r").unwrap();
        std::thread::sleep(Duration::from_millis(1000));
        std::io::Write::write_all(&mut f, b"\nnext\n").unwrap();
    });
    let (_, out) = run_on_pty(
        smolvm(&h, &["sandbox", "logs", "vm-split", "-f"]),
        Duration::from_secs(5),
    );
    writer.join().unwrap();
    assert_eq!(shown(&out), "café ok\nnext\n");
    drop(vmm);
}

/// `logs -f` follows a running sandbox until its VMM exits, then ends by itself (exit 0,
/// as `docker logs -f` does; SmolVM's follows until Ctrl-C): what was written before the
/// exit is shown, and a script following a sandbox finishes with it.
#[test]
fn a_follower_ends_when_the_vmm_exits() {
    require_root!("(a QEMU stand-in in a network namespace)");
    let h = Home::new();
    let ns = NetNs::new();
    let vmm = running_stand_in(&h, &ns, "vm-end");
    let log = h.data.join("vm-end.log");
    std::fs::write(&log, b"first\n").unwrap();
    let mut follower = smolvm(&h, &["sandbox", "logs", "vm-end", "-f"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        follower.try_wait().unwrap().is_none(),
        "ended while the VMM ran"
    );
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut f, b"last words\n").unwrap();
    drop(vmm); // killed and reaped
    let t0 = std::time::Instant::now();
    let status = loop {
        if let Some(s) = follower.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = follower.kill();
            panic!("still following a minute after the VMM exited");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(follower.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(status.success(), "{status}: {out}");
    assert_eq!(out, "first\nlast words\n");
}

/// A follower reads the state database without changing it (a private copy, since no
/// writer has it open): stopped as a user stops it, by Ctrl-C (SIGINT, no handler runs),
/// or killed, it leaves nothing in the temporary directory — no copy of the database
/// (every sandbox's config) piling up in `/tmp` at each `logs -f`.
#[test]
fn a_follower_stopped_by_ctrl_c_or_killed_leaves_no_copy_of_the_database() {
    require_root!("(a QEMU stand-in in a network namespace)");
    let h = Home::new();
    let ns = NetNs::new();
    let vmm = running_stand_in(&h, &ns, "vm-tail");
    std::fs::write(h.data.join("vm-tail.log"), b"first\n").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for signal in [nix::sys::signal::SIGINT, nix::sys::signal::SIGKILL] {
        let mut follower = smolvm(&h, &["sandbox", "logs", "vm-tail", "-f"])
            .env("TMPDIR", tmp.path())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The first line shown: the follower has read the database and is following.
        let mut first = [0u8; 6];
        std::io::Read::read_exact(follower.stdout.as_mut().unwrap(), &mut first).unwrap();
        assert_eq!(&first, b"first\n");
        let pid = nix::unistd::Pid::from_raw(follower.id() as i32);
        nix::sys::signal::kill(pid, signal).unwrap();
        let status = follower.wait().unwrap();
        assert!(!status.success(), "{signal}: {status}");
        let left: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "after {signal}: {left:?} left in TMPDIR");
    }
    drop(vmm);
}

#[test]
fn an_error_quoting_the_console_log_is_escaped_on_a_terminal() {
    require_root!();
    let (kernel, _) = images::kernel();
    let rootfs = images::busybox_rootfs(Init::Hostile);
    let e = Sandboxes::new();
    let args = create_args(
        kernel.to_str().unwrap(),
        rootfs.to_str().unwrap(),
        "vm-hostile",
        "qemu",
        &["--accel", "tcg", "--start", "--boot-timeout", "15"],
    );
    let cmd = e.command(&args, &[]);
    let (status, out) = run_on_pty(cmd, Duration::from_secs(120));
    let text = shown(&out);
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(text.contains("did not become ready"), "{text}");
    assert!(
        text.contains("\\x1b]0;owned by the guest\\x07"),
        "the console line is not quoted visibly: {text:?}"
    );
    assert!(!out.contains(&0x1b) && !out.contains(&0x07), "{text:?}");
}

/// A guest flooding its serial console cannot fill the host's disk through its log: with
/// `SMOLVM_CONSOLE_LOG_MAX` at 128 KiB, the 1 MiB it writes before its ready line leaves a
/// log within the bound that says it started again, and the ready line that came after
/// (the start succeeds). The pump writing the log runs as the system user `smolvm`, not as
/// the VMM's ids, and ends with the VMM.
#[test]
fn a_guest_flooding_its_console_cannot_fill_the_disk() {
    require_root!();
    let (kernel, _) = images::kernel();
    let rootfs = images::busybox_rootfs(Init::Flood);
    let mut e = Sandboxes::new();
    e.extra
        .push(("SMOLVM_CONSOLE_LOG_MAX".into(), "131072".into()));
    let args = create_args(
        kernel.to_str().unwrap(),
        rootfs.to_str().unwrap(),
        "vm-flood",
        "qemu",
        &[
            "--accel",
            "tcg",
            "--start",
            "--boot-timeout",
            "120",
            "--json",
        ],
    );
    let v = e.ok_json(&args);
    let log_path = e.h.data.join("vm-flood.log");
    // The start may be ready by sshd's banner before the pump, behind a flood on a loaded
    // host, has written the ready line: the log is read once that line is in it.
    let t0 = std::time::Instant::now();
    let log = loop {
        let log = std::fs::read(&log_path).unwrap();
        let done = String::from_utf8_lossy(&log).contains("SmolVM init complete: IP=");
        if done || t0.elapsed() > Duration::from_secs(60) {
            break log;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = String::from_utf8_lossy(&log);
    assert!(log.len() <= 131072 + 4096, "{} bytes", log.len());
    assert!(
        text.contains("[smolvm: this console log passed 131072 bytes; it starts again here]"),
        "{}",
        &text[..text.len().min(300)]
    );
    assert!(text.contains("SmolVM init complete: IP="), "{}", text.len());
    // The pump: smolvm's hidden subcommand, as the smolvm user, writing this log.
    let pumps: Vec<i32> = smolvm::sys::process::all_pids()
        .into_iter()
        .filter(|p| {
            smolvm::sys::process::info(*p).is_some_and(|i| {
                i.cmdline.get(1).map(String::as_str) == Some("__console-log")
                    && std::fs::read_link(format!("/proc/{p}/fd/1")).is_ok_and(|t| t == log_path)
            })
        })
        .collect();
    let [pump] = pumps[..] else {
        panic!("not one pump for the log: {pumps:?}");
    };
    let smolvm_uid = nix::unistd::User::from_name("smolvm")
        .unwrap()
        .expect("the smolvm user")
        .uid
        .as_raw();
    let p = support::privileges(i64::from(pump));
    assert_eq!(p.uids, [smolvm_uid; 4], "{p:?}");
    assert_eq!(p.cap_eff, 0, "{p:?}");
    let vmm = support::privileges(v["data"]["pid"].as_i64().unwrap());
    assert_ne!(vmm.uids[0], smolvm_uid);
    // `sandbox logs -f` follows a log that starts again from its start.
    let mut follower = e
        .command(&["sandbox", "logs", "vm-flood", "-f"], &[])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = follower.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(out)).map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    std::thread::sleep(Duration::from_secs(1));
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&log_path)
            .unwrap();
        f.set_len(0).unwrap();
        f.write_all(b"the log started again here\n").unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut seen = false;
    while !seen && std::time::Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            seen = l.contains("the log started again here");
        }
    }
    let _ = follower.kill();
    let _ = follower.wait();
    assert!(seen, "the follower missed the log that started again");
    e.ok_json(&["sandbox", "delete", "vm-flood", "--timeout", "3", "--json"]);
    support::cleanup::wait_for(
        || !smolvm::sys::process::is_alive(pump),
        "the pump to end with its VMM",
    );
}
