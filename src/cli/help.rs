//! What `--help` says beyond the clap definitions, applied to the whole tree in one place:
//! every sandbox argument is `SANDBOX` with one description (SmolVM's name for it), the
//! preset arguments list the presets in force (the user's included), and the main verbs
//! end with their examples (the man page's EXAMPLES, one table).

use clap::Command;

use crate::core::presets::Registry;

/// The presets as `--help` names them: `claude-code/claude, codex, …`.
fn preset_names(presets: &Registry) -> String {
    presets
        .presets
        .iter()
        .map(|p| {
            std::iter::once(p.name.as_str())
                .chain(p.aliases.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The help of an argument that names a sandbox, a snapshot or a preset.
fn describe(cmd: Command, presets: &str) -> Command {
    let ids: Vec<String> = cmd
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .collect();
    let mut cmd = cmd;
    for id in ids {
        cmd =
            cmd.mut_arg(&id, |a| match id.as_str() {
                "id" | "ids" if a.is_positional() => {
                    let help = a.get_help().map(ToString::to_string);
                    a.value_name("SANDBOX").help(help.unwrap_or_else(|| {
                        "The sandbox's id (smolvm sandbox list --all)".to_string()
                    }))
                }
                "snapshot" if a.is_positional() => a.value_name("SNAPSHOT"),
                "preset" | "presets" => {
                    // The argument's own words, then the presets in force.
                    let help = a.get_help().map(ToString::to_string).unwrap_or_default();
                    let help = help.trim_end().trim_end_matches('.');
                    let help = if help.is_empty() { "A preset" } else { help };
                    a.help(format!("{help}. Presets: {presets}."))
                }
                _ => a,
            });
    }
    let subs: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for name in subs {
        cmd = cmd.mut_subcommand(&name, |s| describe(s, presets));
    }
    cmd
}

/// Each example under the command it runs (`Examples:` after its help).
fn with_examples(mut cmd: Command) -> Command {
    for (line, what) in super::man_sections::EXAMPLES {
        let words: Vec<&str> = line
            .split('|')
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        // The subcommand path: the words that name subcommands, from the top.
        let mut path: Vec<String> = Vec::new();
        let mut at = &cmd;
        for w in words.iter().skip(1) {
            match at.find_subcommand(w) {
                Some(s) => {
                    path.push(s.get_name().to_string());
                    at = s;
                }
                None => break,
            }
        }
        if path.is_empty() {
            continue;
        }
        let entry = format!("  {line}\n      {what}");
        cmd = mut_path(cmd, &path, &|c: Command| {
            let text = match c.get_after_help() {
                Some(t) => format!("{t}\n{entry}"),
                None => format!("Examples:\n{entry}"),
            };
            c.after_help(text)
        });
    }
    cmd
}

fn mut_path(cmd: Command, path: &[String], f: &dyn Fn(Command) -> Command) -> Command {
    match path.split_first() {
        None => f(cmd),
        Some((first, rest)) => cmd.mut_subcommand(first, |s| mut_path(s, rest, f)),
    }
}

/// The tree with the descriptions and examples above.
pub fn annotate(cmd: Command, presets: &Registry) -> Command {
    with_examples(describe(cmd, &preset_names(presets)))
}

#[cfg(test)]
mod tests {
    fn tree() -> clap::Command {
        let mut cmd =
            super::super::full_command(&super::super::context(&crate::core::Env::default()));
        cmd.build();
        cmd
    }

    fn walk<'a>(c: &'a clap::Command, path: String, out: &mut Vec<(String, &'a clap::Command)>) {
        for s in c.get_subcommands() {
            let p = format!("{path} {}", s.get_name());
            out.push((p.clone(), s));
            walk(s, p, out);
        }
    }

    /// Every positional says what it is, a sandbox is `SANDBOX` everywhere, and every
    /// preset argument lists every preset (opencode was missing from the lists).
    #[test]
    fn every_positional_is_described_and_named_one_way() {
        let cmd = tree();
        let mut all = Vec::new();
        walk(&cmd, "smolvm".into(), &mut all);
        for (path, c) in &all {
            if c.is_hide_set() {
                continue;
            }
            for a in c.get_positionals() {
                assert!(
                    a.get_help().is_some(),
                    "{path} <{}> has no description",
                    a.get_id()
                );
                if matches!(a.get_id().as_str(), "id" | "ids") {
                    let names: Vec<&str> = a
                        .get_value_names()
                        .unwrap_or_default()
                        .iter()
                        .map(|s| s.as_str())
                        .collect();
                    assert_eq!(names, ["SANDBOX"], "{path}");
                }
            }
            for a in c
                .get_arguments()
                .filter(|a| matches!(a.get_id().as_str(), "preset" | "presets"))
            {
                let help = a.get_help().unwrap().to_string();
                for p in [
                    "claude-code/claude",
                    "codex",
                    "hermes",
                    "openclaw/claw",
                    "opencode",
                    "pi",
                ] {
                    assert!(help.contains(p), "{path} --{}: {help}", a.get_id());
                }
            }
        }
    }

    #[test]
    fn the_main_verbs_end_with_their_examples() {
        let cmd = tree();
        let create = cmd
            .find_subcommand("sandbox")
            .unwrap()
            .find_subcommand("create")
            .unwrap();
        let after = create.get_after_help().unwrap().to_string();
        assert!(after.starts_with("Examples:"), "{after}");
        assert!(
            after.contains("smolvm sandbox create --preset codex\n"),
            "{after}"
        );
        let cleanup = cmd.find_subcommand("cleanup").unwrap();
        assert!(cleanup
            .get_after_help()
            .unwrap()
            .to_string()
            .contains("cleanup --dry-run"));
    }

    /// OpenClaw's own verbs say what they do (SmolVM's words), not their doc comments.
    #[test]
    fn openclaws_list_and_open_ui_say_what_they_do() {
        let cmd = tree();
        let claw = cmd.find_subcommand("openclaw").unwrap();
        for (verb, about) in [
            ("list", "List your OpenClaw sandboxes."),
            ("open-ui", "Open an OpenClaw sandbox's dashboard"),
        ] {
            let c = claw.find_subcommand(verb).unwrap();
            let shown = c.get_about().map(|a| a.to_string()).unwrap_or_default();
            assert!(shown.starts_with(about), "openclaw {verb}: {shown}");
        }
    }
}
