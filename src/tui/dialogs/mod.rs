//! The dashboard's dialogs. Each owns its keys and its drawing: [`Dialog::handle_key`]
//! changes the dialog and answers an [`Outcome`] (stay, close, and maybe a [`Request`]
//! the app carries out — a task, a filter, a dry run); [`Dialog::render`] draws it over the
//! panes. The app never looks inside a dialog to decide what a key means.
//!
//! `info.rs` help and doctor · `prompt.rs` palette, filter, search · `confirm.rs` the one
//! typed confirmation of destructive actions · `prune.rs` and `cleanup.rs` the previews
//! that confirm themselves · `start.rs` the start form · `vmforms.rs` the VM actions' forms
//! · `egress.rs` the egress fields the start and network forms share · `env.rs` one
//! variable of a VM's environment, set or unset.

mod branch;
mod cleanup;
mod confirm;
mod detail;
mod egress;
mod env;
mod info;
mod prompt;
mod prune;
mod start;
mod vmforms;

use crossterm::event::KeyEvent;
use std::ops::Range;

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Clear, Paragraph};
use ratatui::Frame;
use tui_textarea::TextArea;

pub use branch::BranchForm;
pub use cleanup::{CleanupDialog, CleanupPreview};
pub use confirm::ConfirmAction;
pub use detail::{vm_actions, DetailView};
pub use egress::{items as egress_items, EgressFields};
pub use env::EnvForm;
pub use info::Scroll;
pub use prompt::Palette;
pub use prune::PrunePreview;
pub use start::{field_errors, Field, StartForm, StartImage, StartSpec};
pub use vmforms::{NetworkForm, PortForm, SnapshotForm, SnapshotSpec, TransferForm};

use super::app::App;
use super::data::Data;
use super::keymap::{Action, Key, Keymap, Scope};
use crate::core::readonly::Action as Mutation;
use crate::core::vm::VmId;

/// A preview computed by a dry run, shown in a confirmation dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preview<T> {
    Loading,
    Ready(T),
    Failed(String),
}

