//! The operator dashboard (ratatui + crossterm + tokio), a face over `core` like the CLI:
//! input event → [`app::App::update`] → effects → [`worker`] (tokio task running the
//! core function) → message → update → render. [`ui::render`] only reads state; the loop
//! draws only when something changed and ticks only while something animates.

pub mod app;
pub mod components;
pub mod data;
pub mod dialogs;
pub mod keymap;
pub mod layout;
pub mod phase;
pub mod terminal;
pub mod theme;
pub mod ui;
pub mod worker;

use std::io::{IsTerminal, Write};
use std::time::Duration;

use crossterm::event::{Event, EventStream, KeyCode, KeyEvent, KeyModifiers};
use futures::StreamExt;
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;

use crate::core::context::Context;
use crate::core::runtime::{block_on, err_line};
use crate::core::vm::VmId;
use crate::core::Env;
use app::{App, Effect, Input};
use keymap::Keymap;
use terminal::TerminalGuard;
use theme::Theme;

/// `$XDG_CONFIG_HOME/smolvm` or `~/.config/smolvm`.
pub fn config_dir(env: &Env) -> std::path::PathBuf {
    env.get("XDG_CONFIG_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env.home().join(".config"))
        .join("smolvm")
}

/// Build the app from the environment: keymap and theme files, `NO_COLOR`.
pub fn new_app(env: &Env, readonly: bool) -> App {
    let dir = config_dir(env);
    let keymap = Keymap::load(&dir.join("keymap.toml"));
    let theme_path = dir.join("theme.toml");
    let theme_text = std::fs::read_to_string(&theme_path).ok();
    let theme = Theme::with_user(
        theme_text.as_deref(),
        &theme_path.display().to_string(),
        env.get("NO_COLOR").is_some(),
    );
    let mut app = App::new(keymap, theme, readonly);
    app.keymap_file = crate::core::display_path(&dir.join("keymap.toml"), &env.home());
    app
}

/// The `ssh` command line of a session in VM `id`: its attach session when `attach`
/// (`core::attach::session_argv`: the preset's launch command, the user's presets
/// included, or a login shell for a built image), else a login shell
/// (`core::lifecycle::ssh_argv_as`, as `smolvm sandbox shell`).
fn session_argv(cx: &Context, id: &VmId, attach: bool) -> Result<Vec<String>, String> {
    use crate::core::lifecycle::{self, SshLogin};
    let ctx = cx.job().map_err(|e| e.message)?;
    if attach {
        crate::core::attach::session_argv(&ctx, id)
    } else {
        lifecycle::ssh_argv_as(&ctx, id, &SshLogin::default(), &[], true)
    }
    .map_err(|e| e.message)
}

/// Suspend the dashboard for an SSH session: stop reading keys (the input reader is
/// dropped so it takes nothing from the session), leave the alternate screen and raw mode,
/// show the cursor, run `ssh` in the foreground with the terminal, then take the terminal
/// back. Returns the session's exit code.
fn run_session(
    events: &mut Option<EventStream>,
    guard: &mut TerminalGuard,
    terminal: &mut Terminal<CrosstermBackend<std::io::Stdout>>,
    argv: &[String],
    what: &str,
) -> Result<i32, String> {
    drop(events.take());
    guard.suspend();
    err_line(format!(
        "smolvm: {what}; the dashboard comes back when it ends"
    ));
    let status = crate::core::guest::run_interactive(argv);
    let _ = guard.resume();
    let _ = redraw_all(terminal);
    *events = Some(EventStream::new());
    match status {
        Ok(s) => Ok(s.code().unwrap_or(255)),
        Err(e) => Err(format!("cannot run ssh ({e}); install openssh-client")),
    }
}

/// Run the dashboard until the user quits; returns the exit code.
/// Run the dashboard; `completion` is how `:completion SHELL --install` gets its script
/// (the CLI's, handed in by the entry point: the faces never import each other).
pub fn run(readonly: bool, completion: worker::CompletionScript) -> i32 {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        err_line("Error: the dashboard needs a terminal; run a subcommand instead (smolvm --help)");
        return 2;
    }
    let env = Env::from_process();
    // A terminal that says it cannot move the cursor (an editor's shell buffer) would
    // get the screen's escape codes as text.
    if env.get_str("TERM") == Some("dumb") {
        err_line(
            "Error: the dashboard needs a terminal that can draw (TERM=dumb); run a subcommand instead (smolvm --help)",
        );
        return 2;
    }
    // The screen is the dashboard's now: `-v` must not write over it.
    crate::core::logging::quiet_stderr();
    terminal::restore_on_panic();
    let result = match block_on(event_loop(env, readonly, completion)) {
        Ok(r) => r,
        Err(e) => {
            err_line(format!("Error: {e}"));
            return 1;
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            err_line(format!("Error: {e}"));
            1
        }
    }
}

