//! A command's identity, the name its JSON envelope and its log line carry: the path of
//! subcommands the grammar matched, dotted (`sandbox.snapshot.create`), decided once per
//! run from the same clap grammar that parses it.
//!
//! Only the grammar's own names are ever part of it: an alias is the command it stands
//! for (`sandbox rm` is `sandbox.delete`), and a word the grammar does not know as a
//! subcommand (a sandbox id, `KEY=VALUE`, a shell's name) never is — so no argument, and
//! no secret typed as one, reaches the log through a command's name. Two exceptions are
//! SmolVM's: a preset is named as invoked (`claude start` is `claude.start`,
//! `claude-code start` is `claude-code.start`), and a few of our spellings have SmolVM
//! names of their own ([`SMOLVM_NAMES`]).
//!
//! A command line the grammar refuses is a usage error, whose envelope SmolVM names by
//! the words typed (`smolvm sandbox env API_KEY=x` is `sandbox.env.API_KEY=x` there):
//! that envelope keeps SmolVM's name ([`CommandId::as_typed`]), printed to whoever typed
//! it; the log line names even that command by the grammar (`sandbox.env`).

use std::ffi::OsString;

/// Where SmolVM names a command otherwise than our grammar spells it: our path, SmolVM's
/// name (`image ls` is SmolVM's `image list`, `completions` its `completion`).
const SMOLVM_NAMES: &[(&str, &str)] = &[("image.ls", "image.list"), ("completions", "completion")];

/// The dotted name of one command (`smolvm` with no subcommand).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandId(String);

impl CommandId {
    /// The command `argv` names in `grammar` (the whole grammar, the presets' subcommands
    /// included): the subcommands it matched, as far as it matched them. Flags are passed
    /// over (the global ones may come first: `smolvm -v sandbox list`); the first word
    /// that is no subcommand ends the path, as does `--`.
    pub fn of(
        grammar: &clap::Command,
        presets: &crate::core::presets::Registry,
        argv: &[OsString],
    ) -> CommandId {
        let mut path: Vec<String> = Vec::new();
        let mut at = grammar;
        for word in argv.iter().skip(1) {
            let Some(word) = word.to_str() else { break };
            if word == "--" {
                break;
            }
            if word.starts_with('-') {
                continue;
            }
            let Some(sub) = at.find_subcommand(word) else {
                break;
            };
            let as_invoked = path.is_empty() && presets.find(word).is_some();
            path.push(if as_invoked {
                word.to_string()
            } else {
                sub.get_name().to_string()
            });
            if !sub.has_subcommands() {
                break;
            }
            at = sub;
        }
        let dotted = path.join(".");
        let name = match SMOLVM_NAMES.iter().find(|(ours, _)| *ours == dotted) {
            Some((_, smolvm)) => (*smolvm).to_string(),
            None if dotted.is_empty() => "smolvm".to_string(),
            None => dotted,
        };
        CommandId(name)
    }

    /// SmolVM's name for a command line its grammar refused (a usage error's envelope),
    /// by SmolVM 0.0.36's rule (`_command_name_from_argv`): the words that are no flag;
    /// three of them in `sandbox env|file|snapshot|port` (and our `network`), two after a
    /// group SmolVM names (`sandbox`, `image`, its presets…), else the first — so
    /// `smolvm sandbox frob` is `sandbox.frob` there and here. Never logged: the log
    /// line names the command by [`CommandId::of`].
    pub fn as_typed(argv: &[OsString]) -> CommandId {
        const GROUPS: &[&str] = &[
            "sandbox", "windows", "browser", "computer", "server", "image", "codex", "claude",
            "openclaw", "opencode", "hermes", "pi",
        ];
        let tokens = typed_words(argv);
        let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
        CommandId(match tokens.as_slice() {
            [] => "smolvm".to_string(),
            [_, _, _, ..] if in_a_sandbox_group(&tokens) => tokens[..3].join("."),
            ["image", "ls", ..] => "image.list".to_string(),
            [first, second, ..] if GROUPS.contains(first) => format!("{first}.{second}"),
            [first, ..] => first.to_string(),
        })
    }

