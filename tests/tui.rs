//! The dashboard without a terminal: `update()` driven by key sequences, a real worker
//! reporting progress into state, and every pane and dialog rendered to a `TestBackend`
//! and snapshotted at 80×24 and 160×48.

mod support;

use support::tui::{detail_fixture, full_readout, image, inspect_fixture, policy, source, vm};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

use smolvm::core::context::StateSource;
use smolvm::core::egress::{Mode, NetworkSummary, Policy};
use smolvm::core::lifecycle::ConsoleLine;
use smolvm::core::vm::VmId;
use smolvm::tui::app::{
    App, CleanupPreview, ConfirmAction, Dialog, Effect, Input, LogSource, Msg, Pane, Preview,
    PrunePreview, StartImage, StartSpec, TaskItem, TaskState, TaskUpdate,
};
use smolvm::tui::data::Readout;
use smolvm::tui::keymap::Keymap;
use smolvm::tui::theme::Theme;
use smolvm::tui::ui;

/// A sandbox id of the fixtures (valid, as the dashboard's rows are).
fn vid(id: &str) -> VmId {
    VmId::new(id).unwrap()
}

fn key(c: char) -> Input {
    Input::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

fn code(k: KeyCode) -> Input {
    Input::Key(KeyEvent::new(k, KeyModifiers::NONE))
}

fn ctrl(c: char) -> Input {
    Input::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

fn typed(app: &mut App, s: &str) -> Vec<Effect> {
    s.chars().flat_map(|c| app.update(key(c))).collect()
}

fn app() -> App {
    App::new(Keymap::defaults(), Theme::defaults(true), false)
}

/// [`full_app`] in read-only mode (`--readonly`).
fn readonly_full_app(w: u16, h: u16) -> App {
    let mut a = App::new(Keymap::defaults(), Theme::defaults(true), true);
    a.update(Input::Resize(w, h));
    a.update(Input::Msg(Msg::Readout(Box::new(full_readout()))));
    a
}

fn full_app(w: u16, h: u16) -> App {
    let mut a = app();
    a.update(Input::Resize(w, h));
    a.update(Input::Msg(Msg::Readout(Box::new(full_readout()))));
    a
}

/// An app sized 160x48 with no data yet.
fn sized_app() -> App {
    let mut a = app();
    a.update(Input::Resize(160, 48));
    a
}

/// The status line's text (empty when there is none).
fn status(a: &App) -> &str {
    a.status.as_deref().unwrap_or("")
}

/// A prune preview answering the dialog: `stale` to delete, nothing kept.
fn prune_preview(a: &mut App, stale: Vec<(String, u64)>, total: u64) {
    let plan = stale
        .iter()
        .map(|(p, _)| std::path::PathBuf::from(p.trim_end_matches('/')))
        .collect();
    let generation = a.data.prune_generation();
    a.update(Input::Msg(Msg::PrunePreview {
        generation,
        result: Ok(PrunePreview {
            stale,
            kept: vec![],
            total,
            plan,
        }),
    }));
}

/// `c`, and the cleanup preview answering it: three VMs (one stale) and `stale_resources`.
fn cleanup_preview(a: &mut App, stale_resources: Vec<String>) {
    cleanup_preview_warning(a, stale_resources, vec![]);
}

/// [`cleanup_preview`] with the dry run's `warnings`.
fn cleanup_preview_warning(a: &mut App, stale_resources: Vec<String>, warnings: Vec<String>) {
    let targets = vec![
        ("vm-12345".into(), "stale".into()),
        ("vm-agent-1".into(), "prefix".into()),
        ("vm-demo".into(), "prefix".into()),
    ];
    cleanup_answered(
        a,
        CleanupPreview {
            targets,
            stale_resources,
            warnings,
        },
    );
}

/// `c`, and `preview` answering it.
fn cleanup_answered(a: &mut App, preview: CleanupPreview) {
    let fx = a.update(key('c'));
    let Effect::CleanupPreview { generation, .. } = fx[0].clone() else {
        unreachable!()
    };
    let result = Ok(preview);
    a.update(Input::Msg(Msg::CleanupPreview { generation, result }));
}

/// Lines of vm-12345's log arriving.
fn vm_log(a: &mut App, lines: Vec<String>) {
    a.update(Input::Msg(Msg::Log {
        source: LogSource::Vm("vm-12345".into()),
        lines: console(lines),
    }));
}

/// A guest's console lines as core's log follower reports them.
fn console(lines: Vec<String>) -> Vec<ConsoleLine> {
    lines
        .iter()
        .map(|l| ConsoleLine::of(l.as_bytes()))
        .collect()
}

fn render(a: &App) -> String {
    let (w, h) = a.size;
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| ui::render(f, a)).unwrap();
    t.backend().to_string()
}

// ---- update(): keys to actions and effects -------------------------------------------

#[test]
fn prune_opens_a_dry_run_dialog_and_confirm_starts_a_task() {
    let mut a = full_app(160, 48);
    assert_eq!(
        a.update(key('p')),
        vec![Effect::PrunePreview { generation: 1 }]
    );
    assert!(matches!(a.dialog, Some(Dialog::Prune)));
    assert_eq!(a.data.prune_preview, Preview::Loading);
    // `y` before the preview arrives does nothing.
    assert!(a.update(key('y')).is_empty());
    let preview = PrunePreview {
        stale: vec![("~/.smolvm/images/0.0.12/".into(), 412_000_000)],
        kept: vec![],
        total: 412_000_000,
        plan: vec!["/home/u/.smolvm/images/0.0.12".into()],
    };
    a.update(Input::Msg(Msg::PrunePreview {
        generation: 1,
        result: Ok(preview),
    }));
    let fx = a.update(key('y'));
    assert_eq!(
        fx,
        vec![Effect::RunPrune {
            task: 1,
            plan: vec!["/home/u/.smolvm/images/0.0.12".into()]
        }]
    );
    assert!(a.dialog.is_none());
    assert_eq!(a.data.tasks[0].state, TaskState::Running);
    assert_eq!(a.focus, Pane::Tasks);
    // n/Esc cancel without running anything
    a.update(key('p'));
    assert!(a.update(code(KeyCode::Esc)).is_empty());
    assert!(a.dialog.is_none());
}

/// Latest answer wins, the same way for every read: a prune preview or an image inspection
/// answering an earlier request (by its generation) is dropped; the newest one shows.
#[test]
fn a_late_prune_preview_or_inspect_answer_is_dropped_by_its_generation() {
    let mut a = full_app(160, 48);
    let [Effect::PrunePreview { generation: first }] = a.update(key('p'))[..] else {
        panic!("no preview asked")
    };
    a.update(code(KeyCode::Esc));
    let [Effect::PrunePreview { generation: second }] = a.update(key('p'))[..] else {
        panic!("no preview asked")
    };
    assert_ne!(first, second);
    let answer = |n: usize| PrunePreview {
        stale: vec![("~/.smolvm/images/0.0.12/".into(), 1); n],
        kept: vec![],
        total: n as u64,
        plan: vec!["/home/u/.smolvm/images/0.0.12".into(); n],
    };
    a.update(Input::Msg(Msg::PrunePreview {
        generation: first,
        result: Ok(answer(1)),
    }));
    assert_eq!(
        a.data.prune_preview,
        Preview::Loading,
        "a late answer showed"
    );
    a.update(Input::Msg(Msg::PrunePreview {
        generation: second,
        result: Ok(answer(2)),
    }));
    assert_eq!(a.data.prune_preview, Preview::Ready(answer(2)));
    a.update(code(KeyCode::Esc));

    a.update(key('2'));
    let fx = a.update(key('i'));
    let [Effect::Inspect {
        generation: first, ..
    }] = fx[..]
    else {
        panic!("no inspect asked: {fx:?}")
    };
    a.update(code(KeyCode::Esc));
    let fx = a.update(key('i'));
    let [Effect::Inspect {
        generation: second, ..
    }] = fx[..]
    else {
        panic!("no inspect asked: {fx:?}")
    };
    a.update(Input::Msg(Msg::Inspect {
        generation: first,
        result: Ok(inspect_fixture()),
    }));
    assert_eq!(a.data.inspect, Preview::Loading, "a late inspection showed");
    a.update(Input::Msg(Msg::Inspect {
        generation: second,
        result: Ok(inspect_fixture()),
    }));
    assert_eq!(a.data.inspect, Preview::Ready(inspect_fixture()));
}

#[test]
fn cleanup_dialog_previews_live_and_ignores_stale_answers() {
    let mut a = full_app(160, 48);
    let fx = a.update(key('c'));
    let Effect::CleanupPreview {
        generation: g1,
        prefix,
        all,
    } = fx[0].clone()
    else {
        panic!("{fx:?}")
    };
    assert_eq!((prefix.as_str(), all), ("vm-", false));
    // Edit the prefix: each change asks for a new dry run.
    a.update(code(KeyCode::Backspace));
    a.update(code(KeyCode::Backspace));
    a.update(code(KeyCode::Backspace));
    let fx = typed(&mut a, "prod");
    let Some(Effect::CleanupPreview {
        generation: g2,
        prefix,
        ..
    }) = fx.last().cloned()
    else {
        panic!("{fx:?}")
    };
    assert_eq!(prefix, "prod");
    assert!(g2 > g1);
    // The late answer to the first preview is ignored.
    a.update(Input::Msg(Msg::CleanupPreview {
        generation: g1,
        result: Ok(CleanupPreview {
            targets: vec![("vm-x".into(), "prefix".into())],
            stale_resources: vec![],
            warnings: vec![],
        }),
    }));
    assert!(
        matches!(&a.dialog, Some(Dialog::Cleanup(d)) if *a.data.cleanup_preview(d.generation) == Preview::Loading)
    );
    a.update(Input::Msg(Msg::CleanupPreview {
        generation: g2,
        result: Ok(CleanupPreview {
            targets: vec![
                ("vm-12345".into(), "stale".into()),
                ("production-vm".into(), "prefix".into()),
            ],
            stale_resources: vec![],
            warnings: vec![],
        }),
    }));
    // An old answer arriving after the current one does not replace it.
    a.update(Input::Msg(Msg::CleanupPreview {
        generation: g1,
        result: Ok(CleanupPreview {
            targets: vec![],
            stale_resources: vec![],
            warnings: vec![],
        }),
    }));
    assert!(
        matches!(&a.dialog, Some(Dialog::Cleanup(d)) if matches!(a.data.cleanup_preview(d.generation), Preview::Ready(p) if p.targets.len() == 2)),
        "a late answer replaced the current preview"
    );
    // Ctrl-A toggles --all (a new preview), then Enter (to the buttons) and `y` run with
    // what the dialog shows.
    let fx = a.update(ctrl('a'));
    assert!(matches!(&fx[0], Effect::CleanupPreview { all: true, .. }));
    let Effect::CleanupPreview { generation: g3, .. } = fx[0].clone() else {
        unreachable!()
    };
    assert!(
        a.update(code(KeyCode::Enter)).is_empty(),
        "Enter while loading must not run"
    );
    assert!(
        a.update(key('y')).is_empty(),
        "y while loading must not run"
    );
    a.update(Input::Msg(Msg::CleanupPreview {
        generation: g3,
        result: Ok(CleanupPreview {
            targets: vec![("vm-a".into(), "all".into())],
            stale_resources: vec![],
            warnings: vec![],
        }),
    }));
    let fx = a.update(key('y'));
    assert_eq!(
        fx,
        vec![Effect::RunCleanup {
            task: 1,
            prefix: "prod".into(),
            all: true,
            // The plan it showed is what the worker is to delete.
            plan: CleanupPreview {
                targets: vec![("vm-a".into(), "all".into())],
                stale_resources: vec![],
                warnings: vec![],
            },
        }]
    );
}

#[test]
fn readonly_mode_refuses_every_destructive_action() {
    let mut a = App::new(Keymap::defaults(), Theme::defaults(true), true);
    a.update(Input::Msg(Msg::Readout(Box::new(full_readout()))));
    for k in ['p', 'c', 'n', 's', 'd'] {
        assert!(a.update(key(k)).is_empty(), "{k}");
        assert!(a.dialog.is_none(), "{k} opened a dialog in read-only mode");
        assert!(status(&a).starts_with("read-only mode"));
    }
    assert!(a.update(key(':')).is_empty());
    assert!(typed(&mut a, "cleanup agent-").is_empty());
    assert!(a.update(code(KeyCode::Enter)).is_empty());
    assert!(a.dialog.is_none());
}

#[test]
fn marks_filter_sort_and_bulk_delete() {
    let mut a = full_app(160, 48);
    // `/` filters as you type.
    a.update(key('/'));
    typed(&mut a, "vm-");
    assert_eq!(a.vm_view().len(), 3);
    a.update(code(KeyCode::Enter));
    assert_eq!(a.vms.filter, "vm-");
    // Space marks and moves down; delete asks about the marked rows only.
    a.update(key(' '));
    a.update(key(' '));
    assert_eq!(a.vms.marks.len(), 2);
    a.update(key('d'));
    let Some(Dialog::Confirm(ConfirmAction::Delete(ids))) = &a.dialog else {
        panic!("no delete dialog")
    };
    assert_eq!(ids, &vec!["vm-12345".to_string(), "vm-agent-1".to_string()]);
    let fx = a.update(key('y'));
    assert_eq!(
        fx,
        vec![Effect::RunDelete {
            task: 1,
            ids: vec![vid("vm-12345"), vid("vm-agent-1")]
        }]
    );
    assert!(a.vms.marks.is_empty());
    // Esc clears the filter; `o` sorts by the next column, `O` reverses.
    a.update(key('1'));
    a.update(code(KeyCode::Esc));
    assert_eq!(a.vm_view().len(), 4);
    a.update(key('o'));
    a.update(key('O'));
    let ids: Vec<&str> = a.vm_view().iter().map(|v| v.info.id.as_str()).collect();
    assert_eq!(
        ids[0], "production-vm",
        "sorted by STATUS descending: stopped first"
    );
}

#[test]
fn palette_commands_and_errors() {
    let mut a = full_app(160, 48);
    a.update(key(':'));
    typed(&mut a, "cleanup agent-");
    let fx = a.update(code(KeyCode::Enter));
    assert!(
        matches!(&fx[..], [Effect::CleanupPreview { prefix, all: false, .. }] if prefix == "agent-")
    );
    a.update(code(KeyCode::Esc));
    a.update(key(':'));
    typed(&mut a, "start claude");
    a.update(code(KeyCode::Enter));
    let Some(Dialog::Start(f)) = &a.dialog else {
        panic!("no start form")
    };
    assert_eq!(
        smolvm::core::presets::Registry::builtin().presets[f.preset].name,
        "claude-code"
    );
    a.update(code(KeyCode::Esc));
    a.update(key(':'));
    typed(&mut a, "fly away");
    assert!(a.update(code(KeyCode::Enter)).is_empty());
    let Some(Dialog::Palette(p)) = &a.dialog else {
        panic!("no palette")
    };
    let Some(err) = &p.error else {
        panic!("no error shown")
    };
    assert!(err.starts_with("unknown command ':fly away'"), "{err}");
}

#[test]
fn start_form_validates_as_you_type_and_submits_a_spec() {
    let mut a = full_app(160, 48);
    a.update(key('n'));
    a.update(code(KeyCode::Right)); // preset: codex
    a.update(code(KeyCode::Tab)); // name
    typed(&mut a, "Bad Name");
    let Some(Dialog::Start(f)) = &a.dialog else {
        panic!()
    };
    assert!(smolvm::tui::app::field_errors(f)[1].is_some());
    assert!(
        a.update(code(KeyCode::Enter)).is_empty(),
        "invalid form submitted"
    );
    for _ in 0..8 {
        a.update(code(KeyCode::Backspace));
    }
    typed(&mut a, "my-box");
    a.update(code(KeyCode::Tab)); // memory
    for _ in 0..4 {
        a.update(code(KeyCode::Backspace));
    }
    typed(&mut a, "4096");
    let fx = a.update(code(KeyCode::Enter));
    assert_eq!(
        fx,
        vec![Effect::RunStart {
            task: 1,
            spec: StartSpec {
                image: StartImage::Preset("codex".into()),
                name: Some("my-box".into()),
                memory_mib: 4096,
                cpus: 2,
                disk_mib: None,
                mounts: vec![],
                writable_mounts: false,
                internet: Policy::default(),
                publish_ssh: false,
                attach: false,
                warm: smolvm::core::warm::Ask::Preset,
            }
        }]
    );
}

#[test]
fn cancel_applies_to_prune_and_to_a_start_which_rolls_back() {
    let mut a = full_app(160, 48);
    a.update(key('p'));
    prune_preview(&mut a, vec![("x".into(), 1)], 1);
    a.update(key('y'));
    assert_eq!(a.focus, Pane::Tasks);
    assert_eq!(a.update(key('x')), vec![Effect::Cancel { task: 1 }]);
    a.update(key('1'));
    a.update(key('n'));
    a.update(code(KeyCode::Enter));
    // The newest task is drawn first: `g` selects it.
    a.update(key('g'));
    assert_eq!(a.update(key('x')), vec![Effect::Cancel { task: 2 }]);
    assert!(
        status(&a).starts_with("cancelling task 2 (it stops and rolls back)"),
        "{}",
        status(&a)
    );
}

/// `x` on a running task of each kind: a cancellable kind is asked to stop (and the footer
/// offers `x`); any other is refused with why, nothing is sent, and the footer does not
/// offer `x`.
#[test]
fn x_cancels_each_cancellable_task_kind_and_refuses_the_others_saying_why() {
    use smolvm::core::job::{Cancel, JobKind};
    for &kind in JobKind::ALL {
        let mut a = full_app(160, 48);
        let task = a.data.add_task(kind, format!("a {} task", kind));
        a.update(key('4'));
        assert_eq!(a.focus, Pane::Tasks);
        let footer = render(&a).lines().last().unwrap_or_default().to_string();
        let fx = a.update(key('x'));
        match kind.cancel() {
            Cancel::BetweenItems | Cancel::RollsBack => {
                assert_eq!(fx, vec![Effect::Cancel { task }], "{kind:?}");
                assert!(status(&a).starts_with("cancelling task"), "{kind:?}");
                assert!(footer.contains("cancel task"), "{kind:?}: {footer}");
            }
            Cancel::Not(why) => {
                assert!(fx.is_empty(), "{kind:?}: {fx:?}");
                assert_eq!(status(&a), why, "{kind:?}");
                assert!(status(&a).contains("cannot be"), "{kind:?}");
                assert!(!footer.contains("cancel task"), "{kind:?}: {footer}");
            }
        }
    }
}

/// A task rolling back (a start giving back what it made) shows its phase in the theme's
/// warning colour; any other phase is muted. The worker reports a typed phase, so the pane
/// knows a roll-back without reading its words.
#[test]
fn a_tasks_roll_back_is_shown_in_the_warning_colour() {
    use smolvm::core::job::JobKind;
    use smolvm::tui::data::{Step, TaskPhase};
    let theme = Theme::defaults(false);
    assert_ne!(theme.warn().fg, theme.muted().fg);
    for (phase, style) in [
        (
            TaskPhase::RollingBack {
                vm: None,
                why: "the guest did not answer".into(),
            },
            theme.warn(),
        ),
        (TaskPhase::Step(Step::Stopping), theme.muted()),
    ] {
        let mut a = App::new(Keymap::defaults(), theme.clone(), false);
        a.update(Input::Resize(160, 48));
        let task = a.data.add_task(JobKind::Start, "start codex".into());
        let text = phase.to_string();
        a.update(Input::Msg(Msg::Task {
            id: task,
            update: TaskUpdate::Phase(phase),
        }));
        a.update(key('4'));
        let mut t = Terminal::new(TestBackend::new(160, 48)).unwrap();
        t.draw(|f| ui::render(f, &a)).unwrap();
        let buf = t.backend().buffer().clone();
        let row = (0..buf.area.height)
            .find(|&y| {
                let line: String = (0..buf.area.width)
                    .map(|x| buf[(x, y)].symbol().to_string())
                    .collect();
                line.contains(&text)
            })
            .unwrap_or_else(|| panic!("{text:?} is not on screen:\n{}", render(&a)));
        let line: String = (0..buf.area.width)
            .map(|x| buf[(x, row)].symbol().to_string())
            .collect();
        let col = line.find(&text).unwrap();
        // The column of the phase's first character (all cells are one byte wide before it).
        let x = line[..col].chars().count() as u16;
        let fg = style.fg.unwrap_or(ratatui::style::Color::Reset);
        assert_eq!(buf[(x, row)].fg, fg, "{text}");
    }
}

/// A full app focused on `pane`, set up so each of its commands has something to act on:
/// log lines and a search in Logs, a running cancellable task in Tasks.
fn app_on(pane: Pane) -> App {
    let mut a = full_app(160, 48);
    match pane {
        Pane::Vms => {}
        Pane::Images => {
            a.update(key('2'));
        }
        Pane::Logs => {
            a.update(key('l'));
            vm_log(&mut a, (0..80).map(|i| format!("boot line {i}")).collect());
            a.update(key('3'));
            a.update(key('/'));
            typed(&mut a, "line 1");
            a.update(code(KeyCode::Enter));
        }
        Pane::Tasks => {
            a.data
                .add_task(smolvm::core::job::JobKind::Prune, "a prune task".into());
            a.update(key('4'));
        }
    }
    assert_eq!(a.focus, pane);
    // Any key clears the status line: start without one, so only a key that does
    // something changes what the app shows.
    a.status = None;
    a
}

/// What a key can have done: the screen, the status, a dialog, quitting, the mouse.
fn fingerprint(a: &App) -> (String, String, bool, bool, bool) {
    (
        render(a),
        status(a).to_string(),
        a.dialog.is_some(),
        a.should_quit,
        a.mouse,
    )
}

/// Each pane's commands (its footer) come from its declaration, and each one's key does
/// something in that pane: it emits an effect or changes what the app shows.
#[test]
fn every_command_a_pane_declares_does_something_and_the_footer_shows_it() {
    use smolvm::tui::keymap::Action;
    for pane in [Pane::Vms, Pane::Images, Pane::Logs, Pane::Tasks] {
        let a = app_on(pane);
        let cmds = a.commands(pane);
        assert!(cmds.iter().all(|c| c.enabled), "{pane:?}: {cmds:?}");
        let footer = render(&a).lines().last().unwrap_or_default().to_string();
        assert!(footer.contains(&format!("{} {}", cmds[0].key, cmds[0].label)));
        for c in cmds {
            let mut a = app_on(pane);
            let before = fingerprint(&a);
            let k = *a
                .keymap
                .keys_for(pane.scope(), c.action)
                .first()
                .unwrap_or_else(|| panic!("{pane:?}: {} has no key", c.label));
            assert_eq!(c.key, k.display());
            let fx = a.update(Input::Key(KeyEvent::new(k.code, k.mods)));
            assert!(
                !fx.is_empty() || fingerprint(&a) != before,
                "{pane:?}: {} ({}) does nothing",
                c.key,
                c.label
            );
        }
    }
    // Read-only: the commands that change things are declared but not enabled, and the
    // footer leaves them out.
    let mut a = App::new(Keymap::defaults(), Theme::defaults(true), true);
    a.update(Input::Resize(160, 48));
    let cmds = a.commands(Pane::Vms);
    let stop = cmds.iter().find(|c| c.action == Action::Stop).unwrap();
    assert!(!stop.enabled);
    assert!(cmds.iter().any(|c| c.action == Action::Logs && c.enabled));
    assert!(!render(&a)
        .lines()
        .last()
        .unwrap_or_default()
        .contains(" stop"));
}

/// Help lists every command each pane declares, with its key.
#[test]
fn help_lists_every_command_a_pane_declares() {
    for pane in [Pane::Vms, Pane::Images, Pane::Logs, Pane::Tasks] {
        let mut a = app_on(pane);
        a.update(Input::Resize(160, 120));
        a.update(key('?'));
        let screen = render(&a);
        for c in a.commands(pane) {
            assert!(
                screen
                    .lines()
                    .any(|l| l.contains(&c.key) && l.contains(c.label)),
                "{pane:?}: help lacks {} {}\n{screen}",
                c.key,
                c.label
            );
        }
    }
}

/// Every key help lists in a pane does something there. Moving (only its highlight
/// changes, which the text screen does not show, or there is one row), focusing the pane
/// already focused and clearing marks when there are none are the no-ops allowed. Tasks
/// used to list `/`, `o` and `O` (the list section) though it neither filters nor sorts.
#[test]
fn every_key_help_lists_does_something_in_its_pane() {
    use smolvm::tui::keymap::Action;
    let idle = [
        Action::Up,
        Action::Down,
        Action::Top,
        Action::Bottom,
        Action::PageUp,
        Action::PageDown,
        Action::ClearMarks,
        Action::FocusVms,
        Action::FocusImages,
        Action::FocusLogs,
        Action::FocusTasks,
    ];
    for pane in [Pane::Vms, Pane::Images, Pane::Logs, Pane::Tasks] {
        let a0 = app_on(pane);
        for scope in pane.scope().chain() {
            for (action, keys) in a0.keymap.scope_bindings(*scope) {
                if !a0.offers(pane, action) || idle.contains(&action) {
                    continue;
                }
                let mut a = app_on(pane);
                let before = fingerprint(&a);
                let k = keys[0];
                let fx = a.update(Input::Key(KeyEvent::new(k.code, k.mods)));
                assert!(
                    !fx.is_empty() || fingerprint(&a) != before,
                    "{pane:?}: help lists {} ({action:?}) but it does nothing",
                    k.display()
                );
            }
        }
    }
    let mut a = app_on(Pane::Tasks);
    a.update(Input::Resize(160, 120));
    a.update(key('?'));
    let help = render(&a);
    assert!(help.contains("cancel task"), "{help}");
    for gone in ["sort column", "reverse sort", "filter"] {
        assert!(!help.contains(gone), "Tasks help lists {gone}:\n{help}");
    }
}

#[test]
fn quitting_asks_while_a_task_runs() {
    let mut a = full_app(80, 24);
    a.update(key('q'));
    assert!(a.should_quit);
    let mut a = full_app(80, 24);
    a.update(key('p'));
    prune_preview(&mut a, vec![("x".into(), 1)], 1);
    a.update(key('y'));
    a.update(ctrl('c'));
    assert!(!a.should_quit);
    assert!(matches!(
        a.dialog,
        Some(Dialog::Confirm(ConfirmAction::Quit))
    ));
    // A stray key neither quits nor dismisses the typed confirmation.
    a.update(key('x'));
    assert!(!a.should_quit);
    assert!(matches!(
        a.dialog,
        Some(Dialog::Confirm(ConfirmAction::Quit))
    ));
    a.update(key('n'));
    assert!(!a.should_quit && a.dialog.is_none());
    a.update(key('q'));
    a.update(key('y'));
    assert!(a.should_quit);
}

#[test]
fn logs_follow_search_and_step_through_matches() {
    let mut a = full_app(160, 48);
    let fx = a.update(key('l'));
    assert_eq!(fx, vec![Effect::LoadLog(LogSource::Vm("vm-12345".into()))]);
    assert_eq!(a.focus, Pane::Logs);
    let lines: Vec<String> = (0..100)
        .map(|i| {
            if i % 30 == 7 {
                format!("line {i}: ERROR boom")
            } else {
                format!("line {i}")
            }
        })
        .collect();
    vm_log(&mut a, lines);
    assert!(a.logs.follow);
    a.update(key('/'));
    typed(&mut a, "error");
    a.update(code(KeyCode::Enter));
    assert_eq!(a.logs.matches, vec![7, 37, 67, 97]);
    assert_eq!(
        (a.logs.current, a.logs.scroll, a.logs.follow),
        (Some(0), 7, false)
    );
    a.update(key('n'));
    assert_eq!(a.logs.scroll, 37);
    a.update(key('N'));
    a.update(key('N'));
    assert_eq!(a.logs.scroll, 97, "N wraps backwards");
    a.update(key('f'));
    assert!(a.logs.follow);
    // `/` again offers the last search selected: typing starts a new one (it was added
    // to the old: `errorboom`), and a move keeps it to edit.
    a.update(key('/'));
    typed(&mut a, "boom");
    a.update(code(KeyCode::Enter));
    assert_eq!((a.logs.search.as_str(), a.logs.matches.len()), ("boom", 4));
    for (step, want) in [(KeyCode::End, "boom!"), (KeyCode::Right, "boom!!")] {
        a.update(key('/'));
        a.update(code(step));
        typed(&mut a, "!");
        a.update(code(KeyCode::Enter));
        assert_eq!(a.logs.search, want, "{step:?}");
    }
    // A log for another VM (an old follow) is ignored.
    a.update(Input::Msg(Msg::Log {
        source: LogSource::Vm("other".into()),
        lines: console(vec!["x".into()]),
    }));
    assert_eq!(a.log_lines().len(), 100);
}

#[test]
fn mouse_click_focuses_and_selects_and_wheel_scrolls() {
    let mut a = full_app(160, 48);
    let vms = a.areas().vms.unwrap();
    a.update(key('2'));
    a.update(Input::Mouse(MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column: vms.x + 3,
        row: vms.y + 2 + 2, // third row
        modifiers: KeyModifiers::NONE,
    }));
    assert_eq!(a.focus, Pane::Vms);
    assert_eq!(a.selected_vm().unwrap().info.id, "production-vm");
    a.update(Input::Mouse(MouseEvent {
        kind: MouseEventKind::ScrollUp,
        column: vms.x + 3,
        row: vms.y + 3,
        modifiers: KeyModifiers::NONE,
    }));
    assert_eq!(a.vms.selected, 0);
}

