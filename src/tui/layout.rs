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
        // VMs across the top; images over tasks on the left, logs on the right.
        let [vms, rest] =
            Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(body);
        let [left, logs] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(rest);
        let [images, tasks] =
            Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(left);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scroll_keeps_the_selection_visible() {
        assert_eq!(scroll_offset(0, 5), 0);
        assert_eq!(scroll_offset(7, 5), 3);
    }
}