pub enum Dialog {
    /// The keys of the focused pane.
    Help(Scroll),
    /// The command line.
    Palette(Box<Palette>),
    Filter(TextArea<'static>),
    Search(TextArea<'static>),
    /// The prune dry run (its answer is data: `Data::prune_preview`).
    Prune,
    Cleanup(Box<CleanupDialog>),
    /// A destructive action waiting for `y`/`Enter` (`n`/`Esc`/Ctrl-C cancels).
    Confirm(ConfirmAction),
    Start(Box<StartForm>),
    /// `:doctor`: every check with its fix.
    Doctor(Scroll),
    /// `i` in Images: `image inspect` of an image (its answer is data: `Data::inspect`).
    Inspect(Scroll),
    /// A result to read (`:bridge check`): `Data::note`.
    Note(Scroll),
    /// `S`: snapshot the selected or marked VMs.
    Snapshot(Box<SnapshotForm>),
    /// `b`: branch a running VM into clones.
    Branch(Box<branch::BranchForm>),
    /// `e`: expose or close a port of a VM (core's errors stay in the form).
    Port(Box<PortForm>),
    /// `U` / `D`: copy a file or directory into or out of a VM.
    Transfer(Box<TransferForm>),
    /// `N`: a VM's egress policy and SSH publication (core's errors stay in the form).
    Network(Box<NetworkForm>),
    /// `E`: set or unset one variable of a VM's environment (core's errors stay in the
    /// form).
    Env(Box<EnvForm>),
}

/// What a key did to a dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stay open.
    Keep,
    /// Close.
    Close,
    /// Close, then carry this out.
    Done(Request),
    /// Stay open, and carry this out.
    Also(Request),
}

/// What a dialog asks the app to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Run a confirmed destructive action.
    Confirmed(ConfirmAction),
    /// Prune these stale caches (the plan the user confirmed).
    Prune {
        plan: Vec<std::path::PathBuf>,
    },
    /// Clean up what the dry run `plan` showed (and nothing found since).
    Cleanup {
        prefix: String,
        all: bool,
        plan: CleanupPreview,
    },
    /// A new dry run for the cleanup dialog (the app numbers it).
    CleanupPreview {
        prefix: String,
        all: bool,
    },
    /// Set the focused pane's filter (`live`: while typing, selection back to the top).
    Filter {
        text: String,
        live: bool,
    },
    Search(String),
    /// Run a palette line (an error is shown in the palette).
    Palette(String),
    Start(StartSpec),
    Status(String),
    /// Ask before this destructive action (the typed confirmation).
    Confirm(ConfirmAction),
    /// A VMs-pane action on these VMs (from the detail view).
    OnVms {
        action: super::keymap::Action,
        ids: Vec<VmId>,
    },
    /// Restore this snapshot, resumed.
    Restore(String),
    /// Pull the current version of these images (by image name).
    Pull {
        names: Vec<String>,
    },
    /// Boot these stopped VMs again (`sandbox start`).
    Boot {
        ids: Vec<VmId>,
    },
    /// Pause these VMs (resume them: `paused` false).
    Pause {
        ids: Vec<VmId>,
        paused: bool,
    },
    Snapshot {
        ids: Vec<VmId>,
        spec: SnapshotSpec,
    },
    /// Branch VM `id` into `count` clones (`core::snapshot::branch`).
    Branch {
        id: VmId,
        count: u32,
        prefix: Option<String>,
    },
    /// Expose (or close) `host:guest` of VM `id`; the form waits for the answer.
    Port {
        id: VmId,
        close: bool,
        host: Option<u16>,
        guest: u16,
    },
    /// List `dir` for the completion of `word` (the transfer form's Tab; the app numbers
    /// it, the worker lists, the form takes the answer if it is still its own).
    ListDir {
        dir: std::path::PathBuf,
        word: String,
    },
    /// Copy `local` to `guest` in VM `id` (`upload`), or back.
    Transfer {
        id: VmId,
        upload: bool,
        local: String,
        guest: String,
    },
    /// Set VM `id`'s egress policy and SSH publication (`core::egress::set`); the form
    /// waits for the answer.
    Network {
        id: VmId,
        policy: crate::core::egress::Policy,
        publish_ssh: bool,
    },
    /// Set or unset one variable of VM `id`'s environment (`core::guest_env`); the form
    /// waits for the answer.
    Env {
        id: VmId,
        change: crate::core::guest_env::EnvChange,
    },
}

impl Request {
    /// What carrying it out changes (read-only mode refuses it); `None` for looking, and
    /// for a VMs-pane action (the VMs pane says: `components::vms::vm_mutation`).
    pub fn mutation(&self) -> Option<Mutation> {
        Some(match self {
            Request::Confirmed(a) | Request::Confirm(a) => return a.mutation(),
            Request::Prune { .. } => Mutation::Prune,
            Request::Cleanup { .. } => Mutation::Cleanup,
            Request::Start(_) => Mutation::Create,
            Request::Restore(_) => Mutation::SnapshotRestore,
            Request::Pull { .. } => Mutation::ImagePull,
            Request::Boot { .. } => Mutation::Start,
            Request::Pause { paused: true, .. } => Mutation::Pause,
            Request::Pause { paused: false, .. } => Mutation::Resume,
            Request::Snapshot { .. } => Mutation::SnapshotCreate,
            Request::Branch { .. } => Mutation::Branch,
            Request::Port { close: false, .. } => Mutation::PortExpose,
            Request::Port { close: true, .. } => Mutation::PortClose,
            Request::Transfer { upload: true, .. } => Mutation::FileUpload,
            Request::Transfer { upload: false, .. } => Mutation::FileDownload,
            Request::Network { .. } => Mutation::NetworkSet,
            Request::Env {
                change: crate::core::guest_env::EnvChange::Set { .. },
                ..
            } => Mutation::EnvSet,
            Request::Env { .. } => Mutation::EnvUnset,
            Request::CleanupPreview { .. }
            | Request::Filter { .. }
            | Request::Search(_)
            | Request::Palette(_)
            | Request::Status(_)
            | Request::OnVms { .. }
            | Request::ListDir { .. } => return None,
        })
    }
}

/// A key as the confirmations read it: the keymap's `[dialog]` `confirm` (by default
/// `y`/`Enter`) and `close` (`n`/`Esc`/Ctrl-C).
struct Answer {
    yes: bool,
    no: bool,
}

