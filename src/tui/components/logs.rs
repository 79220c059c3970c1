//! The Logs pane: the app's own log or a VM's console, followed or scrolled, wrapped or
//! not, searched (the lines are data: [`Data`]).

use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use super::{Command, Component, Cx, Intent, MOVE};
use crate::core::paint::Paint;
use crate::core::readonly::Action as Mutation;
use crate::tui::app::line_input;
use crate::tui::app::{App, Pane};
use crate::tui::data::Data;
use crate::tui::dialogs::Dialog;
use crate::tui::keymap::{Action, Scope};
use crate::tui::theme::Theme;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogSource {
    App,
    Vm(String),
}

/// How the Logs pane shows its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogView {
    pub source: LogSource,
    pub follow: bool,
    pub wrap: bool,
    /// A VM's console shown raw (every escape sequence as text), not painted.
    pub raw: bool,
    /// First line shown when not following.
    pub scroll: usize,
    pub search: String,
    pub matches: Vec<usize>,
    pub current: Option<usize>,
}

impl Default for LogView {
    fn default() -> Self {
        LogView {
            source: LogSource::App,
            follow: true,
            wrap: false,
            raw: false,
            scroll: 0,
            search: String::new(),
            matches: Vec::new(),
            current: None,
        }
    }
}

const COMMANDS: [Action; 7] = [
    Action::Search,
    Action::NextMatch,
    Action::PrevMatch,
    Action::Follow,
    Action::Wrap,
    Action::Raw,
    Action::AppLog,
];

impl LogView {
    /// The lines of the log it shows.
    pub fn lines<'a>(&self, data: &'a Data) -> &'a [String] {
        match &self.source {
            LogSource::App => &data.app_log,
            LogSource::Vm(id) => data.vm_log(id, !self.raw),
        }
    }

    /// The paint of those lines, line by line (none: the app's log, or raw).
    pub fn paint<'a>(&self, data: &'a Data) -> &'a [Vec<(usize, Paint)>] {
        match &self.source {
            LogSource::Vm(id) if !self.raw => data.vm_log_paint(id),
            _ => &[],
        }
    }

    /// Scroll by `by` lines (following again at the end).
    pub fn step(&mut self, len: usize, by: isize) {
        let max = len.saturating_sub(1);
        let cur = if self.follow { max } else { self.scroll };
        self.scroll = cur.saturating_add_signed(by).min(max);
        self.follow = self.scroll >= max && by > 0;
    }

    /// The lines changed: the search runs again, a follower goes to the end.
    pub fn lines_changed(&mut self, data: &Data) {
        self.recompute_matches(data);
        if self.follow {
            self.scroll = self.lines(data).len().saturating_sub(1);
        }
    }

    pub fn recompute_matches(&mut self, data: &Data) {
        let q = self.search.to_lowercase();
        self.matches = if q.is_empty() {
            Vec::new()
        } else {
            self.lines(data)
                .iter()
                .enumerate()
                .filter(|(_, l)| l.to_lowercase().contains(&q))
                .map(|(i, _)| i)
                .collect()
        };
        if self.current.is_some_and(|c| c >= self.matches.len()) {
            self.current = None;
        }
    }

    /// To the next (or previous) match; what to say in the status line.
    pub fn step_match(&mut self, forward: bool) -> String {
        let n = self.matches.len();
        if n == 0 {
            return if self.search.is_empty() {
                "no search: press / in Logs".into()
            } else {
                format!("no match for '{}'", self.search)
            };
        }
        let next = match (self.current, forward) {
            (None, true) => 0,
            (None, false) => n - 1,
            (Some(c), true) => (c + 1) % n,
            (Some(c), false) => (c + n - 1) % n,
        };
        self.current = Some(next);
        self.follow = false;
        self.scroll = self.matches[next];
        format!("match {}/{n}", next + 1)
    }
}

impl Component for LogView {
    fn scope(&self) -> Scope {
        Scope::Logs
    }

    fn commands(&self, _cx: &Cx) -> Vec<Command> {
        COMMANDS.into_iter().map(Command::on).collect()
    }

