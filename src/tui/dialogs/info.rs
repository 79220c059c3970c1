//! `?` (the keys of the focused pane) and `:doctor` (every check with its fix): read-only
//! dialogs any key closes.

use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::{centered, dialog};
use crate::tui::app::App;

pub(super) fn render_help(f: &mut Frame, app: &App) {
    let t = &app.theme;
    let area = f.area();
    let r = centered(area, 72, area.height.saturating_sub(2));
    let mut lines = vec![Line::styled(
        format!(
            "Keys in {} (remap in ~/.config/smolvm/keymap.toml)",
            app.focus.title()
        ),
        t.muted(),
    )];
    for scope in app.focus.scope().chain() {
        let b = app.keymap.scope_bindings(*scope);
        if b.is_empty() {
            continue;
        }
        lines.push(Line::styled(format!("[{}]", scope.name()), t.accent()));
        for (a, keys) in b {
            let ks: Vec<String> = keys.iter().map(|k| k.display()).collect();
            lines.push(Line::from(vec![
                Span::styled(format!("  {:<16}", ks.join(" ")), t.accent()),
                Span::raw(a.describe()),
            ]));
        }
    }
    f.render_widget(Clear, r);
    f.render_widget(Paragraph::new(lines).block(dialog(app, "Help")), r);
}

pub(super) fn render_doctor(f: &mut Frame, app: &App) {
    let t = &app.theme;
    let area = f.area();
    use crate::core::doctor::Status;
    let mut lines = Vec::new();
    match app.data.slow.as_ref().map(|s| &s.doctor) {
        Some(checks) if !checks.is_empty() => {
            for c in checks {
                let style = match c.status {
                    Status::Ok => t.ok(),
                    Status::Warn => t.warn(),
                    Status::Fail => t.error(),
                };
                lines.push(Line::from(vec![
                    Span::styled(format!("{:<5}", c.status.label()), style),
                    Span::styled(format!("{:<12}", c.name), t.accent()),
                    Span::raw(c.message.clone()),
                ]));
                if !c.fix.is_empty() && c.status != Status::Ok {
                    lines.push(Line::styled(
                        format!("                 fix: {}", c.fix),
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
    let h = (lines.len() as u16 + 2).min(area.height);
    let r = centered(area, area.width.saturating_sub(4).min(130), h);
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(dialog(app, "smolvm doctor")),
        r,
    );
}
