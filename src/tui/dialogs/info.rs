//! `?` (the keys of the focused pane), `:doctor` (every check with its fix) and `i` in
//! Images (`image inspect` of the selected image): read-only
//! dialogs as tall as their wrapped lines (at most the screen), scrolled with the list
//! keys of the keymap's `[list]` (by default `j`/`k`, `PgUp`/`PgDn`, `g`/`G`); any other
//! key closes them.

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::{centered, dialog, Outcome};
use crate::tui::app::App;
use crate::tui::keymap::{Action, Key, Keymap, Scope};

/// Which read-only dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Info {
    Help,
    Doctor,
    Inspect,
    /// A result to read (`bridge check`): `Data::note`.
    Note,
}

impl Info {
    fn title(self, app: &App) -> String {
        match self {
            Info::Help => "Help".into(),
            Info::Doctor => "smolvm doctor".into(),
            Info::Inspect => "Inspect image".into(),
            Info::Note => app
                .data
                .note
                .as_ref()
                .map(|n| n.0.clone())
                .unwrap_or_default(),
        }
    }
}

/// Where a read-only dialog is scrolled to, and how far it can go (fitted to the screen
/// after every input: [`super::Dialog::fit`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scroll {
    pub offset: usize,
    page: usize,
    max: usize,
}

pub(super) fn handle_key(s: &mut Scroll, k: &KeyEvent, keymap: &Keymap) -> Outcome {
    let page = s.page.max(1);
    s.offset = match keymap.lookup_in(Scope::List, &Key::from_event(k)) {
        Some(Action::Down) => s.offset + 1,
        Some(Action::Up) => s.offset.saturating_sub(1),
        Some(Action::PageDown) => s.offset + page,
        Some(Action::PageUp) => s.offset.saturating_sub(page),
        Some(Action::Top) => 0,
        Some(Action::Bottom) => s.max,
        _ => return Outcome::Close,
    }
    .min(s.max);
    Outcome::Keep
}

/// The dialog's rectangle, its paragraph and its wrapped height.
fn layout(app: &App, area: Rect, which: Info) -> (Rect, Paragraph<'static>, usize) {
    let wide = area.width.saturating_sub(4).min(130);
    let (lines, w) = match which {
        Info::Help => (help_lines(app), 72),
        Info::Doctor => (doctor_lines(app), wide),
        Info::Inspect => (inspect_lines(app), wide),
        Info::Note => (note_lines(app), 78),
    };
    let title = which.title(app);
    let w = w.min(area.width);
    let p = Paragraph::new(crate::tui::ui::shown_lines(lines)).wrap(Wrap { trim: false });
    let total = p.line_count(w.saturating_sub(2));
    let h = (total + 2).min(usize::from(area.height.saturating_sub(2)).max(3)) as u16;
    (centered(area, w, h), p.block(dialog(app, &title)), total)
}

/// Fit the scroll to the dialog as it would be drawn now.
pub(super) fn fit(s: &mut Scroll, app: &App, which: Info) {
    let area = Rect::new(0, 0, app.size.0, app.size.1);
    let (r, _, total) = layout(app, area, which);
    s.page = usize::from(r.height.saturating_sub(2));
    s.max = total.saturating_sub(s.page);
    s.offset = s.offset.min(s.max);
}

pub(super) fn render(f: &mut Frame, app: &App, s: &Scroll, which: Info) {
    let area = f.area();
    let (r, mut p, total) = layout(app, area, which);
    let page = usize::from(r.height.saturating_sub(2));
    let offset = s.offset.min(total.saturating_sub(page));
    if total > page {
        let title = Line::styled(
            format!(
                " {}/{} {}/{} · {}–{} of {} ",
                app.keymap.hint(Scope::List, Action::Down),
                app.keymap.hint(Scope::List, Action::Up),
                app.keymap
                    .hint_preferring(Scope::List, Action::PageUp, KeyCode::PageUp),
                app.keymap
                    .hint_preferring(Scope::List, Action::PageDown, KeyCode::PageDown),
                offset + 1,
                offset + page,
                total
            ),
            app.theme.muted(),
        );
        let blk = dialog(app, &which.title(app)).title_bottom(title.right_aligned());
        p = p.block(blk);
    }
    f.render_widget(Clear, r);
    f.render_widget(p.scroll((offset as u16, 0)), r);
}

