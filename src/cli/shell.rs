//! Shell integration from the clap definitions themselves: `smolvm completions SHELL`
//! (SmolVM's `completion` is an alias) and `smolvm man [SUBCOMMAND…]`.
//!
//! Flags and subcommands (the presets among them) come from clap_complete. Sandbox ids,
//! snapshot ids and preset names are not in the clap tree: the bash, zsh and fish scripts
//! gain a hook that hands the words before the cursor to `smolvm __complete words -- …`,
//! which walks the clap tree to the argument being typed ([`wanted`]) and prints its
//! candidates (read from the state DB without changing it), or exits 1 when the argument
//! is not one of those (clap's script completes it). Elvish and PowerShell get the static
//! script.

use clap_complete::Shell;

use super::args::{CompleteWhat, CompletionsArgs, ManArgs};
use super::output::{self, line};
use crate::core::completion::{self, InstallShell, Installed};
use crate::core::context::Context;
use crate::core::runtime::out_text;
use crate::core::{sandbox, Error};

/// What a command-line argument names, when smolvm can list its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    Sandbox,
    Snapshot,
    Preset,
}

/// The argument's values by its id in the clap tree: every positional or flag named so
/// gets them, in every verb (a new verb's `id` completes without a change here).
fn wanted_for(arg: &clap::Arg) -> Option<Wanted> {
    match arg.get_id().as_str() {
        "id" | "ids" | "vm_id" => Some(Wanted::Sandbox),
        "snapshot" | "snapshots" => Some(Wanted::Snapshot),
        "preset" | "presets" => Some(Wanted::Preset),
        _ => None,
    }
}

/// What the next word names, from the words before it (the program's name left out):
/// walk the clap tree through the subcommands, skip flags and their values, and count
/// positionals. `None` for anything else (a subcommand, a flag, a free value).
pub fn wanted(cmd: &clap::Command, before: &[String]) -> Option<Wanted> {
    let mut cur = cmd;
    let mut positionals = 0usize;
    let mut value_of: Option<&clap::Arg> = None;
    let mut dashdash = false;
    for w in before {
        if value_of.take().is_some() {
            continue;
        }
        if !dashdash && w == "--" {
            dashdash = true;
            continue;
        }
        if !dashdash && w.len() > 1 && w.starts_with('-') {
            let arg = match w.strip_prefix("--") {
                Some(long) if !long.contains('=') => {
                    cur.get_arguments().find(|a| a.get_long() == Some(long))
                }
                Some(_) => None,
                // `-n` takes the next word; `-nvalue` and `-vv` do not.
                None if w.len() == 2 => {
                    let short = w.chars().nth(1);
                    cur.get_arguments().find(|a| a.get_short() == short)
                }
                None => None,
            };
            value_of = arg.filter(|a| a.get_action().takes_values());
            continue;
        }
        if positionals == 0 && !dashdash {
            if let Some(sub) = cur.find_subcommand(w) {
                cur = sub;
                continue;
            }
        }
        positionals += 1;
    }
    if let Some(a) = value_of {
        return wanted_for(a);
    }
    if cur.has_subcommands() && positionals == 0 {
        return None;
    }
    // The positional this word fills: one word each, a list takes the rest.
    let mut left = positionals;
    for p in cur.get_positionals() {
        let many = p.get_num_args().is_some_and(|n| n.max_values() > 1)
            || matches!(p.get_action(), clap::ArgAction::Append);
        if left == 0 || many {
            return wanted_for(p);
        }
        left -= 1;
    }
    None
}