impl Answer {
    fn of(k: &KeyEvent, keymap: &Keymap) -> Answer {
        let key = Key::from_event(k);
        Answer {
            yes: keymap.is(Scope::Dialog, Action::Confirm, &key),
            no: keymap.is(Scope::Dialog, Action::Close, &key),
        }
    }

    /// [`Answer::of`] for a destructive dialog: Enter never confirms it, even where the
    /// keymap binds it ([`Keymap::destructive_confirm_keys`]).
    fn destructive(k: &KeyEvent, keymap: &Keymap) -> Answer {
        let key = Key::from_event(k);
        Answer {
            yes: keymap.destructive_confirm_keys().contains(&key),
            no: keymap.is(Scope::Dialog, Action::Close, &key),
        }
    }
}

/// A key as the forms and prompts read it: its `[form]` action (by default `Enter`
/// confirms, `Esc`/Ctrl-C closes, `Tab`/`Shift-Tab` move between fields), if any; every
/// other key is the field's.
pub(super) fn form_action(k: &KeyEvent, keymap: &Keymap) -> Option<Action> {
    keymap.lookup_in(Scope::Form, &Key::from_event(k))
}

/// How a form's key ends before the form looks at it ([`form_action_or_end`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyEnd {
    /// `Close`: the form closes.
    Close,
    /// The form waits for its task: the key is held.
    Held,
}

impl From<KeyEnd> for Outcome {
    fn from(e: KeyEnd) -> Outcome {
        match e {
            KeyEnd::Close => Outcome::Close,
            KeyEnd::Held => Outcome::Keep,
        }
    }
}

/// A form's key as its `[form]` action, unless the form ends there: `Close` closes it
/// (even while it waits for its task), and while it `waits` every other key is held.
pub(super) fn form_action_or_end(
    k: &KeyEvent,
    keymap: &Keymap,
    waits: bool,
) -> Result<Option<Action>, KeyEnd> {
    match form_action(k, keymap) {
        Some(Action::Close) => Err(KeyEnd::Close),
        _ if waits => Err(KeyEnd::Held),
        action => Ok(action),
    }
}

/// Key `k` in a form's text field `t`: the keymap's `[form]` `delete_back` and
/// `delete_forward` (by default Backspace or Ctrl-H, Delete or Ctrl-D) delete a character;
/// one of those four keys that neither binds deletes nothing, so a rebinding moves the
/// deletion. Every other key is the text widget's (typing, moving, its word and line
/// deletions). Whether the text changed.
pub(super) fn edit_field(t: &mut TextArea<'static>, k: KeyEvent, keymap: &Keymap) -> bool {
    use crossterm::event::{KeyCode, KeyModifiers};
    let mut key = Key::from_event(&k);
    let (ctrl, alt) = (
        key.mods.contains(KeyModifiers::CONTROL),
        key.mods.contains(KeyModifiers::ALT),
    );
    // The widget's own one-character deletions (Shift does not change them).
    let widget_deletes = !alt
        && match key.code {
            KeyCode::Backspace | KeyCode::Delete => !ctrl,
            KeyCode::Char('h' | 'd') => ctrl,
            _ => false,
        };
    if widget_deletes {
        key.mods.remove(KeyModifiers::SHIFT);
    }
    match keymap.lookup_in(Scope::Form, &key) {
        Some(Action::DeleteBack) => t.delete_char(),
        Some(Action::DeleteForward) => t.delete_next_char(),
        _ if widget_deletes => false,
        _ => t.input(k),
    }
}

/// The key of a `[form]` action as a form's hint shows it (`Enter`, `Esc`, `Tab`: the
/// usual one when it is bound, else the first).
pub(super) fn form_key(app: &App, a: Action) -> String {
    use crossterm::event::KeyCode;
    let usual = match a {
        Action::Confirm => KeyCode::Enter,
        Action::Close => KeyCode::Esc,
        Action::PrevField => KeyCode::BackTab,
        _ => KeyCode::Tab,
    };
    app.keymap.hint_preferring(Scope::Form, a, usual)
}

