//! One-line prompts: the command palette (`:`), the pane filter (`/` in VMs and Images,
//! applied as you type) and the log search (`/` in Logs).

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout};
use ratatui::text::Span;
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;
use tui_textarea::TextArea;

use super::{centered, dialog, Dialog, Outcome, Request};
use crate::tui::app::{text_of, App};

/// Keys of the palette: Enter runs the line (an error keeps it open, shown under it).
pub(super) fn palette_key(
    t: &mut TextArea<'static>,
    err: &mut Option<String>,
    k: KeyEvent,
) -> Outcome {
    match k.code {
        KeyCode::Esc => Outcome::Close,
        KeyCode::Enter => Outcome::Also(Request::Palette(text_of(t))),
        _ => {
            t.input(k);
            *err = None;
            Outcome::Keep
        }
    }
}

/// Keys of the filter: every change filters at once; Enter keeps it, Esc closes.
pub(super) fn filter_key(t: &mut TextArea<'static>, k: KeyEvent) -> Outcome {
    match k.code {
        KeyCode::Esc => Outcome::Close,
        KeyCode::Enter => Outcome::Done(Request::Filter {
            text: text_of(t),
            live: false,
        }),
        _ => {
            t.input(k);
            Outcome::Also(Request::Filter {
                text: text_of(t),
                live: true,
            })
        }
    }
}

/// Keys of the log search: Enter searches and jumps to the first match.
pub(super) fn search_key(t: &mut TextArea<'static>, k: KeyEvent) -> Outcome {
    match k.code {
        KeyCode::Esc => Outcome::Close,
        KeyCode::Enter => Outcome::Done(Request::Search(text_of(t))),
        _ => {
            t.input(k);
            Outcome::Keep
        }
    }
}

pub(super) fn render(f: &mut Frame, app: &App, m: &Dialog, input: &TextArea<'static>) {
    let t = &app.theme;
    let area = f.area();
    let err = match m {
        Dialog::Palette(_, e) => e.as_ref(),
        _ => None,
    };
    let (title, hint) = match m {
            Dialog::Palette(..) => (
                "Command",
                err.cloned().unwrap_or_else(|| {
                    "prune · cleanup [prefix|--all] · start <preset> · logs <vm> · filter <text> · doctor · refresh · help · quit".into()
                }),
            ),
            Dialog::Filter(_) => (
                "Filter",
                "type to filter as you go · Enter keep · Esc close".to_string(),
            ),
            _ => (
                "Search logs",
                "Enter search · n/N next/previous · Esc close".to_string(),
            ),
        };
    let r = centered(area, 76, 5);
    f.render_widget(Clear, r);
    let blk = dialog(app, title);
    let inner = blk.inner(r);
    f.render_widget(blk, r);
    let [input_r, _, hint_r] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(inner);
    f.render_widget(input, input_r);
    let style = if err.is_some() { t.error() } else { t.muted() };
    f.render_widget(Paragraph::new(Span::styled(hint, style)), hint_r);
}
