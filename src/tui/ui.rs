//! Drawing the header, the footer and the panes' frames (each pane draws itself:
//! [`super::components`]; each dialog too: [`super::dialogs`]). Every function here only
//! reads the [`App`]; nothing changes state.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Paragraph};
use ratatui::Frame;

use super::app::{App, Pane, TaskState};
use super::components::table::cut;
use crate::core::escape::into_on_screen;
use crate::core::units::format_size;

pub(crate) const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/// `line` as a terminal may show it: each span's control characters escaped as the CLI
/// escapes them, a newline as `\x0a` and a tab as spaces ([`crate::core::escape::on_screen`]).
/// ratatui drops them silently, which shows the rest of an escape sequence (`]52;c;…`,
/// `[2J`) as if it were the text.
pub fn shown_line(mut line: Line<'_>) -> Line<'_> {
    for s in &mut line.spans {
        if let std::borrow::Cow::Owned(shown) = crate::core::escape::on_screen(&s.content) {
            s.content = shown.into();
        }
    }
    line
}

/// [`shown_line`] of each line.
pub fn shown_lines(lines: Vec<Line<'_>>) -> Vec<Line<'_>> {
    lines.into_iter().map(shown_line).collect()
}

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
    let items = if let Some(s) = &app.status {
        vec![(0, vec![Span::styled(into_on_screen(s.clone()), t.warn())])]
    } else if running > 0 {
        vec![(
            0,
            vec![
                Span::styled(SPINNER[app.spinner % SPINNER.len()], t.accent()),
                Span::raw(format!(" {running} task(s) running")),
            ],
        )]
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
        items.extend(refresh_warnings(app));
        items.extend(doctor_summary(app));
        items
    };
    let l2 = with_sources(app, items, r.width);
    let lines = shown_lines(vec![Line::from(l1), l2]);
    f.render_widget(Paragraph::new(lines), r);
}

/// The fewest columns the state database's path is cut to before it is left out.
const SOURCE_MIN: usize = 24;

/// Line 2's `items` (as [`fit_line`] takes them) and, at its right end, where the data
/// shown was read: `db <state database> · images <images root>` (home as `~`). The
/// database outranks doctor's check names and hint (it is cut with `…` in the middle,
/// down to [`SOURCE_MIN`] columns, before those go) but not the counts and doctor's
/// verdict, so at 80 columns it is what goes first; the images root goes before anything.
fn with_sources(app: &App, items: Vec<(usize, Vec<Span<'static>>)>, width: u16) -> Line<'static> {
    let t = &app.theme;
    let d = &app.data;
    if d.state.db.as_os_str().is_empty() {
        return fit_line(items, width); // no refresh yet: nothing was read
    }
    let shown = |p: &std::path::Path| into_on_screen(crate::core::display_path(p, &d.home));
    let mut db = shown(&d.state.db);
    if !d.state.exists {
        db.push_str(" (none yet)");
    } else if let Some(w) = d.state.writes_to.as_deref().filter(|w| *w != d.state.db) {
        db.push_str(&format!(" (changes go to {})", shown(w)));
    }
    const GAP: usize = 2;
    let label = "db ";
    let images = (!d.images_root.as_os_str().is_empty())
        .then(|| format!(" · images {}", shown(&d.images_root)));
    // Which items stay: the database ranked after the counts and doctor's verdict (0, 1),
    // before its check names and hint; the images root last. Whole if it can be (what
    // ranks after it goes first), else cut, with nothing ranked after it.
    const DB_RANK: usize = 2;
    let db_full = GAP + label.len() + db.chars().count();
    let db_min = GAP + label.len() + SOURCE_MIN.min(db.chars().count());
    let mut ranks: Vec<usize> = items
        .iter()
        .map(|(p, _)| if *p >= DB_RANK { p + 1 } else { *p })
        .collect();
    let mut widths: Vec<usize> = items
        .iter()
        .map(|(_, s)| s.iter().map(Span::width).sum())
        .collect();
    let n = items.len();
    ranks.push(DB_RANK);
    widths.push(db_full);
    if let Some(i) = &images {
        ranks.push(usize::MAX);
        widths.push(i.chars().count());
    }
    let mut keep = fit_keep(&ranks, &widths, width);
    if !keep[n] {
        widths[n] = db_min;
        let before: Vec<usize> = (0..widths.len())
            .map(|i| if ranks[i] > DB_RANK { 0 } else { widths[i] })
            .collect();
        keep = fit_keep(&ranks, &before, width);
        for i in 0..keep.len() {
            keep[i] &= ranks[i] <= DB_RANK;
        }
    }
    let (db_kept, images_kept) = (keep[n], images.is_some() && keep[n + 1]);
    let left: Vec<(usize, Vec<Span<'static>>)> = items
        .into_iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(i, _)| i)
        .collect();
    let left_w: usize = (0..n).filter(|&i| keep[i]).map(|i| widths[i]).sum();
    let mut spans: Vec<Span<'static>> = left.into_iter().flat_map(|(_, s)| s).collect();
    if !db_kept {
        return Line::from(spans);
    }
    let images = images.filter(|_| images_kept);
    let images_w = images.as_deref().map_or(0, |i| i.chars().count());
    let room = usize::from(width).saturating_sub(left_w + GAP + label.len() + images_w);
    let db = cut_middle(&db, room);
    let pad = usize::from(width)
        .saturating_sub(left_w + label.len() + db.chars().count() + images_w)
        .max(GAP);
    spans.push(Span::raw(" ".repeat(pad)));
    spans.push(Span::styled(label, t.muted()));
    spans.push(Span::raw(db));
    if let Some(i) = images {
        spans.push(Span::styled(i, t.muted()));
    }
    Line::from(spans)
}

/// `text` in at most `width` characters: its middle replaced by `…` when longer (a path
/// keeps its start and its file name).
fn cut_middle(text: &str, width: usize) -> String {
    let n = text.chars().count();
    if n <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let head = (width - 1) / 2;
    let tail = width - 1 - head;
    let mut out: String = text.chars().take(head).collect();
    out.push('…');
    out.extend(text.chars().skip(n - tail));
    out
}

/// The last refresh's warnings, as line 2's items: how many (ranked with doctor's
/// verdict, before it), then the first, cut to 60 columns (ranked with doctor's hint,
/// before it and its check names). They last as long as their cause (a skipped row stays
/// in the state database), so they sit beside the counts, not over them; the app log has
/// each.
fn refresh_warnings(app: &App) -> Vec<(usize, Vec<Span<'static>>)> {
    let t = &app.theme;
    let Some(first) = app.data.errors.first() else {
        return Vec::new();
    };
    let n = app.data.errors.len();
    let count = if n == 1 {
        "⚠ 1 warning".to_string()
    } else {
        format!("⚠ {n} warnings")
    };
    vec![
        (
            1,
            vec![
                Span::styled("  │  ", t.muted()),
                Span::styled(count, t.error()),
            ],
        ),
        (
            2,
            vec![Span::styled(
                format!(": {}", cut(into_on_screen(first.clone()), 60)),
                t.error(),
            )],
        ),
    ]
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
    let ranks: Vec<usize> = items.iter().map(|(p, _)| *p).collect();
    let keep = fit_keep(&ranks, &widths, width);
    Line::from(
        items
            .into_iter()
            .zip(keep)
            .filter(|(_, k)| *k)
            .flat_map(|((_, s), _)| s)
            .collect::<Vec<_>>(),
    )
}

/// Which items of these `widths` stay within `width` when the highest `ranks` (the least
/// important; the later of equals) go first, whole; the most important always stays.
fn fit_keep(ranks: &[usize], widths: &[usize], width: u16) -> Vec<bool> {
    let mut keep = vec![true; widths.len()];
    let mut total: usize = widths.iter().sum();
    while total > usize::from(width) {
        let Some(drop) = (0..widths.len())
            .filter(|&i| keep[i])
            .max_by_key(|&i| (ranks[i], i))
        else {
            break;
        };
        if keep.iter().filter(|k| **k).count() == 1 {
            break; // the most important item shows, cut if it must
        }
        keep[drop] = false;
        total -= widths[drop];
    }
    keep
}
