//! The Tasks pane: this session's tasks, newest first; `x` cancels the selected one when
//! its kind can be cancelled (the footer offers it only then).

use super::{Command, Component, Cx, Intent, MOVE};
use crate::core::readonly::Action as Mutation;
use crate::tui::app::Effect;
use crate::tui::data::{Data, TaskState};
use crate::tui::keymap::{Action, Scope};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TasksPane {
    /// The selected task (an index into the data's tasks).
    pub selected: usize,
}

const COMMANDS: [Action; 4] = [
    Action::Cancel,
    Action::Prune,
    Action::Cleanup,
    Action::Palette,
];

impl TasksPane {
    /// The selected task runs and can be cancelled.
    pub fn cancellable(&self, data: &Data) -> bool {
        data.tasks
            .get(self.selected)
            .is_some_and(|t| t.state == TaskState::Running && t.kind.cancellable())
    }
}

impl Component for TasksPane {
    fn scope(&self) -> Scope {
        Scope::Tasks
    }

    fn commands(&self, cx: &Cx) -> Vec<Command> {
        COMMANDS
            .into_iter()
            .map(|a| Command {
                available: a != Action::Cancel || self.cancellable(cx.data),
                ..Command::on(a)
            })
            .collect()
    }

    fn also(&self) -> &'static [Action] {
        &MOVE
    }

    fn mutation(&self, _a: Action, _cx: &Cx) -> Option<Mutation> {
        None
    }

    fn on_action(&mut self, a: Action, cx: &Cx) -> Option<Vec<Intent>> {
        if super::move_in(&mut self.selected, cx.data.tasks.len(), a, cx.page) {
            return Some(Vec::new());
        }
        if a != Action::Cancel {
            return None;
        }
        let Some(t) = cx.data.tasks.get(self.selected) else {
            return Some(Vec::new());
        };
        if t.state != TaskState::Running {
            return Some(Vec::new());
        }
        Some(match t.kind.cancel() {
            crate::core::job::Cancel::Not(why) => vec![Intent::Status(why.into())],
            crate::core::job::Cancel::BetweenItems => vec![
                Intent::Status(format!(
                    "cancelling task {} (it stops before its next item)…",
                    t.id
                )),
                Intent::Effects(vec![Effect::Cancel { task: t.id }]),
            ],
        })
    }
}