pub fn completions(args: &CompletionsArgs, cx: &Context) -> i32 {
    let env = cx.env();
    if !args.install {
        out_text(script(args.shell, cx));
        return 0;
    }
    let shell = match InstallShell::for_install(&args.shell.to_string()) {
        Ok(s) => s,
        Err(e) => return output::fail("completion", false, &e),
    };
    match completion::install(env, shell, || script(args.shell, cx)) {
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
pub fn completion_script(shell: InstallShell, cx: &Context) -> String {
    script(
        match shell {
            InstallShell::Bash => Shell::Bash,
            InstallShell::Zsh => Shell::Zsh,
            InstallShell::Fish => Shell::Fish,
        },
        cx,
    )
}

/// The completion script of `shell` (what `smolvm completion SHELL` prints).
fn script(shell: Shell, cx: &Context) -> String {
    let full = super::full_command(cx);
    // The hidden helpers (`__complete`, `__guard`) are not offered.
    let mut cmd = clap::Command::new("smolvm")
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "smolvm", &mut buf);
    let mut script = String::from_utf8_lossy(&buf).into_owned();
    match shell {
        Shell::Bash => script.push_str(&bash_hook()),
        Shell::Zsh => script.push_str(&zsh_hook()),
        Shell::Fish => script.push_str(&fish_hook()),
        _ => {}
    }
    script
}

/// Bash: wrap clap's `_smolvm`: what `smolvm __complete words` lists, else clap's reply.
fn bash_hook() -> String {
    r#"
# Sandbox ids, snapshot ids and presets (from the state DB, via `smolvm __complete words`).
_smolvm_ids() {
    local cur="${COMP_WORDS[COMP_CWORD]}" out
    if out=$(smolvm __complete words -- "${COMP_WORDS[@]:1:COMP_CWORD-1}" 2>/dev/null); then
        COMPREPLY=($(compgen -W "$out" -- "$cur"))
        return 0
    fi
    _smolvm "$@"
}
complete -F _smolvm_ids -o bashdefault -o default smolvm
"#
    .to_string()
}

/// Zsh: the same wrapper around clap's `_smolvm`.
fn zsh_hook() -> String {
    r#"
# Sandbox ids, snapshot ids and presets (from the state DB, via `smolvm __complete words`).
_smolvm_ids() {
    local out
    if out=$(smolvm __complete words -- "${(@)words[2,CURRENT-1]}" 2>/dev/null); then
        local -a found
        found=(${(f)out})
        compadd -a found
        return 0
    fi
    _smolvm "$@"
}
if (( $+functions[compdef] )); then
    compdef _smolvm_ids smolvm
fi
"#
    .to_string()
}

/// Fish: one rule, asking `smolvm __complete words` with the tokens before the cursor.
fn fish_hook() -> String {
    r#"
# Sandbox ids, snapshot ids and presets (from the state DB, via `smolvm __complete words`).
function __smolvm_words
    set -l t (commandline -opc)
    smolvm __complete words -- $t[2..-1] 2>/dev/null
end
complete -c smolvm -n '__smolvm_words >/dev/null' -f -a '(__smolvm_words)'
"#
    .to_string()
}

/// `smolvm __complete ids|presets`: one name per line, for the completion hooks. Quiet
/// on any failure: a shell completing a word must never see an error.
pub fn complete(what: CompleteWhat, words: &[String], cx: &Context) -> i32 {
    let wanted_now = match what {
        CompleteWhat::Ids => Wanted::Sandbox,
        CompleteWhat::Presets => Wanted::Preset,
        CompleteWhat::Snapshots => Wanted::Snapshot,
        CompleteWhat::Words => {
            let mut cmd = super::full_command(cx);
            cmd.build();
            match wanted(&cmd, words) {
                Some(w) => w,
                None => return 1,
            }
        }
    };
    for name in candidates(wanted_now, cx) {
        line(name);
    }
    0
}

/// The values of one kind of argument: nothing (never an error) when they cannot be read.
fn candidates(what: Wanted, cx: &Context) -> Vec<String> {
    let paths = cx.paths().clone();
    match what {
        Wanted::Sandbox => sandbox::list(&paths, None)
            .map(|l| l.vms.into_iter().map(|v| v.id.to_string()).collect())
            .unwrap_or_default(),
        Wanted::Snapshot => sandbox::snapshot_ids(&paths).unwrap_or_default(),
        Wanted::Preset => cx.presets().spellings().map(String::from).collect(),
    }
}

/// `smolvm man [SUBCOMMAND…]`: the roff page of smolvm or of one of its subcommands, on
/// stdout (`smolvm man > smolvm.1`, `smolvm man sandbox list | man -l -`).
pub fn man(args: &ManArgs, cx: &Context) -> i32 {
    let cmd = super::full_command(cx);
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
    let top = args.subcommand.is_empty();
    let man = clap_mangen::Man::new(cmd);
    let mut buf = Vec::new();
    let rendered = if top {
        // The whole page, with ENVIRONMENT (every SMOLVM_* variable) after the options.
        man.render_title(&mut buf)
            .and_then(|()| man.render_name_section(&mut buf))
            .and_then(|()| man.render_synopsis_section(&mut buf))
            .and_then(|()| man.render_description_section(&mut buf))
            .and_then(|()| man.render_options_section(&mut buf))
            .and_then(|()| man.render_subcommands_section(&mut buf))
            .map(|()| buf.extend_from_slice(super::man_sections::roff_sections().as_bytes()))
            .and_then(|()| man.render_version_section(&mut buf))
    } else {
        man.render(&mut buf)
    };
    if let Err(e) = rendered {
        return output::fail("man", false, &Error::runtime(format!("man page: {e}")));
    }
    out_text(String::from_utf8_lossy(&buf));
    0
}

#[cfg(test)]
mod tests {
    use super::{wanted, Wanted};

    fn want(words: &str) -> Option<Wanted> {
        let mut cmd =
            super::super::full_command(&super::super::context(&crate::core::Env::default()));
        cmd.build();
        let words: Vec<String> = words.split_whitespace().map(String::from).collect();
        wanted(&cmd, &words)
    }

    #[test]
    fn the_word_after_these_names_what_the_clap_tree_says() {
        use Wanted::*;
        for (words, expected) in [
            ("sandbox info", Some(Sandbox)),
            ("sandbox info --json", Some(Sandbox)),
            ("sandbox stop --timeout 5", Some(Sandbox)),
            ("sandbox stop --timeout=5", Some(Sandbox)),
            ("-vv sandbox logs", Some(Sandbox)),
            ("sandbox env set", Some(Sandbox)),
            ("sandbox delete vm-1 vm-2", Some(Sandbox)),
            ("sandbox snapshot create", Some(Sandbox)),
            ("sandbox snapshot list --vm-id", Some(Sandbox)),
            ("sandbox snapshot restore", Some(Snapshot)),
            ("sandbox snapshot delete", Some(Snapshot)),
            ("image pull", Some(Preset)),
            ("image rm codex", Some(Preset)),
            ("sandbox create --preset", Some(Preset)),
            ("sandbox list --preset", Some(Preset)),
            ("", None),
            ("sandbox", None),
            ("sandbox snapshot", None),
            ("sandbox exec vm-1", None),
            ("sandbox create --name", None),
            ("sandbox info vm-1", None),
            ("sandbox stop --timeout", None),
        ] {
            assert_eq!(want(words), expected, "{words:?}");
        }
    }
}