#[test]
fn a_finished_start_selects_the_new_vm_when_it_appears() {
    let mut a = full_app(160, 48);
    a.update(key('n'));
    let fx = a.update(code(KeyCode::Enter));
    let Effect::RunStart { task, .. } = fx[0].clone() else {
        panic!("{fx:?}")
    };
    a.update(Input::Msg(Msg::Task {
        id: task,
        update: TaskUpdate::Started {
            vm_id: vid("vm-new"),
        },
    }));
    assert_eq!(a.pending_select.as_deref(), Some("vm-new"));
    let mut snap = full_readout();
    snap.vms.push(vm(
        "vm-new",
        "running",
        false,
        Some(999),
        Some("172.16.0.9"),
        Some(2209),
    ));
    a.update(Input::Msg(Msg::Readout(Box::new(snap))));
    assert_eq!(a.selected_vm().unwrap().info.id, "vm-new");
    assert!(a.pending_select.is_none());
}

#[test]
fn worker_messages_change_the_data_and_leave_the_view_alone() {
    let mut a = full_app(160, 48);
    a.update(key('/'));
    typed(&mut a, "vm-");
    a.update(code(KeyCode::Enter));
    a.update(key(' '));
    a.update(key('2'));
    let (focus, list, images) = (a.focus, a.vms.clone(), a.images.clone());
    // The same messages applied to a bare `Data` give the app's data.
    let mut data = a.data.clone();
    let mut s = full_readout();
    s.vms.pop();
    data.apply_readout(s.clone());
    a.update(Input::Msg(Msg::Readout(Box::new(s))));
    a.update(Input::Msg(Msg::Log {
        source: LogSource::Vm("vm-12345".into()),
        lines: console(vec!["late".into()]),
    }));
    data.apply_vm_log("vm-12345", console(vec!["late".into()]));
    assert_eq!(a.data, data);
    assert_eq!(a.data.vms.len(), 3);
    assert_eq!((a.focus, &a.vms, &a.images), (focus, &list, &images));
}

#[test]
fn an_unchanged_refresh_costs_no_frame() {
    let mut a = full_app(160, 48);
    let v = a.version();
    a.update(Input::Msg(Msg::Readout(Box::new(full_readout()))));
    assert_eq!(a.version(), v);
    let mut s = full_readout();
    s.vms.pop();
    a.update(Input::Msg(Msg::Readout(Box::new(s))));
    assert_ne!(a.version(), v);
}

// ---- rough edges (#16 item 7) -----------------------------------------------------------

/// The rows of a rendered screen.
fn screen_rows(a: &App) -> Vec<String> {
    render(a)
        .lines()
        .map(|l| l.trim_matches('"').to_string())
        .collect()
}

/// A form taller than the terminal scrolls: each of its fields, moved to in turn, is
/// drawn with its focus mark, and the frame says which way more rows are. (The rows a
/// short terminal had no room for were squeezed out, the focused field's too.)
#[test]
fn every_form_keeps_its_focused_field_in_view_on_a_short_terminal() {
    // The key opening it on the running VM, the key to its next field, its fields.
    let forms = [
        ('n', KeyCode::Tab, 13),
        ('N', KeyCode::Tab, 4),
        ('S', KeyCode::Tab, 3),
        ('b', KeyCode::Tab, 2),
        ('E', KeyCode::Tab, 3),
        ('U', KeyCode::Down, 2),
    ];
    for h in [4, 5, 7, 12, 18, 40] {
        for (open, next, fields) in forms {
            let mut a = full_app(100, h);
            a.update(key('j'));
            a.update(key(open));
            assert!(a.dialog.is_some(), "{open}: {:?}", a.status);
            let mut seen = std::collections::BTreeSet::new();
            let mut scrolled = false;
            for _ in 0..fields {
                let rows = screen_rows(&a);
                let focused: Vec<&String> = rows.iter().filter(|r| r.contains('›')).collect();
                assert_eq!(focused.len(), 1, "{open} at {h} rows: {rows:#?}");
                seen.insert(focused[0].clone());
                scrolled |= rows.iter().any(|r| r.contains("↑ more"));
                a.update(code(next));
            }
            assert_eq!(seen.len(), fields, "{open} at {h} rows: {seen:#?}");
            // The start form (22 rows) scrolls below 24 rows; at 40 all of it shows.
            if open == 'n' {
                assert_eq!(scrolled, h < 24, "{open} at {h} rows");
            }
        }
    }
}

/// A refresh's warnings (a row of the state database skipped, an images root that could
/// not be read) stay as long as their cause: the header's second line says them beside
/// the counts and doctor's verdict, not instead of them, and the app log has each.
#[test]
fn a_lasting_refresh_warning_leaves_the_counts_and_doctor_in_the_header() {
    let warning = "skipped vms row 'Bad Id': not a valid sandbox id";
    for (w, whole) in [(200, true), (80, false)] {
        let mut s = full_readout();
        s.errors = vec![warning.into(), "another warning".into()];
        let mut a = app();
        a.update(Input::Resize(w, 24));
        a.update(Input::Msg(Msg::Readout(Box::new(s))));
        let rows = screen_rows(&a);
        let line = &rows[1];
        assert!(line.contains("4 VM(s) · 3 image cache(s)"), "{w}: {line}");
        assert!(line.contains("2 warnings"), "{w}: {line}");
        assert_eq!(line.contains(warning), whole, "{w}: {line}");
        assert_eq!(line.contains("doctor: 2 OK"), whole, "{w}: {line}");
        assert!(a.data.app_log.iter().any(|l| l.contains(warning)));
    }
    // A long one is cut to 60 columns rather than left out, before doctor's hint goes.
    let long = format!("{warning}; {}", "and then some more words ".repeat(6));
    let mut s = full_readout();
    s.errors = vec![long.clone()];
    let mut a = app();
    a.update(Input::Resize(200, 24));
    a.update(Input::Msg(Msg::Readout(Box::new(s))));
    let line = &screen_rows(&a)[1];
    let cut: String = long.chars().take(59).collect();
    assert!(line.contains(&format!("⚠ 1 warning: {cut}…")), "{line}");
}

/// Help's note of the tasks `x` cannot cancel wraps under its column, after a comma; the
/// detail view's frame on a terminal with no room inside says no range (it said `1–0`).
#[test]
fn help_wraps_its_notes_under_their_column_and_an_empty_frame_says_no_range() {
    let mut a = full_app(80, 24);
    a.update(key('4'));
    a.update(key('?'));
    let rows = screen_rows(&a);
    let note: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.split('║').nth(1))
        .skip_while(|r| !r.contains("not for:"))
        .take_while(|r| !r.contains("Enter"))
        .collect();
    assert!(note.len() > 1, "the note fits one line: nothing to test");
    for line in &note {
        assert!(line.starts_with(&" ".repeat(18)), "{line:?} in {note:#?}");
    }
    let (last, broken) = note.split_last().unwrap();
    assert!(
        broken.iter().all(|l| l.trim_end().ends_with(',')) && !last.trim_end().ends_with(','),
        "{note:#?}"
    );
    for (w, h) in [(20, 5), (36, 5)] {
        let mut a = full_app(w, h);
        a.update(key('j'));
        a.update(code(KeyCode::Enter));
        let screen = render(&a);
        assert!(screen.contains("VM vm-"), "{screen}");
        assert!(!screen.contains(" of "), "{screen}");
    }
}

/// A paste is text, never keys: typed into the focused text field of a form, the palette
/// or the cleanup prefix; on a pane, a choice or the cleanup dialog's buttons it does
/// nothing (a pasted "… s … d … y" used to start, delete and confirm).
#[test]
fn pasted_text_is_typed_into_a_text_field_and_never_acts_as_keys() {
    let paste = |a: &mut App, text: &str| a.update(Input::Paste(text.into()));
    // On a pane: nothing but the status saying so.
    let mut a = full_app(160, 48);
    a.update(key('j'));
    let before = (a.data.clone(), a.focus);
    assert!(paste(&mut a, "see the dummy log: ready\nd y s x :q").is_empty());
    assert!(a.dialog.is_none(), "{:?}", a.status);
    assert_eq!((a.data.clone(), a.focus), before);
    assert_eq!(status(&a), "pasted text ignored: paste into a text field");
    // Into the start form's name; its own line break does not submit it.
    a.update(key('n'));
    a.update(code(KeyCode::Tab));
    assert!(paste(&mut a, "my-box\n").is_empty());
    let Some(Dialog::Start(f)) = &a.dialog else {
        panic!("{:?}", a.status)
    };
    assert_eq!(f.name.lines().join(""), "my-box");
    // On a choice (the preset) it types nothing and chooses nothing.
    a.update(Input::Key(KeyEvent::new(
        KeyCode::BackTab,
        KeyModifiers::SHIFT,
    )));
    let preset = |a: &App| match &a.dialog {
        Some(Dialog::Start(f)) => (f.preset, f.name.lines().join("")),
        _ => panic!("the form closed"),
    };
    let was = preset(&a);
    assert!(paste(&mut a, "  \t ").is_empty());
    assert_eq!(preset(&a), was);
    a.update(code(KeyCode::Esc));
    // The cleanup dialog: typed into the prefix, never to the buttons, where y deletes.
    a.update(key('c'));
    let prefix = |a: &App| match &a.dialog {
        Some(Dialog::Cleanup(d)) => d.prefix.lines().join(""),
        _ => panic!("the cleanup dialog closed"),
    };
    let typed = format!("{}prod", prefix(&a));
    // One dry run for the paste, not one a character.
    let fx = paste(&mut a, "prod\r\n");
    assert!(
        matches!(fx.as_slice(), [Effect::CleanupPreview { prefix, .. }] if *prefix == typed),
        "{fx:?}"
    );
    assert_eq!(prefix(&a), typed);
    a.update(code(KeyCode::Enter));
    let fx = paste(&mut a, "y");
    assert!(fx.is_empty(), "{fx:?}");
    assert_eq!(prefix(&a), typed);
    // The palette: a pasted command is typed, Enter (a key) runs it.
    a.update(code(KeyCode::Esc));
    a.update(key(':'));
    paste(&mut a, "filter agent");
    let Some(Dialog::Palette(p)) = &a.dialog else {
        panic!("{:?}", a.status)
    };
    assert_eq!(p.input.lines().join(""), "filter agent");
    assert!(a.status.is_none(), "{:?}", a.status);
    // A large paste goes in at once (a character at a time took minutes, the loop stuck).
    a.update(code(KeyCode::Esc));
    a.update(key('n'));
    a.update(code(KeyCode::Tab));
    let big = "x".repeat(99) + "\n";
    paste(&mut a, &big.repeat(1000));
    let Some(Dialog::Start(f)) = &a.dialog else {
        panic!("{:?}", a.status)
    };
    assert_eq!(f.name.lines().join("").len(), 100 * 1000 - 1);
    assert!(render(&a).contains("› Name"));
}

