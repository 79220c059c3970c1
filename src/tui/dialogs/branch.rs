//! `b`: branch a running VM into clones — `sandbox branch ID --count N [--prefix P]` (a
//! `--for-clone` snapshot of it, the VM running on, then N clones), one task with an item
//! per clone.

use crossterm::event::KeyEvent;
use ratatui::layout::{Constraint, Layout};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;
use tui_textarea::TextArea;

use super::{edit_field, form_action, form_key, Outcome, Request};
use crate::core::vm::VmId;
use crate::tui::app::{line_input, text_of, App};
use crate::tui::keymap::{Action, Keymap};

pub use crate::core::snapshot::MAX_CLONES;
use crate::core::snapshot::{check_branch, check_count, BranchOptions, DEFAULT_CLONES};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Count,
    Prefix,
}

pub struct BranchForm {
    pub id: VmId,
    pub count: TextArea<'static>,
    pub prefix: TextArea<'static>,
    field: Field,
}

impl BranchForm {
    /// The focused field (both take text; a paste goes there).
    pub(super) fn focused_input(&mut self) -> Option<&mut TextArea<'static>> {
        Some(match self.field {
            Field::Count => &mut self.count,
            Field::Prefix => &mut self.prefix,
        })
    }

    pub fn new(id: VmId) -> BranchForm {
        BranchForm {
            id,
            count: line_input(&DEFAULT_CLONES.to_string()),
            prefix: line_input(""),
            field: Field::Count,
        }
    }

    /// The clone count, or why it is not one (core's range: [`check_count`]).
    fn count(&self) -> Result<u32, String> {
        text_of(&self.count)
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| check_count(*n).is_ok())
            .ok_or_else(|| format!("clones: a number from 1 to {MAX_CLONES}"))
    }

    /// The clone ids' prefix as typed (`None`: core's default, `<id>-b`), or why it
    /// cannot name the clones: core's check of the branch (`sandbox branch`'s), for the
    /// count typed.
    fn prefix(&self) -> Result<Option<String>, String> {
        let p = text_of(&self.prefix).trim().to_string();
        if p.is_empty() {
            return Ok(None);
        }
        let opts = BranchOptions {
            prefix: Some(p.clone()),
            ..BranchOptions::of(self.id.clone(), self.count().unwrap_or(1))
        };
        match check_branch(&opts) {
            Ok(()) => Ok(Some(p)),
            Err(_) => Err("prefix: a-z 0-9 - _, a letter or digit first, ids of 64 at most".into()),
        }
    }

    /// Why the form cannot be submitted, if it cannot.
    pub fn error(&self) -> Option<String> {
        self.count().err().or_else(|| self.prefix().err())
    }

    pub(super) fn handle_key(&mut self, k: KeyEvent, keymap: &Keymap) -> Outcome {
        let action = form_action(&k, keymap);
        match action {
            Some(Action::Close) => return Outcome::Close,
            Some(Action::NextField | Action::PrevField | Action::Down | Action::Up) => {
                self.field = match self.field {
                    Field::Count => Field::Prefix,
                    Field::Prefix => Field::Count,
                };
                return Outcome::Keep;
            }
            Some(Action::Confirm) => {
                if let (Ok(count), Ok(prefix)) = (self.count(), self.prefix()) {
                    return Outcome::Done(Request::Branch {
                        id: self.id.clone(),
                        count,
                        prefix,
                    });
                }
                // The error is shown under the fields.
                return Outcome::Keep;
            }
            _ => {}
        }
        if let Some(input) = self.focused_input() {
            edit_field(input, k, keymap);
        }
        Outcome::Keep
    }

    pub(super) fn render(&self, f: &mut Frame, app: &App) {
        let t = &app.theme;
        let focus = match self.field {
            Field::Count => 2..5,
            Field::Prefix => 3..7,
        };
        let rows = super::form_rows(f, app, 72, 8, "Branch into clones", focus);
        let label = |on: bool, text: &str| {
            Span::styled(
                format!("{}{text:<14}", if on { "› " } else { "  " }),
                if on { t.accent() } else { t.header() },
            )
        };
        let field = |f: &mut Frame, i: usize, on: bool, name: &str, input: &TextArea<'static>| {
            let [l, v] =
                Layout::horizontal([Constraint::Length(17), Constraint::Min(1)]).areas(rows[i]);
            f.render_widget(Paragraph::new(label(on, name)), l);
            f.render_widget(input, v);
        };
        f.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled(format!("  {:<15}", "Of"), t.header()),
                Span::raw(self.id.to_string()),
                Span::styled("  (it runs on; a template snapshot is kept)", t.muted()),
            ])),
            rows[0],
        );
        field(f, 2, self.field == Field::Count, "Clones", &self.count);
        field(f, 3, self.field == Field::Prefix, "Prefix", &self.prefix);
        f.render_widget(
            Paragraph::new(match self.error() {
                Some(e) => Span::styled(format!("  {e}"), t.error()),
                None => {
                    // Core's rule for the ids (the CLI's `--prefix` default too).
                    let p = crate::core::snapshot::BranchOptions {
                        prefix: self.prefix().ok().flatten(),
                        ..crate::core::snapshot::BranchOptions::of(self.id.clone(), 1)
                    }
                    .prefix();
                    Span::styled(
                        format!("  ids {p}-1, {p}-2, … (ids taken are skipped)"),
                        t.muted(),
                    )
                }
            }),
            rows[4],
        );
        let mut keys = Vec::new();
        for (a, what) in [
            (Action::NextField, "field"),
            (Action::Confirm, "branch"),
            (Action::Close, "cancel"),
        ] {
            keys.push(Span::styled(format!("[{}]", form_key(app, a)), t.accent()));
            keys.push(Span::raw(format!(" {what}  ")));
        }
        f.render_widget(Paragraph::new(Line::from(keys)), rows[6]);
    }
}
