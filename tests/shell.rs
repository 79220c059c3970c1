//! Shell integration: completion scripts (a real bash completing a VM id from a real
//! state DB) and man pages, both generated from the clap definitions.

mod support;

use std::path::Path;
use std::process::Command;

use support::{smolvm_db_with_vm, stdout, Home};

/// Complete `words` (the last is the word under the cursor) in a real bash that sourced
/// `smolvm completions bash`, with this HOME's environment; COMPREPLY, one per line.
fn bash_complete(home: &Home, words: &[&str]) -> Vec<String> {
    let file = script_file(home, "bash");
    let bin = assert_cmd::cargo::cargo_bin("smolvm");
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}; \
         _smolvm_ids smolvm \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.display(),
        quoted.join(" "),
        words.len() - 1
    );
    let mut c = Command::new("bash");
    c.env_clear().envs(home.env_vars());
    // `smolvm` itself must be found by the hook, first on PATH.
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = support::run_ok(
        c.env("PATH", path)
            .args(["--norc", "--noprofile", "-c", &program]),
        &program,
    );
    stdout_lines(&out.stdout)
}

fn stdout_lines(b: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(b)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .collect()
}

fn home_with_vms(ids: &[&str]) -> Home {
    let home = Home::new();
    std::fs::create_dir_all(&home.data).unwrap();
    for id in ids {
        smolvm_db_with_vm(
            &home.data.join("smolvm.db"),
            id,
            "stopped",
            Path::new("/nonexistent/rootfs.ext4"),
            Path::new("/nonexistent/vmlinux"),
        );
    }
    home
}

#[test]
fn bash_completes_vm_ids_from_the_state_db() {
    let home = home_with_vms(&["vm-alpha", "vm-beta", "other-1"]);
    assert_eq!(
        bash_complete(&home, &["smolvm", "sandbox", "info", "vm-"]),
        vec!["vm-alpha", "vm-beta"]
    );
    // A grouped verb: `sandbox env set ID`.
    assert_eq!(
        bash_complete(&home, &["smolvm", "sandbox", "env", "set", "oth"]),
        vec!["other-1"]
    );
    // Flags still come from clap's script, not from the id list.
    let flags = bash_complete(&home, &["smolvm", "sandbox", "list", "--"]);
    assert!(flags.contains(&"--json".to_string()), "{flags:?}");
    assert!(!flags.iter().any(|f| f.starts_with("vm-")), "{flags:?}");
    // `sandbox list` takes no id.
    assert!(bash_complete(&home, &["smolvm", "sandbox", "list", "vm"]).is_empty());
}

#[test]
fn bash_completes_presets_and_verbs_and_nothing_without_a_db() {
    let home = Home::new();
    assert_eq!(bash_complete(&home, &["smolvm", "cod"]), vec!["codex"]);
    let presets = bash_complete(&home, &["smolvm", "cl"]);
    assert!(presets.contains(&"claude-code".to_string()), "{presets:?}");
    assert!(presets.contains(&"cleanup".to_string()), "{presets:?}");
    // No state DB: no ids and no error text in the reply.
    assert!(bash_complete(&home, &["smolvm", "sandbox", "stop", ""]).is_empty());
}

#[test]
fn bash_completes_presets_and_ids_wherever_the_clap_tree_names_them() {
    let home = home_with_vms(&["vm-alpha", "vm-beta"]);
    // Presets: a positional (`image pull`, `image rm`) and a flag's value (`--preset`).
    assert_eq!(
        bash_complete(&home, &["smolvm", "image", "pull", "co"]),
        vec!["codex"]
    );
    assert_eq!(
        bash_complete(&home, &["smolvm", "image", "rm", "codex", "co"]),
        vec!["codex"]
    );
    assert_eq!(
        bash_complete(&home, &["smolvm", "sandbox", "create", "--preset", "co"]),
        vec!["codex"]
    );
    // Ids past flags, their values and global flags; `delete` takes several.
    for words in [
        &["smolvm", "sandbox", "stop", "--timeout", "5", "vm-"][..],
        &["smolvm", "-v", "sandbox", "logs", "vm-"],
        &["smolvm", "sandbox", "delete", "vm-alpha", "vm-"],
        &["smolvm", "sandbox", "snapshot", "list", "--vm-id", "vm-"],
    ] {
        assert_eq!(
            bash_complete(&home, words),
            vec!["vm-alpha", "vm-beta"],
            "{words:?}"
        );
    }
    // `exec ID COMMAND…`: the command is not an id; neither are the hidden helpers offered.
    assert!(
        !bash_complete(&home, &["smolvm", "sandbox", "exec", "vm-alpha", "vm-"])
            .iter()
            .any(|w| w.starts_with("vm-"))
    );
    assert!(bash_complete(&home, &["smolvm", "__"]).is_empty());
}

