//! One-line prompts: the command palette (`:`), the pane filter (`/` in VMs and Images,
//! applied as you type) and the log search (`/` in Logs).

use crossterm::event::KeyEvent;
use ratatui::layout::{Constraint, Layout};
use ratatui::text::Span;
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;
use tui_textarea::TextArea;

use super::{centered, edit_field, form_action, form_key, Dialog, Outcome, Request};
use crate::tui::app::{line_input, text_of, App};
use crate::tui::data::Data;
use crate::tui::keymap::{Action, Keymap, Scope};

/// The command palette: a line, the error of the last line run from it, Tab completion
/// and the lines run before (Up/Down; the app keeps them across openings).
pub struct Palette {
    pub input: TextArea<'static>,
    pub error: Option<String>,
    /// What Tab found when it could not choose.
    pub candidates: Vec<String>,
    history: Vec<String>,
    /// Where Up/Down is in the history (`None`: the line being typed).
    pos: Option<usize>,
    draft: String,
    /// The presets `start` and `pull` complete (the registry's, the user's included).
    presets: Vec<String>,
}

/// The palette's commands, and whether they take an argument.
const COMMANDS: [(&str, bool); 20] = [
    ("prune", false),
    ("cleanup", true),
    ("start", true),
    ("logs", true),
    ("network", true),
    ("filter", true),
    ("pull", true),
    ("build", true),
    ("save", true),
    ("load", true),
    ("clone", true),
    ("open-ui", true),
    ("exec", true),
    ("doctor", false),
    ("refresh", false),
    ("help", false),
    ("quit", false),
    ("vms", false),
    ("images", false),
    ("tasks", false),
];

impl Palette {
    pub fn new(history: Vec<String>, presets: Vec<String>) -> Palette {
        Palette {
            presets,
            input: line_input(""),
            error: None,
            candidates: Vec::new(),
            history,
            pos: None,
            draft: String::new(),
        }
    }

    pub fn text(&self) -> String {
        text_of(&self.input)
    }

    /// The lines run before (oldest first).
    pub fn set_history(&mut self, history: Vec<String>) {
        self.history = history;
        self.pos = None;
    }

    pub(super) fn handle_key(&mut self, k: KeyEvent, data: &Data, keymap: &Keymap) -> Outcome {
        match (form_action(&k, keymap), k.code) {
            (Some(Action::Close), _) => return Outcome::Close,
            (Some(Action::Confirm), _) => return Outcome::Also(Request::Palette(self.text())),
            (Some(Action::NextField), _) => self.complete(data),
            (Some(Action::Up), _) => self.recall(true),
            (Some(Action::Down), _) => self.recall(false),
            _ => {
                edit_field(&mut self.input, k, keymap);
                self.error = None;
                self.candidates.clear();
                self.pos = None;
            }
        }
        Outcome::Keep
    }

    fn recall(&mut self, older: bool) {
        let n = self.history.len();
        let next = match (self.pos, older) {
            (None, true) if n > 0 => Some(n - 1),
            (None, _) => return,
            (Some(0), true) => Some(0),
            (Some(i), true) => Some(i - 1),
            (Some(i), false) if i + 1 < n => Some(i + 1),
            (Some(_), false) => None,
        };
        if self.pos.is_none() {
            self.draft = self.text();
        }
        self.pos = next;
        let line = next.map_or_else(|| self.draft.clone(), |i| self.history[i].clone());
        self.input = line_input(&line);
        self.error = None;
        self.candidates.clear();
    }

    /// Complete the command word, a preset after `start` and `build`, an image after `save`, a VM id after `logs` and
    /// `network`, `--all`
    /// after `cleanup`: one candidate is filled in, several fill in what they share and
    /// are listed under the line.
    fn complete(&mut self, data: &Data) {
        let line = self.text();
        let (done, word, options): (String, &str, Vec<String>) = match line.split_once(' ') {
            None => (
                String::new(),
                line.trim_start_matches(':'),
                COMMANDS.iter().map(|(c, _)| c.to_string()).collect(),
            ),
            Some((cmd, arg)) if !arg.contains(' ') => {
                let options = match cmd.trim_start_matches(':') {
                    "start" | "build" => self.presets.clone(),
                    "save" => data.images.iter().map(|i| i.name.clone()).collect(),
                    "logs" | "network" | "open-ui" | "exec" => {
                        data.vms.iter().map(|v| v.info.id.to_string()).collect()
                    }
                    "cleanup" => vec!["--all".to_string()],
                    "pull" => self
                        .presets
                        .iter()
                        .cloned()
                        .chain(["--all".to_string()])
                        .collect(),
                    _ => Vec::new(),
                };
                (format!("{cmd} "), arg, options)
            }
            Some(_) => return,
        };
        let found: Vec<String> = options
            .into_iter()
            .filter(|o| o.starts_with(word))
            .collect();
        let filled = match found.as_slice() {
            [] => {
                self.candidates.clear();
                self.error = Some(format!("nothing completes '{word}'"));
                return;
            }
            [one] => {
                let arg = done.is_empty() && COMMANDS.iter().any(|(c, a)| c == one && *a);
                self.candidates.clear();
                format!("{one}{}", if arg { " " } else { "" })
            }
            many => {
                self.candidates = many.to_vec();
                common_prefix(many.iter().map(String::as_str))
            }
        };
        self.input = line_input(&format!("{done}{filled}"));
        self.error = None;
    }
}