/// The keys that change a choice or flip a checkbox, as a form's hint shows them (`←→`):
/// the keymap's `[form]` `choice_prev` and `choice_next` (the arrows when bound).
pub(super) fn choice_keys(app: &App) -> String {
    use crossterm::event::KeyCode;
    let km = &app.keymap;
    format!(
        "{}{}",
        km.hint_preferring(Scope::Form, Action::ChoicePrev, KeyCode::Left),
        km.hint_preferring(Scope::Form, Action::ChoiceNext, KeyCode::Right)
    )
}

/// A form's key line: `[Tab] field  [<choose>] <what>  [Enter] <verb>  [Esc] cancel`,
/// the confirm key dimmed (and "fix errors first") while a field is invalid.
pub(super) fn form_hint(
    app: &App,
    t: &super::theme::Theme,
    choose: &str,
    verb: &str,
    ok: bool,
) -> Line<'static> {
    Line::from(vec![
        Span::styled(
            format!("[{}]", form_key(app, Action::NextField)),
            t.accent(),
        ),
        Span::raw(" field  "),
        Span::styled(format!("[{}]", choice_keys(app)), t.accent()),
        Span::raw(format!(" {choose}  ")),
        Span::styled(
            format!("[{}]", form_key(app, Action::Confirm)),
            if ok { t.accent() } else { t.muted() },
        ),
        Span::raw(if ok {
            format!(" {verb}  ")
        } else {
            " fix errors first  ".to_string()
        }),
        Span::styled(format!("[{}]", form_key(app, Action::Close)), t.accent()),
        Span::raw(" cancel"),
    ])
}

impl Dialog {
    /// A key, with the data the dialog shows (a dry run's answer decides what Enter does).
    pub fn handle_key(&mut self, k: KeyEvent, data: &Data, keymap: &Keymap) -> Outcome {
        match self {
            Dialog::Help(s) | Dialog::Doctor(s) | Dialog::Inspect(s) | Dialog::Note(s) => {
                info::handle_key(s, &k, keymap)
            }
            Dialog::Confirm(action) => action.handle_key(&k, keymap),
            Dialog::Prune => prune::handle_key(&data.prune_preview, &k, keymap),
            Dialog::Cleanup(d) => d.handle_key(k, data, keymap),
            Dialog::Filter(t) => prompt::filter_key(t, k, keymap),
            Dialog::Search(t) => prompt::search_key(t, k, keymap),
            Dialog::Palette(p) => p.handle_key(k, data, keymap),
            Dialog::Start(form) => form.handle_key(k, keymap),
            Dialog::Snapshot(form) => form.handle_key(k, keymap),
            Dialog::Branch(form) => form.handle_key(k, keymap),
            Dialog::Port(form) => form.handle_key(k, keymap),
            Dialog::Transfer(form) => form.handle_key(k, keymap),
            Dialog::Network(form) => form.handle_key(k, keymap),
            Dialog::Env(form) => form.handle_key(k, keymap),
        }
    }

