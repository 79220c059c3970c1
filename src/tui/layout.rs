//! Where each pane goes. One pure function used by render and by mouse handling, so a
//! click always lands on what was drawn.

use ratatui::layout::{Constraint, Direction, Layout, Rect};

use super::app::{App, Pane};

/// Two columns from this width; below it, one column with Logs or Tasks at the bottom.
pub const WIDE: u16 = 120;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Areas {
    pub header: Rect,
    pub footer: Rect,
    pub vms: Option<Rect>,
    pub images: Option<Rect>,
    pub logs: Option<Rect>,
    pub tasks: Option<Rect>,
}

pub fn areas(area: Rect, app: &App) -> Areas {
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(area);
    let mut a = Areas {
        header,
        footer,
        ..Areas::default()
    };
    if area.width >= WIDE {
        let [left, right] = Layout::horizontal([Constraint::Percentage(58), Constraint::Percentage(42)])
            .areas(body);
        let [vms, images] =
            Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(left);
        let [logs, tasks] =
            Layout::vertical([Constraint::Percentage(65), Constraint::Percentage(35)]).areas(right);
        a.vms = Some(vms);
        a.images = Some(images);
        a.logs = Some(logs);
        a.tasks = Some(tasks);
    } else {
        let parts = Layout::default()
            .direction(Direction::Vertical)
            .constraints([
                Constraint::Percentage(42),
                Constraint::Percentage(26),
                Constraint::Percentage(32),
            ])
            .split(body);
        a.vms = Some(parts[0]);
        a.images = Some(parts[1]);
        match app.lower {
            Pane::Tasks => a.tasks = Some(parts[2]),
            _ => a.logs = Some(parts[2]),
        }
    }
    a
}

/// The first row shown so that `selected` is visible in `visible` rows.
pub fn scroll_offset(selected: usize, visible: usize) -> usize {
    if visible == 0 {
        return selected;
    }
    selected.saturating_sub(visible - 1)
}
