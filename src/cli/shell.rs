//! Shell integration from the clap definitions themselves: `smolvm completions SHELL`
//! (SmolVM's `completion` is an alias) and `smolvm man [SUBCOMMAND…]`.
//!
//! Flags and subcommands (the presets among them) come from clap_complete. VM ids are
//! not in the clap tree, so for bash and fish the script gains a hook that asks
//! `smolvm __complete ids` (the state DB's ids, nothing else) when the word being
//! completed is a sandbox verb's VM argument; zsh, elvish and PowerShell get the static
//! script.

use clap_complete::Shell;

use super::args::{CompleteWhat, CompletionsArgs, ManArgs};
use super::output::{self, line};
use crate::core::completion::{self, InstallShell, Installed};
use crate::core::runtime::out_text;
use crate::core::{sandbox, Env, Error, Paths};

/// The sandbox verbs whose first positional is a VM id (`sandbox <verb> ID`), and the
/// grouped ones (`sandbox env set ID`, `sandbox snapshot create ID`).
const ID_VERBS: &[&str] = &[
    "info", "start", "stop", "delete", "rm", "logs", "ssh", "shell", "exec", "pause", "resume",
];
const ID_GROUPS: &[(&str, &[&str])] = &[
    ("env", &["set", "unset", "list"]),
    ("file", &["upload", "download"]),
    ("port", &["expose", "close", "list"]),
    ("snapshot", &["create"]),
];

pub fn completions(args: &CompletionsArgs, env: &Env) -> i32 {
    if !args.install {
        out_text(script(args.shell, env));
        return 0;
    }
    let shell = match args.shell {
        Shell::Bash => InstallShell::Bash,
        Shell::Zsh => InstallShell::Zsh,
        Shell::Fish => InstallShell::Fish,
        other => {
            return output::fail(
                "completion",
                false,
                &Error::usage(format!(
                    "--install sets up bash, zsh and fish; for {other}, run 'smolvm completion {other}' and load the printed script yourself."
                )),
            )
        }
    };
    match completion::install(env, shell, || script(args.shell, env)) {
        Ok(Installed::Here(message)) => {
            line(message);
            0
        }
        Ok(Installed::AsInvoker(code)) => code,
        Err(e) => output::fail("completion", false, &e),
    }
}

/// The completion script `--install` writes for `shell` (what `smolvm completion SHELL`
/// prints): what the dashboard's `:completion SHELL --install` installs too.
pub fn completion_script(shell: InstallShell, env: &Env) -> String {
    script(
        match shell {
            InstallShell::Bash => Shell::Bash,
            InstallShell::Zsh => Shell::Zsh,
            InstallShell::Fish => Shell::Fish,
        },
        env,
    )
}

/// The completion script of `shell` (what `smolvm completion SHELL` prints).
fn script(shell: Shell, env: &Env) -> String {
    let (_, mut cmd) = super::full_command(env);
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "smolvm", &mut buf);
    let mut script = String::from_utf8_lossy(&buf).into_owned();
    match shell {
        Shell::Bash => script.push_str(&bash_hook()),
        Shell::Fish => script.push_str(&fish_hook()),
        _ => {}
    }
    script
}

/// Bash: wrap clap's `_smolvm` so a VM id is offered where a sandbox verb wants one.
fn bash_hook() -> String {
    let verbs = ID_VERBS.join("|");
    let mut groups = String::new();
    for (group, subs) in ID_GROUPS {
        groups.push_str(&format!(
            "        {group}) case \"$w1\" in {}) want=1 ;; esac ;;\n",
            subs.join("|")
        ));
    }
    format!(
        r#"
# VM ids for `smolvm sandbox <verb> ID` (from the state DB, via `smolvm __complete ids`).
_smolvm_ids() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" i n=0 w0="" w1="" want=0
    local -a pos=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${{COMP_WORDS[i]}}" in -*) ;; *) pos+=("${{COMP_WORDS[i]}}") ;; esac
    done
    n=${{#pos[@]}}
    if [[ "$cur" != -* && $n -ge 2 && "${{pos[0]}}" == sandbox ]]; then
        w0="${{pos[1]}}"; w1="${{pos[2]:-}}"
        if [[ $n -eq 2 ]]; then
            case "$w0" in {verbs}) want=1 ;; esac
        elif [[ $n -eq 3 ]]; then
            case "$w0" in
{groups}            esac
        fi
    fi
    if [[ $want -eq 1 ]]; then
        COMPREPLY=($(compgen -W "$(smolvm __complete ids 2>/dev/null)" -- "$cur"))
        return 0
    fi
    _smolvm "$@"
}}
complete -F _smolvm_ids -o bashdefault -o default smolvm
"#
    )
}

/// Fish: one rule per verb that takes a VM id.
fn fish_hook() -> String {
    let mut out = String::from("\n# VM ids (from the state DB, via `smolvm __complete ids`).\n");
    for verb in ID_VERBS {
        out.push_str(&format!(
            "complete -c smolvm -n '__fish_seen_subcommand_from sandbox; and __fish_seen_subcommand_from {verb}' -f -a '(smolvm __complete ids 2>/dev/null)'\n"
        ));
    }
    for (group, subs) in ID_GROUPS {
        out.push_str(&format!(
            "complete -c smolvm -n '__fish_seen_subcommand_from sandbox; and __fish_seen_subcommand_from {group}; and __fish_seen_subcommand_from {}' -f -a '(smolvm __complete ids 2>/dev/null)'\n",
            subs.join(" ")
        ));
    }
    out
}

/// `smolvm __complete ids|presets`: one name per line, for the completion hooks. Quiet
/// on any failure: a shell completing a word must never see an error.
pub fn complete(what: CompleteWhat, env: &Env) -> i32 {
    match what {
        CompleteWhat::Ids => {
            let paths = Paths::resolve(env, None);
            if let Ok(listing) = sandbox::list(&paths, None) {
                for vm in listing.vms {
                    line(vm.id);
                }
            }
        }
        CompleteWhat::Presets => {
            for p in crate::core::presets::Registry::load(env).presets {
                line(p.name);
            }
        }
    }
    0
}

/// `smolvm man [SUBCOMMAND…]`: the roff page of smolvm or of one of its subcommands, on
/// stdout (`smolvm man > smolvm.1`, `smolvm man sandbox list | man -l -`).
pub fn man(args: &ManArgs, env: &Env) -> i32 {
    let (_, cmd) = super::full_command(env);
    let mut cmd = cmd.version(env!("CARGO_PKG_VERSION"));
    cmd.build();
    let mut name = String::from("smolvm");
    let mut shown = name.clone();
    for word in &args.subcommand {
        let Some(sub) = cmd.find_subcommand(word).cloned() else {
            let err = Error::usage(format!("Unknown command '{shown} {word}' for a man page."));
            return output::fail("man", false, &err);
        };
        name = format!("{name}-{}", sub.get_name());
        shown = format!("{shown} {}", sub.get_name());
        cmd = sub.name(name.clone()).version(env!("CARGO_PKG_VERSION"));
    }
    let mut buf = Vec::new();
    if let Err(e) = clap_mangen::Man::new(cmd).render(&mut buf) {
        return output::fail("man", false, &Error::runtime(format!("man page: {e}")));
    }
    out_text(String::from_utf8_lossy(&buf));
    0
}