    /// SmolVM's recovery line for a usage error (`_recovery_from_argv`): the help of the
    /// words that are no flag, as typed — three of them in `sandbox env|file|…`, else two.
    pub fn recovery_as_typed(argv: &[OsString]) -> String {
        let tokens = typed_words(argv);
        let n = if in_a_sandbox_group(&tokens) { 3 } else { 2 };
        match tokens.get(..n.min(tokens.len())) {
            None | Some([]) => "Run 'smolvm --help' for usage.".to_string(),
            Some(words) => format!("Run 'smolvm {} --help' for usage.", words.join(" ")),
        }
    }

    /// A command named by the code that runs it (`cleanup` of `smolvm-cleanup`).
    pub fn fixed(name: &str) -> CommandId {
        CommandId(name.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The words of a command line that are no flag (SmolVM's `tokens`).
fn typed_words(argv: &[OsString]) -> Vec<String> {
    argv.iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .filter(|a| !a.starts_with('-'))
        .collect()
}

/// `sandbox env|file|snapshot|port VERB …` (and our `network`): named and helped by three
/// words.
fn in_a_sandbox_group<S: AsRef<str>>(tokens: &[S]) -> bool {
    matches!(
        tokens
            .iter()
            .map(AsRef::as_ref)
            .take(3)
            .collect::<Vec<&str>>()
            .as_slice(),
        [
            "sandbox",
            "env" | "file" | "snapshot" | "port" | "network",
            _
        ]
    )
}

impl std::fmt::Display for CommandId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::CommandId;
    use crate::core::Env;

    fn id(args: &[&str]) -> String {
        let env = Env::from_vars([("HOME", "/nonexistent-home-for-command-ids")], 1000);
        let cx = super::super::context(&env);
        let (presets, grammar) = (cx.presets(), super::super::full_command(&cx));
        let argv: Vec<std::ffi::OsString> = std::iter::once("smolvm")
            .chain(args.iter().copied())
            .map(Into::into)
            .collect();
        CommandId::of(&grammar, presets, &argv).to_string()
    }

    #[test]
    fn global_flags_before_the_subcommand_do_not_name_the_command() {
        for args in [
            &["-v", "sandbox", "list"][..],
            &["-vv", "sandbox", "list"],
            &["--verbose", "sandbox", "list", "--json"],
            &["--readonly", "-v", "sandbox", "list"],
            &["sandbox", "-v", "list"],
        ] {
            assert_eq!(id(args), "sandbox.list", "{args:?}");
        }
        assert_eq!(id(&["-v"]), "smolvm");
        assert_eq!(id(&[]), "smolvm");
    }

    #[test]
    fn an_alias_is_the_command_it_stands_for() {
        assert_eq!(id(&["sandbox", "rm", "vm-1"]), "sandbox.delete");
        assert_eq!(id(&["sandbox", "ls"]), "sandbox.list");
        assert_eq!(
            id(&["sandbox", "snapshot", "rm", "s1"]),
            "sandbox.snapshot.delete"
        );
        assert_eq!(id(&["sandbox", "snapshot", "ls"]), "sandbox.snapshot.list");
        // SmolVM's own names where ours differ.
        assert_eq!(id(&["image", "ls"]), "image.list");
        assert_eq!(id(&["image", "list"]), "image.list");
        assert_eq!(id(&["images"]), "images");
        assert_eq!(id(&["completions", "bash"]), "completion");
        assert_eq!(id(&["completion", "bash", "--install"]), "completion");
    }

    /// A command line the grammar refuses is named as SmolVM 0.0.36 names it in its
    /// usage error (checked against its CLI): the words typed.
    #[test]
    fn a_refused_command_line_is_named_by_smolvms_words() {
        let typed = |args: &[&str]| {
            let argv: Vec<std::ffi::OsString> = std::iter::once("smolvm")
                .chain(args.iter().copied())
                .map(Into::into)
                .collect();
            CommandId::as_typed(&argv).to_string()
        };
        assert_eq!(typed(&["frob", "--json"]), "frob");
        assert_eq!(typed(&["sandbox", "frob", "--json"]), "sandbox.frob");
        assert_eq!(
            typed(&["sandbox", "snapshot", "frob"]),
            "sandbox.snapshot.frob"
        );
        assert_eq!(typed(&["sandbox", "list", "--bogus"]), "sandbox.list");
        assert_eq!(
            typed(&["-vv", "sandbox", "info", "vm-1", "--bogus"]),
            "sandbox.info"
        );
        assert_eq!(typed(&["image", "ls", "--bogus"]), "image.list");
        assert_eq!(typed(&["completion", "bash", "--bogus"]), "completion");
        assert_eq!(typed(&["claude-code", "start", "--bogus"]), "claude-code");
        assert_eq!(typed(&["claw", "list"]), "claw");
        assert_eq!(
            typed(&["sandbox", "env", "API_KEY=x"]),
            "sandbox.env.API_KEY=x"
        );
        assert_eq!(typed(&[]), "smolvm");
    }

    #[test]
    fn a_preset_is_named_as_invoked() {
        assert_eq!(id(&["claude", "start", "--json"]), "claude.start");
        assert_eq!(id(&["claude-code", "start"]), "claude-code.start");
        assert_eq!(id(&["claw", "list"]), "claw.list");
    }

    /// Only the grammar's names: an argument — an id, a `KEY=VALUE`, a shell, a word that
    /// is no subcommand — is never part of a command's name (it reaches the log).
    #[test]
    fn no_argument_is_ever_part_of_the_name() {
        assert_eq!(id(&["sandbox", "env", "API_KEY=hunter2"]), "sandbox.env");
        assert_eq!(
            id(&["sandbox", "env", "set", "vm-1", "K=hunter2"]),
            "sandbox.env.set"
        );
        assert_eq!(id(&["sandbox", "info", "vm-1"]), "sandbox.info");
        assert_eq!(id(&["sandbox", "hunter2"]), "sandbox");
        assert_eq!(id(&["claude", "hunter2"]), "claude");
        assert_eq!(id(&["hunter2", "sandbox"]), "smolvm");
        assert_eq!(id(&["man", "sandbox", "list"]), "man");
        assert_eq!(
            id(&["sandbox", "exec", "vm-1", "--", "env"]),
            "sandbox.exec"
        );
        assert_eq!(id(&["sandbox", "--", "list"]), "sandbox");
    }

    /// Every dotted command name the CLI's code writes (`"sandbox.env.set"`) is the one
    /// the grammar gives that command: a handler's name and the dispatcher's (a refusal,
    /// a usage error, the log line) never differ.
    #[test]
    fn every_name_the_cli_writes_is_the_grammars() {
        let env = Env::from_vars([("HOME", "/nonexistent-home-for-command-ids")], 1000);
        let cx = super::super::context(&env);
        let (presets, grammar) = (cx.presets(), super::super::full_command(&cx));
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cli");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "rs") || path.ends_with("command_id.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for literal in text.split('"').skip(1).step_by(2) {
                let words: Vec<&str> = literal.split('.').collect();
                let is_name = words.len() > 1
                    && words.iter().all(|w| {
                        !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
                    })
                    && grammar.find_subcommand(words[0]).is_some();
                if !is_name {
                    continue;
                }
                let argv: Vec<std::ffi::OsString> = std::iter::once("smolvm")
                    .chain(words.iter().copied())
                    .map(Into::into)
                    .collect();
                let id = CommandId::of(&grammar, presets, &argv);
                assert_eq!(id.as_str(), literal, "{}", path.display());
                seen += 1;
            }
        }
        assert!(seen > 30, "only {seen} names found: the scan reads nothing");
    }
}
