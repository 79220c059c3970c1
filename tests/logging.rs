//! smolvm's log file, `<data dir>/logs/smolvm.log`: a line per command (name and exit
//! code, never its arguments), no secret from the command line or the environment, `-v`
//! copies it to stderr, the size cap holds, `doctor` names the file, and logging never
//! creates the data directory.

mod support;

use support::{json, stderr, Home};

fn log_text(h: &Home) -> String {
    std::fs::read_to_string(h.data.join("logs/smolvm.log")).unwrap_or_default()
}

#[test]
fn a_line_per_command_and_no_secret() {
    let h = Home::new();
    std::fs::create_dir_all(&h.data).unwrap();
    let secret_env = "sk-ant-secret-from-env-4242";
    let secret_arg = "hunter2-secret-on-the-command-line";
    let runs: &[&[&str]] = &[
        &["sandbox", "list"],
        &["prune", "--dry-run"],
        &[
            "sandbox",
            "env",
            "set",
            "vm-nope",
            &format!("API_KEY={secret_arg}"),
        ],
        &["sandbox", "info", "vm-nope"],
    ];
    for argv in runs {
        let out = h
            .smolvm()
            .env("ANTHROPIC_API_KEY", secret_env)
            .args(*argv)
            .output()
            .unwrap();
        // Nothing on stderr comes from the log without -v.
        assert!(
            !stderr(&out).contains("command finished"),
            "{}",
            stderr(&out)
        );
    }
    let log = log_text(&h);
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("command finished"))
        .collect();
    assert_eq!(lines.len(), runs.len(), "{log}");
    for (line, name) in lines
        .iter()
        .zip(["sandbox.list", "prune", "sandbox.env", "sandbox.info"])
    {
        assert!(line.contains(&format!("command={name}")), "{line}");
    }
    assert!(lines[2].contains("exit_code=1"), "{}", lines[2]);
    assert!(
        !log.contains(secret_env) && !log.contains(secret_arg),
        "{log}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(h.data.join("logs/smolvm.log"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // Nothing of smolvm's log beside the console logs.
    assert!(!h.data.join("smolvm.log").exists());
}

/// A command's name in its log line is the grammar's: an alias is the command it stands
/// for, and no argument is part of it — not even one given where a subcommand belongs
/// (`sandbox env API_KEY=…`, a usage error) or after a command that takes no subcommand.
#[test]
fn a_commands_logged_name_holds_no_argument() {
    let h = Home::new();
    std::fs::create_dir_all(&h.data).unwrap();
    let secret = "hunter2-typed-where-a-subcommand-belongs";
    let runs: [(&[&str], &str); 5] = [
        (
            &["sandbox", "env", &format!("API_KEY={secret}")],
            "sandbox.env",
        ),
        (&["claude", secret], "claude"),
        (&["sandbox", "rm", "vm-nope", "--json"], "sandbox.delete"),
        (&["completions", "bash"], "completion"),
        (&["sandbox", "ls", "--json"], "sandbox.list"),
    ];
    for (argv, _) in runs {
        h.smolvm().args(argv).output().unwrap();
    }
    let log = log_text(&h);
    assert!(!log.contains(secret), "{log}");
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("command finished"))
        .collect();
    assert_eq!(lines.len(), runs.len(), "{log}");
    for (line, (argv, name)) in lines.iter().zip(runs) {
        assert!(
            line.contains(&format!("command={name} ")),
            "{argv:?}: {line}"
        );
    }
}

#[test]
fn verbose_copies_to_stderr_and_smolvm_log_filters() {
    let h = Home::new();
    std::fs::create_dir_all(&h.data).unwrap();
    let out = h.run(&["-v", "sandbox", "list"]);
    assert!(
        stderr(&out).contains("command finished"),
        "{}",
        stderr(&out)
    );
    // clap counts the flag (saturating): any number of v's is a run, not a panic.
    let many = format!("-{}", "v".repeat(300));
    h.ok(&[many.as_str(), "sandbox", "list"]);
    // SMOLVM_LOG=warn keeps info lines out of the file.
    let before = log_text(&h).lines().count();
    let out = h.run_env(&["sandbox", "list"], "SMOLVM_LOG", "warn");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(log_text(&h).lines().count(), before);
}

#[test]
fn the_file_is_capped_and_doctor_names_it() {
    let h = Home::new();
    std::fs::create_dir_all(&h.data).unwrap();
    for _ in 0..80 {
        let out = h.run_env(&["sandbox", "list"], "SMOLVM_LOG_MAX_BYTES", "4096");
        assert_eq!(out.status.code(), Some(0));
    }
    let logs = h.data.join("logs");
    let size = std::fs::metadata(logs.join("smolvm.log")).unwrap().len();
    assert!(size <= 4096, "{size}");
    assert!(logs.join("smolvm.log.1").is_file());
    assert_eq!(std::fs::read_dir(&logs).unwrap().count(), 2);
    let out = h.run(&["doctor", "--json"]);
    assert_eq!(
        json(&out)["data"]["log_file"],
        logs.join("smolvm.log").display().to_string()
    );
    let out = h.smolvm().arg("doctor").output().unwrap();
    assert!(
        support::stdout(&out).contains(&format!("Log file: {}", logs.join("smolvm.log").display())),
        "{}",
        support::stdout(&out)
    );
}

#[test]
fn logging_never_creates_the_data_dir() {
    let h = Home::new();
    h.ok(&["prune", "--dry-run"]);
    assert!(!h.data.exists());
}

#[test]
fn failures_are_logged_as_failures_with_the_message_and_the_subcommand() {
    let h = Home::new();
    std::fs::create_dir_all(&h.data).unwrap();
    // `-v` before the subcommand: the command is still named by its subcommand.
    let out = h
        .smolvm()
        .args(["-v", "sandbox", "info", "vm-nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("ERROR")
            && err.contains("command=sandbox.info")
            && err.contains("VM 'vm-nope' not found"),
        "{err}"
    );
    let log = log_text(&h);
    let finished = log
        .lines()
        .find(|l| l.contains("command finished"))
        .unwrap();
    assert!(
        finished.contains("WARN") && finished.contains("command=sandbox.info"),
        "{finished}"
    );
    assert!(!log.contains("command=smolvm"), "{log}");
    // A refused argument is logged by its code, never by the text that quotes it.
    let secret = "sk-ant-no-equals-sign-4242";
    let out = h
        .smolvm()
        .args(["sandbox", "env", "set", "vm-nope", secret])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let log = log_text(&h);
    assert!(!log.contains(secret), "{log}");
    assert!(
        log.contains("code=usage_error") || log.contains("code=invalid_input"),
        "{log}"
    );
    // Values are logged as a user reads them: `nosuch`, never `Some("nosuch")`.
    let out = h
        .smolvm()
        .args(["-vv", "sandbox", "create", "--preset", "nosuch"])
        .output()
        .unwrap();
    assert!(!stderr(&out).contains("Some("), "{}", stderr(&out));
}
