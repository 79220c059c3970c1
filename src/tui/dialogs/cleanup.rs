//! `c` / `:cleanup`: a prefix (or `--all`), the targets a dry run finds (recomputed as the
//! prefix changes; a late answer to an old one is ignored). Two steps: the prefix field
//! takes text (`y` is typed there); Enter or Tab moves to the buttons, where only the
//! keymap's destructive confirm keys (`y`) delete — Enter never does.

use crossterm::event::KeyEvent;
use ratatui::layout::{Constraint, Layout};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;
use tui_textarea::TextArea;

use super::{
    capped, centered, form_action_or_end, form_key, pack_list, Answer, Outcome, Preview, Request,
    SPINNER,
};
use crate::tui::app::{line_input, text_of, App};
use crate::tui::components::table::cut;
use crate::tui::data::Data;
use crate::tui::keymap::{key_list, Action, Keymap};

/// The dry run the dialog shows: core's view of a cleanup plan.
pub type CleanupPreview = crate::core::cleanup::PlanView;

pub struct CleanupDialog {
    pub prefix: TextArea<'static>,
    pub all: bool,
    /// The dry run this dialog shows (its answer is data: `Data::cleanup_preview`).
    pub generation: u64,
    /// Where keys go: the prefix field, or the buttons (where `y` confirms).
    on_buttons: bool,
}

