//! Read-only mode (`--readonly`, `SMOLVM_READONLY=1`): every command that changes
//! something refuses before it looks at anything — exit 1, JSON error code `readonly`,
//! nothing changed — and every command that only looks still works.

mod support;

use support::{json, stderr, stdout, Home};

/// Command lines that change something (the ids need not exist: the refusal comes first).
const MUTATING: &[&[&str]] = &[
    &["prune"],
    &["image", "prune"],
    &["cleanup", "--all", "--force"],
    &["image", "pull", "codex"],
    &["image", "rm", "codex"],
    &["image", "build", "--base", "debian", "--ssh-password", "x"],
    &["sandbox", "create", "--name", "vm-x"],
    &["sandbox", "start", "vm-x"],
    &["sandbox", "stop", "vm-x"],
    &["sandbox", "delete", "vm-x"],
    &["sandbox", "delete", "--all", "--force"],
    &["sandbox", "exec", "vm-x", "--", "true"],
    &["sandbox", "ssh", "vm-x"],
    &["sandbox", "shell", "vm-x"],
    &["sandbox", "pause", "vm-x"],
    &["sandbox", "resume", "vm-x"],
    &["sandbox", "env", "set", "vm-x", "A=1"],
    &["sandbox", "env", "unset", "vm-x", "A"],
    &[
        "sandbox",
        "file",
        "upload",
        "vm-x",
        "/etc/hostname",
        "/tmp/x",
    ],
    &[
        "sandbox",
        "file",
        "download",
        "vm-x",
        "/etc/hostname",
        "/tmp/x",
    ],
    &["sandbox", "port", "expose", "vm-x", "8080"],
    &["sandbox", "port", "close", "vm-x", "8080:8080"],
    &["sandbox", "snapshot", "create", "vm-x"],
    &["sandbox", "snapshot", "restore", "snap-x"],
    &["sandbox", "snapshot", "delete", "snap-x"],
    &["claude", "start"],
    &["codex", "start"],
    &["openclaw", "open-ui", "vm-x"],
];

#[test]
fn every_mutating_command_refuses_with_code_readonly() {
    let h = Home::new();
    let stale = h.cache("0.0.1", 4096);
    for argv in MUTATING {
        // Flags go before a `--` (what follows it is the guest's command).
        let split = argv.iter().position(|a| *a == "--").unwrap_or(argv.len());
        let (words, guest) = argv.split_at(split);
        for how in ["flag-first", "flag-last", "env"] {
            let mut c = h.smolvm();
            match how {
                "flag-first" => {
                    c.arg("--readonly").args(words);
                }
                "flag-last" => {
                    c.args(words).arg("--readonly");
                }
                _ => {
                    c.env("SMOLVM_READONLY", "1").args(words);
                }
            }
            // `ssh` and `shell` have no --json (as in SmolVM): their refusal is a line.
            if argv.contains(&"ssh") || argv.contains(&"shell") {
                let out = c.args(guest).output().unwrap();
                assert_eq!(out.status.code(), Some(1), "{argv:?} ({how})");
                assert!(
                    stderr(&out).starts_with("Error: Read-only mode: refusing to "),
                    "{argv:?}: {}",
                    stderr(&out)
                );
                continue;
            }
            let out = c.arg("--json").args(guest).output().unwrap();
            assert_eq!(
                out.status.code(),
                Some(1),
                "{argv:?} ({how}): {}",
                stdout(&out)
            );
            let v = json(&out);
            assert_eq!(v["error"]["code"], "readonly", "{argv:?} ({how}): {v:#}");
            assert!(
                support::error_message(&v).starts_with("Read-only mode: refusing to "),
                "{v:#}"
            );
            assert_ne!(v["command"], "smolvm", "{argv:?}: the command's own name");
        }
    }
    // Nothing changed: the stale cache prune would remove is there, no state was made.
    assert!(stale.exists());
    assert!(!h.data.exists(), "read-only runs created the data dir");
    // The human form: a clear line on stderr.
    let out = h.run(&["--readonly", "prune"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("Error: Read-only mode: refusing to prune image caches"),
        "{}",
        stderr(&out)
    );
    assert!(stale.exists());
    // The standalone cleanup honours the variable too.
    let out = assert_cmd::Command::cargo_bin("smolvm-cleanup")
        .unwrap()
        .env_clear()
        .envs(h.env_vars())
        .env("SMOLVM_READONLY", "1")
        .args(["--all", "--force", "--json"])
        .output()
        .unwrap();
    assert_eq!(json(&out)["error"]["code"], "readonly");
}

/// A refusal names the command as the command itself does: by what an alias stands for
/// (`sandbox rm` is `sandbox.delete`), never by the words typed.
#[test]
fn a_refusal_names_an_aliased_command_as_the_command_does() {
    let h = Home::new();
    for (alias, canonical, name) in [
        (
            &["sandbox", "rm", "vm-x"][..],
            &["sandbox", "delete", "vm-x"][..],
            "sandbox.delete",
        ),
        (
            &["sandbox", "snapshot", "rm", "snap-x"],
            &["sandbox", "snapshot", "delete", "snap-x"],
            "sandbox.snapshot.delete",
        ),
    ] {
        // Not read-only: the command's own failure (nothing of that id).
        let own = json(&h.smolvm().args(canonical).arg("--json").output().unwrap());
        assert_eq!(own["command"], name, "{own:#}");
        let own = json(&h.smolvm().args(alias).arg("--json").output().unwrap());
        assert_eq!(own["command"], name, "{alias:?}: {own:#}");
        // Read-only: the refusal, before the command runs.
        let out = h
            .smolvm()
            .env("SMOLVM_READONLY", "1")
            .args(alias)
            .arg("--json")
            .output()
            .unwrap();
        let v = json(&out);
        assert_eq!(v["error"]["code"], "readonly", "{v:#}");
        assert_eq!(v["command"], name, "{alias:?}: {v:#}");
    }
}

#[test]
fn looking_and_dry_runs_still_work() {
    let h = Home::new();
    let stale = h.cache("0.0.1", 4096);
    for argv in [
        &["prune", "--dry-run"][..],
        &["image", "ls"],
        &["image", "rm", "codex", "--dry-run"],
        &["sandbox", "list"],
        &["sandbox", "snapshot", "list"],
        &["cleanup", "--dry-run"],
        &["sandbox", "delete", "vm-nope", "--dry-run"],
    ] {
        let out = h
            .smolvm()
            .arg("--readonly")
            .args(argv)
            .arg("--json")
            .output()
            .unwrap();
        let v = json(&out);
        assert_ne!(v["error"]["code"], "readonly", "{argv:?}: {v:#}");
    }
    // A value other than 1/true/yes leaves it off: prune runs.
    let out = h.run_env(&["prune", "--json"], "SMOLVM_READONLY", "0");
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(!stale.exists());
}
