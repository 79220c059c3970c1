//! The panes as components (gitui's `Component`): each pane — VMs, Images, Logs, Tasks,
//! and the VM detail view over them — owns its rows' view state (selection, filter, sort by a column enum, marks, scroll),
//! reads its own actions, says what each one changes (read-only mode refuses those) and
//! declares the commands it offers ([`Component::commands`]); the footer and the help
//! overlay are generated from those declarations ([`command_infos`], [`help_actions`]).
//! A pane never runs anything itself: it answers [`Intent`]s the app carries out
//! (open a dialog, ask for a confirmation, start a task through a [`Request`]).
//!
//! `table.rs` the generic table (cells from columns, bottom's `DataToCell`) · `vms.rs`,
//! `images.rs`, `logs.rs`, `tasks.rs` the panes.

pub mod images;
pub mod logs;
pub mod table;
pub mod tasks;
pub mod vms;

use crate::core::readonly::Action as Mutation;
use crate::core::vm::VmId;
use crate::tui::app::{Effect, LogSource};
use crate::tui::data::Data;
use crate::tui::dialogs::{Dialog, Request};
use crate::tui::keymap::{Action, Key, Keymap, Scope};

/// What a pane sees of the app while it handles an action or declares its commands.
pub struct Cx<'a> {
    pub data: &'a Data,
    pub keymap: &'a Keymap,
    pub readonly: bool,
    /// Rows of the pane that fit on screen (for paging).
    pub page: usize,
    /// The presets the start form offers.
    pub presets: &'a [crate::core::presets::Preset],
    /// The VMs pane's selected VM (the Logs pane switches to its log).
    pub selected_vm: Option<String>,
}

/// What a pane asks the app to do after an action.
pub enum Intent {
    /// Say this in the status line.
    Status(String),
    /// Open this dialog.
    Open(Box<Dialog>),
    /// Carry this out as a dialog's request (a task, a confirmation).
    Request(Request),
    /// Run these effects.
    Effects(Vec<Effect>),
    /// Show this log in the Logs pane (focused).
    ShowLog(LogSource),
    /// Close the view (the detail view).
    Close,
    /// Open VM `id`'s detail view.
    Detail(VmId),
    /// Read VM `id`'s env keys (`env list`'s keys: the env form's reminder), unless a
    /// detail view reads them.
    ReadEnvKeys(VmId),
    /// Open a scrollable note: its title and lines (a task's whole message).
    Note(String, Vec<String>),
    /// `image inspect` of the cache `<version>/<name>`.
    Inspect { version: String, name: String },
    /// A session in VM `id` (its agent when `attach`, else a shell), once its sshd answers.
    Session { id: VmId, attach: bool },
}

impl Intent {
    pub fn open(d: Dialog) -> Intent {
        Intent::Open(Box::new(d))
    }
}

/// One command a pane declares: the action, whether it can run now (beyond read-only
/// mode, which [`command_infos`] applies) and its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command {
    pub action: Action,
    pub available: bool,
    pub label: &'static str,
    /// An action shown with it, as one command (`j/k scroll`).
    pub with: Option<Action>,
}

impl Command {
    /// `action`, labelled as the keymap describes it.
    pub fn on(action: Action) -> Command {
        Command::labelled(action, action.describe())
    }

    pub fn labelled(action: Action, label: &'static str) -> Command {
        Command {
            action,
            available: true,
            label,
            with: None,
        }
    }

    /// Two actions shown as one command (`j/k scroll`).
    pub fn pair(action: Action, with: Action, label: &'static str) -> Command {
        Command {
            with: Some(with),
            ..Command::labelled(action, label)
        }
    }
}

/// A pane.
pub trait Component {
    /// The keymap section its keys come from.
    fn scope(&self) -> Scope;

    /// The action `key` triggers in it (by default: its section's chain).
    fn action_for(&self, keymap: &Keymap, key: &Key) -> Option<Action> {
        keymap.lookup(self.scope(), key)
    }

    /// The commands of the whole app it shows first (help, quit, mouse in a pane).
    fn global_commands(&self) -> &'static [Action] {
        &ALWAYS
    }

    /// The commands it offers, in the footer's priority order.
    fn commands(&self, cx: &Cx) -> Vec<Command>;

    /// What it handles besides its commands (moving, filtering, sorting): help lists
    /// these too.
    fn also(&self) -> &'static [Action];

    /// What `a` would change (read-only mode refuses it); `None` for looking.
    fn mutation(&self, a: Action, cx: &Cx) -> Option<Mutation>;

    /// Carry out `a`: `None` when it is not this pane's.
    fn on_action(&mut self, a: Action, cx: &Cx) -> Option<Vec<Intent>>;

    /// Esc when no action is bound to it.
    fn on_escape(&mut self) {}
}