/// The zsh script's hook in a real zsh (completion builtins stubbed: `compadd` prints what
/// it is given, the clap function prints that it was asked).
#[test]
fn zsh_completes_ids_and_presets_through_the_hook() {
    let home = home_with_vms(&["vm-alpha", "vm-beta"]);
    let file = script_file(&home, "zsh");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains("'__complete:"),
        "the hidden helper is offered"
    );
    let run = |words: &str, current: usize| {
        let program = format!(
            "compdef() {{ }}; compadd() {{ print -l -- \"${{(@P)2}}\" }}; source '{}'; \
             _smolvm() {{ print CLAP }}; words=({words}); CURRENT={current}; _smolvm_ids",
            file.display()
        );
        let out = shell_in(&home, "zsh", &["-f", "-c", &program]);
        stdout_lines(&out.stdout)
    };
    assert_eq!(run("smolvm sandbox info vm-", 4), ["vm-alpha", "vm-beta"]);
    assert!(run("smolvm image pull co", 4).contains(&"codex".to_string()));
    assert_eq!(run("smolvm sandbox exec vm-alpha ls", 5), ["CLAP"]);
}

/// The fish script in a real fish: `complete -C` completes a command line.
#[test]
fn fish_completes_ids_and_presets_through_the_hook() {
    let home = home_with_vms(&["vm-alpha", "vm-beta"]);
    let file = script_file(&home, "fish");
    let run = |line: &str| {
        let program = format!("source '{}'; complete -C'{line}'", file.display());
        stdout_lines(&shell_in(&home, "fish", &["--no-config", "-c", &program]).stdout)
            .into_iter()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(run("smolvm sandbox info vm-"), ["vm-alpha", "vm-beta"]);
    assert_eq!(
        run("smolvm sandbox snapshot list --vm-id vm-b"),
        ["vm-beta"]
    );
    assert_eq!(run("smolvm image pull co"), ["codex"]);
    assert!(run("smolvm sandbox li").contains(&"list".to_string()));
}

/// `smolvm completion SHELL` written to a file in this HOME's folder.
fn script_file(home: &Home, shell: &str) -> std::path::PathBuf {
    let script = home.run(&["completion", shell]);
    assert_eq!(script.status.code(), Some(0), "completion {shell}");
    let file = home.tmp.path().join(format!("smolvm.{shell}"));
    std::fs::write(&file, &script.stdout).unwrap();
    file
}

/// Run `shell ARGS` with this HOME's environment and the built smolvm first on PATH.
fn shell_in(home: &Home, shell: &str, args: &[&str]) -> std::process::Output {
    let bin = assert_cmd::cargo::cargo_bin("smolvm");
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(shell)
        .env_clear()
        .envs(home.env_vars())
        .env("PATH", path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{shell}: {e} (scripts/install-deps.sh --test installs it)"));
    assert!(
        out.status.success(),
        "{shell}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn every_shell_gets_a_script_and_completion_is_an_alias() {
    let home = Home::new();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef smolvm"),
        ("fish", "complete -c smolvm"),
        ("elvish", "edit:completion:arg-completer"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        for verb in ["completions", "completion"] {
            let out = home.run(&[verb, shell]);
            assert_eq!(out.status.code(), Some(0), "{verb} {shell}");
            assert!(stdout(&out).contains(marker), "{verb} {shell}");
        }
    }
    let out = home.run(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn man_pages_come_from_the_clap_definitions() {
    let home = Home::new();
    let out = home.smolvm().arg("man").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let page = stdout(&out);
    assert!(page.contains(".TH smolvm 1"), "{page}");
    for sub in ["sandbox", "cleanup", "prune", "doctor", "claude\\-code"] {
        assert!(page.contains(sub), "{sub} missing from the page");
    }
    // The sections a man page is read for, after clap's own.
    let at = |s: &str| page.find(s).unwrap_or_else(|| panic!("no {s} section"));
    assert!(at(".SH ENVIRONMENT") < at(".SH FILES"));
    assert!(at(".SH FILES") < at(".SH \"EXIT STATUS\""));
    assert!(at(".SH \"EXIT STATUS\"") < at(".SH EXAMPLES"));
    assert!(page[at(".SH FILES")..].contains("smolvm.db"), "{page}");
    // A sandbox's console log is `<data dir>/<id>.log` (`sys::paths::vm_log`), beside the
    // database, not in `logs/` with smolvm's own log.
    let files = &page[at(".SH FILES")..at(".SH \"EXIT STATUS\"")];
    assert!(files.contains("<data dir>/<id>.log"), "{files}");
    assert!(!files.contains("logs/<id>.log"), "{files}");
    let out = home.run(&["man", "sandbox", "list"]);
    assert_eq!(out.status.code(), Some(0));
    let page = stdout(&out);
    assert!(page.contains(".TH smolvm-sandbox-list 1"), "{page}");
    assert!(page.contains("\\-\\-json"), "{page}");
    // The page renders: man's own formatter reads it without complaint.
    if Path::new("/usr/bin/man").exists() {
        let f = home.tmp.path().join("smolvm-sandbox-list.1");
        std::fs::write(&f, page.as_bytes()).unwrap();
        let rendered = Command::new("man")
            .env("MANWIDTH", "80")
            .env("MAN_KEEP_FORMATTING", "0")
            .args(["-l", "-P", "cat"])
            .arg(&f)
            .output()
            .unwrap();
        assert!(rendered.status.success());
        // Drop the overstrikes (`X\bX` for bold) the pager-less output keeps.
        let mut text = String::new();
        for ch in String::from_utf8_lossy(&rendered.stdout).chars() {
            if ch == '\u{8}' {
                text.pop();
            } else {
                text.push(ch);
            }
        }
        assert!(text.contains("smolvm sandbox list"), "{text}");
    }
    let out = home.run(&["man", "sandbox", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(support::stderr(&out).contains("Unknown command 'smolvm sandbox nope'"));
}

/// `completion bash --install`: the script under `~/.smolvm/completions`, one tagged line in
/// `~/.bashrc` (the user's own bytes, even non-UTF-8 ones, untouched), idempotent, and a
/// real bash that reads the startup file completes smolvm.
#[test]
fn completion_install_sets_up_bash_once_and_a_real_bash_loads_it() {
    let home = Home::new();
    let rc = home.home.join(".bashrc");
    let mine: &[u8] = b"alias ll='ls -l'\nexport CAF\xc9=1";
    std::fs::write(&rc, mine).unwrap();
    let install = || home.run(&["completion", "bash", "--install"]);
    let out = install();
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "Tab completion for bash is set up: added one line to '{}'. Open a new shell to use it.\n",
            rc.display()
        )
    );
    let script = home.home.join(".smolvm/completions/smolvm.bash");
    let printed = home.run(&["completion", "bash"]);
    assert_eq!(std::fs::read(&script).unwrap(), printed.stdout);
    let text = std::fs::read(&rc).unwrap();
    assert!(text.starts_with(mine), "the user's lines changed");
    let line = format!("source {}  # smolvm tab completion\n", script.display());
    assert_eq!(&text[mine.len() + 1..], line.as_bytes());

    let again = install();
    assert_eq!(again.status.code(), Some(0));
    assert!(
        stdout(&again).contains("is already set up in"),
        "{}",
        stdout(&again)
    );
    assert_eq!(
        std::fs::read(&rc).unwrap(),
        text,
        "a second install changed the file"
    );

    let out = Command::new("bash")
        .env_clear()
        .envs(home.env_vars())
        .args([
            "--norc",
            "--noprofile",
            "-c",
            "source ~/.bashrc; complete -p smolvm",
        ])
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains("_smolvm_ids") && stdout(&out).ends_with("smolvm\n"),
        "{} {}",
        stdout(&out),
        support::stderr(&out)
    );
}

#[test]
fn completion_install_for_zsh_and_fish_follows_zdotdir_and_xdg_config_home() {
    let home = Home::new();
    let zdot = home.tmp.path().join("zdot");
    let out = home.run_env(&["completion", "zsh", "--install"], "ZDOTDIR", &zdot);
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
    let script = home.home.join(".smolvm/completions/smolvm.zsh");
    let body = std::fs::read_to_string(&script).unwrap();
    assert!(body.starts_with("# Ensure zsh's completion system is initialized"));
    assert!(body.contains("#compdef smolvm"));
    assert_eq!(
        std::fs::read_to_string(zdot.join(".zshrc")).unwrap(),
        format!("source {}  # smolvm tab completion\n", script.display())
    );
    assert!(!home.home.join(".zshrc").exists());

    let config = home.tmp.path().join("config");
    let out = home.run_env(
        &["completion", "fish", "--install"],
        "XDG_CONFIG_HOME",
        &config,
    );
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
    let fish = config.join("fish/completions/smolvm.fish");
    assert!(std::fs::read_to_string(&fish)
        .unwrap()
        .contains("complete -c smolvm"));
    assert_eq!(
        stdout(&out),
        format!(
            "Tab completion for fish is set up at '{}'. Open a new shell to use it.\n",
            fish.display()
        )
    );
}

#[test]
fn completion_install_refuses_other_shells_and_readonly_writes_nothing() {
    let home = Home::new();
    let out = home.run(&["completion", "elvish", "--install"]);
    assert_eq!(out.status.code(), Some(2), "{}", support::stderr(&out));
    let out = home.run(&["--readonly", "completion", "bash", "--install"]);
    assert_eq!(out.status.code(), Some(1), "{}", support::stderr(&out));
    assert!(!home.home.join(".bashrc").exists());
    assert!(!home.home.join(".smolvm/completions").exists());
}