    /// Every text field of the dialog.
    fn inputs(&mut self) -> Vec<&mut TextArea<'static>> {
        match self {
            Dialog::Palette(p) => vec![&mut p.input],
            Dialog::Filter(t) | Dialog::Search(t) => vec![t],
            Dialog::Cleanup(d) => vec![&mut d.prefix],
            Dialog::Start(f) => vec![
                &mut f.name,
                &mut f.memory,
                &mut f.cpus,
                &mut f.disk,
                &mut f.mounts,
                &mut f.egress.cidrs,
                &mut f.egress.domains,
            ],
            Dialog::Snapshot(f) => vec![&mut f.id],
            Dialog::Branch(f) => vec![&mut f.count, &mut f.prefix],
            Dialog::Port(f) => vec![&mut f.input],
            Dialog::Transfer(f) => vec![&mut f.local, &mut f.guest],
            Dialog::Network(f) => vec![&mut f.fields.cidrs, &mut f.fields.domains],
            Dialog::Env(f) => f.inputs(),
            Dialog::Help(_)
            | Dialog::Doctor(_)
            | Dialog::Inspect(_)
            | Dialog::Note(_)
            | Dialog::Prune
            | Dialog::Confirm(_) => Vec::new(),
        }
    }

    /// The terminal changed size: each text field shows from its start again, scrolled
    /// only as far as its cursor needs (a field scrolled sideways on a narrow screen kept
    /// hiding the start of its value when the screen grew).
    pub fn resized(&mut self) {
        use tui_textarea::CursorMove;
        for t in self.inputs() {
            let tui_textarea::DataCursor(row, col) = t.cursor();
            t.scroll((0, -i16::MAX));
            let to = |n: usize| u16::try_from(n).unwrap_or(u16::MAX);
            t.move_cursor(CursorMove::Jump(to(row), to(col)));
        }
    }

    /// The dialog's focused element when it is a text field: a paste is typed there, and
    /// nowhere else (pasted text is never keys: a `y` in it confirms nothing).
    pub fn focused_input(&mut self) -> Option<&mut TextArea<'static>> {
        match self {
            Dialog::Palette(p) => Some(&mut p.input),
            Dialog::Filter(t) | Dialog::Search(t) => Some(t),
            Dialog::Port(f) => Some(&mut f.input),
            Dialog::Transfer(f) => Some(f.focused_input()),
            Dialog::Branch(form) => form.focused_input(),
            Dialog::Start(form) => form.focused_input(),
            Dialog::Snapshot(form) => form.focused_input(),
            Dialog::Network(form) => form.focused_input(),
            Dialog::Env(form) => form.focused_input(),
            Dialog::Cleanup(d) => d.focused_input(),
            Dialog::Help(_)
            | Dialog::Doctor(_)
            | Dialog::Inspect(_)
            | Dialog::Note(_)
            | Dialog::Prune
            | Dialog::Confirm(_) => None,
        }
    }

    pub fn render(&self, f: &mut Frame, app: &App) {
        match self {
            Dialog::Help(s) => info::render(f, app, s, info::Info::Help),
            Dialog::Doctor(s) => info::render(f, app, s, info::Info::Doctor),
            Dialog::Inspect(s) => info::render(f, app, s, info::Info::Inspect),
            Dialog::Note(s) => info::render(f, app, s, info::Info::Note),
            Dialog::Confirm(action) => action.render(f, app),
            Dialog::Palette(p) => prompt::render(f, app, self, &p.input),
            Dialog::Filter(input) | Dialog::Search(input) => prompt::render(f, app, self, input),
            Dialog::Prune => prune::render(f, app, &app.data.prune_preview),
            Dialog::Cleanup(d) => d.render(f, app),
            Dialog::Start(form) => form.render(f, app),
            Dialog::Snapshot(form) => form.render(f, app),
            Dialog::Branch(form) => form.render(f, app),
            Dialog::Port(form) => form.render(f, app),
            Dialog::Transfer(form) => form.render(f, app),
            Dialog::Network(form) => form.render(f, app),
            Dialog::Env(form) => form.render(f, app),
        }
    }

    /// Fit what depends on the screen (a scroll's reach) to the app as it is now; the app
    /// calls this after every input.
    pub fn fit(&mut self, app: &App) {
        match self {
            Dialog::Help(s) => info::fit(s, app, info::Info::Help),
            Dialog::Doctor(s) => info::fit(s, app, info::Info::Doctor),
            Dialog::Inspect(s) => info::fit(s, app, info::Info::Inspect),
            Dialog::Note(s) => info::fit(s, app, info::Info::Note),
            _ => {}
        }
    }

    /// The form submitted and now waits for task `task` (the port and network forms:
    /// core's refusal comes back into them).
    pub fn wait_for(&mut self, task: u64) {
        match self {
            Dialog::Port(f) => f.pending = Some(task),
            Dialog::Network(f) => f.pending = Some(task),
            Dialog::Env(f) => f.pending = Some(task),
            _ => {}
        }
    }

    /// Task `task` finished (`ok`, or with `summary` as its error): whether the dialog that
    /// waited for it closes (it succeeded); a failure stays in the form.
    pub fn task_finished(&mut self, task: u64, ok: bool, summary: &str) -> bool {
        let (pending, error) = match self {
            Dialog::Port(f) => (&mut f.pending, &mut f.error),
            Dialog::Network(f) => (&mut f.pending, &mut f.error),
            Dialog::Env(f) => (&mut f.pending, &mut f.error),
            _ => return false,
        };
        if *pending != Some(task) {
            return false;
        }
        *pending = None;
        if !ok {
            *error = Some(crate::core::escape::into_on_screen(summary.to_string()));
        }
        ok
    }

    /// A spinner turns in it (a dry run is computing).
    pub fn animating(&self, data: &Data) -> bool {
        match self {
            Dialog::Prune => data.prune_preview == Preview::Loading,
            Dialog::Cleanup(d) => *data.cleanup_preview(d.generation) == Preview::Loading,
            _ => false,
        }
    }
}