/// Moving in a pane.
pub const MOVE: [Action; 6] = [
    Action::Up,
    Action::Down,
    Action::Top,
    Action::Bottom,
    Action::PageUp,
    Action::PageDown,
];

/// Moving, filtering and sorting in a table pane.
pub const TABLE: [Action; 10] = [
    Action::Up,
    Action::Down,
    Action::Top,
    Action::Bottom,
    Action::PageUp,
    Action::PageDown,
    Action::Filter,
    Action::SortNext,
    Action::SortReverse,
    Action::ClearMarks,
];

/// Offered in every pane, first.
pub const ALWAYS: [Action; 3] = [Action::Help, Action::Quit, Action::ToggleMouse];

/// Carry out `a` in `c`: `Err` with what it would change when read-only mode refuses it,
/// `None` when it is not `c`'s.
pub fn dispatch(
    c: &mut dyn Component,
    a: Action,
    cx: &Cx,
) -> Option<Result<Vec<Intent>, Mutation>> {
    match c.mutation(a, cx) {
        Some(m) if cx.readonly => Some(Err(m)),
        _ => c.on_action(a, cx).map(Ok),
    }
}

/// What a global action changes (read-only mode refuses it).
pub fn global_mutation(a: Action) -> Option<Mutation> {
    match a {
        Action::Prune => Some(Mutation::Prune),
        Action::Cleanup => Some(Mutation::Cleanup),
        _ => None,
    }
}

/// One command as the footer and help show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandInfo {
    pub action: Action,
    /// The first key bound to it where the pane reaches it (`p`, `Ctrl-c`).
    pub key: String,
    pub label: &'static str,
    /// It can run now (not a change in read-only mode; `x` only on a cancellable task).
    pub enabled: bool,
}

/// The commands `c` offers (the global ones first), with their keys, as the footer shows
/// them: a command that changes something is disabled in read-only mode.
pub fn command_infos(c: &dyn Component, cx: &Cx) -> Vec<CommandInfo> {
    let scope = c.scope();
    c.global_commands()
        .iter()
        .copied()
        .map(Command::on)
        .chain(c.commands(cx))
        .map(|cmd| {
            let a = cmd.action;
            let changes = c.mutation(a, cx).or(global_mutation(a)).is_some();
            let mut key = cx.keymap.hint(scope, a);
            if let Some(b) = cmd.with {
                key = format!("{key}/{}", cx.keymap.hint(scope, b));
            }
            CommandInfo {
                action: a,
                key,
                label: cmd.label,
                enabled: cmd.available && !(cx.readonly && changes),
            }
        })
        .collect()
}

/// `c` does something with `a` (help lists only these): its commands, what it also
/// handles, and every global action.
pub fn offers(c: &dyn Component, cx: &Cx, a: Action) -> bool {
    ALWAYS.contains(&a)
        || c.commands(cx).iter().any(|x| x.action == a)
        || c.also().contains(&a)
        || !cx.keymap.keys_for(Scope::Global, a).is_empty()
}

/// A help section: a keymap section and the bindings of what a pane offers from it.
pub type HelpSection = (Scope, Vec<HelpLine>);

/// One line of help: an action, every key bound to it in the section, and its label (the
/// one the pane's command declares, else the keymap's description).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelpLine {
    pub action: Action,
    pub keys: Vec<Key>,
    pub label: &'static str,
}

/// The help overlay's sections for `c`: each keymap section the pane reaches, with the
/// bindings of the actions it offers, labelled as its commands are.
pub fn help_actions(c: &dyn Component, cx: &Cx) -> Vec<HelpSection> {
    let declared = c.commands(cx);
    let label = |a: Action| {
        declared
            .iter()
            .find(|d| d.action == a)
            .map_or(a.describe(), |d| d.label)
    };
    c.scope()
        .chain()
        .iter()
        .map(|scope| {
            let lines = cx
                .keymap
                .scope_bindings(*scope)
                .into_iter()
                .filter(|(a, _)| offers(c, cx, *a))
                .map(|(action, keys)| HelpLine {
                    action,
                    keys,
                    label: label(action),
                })
                .collect::<Vec<_>>();
            (*scope, lines)
        })
        .filter(|(_, b)| !b.is_empty())
        .collect()
}

/// Move a selection by `by` in a list of `len` rows.
pub fn step(sel: &mut usize, len: usize, by: isize) {
    *sel = sel.saturating_add_signed(by).min(len.saturating_sub(1));
}

