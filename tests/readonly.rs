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
    // Without `--` (as SmolVM reads exec): a `--readonly` after the command is smolvm's,
    // never handed to the guest.
    &["sandbox", "exec", "vm-x", "touch", "/x"],
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
        &["sandbox", "delete", "--all", "--dry-run"],
        &["sandbox", "prune", "--dry-run"],
        &["sandbox", "info", "vm-nope"],
        &["sandbox", "logs", "vm-nope"],
        &["sandbox", "network", "show", "vm-nope"],
        &["sandbox", "port", "list", "vm-nope"],
        &["sandbox", "env", "list", "vm-nope"],
    ] {
        // Read-only or not, looking creates no state on a fresh machine: no data dir, no
        // database, no log.
        for readonly in [true, false] {
            let mut c = h.smolvm();
            if readonly {
                c.arg("--readonly");
            }
            let out = c.args(argv).arg("--json").output().unwrap();
            let v = json(&out);
            assert_ne!(v["error"]["code"], "readonly", "{argv:?}: {v:#}");
            assert!(
                !h.data.exists(),
                "{argv:?} (readonly {readonly}) created the data dir"
            );
        }
    }
    let out = h.run(&["sandbox", "snapshot", "list"]);
    assert!(stderr(&out).contains("(none yet)"), "{}", stderr(&out));
    // A value other than 1/true/yes leaves it off: prune runs.
    let out = h.run_env(&["prune", "--json"], "SMOLVM_READONLY", "0");
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(!stale.exists());
}

/// Looking at a corrupt state database leaves it where it is, read-only or not: `sandbox
/// info` says how to repair it (as `sandbox list` does) and moves nothing aside — only a
/// command that changes something may.
#[test]
fn looking_at_a_corrupt_database_leaves_it_as_it_is() {
    let h = Home::new();
    std::fs::create_dir_all(&h.data).unwrap();
    let db = h.data.join("smolvm.db");
    std::fs::write(
        &db,
        b"this is not sqlite, not at all, and long enough to tell",
    )
    .unwrap();
    // What is in the data dir but smolvm's own log (every command appends its line).
    let state = |d: &std::path::Path| -> Vec<std::ffi::OsString> {
        let mut names: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n != "logs")
            .collect();
        names.sort();
        names
    };
    let before = state(&h.data);
    for argv in [
        &["--readonly", "sandbox", "info", "vm-x"][..],
        &["sandbox", "info", "vm-x"],
        &["sandbox", "snapshot", "list"],
        &["sandbox", "logs", "vm-x"],
    ] {
        let out = h.smolvm().args(argv).arg("--json").output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{argv:?}: {}", stdout(&out));
        let v = json(&out);
        assert!(
            support::error_message(&v).contains("is corrupt"),
            "{argv:?}: {v:#}"
        );
        assert_eq!(state(&h.data), before, "{argv:?} changed the data dir");
        assert_eq!(
            std::fs::read(&db).unwrap(),
            b"this is not sqlite, not at all, and long enough to tell"
        );
    }
}
