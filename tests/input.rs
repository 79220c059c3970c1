//! Hostile input from flags and environment variables: a clear usage error (exit 2, JSON
//! code `usage_error`), nothing touched, and never a panic — and output to a closed pipe
//! ends quietly. Every test runs the real binaries in an isolated [`Home`].

mod support;

use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command as StdCommand, Output, Stdio};

use support::{assert_code, json, stderr, stdout, Home};

/// Fails with the whole output when the binary panicked.
fn assert_no_panic(out: &Output, what: &str) {
    let err = stderr(out);
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{what}: panicked\n{err}"
    );
    assert_ne!(out.status.code(), Some(101), "{what}: exit 101\n{err}");
}

/// Exit 2, no panic, `Error: ...` naming `name` on stderr, nothing on stdout.
fn assert_usage(out: &Output, name: &str, what: &str) {
    assert_no_panic(out, what);
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{what}: exit code\nstdout: {}\nstderr: {err}",
        stdout(out)
    );
    assert!(err.contains("Error:"), "{what}: no Error: line\n{err}");
    assert!(
        err.contains(name),
        "{what}: message does not name {name}\n{err}"
    );
    assert!(stdout(out).is_empty(), "{what}: stdout\n{}", stdout(out));
}

/// One JSON envelope: `ok: false`, exit 2, code `usage_error`, a message naming `name`.
fn assert_usage_json(out: &Output, name: &str, command: &str, what: &str) {
    assert_no_panic(out, what);
    assert_eq!(out.status.code(), Some(2), "{what}: {}", stderr(out));
    let v = json(out);
    assert_eq!(v["ok"], false, "{what}: {v}");
    assert_eq!(v["exit_code"], 2, "{what}: {v}");
    assert_eq!(v["command"], command, "{what}: {v}");
    assert_eq!(v["error"]["code"], "usage_error", "{what}: {v}");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(name),
        "{what}: message does not name {name}: {v}"
    );
}

/// Every entry under `dir`, sorted, as relative paths (a "nothing touched" check).
fn tree(dir: &Path) -> Vec<String> {
    let mut v = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            v.push(p.strip_prefix(dir).unwrap().display().to_string());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
        }
    }
    v.sort();
    v
}

// ---------------------------------------------------------------- SMOLVM_IMAGE_VERSION

const BAD_VERSIONS: &[&str] = &[
    "../x",
    "..",
    ".",
    "/etc",
    "/tmp/elsewhere",
    "0.0.1/../../x",
    "a/b",
    "0.0.1 x",
    "-rf",
    ".hidden",
    "0.0.1\u{7f}",
    "0.0.\u{e9}",
];

fn long_version() -> String {
    "1".repeat(200)
}

#[test]
fn bad_image_version_is_a_usage_error_for_prune_and_nothing_is_removed() {
    let h = Home::new();
    h.cache("0.0.12", 4096);
    h.cache("0.0.13", 4096);
    // What `../x` would name relative to a version dir, and a sibling of the root.
    std::fs::create_dir_all(h.home.join(".smolvm/x")).unwrap();
    let before = tree(&h.home);
    let long = long_version();
    for v in BAD_VERSIONS.iter().copied().chain([long.as_str()]) {
        for cmd in [&["prune"][..], &["prune", "--dry-run"], &["image", "prune"]] {
            let out = h
                .smolvm()
                .env("SMOLVM_IMAGE_VERSION", v)
                .args(cmd)
                .output()
                .unwrap();
            assert_usage(&out, "SMOLVM_IMAGE_VERSION", &format!("{cmd:?} with {v:?}"));
            let out = h
                .smolvm()
                .env("SMOLVM_IMAGE_VERSION", v)
                .args(cmd)
                .arg("--json")
                .output()
                .unwrap();
            let name = if cmd[0] == "image" {
                "image.prune"
            } else {
                "prune"
            };
            assert_usage_json(
                &out,
                "SMOLVM_IMAGE_VERSION",
                name,
                &format!("{cmd:?} --json with {v:?}"),
            );
        }
    }
    assert_eq!(tree(&h.home), before, "prune touched something");
}

#[test]
fn bad_image_version_is_a_usage_error_for_image_ls_and_pull() {
    let h = Home::new();
    h.cache("0.0.14/codex-amd64-qemu", 4096);
    let before = tree(h.tmp.path());
    for v in ["../x", "/tmp", "..", "a/b", &long_version()] {
        for cmd in [
            &["image", "ls"][..],
            &["images"],
            &["image", "pull", "codex", "--vmm", "qemu", "--arch", "amd64"],
            &[
                "image", "inspect", "codex", "--vmm", "qemu", "--arch", "amd64",
            ],
            &["image", "rm", "codex"],
        ] {
            let run = |json: bool| {
                let mut c = h.smolvm();
                c.env("SMOLVM_IMAGE_VERSION", v)
                    // Never the network: a manifest that does not exist.
                    .env("SMOLVM_MANIFEST", h.tmp.path().join("no-manifest.json"))
                    .env("SMOLVM_HTTP_RETRIES", "0")
                    .args(cmd);
                if json {
                    c.arg("--json");
                }
                c.output().unwrap()
            };
            assert_usage(
                &run(false),
                "SMOLVM_IMAGE_VERSION",
                &format!("{cmd:?} with {v:?}"),
            );
            let command = match cmd {
                ["images"] => "images".to_string(),
                ["image", "ls"] => "image.list".to_string(),
                [a, b, ..] => format!("{a}.{b}"),
                _ => unreachable!(),
            };
            assert_usage_json(
                &run(true),
                "SMOLVM_IMAGE_VERSION",
                &command,
                &format!("{cmd:?} --json with {v:?}"),
            );
        }
    }
    assert_eq!(tree(h.tmp.path()), before);
}