impl CleanupDialog {
    /// The prefix field when it has the keys (a paste goes there; never to the buttons).
    pub(super) fn focused_input(&mut self) -> Option<&mut TextArea<'static>> {
        (!self.on_buttons).then_some(&mut self.prefix)
    }

    pub fn new(prefix: &str, all: bool, generation: u64) -> CleanupDialog {
        CleanupDialog {
            prefix: line_input(prefix),
            all,
            generation,
            on_buttons: false,
        }
    }

    pub(super) fn handle_key(&mut self, k: KeyEvent, data: &Data, keymap: &Keymap) -> Outcome {
        let action = match form_action_or_end(&k, keymap, false) {
            Ok(action) => action,
            Err(end) => return end.into(),
        };
        // On the buttons the destructive answer comes first (whatever else the key is in
        // the [form] keys); Enter is never one of them.
        if self.on_buttons {
            let a = Answer::destructive(&k, keymap);
            if a.no {
                return Outcome::Close;
            }
            if a.yes {
                return match data.cleanup_preview(self.generation) {
                    Preview::Ready(p) if !p.targets.is_empty() || !p.stale_resources.is_empty() => {
                        Outcome::Done(Request::Cleanup {
                            prefix: text_of(&self.prefix),
                            all: self.all,
                            plan: p.clone(),
                        })
                    }
                    Preview::Ready(_) => Outcome::Done(Request::Status("nothing to clean".into())),
                    _ => Outcome::Keep,
                };
            }
        }
        let toggled = action == Some(Action::ToggleAll);
        if !toggled {
            match action {
                Some(Action::NextField | Action::PrevField) => {
                    self.on_buttons = !self.on_buttons;
                    return Outcome::Keep;
                }
                Some(Action::Confirm) => {
                    // Enter never deletes: it moves to the buttons.
                    self.on_buttons = true;
                    return Outcome::Keep;
                }
                _ if self.on_buttons => return Outcome::Keep,
                _ => {}
            }
        }
        let before = (text_of(&self.prefix), self.all);
        if toggled {
            self.all = !self.all;
        } else {
            super::edit_field(&mut self.prefix, k, keymap);
        }
        let after = (text_of(&self.prefix), self.all);
        if after == before {
            return Outcome::Keep;
        }
        // Live preview: a new dry run (the app numbers it, so the old answer no longer shows).
        Outcome::Also(Request::CleanupPreview {
            prefix: after.0,
            all: after.1,
        })
    }

    pub(super) fn render(&self, f: &mut Frame, app: &App) {
        let d = self;
        let t = &app.theme;
        let area = f.area();
        let preview = app.data.cleanup_preview(d.generation);
        let body = match preview {
            Preview::Ready(p) => {
                p.warnings.len()
                    + 1
                    + p.targets.len()
                    + if p.stale_resources.is_empty() {
                        0
                    } else {
                        1 + p.stale_resources.len().min(3)
                    }
            }
            _ => 1,
        } as u16;
        let inner = super::framed(
            f,
            app,
            // At least 9 rows, at most what the screen has (a short terminal wins).
            centered(area, 78, {
                let room = area.height.saturating_sub(2);
                (body + 7).clamp(9.min(room), room)
            }),
            "Clean up VMs",
        );
        // Short of room, the --all line and the spacer go before any target does: they
        // stay while the targets, packed, and a line of leftovers still fit below them.
        let ids = match preview {
            Preview::Ready(p) => target_ids(&p.targets),
            _ => Vec::new(),
        };
        let least = match preview {
            Preview::Ready(p) if !p.targets.is_empty() => {
                let head = format!("Targets ({}):", ids.len());
                pack_list(&head, &ids, usize::from(inner.width)).len()
                    + usize::from(!p.stale_resources.is_empty())
            }
            _ => 1,
        };
        let roomy = u16::from(inner.height >= 7 && usize::from(inner.height) >= 4 + least);
        let [prefix_r, opts_r, _, body_r, btn_r] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(roomy),
            Constraint::Length(roomy),
            Constraint::Min(1),
            Constraint::Length(1),
        ])
        .areas(inner);
        let [label_r, input_r] =
            Layout::horizontal([Constraint::Length(10), Constraint::Min(1)]).areas(prefix_r);
        f.render_widget(
            Paragraph::new(Span::styled(
                if d.on_buttons {
                    "  Prefix:"
                } else {
                    "› Prefix:"
                },
                if d.on_buttons { t.header() } else { t.accent() },
            )),
            label_r,
        );
        f.render_widget(&d.prefix, input_r);
        f.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled(
                    format!("[{}] ", form_key(app, Action::ToggleAll)),
                    t.accent(),
                ),
                Span::raw(format!(
                    "--all: {}",
                    if d.all {
                        "on (every VM, prefix ignored)"
                    } else {
                        "off"
                    }
                )),
            ])),
            opts_r,
        );
        let mut lines: Vec<Line> = Vec::new();
        match preview {
            Preview::Loading => lines.push(Line::from(vec![
                Span::styled(SPINNER[app.spinner % SPINNER.len()], t.accent()),
                Span::raw(" computing targets (dry run)…"),
            ])),
            Preview::Failed(e) => lines.push(Line::styled(format!("Error: {e}"), t.error())),
            Preview::Ready(p) => {
                // What would be deleted first: a line each or, short of room, packed after
                // `Targets (N):` (what does not fit said by `…and N more`); then the
                // leftovers it removes too, then the warnings, which give way first. Rows
                // are counted as drawn: every line is cut to the width, none wraps.
                let (rows, width) = (usize::from(body_r.height), usize::from(body_r.width));
                let n_stale = p.stale_resources.len();
                let stale_min = usize::from(n_stale > 0);
                if p.targets.is_empty() {
                    lines.push(Line::raw("No matching VMs to clean."));
                } else if rows >= 1 + ids.len() + stale_min {
                    lines.push(Line::raw(format!("Targets ({}):", ids.len())));
                    let w = p.targets.iter().map(|x| x.0.len()).max().unwrap_or(0);
                    lines.extend(p.targets.iter().map(|(id, why)| {
                        Line::from(vec![
                            Span::raw(cut(format!("  - {id:<w$}  "), width)),
                            Span::styled(
                                why.clone(),
                                if why == "stale" { t.warn() } else { t.muted() },
                            ),
                        ])
                    }));
                } else {
                    let head = format!("Targets ({}):", ids.len());
                    let room = rows.saturating_sub(stale_min).max(1);
                    lines.extend(packed(&head, &ids, width, room).into_iter().map(Line::raw));
                }
                let left = rows.saturating_sub(lines.len());
                if n_stale > 0 && left > n_stale.min(3) {
                    lines.push(Line::raw(format!("Stale resources ({n_stale}):")));
                    let items = p
                        .stale_resources
                        .iter()
                        .map(|s| Line::raw(cut(format!("  - {s}"), width)))
                        .collect();
                    lines.extend(capped(items, 3, t));
                } else if n_stale > 0 {
                    let head = format!("Stale resources ({n_stale}):");
                    let packed = packed(&head, &p.stale_resources, width, left.max(1));
                    lines.extend(packed.into_iter().map(Line::raw));
                }
                let left = rows.saturating_sub(lines.len());
                let warn = |text: String| Line::styled(cut(text, width), t.warn());
                match p.warnings.as_slice() {
                    [] => {}
                    [first, ..] if left < 2 && p.warnings.len() > 1 => {
                        lines.push(warn(format!("Warnings ({}): {first}", p.warnings.len())))
                    }
                    all => {
                        let warnings = all.iter().map(|w| warn(format!("Warning: {w}")));
                        lines.extend(capped(warnings.collect(), left.max(2), t));
                    }
                }
            }
        }
        f.render_widget(Paragraph::new(lines), body_r);
        let ready = matches!(preview, Preview::Ready(p) if !p.targets.is_empty() || !p.stale_resources.is_empty());
        let yes = key_list(&app.keymap.destructive_confirm_keys(), "/", 2);
        f.render_widget(
            Paragraph::new(if ready && d.on_buttons {
                Line::from(vec![
                    Span::styled("› ", t.accent()),
                    Span::styled(format!("[{yes}]"), t.accent()),
                    Span::raw(" delete these   "),
                    Span::styled(
                        format!("[{}]", form_key(app, Action::NextField)),
                        t.accent(),
                    ),
                    Span::raw(" edit prefix   "),
                    Span::styled(format!("[{}]", form_key(app, Action::Close)), t.accent()),
                    Span::raw(" cancel"),
                ])
            } else if ready {
                Line::from(vec![
                    Span::styled(format!("[{}]", form_key(app, Action::Confirm)), t.accent()),
                    Span::raw(format!(" then [{yes}] delete these   ")),
                    Span::styled(format!("[{}]", form_key(app, Action::Close)), t.accent()),
                    Span::raw(" cancel"),
                ])
            } else {
                Line::styled(
                    format!("[{}] close", form_key(app, Action::Close)),
                    t.accent(),
                )
            }),
            btn_r,
        );
    }
}

/// The targets as the packed list names them: `id (why)`.
fn target_ids(targets: &[(String, String)]) -> Vec<String> {
    targets
        .iter()
        .map(|(id, why)| format!("{id} ({why})"))
        .collect()
}

/// [`pack_list`] in at most `rows` lines: as many items as fit with `…and N more` after them
/// for the rest (never a list that silently stops).
fn packed(head: &str, items: &[String], width: usize, rows: usize) -> Vec<String> {
    let rows = rows.max(1);
    for k in (0..=items.len()).rev() {
        let mut parts = items[..k].to_vec();
        if k < items.len() {
            parts.push(format!("…and {} more", items.len() - k));
        }
        let lines = pack_list(head, &parts, width);
        if lines.len() <= rows {
            return lines;
        }
    }
    let mut lines = pack_list(head, &[format!("…and {} more", items.len())], width);
    lines.truncate(rows);
    lines
}