/// On a short terminal the cleanup dialog lists what it deletes before anything else:
/// warnings (skipped rows, say) and leftovers give way first, and what is not listed is
/// counted. (The warnings came first and hid every target while `y` still deleted.)
#[test]
fn the_cleanup_dialog_shows_its_targets_first_on_a_short_terminal() {
    let warnings: Vec<String> = (1..=3)
        .map(|i| format!("skipped vms row {i}: not a valid sandbox id"))
        .collect();
    for h in [8, 10, 12] {
        let mut a = full_app(80, h);
        cleanup_preview_warning(&mut a, vec!["tap9".into()], warnings.clone());
        a.update(code(KeyCode::Enter));
        let screen = render(&a);
        assert!(screen.contains("Targets (3):"), "{h}: {screen}");
        // A line each, or all on one line where there is no room for that.
        let listed = ["vm-12345", "vm-agent-1", "vm-demo"]
            .iter()
            .filter(|id| screen.contains(*id))
            .count();
        assert!(listed == 3 || screen.contains("more"), "{h}: {screen}");
        assert!(screen.contains("delete these"), "{h}: {screen}");
    }
    let mut a = full_app(80, 24);
    cleanup_preview_warning(&mut a, vec![], warnings.clone());
    let screen = render(&a);
    for w in ["vm-demo", "skipped vms row 1", "skipped vms row 3"] {
        assert!(screen.contains(w), "{w}: {screen}");
    }
    // Six targets on narrow, short screens: each id is listed or counted by `…and N more`
    // (the packed line wrapped out of sight, saying nothing).
    let ids: Vec<String> = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
        .iter()
        .map(|n| format!("vm-{n}"))
        .collect();
    for (w, h) in [
        (40, 5),
        (40, 7),
        (40, 9),
        (40, 11),
        (40, 12),
        (80, 5),
        (80, 7),
        (60, 10),
    ] {
        let mut a = full_app(w, h);
        cleanup_answered(
            &mut a,
            CleanupPreview {
                targets: ids.iter().map(|i| (i.clone(), "prefix".into())).collect(),
                stale_resources: vec!["tap9".into()],
                warnings: warnings.clone(),
            },
        );
        let screen = render(&a);
        let shown = ids.iter().filter(|i| screen.contains(i.as_str())).count();
        let more: usize = screen
            .split("…and ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .map_or(0, |n| n.parse().unwrap());
        assert_eq!(shown + more, 6, "{w}x{h}: {screen}");
        assert!(screen.contains("Targets (6)"), "{w}x{h}: {screen}");
    }
}

/// A text field scrolled sideways on a narrow screen shows its value from the start again
/// once the screen is wide enough (it kept hiding the start of what would be submitted).
#[test]
fn a_text_field_shows_its_whole_value_again_after_the_screen_grows() {
    let mut a = full_app(100, 30);
    a.update(key('n'));
    for _ in 0..5 {
        a.update(code(KeyCode::Tab));
    }
    let mounts = "/home/user/projects/alpha:/work/alpha,/srv/data";
    typed(&mut a, mounts);
    for (w, h) in [(16, 30), (50, 30), (100, 30)] {
        a.update(Input::Resize(w, h));
        render(&a);
    }
    let screen = render(&a);
    assert!(
        screen.contains(&format!("› Mounts      {mounts}")),
        "{screen}"
    );
    assert!(screen.contains("Memory MiB  2048"), "{screen}");
}

#[test]
fn help_scrolls_to_its_last_line_on_a_small_terminal() {
    let mut a = full_app(80, 24);
    a.update(key('?'));
    assert!(
        !render(&a).contains("refresh"),
        "help fits already: nothing to test"
    );
    // The last binding of the chain is reachable with j, PgDn and G, and k comes back.
    a.update(code(KeyCode::PageDown));
    a.update(code(KeyCode::PageDown));
    a.update(code(KeyCode::PageDown));
    let bottom = render(&a);
    assert!(bottom.contains("refresh"), "{bottom}");
    assert!(
        matches!(a.dialog, Some(Dialog::Help(_))),
        "PgDn closed help"
    );
    a.update(key('j'));
    assert_eq!(render(&a), bottom, "j past the end moves nothing");
    a.update(key('k'));
    assert_ne!(render(&a), bottom);
    a.update(key('g'));
    assert!(render(&a).contains("Keys in VMs"));
    a.update(code(KeyCode::Esc));
    assert!(a.dialog.is_none());
}

#[test]
fn doctor_sizes_from_wrapped_lines_and_scrolls() {
    let mut a = full_app(80, 24);
    a.update(key(':'));
    typed(&mut a, "doctor");
    a.update(code(KeyCode::Enter));
    a.update(key('G'));
    let s = render(&a);
    assert!(s.contains("nft"), "the last check is reachable:\n{s}");
    assert!(matches!(a.dialog, Some(Dialog::Doctor(_))));
    // At 160x48 everything fits without scrolling.
    let mut a = full_app(160, 48);
    a.update(key(':'));
    typed(&mut a, "doctor");
    a.update(code(KeyCode::Enter));
    let s = render(&a);
    for name in [
        "kvm",
        "qemu",
        "firecracker",
        "nft",
        "SMOLVM_FIRECRACKER_BIN",
    ] {
        assert!(s.contains(name), "{name} missing:\n{s}");
    }
    // A name longer than the others' column keeps a space before its message, and the
    // fix lines up under the messages.
    let mut r = full_readout();
    let checks = &mut r.slow.as_mut().unwrap().doctor;
    checks[3].name = "network-guard";
    checks[3].status = smolvm::core::doctor::Status::Warn;
    checks[3].fix = "load nf_tables".into();
    a.update(Input::Msg(Msg::Readout(Box::new(r))));
    let rows = screen_rows(&a);
    let line = |needle: &str| {
        let row = rows.iter().find(|l| l.contains('║') && l.contains(needle));
        row.and_then(|r| r.split('║').nth(1)).unwrap().to_string()
    };
    let guard = line("network-guard");
    assert!(guard.contains("network-guard /usr/sbin/nft"), "{guard}");
    let msg_col = guard.find("/usr/sbin/nft").unwrap();
    assert_eq!(
        line("fix: load nf_tables").find("fix:"),
        Some(msg_col),
        "{rows:#?}"
    );
    assert_eq!(line("KVM is PVM").find("KVM is PVM"), Some(msg_col));
}

#[test]
fn palette_completes_with_tab_and_recalls_history() {
    let mut a = full_app(160, 48);
    let line = |a: &App| match &a.dialog {
        Some(Dialog::Palette(p)) => p.text(),
        _ => panic!("no palette"),
    };
    a.update(key(':'));
    typed(&mut a, "cle");
    a.update(code(KeyCode::Tab));
    assert_eq!(line(&a), "cleanup ");
    a.update(code(KeyCode::Esc));
    a.update(key(':'));
    typed(&mut a, "start co");
    a.update(code(KeyCode::Tab));
    assert_eq!(line(&a), "start codex");
    a.update(code(KeyCode::Esc));
    a.update(key(':'));
    typed(&mut a, "logs vm-a");
    a.update(code(KeyCode::Tab));
    assert_eq!(line(&a), "logs vm-agent-1");
    // Two candidates: the common part, and both named in the hint.
    a.update(code(KeyCode::Esc));
    a.update(key(':'));
    typed(&mut a, "logs vm-");
    a.update(code(KeyCode::Tab));
    assert_eq!(line(&a), "logs vm-");
    assert!(render(&a).contains("vm-12345"));
    a.update(code(KeyCode::Esc));
    // History: lines run before come back with Up, newest first; Down returns.
    for cmd in ["vms", "filter agent", "tasks"] {
        a.update(key(':'));
        typed(&mut a, cmd);
        a.update(code(KeyCode::Enter));
    }
    a.update(key(':'));
    a.update(code(KeyCode::Up));
    assert_eq!(line(&a), "tasks");
    a.update(code(KeyCode::Up));
    assert_eq!(line(&a), "filter agent");
    a.update(code(KeyCode::Down));
    assert_eq!(line(&a), "tasks");
    a.update(code(KeyCode::Down));
    assert_eq!(line(&a), "");
}

#[test]
fn m_toggles_mouse_capture_and_the_footer_says_so() {
    let mut a = full_app(160, 48);
    assert!(a.mouse);
    assert!(screen_rows(&a).last().unwrap().contains("m mouse"));
    assert_eq!(a.update(key('m')), vec![Effect::Mouse(false)]);
    assert!(!a.mouse);
    a.update(key('2'));
    assert_eq!(a.update(key('m')), vec![Effect::Mouse(true)]);
    // Remappable like every key.
    let km = Keymap::with_user("[global]\ntoggle_mouse = [\"M\"]\n", "k.toml");
    assert!(km.problems.is_empty(), "{:?}", km.problems);
    let mut a = App::new(km, Theme::defaults(true), false);
    assert!(a.update(key('m')).is_empty());
    assert_eq!(a.update(key('M')), vec![Effect::Mouse(false)]);
}

#[test]
fn filter_matches_what_a_row_shows() {
    let mut a = full_app(160, 48);
    a.update(key('/'));
    typed(&mut a, "stale");
    let ids: Vec<&str> = a.vm_view().iter().map(|v| v.info.id.as_str()).collect();
    assert_eq!(ids, ["vm-12345"], "`error (stale)` is what the row shows");
    a.update(code(KeyCode::Esc));
    a.update(code(KeyCode::Esc));
    a.update(key('2'));
    a.update(key('/'));
    typed(&mut a, "used by vm-1");
    assert_eq!(a.image_view().len(), 1, "`· used by vm-12345` is shown");
}

#[test]
fn the_vms_pane_filters_and_sorts_by_policy_and_egress_bytes() {
    let mut a = full_app(160, 48);
    a.update(key('/'));
    typed(&mut a, "restricted");
    let ids: Vec<&str> = a.vm_view().iter().map(|v| v.info.id.as_str()).collect();
    assert_eq!(ids, ["vm-agent-1"], "the NET cell is what `/` matches");
    a.update(code(KeyCode::Esc));
    a.update(code(KeyCode::Esc));
    // `o` up to EGRESS, `O` descending: the VM that sent the most first.
    let egress = smolvm::tui::app::VM_COLUMNS
        .iter()
        .position(|c| c.title == "EGRESS")
        .unwrap();
    for _ in 0..egress {
        a.update(key('o'));
    }
    a.update(key('O'));
    assert!(render(&a).contains("sort EGRESS↓"));
    assert_eq!(a.vm_view()[0].info.id, "vm-agent-1");
    // NET ascending: off before open before restricted.
    a.update(key('O'));
    for _ in 0..(smolvm::tui::app::VM_COLUMNS.len() - 1) {
        a.update(key('o'));
    }
    assert!(render(&a).contains("sort NET↑"), "{}", render(&a));
    let nets: Vec<String> = a.vm_view().iter().map(|v| v.net_cell()).collect();
    assert_eq!(nets, ["off", "open", "open", "restricted"]);
}

/// The policies the VMs pane shows are the stored ones, read by core in the refresh
/// worker's loader (`data::load` → `core::egress::summaries`): set by the CLI, written by
/// SmolVM itself in its `internet_settings`, or absent (open).
#[test]
fn the_vms_pane_shows_each_vms_stored_policy_through_core() {
    let h = support::Home::new();
    support::cleanup::insert_stopped(
        &h,
        &["vm-cli-off", "vm-cli-names", "vm-smolvm-row", "vm-default"],
    );
    for (id, flags) in [
        ("vm-cli-off", vec!["--internet", "off"]),
        ("vm-cli-names", vec!["--allow-domain", "api.openai.com"]),
    ] {
        let out = h
            .smolvm()
            .args(["sandbox", "network", "set", id])
            .args(&flags)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
    }
    let c = rusqlite::Connection::open(h.data.join("smolvm.db")).unwrap();
    c.execute(
        "UPDATE vms SET config = json_set(config, '$.internet_settings', json('{\"mode\": \"restricted\", \"allowed_cidrs\": [\"8.8.8.8\"]}')) WHERE id = 'vm-smolvm-row'",
        [],
    )
    .unwrap();
    let snap = smolvm::tui::data::load(
        &smolvm::core::context::Context::local(&h.env()),
        &mut Default::default(),
        false,
    );
    let nets: Vec<(&str, String, String)> = snap
        .vms
        .iter()
        .map(|v| {
            (
                v.info.id.as_str(),
                v.net_cell(),
                smolvm::tui::components::table::DataToCell::cell_text(
                    v,
                    smolvm::core::table::VmCol::Egress,
                ),
            )
        })
        .collect();
    assert_eq!(
        nets,
        [
            ("vm-cli-off", "off".into(), "-".into()),
            ("vm-cli-names", "restricted".into(), "-".into()),
            ("vm-smolvm-row", "restricted".into(), "-".into()),
            ("vm-default", "open".into(), "-".into()),
        ],
        "stopped sandboxes: the stored policy, no counters"
    );
    let names = snap.vms[1].net.as_ref().unwrap();
    assert_eq!(names.internet.summary(), "restricted: api.openai.com");
    assert_eq!(
        snap.vms[2].net.as_ref().unwrap().internet.summary(),
        "restricted: 8.8.8.8/32"
    );
    assert!(snap.vms.iter().all(|v| !v.net.as_ref().unwrap().unguarded));
    assert!(snap.errors.is_empty(), "{:?}", snap.errors);
}

/// The detail view's network is what `sandbox network show --json` reports (the same core
/// function, read by the detail worker).
#[test]
fn the_detail_shows_what_sandbox_network_show_reports() {
    let h = support::Home::new();
    support::cleanup::insert_stopped(&h, &["vm-detail"]);
    let out = h
        .smolvm()
        .args([
            "sandbox",
            "network",
            "set",
            "vm-detail",
            "--allow-cidr",
            "198.51.100.0/24",
        ])
        .args(["--allow-domain", "*.npmjs.org", "--publish-ssh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
    let out = h.run(&["sandbox", "network", "show", "vm-detail", "--json"]);
    let cli = support::json(&out)["data"].clone();
    let d = smolvm::tui::worker::load_detail(
        &smolvm::core::context::Context::local(&h.env()),
        &vid("vm-detail"),
    )
    .unwrap();
    let report = d.network.clone().expect("the network is read");
    assert_eq!(serde_json::to_value(&report).unwrap(), cli);
    assert_eq!(report.summary, "restricted: 198.51.100.0/24, *.npmjs.org");
    assert!(report.publish_ssh);
    // And the view shows it.
    let mut a = app();
    a.update(Input::Resize(160, 48));
    a.update(Input::Msg(Msg::Readout(Box::new(smolvm::tui::data::load(
        &smolvm::core::context::Context::local(&h.env()),
        &mut Default::default(),
        false,
    )))));
    a.update(code(KeyCode::Enter));
    a.update(Input::Msg(Msg::Detail {
        id: vid("vm-detail"),
        generation: a.data.detail_gen.newest(),
        result: Ok(Box::new(d)),
    }));
    let screen = render(&a);
    for want in [
        "restricted: 198.51.100.0/24, *.npmjs.org",
        "yes: on the host's outbound interface too",
        "not running (stopped): applied when it starts",
        "Blocked destinations (0)",
    ] {
        assert!(screen.contains(want), "{want}\n{screen}");
    }
}

/// The detail view and `sandbox info --json` report the same VM the same way: one core
/// read (`core::detail::vm` over `lifecycle::info`) for one row of a real state DB.
#[test]
fn the_detail_and_sandbox_info_json_report_the_same_fields() {
    use support::cleanup::{insert_rows, Row};
    let h = support::Home::new();
    let row = Row {
        tap: Some(("tap9", "172.16.0.9", 2209)),
        ..Row::stopped("vm-dt1")
    };
    insert_rows(&h.data, &h.sockets(), &[row]);
    let out = h
        .smolvm()
        .args(["sandbox", "info", "vm-dt1", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        support::stderr(&out),
        String::from_utf8_lossy(&out.stdout)
    );
    let cli = support::json(&out)["data"].clone();
    let d = smolvm::tui::worker::load_detail(
        &smolvm::core::context::Context::local(&h.env()),
        &vid("vm-dt1"),
    )
    .unwrap();
    let home = h.env().home();
    let shown = |v: &serde_json::Value| {
        v.as_str()
            .map(|p| smolvm::core::display_path(std::path::Path::new(p), &home))
    };
    assert_eq!(d.id, cli["id"].as_str().unwrap());
    assert_eq!(
        d.backend.as_ref().map(|b| b.as_str()),
        cli["backend"].as_str()
    );
    assert_eq!(d.preset.as_deref(), cli["preset"].as_str());
    assert_eq!(d.ip.as_deref(), cli["ip"].as_str());
    assert_eq!(d.ip.as_deref(), Some("172.16.0.9"));
    assert_eq!(d.tap.as_deref(), cli["tap"].as_str());
    assert_eq!(d.ssh_port.map(u64::from), cli["ssh_port"].as_u64());
    assert_eq!(d.vcpus, cli["vm"]["vcpus"].as_u64());
    assert_eq!(d.memory_mib, cli["vm"]["memory"].as_u64());
    assert_eq!(d.kernel, shown(&cli["config"]["kernel_path"]));
    assert_eq!(d.rootfs, shown(&cli["config"]["rootfs_path"]));
}

/// A running sandbox (its VMM alive) on a TAP of smolvm's that the guard does not hold —
/// one SmolVM started, or a table changed by hand — is `unguarded` in the VMs pane: its
/// policy is not enforced. Reads the host's nftables (changes nothing), so needs root.
#[test]
fn a_running_vm_the_guard_does_not_hold_is_unguarded() {
    use support::cleanup::{insert_rows, Row};
    require_root!("(reads nftables)");
    let h = support::Home::new();
    let sockets = h.sockets();
    let (bare, _vmm) = Row::live(&sockets, "vm-bare", ("tap4090", "172.16.15.250", 6090));
    insert_rows(
        &h.data,
        &sockets,
        &[
            bare,
            // Its VMM is gone: stale, nothing to guard.
            Row {
                status: "running",
                pid: Some(i32::MAX - 7),
                tap: Some(("tap4091", "172.16.15.251", 6091)),
                backend: "firecracker",
                ..Row::stopped("vm-dead")
            },
        ],
    );
    let snap = smolvm::tui::data::load(
        &smolvm::core::context::Context::local(&h.env()),
        &mut Default::default(),
        false,
    );
    let cells: Vec<(String, String)> = snap
        .vms
        .iter()
        .map(|v| (v.info.shown_status(), v.net_cell()))
        .collect();
    assert_eq!(
        cells,
        [
            ("running".to_string(), "unguarded".to_string()),
            ("error (stale)".to_string(), "open".to_string()),
        ]
    );
    assert_eq!(snap.vms[0].net.as_ref().unwrap().egress_bytes, None);
    // `network show` (what the detail view draws) and doctor say the same of each, by
    // core's one rule: the live one is not contained, the dead one has nothing to contain
    // (it is `error`, its policy applied when it starts).
    let show = |id: &str| {
        let out = h.run(&["sandbox", "network", "show", id, "--json"]);
        let human = h.run(&["sandbox", "network", "show", id]);
        let v = support::json(&out)["data"].clone();
        (
            v["unguarded"].clone(),
            v["status"].clone(),
            String::from_utf8_lossy(&human.stdout).contains("guard: MISSING"),
            String::from_utf8_lossy(&human.stdout).contains("applied when it starts"),
        )
    };
    assert_eq!(
        show("vm-bare"),
        (true.into(), "running".into(), true, false)
    );
    assert_eq!(show("vm-dead"), (false.into(), "error".into(), false, true));
    let doctor = support::json(&h.run(&["doctor", "--json"]));
    let guard = support::item(&doctor["data"]["checks"], "name", "network-guard");
    let message = guard["message"].as_str().unwrap();
    assert!(message.contains("vm-bare"), "{guard}");
    assert!(!message.contains("vm-dead"), "{guard}");
    // Held by rules an older smolvm wrote (core's `outdated`, which `network show` and
    // tests/network.rs check live): the cell says so.
    let mut row = snap.vms[1].clone();
    row.net = Some(smolvm::core::egress::NetworkSummary {
        outdated: true,
        ..Default::default()
    });
    assert_eq!(row.net_cell(), "outdated");
}

#[test]
fn the_remap_hint_names_the_keymap_file_in_use() {
    let cfg = tempfile::tempdir().unwrap();
    let env = smolvm::sys::env::Env::from_vars(
        [
            ("HOME", "/home/u".to_string()),
            ("XDG_CONFIG_HOME", cfg.path().display().to_string()),
        ],
        0,
    );
    let mut a = smolvm::tui::new_app(&env, false);
    a.update(Input::Resize(160, 48));
    a.update(key('?'));
    let want = format!("{}/smolvm/keymap.toml", cfg.path().display());
    assert!(render(&a).contains(&want), "{}", render(&a));
    let env = smolvm::sys::env::Env::from_vars([("HOME", "/home/u")], 0);
    let mut a = smolvm::tui::new_app(&env, false);
    a.update(Input::Resize(160, 48));
    a.update(key('?'));
    assert!(render(&a).contains("remap in ~/.config/smolvm/keymap.toml"));
}

#[test]
fn the_footer_and_header_drop_whole_items_at_80_columns() {
    let a = full_app(80, 24);
    let rows = screen_rows(&a);
    let footer = rows.last().unwrap().trim_end();
    assert!(footer.starts_with("? help  q quit"), "{footer}");
    // Every item shown is whole: the key and its description.
    let hints = [
        "? help",
        "q quit",
        "m mouse",
        "n start preset",
        "s stop",
        "d delete",
        "l logs",
        "y copy SSH command",
        "Space mark",
        "/ filter",
        "p prune caches",
        "c cleanup",
        ": command palette",
    ];
    let mut rest = footer.to_string();
    for h in hints {
        rest = rest.replacen(h, "", 1);
    }
    assert!(
        rest.trim().is_empty(),
        "cut item in the footer: {footer:?} leaves {rest:?}"
    );
    let line2 = rows[1].trim_end();
    assert!(
        !line2.ends_with("firecrack") && line2.contains("doctor: 2 OK · 2 WARN"),
        "{line2}"
    );
    assert!(
        line2.ends_with("2 WARN") || line2.ends_with(')') || line2.ends_with("fixes"),
        "{line2}"
    );
}

/// The header's second line names the state database the VMs were read from and the
/// images root the Images pane lists (the home as `~`), at the right end; cut with `…`
/// when narrow, and left out first at 80 columns when it does not fit.
#[test]
fn the_header_names_the_state_database_and_images_root_it_reads() {
    let line2 = |a: &App| screen_rows(a)[1].trim_end().to_string();
    for (w, h) in [(120u16, 36u16), (200, 50)] {
        let a = full_app(w, h);
        let l = line2(&a);
        assert!(
            l.ends_with("db ~/.local/state/smolvm/smolvm.db")
                || l.ends_with("db ~/.local/state/smolvm/smolvm.db · images ~/.smolvm/images"),
            "{w}x{h}: {l}"
        );
        // The VM and image counts and doctor's verdict stay.
        assert!(l.starts_with("4 VM(s) · 3 image cache(s)"), "{w}x{h}: {l}");
        assert!(l.contains("doctor: 2 OK · 2 WARN"), "{w}x{h}: {l}");
    }
    let l = line2(&full_app(200, 50));
    assert!(l.ends_with("· images ~/.smolvm/images"), "{l}");
    assert_eq!(l.chars().count(), 200, "right-aligned: {l}");
    // 80 columns with everything: the counts and doctor keep the line; the database goes
    // whole (no piece of it is left).
    let l = line2(&full_app(80, 24));
    assert!(l.contains("doctor: 2 OK · 2 WARN"), "{l}");
    assert!(!l.contains("db ") && !l.contains("smolvm.db"), "{l}");
    // 80 columns with room: shown, cut with `…` where it must be, its end kept.
    let mut a = full_app(80, 24);
    let mut s = full_readout();
    s.slow = None;
    s.state = source(
        "/home/u/.local/state/a-rather-long-folder-name/smolvm/smolvm.db",
        true,
    );
    a.update(Input::Msg(Msg::Readout(Box::new(s))));
    a.data.slow = None;
    let l = line2(&a);
    assert!(l.starts_with("4 VM(s)"), "{l}");
    assert!(l.contains("db ~/.local/") && l.contains('…'), "{l}");
    assert!(l.ends_with("smolvm.db"), "{l}");
    assert!(l.chars().count() <= 80, "{l}");
    // No database yet, and a database read that is not where changes go.
    let mut a = full_app(200, 50);
    let mut s = full_readout();
    s.state = source("/home/u/.local/state/smolvm/smolvm.db", false);
    a.update(Input::Msg(Msg::Readout(Box::new(s))));
    assert!(
        line2(&a).contains("db ~/.local/state/smolvm/smolvm.db (none yet)"),
        "{}",
        line2(&a)
    );
    let mut s = full_readout();
    s.state = StateSource {
        db: "/var/lib/smolvm/smolvm.db".into(),
        exists: true,
        writes_to: Some("/home/u/.local/state/smolvm/smolvm.db".into()),
    };
    a.update(Input::Msg(Msg::Readout(Box::new(s))));
    assert!(
        line2(&a).contains(
            "db /var/lib/smolvm/smolvm.db (changes go to ~/.local/state/smolvm/smolvm.db)"
        ),
        "{}",
        line2(&a)
    );
    // While a task runs or a message shows, the database stays named.
    let mut a = full_app(120, 36);
    with_tasks(&mut a);
    let l = line2(&a);
    assert!(l.contains("task(s) running"), "{l}");
    assert!(
        l.ends_with("db ~/.local/state/smolvm/smolvm.db · images ~/.smolvm/images"),
        "{l}"
    );
}

// The header at the three sizes an operator uses: what goes, what is cut.
#[test]
fn header_names_its_sources_80x24_120x36_200x50() {
    for (w, h) in [(80u16, 24u16), (120, 36), (200, 50)] {
        let a = full_app(w, h);
        let rows = screen_rows(&a);
        insta::assert_snapshot!(format!("header_{w}x{h}"), rows[..2].join("\n"));
    }
}

#[test]
fn an_empty_no_color_keeps_colour() {
    for (value, color) in [("", true), ("1", false)] {
        let env = smolvm::sys::env::Env::from_vars(
            [
                ("HOME", "/home/u"),
                ("XDG_CONFIG_HOME", "/nonexistent"),
                ("NO_COLOR", value),
            ],
            0,
        );
        assert_eq!(
            smolvm::tui::new_app(&env, false).theme.color,
            color,
            "NO_COLOR={value:?}"
        );
    }
}

// ---- Images pane: pull, remove, inspect (#14 item 6) ----------------------------------

/// The worker's inspection answering the newest `i`.
fn inspect_answer(a: &mut App) {
    let generation = a.data.inspect_generation();
    a.update(Input::Msg(Msg::Inspect {
        generation,
        result: Ok(inspect_fixture()),
    }));
}

#[test]
fn images_pane_pulls_removes_and_inspects_selected_or_marked_rows() {
    let mut a = full_app(160, 48);
    a.update(key('2'));
    // Rows by version: 0.0.12 claude (stale), 0.0.13 codex (kept), 0.1.0 claude (current).
    let fx = a.update(key('u'));
    assert_eq!(
        fx,
        vec![Effect::RunPull {
            task: 1,
            names: vec!["claude-code-amd64-qemu".into()]
        }]
    );
    assert_eq!(a.data.tasks[0].kind, smolvm::tui::app::TaskKind::Pull);
    // Marked rows: each image once.
    a.update(key('2'));
    a.update(key('g'));
    for _ in 0..3 {
        a.update(key(' '));
    }
    assert_eq!(a.images.marks.len(), 3);
    assert!(render(&a).contains("3 marked"));
    let fx = a.update(key('u'));
    assert_eq!(
        fx,
        vec![Effect::RunPull {
            task: 2,
            names: vec!["claude-code-amd64-qemu".into(), "codex-amd64-qemu".into()]
        }]
    );
    assert!(a.images.marks.is_empty());
    // Remove: an old version is prune's, the current one asks, then runs.
    a.update(key('2'));
    a.update(key('g'));
    assert!(a.update(key('d')).is_empty());
    assert!(a.dialog.is_none());
    assert!(
        a.status.as_deref().unwrap_or("").contains("prune (p)"),
        "{:?}",
        a.status
    );
    a.update(key('G'));
    a.update(key('d'));
    let Some(Dialog::Confirm(ConfirmAction::RemoveImages(names))) = &a.dialog else {
        panic!("no confirmation")
    };
    assert_eq!(names, &vec!["claude-code-amd64-qemu".to_string()]);
    assert!(render(&a).contains("Remove 1 cached image(s):"));
    let fx = a.update(key('y'));
    assert_eq!(
        fx,
        vec![Effect::RunRemoveImages {
            task: 3,
            names: vec!["claude-code-amd64-qemu".into()]
        }]
    );
    // Inspect: the dialog waits for the worker's answer, then shows it.
    a.update(key('2'));
    let fx = a.update(key('i'));
    assert_eq!(
        fx,
        vec![Effect::Inspect {
            generation: 1,
            version: "0.1.0".into(),
            name: "claude-code-amd64-qemu".into()
        }]
    );
    assert!(render(&a).contains("reading the manifest"));
    inspect_answer(&mut a);
    let s = render(&a);
    assert!(
        s.contains("Rootfs SHA-256:") && s.contains("used by vm-12345"),
        "{s}"
    );
    a.update(code(KeyCode::Esc));
    assert!(a.dialog.is_none());
}

#[test]
fn readonly_refuses_pull_and_remove_but_inspects() {
    let mut a = readonly_full_app(160, 48);
    a.update(key('2'));
    a.update(key('G'));
    for k in ['u', 'd'] {
        assert!(a.update(key(k)).is_empty(), "{k}");
        assert!(a.dialog.is_none(), "{k}");
        assert!(status(&a).starts_with("read-only mode"));
    }
    for line in ["pull --all", "build codex"] {
        a.update(key(':'));
        typed(&mut a, line);
        assert!(a.update(code(KeyCode::Enter)).is_empty(), "{line}");
        assert!(
            status(&a).starts_with("read-only mode: refusing to"),
            "{line}: {}",
            status(&a)
        );
        assert!(a.data.tasks.is_empty(), "{line}");
        a.update(code(KeyCode::Esc));
    }
    assert!(matches!(&a.update(key('i'))[..], [Effect::Inspect { .. }]));
    let footer = screen_rows(&a).pop().unwrap();
    assert!(
        !footer.contains("pull") && footer.contains("i inspect"),
        "{footer}"
    );
}

#[test]
fn remove_worker_removes_through_core_and_keeps_an_image_held_open() {
    let h = support::Home::new();
    let free = h.cache(&format!("{}/codex-amd64-qemu", support::CURRENT), 100_000);
    let held = h.cache(
        &format!("{}/claude-code-amd64-qemu", support::CURRENT),
        100_000,
    );
    let old = h.cache("0.0.11/codex-amd64-qemu", 100_000);
    let _holder = support::Reap(support::hold_open(&held.join("rootfs.ext4")));
    let env = h.env();
    support::tui::RealWorker::block_on(&env, |mut w| async move {
        let mut a = sized_app();
        let names = vec!["codex-amd64-qemu".to_string(), "claude-code".to_string()];
        let task = a
            .data
            .add_task(smolvm::tui::app::TaskKind::RemoveImages, "rm".into());
        w.run(Effect::RunRemoveImages { task, names });
        w.finish_first_task(&mut a, 30).await;
        let t = &a.data.tasks[0];
        assert_eq!(t.state, TaskState::Failed, "one kept: {t:?}");
        let removed: Vec<&TaskItem> = t.items.iter().filter(|i| i.ok).collect();
        let kept: Vec<&TaskItem> = t.items.iter().filter(|i| !i.ok).collect();
        assert_eq!(removed.len(), 1, "{t:?}");
        assert!(removed[0].name.ends_with("codex-amd64-qemu"), "{t:?}");
        assert_eq!(kept.len(), 1, "{t:?}");
        assert!(kept[0].detail.starts_with("kept: "), "{t:?}");
        assert!(
            t.summary.contains("1 removed") && t.summary.contains("1 kept"),
            "{}",
            t.summary
        );
    });
    assert!(!free.exists());
    assert!(
        held.join("rootfs.ext4").exists(),
        "an image held open was removed"
    );
    assert!(old.exists(), "an old version is prune's, not rm's");
}

/// Run `argv`, a command that fails (exit 1), and the task of `kind` that `run` starts
/// through a real worker in a home of its own: the task fails, and what it says (its first
/// item's detail, else its summary; a `code: ` prefix dropped) is in the command's words.
fn fails_as_the_command(
    argv: &[&str],
    kind: smolvm::core::job::JobKind,
    run: impl FnOnce(u64) -> Effect,
) {
    let h = support::Home::new();
    let out = h.run(argv);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let cli = String::from_utf8_lossy(&out.stderr).to_string();
    let t = run_task(&h.env(), kind, false, run);
    assert_eq!(t.state, TaskState::Failed, "{t:?}");
    let said = t
        .items
        .first()
        .map_or(t.summary.as_str(), |i| i.detail.as_str());
    let message = said
        .split_once(": ")
        .filter(|(code, _)| !code.contains(' '))
        .map_or(said, |(_, m)| m);
    assert!(!message.is_empty() && cli.contains(message), "{cli}\n{t:?}");
}

/// Run effect `run` of task `task` in a real worker whose cancel for that task came
/// first; the task as it ended.
fn run_cancelled(
    env: smolvm::sys::env::Env,
    kind: smolvm::tui::app::TaskKind,
    run: impl FnOnce(u64) -> Effect,
) -> smolvm::tui::app::Task {
    run_task(&env, kind, true, run)
}

/// A task of `kind` that `run` starts, through a real worker over `env` (cancelled
/// before it starts with `cancel_first`), until it ends: the task as it ended.
fn run_task(
    env: &smolvm::sys::env::Env,
    kind: smolvm::tui::app::TaskKind,
    cancel_first: bool,
    run: impl FnOnce(u64) -> Effect,
) -> smolvm::tui::app::Task {
    support::tui::RealWorker::block_on(env, |mut w| async move {
        let mut a = sized_app();
        let task = a.data.add_task(kind, "t".into());
        if cancel_first {
            w.run(Effect::Cancel { task });
        }
        w.run(run(task));
        w.finish_first_task(&mut a, 30).await;
        a.data.tasks[0].clone()
    })
}

/// `network set` on a stopped sandbox says when its policy takes hold in the same words
/// from both faces (core's `NetworkReport::when_applied`): the command's line and the
/// dashboard task's summary.
#[test]
fn network_set_says_when_it_applies_the_same_from_both_faces() {
    use support::cleanup::{insert_rows, Row};
    let h = support::Home::new();
    insert_rows(&h.data, &h.sockets(), &[Row::stopped("vm-net1")]);
    let out = h.run(&["sandbox", "network", "set", "vm-net1", "--internet", "off"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let cli = String::from_utf8_lossy(&out.stdout).to_string();
    let t = run_task(
        &h.env(),
        smolvm::tui::app::TaskKind::Network,
        false,
        |task| Effect::RunNetwork {
            task,
            id: vid("vm-net1"),
            policy: Policy::new(Some(Mode::Open), &[], &[]).unwrap(),
            publish_ssh: false,
        },
    );
    assert_eq!(t.state, TaskState::Done, "{t:?}");
    assert_eq!(t.summary, "vm-net1: internet open (applied when it starts)");
    assert!(
        cli.contains("not running (stopped): applied when it starts"),
        "{cli}"
    );
}

/// Each cancellable task kind the worker runs stops at its token, before its first item:
/// nothing is removed or deleted, and the task ends Cancelled (not Failed or Done).
#[test]
fn x_stops_each_cancellable_worker_task_before_its_next_item() {
    use smolvm::tui::app::TaskKind;
    let h = support::Home::new();
    let cache = h.cache(&format!("{}/codex-amd64-qemu", support::CURRENT), 1000);
    let old = h.cache("0.0.11", 1000);
    let old_path = old.clone();
    let ids = || vec!["vm-gone-1".to_string(), "vm-gone-2".to_string()];
    let vm_ids = || vec![vid("vm-gone-1"), vid("vm-gone-2")];
    let leftover = h.data.join("disks/vm-gone-9.ext4");
    std::fs::create_dir_all(leftover.parent().unwrap()).unwrap();
    std::fs::write(&leftover, b"0123456789").unwrap();
    let leftover_path = leftover.clone();
    type Run = Box<dyn FnOnce(u64) -> Effect>;
    let cases: Vec<(TaskKind, Run)> = vec![
        (
            TaskKind::Prune,
            Box::new(move |task| Effect::RunPrune {
                task,
                plan: vec![old_path],
            }),
        ),
        (
            TaskKind::RemoveImages,
            Box::new(|task| Effect::RunRemoveImages {
                task,
                names: vec!["codex-amd64-qemu".into()],
            }),
        ),
        (
            TaskKind::DeleteSnapshot,
            Box::new(move |task| Effect::RunDeleteSnapshots { task, ids: ids() }),
        ),
        (
            TaskKind::Stop,
            Box::new(move |task| Effect::RunStop {
                task,
                ids: vm_ids(),
            }),
        ),
        (
            TaskKind::Delete,
            Box::new(move |task| Effect::RunDelete {
                task,
                ids: vm_ids(),
            }),
        ),
        (
            TaskKind::Pause,
            Box::new(move |task| Effect::RunPause {
                task,
                ids: vm_ids(),
                paused: true,
            }),
        ),
        (
            TaskKind::Branch,
            Box::new(move |task| Effect::RunBranch {
                task,
                id: vid("vm-branch"),
                count: 2,
                prefix: None,
            }),
        ),
        (
            TaskKind::Snapshot,
            Box::new(move |task| Effect::RunSnapshot {
                task,
                ids: vm_ids(),
                spec: smolvm::tui::app::SnapshotSpec {
                    id: None,
                    kind: Default::default(),
                    flush: Default::default(),
                    resume_source: false,
                },
            }),
        ),
        (
            TaskKind::Resume,
            Box::new(move |task| Effect::RunPause {
                task,
                ids: vm_ids(),
                paused: false,
            }),
        ),
        (
            TaskKind::Cleanup,
            Box::new(|task| Effect::RunCleanup {
                task,
                prefix: "vm-".into(),
                all: false,
                plan: CleanupPreview::default(),
            }),
        ),
        (
            TaskKind::Pull,
            Box::new(|task| Effect::RunPull {
                task,
                names: vec!["codex-amd64-qemu".into()],
            }),
        ),
        (TaskKind::Pull, Box::new(|task| Effect::RunPullAll { task })),
        (
            TaskKind::Upload,
            Box::new(|task| Effect::RunTransfer {
                task,
                id: vid("vm-gone-1"),
                upload: true,
                local: "/etc/hostname".into(),
                guest: "/tmp/x".into(),
            }),
        ),
        (
            TaskKind::Download,
            Box::new(|task| Effect::RunTransfer {
                task,
                id: vid("vm-gone-1"),
                upload: false,
                local: "/tmp/smolvm-never-written".into(),
                guest: "/etc/hostname".into(),
            }),
        ),
        (
            TaskKind::Start,
            Box::new(|task| Effect::RunStart {
                task,
                spec: support::tui::preset_start("codex", "vm-never", 512),
            }),
        ),
        (
            TaskKind::Clone,
            Box::new(|task| Effect::RunClone {
                task,
                snapshot: "snap-gone".into(),
                count: 2,
            }),
        ),
        (
            TaskKind::Build,
            Box::new(|task| Effect::RunBuild {
                task,
                preset: "codex".into(),
                base: None,
            }),
        ),
        (
            TaskKind::SshWait,
            Box::new(|task| Effect::RunSshWait {
                task,
                id: vid("vm-gone-1"),
            }),
        ),
        (
            TaskKind::Restore,
            Box::new(|task| Effect::RunRestore {
                task,
                snapshot: "snap-gone".into(),
                force: false,
            }),
        ),
        (
            TaskKind::SandboxPrune,
            Box::new(move |task| Effect::RunSandboxPrune {
                task,
                plan: smolvm::core::leftovers::LeftoverPlan {
                    candidates: vec![smolvm::core::leftovers::Leftover {
                        vm_id: "vm-gone-9".into(),
                        path: leftover_path,
                        kind: "disk",
                        size_bytes: 10,
                        retained: false,
                    }],
                    kept: Vec::new(),
                },
            }),
        ),
    ];
    // Every cancellable kind the dashboard runs is here (network and port changes are
    // one step and say so).
    let covered: Vec<TaskKind> = cases.iter().map(|(k, _)| *k).collect();
    for &kind in smolvm::core::job::JobKind::ALL {
        assert_eq!(
            kind.cancellable(),
            covered.contains(&kind),
            "{kind:?}: cancellable but not driven here, or driven but not cancellable"
        );
    }
    let mut wrong = Vec::new();
    for (kind, run) in cases {
        assert!(kind.cancellable(), "{kind:?}");
        let t = run_cancelled(h.env(), kind, run);
        if t.state != TaskState::Cancelled || t.items.iter().any(|i| i.name != "state database") {
            wrong.push(format!("{kind:?}: {t:?}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert!(cache.exists(), "a cancelled image rm removed the image");
    assert!(old.exists(), "a cancelled prune removed a cache");
    assert!(
        leftover.exists(),
        "a cancelled sandbox prune removed a file"
    );
}

// ---- a real worker: progress events reach state ----------------------------------------

/// The dashboard's prune through a real worker: `p`, the preview, then (after `meanwhile`
/// ran) `y`; the task as it ended.
fn prune_through_the_worker(
    env: smolvm::sys::env::Env,
    meanwhile: impl FnOnce(),
) -> smolvm::tui::app::Task {
    let mut meanwhile = Some(meanwhile);
    support::tui::RealWorker::block_on(&env, |mut w| async move {
        let mut a = full_app(160, 48);
        for fx in a.update(key('p')) {
            w.run(fx);
        }
        // Drive the loop by hand until the task finishes.
        let deadline = support::tui::RealWorker::deadline(30);
        loop {
            let msg = w.next_before(deadline).await;
            let is_preview = matches!(msg, Msg::PrunePreview { .. });
            for fx in a.update(Input::Msg(msg)) {
                if !matches!(fx, Effect::Refresh { .. }) {
                    w.run(fx);
                }
            }
            if is_preview {
                let (Some(Dialog::Prune), Preview::Ready(p)) = (&a.dialog, &a.data.prune_preview)
                else {
                    panic!("no preview")
                };
                assert_eq!(p.stale.len(), 2);
                assert_eq!(p.stale[0].0, "~/.smolvm/images/0.0.11/");
                if let Some(f) = meanwhile.take() {
                    f();
                }
                for fx in a.update(key('y')) {
                    w.run(fx);
                }
            }
            if a.data
                .tasks
                .first()
                .is_some_and(|t| t.state != TaskState::Running)
            {
                break;
            }
        }
        a.data.tasks[0].clone()
    })
}

#[test]
fn prune_worker_progress_reaches_state_and_the_caches_go() {
    let h = support::Home::new();
    for v in ["0.0.11", "0.0.12"] {
        h.cache(v, 100_000);
    }
    h.cache(support::CURRENT, 100_000);
    let t = prune_through_the_worker(h.env(), || {});
    assert_eq!(t.state, TaskState::Done, "{t:?}");
    assert_eq!((t.done, t.total), (2, 2));
    assert_eq!(
        t.items,
        vec![
            TaskItem {
                name: "~/.smolvm/images/0.0.11".into(),
                ok: true,
                detail: t.items[0].detail.clone()
            },
            TaskItem {
                name: "~/.smolvm/images/0.0.12".into(),
                ok: true,
                detail: t.items[1].detail.clone()
            },
        ]
    );
    assert!(t.summary.starts_with("reclaimed "), "{}", t.summary);
    assert!(!h.images().join("0.0.11").exists());
    assert!(h.images().join(support::CURRENT).exists());
}

/// What the user confirmed is what goes: a cache that became stale between the preview and
/// `y` stays, and the task says so (the dashboard used to send only a count and prune
/// whatever was stale when it ran).
#[test]
fn prune_removes_the_confirmed_plan_and_keeps_a_cache_stale_since() {
    let h = support::Home::new();
    for v in ["0.0.11", "0.0.12"] {
        h.cache(v, 100_000);
    }
    h.cache(support::CURRENT, 100_000);
    let t = prune_through_the_worker(h.env(), || {
        h.cache("0.0.13", 100_000);
    });
    assert!(
        h.images().join("0.0.13").exists(),
        "an unconfirmed cache went"
    );
    assert!(!h.images().join("0.0.11").exists());
    assert!(!h.images().join("0.0.12").exists());
    assert_eq!(t.state, TaskState::Done, "{t:?}");
    let kept: Vec<&TaskItem> = t.items.iter().filter(|i| !i.ok).collect();
    assert_eq!(kept.len(), 1, "{t:?}");
    assert_eq!(kept[0].name, "~/.smolvm/images/0.0.13");
    assert_eq!(kept[0].detail, "kept: not in the plan you confirmed");
    assert!(
        t.summary.contains("2 removed") && t.summary.contains("1 stale since the preview kept"),
        "{}",
        t.summary
    );
}

// ---- snapshots of every pane and dialog ---------------------------------------------

/// A prune of one cache confirmed and run as task 1: its one item, then its end.
fn prune_task(a: &mut App, item: TaskItem, state: TaskState, summary: &str) {
    a.update(key('p'));
    prune_preview(
        a,
        vec![("~/.smolvm/images/0.0.12/".into(), 412_000_000)],
        412_000_000,
    );
    a.update(key('y'));
    let update = TaskUpdate::Item(item);
    a.update(Input::Msg(Msg::Task { id: 1, update }));
    let update = TaskUpdate::Finished {
        state,
        summary: summary.into(),
        took_ms: 40,
    };
    a.update(Input::Msg(Msg::Task { id: 1, update }));
}

fn with_tasks(a: &mut App) {
    let item = TaskItem {
        name: "~/.smolvm/images/0.0.12".into(),
        ok: true,
        detail: "412 MB".into(),
    };
    prune_task(a, item, TaskState::Done, "reclaimed 412 MB (1 removed)");
    a.update(key('1'));
    a.update(key('n'));
    a.update(code(KeyCode::Enter));
    a.update(Input::Msg(Msg::Task {
        id: 2,
        update: TaskUpdate::Phase(smolvm::tui::data::TaskPhase::Pull {
            name: "image".into(),
            step: smolvm::tui::data::PullStep::Bytes(
                smolvm::core::images::pull::Phase::Download,
                smolvm::core::images::pull::Artifact::Rootfs,
            ),
        }),
    }));
    a.update(Input::Msg(Msg::Task {
        id: 2,
        update: TaskUpdate::Progress {
            done: 45,
            total: 100,
        },
    }));
}

macro_rules! snap_both {
    ($name:ident, $setup:expr) => {
        #[test]
        fn $name() {
            for (w, h) in [(80u16, 24u16), (160, 48)] {
                let mut a = full_app(w, h);
                let setup: &dyn Fn(&mut App) = &$setup;
                setup(&mut a);
                insta::assert_snapshot!(format!("{}_{w}x{h}", stringify!($name)), render(&a));
            }
        }
    };
}

snap_both!(main_full, |_a| {});
snap_both!(main_empty, |a| {
    a.update(Input::Msg(Msg::Readout(Box::new(Readout {
        vms: vec![],
        slow: None,
        errors: vec![],
        vms_error: None,
        state: source("/h/.local/state/smolvm/smolvm.db", false),
        images_root: "/h/.smolvm/images".into(),
        home: "/h".into(),
    }))));
    a.data.images.clear();
    a.data.slow = None;
});
snap_both!(help_vms, |a| {
    a.update(key('?'));
});
snap_both!(help_logs, |a| {
    a.update(key('3'));
    a.update(key('?'));
});
snap_both!(prune_loading, |a| {
    a.update(key('p'));
});
snap_both!(prune_ready, |a| {
    a.update(key('p'));
    let generation = a.data.prune_generation();
    a.update(Input::Msg(Msg::PrunePreview {
        generation,
        result: Ok(PrunePreview {
            stale: vec![
                ("~/.smolvm/images/0.0.12/".into(), 412_000_000),
                ("~/.smolvm/images/0.0.13/".into(), 487_000_000),
            ],
            kept: vec![(
                "~/.smolvm/images/0.0.11/".into(),
                "in use by VM vm-agent-1".into(),
            )],
            total: 899_000_000,
            plan: vec![
                "/home/u/.smolvm/images/0.0.12".into(),
                "/home/u/.smolvm/images/0.0.13".into(),
            ],
        }),
    }));
});
snap_both!(prune_clean, |a| {
    a.update(key('p'));
    prune_preview(a, vec![], 0);
});
snap_both!(cleanup_dialog, |a| {
    cleanup_preview(
        a,
        vec!["tap tap7".into(), "socket /tmp/qmp-vm-gone.sock".into()],
    );
});
snap_both!(delete_dialog, |a| {
    a.update(key(' '));
    a.update(key(' '));
    a.update(key('d'));
});
snap_both!(start_form_error, |a| {
    a.update(key('n'));
    a.update(code(KeyCode::Tab));
    typed(a, "Bad!");
});
snap_both!(palette, |a| {
    a.update(key(':'));
    typed(a, "cleanup agent-");
});
snap_both!(filter_vms, |a| {
    a.update(key('/'));
    typed(a, "agent");
});
snap_both!(tasks_running, with_tasks);
snap_both!(logs_search, |a| {
    a.update(key('l'));
    let lines: Vec<String> = (0..60)
        .map(|i| {
            if i % 20 == 5 {
                format!("[{i:3}] kernel: virtio_net ERROR link down")
            } else {
                format!("[{i:3}] boot message")
            }
        })
        .collect();
    vm_log(a, lines);
    a.update(key('/'));
    typed(a, "error");
    a.update(code(KeyCode::Enter));
});
snap_both!(doctor_dialog, |a| {
    a.update(key(':'));
    typed(a, "doctor");
    a.update(code(KeyCode::Enter));
});
snap_both!(quit_confirm, |a| {
    with_tasks(a);
    a.update(key('q'));
});

snap_both!(inspect_dialog, |a| {
    a.update(key('2'));
    a.update(key('G'));
    a.update(key('i'));
    inspect_answer(a);
});

snap_both!(images_marked_remove, |a| {
    a.update(key('2'));
    a.update(key('G'));
    a.update(key(' '));
    a.update(key('k'));
    a.update(key('d'));
});

// The VMs pane at 120 columns shows the network columns (RSS is left out); a running VM
// whose policy the guard does not enforce says so.
#[test]
fn vms_pane_network_columns_120x30() {
    let mut a = full_app(120, 30);
    let mut s = full_readout();
    s.vms[0].info.stale = false;
    s.vms[0].net = Some(NetworkSummary {
        unguarded: true,
        ..NetworkSummary::default()
    });
    a.update(Input::Msg(Msg::Readout(Box::new(s))));
    insta::assert_snapshot!("vms_pane_network_columns_120x30", render(&a));
}

// ---- screenshots for the README ---------------------------------------------------------

/// Renders the main screen, the cleanup dialog and a running start to PNG (in colour) and
/// checks each image; with `SMOLVM_SCREENSHOTS=<dir>` (scripts/screenshots.sh) it also
/// writes them there.
#[test]
fn screenshots_render_to_png() {
    let dir = std::env::var_os("SMOLVM_SCREENSHOTS").map(std::path::PathBuf::from);
    type Setup<'a> = &'a dyn Fn(&mut App);
    let shots: [(&str, Setup); 3] = [
        ("main", &|a: &mut App| {
            a.update(key('l'));
            let lines = vec![
                "[    0.000000] Linux version 6.1.0 (smolvm microvm) #1 SMP".to_string(),
                "[    0.412000] virtio_blk virtio0: [vda] 16777216 512-byte logical blocks".into(),
                "[    0.530000] EXT4-fs (vda): mounted filesystem with ordered data mode".into(),
                "[    1.910000] smolvm: network 172.16.0.2/24 via 172.16.0.1".into(),
                "SmolVM init complete: IP=172.16.0.2, SSH listening on port 22".into(),
            ];
            vm_log(a, lines);
            a.update(key('1'));
        }),
        ("cleanup-dialog", &|a: &mut App| {
            cleanup_preview(
                a,
                vec![
                    "tap tap7".into(),
                    "nft ip smolvm_nat dnat_ext { 2207 }".into(),
                ],
            );
        }),
        ("start-progress", &with_tasks),
    ];
    for (name, setup) in shots {
        let mut a = App::new(Keymap::defaults(), Theme::defaults(false), false);
        a.update(Input::Resize(160, 48));
        a.update(Input::Msg(Msg::Readout(Box::new(full_readout()))));
        setup(&mut a);
        let mut t = Terminal::new(TestBackend::new(160, 48)).unwrap();
        t.draw(|f| ui::render(f, &a)).unwrap();
        let Some((w, h, png)) = support::screenshot::render_png(t.backend().buffer()) else {
            eprintln!("SKIPPED: DejaVu Sans Mono is not installed (fonts-dejavu-core)");
            return;
        };
        assert!(w >= 160 * 8 && h >= 48 * 16, "{name}: {w}x{h}");
        // Every character drawn has a glyph (the spinner's braille once came out as boxes).
        let missing = support::screenshot::missing_glyphs(t.backend().buffer()).unwrap();
        assert!(missing.is_empty(), "{name}: no glyph for {missing:?}");
        let decoded = png::Decoder::new(std::io::Cursor::new(&png))
            .read_info()
            .unwrap();
        assert_eq!((decoded.info().width, decoded.info().height), (w, h));
        assert!(
            png.len() > 20_000,
            "{name}: suspiciously empty image ({} bytes)",
            png.len()
        );
        support::screenshot::save(dir.as_deref(), name, &png);
    }
}

// ---- the copied SSH command is the one `sandbox ssh` runs ------------------------------

#[test]
fn the_copied_ssh_command_is_the_clis_and_names_the_key() {
    use support::cleanup::{insert_rows, Row};
    let h = support::Home::new();
    let sockets = h.sockets();
    let (row, _vmm) = Row::live(&sockets, "vm-ssh", ("tap7", "172.16.0.7", 2207));
    insert_rows(&h.data, &sockets, &[row]);
    // An `ssh` first on PATH that prints the arguments it was given, one per line.
    let bin = h.tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("ssh"), "#!/bin/sh\nprintf '%s\\n' \"$@\"\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("ssh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut vars = h.env_vars();
    let path =
        std::env::join_paths(std::iter::once(bin.clone()).chain(std::env::split_paths(&vars[0].1)))
            .unwrap();
    vars[0] = ("PATH", path);

    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("smolvm"))
        .env_clear()
        .envs(vars.iter().cloned())
        .args(["sandbox", "ssh", "vm-ssh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
    let argv: Vec<String> = support::stdout(&out).lines().map(String::from).collect();
    let cli = std::iter::once("ssh".to_string())
        .chain(argv.iter().map(|a| smolvm::core::lifecycle::shell_quote(a)))
        .collect::<Vec<_>>()
        .join(" ");

    let env = smolvm::sys::env::Env::from_vars(
        vars.iter().map(|(k, v)| (k.to_string(), v.clone())),
        nix::unistd::geteuid().as_raw(),
    );
    let snap = smolvm::tui::data::load(
        &smolvm::core::context::Context::local(&env),
        &mut Default::default(),
        false,
    );
    let mut a = app();
    a.update(Input::Resize(160, 48));
    a.update(Input::Msg(Msg::Readout(Box::new(snap))));
    assert_eq!(a.selected_vm().map(|v| v.info.id.as_str()), Some("vm-ssh"));
    let fx = a.update(key('y'));
    let [Effect::Copy(copied)] = &fx[..] else {
        panic!("no copy: {fx:?}")
    };
    assert_eq!(
        copied, &cli,
        "the dashboard copies another command than `sandbox ssh` runs"
    );
    let key_path = h.home.join(".smolvm/keys/id_ed25519");
    assert!(
        copied.contains(&format!("-i {}", key_path.display())),
        "{copied}"
    );
    assert!(copied.ends_with("root@172.16.0.7"), "{copied}");
}

// ---- start limits: core's, word for word in the CLI and the form -----------------------

#[test]
fn a_bad_start_value_gets_the_same_message_from_the_cli_and_the_form() {
    let h = support::Home::new();
    // (form field, CLI flag, bad value)
    let cases = [
        (2, "--memory", "99"),
        (2, "--memory", "16385"),
        (2, "--memory", "lots"),
        (3, "--cpus", "0"),
        (3, "--cpus", "33"),
        (4, "--disk-size", "100"),
        (4, "--disk-size", "-5"),
    ];
    for (field, flag, value) in cases {
        let mut a = full_app(160, 48);
        a.update(key('n'));
        for _ in 0..field {
            a.update(code(KeyCode::Tab));
        }
        for _ in 0..8 {
            a.update(code(KeyCode::Backspace));
        }
        typed(&mut a, value);
        let Some(Dialog::Start(f)) = &a.dialog else {
            panic!("no start form")
        };
        let form = smolvm::tui::app::field_errors(f)[field]
            .clone()
            .unwrap_or_else(|| panic!("the form accepts {flag} {value}"));
        assert!(
            a.update(code(KeyCode::Enter)).is_empty(),
            "submitted {value}"
        );
        for cmd in [
            vec!["codex", "start"],
            vec!["sandbox", "create", "--preset", "codex"],
        ] {
            let out = h
                .smolvm()
                .args(&cmd)
                .arg(format!("{flag}={value}"))
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(2), "{cmd:?} {flag}={value}");
            let err = support::stderr(&out);
            assert!(
                err.contains(&form),
                "{cmd:?} {flag}={value}: the CLI says\n{err}\nthe form says\n{form}"
            );
        }
    }
}

/// The start form's egress fields say what `--internet`, `--allow-cidr` and
/// `--allow-domain` say, word for word (both are core's `Policy::new`).
#[test]
fn a_bad_egress_policy_gets_the_same_message_from_the_cli_and_the_start_form() {
    let h = support::Home::new();
    // (mode: Left presses from open, ranges, names)
    let cases: [(usize, &str, &str); 5] = [
        (1, "10.0.0.1/24", ""),
        (1, "169.254.169.254", ""),
        (1, "", ""),
        (1, "", "*.com"),
        (2, "8.8.8.8", ""),
    ];
    for (lefts, cidrs, names) in cases {
        let mut a = full_app(160, 48);
        a.update(key('n'));
        for _ in 0..7 {
            a.update(code(KeyCode::Tab));
        }
        for _ in 0..lefts {
            a.update(code(KeyCode::Left));
        }
        a.update(code(KeyCode::Tab));
        typed(&mut a, cidrs);
        a.update(code(KeyCode::Tab));
        typed(&mut a, names);
        let Some(Dialog::Start(f)) = &a.dialog else {
            panic!("no start form")
        };
        let mode = f.egress.mode;
        let form = smolvm::tui::app::field_errors(f)[smolvm::tui::app::Field::Internet as usize]
            .clone()
            .unwrap_or_else(|| panic!("the form accepts {mode} {cidrs} {names}"));
        assert!(a.update(code(KeyCode::Enter)).is_empty(), "submitted");
        let mut flags = vec!["--internet".to_string(), mode.to_string()];
        for c in smolvm::tui::app::egress_items(cidrs) {
            flags.extend(["--allow-cidr".to_string(), c]);
        }
        for d in smolvm::tui::app::egress_items(names) {
            flags.extend(["--allow-domain".to_string(), d]);
        }
        for cmd in [
            vec!["codex", "start"],
            vec!["sandbox", "create", "--preset", "codex"],
        ] {
            let out = h.smolvm().args(&cmd).args(&flags).output().unwrap();
            assert_eq!(out.status.code(), Some(2), "{cmd:?} {flags:?}");
            let err = support::stderr(&out);
            assert!(
                err.contains(&form),
                "{cmd:?} {flags:?}: the CLI says\n{err}\nthe form says\n{form}"
            );
        }
    }
}

// ---- VM detail view and VM actions ----------------------------------------------------

/// The detail view of vm-agent-1, its detail and env keys reported.
fn open_detail(a: &mut App) -> Vec<Effect> {
    a.update(key('j')); // vm-agent-1
    let fx = a.update(code(KeyCode::Enter));
    a.update(Input::Msg(Msg::Detail {
        id: vid("vm-agent-1"),
        generation: a.data.detail_gen.newest(),
        result: Ok(Box::new(detail_fixture())),
    }));
    a.update(Input::Msg(Msg::EnvKeys {
        id: vid("vm-agent-1"),
        generation: a.data.env_gen.newest(),
        result: Ok(vec!["ANTHROPIC_API_KEY".into(), "GITHUB_TOKEN".into()]),
    }));
    fx
}

#[test]
fn a_shadowed_forward_is_marked_in_the_detail_view() {
    let mut a = full_app(160, 48);
    a.update(key('j'));
    a.update(code(KeyCode::Enter));
    let mut d = detail_fixture();
    d.ports = Ok(vec![
        (8080, 80, None),
        (18022, 22, Some("python3 (pid 4242)".into())),
    ]);
    a.update(Input::Msg(Msg::Detail {
        id: vid("vm-agent-1"),
        generation: a.data.detail_gen.newest(),
        result: Ok(Box::new(d)),
    }));
    let screen = render(&a);
    let line = |needle: &str| {
        screen
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle:?} not on screen:\n{screen}"))
            .to_string()
    };
    assert!(line("Forwarded ports (2)").contains("Forwarded ports (2)"));
    assert!(!line("127.0.0.1:8080 → 80").contains("shadowed"));
    assert!(line("127.0.0.1:18022 → 22")
        .contains("shadowed by python3 (pid 4242): its local clients reach this sandbox"));
}

snap_both!(vm_detail, |a| {
    open_detail(a);
});
// Scrolled to its end: the egress part (policy, SSH, guard, traffic, the last refused
// destinations) and the snapshots.
snap_both!(vm_detail_network, |a| {
    open_detail(a);
    a.update(key('G'));
});
snap_both!(restore_confirm, |a| {
    open_detail(a);
    a.update(key('r'));
});
snap_both!(vm_detail_loading, |a| {
    a.update(key('j'));
    a.update(code(KeyCode::Enter));
});
snap_both!(snapshot_form, |a| {
    a.update(key('j'));
    a.update(key('S'));
    typed(a, "snap-1");
    a.update(code(KeyCode::Tab));
    a.update(key(' '));
});
snap_both!(port_form_error, |a| {
    a.update(key('j'));
    a.update(key('e'));
    typed(a, "8080:80");
    a.update(code(KeyCode::Enter));
    a.update(Input::Msg(Msg::Task {
        id: 1,
        update: TaskUpdate::Finished {
            state: TaskState::Failed,
            summary: "Host port 8080 is already forwarded to port 80 of sandbox 'vm-12345'".into(),
            took_ms: 3,
        },
    }));
});
snap_both!(env_form_typing, |a| {
    a.update(key('j'));
    a.update(key('E'));
    typed(a, "API_KEY");
    a.update(code(KeyCode::Tab));
    typed(a, "sk-secret-never-drawn");
});
snap_both!(port_form_typing, |a| {
    a.update(key('j'));
    a.update(key('e'));
    typed(a, "99999");
});
snap_both!(upload_form, |a| {
    a.update(key('j'));
    a.update(key('U'));
    typed(a, "/nonexistent-dir-for-snapshot/");
    tab_complete(a);
});
snap_both!(start_form_attach, |a| {
    a.update(key('n'));
    for _ in 0..5 {
        a.update(code(KeyCode::Tab));
    }
    typed(a, "/nonexistent-host-dir");
    for _ in 0..6 {
        a.update(code(KeyCode::Tab));
    }
    a.update(key(' '));
});
// Restricted with a range that does not start at its first address: SmolVM's message as
// you type, under the lists.
snap_both!(start_form_egress_error, |a| {
    a.update(key('n'));
    for _ in 0..7 {
        a.update(code(KeyCode::Tab));
    }
    a.update(code(KeyCode::Left)); // restricted
    a.update(code(KeyCode::Tab));
    typed(a, "10.0.0.1/24");
    a.update(code(KeyCode::Tab));
    typed(a, "api.openai.com");
});
snap_both!(start_form_egress, |a| {
    a.update(key('n'));
    for _ in 0..7 {
        a.update(code(KeyCode::Tab));
    }
    a.update(code(KeyCode::Left)); // restricted
    a.update(code(KeyCode::Tab));
    a.update(code(KeyCode::Tab));
    typed(a, "api.anthropic.com, *.npmjs.org");
    a.update(code(KeyCode::Tab));
    a.update(key(' '));
});
snap_both!(start_form_writable, |a| {
    a.update(key('n'));
    for _ in 0..5 {
        a.update(code(KeyCode::Tab));
    }
    typed(a, "/tmp");
    a.update(code(KeyCode::Tab));
    a.update(key(' '));
});

/// An app with the fixture VMs and a user keymap (as `~/.config/smolvm/keymap.toml`).
fn app_with_keymap(text: &str, w: u16, h: u16) -> App {
    let km = Keymap::with_user(text, "keymap.toml");
    assert!(km.problems.is_empty(), "{:?}", km.problems);
    let mut a = App::new(km, Theme::defaults(true), false);
    a.update(Input::Resize(w, h));
    a.update(Input::Msg(Msg::Readout(Box::new(full_readout()))));
    a
}

/// Backspace and Delete in a form's text field are the keymap's `[form]` `delete_back` and
/// `delete_forward`: rebound, the new keys delete and the old ones no longer do (here in
/// the VMs filter, typed as the user types it).
#[test]
fn deleting_in_a_form_field_follows_the_keymap() {
    fn edit(a: &mut App, keys: &[Input]) -> String {
        a.vms.filter.clear();
        a.update(key('/'));
        typed(a, "abc");
        a.update(code(KeyCode::Left));
        for k in keys {
            a.update(k.clone());
        }
        let text = a.vms.filter.clone();
        a.update(code(KeyCode::Esc));
        text
    }
    let (back, del) = (code(KeyCode::Backspace), code(KeyCode::Delete));
    // Defaults: Backspace deletes before the cursor, Delete at it (so do Ctrl-H and Ctrl-D).
    let mut a = full_app(160, 48);
    assert_eq!(edit(&mut a, std::slice::from_ref(&back)), "ac");
    assert_eq!(edit(&mut a, &[back.clone(), del.clone()]), "a");
    assert_eq!(edit(&mut a, &[ctrl('h'), ctrl('d')]), "a");
    // Rebound: Ctrl-H deletes back, Backspace deletes forward, Delete is bound to nothing.
    let mut a = app_with_keymap(
        "[form]\ndelete_back = [\"ctrl-h\"]\ndelete_forward = [\"backspace\"]\n",
        160,
        48,
    );
    assert_eq!(edit(&mut a, std::slice::from_ref(&back)), "ab");
    assert_eq!(edit(&mut a, std::slice::from_ref(&del)), "abc");
    assert_eq!(edit(&mut a, &[ctrl('h')]), "ac");
    assert_eq!(edit(&mut a, &[ctrl('d')]), "abc");
    // The cleanup dialog's prefix field follows the same keys.
    let cleanup_prefix = |a: &mut App, k: Input| -> String {
        a.update(key('c'));
        typed(a, "x");
        a.update(k);
        let text = match &a.dialog {
            Some(Dialog::Cleanup(d)) => d.prefix.lines().join(""),
            _ => panic!("no cleanup dialog"),
        };
        a.update(code(KeyCode::Esc));
        text
    };
    let start = {
        let mut a = full_app(160, 48);
        a.update(key('c'));
        let p = match &a.dialog {
            Some(Dialog::Cleanup(d)) => d.prefix.lines().join(""),
            _ => panic!("no cleanup dialog"),
        };
        p
    };
    let mut a = full_app(160, 48);
    assert_eq!(cleanup_prefix(&mut a, back.clone()), start);
    let mut a = app_with_keymap(
        "[form]\ndelete_back = [\"ctrl-h\"]\ndelete_forward = [\"backspace\"]\n",
        160,
        48,
    );
    assert_eq!(cleanup_prefix(&mut a, back.clone()), format!("{start}x"));
    assert_eq!(cleanup_prefix(&mut a, ctrl('h')), start);
}

#[test]
fn confirm_dialogs_read_their_keys_from_the_keymap() {
    // Defaults: `y` confirms a delete, `n`/`Esc` cancel, and the buttons say so. Enter
    // never confirms a destructive dialog (`d` then a habitual Enter must not lose a VM).
    let mut a = full_app(160, 48);
    a.update(key('d'));
    assert!(
        render(&a).contains("[y] delete   [n/Esc] cancel"),
        "{}",
        render(&a)
    );
    assert!(a.update(code(KeyCode::Enter)).is_empty());
    assert!(a.dialog.is_some(), "Enter confirmed a delete");
    a.update(key('n'));
    assert!(a.dialog.is_none());
    // Not even where the keymap binds Enter there.
    let mut a = app_with_keymap("[dialog]\nconfirm = [\"enter\"]\n", 160, 48);
    a.update(key('d'));
    assert!(a.update(code(KeyCode::Enter)).is_empty());
    assert!(a.dialog.is_some(), "a keymap's Enter confirmed a delete");

    let mut a = app_with_keymap(
        "[dialog]\nconfirm = [\"ctrl-y\"]\nclose = [\"q\"]\n",
        160,
        48,
    );
    a.update(key('d'));
    a.update(key('q'));
    assert!(a.dialog.is_none(), "the rebound close key cancels");
    a.update(key('d'));
    assert!(matches!(
        a.dialog,
        Some(Dialog::Confirm(ConfirmAction::Delete(_)))
    ));
    let screen = render(&a);
    assert!(screen.contains("[Ctrl-y] delete   [q] cancel"), "{screen}");
    // `y`, `Enter`, `n` and `Esc` no longer answer it.
    for k in [key('y'), code(KeyCode::Enter), key('n'), code(KeyCode::Esc)] {
        assert!(a.update(k).is_empty());
        assert!(a.dialog.is_some(), "the dialog is still open");
    }
    assert_eq!(
        a.update(ctrl('y')),
        vec![Effect::RunDelete {
            task: 1,
            ids: vec![vid("vm-12345")]
        }]
    );

    // The prune preview confirms itself with the same keys.
    a.update(key('p'));
    prune_preview(&mut a, vec![("~/.smolvm/images/0.0.12/".into(), 1)], 1);
    assert!(render(&a).contains("[Ctrl-y] prune   [q] cancel"));
    assert!(a.update(key('y')).is_empty());
    assert!(matches!(
        a.update(ctrl('y')).as_slice(),
        [Effect::RunPrune { .. }]
    ));
}

#[test]
fn the_detail_view_reads_its_keys_from_the_keymap() {
    let mut a = app_with_keymap(
        "[detail]\nclose = [\"h\"]\nrestore = [\"R\"]\ndelete_snapshot = [\"X\"]\nnext_snapshot = [\"right\"]\ndown = [\"J\"]\n",
        200,
        48,
    );
    open_detail(&mut a);
    let screen = render(&a);
    assert!(
        screen.contains(" h back · J/k scroll · → choose snapshot · R restore · X delete · "),
        "{screen}"
    );
    // Small enough to scroll.
    a.update(Input::Resize(80, 24));
    assert!(render(&a).contains(" h · →/R/X snapshots · "));
    // The old keys do nothing here.
    for k in [key('q'), key('r'), key('x'), code(KeyCode::Tab), key('j')] {
        assert!(a.update(k).is_empty());
        assert!(a.dialog.is_none());
    }
    let d = a.detail.as_ref().expect("detail still open");
    assert_eq!((d.offset, d.snapshot), (0, 0));
    a.update(key('J'));
    assert_eq!(a.detail.as_ref().unwrap().offset, 1);
    a.update(code(KeyCode::Right));
    assert_eq!(a.detail.as_ref().unwrap().snapshot, 1);
    a.update(key('R'));
    assert!(matches!(
        a.dialog,
        Some(Dialog::Confirm(ConfirmAction::Restore { ref snapshot, .. })) if snapshot == "snap-disk"
    ));
    a.update(code(KeyCode::Esc));
    a.update(key('X'));
    assert!(matches!(
        a.dialog,
        Some(Dialog::Confirm(ConfirmAction::DeleteSnapshots(_)))
    ));
    a.update(code(KeyCode::Esc));
    a.update(key('h'));
    assert!(a.detail.is_none(), "the rebound close key closes the view");
}

/// The forms and prompts read `[form]`: a user who rebinds submit, cancel and the next
/// field gets those keys in every form (and the hints say so); Enter, Esc and Tab are
/// then the fields' own.
#[test]
fn forms_and_prompts_read_their_keys_from_the_keymap() {
    let mut a = app_with_keymap(
        "[form]\nconfirm = [\"ctrl-s\"]\nclose = [\"ctrl-g\"]\nnext_field = [\"ctrl-n\"]\n",
        160,
        48,
    );
    a.update(key('n'));
    let screen = render(&a);
    assert!(
        screen.contains("[Ctrl-n] field  [←→] choose  [Ctrl-s] start  [Ctrl-g] cancel"),
        "{screen}"
    );
    // The old keys: Enter does not submit, Esc does not cancel, Tab does not move.
    for k in [code(KeyCode::Enter), code(KeyCode::Esc), code(KeyCode::Tab)] {
        assert!(a.update(k).is_empty());
    }
    let Some(Dialog::Start(f)) = &a.dialog else {
        panic!("the start form closed")
    };
    assert_eq!(f.field, smolvm::tui::app::Field::Image);
    a.update(ctrl('n'));
    let Some(Dialog::Start(f)) = &a.dialog else {
        panic!("the start form closed")
    };
    assert_eq!(f.field, smolvm::tui::app::Field::Name);
    assert!(matches!(
        a.update(ctrl('s')).as_slice(),
        [Effect::RunStart { .. }]
    ));
    assert!(a.dialog.is_none());

    // A VM form: the snapshot form submits on the rebound key only.
    a.update(key('1'));
    a.update(key('S'));
    assert!(render(&a).contains("[Ctrl-n] field  [←→] toggle  [Ctrl-s] snapshot  [Ctrl-g] cancel"));
    a.update(ctrl('n'));
    assert!(a.update(code(KeyCode::Enter)).is_empty());
    assert!(matches!(a.dialog, Some(Dialog::Snapshot(_))));
    a.update(ctrl('g'));
    assert!(a.dialog.is_none(), "the rebound close key cancels");

    // The filter prompt: Esc no longer closes it, the rebound key does (keeping nothing
    // typed after it).
    a.update(key('/'));
    a.update(code(KeyCode::Esc));
    assert!(matches!(a.dialog, Some(Dialog::Filter(_))));
    assert!(render(&a).contains("Ctrl-s keep · Ctrl-g close"));
    typed(&mut a, "agent");
    a.update(ctrl('s'));
    assert!(a.dialog.is_none());
    assert_eq!(a.vms.filter, "agent");
}

#[test]
fn the_detail_view_loads_lazily_scrolls_and_acts_on_its_vm() {
    let mut a = full_app(80, 24);
    let fx = open_detail(&mut a);
    assert_eq!(
        fx,
        vec![Effect::LoadDetail {
            id: vid("vm-agent-1"),
            generation: 1,
            env: Some(1),
        }]
    );
    let d = a.detail.as_ref().expect("detail open");
    assert_eq!(d.id, "vm-agent-1");
    let screen = render(&a);
    assert!(
        screen.contains("ANTHROPIC_API_KEY GITHUB_TOKEN"),
        "{screen}"
    );
    // Scrolls to its end (the snapshots).
    a.update(key('G'));
    let screen = render(&a);
    assert!(screen.contains("snap-disk"), "{screen}");
    assert!(screen.contains("(files gone)"), "{screen}");
    // Tab chooses the second snapshot; r restores it over its VM (which exists), resumed,
    // after the typed confirmation.
    a.update(code(KeyCode::Tab));
    assert!(a.update(key('r')).is_empty());
    assert!(matches!(
        a.dialog,
        Some(Dialog::Confirm(ConfirmAction::Restore { ref snapshot, ref vm }))
            if snapshot == "snap-disk" && vm == "vm-agent-1"
    ));
    assert!(render(&a).contains("restore --resume --force"));
    let fx = a.update(key('y'));
    assert_eq!(
        fx,
        vec![Effect::RunRestore {
            task: 1,
            snapshot: "snap-disk".into(),
            force: true,
        }]
    );
    // x deletes it, through the typed confirmation.
    assert!(a.update(key('x')).is_empty());
    assert!(matches!(
        a.dialog,
        Some(Dialog::Confirm(ConfirmAction::DeleteSnapshots(ref s))) if s == &["snap-disk".to_string()]
    ));
    let fx = a.update(key('y'));
    assert_eq!(
        fx,
        vec![Effect::RunDeleteSnapshots {
            task: 2,
            ids: vec!["snap-disk".into()]
        }]
    );
    assert!(a.detail.is_some(), "the view stays under the confirmation");
    // A task's end reloads the detail (not the env keys).
    let fx = a.update(Input::Msg(Msg::Task {
        id: 2,
        update: TaskUpdate::Finished {
            state: TaskState::Done,
            summary: "1 snapshot(s) deleted, 0 failed".into(),
            took_ms: 1,
        },
    }));
    // The detail is read again (a new generation); the env keys are not.
    assert!(fx.contains(&Effect::LoadDetail {
        id: vid("vm-agent-1"),
        generation: 2,
        env: None,
    }));
    // The VMs pane's keys act on this VM: z pauses it.
    let fx = a.update(key('z'));
    assert_eq!(
        fx,
        vec![Effect::RunPause {
            task: 3,
            ids: vec![vid("vm-agent-1")],
            paused: true
        }]
    );
    // A late answer for another VM is dropped.
    a.update(Input::Msg(Msg::EnvKeys {
        id: vid("vm-12345"),
        generation: a.data.env_gen.newest(),
        result: Ok(vec!["OTHER".into()]),
    }));
    assert!(!render(&a).contains("OTHER"));
    // Latest answer wins: the reload's answer (generation 2) shows; the first read's,
    // arriving after it, is dropped.
    for (generation, from) in [(2, "snap-newer"), (1, "snap-older")] {
        let mut d = detail_fixture();
        d.cloned_from = Some(from.into());
        a.update(Input::Msg(Msg::Detail {
            id: vid("vm-agent-1"),
            generation,
            result: Ok(Box::new(d)),
        }));
    }
    let Preview::Ready(shown) = a.data.detail("vm-agent-1") else {
        panic!("no detail")
    };
    assert_eq!(shown.cloned_from.as_deref(), Some("snap-newer"));
    // Esc goes back to the panes.
    a.update(code(KeyCode::Esc));
    assert!(a.detail.is_none());
    assert_eq!(a.focus, Pane::Vms);
}

#[test]
fn pause_resumes_when_every_target_is_paused_and_snapshot_submits_a_spec() {
    use smolvm::core::snapshot::{FlushPolicy, SnapshotType};
    use smolvm::tui::app::SnapshotSpec;
    let mut a = full_app(160, 48);
    // Mark two VMs: pause both.
    a.update(key(' '));
    a.update(key(' '));
    let fx = a.update(key('z'));
    assert_eq!(
        fx,
        vec![Effect::RunPause {
            task: 1,
            ids: vec![vid("vm-12345"), vid("vm-agent-1")],
            paused: true
        }]
    );
    assert!(a.vms.marks.is_empty());
    // Once shown paused, z resumes.
    let mut s = full_readout();
    s.vms[1].info.status = smolvm::core::VmStatus::Paused;
    a.update(Input::Msg(Msg::Readout(Box::new(s))));
    a.update(key('g'));
    a.update(key('j'));
    assert!(render(&a).contains("paused"));
    let fx = a.update(key('z'));
    assert_eq!(
        fx,
        vec![Effect::RunPause {
            task: 2,
            ids: vec![vid("vm-agent-1")],
            paused: false
        }]
    );
    // Snapshot form: an id with several marked VMs is refused in the form.
    a.update(key('g'));
    a.update(key(' '));
    a.update(key(' '));
    a.update(key('S'));
    typed(&mut a, "snap-x");
    assert!(a.update(code(KeyCode::Enter)).is_empty());
    assert!(render(&a).contains("one id names one snapshot"));
    for _ in 0..6 {
        a.update(code(KeyCode::Backspace));
    }
    a.update(code(KeyCode::Tab));
    // A full snapshot needs no flush: the field is skipped, and says why.
    assert!(render(&a).contains("not needed: a full snapshot keeps the guest's memory"));
    a.update(key(' ')); // disk
    a.update(code(KeyCode::Tab));
    // Disk: SmolVM's default policy, its meaning from core; space picks the next one.
    assert!(render(&a).contains("sync the guest's file systems first, or fail"));
    a.update(key(' ')); // best-effort
    assert!(render(&a).contains("try to sync them, go on without"));
    a.update(code(KeyCode::Tab));
    a.update(key(' ')); // resume the source
    let fx = a.update(code(KeyCode::Enter));
    assert_eq!(
        fx,
        vec![Effect::RunSnapshot {
            task: 3,
            ids: vec![vid("vm-12345"), vid("vm-agent-1")],
            spec: SnapshotSpec {
                id: None,
                kind: SnapshotType::Disk,
                flush: FlushPolicy::BestEffort,
                resume_source: true
            }
        }]
    );
    assert!(a.dialog.is_none());
}

/// `b` branches the selected running VM: a form (clones, prefix) checked as you type, then
/// one task running core's `sandbox branch`; a VM that is not running is told so.
#[test]
fn b_branches_a_running_vm_into_clones_through_a_form() {
    let mut a = full_app(120, 36);
    a.update(key('j'));
    assert!(render(&a).contains("vm-agent-1"));
    a.update(key('b'));
    assert!(
        matches!(a.dialog, Some(Dialog::Branch(_))),
        "{}",
        render(&a)
    );
    let r = render(&a);
    assert!(
        r.contains("Branch into clones") && r.contains("vm-agent-1-b-1"),
        "{r}"
    );
    // The count field starts at core's default (`sandbox branch`'s): 0 is refused in the
    // form, nothing runs.
    assert!(render(&a).contains("Clones") && render(&a).contains(" 1"));
    a.update(code(KeyCode::Backspace));
    typed(&mut a, "0");
    assert!(a.update(code(KeyCode::Enter)).is_empty());
    assert!(render(&a).contains("a number from 1 to 64"));
    a.update(code(KeyCode::Backspace));
    typed(&mut a, "3");
    a.update(code(KeyCode::Tab));
    typed(&mut a, "-bad");
    assert!(a.update(code(KeyCode::Enter)).is_empty());
    assert!(render(&a).contains("prefix:"));
    for _ in 0..4 {
        a.update(code(KeyCode::Backspace));
    }
    typed(&mut a, "try");
    let fx = a.update(code(KeyCode::Enter));
    assert_eq!(
        fx,
        vec![Effect::RunBranch {
            task: 1,
            id: vid("vm-agent-1"),
            count: 3,
            prefix: Some("try".into()),
        }]
    );
    assert!(a.dialog.is_none());
    // A prefix is checked as core checks it, for the count asked: 62 characters make
    // ids of 64 for two clones (the form checked it for 64 clones and refused it).
    let long = "p".repeat(62);
    a.update(key('b'));
    a.update(code(KeyCode::Backspace));
    typed(&mut a, "2");
    a.update(code(KeyCode::Tab));
    typed(&mut a, &long);
    let fx = a.update(code(KeyCode::Enter));
    assert!(
        matches!(&fx[..], [Effect::RunBranch { count: 2, prefix: Some(p), .. }] if *p == long),
        "{fx:?}\n{}",
        render(&a)
    );
    // A stopped VM: told, no form.
    a.update(key('g'));
    for _ in 0..4 {
        if status_row_selected(&a, "production-vm") {
            break;
        }
        a.update(key('j'));
    }
    assert!(status_row_selected(&a, "production-vm"));
    a.update(key('b'));
    assert!(a.dialog.is_none());
    assert!(
        status(&a).contains("only a running VM branches"),
        "{}",
        status(&a)
    );
}

/// Whether the VMs pane's selected row is `id`.
fn status_row_selected(a: &App, id: &str) -> bool {
    a.selected_vm().is_some_and(|r| r.info.id.as_str() == id)
}

#[test]
fn the_port_form_checks_as_you_type_waits_for_core_and_keeps_its_error() {
    let mut a = full_app(80, 24);
    a.update(key('j'));
    a.update(key('e'));
    typed(&mut a, "80:x");
    assert!(render(&a).contains("Invalid sandbox port"));
    assert!(a.update(code(KeyCode::Enter)).is_empty());
    for _ in 0..4 {
        a.update(code(KeyCode::Backspace));
    }
    typed(&mut a, "8080:80");
    let fx = a.update(code(KeyCode::Enter));
    assert_eq!(
        fx,
        vec![Effect::RunPort {
            task: 1,
            id: vid("vm-agent-1"),
            close: false,
            host: Some(8080),
            guest: 80
        }]
    );
    // Waiting: keys do nothing but Esc.
    assert!(a.update(code(KeyCode::Enter)).is_empty());
    assert!(render(&a).contains("exposing…"));
    // Core refuses: the form stays with its message.
    a.update(Input::Msg(Msg::Task {
        id: 1,
        update: TaskUpdate::Finished {
            state: TaskState::Failed,
            summary: "Host port 8080 is in use on 127.0.0.1".into(),
            took_ms: 1,
        },
    }));
    assert!(matches!(a.dialog, Some(Dialog::Port(_))));
    assert!(render(&a).contains("Host port 8080 is in use"));
    // Tab switches to close (HOST:GUEST needed); success closes the form.
    a.update(code(KeyCode::Tab));
    let fx = a.update(code(KeyCode::Enter));
    assert!(matches!(
        fx.as_slice(),
        [Effect::RunPort {
            close: true,
            host: Some(8080),
            guest: 80,
            ..
        }]
    ));
    a.update(Input::Msg(Msg::Task {
        id: 2,
        update: TaskUpdate::Finished {
            state: TaskState::Done,
            summary: "closed 127.0.0.1:8080 → vm-agent-1:80".into(),
            took_ms: 1,
        },
    }));
    assert!(a.dialog.is_none());
    assert_eq!(
        a.status.as_deref(),
        Some("closed 127.0.0.1:8080 → vm-agent-1:80")
    );
}

fn the_network_form(a: &App) -> &smolvm::tui::app::NetworkForm {
    match &a.dialog {
        Some(Dialog::Network(f)) => f,
        _ => panic!("no network form"),
    }
}

/// Clear the text field the cursor is in.
fn clear_field(a: &mut App) {
    for _ in 0..80 {
        a.update(code(KeyCode::Backspace));
    }
}

#[test]
fn the_network_form_shows_the_stored_policy_checks_as_you_type_and_waits_for_core() {
    let mut a = full_app(80, 24);
    a.update(key('j')); // vm-agent-1: restricted
    assert!(a.update(key('N')).is_empty());
    let f = the_network_form(&a);
    assert_eq!(f.id, "vm-agent-1");
    assert!(f.live, "running: applied to the next packet");
    assert_eq!(
        f.fields.policy().unwrap(),
        policy(
            Mode::Restricted,
            &["203.0.113.0/24"],
            &["api.anthropic.com", "*.npmjs.org"]
        ),
        "prefilled with what is stored"
    );
    // The metadata range: SmolVM's message, as you type, and Enter does nothing.
    a.update(code(KeyCode::Tab));
    typed(&mut a, ", 169.254.169.254");
    let screen = render(&a);
    assert!(
        screen.contains("Sandbox and link-local addresses cannot be allowed"),
        "{screen}"
    );
    assert!(a.update(code(KeyCode::Enter)).is_empty());
    assert!(the_network_form(&a).pending.is_none());
    // The same message the CLI's Policy::new gives.
    let e = the_network_form(&a).fields.policy().unwrap_err();
    assert_eq!(
        e.message,
        "Sandbox and link-local addresses cannot be allowed; remove those ranges."
    );
    // Fixed: Enter applies it in a task, with SSH publication as the toggle says.
    clear_field(&mut a);
    typed(&mut a, "198.51.100.0/24 203.0.113.9");
    a.update(code(KeyCode::Tab));
    a.update(code(KeyCode::Tab));
    a.update(key(' ')); // publish SSH
    let fx = a.update(code(KeyCode::Enter));
    let want = policy(
        Mode::Restricted,
        &["198.51.100.0/24", "203.0.113.9"],
        &["api.anthropic.com", "*.npmjs.org"],
    );
    assert_eq!(
        fx,
        vec![Effect::RunNetwork {
            task: 1,
            id: vid("vm-agent-1"),
            policy: want,
            publish_ssh: true,
        }]
    );
    assert_eq!(a.data.tasks[0].kind, smolvm::tui::app::TaskKind::Network);
    // Waiting: keys do nothing but Esc.
    assert!(a.update(code(KeyCode::Enter)).is_empty());
    assert!(render(&a).contains("applying…"));
    // Core refuses: the form stays with its message.
    a.update(Input::Msg(Msg::Task {
        id: 1,
        update: TaskUpdate::Finished {
            state: TaskState::Failed,
            summary: "Network restrictions require private networking; a bridge-attached sandbox can only be --internet open.".into(),
            took_ms: 1,
        },
    }));
    assert!(the_network_form(&a).pending.is_none());
    assert!(render(&a).contains("Network restrictions require private"));
    // Off: the lists must go (the CLI's rule), then it applies; success closes the form.
    a.update(code(KeyCode::BackTab));
    a.update(code(KeyCode::BackTab));
    a.update(code(KeyCode::BackTab));
    a.update(code(KeyCode::Left));
    assert_eq!(the_network_form(&a).fields.mode, Mode::Off);
    let e = the_network_form(&a).fields.policy().unwrap_err().message;
    assert!(e.contains("need --internet restricted (not off)"), "{e}");
    assert!(render(&a).contains("--allow-cidr and --allow-domain need"));
    a.update(code(KeyCode::Tab));
    clear_field(&mut a);
    a.update(code(KeyCode::Tab));
    clear_field(&mut a);
    let fx = a.update(code(KeyCode::Enter));
    assert!(
        matches!(fx.as_slice(), [Effect::RunNetwork { task: 2, policy, publish_ssh: true, .. }] if policy.mode == Mode::Off),
        "{fx:?}"
    );
    let fx = a.update(Input::Msg(Msg::Task {
        id: 2,
        update: TaskUpdate::Finished {
            state: TaskState::Done,
            summary:
                "vm-agent-1: internet off (applied now; connections it no longer allows were cut)"
                    .into(),
            took_ms: 1,
        },
    }));
    assert!(a.dialog.is_none());
    assert!(fx.contains(&Effect::Refresh { slow: true }));
    // From the detail view and the palette too; a second VM's id completes.
    a.update(code(KeyCode::Enter));
    assert!(a.detail.is_some());
    a.update(key('N'));
    assert_eq!(the_network_form(&a).id, "vm-agent-1");
    a.update(code(KeyCode::Esc));
    a.update(code(KeyCode::Esc));
    a.update(key(':'));
    typed(&mut a, "network production-vm");
    a.update(code(KeyCode::Enter));
    let f = the_network_form(&a);
    assert_eq!((f.id.as_str(), f.live), ("production-vm", false));
    assert!(f.fields.publish_ssh, "production-vm publishes SSH");
    assert!(render(&a).contains("not running: applied when it starts"));
    a.update(code(KeyCode::Esc));
    a.update(key(':'));
    typed(&mut a, "network nope");
    a.update(code(KeyCode::Enter));
    assert!(render(&a).contains("no VM 'nope'"));
}

/// Submitting the network form runs the same core function as `sandbox network set`: for
/// the same input, the stored policy (smolvm's record, and SmolVM's `internet_settings`) is
/// the same, and `sandbox network show` reports the same.
#[test]
fn the_network_form_stores_what_sandbox_network_set_stores() {
    let h = support::Home::new();
    support::cleanup::insert_stopped(&h, &["vm-by-cli", "vm-by-form"]);
    let out = h
        .smolvm()
        .args([
            "sandbox",
            "network",
            "set",
            "vm-by-cli",
            "--internet",
            "restricted",
        ])
        .args([
            "--allow-cidr",
            "203.0.113.0/24",
            "--allow-cidr",
            "198.51.100.7",
        ])
        .args([
            "--allow-domain",
            "api.openai.com",
            "--allow-domain",
            "*.npmjs.org",
        ])
        .arg("--publish-ssh")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));

    let env = h.env();
    let env = &env;
    support::tui::RealWorker::block_on(env, |mut w| async move {
        let mut a = sized_app();
        let snap = smolvm::tui::data::load(
            &smolvm::core::context::Context::local(env),
            &mut Default::default(),
            false,
        );
        a.update(Input::Msg(Msg::Readout(Box::new(snap))));
        a.update(key('j'));
        assert_eq!(a.selected_vm().unwrap().info.id, "vm-by-form");
        a.update(key('N'));
        assert_eq!(
            the_network_form(&a).fields.mode,
            Mode::Open,
            "nothing stored yet"
        );
        a.update(code(KeyCode::Right)); // off
        a.update(code(KeyCode::Right)); // restricted
        a.update(code(KeyCode::Tab));
        typed(&mut a, "203.0.113.0/24, 198.51.100.7");
        a.update(code(KeyCode::Tab));
        typed(&mut a, "api.openai.com *.npmjs.org");
        a.update(code(KeyCode::Tab));
        a.update(key(' '));
        let fx = a.update(code(KeyCode::Enter));
        assert!(
            matches!(fx.as_slice(), [Effect::RunNetwork { .. }]),
            "{fx:?}"
        );
        for f in fx {
            w.run(f);
        }
        w.finish_first_task(&mut a, 30).await;
        let t = &a.data.tasks[0];
        assert_eq!(t.state, TaskState::Done, "{t:?}");
        assert!(
            t.summary.contains(
                "restricted: 198.51.100.7/32, 203.0.113.0/24, *.npmjs.org, api.openai.com"
            ),
            "{}",
            t.summary
        );
        assert!(a.dialog.is_none(), "the form closes when core is done");
    });

    let show = |id: &str| {
        let out = h.run(&["sandbox", "network", "show", id, "--json"]);
        let mut d = support::json(&out)["data"].clone();
        d.as_object_mut().unwrap().remove("vm_id");
        d
    };
    assert_eq!(show("vm-by-form"), show("vm-by-cli"));
    assert_eq!(show("vm-by-form")["publish_ssh"], true);
    let c = rusqlite::Connection::open(h.data.join("smolvm.db")).unwrap();
    let stored = |id: &str| -> (String, Option<String>) {
        c.query_row(
            "SELECT n.settings, json_extract(v.config, '$.internet_settings')
             FROM smolvm_vm_network n JOIN vms v ON v.id = n.vm_id WHERE n.vm_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    assert_eq!(stored("vm-by-form"), stored("vm-by-cli"));
}

snap_both!(network_form, |a| {
    a.update(key('j'));
    a.update(key('N'));
    a.update(code(KeyCode::Down));
    a.update(code(KeyCode::Down));
    typed(a, " pypi.org");
});
snap_both!(network_form_error, |a| {
    a.update(key('j'));
    a.update(key('N'));
    a.update(code(KeyCode::Tab));
    typed(a, " 10.0.0.1/24");
});

#[test]
fn attach_and_shell_suspend_for_a_running_vm_only_and_come_back_to_it() {
    let mut a = full_app(80, 24);
    // vm-12345 is stale: no session.
    assert!(a.update(key('a')).is_empty());
    assert!(a
        .status
        .as_deref()
        .unwrap_or("")
        .contains("its VMM is gone"));
    a.update(key('j'));
    // First the wait for the guest's sshd, as a task (the dashboard stays live); the
    // session once it is done, and none when it failed or was cancelled.
    assert_eq!(
        a.update(key('a')),
        vec![Effect::RunSshWait {
            task: 1,
            id: vid("vm-agent-1"),
        }]
    );
    assert_eq!(a.data.tasks[0].kind, smolvm::core::job::JobKind::SshWait);
    assert_eq!(
        a.update(key('!')),
        vec![Effect::RunSshWait {
            task: 2,
            id: vid("vm-agent-1"),
        }]
    );
    let finished = |task: u64, state: TaskState| {
        Input::Msg(Msg::Task {
            id: task,
            update: TaskUpdate::Finished {
                state,
                summary: "x".into(),
                took_ms: 1,
            },
        })
    };
    let fx = a.update(finished(1, TaskState::Done));
    assert!(fx.contains(&Effect::Session {
        id: vid("vm-agent-1"),
        attach: true
    }));
    let fx = a.update(finished(2, TaskState::Cancelled));
    assert!(!fx.iter().any(|e| matches!(e, Effect::Session { .. })));
    a.update(key('1'));
    // Back from the session: the same VM selected, the exit code said.
    a.update(key('G'));
    let fx = a.update(Input::Msg(Msg::SessionEnded {
        id: vid("vm-agent-1"),
        result: Ok(3),
    }));
    assert_eq!(fx, vec![Effect::Refresh { slow: false }]);
    assert_eq!(a.selected_vm().unwrap().info.id, "vm-agent-1");
    assert_eq!(
        a.status.as_deref(),
        Some("session in vm-agent-1 ended (exit 3)")
    );
    // Several marked: one VM only.
    a.update(key(' '));
    a.update(key(' '));
    assert!(a.update(key('a')).is_empty());
    assert!(status(&a).contains("works on one VM"));
}

#[test]
fn a_start_with_attach_attaches_once_the_vm_is_up() {
    let mut a = full_app(80, 24);
    a.update(key('n'));
    // Image → Name → Memory → CPUs → Disk → Mounts → Writable → Internet → Allow CIDRs →
    // Allow names → Publish SSH → Attach.
    for _ in 0..11 {
        a.update(code(KeyCode::Tab));
    }
    a.update(key(' '));
    let fx = a.update(code(KeyCode::Enter));
    let [Effect::RunStart { task, spec }] = fx.as_slice() else {
        panic!("{fx:?}")
    };
    assert!(spec.attach);
    assert!(!spec.writable_mounts);
    let task = *task;
    let fx = a.update(Input::Msg(Msg::Task {
        id: task,
        update: TaskUpdate::Started {
            vm_id: vid("vm-new"),
        },
    }));
    assert_eq!(fx, vec![Effect::Refresh { slow: false }]);
    // The session begins once the task has ended (its summary shown first).
    let fx = a.update(Input::Msg(Msg::Task {
        id: task,
        update: TaskUpdate::Finished {
            state: TaskState::Done,
            summary: "vm-new running".into(),
            took_ms: 1,
        },
    }));
    let wait = task + 1;
    assert!(fx.contains(&Effect::RunSshWait {
        id: vid("vm-new"),
        task: wait,
    }));
    let fx = a.update(Input::Msg(Msg::Task {
        id: wait,
        update: TaskUpdate::Finished {
            state: TaskState::Done,
            summary: "vm-new's sshd answers".into(),
            took_ms: 1,
        },
    }));
    assert!(fx.contains(&Effect::Session {
        id: vid("vm-new"),
        attach: true
    }));
    // A failed start attaches to nothing.
    a.update(key('1'));
    a.update(key('n'));
    for _ in 0..6 {
        a.update(code(KeyCode::Tab));
    }
    a.update(key(' '));
    a.update(code(KeyCode::Enter));
    let fx = a.update(Input::Msg(Msg::Task {
        id: wait + 1,
        update: TaskUpdate::Finished {
            state: TaskState::Failed,
            summary: "boot timed out".into(),
            took_ms: 1,
        },
    }));
    assert!(!fx.iter().any(|e| matches!(e, Effect::Session { .. })));
}

#[test]
fn readonly_refuses_the_vm_actions() {
    let mut a = readonly_full_app(80, 24);
    a.update(key('j'));
    for c in ['z', 'S', 'e', 'N', 'a', '!', 'U', 'D'] {
        assert!(a.update(key(c)).is_empty(), "{c}");
        assert!(a.dialog.is_none(), "{c}");
        assert!(
            a.status
                .as_deref()
                .unwrap_or("")
                .starts_with("read-only mode: refusing to"),
            "{c}: {:?}",
            a.status
        );
    }
    // The detail view opens (it only reads).
    assert_eq!(a.update(code(KeyCode::Enter)).len(), 1);
    assert!(a.detail.is_some());
}

/// What the worker answers to the path completion a Tab asked for (`Effect::ListDir`): the
/// worker's own listing, as the message it sends.
fn listing_of(fx: &[Effect]) -> Msg {
    let [Effect::ListDir {
        generation,
        dir,
        word,
    }] = fx
    else {
        panic!("Tab asked for no listing: {fx:?}")
    };
    Msg::DirListing {
        generation: *generation,
        result: smolvm::core::files::list_dir(dir, word),
    }
}

/// Tab in the local path, then the worker's answer applied.
fn tab_complete(a: &mut App) {
    let fx = a.update(code(KeyCode::Tab));
    let msg = listing_of(&fx);
    assert!(a.update(Input::Msg(msg)).is_empty());
}

fn transfer_form(a: &App) -> &smolvm::tui::app::TransferForm {
    let Some(Dialog::Transfer(f)) = &a.dialog else {
        panic!("no form")
    };
    f
}

#[test]
fn the_upload_form_completes_local_paths_and_submits() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir(t.path().join("project")).unwrap();
    std::fs::write(t.path().join("notes-1.txt"), b"x").unwrap();
    std::fs::write(t.path().join("notes-2.txt"), b"x").unwrap();
    let mut a = full_app(80, 24);
    a.update(key('j'));
    a.update(key('U'));
    let base = format!("{}/", t.path().display());
    typed(&mut a, &format!("{base}pro"));
    tab_complete(&mut a);
    assert_eq!(
        smolvm::tui::app::text_of(&transfer_form(&a).local),
        format!("{base}project/")
    );
    // Several candidates: their common part, and the list.
    for _ in 0.."project/".len() {
        a.update(code(KeyCode::Backspace));
    }
    typed(&mut a, "no");
    tab_complete(&mut a);
    let f = transfer_form(&a);
    assert_eq!(smolvm::tui::app::text_of(&f.local), format!("{base}notes-"));
    assert_eq!(f.candidates, ["notes-1.txt", "notes-2.txt"]);
    // Nothing matches: said in the form, the text kept.
    typed(&mut a, "9");
    tab_complete(&mut a);
    let f = transfer_form(&a);
    assert_eq!(f.error.as_deref(), Some("nothing completes 'notes-9'"));
    assert_eq!(
        smolvm::tui::app::text_of(&f.local),
        format!("{base}notes-9")
    );
    a.update(code(KeyCode::Backspace));
    typed(&mut a, "1.txt");
    a.update(code(KeyCode::Down));
    typed(&mut a, "/root/notes.txt");
    let fx = a.update(code(KeyCode::Enter));
    assert_eq!(
        fx,
        vec![Effect::RunTransfer {
            task: 1,
            id: vid("vm-agent-1"),
            upload: true,
            local: format!("{base}notes-1.txt"),
            guest: "/root/notes.txt".into()
        }]
    );
}

/// Tab does no file-system I/O in the key handler: it asks the worker to list the
/// directory (numbered, with the word to complete) and the field stays as typed until the
/// answer is applied. The directory does not even exist when Tab is pressed: the worker
/// lists it later, so it completes.
#[test]
fn tab_in_the_upload_form_asks_the_worker_and_changes_nothing_itself() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("later");
    let mut a = full_app(80, 24);
    a.update(key('j'));
    a.update(key('U'));
    let typed_text = format!("{}/pro", dir.display());
    typed(&mut a, &typed_text);
    let fx = a.update(code(KeyCode::Tab));
    let [Effect::ListDir {
        dir: asked, word, ..
    }] = fx.as_slice()
    else {
        panic!("Tab asked for no listing: {fx:?}")
    };
    assert_eq!((asked, word.as_str()), (&dir, "pro"));
    let f = transfer_form(&a);
    assert_eq!(smolvm::tui::app::text_of(&f.local), typed_text);
    assert_eq!(f.error, None, "the key handler listed the directory");
    assert!(f.candidates.is_empty());
    assert!(
        render(&a).contains("listing"),
        "the form does not say it waits:\n{}",
        render(&a)
    );
    // The directory appears; the worker lists it now.
    std::fs::create_dir_all(dir.join("project")).unwrap();
    a.update(Input::Msg(listing_of(&fx)));
    assert_eq!(
        smolvm::tui::app::text_of(&transfer_form(&a).local),
        format!("{}/project/", dir.display())
    );
    // `~/` is the home the form was given (no listing of the process's own home).
    for _ in 0..200 {
        a.update(code(KeyCode::Backspace));
    }
    typed(&mut a, "~/x");
    let fx = a.update(code(KeyCode::Tab));
    let [Effect::ListDir { dir: asked, .. }] = fx.as_slice() else {
        panic!("Tab asked for no listing: {fx:?}")
    };
    assert_eq!(asked, &a.data.home);
}

/// The log view reads a VM's console log as `sandbox logs` does: never through a symbolic
/// link in the log's place (the link's target is not shown; the view says why), and a
/// real log's last lines, `\r\n` as a newline.
#[test]
fn the_log_view_never_follows_a_link_in_the_logs_place() {
    let h = support::Home::new();
    std::fs::create_dir_all(&h.data).unwrap();
    let disk = h.tmp.path().join("disk");
    std::fs::write(&disk, b"x").unwrap();
    for id in ["vm-link1", "vm-real1"] {
        support::smolvm_db_with_vm(&h.data.join("smolvm.db"), id, "stopped", &disk, &disk);
    }
    let secret = h.tmp.path().join("secret");
    std::fs::write(&secret, "SECRET-LINE\n").unwrap();
    std::os::unix::fs::symlink(&secret, h.data.join("vm-link1.log")).unwrap();
    std::fs::write(h.data.join("vm-real1.log"), "one\r\ntwo\n").unwrap();
    let logs = support::tui::RealWorker::block_on(&h.env(), |mut w| async move {
        let mut got = Vec::new();
        for id in ["vm-link1", "vm-real1"] {
            w.run(Effect::LoadLog(LogSource::Vm(id.into())));
            let deadline = support::tui::RealWorker::deadline(10);
            loop {
                if let Msg::Log { source, lines } = w.next_before(deadline).await {
                    if source == LogSource::Vm(id.into()) {
                        got.push(lines.into_iter().map(|l| l.escaped).collect::<Vec<_>>());
                        break;
                    }
                }
            }
        }
        got
    });
    assert!(
        logs[0].iter().all(|l| !l.contains("SECRET")),
        "{:?}",
        logs[0]
    );
    assert!(
        logs[0].len() == 1 && logs[0][0].contains("symbolic link"),
        "{:?}",
        logs[0]
    );
    assert_eq!(logs[1], ["one", "two"]);
}

/// Run the effects on the real worker and wait for its listing (other messages — the
/// refresher's — are dropped).
async fn worker_listing(w: &mut support::tui::RealWorker, fx: Vec<Effect>) -> Msg {
    for fx in fx {
        w.run(fx);
    }
    let deadline = support::tui::RealWorker::deadline(30);
    loop {
        let msg = w.next_before(deadline).await;
        if matches!(msg, Msg::DirListing { .. }) {
            return msg;
        }
    }
}

/// A listing answers the Tab that asked for it only: an edit after the Tab, a later Tab, or
/// another form make it stale, and a stale answer changes nothing. Through the real
/// worker.
#[test]
fn a_stale_completion_result_is_ignored() {
    let h = support::Home::new();
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("project/src")).unwrap();
    let base = format!("{}/", t.path().display());
    let env = h.env();
    let local = |a: &App| smolvm::tui::app::text_of(&transfer_form(a).local);
    support::tui::RealWorker::block_on(&env, |mut w| async move {
        let w = &mut w;
        let mut a = full_app(80, 24);
        a.update(key('j'));
        a.update(key('U'));
        typed(&mut a, &format!("{base}pro"));
        // Edited after the Tab: the answer is for text that is gone.
        let fx = a.update(code(KeyCode::Tab));
        let late = worker_listing(w, fx).await;
        typed(&mut a, "x");
        a.update(Input::Msg(late.clone()));
        let f = transfer_form(&a);
        assert_eq!(local(&a), format!("{base}prox"));
        assert!(
            f.candidates.is_empty() && f.error.is_none(),
            "{:?}",
            f.error
        );
        // Back to the same text: still stale (it answers a Tab before the edit).
        a.update(code(KeyCode::Backspace));
        a.update(Input::Msg(late));
        assert_eq!(local(&a), format!("{base}pro"));
        // Two Tabs: only the second one's answer counts, and only once.
        let fx = a.update(code(KeyCode::Tab));
        let first = worker_listing(w, fx).await;
        let fx = a.update(code(KeyCode::Tab));
        let second = worker_listing(w, fx).await;
        a.update(Input::Msg(first));
        assert_eq!(local(&a), format!("{base}pro"));
        a.update(Input::Msg(second.clone()));
        assert_eq!(local(&a), format!("{base}project/"));
        a.update(Input::Msg(second));
        assert_eq!(local(&a), format!("{base}project/"));
        // Another form with the same text: the first form's answer is not its own.
        let fx = a.update(code(KeyCode::Tab));
        a.update(code(KeyCode::Esc));
        a.update(key('U'));
        typed(&mut a, &format!("{base}project/"));
        let old = worker_listing(w, fx).await;
        a.update(Input::Msg(old));
        assert_eq!(local(&a), format!("{base}project/"));
        // Not even after a Tab of its own, before its own answer.
        let fx = a.update(code(KeyCode::Tab));
        let Some(Effect::ListDir { generation, .. }) = fx.first() else {
            panic!("{fx:?}")
        };
        let (generation, dir, word) = (*generation, t.path().join("project"), String::new());
        a.update(Input::Msg(Msg::DirListing {
            generation: generation - 1,
            result: smolvm::core::files::list_dir(&dir, &word),
        }));
        assert_eq!(local(&a), format!("{base}project/"));
        let own = worker_listing(w, fx).await;
        a.update(Input::Msg(own));
        assert_eq!(local(&a), format!("{base}project/src/"));
        // An answer with no form open changes nothing.
        let fx = a.update(code(KeyCode::Tab));
        a.update(code(KeyCode::Esc));
        let orphan = worker_listing(w, fx).await;
        assert!(a.update(Input::Msg(orphan)).is_empty());
        assert!(a.dialog.is_none());
    });
}

// ---- guest text never reaches the terminal raw -----------------------------------------

/// Every cell symbol of the rendered screen, and the screen's text.
fn cells(a: &App) -> (Vec<String>, String) {
    let (w, h) = a.size;
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| ui::render(f, a)).unwrap();
    let symbols = t
        .backend()
        .buffer()
        .content()
        .iter()
        .map(|c| c.symbol().to_string())
        .collect();
    (symbols, t.backend().to_string())
}

/// A console line (or ssh error) as a hostile guest writes it: OSC 52 (the clipboard), a
/// title change, a screen clear, a carriage return faking output, C1 CSI, DEL.
const HOSTILE_LINE: &str =
    "\x1b]52;c;ZXZpbA==\x07clip \x1b]0;pwned\x07title \x1b[2J\x1b[Hcleared \rfake \u{9b}31mcsi \x7fdel \x00nul";

fn assert_no_controls(a: &App, visible: &[&str]) {
    let (symbols, text) = cells(a);
    let bad: Vec<&String> = symbols
        .iter()
        .filter(|s| s.chars().any(char::is_control))
        .collect();
    assert!(
        bad.is_empty(),
        "control characters on screen: {bad:?}\n{text}"
    );
    for v in visible {
        assert!(text.contains(v), "{v:?} not shown:\n{text}");
    }
}

/// A guest's console colours (systemd's `[  OK  ]`) are painted in the Logs pane, their
/// sequences never shown as text; `r` shows the line raw, every sequence escaped as
/// `sandbox logs` shows it, and back. A search runs on what is shown. What is not a
/// colour (a title, a screen clear, a background) stays escaped or ignored in both.
#[test]
fn a_guests_console_colours_are_painted_and_r_shows_them_raw() {
    use ratatui::style::{Color, Modifier};
    let mut a = full_app(160, 30);
    a.theme = Theme::defaults(false);
    a.update(key('l'));
    vm_log(
        &mut a,
        vec![
            "[\x1b[0;32m  OK  \x1b[0m] Started \x1b[1;39mssh.service\x1b[0m.".into(),
            "\x1b[41m\x1b[8mhidden\x1b[0m \x1b]0;pwned\x07title \x1b[2Jclear".into(),
        ],
    );
    let styled = |a: &App, text: &str| -> Vec<(Color, Color, bool)> {
        let (w, h) = a.size;
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| ui::render(f, a)).unwrap();
        let buf = t.backend().buffer().clone();
        let shown = t.backend().to_string();
        let row = shown
            .lines()
            .position(|l| l.contains(text))
            .unwrap_or_else(|| panic!("{text:?} not shown:\n{shown}"));
        let line = shown.lines().nth(row).unwrap().trim_matches('"');
        let col = line[..line.find(text).unwrap()].chars().count();
        (col..col + text.chars().count())
            .map(|x| {
                let c = &buf[(x as u16, row as u16)];
                (c.fg, c.bg, c.modifier.contains(Modifier::BOLD))
            })
            .collect()
    };
    assert_no_controls(&a, &["[  OK  ] Started ssh.service."]);
    assert!(styled(&a, "  OK  ")
        .iter()
        .all(|(fg, _, _)| *fg == Color::Green));
    assert!(styled(&a, "ssh.service").iter().all(|(_, _, bold)| *bold));
    assert!(styled(&a, "] Started")
        .iter()
        .all(|(fg, _, bold)| *fg == Color::Reset && !bold));
    // No background, no concealed text: `hidden` is drawn as any text is.
    assert!(styled(&a, "hidden")
        .iter()
        .all(|(fg, bg, _)| *fg == Color::Reset && *bg == Color::Reset));
    assert_no_controls(&a, &[r"\x1b]0;pwned\x07title \x1b[2Jclear"]);
    assert!(!cells(&a).1.contains(r"\x1b[0;32m"));
    // A search finds what is shown: the painted text, not the sequences.
    a.update(key('/'));
    typed(&mut a, "ok  ]");
    a.update(code(KeyCode::Enter));
    assert_eq!(a.logs.matches, [0]);
    // Raw: the sequences shown escaped, unpainted; the search runs again on them.
    a.update(key('r'));
    assert!(a.logs.raw);
    assert_eq!(a.logs.matches, Vec::<usize>::new());
    assert_no_controls(
        &a,
        &[
            r"[\x1b[0;32m  OK  \x1b[0m] Started \x1b[1;39mssh.service\x1b[0m.",
            "· raw",
        ],
    );
    assert!(styled(&a, "  OK  ")
        .iter()
        .all(|(fg, _, _)| *fg == Color::Reset));
    a.update(key('r'));
    assert!(!a.logs.raw);
    assert_eq!(a.logs.matches, [0]);
    assert!(!cells(&a).1.contains("· raw"));
}

/// What a guest sent is shown as the CLI shows it on a terminal, each control character
/// escaped (`\x1b`, `\x0d`, `\u{9b}`): never drawn raw, and not dropped either, which
/// left `]52;c;…` and `[2J` behind as if the guest had written them as text.
const HOSTILE_SHOWN: [&str; 6] = [
    r"\x1b]52;c;ZXZpbA==\x07clip",
    r"\x1b[2J\x1b[Hcleared",
    r"\x0dfake",
    r"\u{9b}31mcsi",
    r"\x7fdel",
    r"\x00nul",
];

#[test]
fn guest_control_bytes_are_shown_escaped_in_the_logs_pane_and_the_detail_view() {
    // The CLI's rule, which the dashboard follows.
    let escaped = smolvm::core::escape::escape(HOSTILE_LINE.as_bytes());
    for p in HOSTILE_SHOWN {
        assert!(escaped.contains(p), "{p} in {escaped}");
    }
    for wrap in [false, true] {
        let mut a = full_app(240, 48);
        a.update(key('l'));
        vm_log(&mut a, vec![HOSTILE_LINE.into(), "a plain line".into()]);
        if wrap {
            a.update(key('w'));
            assert!(a.logs.wrap);
        }
        assert_no_controls(&a, &HOSTILE_SHOWN);
        assert_no_controls(&a, &["a plain line"]);
    }
    // A tab is spaces to the next column of eight; a line of 4 MiB of NULs (16 MiB
    // escaped, to wrap on every key) is cut, saying how much more it had.
    let mut a = full_app(240, 48);
    a.update(key('l'));
    vm_log(&mut a, vec!["\0".repeat(1 << 22), "tabs\tand\ttabs".into()]);
    a.update(key('w'));
    assert_no_controls(&a, &["tabs    and     tabs"]);
    let cut = &a.data.vm_log("vm-12345", false)[0];
    let more = (4 << 22) - smolvm::core::paint::LINE_MAX;
    assert!(
        cut.ends_with(&format!(" … ({more} more characters)")),
        "{}",
        &cut[cut.len() - 60..]
    );
    // The detail view: env keys and the errors it quotes come from the guest over SSH.
    let detail = |result: Result<Box<_>, String>| {
        let mut a = full_app(240, 48);
        a.update(key('j'));
        a.update(code(KeyCode::Enter));
        a.update(Input::Msg(Msg::Detail {
            id: vid("vm-agent-1"),
            generation: a.data.detail_gen.newest(),
            result,
        }));
        a
    };
    let mut a = detail(Ok(Box::new(detail_fixture())));
    for keys in [Err(HOSTILE_LINE.into()), Ok(vec![HOSTILE_LINE.into()])] {
        a.update(Input::Msg(Msg::EnvKeys {
            id: vid("vm-agent-1"),
            generation: a.data.env_gen.newest(),
            result: keys,
        }));
        assert_no_controls(&a, &["VM vm-agent-1", HOSTILE_SHOWN[0], HOSTILE_SHOWN[1]]);
    }
    let a = detail(Err(HOSTILE_LINE.into()));
    assert_no_controls(&a, &[HOSTILE_SHOWN[0], HOSTILE_SHOWN[1]]);
}

/// The same for a folder's name (anyone's) in the Images pane, the status line and the
/// header, and for what a task quotes in the Tasks pane and its whole message.
#[test]
fn control_characters_in_names_and_tasks_are_shown_escaped() {
    use smolvm::core::images::listing::{Kind, NOT_AN_IMAGE};
    let mut s = full_readout();
    let folder = |name: &str| {
        let mut b = image("", name, false, None, &[]);
        b.kind = Kind::Other;
        b.kept = Some(NOT_AN_IMAGE.to_string());
        b
    };
    // A newline shows as `\x0a` (a cell is one line) and a tab as spaces.
    let (nl, tab) = (folder("nl\nname"), folder("tab\tname"));
    s.slow.as_mut().unwrap().images = vec![folder("evil\x1b[2Jname"), nl, tab];
    s.images_root = "/srv/x\x1b[2J/images".into();
    let mut a = app();
    a.update(Input::Resize(160, 48));
    a.update(Input::Msg(Msg::Readout(Box::new(s))));
    a.update(key('2'));
    a.update(key('d'));
    let shown = [
        r"evil\x1b[2Jname",
        r"evil\x1b[2Jname: not an image",
        r"images /srv/x\x1b[2J/images",
        r"nl\x0aname",
        "tab     name",
    ];
    assert_no_controls(&a, &shown);
    let mut a = full_app(240, 48);
    let item = TaskItem {
        name: "item\x1b[2Jname".into(),
        ok: false,
        detail: "said \x1b]0;pwned\x07".into(),
    };
    prune_task(&mut a, item, TaskState::Failed, HOSTILE_LINE);
    a.update(key('4'));
    let shown = [
        r"item\x1b[2Jname",
        r"said \x1b]0;pwned\x07",
        HOSTILE_SHOWN[0],
    ];
    assert_no_controls(&a, &shown);
    a.update(code(KeyCode::Enter));
    assert!(matches!(a.dialog, Some(Dialog::Note(_))), "{:?}", a.status);
    assert_no_controls(&a, &shown);
    // Core's refusal kept in a form (it may quote what a guest said).
    let mut a = full_app(160, 48);
    a.update(key('j'));
    a.update(key('e'));
    typed(&mut a, "8080:80");
    a.update(code(KeyCode::Enter));
    let update = TaskUpdate::Finished {
        state: TaskState::Failed,
        summary: "refused: \x1b[2Jcleared".into(),
        took_ms: 1,
    };
    a.update(Input::Msg(Msg::Task { id: 1, update }));
    assert!(matches!(a.dialog, Some(Dialog::Port(_))));
    assert_no_controls(&a, &[]);
    let rows = screen_rows(&a);
    assert!(
        rows.iter()
            .any(|r| r.contains('║') && r.contains(r"refused: \x1b[2Jcleared")),
        "{rows:#?}"
    );
}

/// One context per dashboard: the dashboard opens `core::context::Context` once and hands it
/// to every job; no file of it resolves paths, probes the host or opens the state store
/// itself (that is the seam a remote host plugs into).
#[test]
fn the_dashboard_opens_no_paths_store_or_host_of_its_own() {
    fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut all = Vec::new();
    files(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/tui"),
        &mut all,
    );
    assert!(all.len() > 5);
    for f in all {
        let text = std::fs::read_to_string(&f).unwrap();
        for opener in [
            "Paths::resolve",
            "Ctx::open",
            "Host::probe",
            "StateStore::open",
        ] {
            assert!(!text.contains(opener), "{} calls {opener}", f.display());
        }
    }
}

/// A pane's sort is one of its columns (a column value, not an index): `o` steps through
/// every column of the pane in order and wraps to the first; the title names it.
#[test]
fn o_steps_the_sort_through_each_pane_column_and_wraps() {
    use smolvm::tui::app::{IMAGE_COLUMNS, VM_COLUMNS};
    let mut a = full_app(160, 48);
    assert_eq!(a.vms.sort.col, VM_COLUMNS[0].id);
    for c in VM_COLUMNS.iter().skip(1) {
        a.update(key('o'));
        assert_eq!(a.vms.sort.col, c.id);
        assert!(
            render(&a).contains(&format!("sort {}↑", c.title)),
            "{}",
            c.title
        );
    }
    a.update(key('o'));
    assert_eq!(a.vms.sort.col, VM_COLUMNS[0].id);
    a.update(key('2'));
    for c in IMAGE_COLUMNS.iter().skip(1).chain(&IMAGE_COLUMNS[..1]) {
        a.update(key('o'));
        assert_eq!(a.images.sort.col, c.id);
    }
    assert_eq!(
        a.vms.sort.col, VM_COLUMNS[0].id,
        "the Images pane's sort moved the VMs'"
    );
}

/// #23: the Images pane and `image ls` are one read model: a current and a stale cache in
/// smolvm's layout, SmolVM's flat caches (stale and current version), a built image and
/// folders that are no image (a user's, an interrupted load's `.partial`) are listed by
/// both faces, the same names with the same kind and state.
#[test]
fn the_images_pane_and_image_ls_list_the_same_caches_and_built_images() {
    let h = support::Home::new();
    let cur = support::CURRENT;
    h.cache(&format!("{cur}/codex-amd64-qemu"), 4096);
    h.cache("0.0.1/pi-arm64-firecracker-alpine", 4096);
    h.cache("codex-v0.0.1-amd64-qemu", 4096);
    h.cache(&format!("hermes-v{cur}-amd64-firecracker"), 4096);
    let built = h.images().join("my-debian");
    std::fs::create_dir_all(&built).unwrap();
    for f in [".fingerprint", "vmlinux.bin", "rootfs.ext4"] {
        std::fs::write(built.join(f), b"x").unwrap();
    }
    for d in ["mystuff", ".partial", ".my-debian.staging-77-ab"] {
        std::fs::create_dir_all(h.images().join(d)).unwrap();
        std::fs::write(h.images().join(d).join("f"), b"x").unwrap();
    }

    let out = h.run(&["image", "ls", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut cli: Vec<(String, String, String)> = v["data"]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_string(),
                i["kind"].as_str().unwrap_or("?").to_string(),
                format!(
                    "{} {}",
                    i["status"].as_str().unwrap(),
                    i["kept"].as_str().unwrap_or("-")
                ),
            )
        })
        .collect();
    cli.sort();

    let snap = smolvm::tui::data::load(
        &smolvm::core::context::Context::local(&h.env()),
        &mut Default::default(),
        true,
    );
    let mut pane: Vec<(String, String, String)> = snap
        .slow
        .as_ref()
        .unwrap()
        .images
        .iter()
        .map(|r| {
            (
                r.name.clone(),
                r.kind.to_string(),
                format!("{} {}", r.status(), r.kept.as_deref().unwrap_or("-")),
            )
        })
        .collect();
    pane.sort();
    let names: Vec<&str> = cli.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        names,
        [
            ".my-debian.staging-77-ab",
            ".partial",
            "codex-amd64-qemu",
            "codex-v0.0.1-amd64-qemu",
            &format!("hermes-v{cur}-amd64-firecracker"),
            "my-debian",
            "mystuff",
            "pi-arm64-firecracker-alpine",
        ]
    );
    let mine = cli.iter().find(|r| r.0 == "mystuff").unwrap();
    assert_eq!(
        (mine.1.as_str(), mine.2.as_str()),
        ("other", "stale not an image, left alone")
    );
    // A build's staging folder says whose it is, in both.
    assert_eq!(
        cli[0].2,
        "stale staging of 'my-debian', left to its next build or load"
    );
    assert_eq!(cli, pane);
}

/// `u` on a SmolVM-named cache of the current version pulls the image it holds, by the
/// name a pull takes (its name was taken apart as preset `hermes-v0.0.36`: "no published
/// image").
#[test]
fn pulling_a_smolvm_named_cache_pulls_its_image() {
    let h = support::Home::new();
    let cur = support::CURRENT;
    h.cache(&format!("hermes-v{cur}-amd64-firecracker"), 4096);
    h.cache(&format!("{cur}/codex-amd64-qemu"), 4096);
    let snap = smolvm::tui::data::load(
        &smolvm::core::context::Context::local(&h.env()),
        &mut Default::default(),
        true,
    );
    let mut a = sized_app();
    a.update(Input::Msg(Msg::Readout(Box::new(snap))));
    a.update(key('2'));
    a.update(key('g'));
    for _ in 0..2 {
        a.update(key(' '));
        a.update(key('j'));
    }
    let fx = a.update(key('u'));
    let [Effect::RunPull { names, .. }] = fx.as_slice() else {
        panic!("{fx:?}: {:?}", a.status)
    };
    let mut names = names.clone();
    names.sort();
    assert_eq!(names, ["codex-amd64-qemu", "hermes-amd64-firecracker"]);
}

/// `d` in the Images pane asks to remove what `image rm` removes (core's
/// `Row::rm_name`): SmolVM's flat caches of any version by their own name — the pane
/// refused an older one as prune's, and called a current one "not a published image" —
/// while an older cache of smolvm's layout is still prune's; the real worker then removes
/// the SmolVM cache as `image rm` does.
#[test]
fn d_removes_what_image_rm_removes() {
    let h = support::Home::new();
    let cur = support::CURRENT;
    let old_smolvm = h.cache("hermes-v0.0.30-amd64-firecracker", 4096);
    h.cache(&format!("hermes-v{cur}-amd64-firecracker"), 4096);
    h.cache("0.0.1/codex-amd64-qemu", 4096);
    let load = || {
        smolvm::tui::data::load(
            &smolvm::core::context::Context::local(&h.env()),
            &mut Default::default(),
            true,
        )
    };
    let mut a = sized_app();
    a.update(Input::Msg(Msg::Readout(Box::new(load()))));
    a.update(key('2'));
    let mut asked = Vec::new();
    for name in [
        "hermes-v0.0.30-amd64-firecracker".to_string(),
        format!("hermes-v{cur}-amd64-firecracker"),
        "codex-amd64-qemu".to_string(),
    ] {
        a.update(key('/'));
        typed(&mut a, &name);
        a.update(code(KeyCode::Enter));
        a.update(key('d'));
        match &a.dialog {
            Some(Dialog::Confirm(ConfirmAction::RemoveImages(names))) => {
                asked.push((name.clone(), names.join(",")))
            }
            _ => asked.push((name.clone(), status(&a).to_string())),
        }
        a.update(code(KeyCode::Esc));
        a.update(code(KeyCode::Esc));
        a.update(code(KeyCode::Esc));
    }
    assert_eq!(asked[0].1, "hermes-v0.0.30-amd64-firecracker", "{asked:?}");
    assert_eq!(asked[1].1, asked[1].0, "{asked:?}");
    assert!(
        asked[2].1.contains("is not the current version: prune"),
        "{asked:?}"
    );
    // What the pane asks for, the worker removes through core, as `image rm` does.
    let env = h.env();
    support::tui::RealWorker::block_on(&env, |mut w| async move {
        let mut a = sized_app();
        let task = a
            .data
            .add_task(smolvm::tui::app::TaskKind::RemoveImages, "rm".into());
        w.run(Effect::RunRemoveImages {
            task,
            names: vec!["hermes-v0.0.30-amd64-firecracker".into()],
        });
        w.finish_first_task(&mut a, 30).await;
        assert_eq!(
            a.data.tasks[0].state,
            TaskState::Done,
            "{:?}",
            a.data.tasks[0]
        );
    });
    assert!(!old_smolvm.exists());
}

/// `image inspect`'s labelled lines (those before the files), as (label, value).
fn labelled(text: &str) -> Vec<(String, String)> {
    text.lines()
        .take_while(|l| !l.starts_with("  "))
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.to_string(), v.trim_start().to_string())
        })
        .collect()
}

