//! The commands each pane declares (gitui's `commands()`): the action, its key from the
//! keymap, its label and whether it can run now. The footer is drawn from them, and help
//! lists only the keys of actions a pane offers (its commands, moving, and the global
//! ones).

use super::*;

/// One command a pane offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandInfo {
    pub action: Action,
    /// The first key bound to it where the pane reaches it (`p`, `Ctrl-c`).
    pub key: String,
    pub label: &'static str,
    /// It can run now (not a change in read-only mode; `x` only on a cancellable task).
    pub enabled: bool,
}

/// Shown in every pane, first.
const ALWAYS: [Action; 3] = [Action::Help, Action::Quit, Action::ToggleMouse];

/// Each pane's own commands, in the footer's priority order.
fn declared(pane: Pane) -> Vec<Action> {
    match pane {
        Pane::Vms => [
            Action::Start,
            Action::Stop,
            Action::Delete,
            Action::Logs,
            Action::CopySsh,
            Action::Mark,
            Action::Filter,
            Action::Prune,
            Action::Cleanup,
            Action::Palette,
            Action::Detail,
        ]
        .into_iter()
        .chain(Action::ON_VMS)
        .collect(),
        Pane::Images => vec![
            Action::Inspect,
            Action::Pull,
            Action::Delete,
            Action::Mark,
            Action::Prune,
            Action::Filter,
            Action::SortNext,
            Action::Cleanup,
            Action::Palette,
        ],
        Pane::Logs => vec![
            Action::Search,
            Action::NextMatch,
            Action::PrevMatch,
            Action::Follow,
            Action::Wrap,
            Action::AppLog,
        ],
        Pane::Tasks => vec![
            Action::Cancel,
            Action::Prune,
            Action::Cleanup,
            Action::Palette,
        ],
    }
}

/// What a pane handles besides its footer commands: moving in it, and (list panes whose
/// rows can be filtered and sorted) filtering and sorting.
fn also(pane: Pane) -> &'static [Action] {
    const MOVE: [Action; 6] = [
        Action::Up,
        Action::Down,
        Action::Top,
        Action::Bottom,
        Action::PageUp,
        Action::PageDown,
    ];
    const LIST: [Action; 10] = [
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
    match pane {
        Pane::Vms | Pane::Images => &LIST,
        Pane::Logs | Pane::Tasks => &MOVE,
    }
}

/// The action changes VMs, images or caches (refused in read-only mode).
fn changes(a: Action) -> bool {
    matches!(
        a,
        Action::Start
            | Action::Stop
            | Action::Delete
            | Action::Prune
            | Action::Cleanup
            | Action::Pull
    ) || Action::ON_VMS.contains(&a)
}

impl App {
    /// `pane` does something with `action` (help lists only these): its commands, moving,
    /// and every global action.
    pub fn offers(&self, pane: Pane, action: Action) -> bool {
        ALWAYS.contains(&action)
            || declared(pane).contains(&action)
            || also(pane).contains(&action)
            || !self.keymap.keys_for(Scope::Global, action).is_empty()
    }

    /// The commands `pane` offers, in priority order (the footer leaves out the last ones
    /// first when it is too narrow).
    pub fn commands(&self, pane: Pane) -> Vec<CommandInfo> {
        let scope = pane.scope();
        ALWAYS
            .into_iter()
            .chain(declared(pane))
            .map(|a| CommandInfo {
                action: a,
                key: self.keymap.hint(scope, a),
                label: a.describe(),
                enabled: !(self.readonly && changes(a))
                    && (a != Action::Cancel || self.selected_task_cancellable()),
            })
            .collect()
    }
}