pub(super) const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/// A centred rectangle of at most `w`×`h` cells.
/// The item after `cur` in `all` (before it with `back`), wrapping around: how a form's
/// choice or field steps. An item not in `all` steps from the first.
pub(super) fn cycled<T: Copy + PartialEq>(all: &[T], cur: T, back: bool) -> T {
    let i = all.iter().position(|x| *x == cur).unwrap_or(0);
    let n = all.len();
    all[if back { (i + n - 1) % n } else { (i + 1) % n }]
}

pub(super) fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

/// A form's check box: `[x]` or `[ ]`, then what it means (muted).
pub(super) fn checkbox(on: bool, note: &str, t: &crate::tui::theme::Theme) -> Paragraph<'static> {
    Paragraph::new(Line::from(vec![
        Span::raw(if on { "[x]" } else { "[ ]" }),
        Span::styled(note.to_string(), t.muted()),
    ]))
}

/// A dialog's frame at `r`: what was under it cleared and the titled box drawn; its inside.
pub(super) fn framed(f: &mut Frame, app: &App, r: Rect, title: &str) -> Rect {
    f.render_widget(Clear, r);
    let blk = dialog(app, title);
    let inner = blk.inner(r);
    f.render_widget(blk, r);
    inner
}

/// The note of a form that waits for its task (port, env): core's refusal of the last
/// submission, else `busy` while the task runs, else what the form says (`otherwise`).
pub(super) fn awaiting(
    t: &super::theme::Theme,
    error: Option<&String>,
    pending: Option<u64>,
    busy: &'static str,
    otherwise: impl FnOnce() -> Span<'static>,
) -> Span<'static> {
    match (error, pending) {
        (Some(e), _) => Span::styled(e.clone(), t.error()),
        (None, Some(_)) => Span::styled(busy, t.accent()),
        (None, None) => otherwise(),
    }
}

/// A form of `rows` one-line rows in a `w`-wide dialog centred on the screen, keeping the
/// rows `focus` (the focused field's, with its note) in view: see [`form_layout`].
pub(super) fn form_rows(
    f: &mut Frame,
    app: &App,
    w: u16,
    rows: u16,
    title: &str,
    focus: Range<usize>,
) -> Vec<Rect> {
    form_layout(f, app, w, &vec![1; usize::from(rows)], title, focus)
}

/// A form of rows this high in a `w`-wide dialog centred on the screen. On a screen too
/// short for all of them the form scrolls: the rows `focus` (the focused field's own row
/// first, then its note) stay in view — as many of them as fit, the field's row always —
/// with as many rows above them as fit, and the frame says `↑ more` /
/// `↓ more` where rows are out of view. A row out of view is an empty `Rect` (drawing
/// into it draws nothing); one partly in view is cut to what shows.
pub(super) fn form_layout(
    f: &mut Frame,
    app: &App,
    w: u16,
    heights: &[u16],
    title: &str,
    focus: Range<usize>,
) -> Vec<Rect> {
    let total: u16 = heights.iter().sum();
    let r = centered(f.area(), w, total.saturating_add(2));
    let inner = framed(f, app, r, title);
    let top_of = |i: usize| -> u16 { heights[..i.min(heights.len())].iter().sum() };
    let (first, last) = (top_of(focus.start), top_of(focus.end.max(focus.start + 1)));
    let seen = inner.height;
    // Scrolled just enough that the focused rows end in view, never past their start.
    let offset = last
        .saturating_sub(seen)
        .min(first)
        .min(total.saturating_sub(seen));
    let mut rows = Vec::with_capacity(heights.len());
    for (i, h) in heights.iter().enumerate() {
        let (from, to) = (top_of(i), top_of(i) + h);
        let (from, to) = (
            from.saturating_sub(offset).min(seen),
            to.saturating_sub(offset).min(seen),
        );
        rows.push(Rect::new(inner.x, inner.y + from, inner.width, to - from));
    }
    let more = |text: &'static str, y: u16| {
        let width = (text.chars().count() as u16).min(r.width.saturating_sub(2));
        let x = r.right().saturating_sub(width + 2).max(r.x);
        (
            Rect::new(x, y, width, 1),
            Span::styled(text, app.theme.accent()),
        )
    };
    if offset > 0 && r.height > 0 {
        let (at, s) = more(" ↑ more ", r.y);
        f.render_widget(Paragraph::new(s), at);
    }
    if offset + seen < total && r.height > 1 {
        let (at, s) = more(" ↓ more ", r.bottom() - 1);
        f.render_widget(Paragraph::new(s), at);
    }
    rows
}