/// #23: `image inspect` is one core read model: the dashboard's inspect of a cache and
/// `image inspect <name>` name the same row and files; for a name that is nothing both say
/// the same error, and a built image both show in the same lines.
#[test]
fn the_dashboard_and_image_inspect_resolve_a_name_the_same_way() {
    let h = support::Home::new();
    let cur = support::CURRENT;
    h.cache(&format!("{cur}/codex-amd64-qemu"), 4096);
    let cx = smolvm::core::context::Context::local(&h.env());
    let cli = |name: &str| {
        let out = h.run(&["image", "inspect", name, "--json"]);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let v = cli("codex-amd64-qemu");
    let d = smolvm::tui::worker::inspect(&cx, cur, "codex-amd64-qemu").unwrap();
    let field = |k: &str| d.fields.iter().find(|(n, _)| n == k).unwrap().1.clone();
    assert_eq!(field("Name"), v["data"][0]["name"].as_str().unwrap());
    assert_eq!(
        field("Kernel URL"),
        v["data"][0]["kernel_url"].as_str().unwrap()
    );
    assert_eq!(
        field("Rootfs URL"),
        v["data"][0]["rootfs_url"].as_str().unwrap()
    );
    // The command's labelled lines are the dialog's fields (`Inspect::fields`), in order.
    let out = h
        .smolvm()
        .args(["image", "inspect", "codex-amd64-qemu"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(labelled(&text), d.fields);

    let v = cli("my-debian");
    let e = smolvm::tui::worker::inspect(&cx, cur, "my-debian").unwrap_err();
    assert_eq!(e, support::error_message(&v));

    // Once `image build` made it (the Images pane lists it as built), both show it, in
    // the same labelled lines.
    let dir = h.images().join("my-debian");
    std::fs::create_dir_all(&dir).unwrap();
    for f in [".fingerprint", "vmlinux.bin", "rootfs.ext4"] {
        std::fs::write(dir.join(f), b"x").unwrap();
    }
    let d = smolvm::tui::worker::inspect(&cx, "", "my-debian").unwrap();
    let text = support::stdout(&h.run(&["image", "inspect", "my-debian"]));
    assert_eq!(labelled(&text), d.fields);
    assert!(
        d.fields
            .contains(&("Kind".into(), "built (smolvm image build)".into())),
        "{:?}",
        d.fields
    );
    assert_eq!(d.files.len(), 3);
}

/// A built image is listed in the Images pane (as `image ls` lists it); `u` on it says it
/// is a built image, not a published one; `i` inspects it and `d` removes it by its name.
#[test]
fn a_built_image_row_is_inspected_and_removed_but_not_pulled() {
    let mut s = full_readout();
    let mut b = image("", "my-debian", true, None, &[]);
    b.kind = smolvm::core::images::listing::Kind::Built;
    s.slow.as_mut().unwrap().images = vec![b];
    let mut a = app();
    a.update(Input::Resize(160, 48));
    a.update(Input::Msg(Msg::Readout(Box::new(s))));
    a.update(key('2'));
    let effects = a.update(key('u'));
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(
        status(&a),
        "my-debian is a built image (image build), not a published one"
    );
    // It is inspected and removed by its name, as `image inspect` and `image rm` take it.
    let fx = a.update(key('i'));
    assert!(
        matches!(fx.as_slice(), [Effect::Inspect { name, .. }] if name == "my-debian"),
        "{fx:?}"
    );
    a.update(code(KeyCode::Esc));
    a.update(key('d'));
    let Some(Dialog::Confirm(ConfirmAction::RemoveImages(names))) = &a.dialog else {
        panic!("no remove confirmation: {:?}", a.status)
    };
    assert_eq!(names, &["my-debian"]);
}

/// A folder of the images root that is no image is listed (as `image ls` lists it), but
/// `u`, `i` and `d` on it do nothing but say so: it is not smolvm's to pull or remove.
#[test]
fn a_folder_that_is_no_image_is_listed_but_not_pulled_inspected_or_removed() {
    use smolvm::core::images::listing::{Kind, NOT_AN_IMAGE};
    let mut s = full_readout();
    let mut b = image("", "mystuff", false, None, &[]);
    b.kind = Kind::Other;
    b.kept = Some(NOT_AN_IMAGE.to_string());
    s.slow.as_mut().unwrap().images = vec![b];
    let mut a = app();
    a.update(Input::Resize(160, 48));
    a.update(Input::Msg(Msg::Readout(Box::new(s))));
    a.update(key('2'));
    assert!(render(&a).contains("kept: not an image, left alone"));
    for k in ['u', 'i', 'd'] {
        let fx = a.update(key(k));
        assert!(fx.is_empty(), "{k}: {fx:?}");
        assert!(a.dialog.is_none(), "{k}");
        assert_eq!(status(&a), "mystuff: not an image, left alone", "{k}");
    }
    // A build's staging folder: the same, by core's reason.
    let name = ".my-debian.staging-77-ab";
    let mut st = image("", name, false, None, &[]);
    st.kind = Kind::Other;
    st.kept = Some(smolvm::core::images::listing::left_alone(name));
    let mut s = full_readout();
    s.slow.as_mut().unwrap().images = vec![st];
    a.update(Input::Msg(Msg::Readout(Box::new(s))));
    let fx = a.update(key('d'));
    assert!(fx.is_empty() && a.dialog.is_none(), "{fx:?}");
    assert_eq!(
        status(&a),
        ".my-debian.staging-77-ab: staging of 'my-debian', left to its next build or load"
    );
}

/// The Tasks pane lists the newest task first; selection follows what is drawn: `g` is
/// the top (newest), `G` the bottom (oldest), `j` moves down, `k` up, and `x` cancels the
/// task the highlighted row shows (it used to run the other way round).
#[test]
fn tasks_selection_follows_what_is_drawn() {
    use smolvm::core::job::JobKind;
    let mut a = full_app(160, 48);
    let old = a.data.add_task(JobKind::Prune, "the older task".into());
    let new = a.data.add_task(JobKind::Cleanup, "the newer task".into());
    a.update(key('4'));
    assert_eq!(a.focus, Pane::Tasks);
    let highlighted = |a: &App| -> String {
        let screen = render(a);
        let top = screen.find("the newer task").unwrap();
        let bottom = screen.find("the older task").unwrap();
        assert!(top < bottom, "newest first:\n{screen}");
        a.tasks.task(&a.data).unwrap().title.clone()
    };
    a.update(key('g'));
    assert_eq!(highlighted(&a), "the newer task");
    a.update(key('j'));
    assert_eq!(highlighted(&a), "the older task");
    a.update(key('k'));
    assert_eq!(highlighted(&a), "the newer task");
    a.update(key('G'));
    assert_eq!(highlighted(&a), "the older task");
    assert_eq!(a.update(key('x')), vec![Effect::Cancel { task: old }]);
    a.update(key('g'));
    assert_eq!(a.update(key('x')), vec![Effect::Cancel { task: new }]);
}

/// A followed log with wrap on ends at its last line, as with wrap off (it stopped a few
/// lines short: the window was counted one row per line).
#[test]
fn a_followed_log_shows_its_last_line_with_wrap_on() {
    let mut a = full_app(80, 24);
    a.update(key('3'));
    assert_eq!(a.focus, Pane::Logs);
    for i in 0..40 {
        a.log(format!("entry-{i:02}-{}", "y".repeat(120)));
    }
    assert!(render(&a).contains("entry-39"), "wrap off");
    a.update(key('w'));
    let screen = render(&a);
    assert!(screen.contains("entry-39"), "wrap on:\n{screen}");
    assert!(
        !screen.contains("entry-30"),
        "the window did not move to the end:\n{screen}"
    );
}

/// A state database that cannot be read is shown as such in the VMs pane, with the fix
/// `sandbox list` and doctor give, not as "No VMs" (issue 26 item 4).
#[test]
fn a_corrupt_state_database_is_shown_in_the_vms_pane_not_as_no_vms() {
    let h = support::Home::new();
    std::fs::create_dir_all(&h.data).unwrap();
    std::fs::write(h.data.join("smolvm.db"), vec![0x42u8; 8192]).unwrap();
    let snap = smolvm::tui::data::load(
        &smolvm::core::context::Context::local(&h.env()),
        &mut Default::default(),
        false,
    );
    assert!(snap.vms.is_empty());
    let mut a = full_app(160, 48);
    a.update(Input::Msg(Msg::Readout(Box::new(snap))));
    let screen = render(&a);
    assert!(!screen.contains("No VMs. Press"), "{screen}");
    assert!(screen.contains("could not be listed"), "{screen}");
    assert!(screen.contains("is corrupt"), "{screen}");
    assert!(
        screen.contains("smolvm cleanup"),
        "the fix is not shown:\n{screen}"
    );
}

/// Stopping sandboxes that are not running says so for each and counts them as unchanged
/// (it said "2 stopped, 0 failed" where nothing was stopped; issue 26 item 4).
#[test]
fn stopping_vms_that_are_not_running_says_nothing_was_stopped() {
    let h = support::Home::new();
    std::fs::create_dir_all(&h.data).unwrap();
    let disk = h.tmp.path().join("disk.ext4");
    std::fs::write(&disk, b"").unwrap();
    let db = h.data.join("smolvm.db");
    support::smolvm_db_with_vm(&db, "vm-made", "created", &disk, &disk);
    support::smolvm_db_with_vm(&db, "vm-down", "stopped", &disk, &disk);
    let env = h.env();
    support::tui::RealWorker::block_on(&env, |mut w| async move {
        let mut a = sized_app();
        let task = a
            .data
            .add_task(smolvm::tui::app::TaskKind::Stop, "stop".into());
        let ids = vec![vid("vm-made"), vid("vm-down")];
        w.run(Effect::RunStop { task, ids });
        w.finish_first_task(&mut a, 30).await;
        let t = &a.data.tasks[0];
        assert_eq!(t.state, TaskState::Done, "{t:?}");
        assert_eq!(t.summary, "0 stopped, 2 unchanged, 0 failed", "{t:?}");
        let details: Vec<&str> = t.items.iter().map(|i| i.detail.as_str()).collect();
        assert_eq!(
            details,
            [
                "was not running (created): nothing to stop",
                "was not running (stopped): nothing to stop"
            ],
            "{t:?}"
        );
    });
}

#[test]
fn the_cleanup_dialog_never_confirms_on_enter_only_y_from_its_buttons() {
    let mut a = full_app(160, 48);
    cleanup_preview(&mut a, vec![]);
    // In the prefix field `y` is text (a new dry run for "vm-y"), not an answer.
    let fx = a.update(key('y'));
    assert!(
        matches!(&fx[..], [Effect::CleanupPreview { prefix, .. }] if prefix == "vm-y"),
        "{fx:?}"
    );
    a.update(code(KeyCode::Backspace));
    cleanup_answer(&mut a);
    // Enter moves to the buttons; it never runs the cleanup, however often pressed.
    for _ in 0..3 {
        assert!(a.update(code(KeyCode::Enter)).is_empty());
        assert!(
            matches!(a.dialog, Some(Dialog::Cleanup(_))),
            "Enter closed it"
        );
    }
    let screen = render(&a);
    assert!(screen.contains("[y] delete these"), "{screen}");
    assert!(!screen.contains("[Enter] delete"), "{screen}");
    // Tab goes back to the field, which still takes text.
    a.update(code(KeyCode::Tab));
    let fx = a.update(key('x'));
    assert!(
        matches!(&fx[..], [Effect::CleanupPreview { prefix, .. }] if prefix == "vm-x"),
        "{fx:?}"
    );
    a.update(code(KeyCode::Backspace));
    cleanup_answer(&mut a);
    a.update(code(KeyCode::Enter));
    assert_eq!(
        a.update(key('y')),
        vec![Effect::RunCleanup {
            task: 1,
            prefix: "vm-".into(),
            all: false,
            plan: CleanupPreview {
                targets: vec![
                    ("vm-12345".into(), "stale".into()),
                    ("vm-demo".into(), "prefix".into()),
                ],
                stale_resources: vec![],
                warnings: vec![],
            },
        }]
    );
}

/// The cleanup dialog's current dry run answered with two targets.
fn cleanup_answer(a: &mut App) {
    let Some(Dialog::Cleanup(d)) = &a.dialog else {
        panic!("no cleanup dialog")
    };
    let generation = d.generation;
    a.update(Input::Msg(Msg::CleanupPreview {
        generation,
        result: Ok(CleanupPreview {
            targets: vec![
                ("vm-12345".into(), "stale".into()),
                ("vm-demo".into(), "prefix".into()),
            ],
            stale_resources: vec![],
            warnings: vec![],
        }),
    }));
}

#[test]
fn the_cleanup_dialogs_keys_come_from_the_keymap() {
    // Ctrl-A flips --all by default …
    let mut a = full_app(160, 48);
    cleanup_preview(&mut a, vec![]);
    let fx = a.update(ctrl('a'));
    assert!(
        matches!(&fx[..], [Effect::CleanupPreview { all: true, .. }]),
        "{fx:?}"
    );
    // … and a keymap that binds it elsewhere moves it.
    let mut a = app_with_keymap("[form]\ntoggle_all = [\"alt-a\"]\n", 160, 48);
    cleanup_preview(&mut a, vec![]);
    assert!(
        !a.update(ctrl('a'))
            .iter()
            .any(|e| matches!(e, Effect::CleanupPreview { all: true, .. })),
        "Ctrl-A still flips --all"
    );
    let fx = a.update(Input::Key(KeyEvent::new(
        KeyCode::Char('a'),
        KeyModifiers::ALT,
    )));
    assert!(
        matches!(&fx[..], [Effect::CleanupPreview { all: true, .. }]),
        "{fx:?}"
    );
    assert!(render(&a).contains("[Alt-a] --all"), "{}", render(&a));
    // The confirming key is the [dialog] one.
    let mut a = app_with_keymap("[dialog]\nconfirm = [\"ctrl-y\"]\n", 160, 48);
    cleanup_preview(&mut a, vec![]);
    a.update(code(KeyCode::Enter));
    assert!(a.update(key('y')).is_empty());
    assert!(
        render(&a).contains("[Ctrl-y] delete these"),
        "{}",
        render(&a)
    );
    assert!(matches!(
        a.update(ctrl('y')).as_slice(),
        [Effect::RunCleanup { .. }]
    ));
    // A [form] key that is also the [dialog] confirm key: it moves to the buttons in the
    // field, and confirms on the buttons.
    let mut a = app_with_keymap(
        "[form]\nconfirm = [\"ctrl-y\"]\n[dialog]\nconfirm = [\"ctrl-y\"]\n",
        160,
        48,
    );
    cleanup_preview(&mut a, vec![]);
    assert!(a.update(ctrl('y')).is_empty());
    assert!(matches!(a.dialog, Some(Dialog::Cleanup(_))));
    assert!(matches!(
        a.update(ctrl('y')).as_slice(),
        [Effect::RunCleanup { .. }]
    ));
}

#[test]
fn every_config_problem_is_shown_not_only_the_last() {
    // Three keymap problems and one theme problem: the status line said only the last.
    let km = Keymap::with_user(
        "[vms]\nfly = [\"f\"]\nstop = [\"hyper-s\"]\n[nope]\n",
        "keymap.toml",
    );
    assert_eq!(km.problems.len(), 3, "{:?}", km.problems);
    let theme = Theme::with_user(Some("accent = \"plaid\"\n"), "theme.toml", true);
    let mut a = App::new(km, theme, false);
    a.update(Input::Resize(160, 48));
    a.update(Input::Msg(Msg::Readout(Box::new(full_readout()))));
    let screen = render(&a);
    for p in [
        "unknown action vms.fly",
        "vms.stop: unknown key 'hyper-s'",
        "unknown section [nope]",
        "accent = \"plaid\" is not a colour",
    ] {
        assert!(screen.contains(p), "{p} is not shown:\n{screen}");
    }
    assert!(
        status(&a).starts_with("4 config problems"),
        "{}",
        status(&a)
    );
    assert!(
        matches!(a.dialog, Some(Dialog::Note(_))),
        "no list of the problems opened"
    );
    assert!(screen.contains("Config problems (4)"), "{screen}");
    // Presets' problems (found later, by the event loop) join the same list.
    a.config_problems(&["presets.toml: unknown key 'x'; ignored".to_string()]);
    let screen = render(&a);
    assert!(screen.contains("unknown section [nope]"), "{screen}");
    assert!(screen.contains("presets.toml: unknown key 'x'"), "{screen}");
    assert!(
        status(&a).starts_with("5 config problems"),
        "{}",
        status(&a)
    );
    a.update(code(KeyCode::Esc));
    assert!(a.dialog.is_none());
}

/// A task's whole message opens in a scrollable view (Enter on it in the Tasks pane); the
/// row cuts it at the pane's edge.
#[test]
fn a_tasks_whole_message_opens_in_a_scrollable_view() {
    use smolvm::core::job::JobKind;
    let long = format!(
        "pull failed: {} THE-END-OF-IT",
        (0..40)
            .map(|i| format!("mirror{i}.example: connection refused;"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut a = full_app(80, 24);
    let id = a.data.add_task(JobKind::Pull, "pull codex".into());
    a.update(Input::Msg(Msg::Task {
        id,
        update: TaskUpdate::Finished {
            state: TaskState::Failed,
            summary: long.clone(),
            took_ms: 10,
        },
    }));
    a.update(key('4'));
    assert!(!render(&a).contains("THE-END-OF-IT"), "the row is cut");
    assert!(a.update(code(KeyCode::Enter)).is_empty());
    assert!(matches!(a.dialog, Some(Dialog::Note(_))), "no view opened");
    let screen = render(&a);
    assert!(screen.contains("pull codex"), "{screen}");
    assert!(screen.contains("mirror0.example"), "{screen}");
    // It scrolls to its end with the keymap's list keys.
    a.update(key('G'));
    let screen = render(&a);
    assert!(screen.contains("THE-END-OF-IT"), "{screen}");
    a.update(code(KeyCode::Esc));
    assert!(a.dialog.is_none());
    // The key comes from the keymap.
    let mut a = app_with_keymap("[tasks]\ninspect = [\"v\"]\n", 80, 24);
    let id = a.data.add_task(JobKind::Pull, "pull codex".into());
    a.update(Input::Msg(Msg::Task {
        id,
        update: TaskUpdate::Finished {
            state: TaskState::Failed,
            summary: long,
            took_ms: 10,
        },
    }));
    a.update(key('4'));
    a.update(code(KeyCode::Enter));
    assert!(a.dialog.is_none(), "Enter still opens it");
    a.update(key('v'));
    assert!(matches!(a.dialog, Some(Dialog::Note(_))));
}

/// A session on a stale row says what is true — its VMM is gone, cleanup removes the row —
/// not "is running (stale): start it first" (issue 26 item 4).
#[test]
fn a_session_on_a_stale_vm_says_its_vmm_is_gone() {
    let mut a = full_app(160, 48);
    assert_eq!(a.vms.target_ids(&a.data.vms), vec!["vm-12345".to_string()]);
    for k in ['a', '!'] {
        assert!(a.update(key(k)).is_empty());
        let s = status(&a).to_string();
        assert!(!s.contains("start it first"), "{s}");
        assert_eq!(
            s,
            "vm-12345 is stale: its VMM is gone though the row says running; c (cleanup) removes the row"
        );
    }
}

/// Attach and shell on a VM that is not running go to core, as `sandbox ssh` / `shell`
/// do (a stopped one is started, one in error refused by core with the way out), and
/// attach to a VM without a preset is its login shell (core's `session_argv`): the
/// dashboard refused all three itself ("a session needs a running VM", "no preset").
#[test]
fn a_session_on_a_vm_that_is_not_running_is_cores_to_bring_up() {
    let mut a = full_app(160, 48);
    a.update(key('/'));
    typed(&mut a, "production");
    a.update(code(KeyCode::Enter));
    assert_eq!(
        a.vms.target_ids(&a.data.vms),
        vec!["production-vm".to_string()]
    );
    for (k, attach) in [('a', true), ('!', false)] {
        let fx = a.update(key(k));
        assert!(
            matches!(&fx[..], [Effect::RunSshWait { id, .. }] if id.as_str() == "production-vm"),
            "{k}: {fx:?} {:?}",
            a.status
        );
        let task = a
            .data
            .tasks
            .iter()
            .find(|t| t.state == TaskState::Running)
            .unwrap()
            .id;
        let fx = a.update(Input::Msg(Msg::Task {
            id: task,
            update: TaskUpdate::Finished {
                state: TaskState::Done,
                summary: "production-vm started; its sshd answers".into(),
                took_ms: 1,
            },
        }));
        assert!(
            fx.contains(&Effect::Session {
                id: vid("production-vm"),
                attach
            }),
            "{fx:?}"
        );
    }
}

/// `Ctrl-r` and `:refresh` say they refresh and what the refresh found, even when
/// nothing changed (they were silent; issue 26 item 4).
#[test]
fn refresh_says_what_it_found() {
    let mut a = full_app(160, 48);
    assert_eq!(a.update(ctrl('r')), vec![Effect::Refresh { slow: true }]);
    assert_eq!(status(&a), "refreshing…");
    // The answer is the same rows as before: still said.
    let before = a.version();
    a.update(Input::Msg(Msg::Readout(Box::new(full_readout()))));
    assert_eq!(status(&a), "refreshed: 4 VMs, 3 images");
    assert!(a.version() > before, "the status line is not redrawn");
    a.status = None;
    a.update(key(':'));
    typed(&mut a, "refresh");
    assert_eq!(
        a.update(code(KeyCode::Enter)),
        vec![Effect::Refresh { slow: true }]
    );
    a.update(Input::Msg(Msg::Readout(Box::new(full_readout()))));
    assert_eq!(status(&a), "refreshed: 4 VMs, 3 images");
}

/// A VM, image or task key in an empty pane says there is nothing to act on (it did
/// nothing, silently).
#[test]
fn keys_in_empty_panes_say_so() {
    let mut a = sized_app();
    let mut empty = full_readout();
    empty.vms.clear();
    if let Some(s) = empty.slow.as_mut() {
        s.images.clear();
    }
    a.update(Input::Msg(Msg::Readout(Box::new(empty))));
    for k in [
        key('s'),
        key('d'),
        key('l'),
        key('y'),
        key('z'),
        code(KeyCode::Enter),
    ] {
        a.status = None;
        assert!(a.update(k.clone()).is_empty());
        assert!(a.dialog.is_none() && a.detail.is_none());
        assert_eq!(status(&a), "no VM selected: n starts one", "{k:?}");
    }
    a.update(key('2'));
    for k in [key('u'), key('d'), key('i')] {
        a.status = None;
        assert!(a.update(k.clone()).is_empty());
        assert_eq!(status(&a), "no image selected", "{k:?}");
    }
    a.update(key('4'));
    for k in [key('x'), code(KeyCode::Enter)] {
        a.status = None;
        assert!(a.update(k.clone()).is_empty());
        assert_eq!(status(&a), "no task selected", "{k:?}");
    }
    // `x` on a task that has ended says so.
    let id = a
        .data
        .add_task(smolvm::core::job::JobKind::Prune, "prune".into());
    a.update(Input::Msg(Msg::Task {
        id,
        update: TaskUpdate::Finished {
            state: TaskState::Done,
            summary: "reclaimed 0 B".into(),
            took_ms: 1,
        },
    }));
    assert!(a.update(key('x')).is_empty());
    assert_eq!(status(&a), "task 1 has ended (done): nothing to cancel");
}

/// `:pull PRESET` pulls what `image pull PRESET` would: the name goes to the pull task,
/// which resolves it by core's one rule (`pull::resolve`, tested against the command in
/// `tui_host`); `:pull` pulls the Images pane's selected image (they were "unknown
/// command"; issue 26 item 5).
#[test]
fn palette_pull_takes_a_preset_or_the_selected_image() {
    let mut a = full_app(160, 48);
    a.update(key(':'));
    typed(&mut a, "pull claude");
    let fx = a.update(code(KeyCode::Enter));
    assert_eq!(
        fx,
        vec![Effect::RunPull {
            task: 1,
            names: vec!["claude".into()]
        }]
    );
    assert!(a.dialog.is_none());
    // No preset: the Images pane's selected image, as `u` pulls it.
    a.update(key(':'));
    typed(&mut a, "pull");
    let fx = a.update(code(KeyCode::Enter));
    let [Effect::RunPull { names, .. }] = fx.as_slice() else {
        panic!("{fx:?}")
    };
    assert_eq!(names.len(), 1, "{names:?}");
    assert_eq!(a.focus, Pane::Tasks);
}

/// The palette uses the terminal's width (its hints and errors were cut at ~74 columns)
/// and a failed line is cleared, so the next command is not appended to it (the failed
/// line stays in the history).
#[test]
fn the_palette_is_as_wide_as_the_terminal_and_clears_after_a_failed_line() {
    let mut a = full_app(200, 50);
    a.update(key(':'));
    typed(&mut a, "frobnicate");
    assert!(a.update(code(KeyCode::Enter)).is_empty());
    let screen = render(&a);
    // The whole error, through its last word.
    assert!(screen.contains("unknown command ':frobnicate'"), "{screen}");
    assert!(screen.contains("help, quit"), "cut:\n{screen}");
    let Some(Dialog::Palette(p)) = &a.dialog else {
        panic!("the palette closed")
    };
    assert_eq!(p.text(), "", "the failed line stays in the input");
    typed(&mut a, "vms");
    let Some(Dialog::Palette(p)) = &a.dialog else {
        panic!("the palette closed")
    };
    assert_eq!(p.text(), "vms");
    // Up recalls the failed line.
    a.update(code(KeyCode::Up));
    let Some(Dialog::Palette(p)) = &a.dialog else {
        panic!("the palette closed")
    };
    assert_eq!(p.text(), "frobnicate");
    // At 80 columns the error wraps instead of being cut.
    let mut a = full_app(80, 24);
    a.update(key(':'));
    typed(&mut a, "frobnicate");
    a.update(code(KeyCode::Enter));
    let screen = render(&a);
    assert!(screen.contains("help, quit"), "cut:\n{screen}");
}

/// `text` is shown whole, or cut with `…` after at least `min` of its characters.
fn shown_or_cut(screen: &str, text: &str, min: usize) -> bool {
    if screen.contains(text) {
        return true;
    }
    let chars: Vec<char> = text.chars().collect();
    (min..chars.len()).any(|k| {
        let cut: String = chars[..k].iter().collect();
        screen.contains(&format!("{cut}…"))
    })
}

/// The Images pane keeps its STATE column when narrow (120×36, 80×24) and a cell cut to
/// its column ends with `…` — a state, a long version — instead of stopping mid-word
/// (issue 26 item 5).
#[test]
fn the_images_pane_keeps_state_and_cuts_with_an_ellipsis() {
    for (w, h) in [(120, 36), (80, 24)] {
        let mut a = sized_app();
        a.update(Input::Resize(w, h));
        let mut s = full_readout();
        if let Some(slow) = s.slow.as_mut() {
            slow.images.push(image(
                "0.0.14.post3-dev2",
                "codex-amd64-qemu",
                false,
                None,
                &[],
            ));
        }
        a.update(Input::Msg(Msg::Readout(Box::new(s))));
        a.update(key('2'));
        let pane_of = |a: &App| -> String {
            render(a)
                .lines()
                .skip_while(|l| !l.contains("Images ("))
                .take_while(|l| !l.contains("└") && !l.contains("┗"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let pane = pane_of(&a);
        assert!(pane.contains("STATE"), "{w}x{h}: no STATE column:\n{pane}");
        for state in ["stale", "kept: in use by VM vm-agent-1"] {
            assert!(
                shown_or_cut(&pane, state, 8.min(state.len())),
                "{w}x{h}: '{state}' is neither whole nor cut with …:\n{pane}"
            );
        }
        // The long version sorts last: brought into view.
        a.update(key('G'));
        let pane = pane_of(&a);
        assert!(
            shown_or_cut(&pane, "0.0.14.post3-dev2", 4),
            "{w}x{h}: the long version:\n{pane}"
        );
        assert!(
            !pane.contains("kept: in use by V│"),
            "{w}x{h}: cut without …:\n{pane}"
        );
    }
}

/// At 200 columns the VMs pane uses its width: every column shows, CREATED too (it left
/// ~95 columns empty).
#[test]
fn the_vms_pane_uses_a_wide_terminal() {
    let a = full_app(200, 50);
    let screen = render(&a);
    let header = screen
        .lines()
        .find(|l| l.contains("ID ") && l.contains("STATUS"))
        .unwrap();
    for col in ["RSS", "BACKEND", "CREATED"] {
        assert!(header.contains(col), "{col} missing:\n{header}");
    }
    assert!(screen.contains("2026-05-07T12:00:00+00:00"), "{screen}");
    let row = screen.lines().find(|l| l.contains("vm-12345")).unwrap();
    let used = row.trim_end_matches(['┃', '│', ' ', '"']).chars().count();
    assert!(used > 150, "the row ends at column {used}:\n{row}");
}

/// The VMs pane shows the template a sandbox was cloned from (`sandbox list`'s TEMPLATE,
/// the same cell: the snapshot's id, `-` for none) when there is room: it is the least
/// important column, left out at 160 columns.
#[test]
fn the_vms_pane_shows_the_template_a_sandbox_came_from_when_there_is_room() {
    let template = "warm-claude-code-1a2b3c4d-5e6f7a8b";
    let mut snap = full_readout();
    snap.vms[1].info.cloned_from = Some(template.into());
    let cli_cell = snap.vms[1]
        .info
        .cell(smolvm::core::table::VmCol::Template)
        .unwrap();
    for (w, shown) in [(230, true), (160, false)] {
        let mut a = app();
        a.update(Input::Resize(w, 48));
        a.update(Input::Msg(Msg::Readout(Box::new(snap.clone()))));
        let rows = screen_rows(&a);
        let header = rows.iter().find(|r| r.contains("STATUS")).unwrap();
        assert_eq!(header.contains("TEMPLATE"), shown, "{w}: {header}");
        let agent = rows.iter().find(|r| r.contains("vm-agent-1")).unwrap();
        assert_eq!(agent.contains(&cli_cell), shown, "{w}: {agent}");
    }
    // Its detail view says it too; a sandbox that is no clone's has no such line.
    let mut a = full_app(160, 48);
    a.update(key('j'));
    a.update(code(KeyCode::Enter));
    let mut d = detail_fixture();
    a.update(Input::Msg(Msg::Detail {
        id: vid("vm-agent-1"),
        generation: a.data.detail_gen.newest(),
        result: Ok(Box::new(d.clone())),
    }));
    assert!(!render(&a).contains("Cloned from"));
    d.cloned_from = Some(template.into());
    a.update(Input::Msg(Msg::Detail {
        id: vid("vm-agent-1"),
        generation: a.data.detail_gen.newest(),
        result: Ok(Box::new(d)),
    }));
    let screen = render(&a);
    let line = screen
        .lines()
        .find(|l| l.contains("Cloned from"))
        .unwrap_or_else(|| panic!("no template in the detail view:\n{screen}"));
    assert!(
        line.contains(&format!("Cloned from   {template}")),
        "{line}"
    );
}

/// SIGTERM, SIGHUP or SIGINT to the dashboard: every running task that can be cancelled is
/// (as `x` would: it stops or rolls back), the ones that cannot are waited for, and it
/// quits when none runs; a second signal quits at once. With nothing running it quits at
/// once.
#[test]
fn a_signal_cancels_what_runs_then_quits() {
    use smolvm::core::job::JobKind;
    let done = |id| {
        Input::Msg(Msg::Task {
            id,
            update: TaskUpdate::Finished {
                state: TaskState::Cancelled,
                summary: "cancelled".into(),
                took_ms: 1,
            },
        })
    };
    let mut a = sized_app();
    let pull = a.data.add_task(JobKind::Pull, "pull codex".into());
    let port = a.data.add_task(JobKind::Port, "port".into());
    let build = a
        .data
        .add_task(JobKind::Build, "image build --preset codex".into());
    let fx = a.update(Input::Terminate("SIGTERM".into()));
    let mut cancelled: Vec<u64> = fx
        .iter()
        .map(|f| match f {
            Effect::Cancel { task } => *task,
            other => panic!("{other:?}"),
        })
        .collect();
    cancelled.sort();
    assert_eq!(cancelled, [pull, build]);
    assert!(!a.should_quit);
    assert!(
        status(&a).starts_with("SIGTERM: cancelling 3 running task(s)"),
        "{}",
        status(&a)
    );
    a.update(done(pull));
    a.update(done(build));
    assert!(!a.should_quit, "the port change still runs");
    a.update(done(port));
    assert!(a.should_quit);

    // Meanwhile nothing new starts; the quit key does not wait.
    let mut a = sized_app();
    a.data.add_task(JobKind::Start, "start".into());
    a.update(Input::Terminate("SIGTERM".into()));
    assert!(
        status(&a).ends_with("(SIGTERM again or q: quit now)"),
        "{}",
        status(&a)
    );
    assert!(a.update(key('p')).is_empty());
    assert!(a.dialog.is_none());
    assert!(!a.should_quit);
    a.update(key('q'));
    assert!(a.should_quit);

    // A second signal does not wait.
    let mut a = sized_app();
    a.data.add_task(JobKind::Start, "start".into());
    assert_eq!(a.update(Input::Terminate("SIGHUP".into())).len(), 1);
    assert!(!a.should_quit);
    assert!(a.update(Input::Terminate("SIGHUP".into())).is_empty());
    assert!(a.should_quit);

    // Nothing runs: at once.
    let mut a = sized_app();
    assert!(a.update(Input::Terminate("SIGINT".into())).is_empty());
    assert!(a.should_quit);
}

/// The worker keeps a task's cancel token while its job runs, not for the whole session:
/// after many tasks it holds only what may still be cancelled.
#[test]
fn the_worker_lets_go_of_the_cancel_tokens_of_ended_tasks() {
    use smolvm::tui::app::TaskKind;
    let h = support::Home::new();
    let kept = support::tui::RealWorker::block_on(&h.env(), |mut w| async move {
        let mut a = sized_app();
        for i in 0..7 {
            if i == 6 {
                // The ended jobs' threads return a moment after their last message.
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
            let task = a
                .data
                .add_task(TaskKind::RemoveImages, "image rm nope".into());
            w.run(Effect::RunRemoveImages {
                task,
                names: vec!["nope".into()],
            });
            w.finish_first_task(&mut a, 30).await;
            assert_eq!(a.data.tasks[0].state, TaskState::Failed);
        }
        w.workers.kept_cancels()
    });
    // The last task's at most (its job may not have dropped it yet).
    assert!(kept <= 1, "{kept} tokens kept for 7 ended tasks");
}

/// `s` on VMs none of which runs starts them again (`sandbox start`, as a task, no
/// confirmation: nothing is lost); on running ones it stops them after a confirmation, as
/// before; read-only mode refuses the start.
#[test]
fn s_starts_stopped_vms_again_and_stops_running_ones_after_a_confirmation() {
    let pick = |a: &mut App, text: &str| {
        a.update(key(':'));
        typed(a, &format!("filter {text}"));
        a.update(code(KeyCode::Enter));
    };
    let mut a = full_app(160, 48);
    pick(&mut a, "production");
    let fx = a.update(key('s'));
    match fx.as_slice() {
        [Effect::RunBoot { task, ids }] => {
            assert_eq!(ids, &[vid("production-vm")]);
            assert_eq!(a.data.tasks[0].id, *task);
        }
        other => panic!("{other:?}"),
    }
    assert!(a.dialog.is_none());
    assert_eq!(a.data.tasks[0].kind, smolvm::core::job::JobKind::Start);
    assert_eq!(a.data.tasks[0].title, "start production-vm");
    // A row that says running but whose VMM is gone is startable too, by core's rule
    // (`sandbox start` boots it): `s` starts it, no stop confirmation.
    let mut a = full_app(160, 48);
    pick(&mut a, "vm-12345");
    assert!(a.data.vms[0].info.stale);
    let fx = a.update(key('s'));
    assert!(
        matches!(&fx[..], [Effect::RunBoot { ids, .. }] if ids == &[vid("vm-12345")]),
        "{fx:?} {}",
        a.dialog.is_some()
    );

    let mut a = full_app(160, 48);
    pick(&mut a, "vm-agent");
    assert!(a.update(key('s')).is_empty());
    assert!(matches!(
        a.dialog,
        Some(Dialog::Confirm(ConfirmAction::Stop(_)))
    ));

    let mut a = readonly_full_app(160, 48);
    pick(&mut a, "production");
    assert!(a.update(key('s')).is_empty());
    assert_eq!(status(&a), "read-only mode: refusing to start sandboxes");
}

/// The dashboard's start of a stopped VM is `sandbox start`'s: a VM that is not there
/// fails with the command's words.
#[test]
fn the_dashboards_start_of_a_vm_fails_as_sandbox_start_does() {
    fails_as_the_command(
        &["sandbox", "start", "vm-gone-1"],
        smolvm::core::job::JobKind::Start,
        |task| Effect::RunBoot {
            task,
            ids: vec![vid("vm-gone-1")],
        },
    );
}

/// `E` is `sandbox env set` / `unset` on the selected VM: a form whose key is checked
/// with core's rule as you type and whose value is masked (never drawn, never in the
/// task's title); `Enter` starts one task and the form waits for it, core's refusal stays
/// in it, success closes it. Tab to the verb and a choice key make it an unset. Read-only
/// mode refuses it.
#[test]
fn e_sets_and_unsets_a_vms_env_var_without_ever_drawing_the_value() {
    use smolvm::core::guest_env::{EnvChange, EnvValue};
    let secret = "sk-secret-never-drawn";
    let mut a = full_app(160, 48);
    a.update(key('j'));
    // The form asks for the VM's keys (its reminder), as the detail view reads them.
    let fx = a.update(key('E'));
    assert!(matches!(a.dialog, Some(Dialog::Env(_))), "{:?}", a.status);
    assert!(
        matches!(fx.as_slice(), [Effect::LoadEnvKeys { id, .. }] if id.as_str() == "vm-agent-1"),
        "{fx:?}"
    );
    assert!(render(&a).contains("Set now: reading…"));
    typed(&mut a, "1BAD");
    assert!(a.update(code(KeyCode::Enter)).is_empty());
    let shown = render(&a);
    assert!(
        shown.contains("Invalid environment variable name \"1BAD\""),
        "{shown}"
    );
    for _ in 0..4 {
        a.update(code(KeyCode::Backspace));
    }
    typed(&mut a, "API_KEY");
    a.update(code(KeyCode::Tab));
    typed(&mut a, secret);
    let shown = render(&a);
    assert!(
        !shown.contains(secret) && shown.contains("•••••"),
        "{shown}"
    );
    let fx = a.update(code(KeyCode::Enter));
    let [Effect::RunEnv { task, id, change }] = fx.as_slice() else {
        panic!("{fx:?}")
    };
    assert_eq!(id.as_str(), "vm-agent-1");
    assert_eq!(
        *change,
        EnvChange::Set {
            key: "API_KEY".into(),
            value: EnvValue(secret.as_bytes().to_vec()),
        }
    );
    let t = a.data.tasks.iter().find(|t| t.id == *task).unwrap();
    assert_eq!(t.kind, smolvm::core::job::JobKind::Env);
    assert!(
        !t.title.contains(secret) && t.title.contains("API_KEY"),
        "{}",
        t.title
    );
    assert!(
        !format!("{fx:?}").contains(secret),
        "the value is printed by Debug"
    );
    // Core's refusal stays in the form; the value is still not drawn.
    let refusal = "Sandbox 'vm-agent-1' is not running (status: stopped).";
    a.update(Input::Msg(Msg::Task {
        id: *task,
        update: TaskUpdate::Finished {
            state: TaskState::Failed,
            summary: refusal.into(),
            took_ms: 3,
        },
    }));
    let shown = render(&a);
    assert!(matches!(a.dialog, Some(Dialog::Env(_))));
    assert!(
        shown.contains(refusal) && !shown.contains(secret),
        "{shown}"
    );
    // An unset: the verb field, a choice key; then success closes the form. Away from its
    // field, the value is a fixed mask: not even its length shows.
    a.update(code(KeyCode::BackTab));
    let shown = render(&a);
    let longest = shown
        .split(|c| c != '•')
        .map(|run| run.chars().count())
        .max()
        .unwrap_or(0);
    assert_eq!(longest, 8, "{shown}");
    a.update(code(KeyCode::BackTab));
    a.update(code(KeyCode::Right));
    let fx = a.update(code(KeyCode::Enter));
    let [Effect::RunEnv { task, change, .. }] = fx.as_slice() else {
        panic!("{fx:?}")
    };
    assert_eq!(
        *change,
        EnvChange::Unset {
            key: "API_KEY".into()
        }
    );
    a.update(Input::Msg(Msg::Task {
        id: *task,
        update: TaskUpdate::Finished {
            state: TaskState::Done,
            summary: "Unset API_KEY in vm-agent-1.".into(),
            took_ms: 3,
        },
    }));
    assert!(a.dialog.is_none());
    assert_eq!(status(&a), "Unset API_KEY in vm-agent-1.");

    let mut ro = readonly_full_app(160, 48);
    ro.update(key('E'));
    assert!(ro.dialog.is_none());
    assert!(
        status(&ro).starts_with("read-only mode: refusing to change a sandbox's environment"),
        "{}",
        status(&ro)
    );
}

/// The dashboard's env change is `sandbox env set`'s: on a sandbox that is not there it
/// fails in the command's words.
#[test]
fn the_dashboards_env_set_fails_as_sandbox_env_set_does() {
    use smolvm::core::guest_env::{EnvChange, EnvValue};
    fails_as_the_command(
        &["sandbox", "env", "set", "vm-gone-1", "K=v"],
        smolvm::core::job::JobKind::Env,
        |task| Effect::RunEnv {
            task,
            id: vid("vm-gone-1"),
            change: EnvChange::Set {
                key: "K".into(),
                value: EnvValue(b"v".to_vec()),
            },
        },
    );
}

/// `:exec ID -- COMMAND…` is `sandbox exec ID -- COMMAND…`: a task (its title names the
/// VM, not the command) whose output goes to a note; a line without `--` or a command is
/// refused with its form; read-only mode refuses it as the command. Of a sandbox that is
/// not there it fails in the command's words.
#[test]
fn the_dashboards_exec_is_sandbox_exec() {
    let mut a = full_app(160, 48);
    a.update(key(':'));
    typed(&mut a, "exec vm-agent-1 -- cat /etc/hostname");
    match a.update(code(KeyCode::Enter)).as_slice() {
        [Effect::RunExec { id, command, .. }] => {
            assert_eq!(id.as_str(), "vm-agent-1");
            assert_eq!(command, &["cat", "/etc/hostname"]);
        }
        other => panic!("{other:?}"),
    }
    let t = &a.data.tasks[0];
    assert_eq!(t.kind, smolvm::core::job::JobKind::Exec);
    assert!(!t.title.contains("hostname"), "{}", t.title);
    for bad in ["exec vm-agent-1 cat", "exec vm-agent-1 --"] {
        a.update(key(':'));
        typed(&mut a, bad);
        assert!(a.update(code(KeyCode::Enter)).is_empty(), "{bad}");
        assert!(render(&a).contains("exec ID -- COMMAND"), "{bad}");
        a.update(code(KeyCode::Esc));
    }

    let mut ro = readonly_full_app(160, 48);
    ro.update(key(':'));
    typed(&mut ro, "exec vm-agent-1 -- true");
    assert!(ro.update(code(KeyCode::Enter)).is_empty());
    assert!(ro.data.tasks.is_empty());

    fails_as_the_command(
        &["sandbox", "exec", "vm-gone-1", "--", "true"],
        smolvm::core::job::JobKind::Exec,
        |task| Effect::RunExec {
            task,
            id: vid("vm-gone-1"),
            command: vec!["true".into()],
        },
    );
}

/// `:open-ui ID` is `openclaw open-ui ID --no-browser`: a task whose one-time link goes to
/// a note (never to the task's summary); a bad id is refused on the line; read-only mode
/// refuses it as the command does (it forwards a port). Of a sandbox that is not there it
/// fails in the command's words.
#[test]
fn the_dashboards_open_ui_is_openclaw_open_ui() {
    let mut a = full_app(160, 48);
    a.update(key(':'));
    typed(&mut a, "open-ui vm-agent-1");
    match a.update(code(KeyCode::Enter)).as_slice() {
        [Effect::RunOpenUi { id, .. }] => assert_eq!(id.as_str(), "vm-agent-1"),
        other => panic!("{other:?}"),
    }
    assert_eq!(a.data.tasks[0].kind, smolvm::core::job::JobKind::OpenUi);
    a.update(key(':'));
    typed(&mut a, "open-ui ../x");
    assert!(a.update(code(KeyCode::Enter)).is_empty());

    let mut ro = readonly_full_app(160, 48);
    ro.update(key(':'));
    typed(&mut ro, "open-ui vm-agent-1");
    assert!(ro.update(code(KeyCode::Enter)).is_empty());
    assert!(ro.data.tasks.is_empty());

    fails_as_the_command(
        &["openclaw", "open-ui", "vm-gone-1", "--no-browser"],
        smolvm::core::job::JobKind::OpenUi,
        |task| Effect::RunOpenUi {
            task,
            id: vid("vm-gone-1"),
        },
    );
}

/// `:clone SNAPSHOT [COUNT]` is `sandbox clone`: a task over core's clone, failing in the
/// command's words for a snapshot that is not there; a bad count is refused on the line;
/// read-only mode refuses it.
#[test]
fn the_dashboards_clone_is_sandbox_clones() {
    let mut a = full_app(160, 48);
    a.update(key(':'));
    typed(&mut a, "clone snap-1 3");
    match a.update(code(KeyCode::Enter)).as_slice() {
        [Effect::RunClone {
            snapshot, count, ..
        }] => assert_eq!((snapshot.as_str(), *count), ("snap-1", 3)),
        other => panic!("{other:?}"),
    }
    assert_eq!(a.data.tasks[0].kind, smolvm::core::job::JobKind::Clone);
    // Counts outside 1…64 (what `--count` takes) are refused on the line: a huge one ran
    // core's id search for billions of clones.
    for bad in ["0", "65", "4000000000"] {
        a.update(key(':'));
        typed(&mut a, &format!("clone snap-1 {bad}"));
        assert!(a.update(code(KeyCode::Enter)).is_empty(), "{bad}");
        let Some(Dialog::Palette(p)) = &a.dialog else {
            panic!("no palette")
        };
        assert_eq!(
            p.error.as_deref(),
            Some(format!("clone takes a count from 1 to 64, not '{bad}'").as_str())
        );
        a.update(code(KeyCode::Esc));
    }

    let mut ro = App::new(Keymap::defaults(), Theme::defaults(true), true);
    ro.update(Input::Resize(160, 48));
    ro.update(key(':'));
    typed(&mut ro, "clone snap-1");
    assert!(ro.update(code(KeyCode::Enter)).is_empty());
    assert_eq!(
        status(&ro),
        "read-only mode: refusing to clone snapshots into sandboxes"
    );

    fails_as_the_command(
        &["sandbox", "clone", "snap-gone"],
        smolvm::core::job::JobKind::Clone,
        |task| Effect::RunClone {
            task,
            snapshot: "snap-gone".into(),
            count: 1,
        },
    );
}

/// What the input fuzzer (`tests/tui_fuzz.rs`) found, each as its shrunk input: the
/// cleanup dialog on a terminal shorter than its 9 rows, a task whose progress counts are
/// past what a percentage in u64 can hold, and a `sandbox prune` plan whose sizes add up
/// past u64 — each drawn, none a panic.
#[test]
fn the_fuzzers_findings_render_without_a_panic() {
    let mut a = full_app(80, 10);
    a.update(key('c'));
    assert!(a.dialog.is_some());
    render(&a);

    let mut a = full_app(160, 48);
    a.update(key('2'));
    a.update(key('u'));
    a.update(Input::Msg(Msg::Task {
        id: 1,
        update: TaskUpdate::Progress {
            done: u64::MAX,
            total: u64::MAX,
        },
    }));
    a.update(key('4'));
    assert!(render(&a).contains("100%"));

    let mut a = full_app(160, 48);
    typed(&mut a, ":sandbox prune");
    a.update(code(KeyCode::Enter));
    let leftover = |i: u64| smolvm::core::leftovers::Leftover {
        vm_id: format!("vm-gone{i}"),
        path: format!("/d/vm-gone{i}.ext4").into(),
        kind: "disk",
        size_bytes: u64::MAX,
        retained: false,
    };
    a.update(Input::Msg(Msg::LeftoversPlan {
        generation: a.data.leftovers_gen.newest(),
        result: Ok(smolvm::core::leftovers::LeftoverPlan {
            candidates: vec![leftover(1), leftover(2)],
            kept: vec![],
        }),
    }));
    assert!(render(&a).contains("vm-gone1"));
}