#[test]
fn bad_image_version_is_a_usage_error_for_version_flag() {
    let h = Home::new();
    let out = h
        .smolvm()
        .env("SMOLVM_IMAGE_VERSION", "../x")
        .arg("--version")
        .output()
        .unwrap();
    assert_usage(&out, "SMOLVM_IMAGE_VERSION", "--version");
}

#[test]
fn version_like_image_versions_are_accepted() {
    let h = Home::new();
    for v in [
        "0.0.14",
        "0.0.24.post3",
        "1.2.3-rc.1+build_5",
        "v2",
        "0.1.0a1",
    ] {
        let out = h.run_env(&["image", "ls", "--json"], "SMOLVM_IMAGE_VERSION", v);
        assert_no_panic(&out, v);
        assert_eq!(out.status.code(), Some(0), "{v}: {}", stderr(&out));
        assert_eq!(json(&out)["data"]["current_version"], v);
    }
    // Unset or empty means this build's version (SmolVM tests the variable for truth).
    for v in [None, Some("")] {
        let mut c = h.smolvm();
        c.env_remove("SMOLVM_IMAGE_VERSION");
        if let Some(v) = v {
            c.env("SMOLVM_IMAGE_VERSION", v);
        }
        let out = c.args(["image", "ls", "--json"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{v:?}: {}", stderr(&out));
        assert_eq!(
            json(&out)["data"]["current_version"],
            env!("CARGO_PKG_VERSION")
        );
    }
}

// ------------------------------------------------------------------------ durations

/// Values no duration flag or variable may take.
const BAD_SECONDS: &[&str] = &[
    "1e20",
    "inf",
    "-inf",
    "infinity",
    "nan",
    "NaN",
    "-1",
    "-0",
    "-0.0",
    "86401",
    "1e5",
    "99999999999999999999999",
    "18446744073709551616",
    "abc",
    "",
    "1s",
    "0x10",
];

#[test]
fn out_of_range_timeouts_on_stop_and_delete_are_usage_errors() {
    let h = Home::new();
    for cmd in ["stop", "delete"] {
        // A stop waits more than 0 s (SmolVM's range); a delete may kill at once.
        let zero: &[&str] = if cmd == "stop" { &["0", "0.0"] } else { &[] };
        for v in BAD_SECONDS.iter().chain(zero) {
            let flag = format!("--timeout={v}");
            let out = h.run(&["sandbox", cmd, "vm-x", &flag]);
            assert_usage(&out, "--timeout", &format!("sandbox {cmd} {flag}"));
            assert!(
                stderr(&out).contains("86400"),
                "the limit is not said: {}",
                stderr(&out)
            );
            let out = h.run(&["sandbox", cmd, "vm-x", &flag, "--json"]);
            assert_usage_json(
                &out,
                "--timeout",
                &format!("sandbox.{cmd}"),
                &format!("sandbox {cmd} {flag} --json"),
            );
        }
        // The space-separated form of the reported panics.
        for v in ["1e20", "inf", "nan"] {
            let out = h.run(&["sandbox", cmd, "vm-x", "--timeout", v]);
            assert_usage(&out, "--timeout", &format!("sandbox {cmd} --timeout {v}"));
        }
    }
}

#[test]
fn in_range_timeouts_are_accepted() {
    let h = Home::new();
    for (cmd, zero) in [("stop", &[][..]), ("delete", &["0", "0.0"][..])] {
        for v in zero.iter().chain(&["2.5", "10", "86400", "+3", "1e3"]) {
            let out = h.run(&["sandbox", cmd, "vm-nope", "--timeout", v]);
            assert_no_panic(&out, v);
            // Past the parser: the sandbox does not exist.
            assert_eq!(out.status.code(), Some(1), "{cmd} {v}: {}", stderr(&out));
            assert!(stderr(&out).contains("vm-nope"), "{}", stderr(&out));
        }
    }
}

#[test]
fn out_of_range_boot_timeouts_are_usage_errors() {
    let h = Home::new();
    let bad: Vec<&str> = BAD_SECONDS.iter().copied().chain(["0", "0.0"]).collect();
    for v in bad {
        let flag = format!("--boot-timeout={v}");
        for cmd in [
            vec!["sandbox", "start", "vm-x", &flag],
            vec!["codex", "start", &flag],
            vec!["sandbox", "create", "--preset", "codex", &flag],
        ] {
            let out = h.smolvm().args(&cmd).output().unwrap();
            assert_usage(&out, "--boot-timeout", &format!("{cmd:?}"));
            let out = h.smolvm().args(&cmd).arg("--json").output().unwrap();
            let command = if cmd[0] == "codex" {
                "codex.start".to_string()
            } else {
                format!("sandbox.{}", cmd[1])
            };
            assert_usage_json(&out, "--boot-timeout", &command, &format!("{cmd:?} --json"));
        }
    }
    // Nothing was made: no state, no images, no disks.
    assert!(!h.data.join("disks").exists());
    assert_eq!(tree(&h.images()), Vec::<String>::new());
}

#[test]
fn out_of_range_duration_variables_are_usage_errors() {
    let h = Home::new();
    for var in ["SMOLVM_STOP_TIMEOUT", "SMOLVM_DB_BUSY_TIMEOUT"] {
        for v in BAD_SECONDS.iter().filter(|v| !v.is_empty()) {
            for (bin, args) in [
                ("smolvm", &["cleanup", "--dry-run"][..]),
                ("smolvm", &["cleanup", "--force"]),
                ("smolvm-cleanup", &["--dry-run"]),
            ] {
                let run = |json: bool| {
                    let mut c = assert_cmd::Command::cargo_bin(bin).unwrap();
                    h.apply_env(&mut c);
                    c.env(var, v).args(args);
                    if json {
                        c.arg("--json");
                    }
                    c.output().unwrap()
                };
                let what = format!("{var}={v} {bin} {args:?}");
                let out = run(false);
                assert_usage(&out, var, &what);
                assert!(stderr(&out).contains("86400"), "{what}: {}", stderr(&out));
                assert_usage_json(&run(true), var, "cleanup", &what);
            }
        }
    }
    // A dry run and a refused run create nothing.
    assert!(!h.data.join("smolvm.db").exists());
}

#[test]
fn http_timeout_variable_uses_the_same_limits() {
    let h = Home::new();
    for v in ["1e20", "inf", "nan", "-1", "0", "86401"] {
        let out = h
            .smolvm()
            .env("SMOLVM_HTTP_TIMEOUT_SECS", v)
            .env("SMOLVM_MANIFEST", h.tmp.path().join("no-manifest.json"))
            .args(["image", "pull", "codex", "--vmm", "qemu", "--arch", "amd64"])
            .output()
            .unwrap();
        assert_usage(&out, "SMOLVM_HTTP_TIMEOUT_SECS", v);
    }
}

// ------------------------------------------------------------------------ variables

/// Values of SMOLVM_* variables that were taken without a word (or quietly replaced by a
/// default) before every variable had its check.
const BAD_SETTINGS: &[(&str, &str)] = &[
    ("SMOLVM_HTTP_RETRIES", "-3"),
    ("SMOLVM_LOG", "smolvm=["),
    ("SMOLVM_LOG_MAX_BYTES", "abc"),
    ("SMOLVM_USE_PUBLISHED", "perhaps"),
    ("SMOLVM_DOCKER_TIMEOUT_MS", "soon"),
    ("SMOLVM_DEBIAN_MIRROR", "ftp://mirror"),
];

#[test]
fn every_bad_smolvm_variable_is_a_usage_error_naming_it_before_anything_runs() {
    let h = Home::new();
    for (var, v) in BAD_SETTINGS {
        for args in [
            &["sandbox", "list"][..],
            &["cleanup", "--force"],
            &["image", "ls"],
        ] {
            let what = format!("{var}={v} smolvm {args:?}");
            let out = h.smolvm().env(var, v).args(args).output().unwrap();
            assert_usage(&out, var, &what);
            let out = h
                .smolvm()
                .env(var, v)
                .args(args)
                .arg("--json")
                .output()
                .unwrap();
            let command = args[..args.len().min(2)]
                .iter()
                .filter(|a| !a.starts_with('-'))
                .copied()
                .collect::<Vec<_>>()
                .join(".");
            let command = if command == "image.ls" {
                "image.list".into()
            } else {
                command
            };
            assert_usage_json(&out, var, &command, &what);
        }
    }
    // Several at once: one error names each.
    let mut c = h.smolvm();
    for (var, v) in BAD_SETTINGS {
        c.env(var, v);
    }
    let out = c.args(["sandbox", "list"]).output().unwrap();
    assert_code(&out, 2);
    for (var, _) in BAD_SETTINGS {
        assert!(
            stderr(&out).contains(var),
            "{var} not named: {}",
            stderr(&out)
        );
    }
    // Nothing was written: the refused cleanup made no database.
    assert!(!h.data.join("smolvm.db").exists());
}

#[test]
fn doctor_names_bad_variables_instead_of_refusing_and_man_lists_every_variable() {
    let h = Home::new();
    let out = h
        .smolvm()
        .env("SMOLVM_IMAGE_VERSION", "../x")
        .env("SMOLVM_HTTP_RETRIES", "-3")
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    let settings = support::doctor_check(&json(&out), "settings");
    assert_eq!(settings["status"], "fail", "{settings}");
    for var in ["SMOLVM_IMAGE_VERSION", "SMOLVM_HTTP_RETRIES"] {
        assert!(
            settings["detail"].to_string().contains(var)
                || settings["message"].to_string().contains(var),
            "{var}: {settings}"
        );
    }
    assert_ne!(out.status.code(), Some(0));
    let clean = h.run(&["doctor", "--json"]);
    let ok = support::doctor_check(&json(&clean), "settings");
    assert_eq!(ok["status"], "pass", "{ok}");

    // The page the refusal points to opens even while a variable is bad.
    let man = h
        .smolvm()
        .env("SMOLVM_HTTP_RETRIES", "-3")
        .arg("man")
        .output()
        .unwrap();
    assert_code(&man, 0);
    let page = stdout(&man);
    let env_at = page
        .find(".SH ENVIRONMENT")
        .expect("an ENVIRONMENT section");
    for var in [
        "SMOLVM_DATA_DIR",
        "SMOLVM_HTTP_RETRIES",
        "SMOLVM_LOG",
        "SMOLVM_LOG_MAX_BYTES",
        "SMOLVM_READONLY",
        "SMOLVM_STOP_TIMEOUT",
    ] {
        assert!(
            page[env_at..].contains(&format!("\\fB{var}\\fR")),
            "{var} not in ENVIRONMENT"
        );
    }
}

// ------------------------------------------------------------------------ --prefix

#[test]
fn empty_or_blank_cleanup_prefix_is_a_usage_error() {
    let h = Home::new();
    std::fs::create_dir_all(&h.data).unwrap();
    let disk = h.tmp.path().join("rootfs.ext4");
    std::fs::write(&disk, b"x").unwrap();
    support::smolvm_db_with_vm(
        &h.data.join("smolvm.db"),
        "keep-me",
        "stopped",
        &disk,
        &disk,
    );
    let db_before = std::fs::read(h.data.join("smolvm.db")).unwrap();
    for p in ["", " ", "vm -", "\t", "vm-\n", "vm-\u{1}"] {
        for bin in ["smolvm", "smolvm-cleanup"] {
            let run = |extra: &[&str]| {
                let mut c = assert_cmd::Command::cargo_bin(bin).unwrap();
                h.apply_env(&mut c);
                if bin == "smolvm" {
                    c.arg("cleanup");
                }
                c.arg(format!("--prefix={p}")).args(extra);
                c.output().unwrap()
            };
            let what = format!("{bin} --prefix={p:?}");
            for extra in [&["--dry-run"][..], &[]] {
                let out = run(extra);
                assert_usage(&out, "--prefix", &what);
                assert!(stderr(&out).contains("--all"), "{what}: {}", stderr(&out));
            }
            for extra in [&["--dry-run", "--json"][..], &["--force", "--json"]] {
                assert_usage_json(&run(extra), "--prefix", "cleanup", &what);
            }
            // Space-separated form too.
            let mut c = assert_cmd::Command::cargo_bin(bin).unwrap();
            h.apply_env(&mut c);
            if bin == "smolvm" {
                c.arg("cleanup");
            }
            let out = c.args(["--prefix", p, "--dry-run"]).output().unwrap();
            assert_usage(&out, "--prefix", &what);
        }
    }
    assert_eq!(std::fs::read(h.data.join("smolvm.db")).unwrap(), db_before);
}

// ------------------------------------------------------------------------ closed pipes

/// A pipe whose read end is already closed: writing to it fails with EPIPE.
fn closed_pipe() -> OwnedFd {
    let (r, w) = nix::unistd::pipe().unwrap();
    drop(r);
    w
}

fn smolvm_std(h: &Home, bin: &str) -> StdCommand {
    let mut c = StdCommand::new(assert_cmd::cargo::cargo_bin(bin));
    c.env_clear().envs(h.env_vars());
    c
}

/// Run with stderr on a closed pipe (stdout captured); returns the exit code.
fn with_closed_stderr(mut c: StdCommand) -> (Option<i32>, String) {
    let out = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(closed_pipe()))
        .output()
        .unwrap();
    (out.status.code(), stdout(&out))
}

/// Run with stdout on a closed pipe (stderr captured).
fn with_closed_stdout(mut c: StdCommand) -> Output {
    c.stdin(Stdio::null())
        .stdout(Stdio::from(closed_pipe()))
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn errors_to_a_closed_stderr_do_not_panic() {
    let h = Home::new();
    type Case<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>, i32);
    let cases: Vec<Case> = vec![
        ("smolvm", vec!["sandbox", "info", "vm-nope"], vec![], 1),
        ("smolvm", vec!["sandbox", "stop", "vm-nope"], vec![], 1),
        ("smolvm", vec!["sandbox", "delete", "vm-nope"], vec![], 1),
        ("smolvm", vec!["sandbox", "logs", "vm-nope"], vec![], 1),
        ("smolvm", vec!["no-such-command"], vec![], 2),
        ("smolvm", vec!["prune", "--no-such-flag"], vec![], 2),
        (
            "smolvm",
            vec!["sandbox", "stop", "x", "--timeout", "1e20"],
            vec![],
            2,
        ),
        (
            "smolvm",
            vec!["prune"],
            vec![("SMOLVM_IMAGE_VERSION", "../x")],
            2,
        ),
        (
            "smolvm",
            vec!["cleanup", "--dry-run"],
            vec![("SMOLVM_STOP_TIMEOUT", "1e20")],
            2,
        ),
        ("smolvm", vec!["cleanup", "--prefix="], vec![], 2),
        ("smolvm-cleanup", vec!["--prefix="], vec![], 2),
        ("smolvm-cleanup", vec!["--bogus"], vec![], 2),
        ("smolvm", vec!["tui"], vec![], 2),
        ("smolvm", vec![], vec![], 0),
        (
            "smolvm",
            vec!["image", "pull", "codex", "--vmm", "qemu", "--arch", "amd64"],
            vec![("SMOLVM_MANIFEST", "/nonexistent/manifest.json")],
            1,
        ),
    ];
    for (bin, args, env, want) in cases {
        let mut c = smolvm_std(&h, bin);
        c.args(&args).envs(env.iter().copied());
        let (code, _) = with_closed_stderr(c);
        assert_eq!(
            code,
            Some(want),
            "{bin} {args:?} {env:?} with stderr closed"
        );
    }
}

#[test]
fn output_to_a_closed_stdout_does_not_panic() {
    let h = Home::new();
    h.cache("0.0.12", 4096);
    let cases: Vec<(&str, Vec<&str>, i32)> = vec![
        ("smolvm", vec!["--version"], 0),
        ("smolvm", vec!["--help"], 0),
        ("smolvm", vec!["sandbox", "list"], 0),
        ("smolvm", vec!["sandbox", "list", "--json"], 0),
        ("smolvm", vec!["image", "ls"], 0),
        ("smolvm", vec!["prune", "--dry-run"], 0),
        ("smolvm", vec!["prune", "--dry-run", "--json"], 0),
        ("smolvm", vec!["cleanup", "--dry-run"], 0),
        ("smolvm", vec!["cleanup", "--dry-run", "--json"], 0),
        ("smolvm-cleanup", vec!["--dry-run"], 0),
        ("smolvm-cleanup", vec!["--help"], 0),
        (
            "smolvm",
            vec!["sandbox", "stop", "x", "--timeout=nan", "--json"],
            2,
        ),
    ];
    for (bin, args, want) in cases {
        let mut c = smolvm_std(&h, bin);
        c.args(&args);
        let out = with_closed_stdout(c);
        assert_no_panic(&out, &format!("{bin} {args:?}"));
        assert_eq!(
            out.status.code(),
            Some(want),
            "{bin} {args:?}: {}",
            stderr(&out)
        );
    }
    assert!(
        h.images().join("0.0.12").exists(),
        "dry runs removed a cache"
    );
}

#[test]
fn a_real_prune_with_stdout_closed_finishes_its_work() {
    let h = Home::new();
    h.cache("0.0.12", 4096);
    h.cache("0.0.13", 4096);
    h.cache(support::CURRENT, 4096);
    for closed_err in [false, true] {
        let mut c = smolvm_std(&h, "smolvm");
        c.arg("prune");
        c.stdin(Stdio::null()).stdout(Stdio::from(closed_pipe()));
        if closed_err {
            c.stderr(Stdio::from(closed_pipe()));
        } else {
            c.stderr(Stdio::piped());
        }
        let out = c.output().unwrap();
        assert_no_panic(&out, "prune");
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(!h.images().join("0.0.12").exists());
        assert!(!h.images().join("0.0.13").exists());
        assert!(h.images().join(support::CURRENT).exists());
        h.cache("0.0.12", 4096);
        h.cache("0.0.13", 4096);
    }
}

#[test]
fn core_cleanup_options_refuse_an_empty_prefix_too() {
    // The dashboard builds its options without clap: the same rule holds there.
    use smolvm::core::cleanup::CleanupOptions;
    use smolvm::sys::{env::Env, paths::Paths};
    let h = Home::new();
    let env = Env::from_vars(h.env_vars(), 0);
    let paths = Paths::resolve(&env, None);
    for p in ["", " ", "vm -", "a\u{0}b"] {
        let e = CleanupOptions::new(&paths, &env, false, Some(p.into()), true).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{p:?}: {e}");
        assert!(e.message.contains("--all"), "{p:?}: {e}");
    }
    // With --all the prefix is ignored; a normal prefix is fine.
    assert!(CleanupOptions::new(&paths, &env, true, Some(String::new()), true).is_ok());
    assert!(CleanupOptions::new(&paths, &env, false, Some("agent-".into()), true).is_ok());
}

/// `--backend` and `--qemu-machine` are typed (clap value enums) with SmolVM's spellings:
/// an unknown value is a usage error listing them; SmolVM's macOS runtimes parse and are
/// refused with a clear runtime error (exit 1) before anything is made.
#[test]
fn backend_and_machine_flags_list_smolvm_spellings_and_refuse_macos_runtimes() {
    let h = Home::new();
    let backends = "[possible values: auto, firecracker, qemu, libkrun, vz]";
    for cmd in [
        vec!["sandbox", "create", "--backend", "bogus"],
        vec!["codex", "start", "--backend", "QEMU"],
        vec!["doctor", "--backend", "kvm"],
    ] {
        let out = h.smolvm().args(&cmd).output().unwrap();
        assert_usage(&out, "--backend", &format!("{cmd:?}"));
        assert!(stderr(&out).contains(backends), "{cmd:?}: {}", stderr(&out));
    }
    let out = h.run(&["sandbox", "create", "--qemu-machine", "pc"]);
    assert_usage(&out, "--qemu-machine", "--qemu-machine pc");
    assert!(
        stderr(&out).contains("[possible values: auto, q35, microvm]"),
        "{}",
        stderr(&out)
    );
    for (cmd, backend) in [
        (vec!["sandbox", "create", "--backend", "vz", "--json"], "vz"),
        (
            vec!["claude", "start", "--backend", "libkrun", "--json"],
            "libkrun",
        ),
    ] {
        let out = h.smolvm().args(&cmd).output().unwrap();
        assert_no_panic(&out, &format!("{cmd:?}"));
        assert_eq!(out.status.code(), Some(1), "{cmd:?}: {}", stdout(&out));
        let v = json(&out);
        assert_eq!(v["error"]["code"], "runtime_error", "{v}");
        assert_eq!(
            v["error"]["message"],
            format!(
                "The {backend} backend is a macOS runtime of SmolVM; smolvm runs QEMU and Firecracker on Linux"
            ),
            "{v}"
        );
    }
    assert!(!h.data.join("disks").exists());
    assert_eq!(tree(&h.images()), Vec::<String>::new());
}

/// `sandbox list --preset` takes the names of the preset registry in force: every
/// built-in name and alias, and a preset (and alias) of the user's presets file; an
/// unknown name is a usage error listing them.
#[test]
fn sandbox_list_preset_takes_the_registrys_names_including_user_presets() {
    let h = Home::new();
    let list = |name: &str| h.run(&["sandbox", "list", "--preset", name, "--json"]);
    let builtin = [
        "claude-code",
        "claude",
        "codex",
        "hermes",
        "openclaw",
        "claw",
        "opencode",
        "pi",
    ];
    for name in builtin {
        let out = list(name);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stdout(&out));
        assert_eq!(json(&out)["data"]["count"], 0, "{name}");
    }
    let out = list("mine");
    assert_usage_json(&out, "--preset", "sandbox.list", "no user file: mine");
    let out = h.run(&["sandbox", "list", "--preset", "mine"]);
    assert_usage(&out, "--preset", "no user file: mine");
    assert!(
        stderr(&out).contains(&format!("[possible values: {}]", builtin.join(", "))),
        "{}",
        stderr(&out)
    );

    h.user_presets(
        "[mine]\naliases = [\"my\"]\nlaunch = \"echo hi\"\n[mine.debian]\nsteps = [\"true\"]\n",
    );
    for name in builtin.iter().chain(&["mine", "my"]) {
        let out = list(name);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stdout(&out));
    }
    let out = h.run(&["sandbox", "list", "--preset", "bogus"]);
    assert_usage(&out, "--preset", "--preset bogus");
    let err = stderr(&out);
    let listed = err
        .split_once("[possible values: ")
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(names, _)| names.split(", ").collect::<std::collections::BTreeSet<_>>())
        .unwrap_or_else(|| panic!("no possible values: {err}"));
    let expected: std::collections::BTreeSet<&str> =
        builtin.iter().copied().chain(["mine", "my"]).collect();
    assert_eq!(listed, expected, "{err}");
    assert!(err.contains("mine, my"), "{err}");
}