async fn event_loop(
    env: Env,
    readonly: bool,
    completion: worker::CompletionScript,
) -> std::io::Result<()> {
    // Left when this returns, however it returns (and restored by the panic hook).
    let mut guard = TerminalGuard::enter(true)?;
    let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
    let mut app = new_app(&env, readonly);
    // The one context of this dashboard: every job works in it, with the presets the
    // dashboard offers.
    let cx = Context::local(&env);
    app.config_problems(&cx.presets().problems);
    app.presets = cx.presets().clone();
    let paths = cx.paths();
    app.log(format!(
        "smolvm {} dashboard: state in {}, images in {}",
        crate::core::version::CRATE_VERSION,
        paths
            .data_dir_candidates()
            .first()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        paths.images_root.display()
    ));
    if readonly {
        app.log("read-only mode: every change is disabled (prune, cleanup, start, stop, delete, pause, snapshots, ports, network policies, files, SSH sessions)");
    }
    let size = terminal.size()?;
    app.size = (size.width, size.height);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut workers = worker::Workers::new(tx, cx.clone()).with_completion_script(completion);
    workers.run(Effect::Refresh { slow: true });
    let mut events = Some(EventStream::new());
    // SIGTERM, SIGHUP and SIGINT (a `kill`, a closed terminal): the loop cancels what runs
    // and quits, leaving the terminal as it found it; no job holds them back meanwhile.
    crate::core::runtime::signals_owned_by_the_loop();
    let mut signals = Signals::new();
    let mut tick = tokio::time::interval(Duration::from_millis(120));
    let mut dirty = true;
    loop {
        if dirty {
            terminal.draw(|f| ui::render(f, &app))?;
            dirty = false;
        }
        if app.should_quit {
            return Ok(());
        }
        let input = tokio::select! {
            ev = async { match events.as_mut() { Some(e) => e.next().await, None => None } } => match ev {
                Some(Ok(Event::Key(k))) if is_suspend(&k) => {
                    // Ctrl-Z: give the terminal back and stop until `fg`.
                    drop(events.take());
                    guard.suspend_process()?;
                    redraw_all(&mut terminal)?;
                    events = Some(EventStream::new());
                    let size = terminal.size()?;
                    Input::Resize(size.width, size.height)
                }
                Some(Ok(Event::Key(k))) => Input::Key(k),
                Some(Ok(Event::Mouse(m))) => Input::Mouse(m),
                Some(Ok(Event::Paste(text))) => Input::Paste(text),
                Some(Ok(Event::Resize(w, h))) => Input::Resize(w, h),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            },
            msg = rx.recv() => match msg {
                Some(m) => Input::Msg(m),
                None => return Ok(()),
            },
            _ = tick.tick(), if app.animating() => Input::Tick,
            sig = signals.next() => Input::Terminate(sig.to_string()),
        };
        let before = app.version();
        for fx in app.update(input) {
            match fx {
                Effect::Copy(text) => copy_osc52(&text),
                Effect::Mouse(on) => guard.set_mouse(on),
                Effect::Session { id, attach } => {
                    let what = format!(
                        "{} in {id}",
                        if attach {
                            "attached to the agent"
                        } else {
                            "login shell"
                        }
                    );
                    // The guest's sshd answered already: its wait was a task
                    // (`Effect::RunSshWait`), with the dashboard live meanwhile.
                    let result = session_argv(&cx, &id, attach).and_then(|argv| {
                        run_session(&mut events, &mut guard, &mut terminal, &argv, &what)
                    });
                    let size = terminal.size()?;
                    app.update(Input::Resize(size.width, size.height));
                    for fx in app.update(Input::Msg(app::Msg::SessionEnded { id, result })) {
                        workers.run(fx);
                    }
                    dirty = true;
                }
                other => workers.run(other),
            }
        }
        dirty |= app.version() != before;
    }
}

/// The whole screen drawn again on the next frame (after the terminal was given away: the
/// alternate screen comes back blank). `Terminal::clear` would ask the terminal for its
/// cursor, which has no reader while the input stream is down; a resize to the current
/// size clears without asking.
fn redraw_all(terminal: &mut Terminal<CrosstermBackend<std::io::Stdout>>) -> std::io::Result<()> {
    let size = terminal.size()?;
    terminal.resize(ratatui::layout::Rect::new(0, 0, size.width, size.height))
}

/// Ctrl-Z, which suspends the dashboard as it does any terminal program (raw mode turns the
/// terminal's own handling of it off, so the dashboard does what the terminal would).
fn is_suspend(k: &KeyEvent) -> bool {
    k.code == KeyCode::Char('z') && k.modifiers == KeyModifiers::CONTROL
}

/// Put text on the clipboard through the terminal (OSC 52; tmux with `set-clipboard on`,
/// and most modern terminals, honour it).
fn copy_osc52(text: &str) {
    use base64::Engine as _;
    let mut out = std::io::stdout();
    let _ = write!(
        out,
        "\x1b]52;c;{}\x07",
        base64::engine::general_purpose::STANDARD.encode(text)
    );
    let _ = out.flush();
}

/// The signals that end the dashboard, as a stream of their names.
struct Signals {
    streams: Vec<(&'static str, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn new() -> Signals {
        let streams = Signals::to_take(crate::core::runtime::signal_ignored)
            .into_iter()
            .filter_map(|(name, kind)| tokio::signal::unix::signal(kind).ok().map(|s| (name, s)))
            .collect();
        Signals { streams }
    }

    /// The ending signals to take: not one this process was started with ignored
    /// (`nohup smolvm` keeps running when its terminal goes, as `nohup` promises).
    fn to_take(
        ignored: impl Fn(i32) -> bool,
    ) -> Vec<(&'static str, tokio::signal::unix::SignalKind)> {
        use tokio::signal::unix::SignalKind;
        [
            ("SIGTERM", SignalKind::terminate()),
            ("SIGHUP", SignalKind::hangup()),
            ("SIGINT", SignalKind::interrupt()),
        ]
        .into_iter()
        .filter(|(_, kind)| !ignored(kind.as_raw_value()))
        .collect()
    }

    /// The next one to come (never, when none could be taken).
    async fn next(&mut self) -> &'static str {
        if self.streams.is_empty() {
            return std::future::pending().await;
        }
        let (name, _, _) = futures::future::select_all(
            self.streams
                .iter_mut()
                .map(|(name, s)| Box::pin(async move { s.recv().await.map(|_| *name) })),
        )
        .await;
        match name {
            Some(n) => n,
            None => std::future::pending().await,
        }
    }
}
