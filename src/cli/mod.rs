//! The headless face: parse arguments, call one core function, print its result.
//!
//! Output only through [`output`]'s helpers: `println!` and friends panic on a closed pipe
//! (the crate denies them outside tests).

pub mod args;
mod attach_args;
mod bridge;
pub mod cleanup;
mod command_id;
mod delete;
pub mod doctor;
mod exec_argv;
mod help;
mod host_args;
pub mod image;
mod image_args;
mod image_build;
mod image_list;
mod leftovers;
mod man_sections;
pub mod network;
mod openclaw;
pub mod output;
pub mod prompt;
pub mod prune;
pub mod sandbox;
mod shapes;
pub mod shell;
pub mod snapshot;
mod snapshot_args;
pub mod start;
pub mod toolkit;
pub mod toolkit_args;

use std::ffi::OsString;

use clap::{CommandFactory, FromArgMatches};

use crate::core::context::Context;
use crate::core::readonly::{self, Action};
use crate::core::version::version_line;
use crate::core::Env;
use crate::core::Error;
use args::{CleanupCli, Cli, Command, ImageCommand, SandboxCommand};
use command_id::CommandId;

/// What `smolvm` does after parsing its arguments: a command ran here (its exit code), or
/// the dashboard is asked for, which the entry point (`main.rs`) opens: the CLI never
/// starts the other face itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Exit(i32),
    Dashboard { readonly: bool },
}

/// The whole grammar: the static commands plus one subcommand per preset of the context's
/// registry (built-in + the user's presets.toml). Completions and man pages are made from
/// it too.
pub fn full_command(cx: &Context) -> clap::Command {
    let presets = cx.presets();
    let command = presets.presets.iter().fold(Cli::command(), |c, p| {
        c.subcommand(args::preset_subcommand(p))
    });
    // `sandbox list --preset`: the names in force, the user's presets included.
    let spellings: Vec<String> = presets.spellings().map(String::from).collect();
    let command = command.mut_subcommand("sandbox", |s| {
        s.mut_subcommand("list", |l| {
            l.mut_arg("preset", |a| {
                a.value_parser(clap::builder::PossibleValuesParser::new(spellings))
            })
        })
    });
    help::annotate(command, presets)
}

/// Run `smolvm` with these arguments (the first is the program name): a subcommand runs
/// here; `smolvm tui`, and bare `smolvm` on a terminal, ask for the dashboard.
pub fn run(argv: Vec<OsString>) -> Outcome {
    let env = Env::from_process();
    // The sandboxes' resolver (started by smolvm itself, never listed in help): before
    // anything else, so it drops its privileges while it is the only thread.
    if argv
        .get(1)
        .is_some_and(|a| a == crate::core::egress::resolver::SUBCOMMAND)
    {
        return Outcome::Exit(crate::core::egress::resolver::serve_main(&argv[2..], &env));
    }
    // A VM's console log pump (started by smolvm itself for each VMM): as early.
    if argv
        .get(1)
        .is_some_and(|a| a == crate::core::start::CONSOLE_LOG_SUBCOMMAND)
    {
        return Outcome::Exit(crate::core::start::console_log_main(&argv[2..]));
    }
    crate::core::sudo::init(&env);
    // `sandbox exec ID COMMAND…` without `--`, as SmolVM reads it.
    let argv = exec_argv::normalised(argv);
    let started = std::time::Instant::now();
    // The one context of this command: every handler works in it.
    let cx = context(&env);
    let grammar = full_command(&cx);
    let command = CommandId::of(&grammar, cx.presets(), &argv);
    let outcome = match run_parsed(&argv, &cx, grammar, &command) {
        // A `--json` document that went out as the fallback envelope: exit as it says.
        Outcome::Exit(code) => Outcome::Exit(output::settled(code)),
        dashboard => dashboard,
    };
    // One line per command: its name and outcome, never its arguments (they may hold
    // secrets: `sandbox env set ID KEY=VALUE`; the name is the grammar's words only).
    match outcome {
        Outcome::Exit(0) => tracing::info!(
            command = %command,
            exit_code = 0,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "command finished"
        ),
        Outcome::Exit(code) => tracing::warn!(
            command = %command,
            exit_code = code,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "command finished"
        ),
        Outcome::Dashboard { readonly } => {
            tracing::info!(readonly, "dashboard opened")
        }
    }
    outcome
}

