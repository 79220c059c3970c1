//! Drawing the panes, the header and the footer (each dialog draws itself:
//! [`super::dialogs`]). Every function here only reads the [`App`]; nothing changes state.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Cell, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

use super::app::{App, LogSource, Pane, TaskState, IMAGE_COLUMNS, VM_COLUMNS};
use super::keymap::{Action, Scope};
use super::layout::scroll_offset;
use crate::core::table::{self, Column, ImageCol, VmCol};
use crate::core::units::format_size;

const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

pub fn render(f: &mut Frame, app: &App) {
    let a = super::layout::areas(f.area(), app);
    header(f, app, a.header);
    if let Some(r) = a.vms {
        vms(f, app, r);
    }
    if let Some(r) = a.images {
        images(f, app, r);
    }
    if let Some(r) = a.logs {
        logs(f, app, r);
    }
    if let Some(r) = a.tasks {
        tasks(f, app, r);
    }
    footer(f, app, a.footer);
    if let Some(d) = &app.detail {
        d.render(f, app);
    }
    if let Some(d) = &app.dialog {
        d.render(f, app);
    }
}

fn block<'a>(app: &App, pane: Pane, title: String) -> Block<'a> {
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

fn sort_title<K: PartialEq>(cols: &[Column<K>], col: K, desc: bool) -> String {
    let title = cols.iter().find(|c| c.id == col).map_or("", |c| c.title);
    format!("sort {title}{}", if desc { "↓" } else { "↑" })
}

fn vms(f: &mut Frame, app: &App, r: Rect) {
    let t = &app.theme;
    let view = app.vm_view();
    let mut title = format!("VMs ({})", view.len());
    if !app.vm_list.filter.is_empty() {
        title.push_str(&format!(" /{}", app.vm_list.filter));
    }
    if !app.vm_list.marks.is_empty() {
        title.push_str(&format!(" · {} marked", app.vm_list.marks.len()));
    }
    if app.vm_sort != VmCol::default() || app.vm_list.sort_desc {
        title.push_str(&format!(
            " · {}",
            sort_title(&VM_COLUMNS, app.vm_sort, app.vm_list.sort_desc)
        ));
    }
    let blk = block(app, Pane::Vms, title);
    if view.is_empty() {
        let msg = if app.data.vms.is_empty() {
            format!(
                "No VMs. Press {} to start a preset.",
                app.keymap.hint(Scope::Vms, Action::Start)
            )
        } else {
            "No VMs match the filter (Esc clears it).".to_string()
        };
        f.render_widget(Paragraph::new(Span::styled(msg, t.muted())).block(blk), r);
        return;
    }
    // The ID column is as wide as the longest ID (and a mark), within its range.
    let id_w = view
        .iter()
        .map(|v| v.info.id.chars().count() + 2)
        .max()
        .unwrap_or(0);
    let w = VM_COLUMNS.map(|c| match c.id {
        VmCol::Id => c.width_for(id_w),
        _ => c.min,
    });
    let cols = table::fit(&VM_COLUMNS, &w, r.width.saturating_sub(2));
    let visible = usize::from(r.height.saturating_sub(3));
    let offset = scroll_offset(app.vm_list.selected, visible);
    let rows: Vec<Row> = view
        .iter()
        .enumerate()
        .skip(offset)
        .take(visible)
        .map(|(i, v)| {
            let marked = app.vm_list.marks.contains(&v.info.id);
            let unguarded = v.net.as_ref().is_some_and(|n| n.unguarded);
            let all: Vec<Cell> = v
                .cells()
                .into_iter()
                .zip(VM_COLUMNS.iter())
                .map(|(text, c)| match c.id {
                    VmCol::Id => Cell::from(format!("{}{text}", if marked { "● " } else { "" })),
                    VmCol::Status => Cell::from(Span::styled(
                        text,
                        t.status(v.info.status.as_str(), v.info.stale),
                    )),
                    // A running sandbox whose policy is not enforced stands out.
                    VmCol::Net if unguarded => Cell::from(Span::styled(text, t.error())),
                    _ => Cell::from(text),
                })
                .collect();
            let mut row = Row::new(pick(all, &cols));
            if marked {
                row = row.style(t.marked());
            }
            if i == app.vm_list.selected && app.focus == Pane::Vms {
                row = row.style(t.selected());
            } else if i == app.vm_list.selected {
                row = row.style(Style::new().add_modifier(Modifier::BOLD));
            }
            row
        })
        .collect();
    let widths: Vec<Constraint> = cols.iter().map(|&c| Constraint::Length(w[c])).collect();
    let head = Row::new(pick(table::titles(&VM_COLUMNS).map(Cell::from), &cols)).style(t.muted());
    f.render_widget(
        Table::new(rows, widths)
            .header(head)
            .block(blk)
            .column_spacing(1),
        r,
    );
}

/// The cells of the chosen columns, in order.
fn pick<'a>(cells: impl IntoIterator<Item = Cell<'a>>, cols: &[usize]) -> Vec<Cell<'a>> {
    cells
        .into_iter()
        .enumerate()
        .filter(|(i, _)| cols.contains(i))
        .map(|(_, c)| c)
        .collect()
}

