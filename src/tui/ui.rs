//! Drawing the header, the footer and the panes' frames (each pane draws itself:
//! [`super::components`]; each dialog too: [`super::dialogs`]). Every function here only
//! reads the [`App`]; nothing changes state.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Paragraph};
use ratatui::Frame;

use super::app::{App, Pane, TaskState};
use crate::core::units::format_size;

pub(crate) const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

pub fn render(f: &mut Frame, app: &App) {
    let a = super::layout::areas(f.area(), app);
    header(f, app, a.header);
    if let Some(r) = a.vms {
        super::components::vms::render(f, app, r);
    }
    if let Some(r) = a.images {
        super::components::images::render(f, app, r);
    }
    if let Some(r) = a.logs {
        super::components::logs::render(f, app, r);
    }
    if let Some(r) = a.tasks {
        super::components::tasks::render(f, app, r);
    }
    footer(f, app, a.footer);
    if let Some(d) = &app.detail {
        d.render(f, app);
    }
    if let Some(d) = &app.dialog {
        d.render(f, app);
    }
}

/// A pane's frame: its number and title, thick and accented when focused.
pub(crate) fn block<'a>(app: &App, pane: Pane, title: String) -> Block<'a> {
    let focused = app.focus == pane;
    let n = match pane {
        Pane::Vms => 1,
        Pane::Images => 2,
        Pane::Logs => 3,
        Pane::Tasks => 4,
    };
    Block::default()
        .borders(Borders::ALL)
        .border_type(if focused {
            BorderType::Thick
        } else {
            BorderType::Plain
        })
        .border_style(app.theme.border(focused))
        .title(Span::styled(
            format!(" {n} {title} "),
            if focused {
                app.theme.accent()
            } else {
                app.theme.header()
            },
        ))
}

fn header(f: &mut Frame, app: &App, r: Rect) {
    let t = &app.theme;
    let mut l1 = vec![Span::styled(
        format!("smolvm {}", crate::core::version::CRATE_VERSION),
        t.accent(),
    )];
    let sep = || Span::styled(" │ ", t.muted());
    match &app.data.slow {
        Some(s) => {
            l1.push(Span::raw(format!(" (images {})", s.current_version)));
            l1.push(sep());
            let kvm_style = if s.host.hardware_kvm() {
                t.ok()
            } else {
                t.warn()
            };
            l1.push(Span::styled(
                format!(
                    "KVM: {} → {}",
                    s.host.kvm.label(),
                    s.host.auto().accelerator.as_str().to_uppercase()
                ),
                kvm_style,
            ));
            l1.push(sep());
            let mark = |ok: bool| if ok { "✓" } else { "✗" };
            l1.push(Span::raw(format!(
                "qemu {} firecracker {}",
                mark(s.host.qemu.is_some()),
                mark(s.host.firecracker.is_some())
            )));
            l1.push(sep());
            l1.push(if s.host.root {
                Span::styled("root", t.ok())
            } else {
                Span::styled("not root", t.warn())
            });
            l1.push(sep());
            l1.push(Span::raw(format!(
                "~/.smolvm {} · prune frees {}",
                format_size(s.smolvm_bytes),
                format_size(s.reclaimable_bytes)
            )));
        }
        None => l1.push(Span::styled("  loading host facts…", t.muted())),
    }
    if app.readonly {
        l1.push(sep());
        l1.push(Span::styled("READ-ONLY", t.warn()));
    }
    if Line::from(l1.clone()).width() > usize::from(r.width) {
        l1 = compact_header(app);
    }
    let running = app.running_tasks();
    let l2 = if let Some(s) = &app.status {
        Line::from(Span::styled(s.clone(), t.warn()))
    } else if running > 0 {
        Line::from(vec![
            Span::styled(SPINNER[app.spinner % SPINNER.len()], t.accent()),
            Span::raw(format!(" {running} task(s) running")),
        ])
    } else if let Some(e) = app.data.errors.first() {
        Line::from(Span::styled(format!("error: {e}"), t.error()))
    } else {
        let failed = app
            .data
            .tasks
            .iter()
            .filter(|t| t.state == TaskState::Failed)
            .count();
        let mut items = vec![(
            0,
            vec![Span::styled(
                format!(
                    "{} VM(s) · {} image cache(s) · {} task(s){}",
                    app.data.vms.len(),
                    app.data.images.len(),
                    app.data.tasks.len(),
                    if failed > 0 {
                        format!(", {failed} failed")
                    } else {
                        String::new()
                    }
                ),
                t.muted(),
            )],
        )];
        items.extend(doctor_summary(app));
        fit_line(items, r.width)
    };
    f.render_widget(Paragraph::new(vec![Line::from(l1), l2]), r);
}