/// Whether the words ask for `--json`, for an error reported before (or instead of) a
/// handler: the flag among the words before a `--`. What follows `--` is a guest
/// command's own (`sandbox exec ID -- jq --json`), never smolvm's.
fn wants_json(argv: &[OsString]) -> bool {
    argv.iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "--json")
}

/// The context every command works in: the one place the CLI chooses its host (only
/// this machine today; a second host is chosen here). [`run`] opens it once per command
/// and hands it to the handler, which takes its paths, host facts, presets and state
/// store from it, never on its own.
pub(crate) fn context(env: &Env) -> crate::core::context::Context {
    crate::core::context::Context::local(env)
}

fn run_parsed(argv: &[OsString], cx: &Context, command: clap::Command, id: &CommandId) -> Outcome {
    let env = cx.env();
    // The log comes first, so every event of the command reaches it: with the flags'
    // verbosity when they parse (clap counts `-v`/`-vv`), quietly for a usage error.
    let matches = match command.clone().try_get_matches_from(argv) {
        Ok(m) => {
            crate::core::logging::init(env, m.get_count("verbose"));
            m
        }
        Err(e) => {
            crate::core::logging::init(env, 0);
            return Outcome::Exit(usage_error(argv, e));
        }
    };
    // Every SMOLVM_* variable is checked before anything runs (doctor reports them
    // instead; `man` documents them, and is where the refusal sends the user).
    if !matches!(matches.subcommand_name(), Some("doctor" | "man")) {
        if let Err(e) = crate::core::settings::check(env) {
            let json = wants_json(argv);
            return Outcome::Exit(output::fail(id.as_str(), json, &e));
        }
    }
    if let Some((name, sub)) = matches.subcommand() {
        if let Some(p) = cx.presets().find(name) {
            // `openclaw list` (SmolVM's): `sandbox list` of that preset, only looking.
            if let Some(("list", m)) = sub.subcommand() {
                return Outcome::Exit(match args::PresetListArgs::from_arg_matches(m) {
                    Ok(a) => sandbox::list_as(id.as_str(), &a.for_preset(&p.name), cx),
                    Err(e) => usage_error(argv, e),
                });
            }
            if let Some(("open-ui", m)) = sub.subcommand() {
                if readonly::enabled(env, matches.get_flag("readonly")) {
                    let json = wants_json(argv);
                    return Outcome::Exit(output::fail(
                        id.as_str(),
                        json,
                        &readonly::refusal(Action::PortExpose),
                    ));
                }
                return Outcome::Exit(match args::OpenUiArgs::from_arg_matches(m) {
                    Ok(a) => openclaw::open_ui(id.as_str(), &a, cx),
                    Err(e) => usage_error(argv, e),
                });
            }
            if readonly::enabled(env, matches.get_flag("readonly")) {
                let json = wants_json(argv);
                return Outcome::Exit(output::fail(
                    id.as_str(),
                    json,
                    &readonly::refusal(Action::PresetStart),
                ));
            }
            return Outcome::Exit(match args::PresetCommand::from_arg_matches(sub) {
                Ok(args::PresetCommand::Start(a)) => {
                    start::preset_start(&p.name, id.as_str(), &a, cx)
                }
                Err(e) => usage_error(argv, e),
            });
        }
    }
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => return Outcome::Exit(usage_error(argv, e)),
    };
    if cli.version {
        return Outcome::Exit(match version_line(env) {
            Ok(l) => {
                output::line(l);
                0
            }
            Err(e) => output::fail("smolvm", false, &e),
        });
    }
    let readonly = readonly::enabled(env, cli.readonly);
    if readonly {
        if let Some(action) = cli.command.as_ref().and_then(mutation) {
            let json = wants_json(argv);
            return Outcome::Exit(output::fail(id.as_str(), json, &readonly::refusal(action)));
        }
    }
    Outcome::Exit(match cli.command {
        Some(Command::Prune(a)) => prune::run(id.as_str(), &a, cx),
        Some(Command::Image(ImageCommand::Prune(a))) => prune::run(id.as_str(), &a, cx),
        Some(Command::Cleanup(a)) => cleanup::run("smolvm cleanup", &a, cx),
        Some(Command::Sandbox(SandboxCommand::List(a))) => sandbox::list(&a, cx),
        Some(Command::Image(ImageCommand::Pull(a))) => image::pull(id.as_str(), &a, cx),
        Some(Command::Image(ImageCommand::Ls(a))) => image::list(id.as_str(), &a, cx),
        Some(Command::Images(a)) => image::list(id.as_str(), &a, cx),
        Some(Command::Image(ImageCommand::Rm(a))) => image::rm(id.as_str(), &a, cx),
        Some(Command::Image(ImageCommand::Inspect(a))) => image::inspect(id.as_str(), &a, cx),
        Some(Command::Image(ImageCommand::Build(a))) => image_build::build(id.as_str(), &a, cx),
        Some(Command::Image(ImageCommand::Save(a))) => image::save(id.as_str(), &a, cx),
        Some(Command::Image(ImageCommand::Load(a))) => image::load(id.as_str(), &a, cx),
        Some(Command::Doctor(a)) => doctor::run(&a, cx),
        Some(Command::Bridge(args::BridgeCommand::Check(a))) => bridge::check(&a),
        Some(Command::Tui(_)) => return Outcome::Dashboard { readonly },
        Some(Command::Sandbox(c)) => start::sandbox(c, cx),
        Some(Command::Completions(a)) => shell::completions(&a, cx),
        Some(Command::Man(a)) => shell::man(&a, cx),
        Some(Command::Complete(a)) => shell::complete(a.what, &a.words, cx),
        Some(Command::Guard(a)) => guard(&a, cx),
        None => {
            use std::io::IsTerminal;
            let draws = env.get_str("TERM") != Some("dumb");
            if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() && draws {
                return Outcome::Dashboard { readonly };
            }
            // Scripts (and a terminal that cannot draw) get the help text, not a dashboard:
            // on stdout, exit 0 (SmolVM's).
            output::line(command.clone().render_help().to_string());
            0
        }
    })
}

