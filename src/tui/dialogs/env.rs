//! `E`: set or unset one variable of a VM's environment — `sandbox env set ID KEY=VALUE`
//! or `sandbox env unset ID KEY` (core's `guest_env`). The value is typed into a masked
//! field: it is never drawn, never goes through the palette's line or history, and the
//! task names only the key. Core's refusal (the VM not running, a bad key) stays in the
//! form.

use crossterm::event::KeyEvent;
use ratatui::layout::{Constraint, Layout};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;
use tui_textarea::TextArea;

use super::{edit_field, form_action_or_end, form_hint, Outcome, Request};
use crate::core::guest_env::{self, EnvChange, EnvValue};
use crate::core::vm::VmId;
use crate::tui::app::{line_input, text_of, App, Preview};
use crate::tui::keymap::{Action, Keymap};

/// What the masked field shows for each character of the value.
const MASK: char = '•';

/// How many mask characters stand for a value when its field is not focused.
const HIDDEN_WIDTH: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// Set or unset (a choice).
    Verb,
    Key,
    /// Set only.
    Value,
}

pub struct EnvForm {
    pub id: VmId,
    /// Unset the key instead of setting it.
    pub unset: bool,
    key: TextArea<'static>,
    value: TextArea<'static>,
    field: Field,
    /// Core's refusal of the last submission.
    pub error: Option<String>,
    /// The task carrying out the submission (the form waits for it).
    pub pending: Option<u64>,
}