/// `doctor: 7 OK · 4 WARN (kvm, firecracker, …) — :doctor for fixes`, coloured by the
/// worst verdict, as items of falling priority (the names, then the hint go first).
fn doctor_summary(app: &App) -> Vec<(usize, Vec<Span<'static>>)> {
    use crate::core::doctor::Status;
    let t = &app.theme;
    let Some(checks) = app
        .data
        .slow
        .as_ref()
        .map(|s| &s.doctor)
        .filter(|c| !c.is_empty())
    else {
        return Vec::new();
    };
    let count = |st: Status| checks.iter().filter(|c| c.status == st).count();
    let (ok, warn, fail) = (count(Status::Ok), count(Status::Warn), count(Status::Fail));
    let mut text = format!("doctor: {ok} OK");
    if warn > 0 {
        text.push_str(&format!(" · {warn} WARN"));
    }
    if fail > 0 {
        text.push_str(&format!(" · {fail} FAIL"));
    }
    let names: Vec<&str> = checks
        .iter()
        .filter(|c| c.status != Status::Ok)
        .map(|c| c.name)
        .collect();
    let style = if fail > 0 {
        t.error()
    } else if warn > 0 {
        t.warn()
    } else {
        t.ok()
    };
    let mut items = vec![(
        1,
        vec![Span::styled("  │  ", t.muted()), Span::styled(text, style)],
    )];
    if !names.is_empty() {
        items.push((
            3,
            vec![Span::styled(format!(" ({})", names.join(", ")), style)],
        ));
        items.push((2, vec![Span::styled(" — :doctor for fixes", style)]));
    }
    items
}

/// The header for narrow terminals: same facts, fewer words.
fn compact_header(app: &App) -> Vec<Span<'static>> {
    let t = &app.theme;
    let mut v = vec![Span::styled(
        format!("smolvm {}", crate::core::version::CRATE_VERSION),
        t.accent(),
    )];
    if let Some(s) = &app.data.slow {
        let mark = |ok: bool| if ok { "✓" } else { "✗" };
        v.push(Span::raw(" "));
        v.push(Span::styled(
            format!(
                "{}→{}",
                s.host.kvm.label(),
                s.host.auto().accelerator.as_str().to_uppercase()
            ),
            if s.host.hardware_kvm() {
                t.ok()
            } else {
                t.warn()
            },
        ));
        v.push(Span::raw(format!(
            " qemu{} fc{} {} │ {} · frees {}",
            mark(s.host.qemu.is_some()),
            mark(s.host.firecracker.is_some()),
            if s.host.root { "root" } else { "user" },
            format_size(s.smolvm_bytes),
            format_size(s.reclaimable_bytes)
        )));
    }
    if app.readonly {
        v.push(Span::styled(" RO", t.warn()));
    }
    v
}

fn footer(f: &mut Frame, app: &App, r: Rect) {
    let t = &app.theme;
    // The focused pane's commands that can run now, in priority order: what does not fit
    // is left out whole, from the end.
    let mut items = Vec::new();
    for c in app.commands(app.focus).into_iter().filter(|c| c.enabled) {
        let gap = if items.is_empty() { "" } else { "  " };
        let spans = vec![
            Span::styled(format!("{gap}{}", c.key), t.accent()),
            Span::styled(format!(" {}", c.label), t.muted()),
        ];
        items.push((items.len(), spans));
    }
    f.render_widget(Paragraph::new(fit_line(items, r.width)), r);
}

/// A line of items, each `(priority, spans)` (0 first): while the line is wider than
/// `width`, the least important item (the last one among equals) is left out whole, so
/// nothing is cut mid-word; the rest keep their order.
fn fit_line(items: Vec<(usize, Vec<Span<'static>>)>, width: u16) -> Line<'static> {
    let widths: Vec<usize> = items
        .iter()
        .map(|(_, s)| s.iter().map(Span::width).sum())
        .collect();
    let mut keep = vec![true; items.len()];
    let mut total: usize = widths.iter().sum();
    while total > usize::from(width) {
        let Some(drop) = (0..items.len())
            .filter(|&i| keep[i])
            .max_by_key(|&i| (items[i].0, i))
        else {
            break;
        };
        if keep.iter().filter(|k| **k).count() == 1 {
            break; // the most important item shows, cut if it must
        }
        keep[drop] = false;
        total -= widths[drop];
    }
    Line::from(
        items
            .into_iter()
            .zip(keep)
            .filter(|(_, k)| *k)
            .flat_map(|((_, s), _)| s)
            .collect::<Vec<_>>(),
    )
}