fn dialog<'a>(app: &App, title: &str) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Double)
        .border_style(app.theme.dialog_border())
        .title(Span::styled(format!(" {title} "), app.theme.accent()))
}

/// `[y/Enter] label   [n/Esc] cancel`, with the keys the keymap binds (`one`: only the
/// first confirming key, as the quit question shows it).
fn buttons<'a>(app: &App, label: &str, one: bool) -> Line<'a> {
    let t = &app.theme;
    let km = &app.keymap;
    let go = if one {
        km.hint(Scope::Dialog, Action::Confirm)
    } else {
        km.hints(Scope::Dialog, Action::Confirm)
    };
    buttons_with(label, go, t, km)
}

/// [`buttons`] of a destructive dialog: the keys that confirm it (never Enter).
fn destructive_buttons<'a>(app: &App, label: &str) -> Line<'a> {
    let km = &app.keymap;
    let go = crate::tui::keymap::key_list(&km.destructive_confirm_keys(), "/", 2);
    buttons_with(label, go, &app.theme, km)
}

fn buttons_with<'a>(
    label: &str,
    go: String,
    t: &crate::tui::theme::Theme,
    km: &Keymap,
) -> Line<'a> {
    Line::from(vec![
        Span::styled(format!("[{go}]"), t.accent()),
        Span::raw(format!(" {label}   ")),
        Span::styled(
            format!("[{}]", km.hints(Scope::Dialog, Action::Close)),
            t.accent(),
        ),
        Span::raw(" cancel"),
    ])
}

/// `[Esc] close`: the dialog's close key (Esc when it is one of them).
fn close_hint<'a>(app: &App) -> Line<'a> {
    let km = &app.keymap;
    let esc = Key::parse("esc").expect("a key");
    let key = if km.is(Scope::Dialog, Action::Close, &esc) {
        esc.display()
    } else {
        km.hint(Scope::Dialog, Action::Close)
    };
    Line::styled(format!("[{key}] close"), app.theme.accent())
}

/// `head` then `items`, comma-separated, in lines of at most `width` columns, broken
/// between items (an item wider than a line is cut with `…`).
pub(super) fn pack_list(head: &str, items: &[impl AsRef<str>], width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = vec![crate::tui::components::table::cut(head.to_string(), width)];
    for (i, item) in items.iter().enumerate() {
        let item = item.as_ref();
        let part = if i + 1 < items.len() {
            format!("{item},")
        } else {
            item.to_string()
        };
        let last = lines.last_mut().expect("one line at least");
        if last.chars().count() + 1 + part.chars().count() <= width {
            last.push(' ');
            last.push_str(&part);
        } else {
            lines.push(crate::tui::components::table::cut(part, width));
        }
    }
    lines
}

/// At most `max` items, then `…and N more`.
fn capped<'a>(mut lines: Vec<Line<'a>>, max: usize, t: &super::theme::Theme) -> Vec<Line<'a>> {
    if lines.len() > max {
        let more = lines.len() - (max - 1);
        lines.truncate(max - 1);
        lines.push(Line::styled(format!("  …and {more} more"), t.muted()));
    }
    lines
}
