//! Mouse hit-testing: a click focuses and selects, the wheel scrolls, by the panes' areas.

use super::*;

impl App {
    pub(super) fn on_mouse(&mut self, m: MouseEvent) -> Vec<Effect> {
        if self.dialog.is_some() {
            return Vec::new();
        }
        let a = self.areas();
        let hit = |r: Option<Rect>| {
            r.filter(|r| {
                m.column >= r.x
                    && m.column < r.x + r.width
                    && m.row >= r.y
                    && m.row < r.y + r.height
            })
        };
        let panes = [
            (Pane::Vms, a.vms),
            (Pane::Images, a.images),
            (Pane::Logs, a.logs),
            (Pane::Tasks, a.tasks),
        ];
        let Some((pane, rect)) = panes.into_iter().find_map(|(p, r)| hit(r).map(|r| (p, r))) else {
            return Vec::new();
        };
        match m.kind {
            MouseEventKind::ScrollDown => self.step(pane, 3),
            MouseEventKind::ScrollUp => self.step(pane, -3),
            MouseEventKind::Down(MouseButton::Left) => {
                self.focus(pane);
                // Rows start below the border and the header line.
                let header = if pane == Pane::Logs { 1 } else { 2 };
                if m.row >= rect.y + header && pane != Pane::Logs {
                    let visible = usize::from(rect.height.saturating_sub(3));
                    let sel = *self.selection_mut(pane);
                    let offset = crate::tui::layout::scroll_offset(sel, visible);
                    let idx = offset + usize::from(m.row - rect.y - header);
                    if idx < self.list_len(pane) {
                        *self.selection_mut(pane) = idx;
                    }
                }
            }
            _ => {}
        }
        Vec::new()
    }
}