/// `smolvm __guard KIND ARGS…`: a watchdog this smolvm started itself, its stdin the pipe
/// to the process it watches. Quiet: its outcome goes to smolvm's log.
fn guard(a: &args::GuardArgs, cx: &Context) -> i32 {
    use crate::core::snapshot::guard;
    if a.kind != guard::KIND {
        return 2;
    }
    match cx.job() {
        Ok(ctx) => guard::run(&ctx, &a.args, std::io::stdin()),
        Err(e) => {
            tracing::error!(error = %e.message, "watchdog: cannot open the state");
            1
        }
    }
}

/// What a command changes, for read-only mode; `None` for commands that only look (and
/// for any `--dry-run`). The same [`Action`] list the dashboard disables.
fn mutation(cmd: &Command) -> Option<Action> {
    use args::SnapshotCommand;
    use toolkit_args::{EnvCommand, FileCommand, PortCommand};
    Some(match cmd {
        Command::Prune(a) | Command::Image(ImageCommand::Prune(a)) if !a.dry_run => Action::Prune,
        Command::Cleanup(a) if !a.dry_run => Action::Cleanup,
        Command::Completions(a) if a.install => Action::CompletionInstall,
        Command::Image(ImageCommand::Pull(_)) => Action::ImagePull,
        Command::Image(ImageCommand::Build(_)) => Action::ImageBuild,
        Command::Image(ImageCommand::Rm(a)) if !a.dry_run => Action::ImageRemove,
        Command::Image(ImageCommand::Save(_)) => Action::ImageSave,
        Command::Image(ImageCommand::Load(_)) => Action::ImageLoad,
        Command::Sandbox(c) => match c {
            SandboxCommand::Create(_) => Action::Create,
            SandboxCommand::Start(_) => Action::Start,
            SandboxCommand::Stop(_) => Action::Stop,
            SandboxCommand::Delete(a) if !a.dry_run => Action::Delete,
            SandboxCommand::Prune(a) if !a.dry_run => Action::SandboxPrune,
            SandboxCommand::Ssh(_) | SandboxCommand::Shell(_) => Action::Shell,
            SandboxCommand::Exec(_) => Action::Exec,
            SandboxCommand::File(FileCommand::Upload(_)) => Action::FileUpload,
            SandboxCommand::File(FileCommand::Download(_)) => Action::FileDownload,
            SandboxCommand::Env(EnvCommand::Set(_)) => Action::EnvSet,
            SandboxCommand::Env(EnvCommand::Unset(_)) => Action::EnvUnset,
            SandboxCommand::Port(PortCommand::Expose(_)) => Action::PortExpose,
            SandboxCommand::Port(PortCommand::Close(_)) => Action::PortClose,
            SandboxCommand::Pause(_) => Action::Pause,
            SandboxCommand::Resume(_) => Action::Resume,
            SandboxCommand::Snapshot(SnapshotCommand::Create(_)) => Action::SnapshotCreate,
            SandboxCommand::Snapshot(SnapshotCommand::Restore(_)) => Action::SnapshotRestore,
            SandboxCommand::Snapshot(SnapshotCommand::Delete(_)) => Action::SnapshotDelete,
            SandboxCommand::Clone(_) => Action::SnapshotClone,
            SandboxCommand::Branch(_) => Action::Branch,
            SandboxCommand::Network(args::NetworkCommand::Set(_)) => Action::NetworkSet,
            _ => return None,
        },
        // The presets' `start` is checked where it is dispatched (its subcommands come
        // from the registry, not from this enum).
        _ => return None,
    })
}