fn images(f: &mut Frame, app: &App, r: Rect) {
    let t = &app.theme;
    let view = app.image_view();
    let mut title = format!("Images ({})", view.len());
    if !app.image_list.filter.is_empty() {
        title.push_str(&format!(" /{}", app.image_list.filter));
    }
    if !app.image_list.marks.is_empty() {
        title.push_str(&format!(" · {} marked", app.image_list.marks.len()));
    }
    if app.image_sort != ImageCol::default() || app.image_list.sort_desc {
        title.push_str(&format!(
            " · {}",
            sort_title(&IMAGE_COLUMNS, app.image_sort, app.image_list.sort_desc)
        ));
    }
    let blk = block(app, Pane::Images, title);
    if view.is_empty() {
        let msg = match &app.data.slow {
            None => "Loading image caches…".to_string(),
            Some(_) if app.data.images.is_empty() => "No image caches.".to_string(),
            Some(_) => "No images match the filter (Esc clears it).".to_string(),
        };
        f.render_widget(Paragraph::new(Span::styled(msg, t.muted())).block(blk), r);
        return;
    }
    // The IMAGE column is as wide as the longest name, within its range.
    let name_w = view
        .iter()
        .map(|i| {
            i.name.chars().count()
                + if app.image_list.marks.is_empty() {
                    0
                } else {
                    2
                }
        })
        .max()
        .unwrap_or(0);
    let w = IMAGE_COLUMNS.map(|c| match c.id {
        ImageCol::Image => c.width_for(name_w),
        _ => c.min,
    });
    let cols = table::fit(&IMAGE_COLUMNS, &w, r.width.saturating_sub(2));
    let visible = usize::from(r.height.saturating_sub(3));
    let offset = scroll_offset(app.image_list.selected, visible);
    let rows: Vec<Row> = view
        .iter()
        .enumerate()
        .skip(offset)
        .take(visible)
        .map(|(i, im)| {
            let state = im.shown_state();
            let style = if im.current {
                t.ok()
            } else if im.kept.is_some() {
                t.warn()
            } else {
                t.muted()
            };
            let marked = app
                .image_list
                .marks
                .contains(&im.path.display().to_string());
            let mut row = Row::new(pick(
                [
                    Cell::from(im.version.clone()),
                    Cell::from(format!("{}{}", if marked { "● " } else { "" }, im.name)),
                    Cell::from(im.arch_str()),
                    Cell::from(im.vmm_str()),
                    Cell::from(format_size(im.size_bytes)),
                    Cell::from(Span::styled(state, style)),
                ],
                &cols,
            ));
            if marked {
                row = row.style(t.marked());
            }
            if i == app.image_list.selected && app.focus == Pane::Images {
                row = row.style(t.selected());
            }
            row
        })
        .collect();
    let widths: Vec<Constraint> = cols
        .iter()
        .map(|&c| {
            if IMAGE_COLUMNS[c].grow {
                Constraint::Min(w[c])
            } else {
                Constraint::Length(w[c])
            }
        })
        .collect();
    let head =
        Row::new(pick(table::titles(&IMAGE_COLUMNS).map(Cell::from), &cols)).style(t.muted());
    f.render_widget(
        Table::new(rows, widths)
            .header(head)
            .block(blk)
            .column_spacing(1),
        r,
    );
}

fn logs(f: &mut Frame, app: &App, r: Rect) {
    let t = &app.theme;
    let l = &app.logs;
    let shown = app.log_lines();
    let src = match &l.source {
        LogSource::App => "smolvm".to_string(),
        LogSource::Vm(id) => id.clone(),
    };
    let mut flags = Vec::new();
    if l.follow {
        flags.push("follow".to_string());
    }
    if l.wrap {
        flags.push("wrap".to_string());
    }
    if !l.search.is_empty() {
        flags.push(format!(
            "/{} {}",
            l.search,
            match l.current {
                Some(c) => format!("{}/{}", c + 1, l.matches.len()),
                None => format!("{} match(es)", l.matches.len()),
            }
        ));
    }
    let title = if flags.is_empty() {
        format!("Logs: {src}")
    } else {
        format!("Logs: {src} · {}", flags.join(" · "))
    };
    let blk = block(app, Pane::Logs, title);
    let height = usize::from(r.height.saturating_sub(2));
    if shown.is_empty() {
        let msg = match &l.source {
            LogSource::App => "No messages yet.".to_string(),
            LogSource::Vm(_) => "No console output (yet).".to_string(),
        };
        f.render_widget(Paragraph::new(Span::styled(msg, t.muted())).block(blk), r);
        return;
    }
    // Show the window ending at `scroll` when following, else starting at it.
    let last = shown.len().saturating_sub(1);
    let start = if l.follow {
        last.saturating_sub(height.saturating_sub(1))
    } else {
        l.scroll.min(last)
    };
    let q = l.search.to_lowercase();
    let lines: Vec<Line> = shown
        .iter()
        .enumerate()
        .skip(start)
        .take(height)
        .map(|(i, text)| {
            let current = l.current.map(|c| l.matches[c]) == Some(i);
            highlight(text, &q, t, current)
        })
        .collect();
    let mut p = Paragraph::new(lines).block(blk);
    if l.wrap {
        p = p.wrap(Wrap { trim: false });
    }
    f.render_widget(p, r);
}