/// The longest prefix every word shares (the completion of a Tab with several candidates).
pub(super) fn common_prefix<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    let mut words = words.into_iter();
    let Some(first) = words.next() else {
        return String::new();
    };
    let mut n = first.len();
    for w in words {
        n = n.min(
            first
                .char_indices()
                .zip(w.chars())
                .find(|((_, a), b)| a != b)
                .map_or(n.min(w.len()), |((i, _), _)| i),
        );
    }
    first[..n].to_string()
}

/// Keys of the filter: every change filters at once; Enter keeps it, Esc closes.
pub(super) fn filter_key(t: &mut TextArea<'static>, k: KeyEvent, keymap: &Keymap) -> Outcome {
    match form_action(&k, keymap) {
        Some(Action::Close) => Outcome::Close,
        Some(Action::Confirm) => Outcome::Done(Request::Filter {
            text: text_of(t),
            live: false,
        }),
        _ => {
            edit_field(t, k, keymap);
            Outcome::Also(Request::Filter {
                text: text_of(t),
                live: true,
            })
        }
    }
}

/// Keys of the log search: Enter searches and jumps to the first match.
pub(super) fn search_key(t: &mut TextArea<'static>, k: KeyEvent, keymap: &Keymap) -> Outcome {
    match form_action(&k, keymap) {
        Some(Action::Close) => Outcome::Close,
        Some(Action::Confirm) => Outcome::Done(Request::Search(text_of(t))),
        _ => {
            // The last search comes selected: a character or a deletion replaces it, any
            // other key (a move) ends the selection and edits it.
            let replaces = matches!(
                k.code,
                crossterm::event::KeyCode::Char(_)
                    | crossterm::event::KeyCode::Backspace
                    | crossterm::event::KeyCode::Delete
            ) && !k
                .modifiers
                .contains(crossterm::event::KeyModifiers::CONTROL);
            if !replaces {
                t.cancel_selection();
            }
            edit_field(t, k, keymap);
            Outcome::Keep
        }
    }
}

pub(super) fn render(f: &mut Frame, app: &App, m: &Dialog, input: &TextArea<'static>) {
    let t = &app.theme;
    let area = f.area();
    let err = match m {
        Dialog::Palette(p) => p.error.as_ref(),
        _ => None,
    };
    let (title, hint) = match m {
            Dialog::Palette(p) => (
                "Command",
                err.cloned().unwrap_or_else(|| {
                    if p.candidates.is_empty() {
                        format!("{} complete · ↑↓ history · prune · cleanup [prefix|--all] · start <preset> · pull [preset|--all] · build <preset> · save <image> <file> · load <file> · logs <vm> · network [vm] · filter · doctor · refresh · quit", form_key(app, Action::NextField))
                    } else {
                        p.candidates.join(" · ")
                    }
                }),
            ),
            Dialog::Filter(_) => (
                "Filter",
                format!(
                    "type to filter as you go · {} keep · {} close",
                    form_key(app, Action::Confirm),
                    form_key(app, Action::Close)
                ),
            ),
            _ => (
                "Search logs",
                format!(
                    "{} search · {}/{} next/previous · {} close",
                    form_key(app, Action::Confirm),
                    app.keymap.hint(Scope::Logs, Action::NextMatch),
                    app.keymap.hint(Scope::Logs, Action::PrevMatch),
                    form_key(app, Action::Close)
                ),
            ),
        };
    // The terminal's width (less a margin), and as tall as the hint or error wraps to:
    // neither is cut.
    let w = area.width.saturating_sub(4).max(40);
    let style = if err.is_some() { t.error() } else { t.muted() };
    let hint = Paragraph::new(Span::styled(hint, style)).wrap(Wrap { trim: false });
    let hint_h = hint.line_count(w.saturating_sub(2)).max(1) as u16;
    let inner = super::framed(f, app, centered(area, w, 4 + hint_h), title);
    let [input_r, _, hint_r] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(1),
    ])
    .areas(inner);
    f.render_widget(input, input_r);
    f.render_widget(hint, hint_r);
}