impl EnvForm {
    pub(super) fn inputs(&mut self) -> Vec<&mut TextArea<'static>> {
        vec![&mut self.key, &mut self.value]
    }

    /// The focused field when it takes text (a paste goes there).
    pub(super) fn focused_input(&mut self) -> Option<&mut TextArea<'static>> {
        match self.field {
            Field::Verb => None,
            Field::Key => Some(&mut self.key),
            Field::Value => Some(&mut self.value),
        }
    }

    pub fn new(id: VmId) -> EnvForm {
        let mut value = line_input("");
        value.set_mask_char(MASK);
        EnvForm {
            id,
            unset: false,
            key: line_input(""),
            value,
            field: Field::Key,
            error: None,
            pending: None,
        }
    }

    /// The change the form asks for, or core's word on the key (`None` while it is empty).
    fn change(&self) -> Option<Result<EnvChange, String>> {
        let key = text_of(&self.key).trim().to_string();
        if key.is_empty() {
            return None;
        }
        Some(match guest_env::check_key(&key) {
            Err(e) => Err(e.message),
            Ok(()) if self.unset => Ok(EnvChange::Unset { key }),
            Ok(()) => Ok(EnvChange::Set {
                key,
                value: EnvValue(text_of(&self.value).into_bytes()),
            }),
        })
    }

    fn fields(&self) -> &'static [Field] {
        if self.unset {
            &[Field::Verb, Field::Key]
        } else {
            &[Field::Verb, Field::Key, Field::Value]
        }
    }

    fn move_field(&mut self, by: isize) {
        let fields = self.fields();
        let at = fields.iter().position(|f| *f == self.field).unwrap_or(0) as isize;
        let n = fields.len() as isize;
        self.field = fields[(at + by).rem_euclid(n) as usize];
    }

    pub(super) fn handle_key(&mut self, k: KeyEvent, keymap: &Keymap) -> Outcome {
        let action = match form_action_or_end(&k, keymap, self.pending.is_some()) {
            Ok(action) => action,
            Err(end) => return end.into(),
        };
        match action {
            Some(Action::NextField | Action::Down) => self.move_field(1),
            Some(Action::PrevField | Action::Up) => self.move_field(-1),
            Some(Action::ChoiceNext | Action::ChoicePrev | Action::Toggle)
                if self.field == Field::Verb =>
            {
                self.unset = !self.unset;
                self.error = None;
            }
            Some(Action::Confirm) => match self.change() {
                Some(Ok(change)) => {
                    self.error = None;
                    return Outcome::Also(Request::Env {
                        id: self.id.clone(),
                        change,
                    });
                }
                Some(Err(e)) => self.error = Some(e),
                None => self.error = Some("name the variable first".into()),
            },
            _ => {
                if let Some(input) = self.focused_input() {
                    if edit_field(input, k, keymap) {
                        self.error = None;
                    }
                }
            }
        }
        Outcome::Keep
    }

    pub(super) fn render(&self, f: &mut Frame, app: &App) {
        let t = &app.theme;
        let title = format!("Environment of {}", self.id);
        let focus = match self.field {
            Field::Verb => 0..1,
            Field::Key => 1..5,
            Field::Value => 2..5,
        };
        let rows = super::form_rows(f, app, 72, 9, &title, focus);
        let label = |on: bool, text: &str| {
            Span::styled(
                format!("{}{text:<10}", if on { "› " } else { "  " }),
                if on { t.accent() } else { t.header() },
            )
        };
        let row = |i: usize| {
            Layout::horizontal([Constraint::Length(12), Constraint::Min(1)]).areas::<2>(rows[i])
        };
        let [l, v] = row(0);
        f.render_widget(Paragraph::new(label(self.field == Field::Verb, "Do")), l);
        let verb = |on: bool, text: &str| {
            Span::styled(
                format!("{} {text}  ", if on { "◉" } else { "○" }),
                if on { t.accent() } else { t.muted() },
            )
        };
        f.render_widget(
            Paragraph::new(Line::from(vec![
                verb(!self.unset, "set"),
                verb(self.unset, "unset"),
            ])),
            v,
        );
        let [l, v] = row(1);
        f.render_widget(Paragraph::new(label(self.field == Field::Key, "Key")), l);
        f.render_widget(&self.key, v);
        if !self.unset {
            let [l, v] = row(2);
            f.render_widget(
                Paragraph::new(label(self.field == Field::Value, "Value")),
                l,
            );
            // Typed, it shows a mask per character; away from it, not even its length.
            if self.field == Field::Value || text_of(&self.value).is_empty() {
                f.render_widget(&self.value, v);
            } else {
                let hidden: String = std::iter::repeat_n(MASK, HIDDEN_WIDTH).collect();
                f.render_widget(Paragraph::new(hidden), v);
            }
        }
        let busy = if self.unset {
            "unsetting…"
        } else {
            "setting…"
        };
        let note = super::awaiting(t, self.error.as_ref(), self.pending, busy, || {
            match self.change() {
                Some(Err(e)) => Span::styled(e, t.error()),
                _ => Span::styled(
                    format!(
                        "{} in the guest; login shells read it",
                        guest_env::GUEST_PATH
                    ),
                    t.muted(),
                ),
            }
        });
        f.render_widget(
            Paragraph::new(Line::from(note)).wrap(Wrap { trim: false }),
            rows[4],
        );
        // The VM's keys as last read (`env list`'s keys, the detail view's), a reminder.
        let keys = match &app.data.env_keys {
            Some((id, Preview::Ready(k))) if *id == self.id.as_str() && k.is_empty() => {
                "none".to_string()
            }
            Some((id, Preview::Ready(k))) if *id == self.id.as_str() => k.join(", "),
            Some((id, Preview::Loading)) if *id == self.id.as_str() => "reading…".to_string(),
            Some((id, Preview::Failed(e))) if *id == self.id.as_str() => {
                format!("cannot be read: {e}")
            }
            _ => "not read".to_string(),
        };
        f.render_widget(
            Paragraph::new(Span::styled(format!("Set now: {keys}"), t.muted()))
                .wrap(Wrap { trim: true }),
            rows[6],
        );
        let ok = !matches!(self.change(), Some(Err(_)) | None);
        let verb = if self.unset { "unset" } else { "set" };
        f.render_widget(
            Paragraph::new(form_hint(app, t, "set/unset", verb, ok)),
            rows[8],
        );
    }
}
