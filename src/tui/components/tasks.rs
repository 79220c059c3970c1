//! The Tasks pane: this session's tasks, newest first; `x` cancels the selected one when
//! its kind can be cancelled (the footer offers it only then).

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{Command, Component, Cx, Intent, MOVE};
use crate::core::readonly::Action as Mutation;
use crate::tui::app::Effect;
use crate::tui::app::{App, Pane};
use crate::tui::data::{Data, TaskState};
use crate::tui::keymap::{Action, Scope};
use crate::tui::ui::SPINNER;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TasksPane {
    /// The selected row as drawn: 0 is the newest task, at the top (the data keeps
    /// tasks oldest first). Moves, `g`/`G` and the mouse go by what is drawn, so `x`
    /// acts on the task the user sees selected.
    pub selected: usize,
}

const COMMANDS: [Action; 5] = [
    Action::Cancel,
    Action::Inspect,
    Action::Prune,
    Action::Cleanup,
    Action::Palette,
];

impl TasksPane {
    /// The index in the data's tasks of the task drawn at row `row`.
    fn index(row: usize, data: &Data) -> Option<usize> {
        data.tasks.len().checked_sub(1)?.checked_sub(row)
    }

    /// The selected task, as drawn.
    pub fn task<'a>(&self, data: &'a Data) -> Option<&'a crate::tui::data::Task> {
        Self::index(self.selected, data).and_then(|i| data.tasks.get(i))
    }

    /// The selected task runs and can be cancelled.
    pub fn cancellable(&self, data: &Data) -> bool {
        self.task(data)
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
                available: match a {
                    Action::Cancel => self.cancellable(cx.data),
                    Action::Inspect => self.task(cx.data).is_some(),
                    _ => true,
                },
                ..if a == Action::Inspect {
                    Command::labelled(a, "read task")
                } else {
                    Command::on(a)
                }
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
        if matches!(a, Action::Inspect | Action::Cancel) && self.task(cx.data).is_none() {
            return Some(vec![Intent::Status("no task selected".into())]);
        }
        if a == Action::Inspect {
            return Some(match self.task(cx.data) {
                Some(t) => vec![Intent::Note(format!("Task #{}", t.id), message(t))],
                None => vec![Intent::Status("no task selected".into())],
            });
        }
        if a != Action::Cancel {
            return None;
        }
        let Some(t) = self.task(cx.data) else {
            return Some(Vec::new());
        };
        if t.state != TaskState::Running {
            return Some(vec![Intent::Status(format!(
                "task {} has ended ({}): nothing to cancel",
                t.id, t.phase
            ))]);
        }
        Some(match t.kind.cancel() {
            crate::core::job::Cancel::Not(why) => vec![Intent::Status(why.into())],
            // A pull stops its download at once (the download checks the flag).
            crate::core::job::Cancel::BetweenItems if t.kind == crate::core::job::JobKind::Pull => {
                vec![
                    Intent::Status(format!(
                        "cancelling task {} (its download stops and its partial files go)…",
                        t.id
                    )),
                    Intent::Effects(vec![Effect::Cancel { task: t.id }]),
                ]
            }
            crate::core::job::Cancel::BetweenItems => vec![
                Intent::Status(format!(
                    "cancelling task {} (it stops before its next item)…",
                    t.id
                )),
                Intent::Effects(vec![Effect::Cancel { task: t.id }]),
            ],
            crate::core::job::Cancel::RollsBack => vec![
                Intent::Status(format!(
                    "cancelling task {} (it stops and rolls back)…",
                    t.id
                )),
                Intent::Effects(vec![Effect::Cancel { task: t.id }]),
            ],
        })
    }
}