/// Run `smolvm-cleanup` with these arguments; returns the exit code.
pub fn run_cleanup_standalone(argv: Vec<OsString>) -> i32 {
    let env = Env::from_process();
    crate::core::sudo::init(&env);
    match CleanupCli::command()
        .try_get_matches_from(&argv)
        .and_then(|m| CleanupCli::from_arg_matches(&m))
    {
        Ok(cli) => match crate::core::settings::check(&env) {
            Err(e) => output::fail("cleanup", cli.args.json, &e),
            Ok(()) if !cli.args.dry_run && readonly::enabled(&env, false) => output::fail(
                "cleanup",
                cli.args.json,
                &readonly::refusal(Action::Cleanup),
            ),
            Ok(()) => cleanup::run("smolvm-cleanup", &cli.args, &context(&env)),
        },
        Err(e) => usage_error_with(
            &argv,
            e,
            &CommandId::fixed("cleanup"),
            "Run 'smolvm-cleanup --help' for usage.".into(),
        ),
    }
}

/// A clap error: help and version go to stdout with exit 0; anything else is a usage
/// error, exit 2, as `Error: …` on stderr or, when `--json` was asked for, one envelope.
/// A usage error of `smolvm`: named as SmolVM names a command line it refused
/// ([`CommandId::as_typed`]); the log line still names it by the grammar.
fn usage_error(argv: &[OsString], e: clap::Error) -> i32 {
    usage_error_with(
        argv,
        e,
        &CommandId::as_typed(argv),
        CommandId::recovery_as_typed(argv),
    )
}