/// Moving in a list of `len` rows: whether `a` was a move.
pub fn move_in(sel: &mut usize, len: usize, a: Action, page: usize) -> bool {
    match a {
        Action::Up => step(sel, len, -1),
        Action::Down => step(sel, len, 1),
        Action::PageUp => step(sel, len, -(page as isize)),
        Action::PageDown => step(sel, len, page as isize),
        Action::Top => *sel = 0,
        Action::Bottom => *sel = len.saturating_sub(1),
        _ => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx<'a>(data: &'a Data, keymap: &'a Keymap, readonly: bool) -> Cx<'a> {
        Cx {
            data,
            keymap,
            readonly,
            page: 10,
            presets: &[],
            selected_vm: None,
        }
    }

    /// A pane that declares one command and handles nothing else.
    struct OnlyStop;

    impl Component for OnlyStop {
        fn scope(&self) -> Scope {
            Scope::Vms
        }
        fn commands(&self, _cx: &Cx) -> Vec<Command> {
            vec![Command::on(Action::Stop)]
        }
        fn also(&self) -> &'static [Action] {
            &[]
        }
        fn mutation(&self, a: Action, _cx: &Cx) -> Option<Mutation> {
            (a == Action::Stop).then_some(Mutation::Stop)
        }
        fn on_action(&mut self, _a: Action, _cx: &Cx) -> Option<Vec<Intent>> {
            None
        }
    }

    #[test]
    fn the_footer_is_the_declared_commands_with_their_keys() {
        let (data, km) = (Data::default(), Keymap::defaults());
        let got: Vec<(String, &str, bool)> = command_infos(&OnlyStop, &cx(&data, &km, false))
            .into_iter()
            .map(|c| (c.key, c.label, c.enabled))
            .collect();
        assert_eq!(
            got,
            [
                ("?".to_string(), "help", true),
                ("q".to_string(), "quit", true),
                ("m".to_string(), "mouse", true),
                ("s".to_string(), "stop", true),
            ]
        );
        // Read-only mode disables what the pane says changes something.
        let ro = command_infos(&OnlyStop, &cx(&data, &km, true));
        assert!(!ro[3].enabled);
        assert!(ro[..3].iter().all(|c| c.enabled));
        // A remapped key shows in the footer.
        let km = Keymap::with_user("[vms]\nstop = [\"K\"]\n", "u.toml");
        let infos = command_infos(&OnlyStop, &cx(&data, &km, false));
        assert_eq!(infos[3].key, "K");
    }

    #[test]
    fn help_lists_what_the_pane_declares_and_the_global_keys_only() {
        let (data, km) = (Data::default(), Keymap::defaults());
        let help = help_actions(&OnlyStop, &cx(&data, &km, false));
        let scopes: Vec<Scope> = help.iter().map(|(s, _)| *s).collect();
        // Nothing of [list] (it handles no moving), [vms] only its one command.
        assert_eq!(scopes, [Scope::Vms, Scope::Global]);
        assert_eq!(
            help[0].1.iter().map(|l| l.action).collect::<Vec<_>>(),
            [Action::Stop]
        );
        assert!(help[1].1.iter().any(|l| l.action == Action::Prune));
        // The real VMs pane offers its table moves and the VM actions too.
        let vms = vms::VmsPane::default();
        let help = help_actions(&vms, &cx(&data, &km, false));
        let all: Vec<Action> = help
            .iter()
            .flat_map(|(_, b)| b.iter().map(|l| l.action))
            .collect();
        for a in [
            Action::Down,
            Action::SortNext,
            Action::Start,
            Action::Network,
        ] {
            assert!(all.contains(&a), "{a:?}");
        }
        assert!(!all.contains(&Action::Search), "the Logs pane's");
    }

    /// The detail view is a component too: its hint is its declared commands, its own
    /// keys first (none of the panes' global ones), the VMs pane's on its VM after.
    #[test]
    fn the_detail_view_declares_its_commands_with_the_keys_it_reaches() {
        let (data, km) = (Data::default(), Keymap::defaults());
        let d = crate::tui::dialogs::DetailView::new(&VmId::known("vm-1"));
        let infos = command_infos(&d, &cx(&data, &km, true));
        let shown: Vec<(String, &str, bool)> = infos
            .iter()
            .take(6)
            .map(|c| (c.key.clone(), c.label, c.enabled))
            .collect();
        assert_eq!(
            shown,
            [
                ("Esc".to_string(), "back", true),
                ("j/k".to_string(), "scroll", true),
                ("Tab".to_string(), "choose snapshot", true),
                ("r".to_string(), "restore", false),
                ("x".to_string(), "delete", false),
                ("z".to_string(), "pause", false),
            ]
        );
        assert!(infos.iter().all(|c| !ALWAYS.contains(&c.action)));
    }

    #[test]
    fn the_tasks_pane_offers_cancel_only_on_a_running_cancellable_task() {
        let km = Keymap::defaults();
        let mut data = Data::default();
        let tasks = tasks::TasksPane::default();
        let cancel = |data: &Data| {
            command_infos(&tasks, &cx(data, &km, false))
                .into_iter()
                .find(|c| c.action == Action::Cancel)
                .map(|c| c.enabled)
        };
        assert_eq!(cancel(&data), Some(false));
        data.add_task(crate::core::job::JobKind::Prune, "prune".into());
        assert_eq!(cancel(&data), Some(true));
    }
}