    fn also(&self) -> &'static [Action] {
        &MOVE
    }

    fn mutation(&self, _a: Action, _cx: &Cx) -> Option<Mutation> {
        None
    }

    fn on_action(&mut self, a: Action, cx: &Cx) -> Option<Vec<Intent>> {
        let len = self.lines(cx.data).len();
        let mut out = Vec::new();
        match a {
            Action::Up => self.step(len, -1),
            Action::Down => self.step(len, 1),
            Action::PageUp => self.step(len, -(cx.page as isize)),
            Action::PageDown => self.step(len, cx.page as isize),
            Action::Top => {
                self.follow = false;
                self.scroll = 0;
            }
            Action::Bottom => {
                self.follow = true;
                self.scroll = len.saturating_sub(1);
            }
            Action::Search => {
                // The last search, selected: typing starts a new one, a move edits it.
                let mut input = line_input(&self.search);
                input.select_all();
                out.push(Intent::open(Dialog::Search(input)))
            }
            Action::NextMatch | Action::PrevMatch => {
                out.push(Intent::Status(self.step_match(a == Action::NextMatch)))
            }
            Action::Follow => {
                self.follow = !self.follow;
                if self.follow {
                    self.scroll = len.saturating_sub(1);
                }
            }
            Action::Wrap => self.wrap = !self.wrap,
            // The same lines either way: the search runs again on what is shown.
            Action::Raw => {
                self.raw = !self.raw;
                self.recompute_matches(cx.data);
            }
            // The app's log and the selected VM's, in turn.
            Action::AppLog => {
                let next = match &self.source {
                    LogSource::App => cx.selected_vm.clone().map(LogSource::Vm),
                    LogSource::Vm(_) => Some(LogSource::App),
                };
                out.extend(next.map(Intent::ShowLog));
            }
            _ => return None,
        }
        Some(out)
    }
}

/// Draw the Logs pane.
pub fn render(f: &mut Frame, app: &App, r: Rect) {
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
    if l.raw && matches!(l.source, LogSource::Vm(_)) {
        flags.push("raw".to_string());
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
    let blk = crate::tui::ui::block(app, Pane::Logs, title);
    let height = usize::from(r.height.saturating_sub(2));
    if shown.is_empty() {
        let msg = match &l.source {
            LogSource::App => "No messages yet.".to_string(),
            LogSource::Vm(_) => "No console output (yet).".to_string(),
        };
        f.render_widget(Paragraph::new(Span::styled(msg, t.muted())).block(blk), r);
        return;
    }
    // Show the window ending at the last line when following, else starting at `scroll`.
    let last = shown.len().saturating_sub(1);
    let start = if l.follow {
        follow_start(shown, height, l.wrap.then_some(r.width.saturating_sub(2)))
    } else {
        l.scroll.min(last)
    };
    let q = l.search.to_lowercase();
    let paint = l.paint(&app.data);
    let lines: Vec<Line> = shown
        .iter()
        .enumerate()
        .skip(start)
        .take(height)
        .map(|(i, text)| {
            let current = l.current.map(|c| l.matches[c]) == Some(i);
            let runs = paint.get(i).map_or(&[][..], Vec::as_slice);
            highlight(text, runs, &q, t, current)
        })
        .collect();
    let mut p = Paragraph::new(lines).block(blk);
    if l.wrap {
        p = p.wrap(Wrap { trim: false });
    }
    f.render_widget(p, r);
}

/// The first line of a followed log's window of `height` rows: the last lines that fit,
/// each counted by the rows it takes when wrapped at `wrap_width` (so the last line is on
/// screen with wrap on too), else one row each.
fn follow_start<S: AsRef<str>>(shown: &[S], height: usize, wrap_width: Option<u16>) -> usize {
    let Some(width) = wrap_width.filter(|w| *w > 0) else {
        return shown.len().saturating_sub(height.max(1));
    };
    let mut rows = 0usize;
    let mut start = shown.len();
    while start > 0 {
        let text = shown[start - 1].as_ref();
        let n = Paragraph::new(Line::raw(text))
            .wrap(Wrap { trim: false })
            .line_count(width)
            .max(1);
        if rows + n > height && start < shown.len() {
            break;
        }
        rows += n;
        start -= 1;
    }
    start.min(shown.len().saturating_sub(1))
}

/// A log line painted as its `runs` say ([`crate::core::paint::Painted`]), with every case-insensitive match
/// of `q` highlighted over the paint.
fn highlight<'a>(
    text: &'a str,
    runs: &[(usize, Paint)],
    q: &str,
    t: &Theme,
    current: bool,
) -> Line<'a> {
    let mut mark = t.search_match();
    if current {
        mark = mark.add_modifier(Modifier::BOLD | Modifier::UNDERLINED);
    }
    let mut matches: Vec<std::ops::Range<usize>> = Vec::new();
    if !q.is_empty() {
        // Lowercased a character at a time, so a match's bytes in `lower` are the same
        // bytes of `text` — unless some character's lowercase has another length (`K` →
        // `k`, `İ` → `i̇`; the total may still be the same): then the whole line is marked.
        let mut lower = String::with_capacity(text.len());
        let mut aligned = true;
        for c in text.chars() {
            let before = lower.len();
            lower.extend(c.to_lowercase());
            aligned &= lower.len() - before == c.len_utf8();
        }
        if !aligned {
            if text.to_lowercase().contains(q) {
                matches.push(0..text.len());
                mark = t.search_match();
            }
        } else {
            let mut at = 0;
            while let Some(pos) = lower[at..].find(q) {
                matches.push(at + pos..at + pos + q.len());
                at += pos + q.len();
            }
        }
    }
    if runs.is_empty() && matches.is_empty() {
        return Line::raw(text);
    }
    // Cut where a paint or a match begins or ends; each piece has one of each.
    let mut cuts: Vec<usize> = runs.iter().map(|r| r.0).collect();
    cuts.extend(matches.iter().flat_map(|m| [m.start, m.end]));
    cuts.extend([0, text.len()]);
    cuts.sort_unstable();
    cuts.dedup();
    let spans = cuts
        .windows(2)
        .map(|w| {
            let paint = runs.iter().take_while(|r| r.0 <= w[0]).last();
            let mut style = paint.map_or_else(Style::new, |r| t.paint(r.1));
            if matches.iter().any(|m| m.start <= w[0] && w[1] <= m.end) {
                style = style.patch(mark);
            }
            Span::styled(&text[w[0]..w[1]], style)
        })
        .collect::<Vec<_>>();
    Line::from(spans)
}