/// A task's whole message, as its view shows it: what it was, how it ended, its summary
/// and each item with its detail (the row cuts them at the pane's edge).
fn message(t: &crate::tui::data::Task) -> Vec<String> {
    let mut lines = vec![t.title.clone(), String::new()];
    let state = match t.state {
        TaskState::Running => "running",
        TaskState::Done => "done",
        TaskState::Failed => "failed",
        TaskState::Cancelled => "cancelled",
    };
    lines.push(match t.took_ms {
        Some(ms) => format!("State: {state} after {:.1} s", ms as f64 / 1000.0),
        None => format!("State: {state} ({})", t.phase),
    });
    if !t.summary.is_empty() {
        lines.push(String::new());
        lines.extend(t.summary.lines().map(String::from));
    }
    if !t.items.is_empty() {
        lines.push(String::new());
        for item in &t.items {
            let detail = if item.detail.is_empty() {
                String::new()
            } else {
                format!(" ({})", item.detail)
            };
            lines.push(format!(
                "{} {}{detail}",
                if item.ok { "✓" } else { "✗" },
                item.name
            ));
        }
    }
    lines
}

fn bar(done: u64, total: u64, width: usize) -> String {
    if total == 0 {
        return String::new();
    }
    let filled = ((done.min(total) as f64 / total as f64) * width as f64).round() as usize;
    format!(
        "[{}{}] {}%",
        "█".repeat(filled),
        "·".repeat(width - filled),
        // In u128: a task's counts are whatever its job reports.
        (u128::from(done.min(total)) * 100 / u128::from(total)) as u64
    )
}

/// Draw the Tasks pane: newest first, the selected task's items under it.
pub fn render(f: &mut Frame, app: &App, r: Rect) {
    let t = &app.theme;
    let blk = crate::tui::ui::block(
        app,
        Pane::Tasks,
        format!("Tasks ({})", app.data.tasks.len()),
    );
    if app.data.tasks.is_empty() {
        let msg = format!(
            "No tasks yet: {} prune · {} cleanup · {} start",
            app.keymap.hint(Scope::Vms, Action::Prune),
            app.keymap.hint(Scope::Vms, Action::Cleanup),
            app.keymap.hint(Scope::Vms, Action::Start)
        );
        f.render_widget(Paragraph::new(Span::styled(msg, t.muted())).block(blk), r);
        return;
    }
    let height = usize::from(r.height.saturating_sub(2));
    let mut lines: Vec<Line> = Vec::new();
    for (row, task) in app.data.tasks.iter().rev().enumerate() {
        let (icon, style) = match task.state {
            TaskState::Running => (SPINNER[app.spinner % SPINNER.len()], t.accent()),
            TaskState::Done => ("✓", t.ok()),
            TaskState::Failed => ("✗", t.error()),
            TaskState::Cancelled => ("⊘", t.warn()),
        };
        let mut spans = vec![
            Span::styled(format!("{icon} "), style),
            Span::raw(format!("#{} {}", task.id, task.title)),
            // A roll-back is giving back what the task made: said in the warning colour.
            Span::styled(
                format!("  {}", task.phase),
                if task.phase.is_roll_back() {
                    t.warn()
                } else {
                    t.muted()
                },
            ),
        ];
        if task.state == TaskState::Running && task.total > 0 {
            spans.push(Span::raw(format!("  {}", bar(task.done, task.total, 12))));
        }
        if !task.summary.is_empty() && task.state != TaskState::Running {
            spans.push(Span::raw(format!("  {}", task.summary)));
        }
        let mut line = Line::from(spans);
        if row == app.tasks.selected && app.focus == Pane::Tasks {
            line = line.style(t.selected());
        }
        lines.push(line);
        if row == app.tasks.selected {
            for item in &task.items {
                let (mark, st) = if item.ok {
                    ("✓", t.ok())
                } else {
                    ("✗", t.error())
                };
                let detail = if item.detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", item.detail)
                };
                lines.push(Line::from(vec![
                    Span::styled(format!("    {mark} "), st),
                    Span::raw(format!("{}{detail}", item.name)),
                ]));
            }
        }
    }
    lines.truncate(height.max(1));
    let lines = crate::tui::ui::shown_lines(lines);
    f.render_widget(Paragraph::new(lines).block(blk), r);
}
