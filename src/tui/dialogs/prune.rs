//! `p`: what `smolvm prune` would remove (a dry run computed by a worker), confirmed with
//! the keymap's `[dialog]` confirm key (`y`/`Enter`).

use crossterm::event::KeyEvent;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;

use super::{
    capped, centered, close_hint, destructive_buttons, dialog, Answer, Outcome, Preview, Request,
    SPINNER,
};
use crate::core::units::format_size;
use crate::tui::app::App;
use crate::tui::keymap::Keymap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrunePreview {
    /// (shown path, size)
    pub stale: Vec<(String, u64)>,
    /// (shown path, reason)
    pub kept: Vec<(String, String)>,
    pub total: u64,
    /// The stale caches' paths: what confirming removes (and nothing else).
    pub plan: Vec<std::path::PathBuf>,
}

pub(super) fn handle_key(
    preview: &Preview<PrunePreview>,
    k: &KeyEvent,
    keymap: &Keymap,
) -> Outcome {
    let a = Answer::destructive(k, keymap);
    if a.no {
        return Outcome::Close;
    }
    match (preview, a.yes) {
        (Preview::Ready(p), true) if !p.stale.is_empty() => Outcome::Done(Request::Prune {
            plan: p.plan.clone(),
        }),
        (Preview::Ready(_) | Preview::Failed(_), true) => Outcome::Close,
        _ => Outcome::Keep,
    }
}

pub(super) fn render(f: &mut Frame, app: &App, p: &Preview<PrunePreview>) {
    let t = &app.theme;
    let area = f.area();
    let list_room = usize::from(area.height.saturating_sub(12)).max(3);
    let mut lines: Vec<Line> = Vec::new();
    match p {
        Preview::Loading => lines.push(Line::from(vec![
            Span::styled(SPINNER[app.spinner % SPINNER.len()], t.accent()),
            Span::raw(" computing a dry run…"),
        ])),
        Preview::Failed(e) => lines.push(Line::styled(format!("Error: {e}"), t.error())),
        Preview::Ready(p) if p.stale.is_empty() && p.kept.is_empty() => {
            lines.push(Line::raw("Nothing to prune — cache is clean."))
        }
        Preview::Ready(p) => {
            let w = p
                .stale
                .iter()
                .map(|s| s.0.chars().count())
                .max()
                .unwrap_or(0);
            lines.push(Line::raw(format!(
                "Stale image caches ({}):",
                p.stale.len()
            )));
            let items: Vec<Line> = p
                .stale
                .iter()
                .map(|(path, size)| Line::raw(format!("  - {path:<w$}   ({})", format_size(*size))))
                .collect();
            lines.extend(capped(items, list_room, t));
            if !p.kept.is_empty() {
                lines.push(Line::raw(""));
                lines.push(Line::styled(format!("Kept ({}):", p.kept.len()), t.warn()));
                let items: Vec<Line> = p
                    .kept
                    .iter()
                    .map(|(path, why)| Line::raw(format!("  - {path}   ({why})")))
                    .collect();
                lines.extend(capped(items, 4, t));
            }
            lines.push(Line::raw(""));
            lines.push(Line::styled(
                format!("Total reclaimable: {}", format_size(p.total)),
                t.accent(),
            ));
        }
    }
    lines.push(Line::raw(""));
    let ready = matches!(p, Preview::Ready(x) if !x.stale.is_empty());
    lines.push(if ready {
        destructive_buttons(app, "prune")
    } else {
        close_hint(app)
    });
    let h = (lines.len() as u16 + 2).min(area.height);
    let r = centered(area, 78, h);
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines).block(dialog(app, "Prune stale image caches")),
        r,
    );
}