/// `image inspect` finds presets where `start` finds them, the user's file included: a
/// user's alias of a built-in preset is that preset's image, and a preset only the user's
/// file defines has no published image (the error `start` falls back from), not "no
/// cached image".
#[test]
fn image_inspect_knows_the_users_presets() {
    let h = Home::new();
    let inspect = |name: &str| {
        h.run(&[
            "image", "inspect", name, "--arch", "amd64", "--vmm", "qemu", "--json",
        ])
    };
    let out = inspect("cc");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    h.user_presets(
        "[claude-code]\naliases = [\"cc\"]\n[mine]\nlaunch = \"echo hi\"\n[mine.debian]\nsteps = [\"true\"]\n",
    );
    let by_alias = inspect("cc");
    assert_eq!(by_alias.status.code(), Some(0), "{}", stdout(&by_alias));
    let by_name = inspect("claude-code");
    assert_eq!(json(&by_alias)["data"], json(&by_name)["data"]);
    assert_eq!(json(&by_alias)["data"][0]["name"], "claude-code-amd64-qemu");
    let out = inspect("mine");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let v = json(&out);
    let m = v["error"]["message"].as_str().unwrap_or_default();
    assert!(m.starts_with("No published image for preset 'mine'"), "{v}");
}

/// `sandbox delete` parses each id once: one that can name no sandbox fails as "not
/// found" in its place among the others (which are still tried), in the JSON `failed`
/// list and on stderr alike.
#[test]
fn delete_reports_each_failed_id_in_the_order_asked() {
    let h = Home::new();
    let asked = ["Bad/Id", "vm-nope", "../x", "vm-nope-2"];
    let mut args = vec!["sandbox", "delete"];
    args.extend(asked);
    let out = h.run(&[args.as_slice(), &["--json"]].concat());
    let v = support::json_exit(&out, 1);
    let failed: Vec<(&str, &str)> = v["data"]["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["vm_id"].as_str().unwrap(), f["error"].as_str().unwrap()))
        .collect();
    let want: Vec<(&str, String)> = asked
        .iter()
        .map(|id| (*id, format!("VM '{id}' not found")))
        .collect();
    assert_eq!(
        failed
            .iter()
            .map(|(i, e)| (*i, e.to_string()))
            .collect::<Vec<_>>(),
        want,
        "{v}"
    );
    let out = h.run(&args);
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<&str> = std::str::from_utf8(&out.stderr)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("Error: "))
        .collect();
    let ids: Vec<&str> = lines
        .iter()
        .map(|l| l["Error: ".len()..].split(':').next().unwrap())
        .collect();
    assert_eq!(ids, asked, "{lines:?}");
}