/// [`usage_error`] with its JSON recovery line given.
fn usage_error_with(
    argv: &[OsString],
    e: clap::Error,
    command: &CommandId,
    recovery: String,
) -> i32 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            return 0;
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return 2;
        }
        _ => {}
    }
    let rendered = e.render().to_string();
    let json = wants_json(argv);
    if json {
        // The first paragraph: clap's one-line message, unless a value quoted in it holds a
        // newline of its own (`--prefix $'vm-\n'`).
        let first = rendered.split("\n\n").next().unwrap_or_default().trim();
        let message = match first.trim_start_matches("error: ") {
            "" => "invalid arguments".to_string(),
            m => m.to_string(),
        };
        let err = Error::usage(message).with_recovery(recovery);
        output::print_json::<()>(command.as_str(), err.exit_code(), None, Some(&err));
    } else {
        output::err_text(rendered.replacen("error: ", "Error: ", 1));
    }
    2
}

#[cfg(test)]
mod tests {
    use super::{run, Outcome};

    fn argv(args: &[&str]) -> Vec<std::ffi::OsString> {
        std::iter::once("smolvm")
            .chain(args.iter().copied())
            .map(Into::into)
            .collect()
    }

    /// A user's preset named, or aliased, like one of smolvm's own commands is left out
    /// with a word why; the grammar with the presets in force still builds (clap refuses
    /// two subcommands of one name, which ended every command in a panic).
    #[test]
    fn no_preset_takes_a_command_word() {
        use crate::core::presets::{Registry, RESERVED};
        use clap::CommandFactory;
        let base = super::Cli::command();
        let mut words: Vec<&str> = Vec::new();
        for s in base.get_subcommands() {
            words.extend(std::iter::once(s.get_name()).chain(s.get_all_aliases()));
        }
        words.retain(|w| !w.starts_with("__"));
        assert!(words.contains(&"bridge") && words.contains(&"completion"));
        for w in words {
            assert!(RESERVED.contains(&w), "{w} is not reserved");
            for text in [
                format!("[{w}]\nlaunch = \"x\"\n"),
                format!("[mine]\naliases = [\"{w}\"]\nlaunch = \"x\"\n"),
            ] {
                let r = Registry::with_user(Some(&text), "presets.toml");
                assert!(
                    r.problems
                        .iter()
                        .any(|p| p.contains(&format!("{w:?} is a smolvm command"))),
                    "{w}: {:?}",
                    r.problems
                );
                r.presets
                    .iter()
                    .fold(super::Cli::command(), |c, p| {
                        c.subcommand(super::args::preset_subcommand(p))
                    })
                    .debug_assert();
            }
        }
    }

    /// SmolVM 0.0.36's recovery lines for these usage errors, as its CLI prints them: the
    /// words as typed, two of them (three in `sandbox env|file|…`), a positional one too.
    #[test]
    fn a_usage_errors_way_out_is_smolvms() {
        for (args, recovery) in [
            (
                &["completion", "bash", "--bogus"][..],
                "smolvm completion bash",
            ),
            (&["image", "ls", "--bogus"], "smolvm image ls"),
            (
                &["sandbox", "info", "vm-1", "--bogus"],
                "smolvm sandbox info",
            ),
            (
                &["sandbox", "env", "API_KEY=x"],
                "smolvm sandbox env API_KEY=x",
            ),
            (
                &["claude-code", "start", "--bogus"],
                "smolvm claude-code start",
            ),
            (&["--bogus"], "smolvm"),
        ] {
            assert_eq!(
                super::CommandId::recovery_as_typed(&argv(args)),
                format!("Run '{recovery} --help' for usage."),
                "{args:?}"
            );
        }
    }

    #[test]
    fn the_dashboard_is_asked_of_the_entry_point_not_opened_here() {
        assert_eq!(run(argv(&["tui"])), Outcome::Dashboard { readonly: false });
        assert_eq!(
            run(argv(&["tui", "--readonly"])),
            Outcome::Dashboard { readonly: true }
        );
        assert_eq!(
            run(argv(&["--readonly", "tui"])),
            Outcome::Dashboard { readonly: true }
        );
        assert_eq!(run(argv(&["--no-such-flag"])), Outcome::Exit(2));
    }
}