/// A log line with every case-insensitive match of `q` highlighted.
fn highlight<'a>(text: &'a str, q: &str, t: &super::theme::Theme, current: bool) -> Line<'a> {
    if q.is_empty() {
        return Line::raw(text);
    }
    let lower = text.to_lowercase();
    if lower.len() != text.len() {
        // Case folding changed byte lengths: fall back to marking the whole line.
        return if lower.contains(q) {
            Line::styled(text, t.search_match())
        } else {
            Line::raw(text)
        };
    }
    let mut spans = Vec::new();
    let mut at = 0;
    while let Some(pos) = lower[at..].find(q) {
        let s = at + pos;
        if s > at {
            spans.push(Span::raw(&text[at..s]));
        }
        let mut style = t.search_match();
        if current {
            style = style.add_modifier(Modifier::BOLD | Modifier::UNDERLINED);
        }
        spans.push(Span::styled(&text[s..s + q.len()], style));
        at = s + q.len();
    }
    if at < text.len() {
        spans.push(Span::raw(&text[at..]));
    }
    Line::from(spans)
}

fn bar(done: u64, total: u64, width: usize) -> String {
    if total == 0 {
        return String::new();
    }
    let filled = ((done.min(total) as f64 / total as f64) * width as f64).round() as usize;
    format!(
        "[{}{}] {}%",
        "█".repeat(filled),
        "·".repeat(width - filled),
        done.min(total) * 100 / total
    )
}

fn tasks(f: &mut Frame, app: &App, r: Rect) {
    let t = &app.theme;
    let blk = block(
        app,
        Pane::Tasks,
        format!("Tasks ({})", app.data.tasks.len()),
    );
    if app.data.tasks.is_empty() {
        let msg = format!(
            "No tasks yet: {} prune · {} cleanup · {} start",
            app.keymap.hint(Scope::Vms, Action::Prune),
            app.keymap.hint(Scope::Vms, Action::Cleanup),
            app.keymap.hint(Scope::Vms, Action::Start)
        );
        f.render_widget(Paragraph::new(Span::styled(msg, t.muted())).block(blk), r);
        return;
    }
    let height = usize::from(r.height.saturating_sub(2));
    let mut lines: Vec<Line> = Vec::new();
    for (i, task) in app.data.tasks.iter().enumerate().rev() {
        let (icon, style) = match task.state {
            TaskState::Running => (SPINNER[app.spinner % SPINNER.len()], t.accent()),
            TaskState::Done => ("✓", t.ok()),
            TaskState::Failed => ("✗", t.error()),
            TaskState::Cancelled => ("⊘", t.warn()),
        };
        let mut spans = vec![
            Span::styled(format!("{icon} "), style),
            Span::raw(format!("#{} {}", task.id, task.title)),
            Span::styled(format!("  {}", task.phase), t.muted()),
        ];
        if task.state == TaskState::Running && task.total > 0 {
            spans.push(Span::raw(format!("  {}", bar(task.done, task.total, 12))));
        }
        if !task.summary.is_empty() && task.state != TaskState::Running {
            spans.push(Span::raw(format!("  {}", task.summary)));
        }
        let mut line = Line::from(spans);
        if i == app.task_sel && app.focus == Pane::Tasks {
            line = line.style(t.selected());
        }
        lines.push(line);
        if i == app.task_sel {
            for item in &task.items {
                let (mark, st) = if item.ok {
                    ("✓", t.ok())
                } else {
                    ("✗", t.error())
                };
                let detail = if item.detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", item.detail)
                };
                lines.push(Line::from(vec![
                    Span::styled(format!("    {mark} "), st),
                    Span::raw(format!("{}{detail}", item.name)),
                ]));
            }
        }
    }
    lines.truncate(height.max(1));
    f.render_widget(Paragraph::new(lines).block(blk), r);
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