#[cfg(test)]
mod tests {
    use super::{follow_start, highlight};

    /// Guest console text whose lowercase moves character boundaries while keeping the
    /// byte count (`K` is 3 bytes, `k` 1; `İ` is 2, `i̇` 3) marks the whole line instead
    /// of slicing it mid-character; plain text marks just the match.
    #[test]
    fn a_search_in_text_whose_case_folding_moves_bytes_marks_the_line() {
        let t = crate::tui::theme::Theme::defaults(false);
        let text = "\u{212A}\u{130}\u{130}";
        assert_eq!(text.len(), text.to_lowercase().len());
        let line = highlight(text, &[], "i", &t, true);
        assert_eq!(line.spans.len(), 1);
        assert_eq!(line.spans[0].content, text);
        assert_eq!(line.style.patch(line.spans[0].style), t.search_match());
        let line = highlight("Boot OK now", &[], "ok", &t, false);
        let parts: Vec<&str> = line.spans.iter().map(|s| s.content.as_ref()).collect();
        assert_eq!(parts, ["Boot ", "OK", " now"]);
    }

    /// A painted line keeps its paint where a match covers part of a run: the match's
    /// mark is drawn over the run's colour, the rest of the run keeps it.
    #[test]
    fn a_match_is_marked_over_the_paint() {
        use crate::core::paint::painted;
        use ratatui::style::{Color, Modifier};
        let t = crate::tui::theme::Theme::defaults(false);
        let p = painted(b"[\x1b[1;32m  OK  \x1b[0m] Started ssh.");
        let line = highlight(&p.text, &p.runs, "k  ] st", &t, false);
        let parts: Vec<(&str, Option<Color>, bool)> = line
            .spans
            .iter()
            .map(|s| {
                let bold = s.style.add_modifier.contains(Modifier::BOLD);
                (s.content.as_ref(), s.style.fg, bold)
            })
            .collect();
        let mark = t.search_match().fg;
        assert_eq!(
            parts,
            [
                ("[", None, false),
                ("  O", Some(Color::Green), true),
                ("K  ", mark, true),
                ("] St", mark, false),
                ("arted ssh.", None, false),
            ]
        );
        // Without a search, the paint alone; without paint or search, one raw span.
        let line = highlight(&p.text, &p.runs, "", &t, false);
        assert_eq!(line.spans.len(), 3);
        let t = crate::tui::theme::Theme::defaults(true);
        let line = highlight(&p.text, &p.runs, "", &t, false);
        assert_eq!(line.spans[1].style.fg, None, "NO_COLOR: no colour");
        assert!(line.spans[1].style.add_modifier.contains(Modifier::BOLD));
        assert_eq!(highlight("plain", &[], "", &t, false).spans.len(), 1);
    }

    /// With wrap on, a followed log shows its last line: long lines take several rows, so
    /// the window starts later than one row per line would put it.
    #[test]
    fn a_followed_wrapped_log_ends_at_its_last_line() {
        // One word of 51 characters: 3 rows at width 20.
        let long = "x".repeat(50);
        let shown: Vec<String> = (0..10).map(|i| format!("{i}{long}")).collect();
        // 10 lines of 3 rows in 9 rows: the last 3 lines.
        assert_eq!(follow_start(&shown, 9, Some(20)), 7);
        // Without wrap, one row each: the last 9 lines.
        assert_eq!(follow_start(&shown, 9, None), 1);
        // A line taller than the pane is still the one shown.
        assert_eq!(follow_start(&shown, 2, Some(20)), 9);
        assert_eq!(follow_start(&["a", "b"], 9, Some(20)), 0);
    }
}