fn help_lines(app: &App) -> Vec<Line<'static>> {
    let t = &app.theme;
    let mut lines = vec![Line::styled(
        format!(
            "Keys in {} (remap in {})",
            app.focus.title(),
            app.keymap_file
        ),
        t.muted(),
    )];
    for (scope, b) in app.help(app.focus) {
        lines.push(Line::styled(format!("[{}]", scope.name()), t.accent()));
        for l in b {
            let ks = crate::tui::keymap::key_list(&l.keys, " ", usize::MAX);
            lines.push(Line::from(vec![
                Span::styled(format!("  {ks:<15} "), t.accent()),
                Span::raw(l.label),
            ]));
            if l.action == crate::tui::keymap::Action::Cancel {
                let not: Vec<&str> = crate::core::job::JobKind::ALL
                    .iter()
                    .filter(|k| !k.cancellable())
                    .map(|k| k.as_str())
                    .collect();
                // Under the label's column, wrapped there (help is 72 wide).
                for part in super::pack_list("not for:", &not, 72 - 2 - 18) {
                    lines.push(Line::styled(format!("  {:<16}{part}", ""), t.muted()));
                }
            }
        }
    }
    // The keys of every form and prompt (their fields take the others as text).
    lines.push(Line::styled(
        format!("[{}] in forms and prompts", Scope::Form.name()),
        t.accent(),
    ));
    for (action, keys) in app.keymap.scope_bindings(Scope::Form) {
        let ks = crate::tui::keymap::key_list(&keys, " ", usize::MAX);
        lines.push(Line::from(vec![
            Span::styled(format!("  {ks:<15} "), t.accent()),
            Span::raw(action.describe()),
        ]));
    }
    lines
}

fn note_lines(app: &App) -> Vec<Line<'static>> {
    let lines = app
        .data
        .note
        .as_ref()
        .map(|n| n.1.clone())
        .unwrap_or_default();
    lines.into_iter().map(Line::raw).collect()
}

fn inspect_lines(app: &App) -> Vec<Line<'static>> {
    use crate::core::units::format_size;
    use crate::tui::dialogs::Preview;
    let t = &app.theme;
    let i = match &app.data.inspect {
        Preview::Loading => {
            return vec![Line::styled(
                "reading the manifest and the cache…",
                t.muted(),
            )]
        }
        Preview::Failed(e) => return vec![Line::styled(format!("Error: {e}"), t.error())],
        Preview::Ready(i) => i,
    };
    let field = |k: &str, v: String| {
        Line::from(vec![
            Span::styled(format!("{:<16}", format!("{k}:")), t.accent()),
            Span::raw(v),
        ])
    };
    let mut lines: Vec<Line> = i.fields.iter().map(|(k, v)| field(k, v.clone())).collect();
    // What the Images pane knows of the row: its state and the VMs using it.
    if let Some(row) = app
        .data
        .images
        .iter()
        .find(|r| r.name == i.name && r.version == i.version)
    {
        lines.push(field("Cache", row.shown_state()));
    }
    if !i.files.is_empty() {
        lines.push(Line::styled("Files:", t.accent()));
        for (path, size, on_disk) in &i.files {
            lines.push(Line::raw(format!(
                "  {path}  {} ({} on disk)",
                format_size(*size),
                format_size(*on_disk)
            )));
        }
    }
    lines
}

fn doctor_lines(app: &App) -> Vec<Line<'static>> {
    let t = &app.theme;
    use crate::core::doctor::Status;
    let mut lines = Vec::new();
    match app.data.slow.as_ref().map(|s| &s.doctor) {
        Some(checks) if !checks.is_empty() => {
            // The names' column as wide as the longest name, and a space after it.
            let w = checks.iter().map(|c| c.name.len()).max().unwrap_or(0) + 1;
            for c in checks {
                let style = match c.status {
                    Status::Ok => t.ok(),
                    Status::Warn => t.warn(),
                    Status::Fail => t.error(),
                };
                lines.push(Line::from(vec![
                    Span::styled(format!("{:<5}", c.status.label()), style),
                    Span::styled(format!("{:<w$}", c.name), t.accent()),
                    Span::raw(c.message.clone()),
                ]));
                if !c.fix.is_empty() && c.status != Status::Ok {
                    lines.push(Line::styled(
                        format!("{:<1$}fix: {2}", "", 5 + w, c.fix),
                        t.muted(),
                    ));
                }
            }
        }
        _ => lines.push(Line::styled(
            "The checks run with the next refresh…",
            t.muted(),
        )),
    }
    lines
}