/// A `--json` report that cannot be written as asked (a path in it that is not UTF-8)
/// still goes out as one envelope, naming why, and the process exits with the code that
/// envelope says (it said 1 while the process exited 0).
#[test]
fn a_json_report_that_cannot_be_written_exits_as_its_envelope_says() {
    use std::os::unix::ffi::OsStrExt;
    let h = Home::new();
    let dir = h.home.join(std::ffi::OsStr::from_bytes(b"images-\xff"));
    std::fs::create_dir_all(&dir).unwrap();
    let out = smolvm_std(&h, "smolvm")
        .args(["image", "ls", "--json", "--image-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_no_panic(&out, "image ls");
    let v = json(&out);
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(out.status.code(), Some(1), "{v}");
    assert_eq!(v["exit_code"], 1, "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("cannot write the JSON report"), "{v}");
    // The human list of the same folder is fine.
    let out = smolvm_std(&h, "smolvm")
        .args(["image", "ls", "--image-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// `--json` after `--` is the guest command's word, not smolvm's: an error found before
/// the handler runs (a usage error, a bad setting, read-only mode) is reported as text,
/// as asked, where it used to come out as a JSON envelope.
#[test]
fn a_json_word_after_the_double_dash_is_the_guest_commands() {
    let h = Home::new();
    // (the words, the environment, the exit code)
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], i32);
    let cases: [Case; 3] = [
        (
            &[
                "sandbox",
                "exec",
                "nosuch",
                "--timeout",
                "0",
                "--",
                "echo",
                "--json",
            ],
            &[],
            2,
        ),
        (
            &["sandbox", "exec", "nosuch", "--", "echo", "--json"],
            &[("SMOLVM_STOP_TIMEOUT", "abc")],
            2,
        ),
        (
            &[
                "--readonly",
                "sandbox",
                "exec",
                "nosuch",
                "--",
                "echo",
                "--json",
            ],
            &[],
            1,
        ),
    ];
    for (args, env, code) in cases {
        let out = smolvm_std(&h, "smolvm")
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert_no_panic(&out, "exec");
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
        assert!(
            stderr(&out).contains("Error:"),
            "{args:?}: {}",
            stderr(&out)
        );
        // Before the `--`, it is smolvm's.
        let mut with_json: Vec<&str> = args.to_vec();
        let dd = with_json.iter().position(|a| *a == "--").unwrap();
        with_json.insert(dd, "--json");
        let out = smolvm_std(&h, "smolvm")
            .args(&with_json)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let v = json(&out);
        assert_eq!(v["exit_code"], code, "{with_json:?}: {v}");
    }
}

/// An operation on a sandbox the database does not know is "not found" (exit 1) and leaves
/// no lock file behind: a mistyped id used to leave `locks/<id>.create.lock` (and a
/// snapshot create one more `snapshot-<random>.lock` on every call).
#[test]
fn a_verb_on_an_unknown_sandbox_leaves_no_lock_file() {
    use support::cleanup::{insert_rows, Row};
    let h = Home::new();
    insert_rows(&h.data, &h.sockets(), &[Row::stopped("vm-known")]);
    let locks = |h: &Home| -> Vec<String> {
        std::fs::read_dir(h.data.join("locks"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let before = locks(&h);
    for args in [
        &["sandbox", "stop", "nosuch", "--json"][..],
        &["sandbox", "start", "nosuch", "--json"],
        &["sandbox", "pause", "nosuch", "--json"],
        &["sandbox", "resume", "nosuch", "--json"],
        &["sandbox", "delete", "nosuch", "--force", "--json"],
        &[
            "sandbox",
            "network",
            "set",
            "nosuch",
            "--internet",
            "off",
            "--json",
        ],
        &["sandbox", "snapshot", "create", "nosuch", "--json"],
        &[
            "sandbox", "exec", "nosuch", "--start", "--json", "--", "true",
        ],
        // Without `--`, as SmolVM reads it: `-la` is the command's, `--json` exec's.
        &["sandbox", "exec", "nosuch", "ls", "-la", "--json"],
    ] {
        let out = smolvm_std(&h, "smolvm").args(args).output().unwrap();
        assert_no_panic(&out, "verb");
        let v = json(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {v}");
        assert!(v.to_string().contains("not found"), "{args:?}: {v}");
        assert_eq!(locks(&h), before, "{args:?} left a lock file");
    }
}

/// A request core refuses as it stands (a usage error of `sandbox create`, a preset start,
/// `clone`, `branch`) changes nothing on disk: no state database is made for it (one was
/// opened, and so created, before the request was checked). The app log aside.
#[test]
fn a_refused_create_or_clone_makes_no_state_database() {
    for args in [
        &["sandbox", "create", "--json"][..],
        &["sandbox", "create", "--preset", "nosuchpreset", "--json"],
        &[
            "sandbox", "create", "--preset", "codex", "--name", "Bad Name", "--json",
        ],
        &[
            "sandbox", "create", "--preset", "codex", "--memory", "1", "--json",
        ],
        &["codex", "start", "--name", "Bad Name", "--json"],
        &[
            "sandbox", "clone", "nosuch", "--count", "2", "--name", "x", "--json",
        ],
        &[
            "sandbox", "clone", "nosuch", "--count", "2", "--prefix", "A B", "--json",
        ],
        &["sandbox", "branch", "nosuch", "--prefix", "A_B", "--json"],
        &[
            "sandbox",
            "branch",
            "nosuch",
            "--snapshot-id",
            "../x",
            "--json",
        ],
    ] {
        let h = Home::new();
        let out = smolvm_std(&h, "smolvm").args(args).output().unwrap();
        assert_no_panic(&out, "refused");
        let v = json(&out);
        assert_ne!(out.status.code(), Some(0), "{args:?}: {v}");
        assert_eq!(v["ok"], false, "{args:?}: {v}");
        assert!(
            !h.data.join("smolvm.db").exists(),
            "{args:?} made a state database: {v}"
        );
    }
}

/// `SMOLVM_DATA_DIR` naming a regular file is said, by readers and writers alike (exit
/// 1, the same message and way out), and by `doctor`'s `state-db` check: `sandbox list`
/// used to find "none yet" there and list nothing, as if every sandbox were gone.
#[test]
fn a_data_dir_that_is_a_file_is_said_by_every_face() {
    let h = Home::new();
    let file = h.home.join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    for args in [
        &["sandbox", "list", "--json"][..],
        &["sandbox", "info", "vm-a", "--json"],
        &["sandbox", "snapshot", "list", "--json"],
        &["sandbox", "stop", "vm-a", "--json"],
        &["sandbox", "prune", "--dry-run", "--json"],
        &["cleanup", "--dry-run", "--json"],
    ] {
        let out = smolvm_std(&h, "smolvm")
            .args(args)
            .env("SMOLVM_DATA_DIR", &file)
            .output()
            .unwrap();
        assert_no_panic(&out, "data dir");
        let v = json(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {v}");
        assert_eq!(
            v["error"]["message"],
            format!(
                "SMOLVM_DATA_DIR is {}, which is not a directory.",
                file.display()
            ),
            "{args:?}: {v}"
        );
        assert!(
            v["error"]["recovery"]
                .as_str()
                .unwrap_or_default()
                .contains("unset it"),
            "{args:?}: {v}"
        );
    }
    let out = smolvm_std(&h, "smolvm")
        .args(["doctor", "--json"])
        .env("SMOLVM_DATA_DIR", &file)
        .output()
        .unwrap();
    let check = support::doctor_check(&json(&out), "state-db");
    assert_eq!(check["status"], "fail", "{check}");
    assert!(check["message"]
        .as_str()
        .unwrap()
        .contains("not a directory"));
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}
