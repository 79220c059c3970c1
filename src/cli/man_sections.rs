//! The sections of `smolvm man` that clap does not write: ENVIRONMENT (from
//! [`crate::core::settings`]), FILES, EXIT STATUS and EXAMPLES.

/// The files smolvm reads and writes, as (path, what it is).
pub const FILES: &[(&str, &str)] = &[
    ("~/.local/state/smolvm/smolvm.db", "The state database (SmolVM's): sandboxes, leases, snapshots. As plain root /var/lib/smolvm/smolvm.db; SMOLVM_DATA_DIR moves it."),
    ("<data dir>/logs/smolvm.log", "smolvm's own log (SMOLVM_LOG, SMOLVM_LOG_MAX_BYTES); `doctor` names it."),
    ("<data dir>/disks/<id>.ext4, <data dir>/<id>.log", "Each sandbox's disk and console log."),
    ("~/.smolvm/images/", "The image caches (SMOLVM_IMAGE_DIR, --image-dir): <version>/<preset>-<arch>-<vmm>/ and SmolVM's <preset>-v<version>-<arch>-<vmm>/."),
    ("~/.smolvm/snapshots/", "Snapshot files."),
    ("~/.smolvm/keys/", "The SSH keys smolvm reaches its sandboxes with."),
    ("~/.config/smolvm/presets.toml", "Presets of your own, beside the built-in ones ($XDG_CONFIG_HOME moves ~/.config)."),
    ("~/.config/smolvm/keymap.toml", "The dashboard's keys (press ? in the dashboard to see them)."),
    ("~/.config/smolvm/theme.toml", "The dashboard's colours."),
];

/// Exit codes and what each means (the JSON error codes giving each are
/// `ErrorCode::exit_code`'s; a test keeps every one of them listed here).
pub const EXIT_STATUS: &[(i32, &str)] = &[
    (0, "Success."),
    (
        1,
        "The command failed, refused, or partly failed (the JSON envelope's error.code says which).",
    ),
    (
        2,
        "Bad flags, arguments or SMOLVM_* values (usage_error, invalid_input).",
    ),
    (
        130,
        "Interrupted (Ctrl-C, SIGTERM, SIGHUP) after rolling back what was started.",
    ),
];

/// Everyday use, as (command, what it does).
pub const EXAMPLES: &[(&str, &str)] = &[
    ("smolvm", "Open the dashboard (on a terminal)."),
    (
        "smolvm claude start",
        "Start Claude Code in a fresh sandbox and attach to it.",
    ),
    (
        "smolvm sandbox create --preset codex",
        "Create and boot a sandbox of the codex image.",
    ),
    (
        "smolvm sandbox list --json | jq -r '.data.vms[].name'",
        "The running sandboxes' ids, for scripts.",
    ),
    (
        "smolvm sandbox exec vm-1a2b3c4d -- make test",
        "Run a command in a sandbox; its exit code is smolvm's.",
    ),
    (
        "smolvm sandbox snapshot create vm-1a2b3c4d",
        "Snapshot a sandbox (restore it with sandbox snapshot restore).",
    ),
    (
        "smolvm cleanup --dry-run",
        "See what cleanup would remove; --force removes it.",
    ),
    (
        "smolvm prune --dry-run",
        "See which old image caches prune would remove.",
    ),
    (
        "smolvm doctor",
        "Check what this host can do, with a fix for each problem.",
    ),
];

fn roff(text: &str) -> String {
    let t = text.replace('\\', "\\\\").replace('`', "");
    if t.starts_with(['.', '\'']) {
        format!("\\&{t}")
    } else {
        t
    }
}

/// ENVIRONMENT (every variable of [`crate::core::settings::SETTINGS`]), FILES, EXIT
/// STATUS and EXAMPLES in roff.
pub fn roff_sections() -> String {
    let mut out = String::from(".SH ENVIRONMENT\n");
    out.push_str(
        "Every variable is checked before a command runs; a bad value is a usage error (exit 2) naming it. An empty value counts as unset.\n",
    );
    for s in crate::core::settings::SETTINGS {
        out.push_str(&format!(
            ".TP\n\\fB{}\\fR\n{} Default: {}.\n",
            s.name,
            roff(s.doc),
            roff(s.default)
        ));
    }
    out.push_str(".SH FILES\n");
    for (path, what) in FILES {
        out.push_str(&format!(".TP\n\\fI{}\\fR\n{}\n", roff(path), roff(what)));
    }
    out.push_str(".SH \"EXIT STATUS\"\n");
    out.push_str("sandbox exec exits with the guest command's own exit code when it ran.\n");
    for (code, what) in EXIT_STATUS {
        out.push_str(&format!(".TP\n\\fB{code}\\fR\n{}\n", roff(what)));
    }
    out.push_str(".SH EXAMPLES\n");
    for (cmd, what) in EXAMPLES {
        out.push_str(&format!(".TP\n\\fB{}\\fR\n{}\n", roff(cmd), roff(what)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::error::ErrorCode;

    /// Every error code's exit status is listed (a guest command's failure exits with the
    /// command's own code, said above the list).
    #[test]
    fn exit_status_lists_each_error_codes_exit_code() {
        for &code in ErrorCode::ALL
            .iter()
            .filter(|c| **c != ErrorCode::CommandFailed)
        {
            assert!(
                EXIT_STATUS.iter().any(|(n, _)| *n == code.exit_code()),
                "{code:?} exits {}, not listed",
                code.exit_code()
            );
        }
    }

    /// The examples parse as smolvm command lines (the part before a pipe).
    #[test]
    fn examples_are_valid_command_lines() {
        let cmd = super::super::full_command(&super::super::context(&crate::core::Env::default()));
        for (line, _) in EXAMPLES {
            let words: Vec<&str> = line.split('|').next().unwrap().split_whitespace().collect();
            let r = cmd.clone().try_get_matches_from(&words);
            assert!(r.is_ok(), "{line}: {}", r.unwrap_err());
        }
    }
}
