//! Dashboard state and its one mutator, [`App::update`]: an input (key, mouse, resize,
//! worker message, tick) changes the state and returns the effects the event loop must
//! run (workers, refreshes, clipboard). Nothing here does I/O, so every behaviour is
//! testable by feeding inputs and reading state and effects. The app holds the loop's
//! state and routes: a key goes to the open dialog ([`super::dialogs`]), else the detail
//! view, else the focused pane ([`super::components`]); each decides what the key means,
//! what it needs and what it changes, and the app carries out what it asks for
//! (`app/actions.rs`).
//!
//! [`App::data`] is what workers reported ([`Data`]: a message changes only it); the rest
//! of [`App`] is view state: focus, the panes (each with its selection, marks, filter,
//! sort or scroll), the open dialog.

use crate::core::readonly::Action as Mutation;
use crate::core::vm::VmId;

use crossterm::event::{KeyCode, KeyEvent, MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::Rect;
use tui_textarea::TextArea;

pub use super::components::{
    images::ImagesPane, logs::LogSource, logs::LogView, tasks::TasksPane, vms::VmsPane, CommandInfo,
};
use super::components::{Component, Cx, Intent};
pub use super::data::{Data, ImageInspect, Task, TaskItem, TaskKind, TaskState, TaskUpdate};
use super::data::{ImageRow, Readout, VmRow};
use super::keymap::{Action, Key, Keymap, Scope};
use super::layout::Areas;
use super::theme::Theme;

mod actions;
mod mouse;
mod palette;
mod protocol;

pub use protocol::{Effect, Input, Msg};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Vms,
    Images,
    Logs,
    Tasks,
}

impl Pane {
    pub const ALL: [Pane; 4] = [Pane::Vms, Pane::Images, Pane::Logs, Pane::Tasks];

    pub fn scope(self) -> Scope {
        match self {
            Pane::Vms => Scope::Vms,
            Pane::Images => Scope::Images,
            Pane::Logs => Scope::Logs,
            Pane::Tasks => Scope::Tasks,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Pane::Vms => "VMs",
            Pane::Images => "Images",
            Pane::Logs => "Logs",
            Pane::Tasks => "Tasks",
        }
    }

    fn index(self) -> usize {
        Pane::ALL.iter().position(|p| *p == self).unwrap_or(0)
    }
}

pub use super::data::{SnapshotRow, VmDetail};
pub use super::dialogs::{
    egress_items, field_errors, CleanupDialog, CleanupPreview, ConfirmAction, DetailView, Dialog,
    Field, NetworkForm, Outcome, Palette, PortForm, Preview, PrunePreview, Request, Scroll,
    SnapshotForm, SnapshotSpec, StartForm, StartImage, StartSpec, TransferForm,
};

/// Palette lines kept for Up/Down.
pub const PALETTE_HISTORY: usize = 100;

pub struct App {
    pub keymap: Keymap,
    pub theme: Theme,
    pub readonly: bool,
    pub focus: Pane,
    /// The bottom-right pane when only one of Logs/Tasks fits.
    pub lower: Pane,
    pub size: (u16, u16),
    /// What the workers reported.
    pub data: Data,
    /// The panes ([`super::components`]): each holds its view of the data.
    pub vms: VmsPane,
    pub images: ImagesPane,
    pub logs: LogView,
    pub tasks: TasksPane,
    pub dialog: Option<Dialog>,
    /// The VM detail view, over the panes (dialogs open over it).
    pub detail: Option<DetailView>,
    /// The presets the start form offers (core's registry with the user's file): the
    /// session's context's, the ones its jobs use.
    pub presets: std::sync::Arc<crate::core::presets::Registry>,
    /// Start tasks that attach to their VM once it is up (and the VM, once it is known):
    /// the session begins when the task has finished, so the task's end is shown first.
    attach_after: std::collections::BTreeMap<u64, Option<VmId>>,
    /// The sshd waits whose session opens when they are done: VM id, attach (else shell).
    session_after: std::collections::BTreeMap<u64, (VmId, bool)>,
    /// Lines run from the palette, oldest first (Up/Down recall them).
    pub palette_history: Vec<String>,
    /// Mouse capture is on (`m` turns it off so the terminal selects text).
    pub mouse: bool,
    /// The keymap file as shown in help (where a user remaps keys).
    pub keymap_file: String,
    pub status: Option<String>,
    pub spinner: usize,
    pub should_quit: bool,
    /// A signal asked the dashboard to end (its name): running tasks are being cancelled,
    /// and it quits when none runs.
    pub terminating: Option<String>,
    /// A VM to select as soon as a refresh's readout shows it (a start just finished).
    pub pending_select: Option<String>,
    /// `Ctrl-r` / `:refresh` asked for a refresh: its answer is said in the status line.
    refreshing: bool,
    version: u64,
}

/// The columns of the VMs and Images panes (shared with the CLI's tables).
pub use crate::core::table::{IMAGE_PANE as IMAGE_COLUMNS, VM_PANE as VM_COLUMNS};

pub(crate) fn line_input(text: &str) -> TextArea<'static> {
    let mut t = TextArea::new(vec![text.to_string()]);
    t.move_cursor(tui_textarea::CursorMove::End);
    t
}

pub fn text_of(t: &TextArea<'_>) -> String {
    t.lines().join("")
}

impl App {
    pub fn new(keymap: Keymap, theme: Theme, readonly: bool) -> App {
        let mut app = App {
            keymap,
            theme,
            readonly,
            focus: Pane::Vms,
            lower: Pane::Logs,
            size: (80, 24),
            data: Data::default(),
            vms: VmsPane::default(),
            images: ImagesPane::default(),
            logs: LogView::default(),
            tasks: TasksPane::default(),
            dialog: None,
            detail: None,
            presets: std::sync::Arc::new(crate::core::presets::Registry::builtin()),
            attach_after: std::collections::BTreeMap::new(),
            session_after: std::collections::BTreeMap::new(),
            palette_history: Vec::new(),
            mouse: true,
            keymap_file: "~/.config/smolvm/keymap.toml".into(),
            status: None,
            spinner: 0,
            should_quit: false,
            terminating: None,
            pending_select: None,
            refreshing: false,
            version: 0,
        };
        let problems: Vec<String> = app
            .keymap
            .problems
            .iter()
            .chain(&app.theme.problems)
            .cloned()
            .collect();
        app.config_problems(&problems);
        app
    }

    /// Problems found in the configuration (keymap, theme, presets files): each goes to the
    /// app log, and all of them — not only the last — are listed in a note that opens over
    /// the panes, with their count in the status line. Later ones join the list.
    pub fn config_problems(&mut self, problems: &[String]) {
        if problems.is_empty() {
            return;
        }
        for p in problems {
            self.log(format!("config: {p}"));
        }
        const TITLE: &str = "Config problems";
        let mut all = match self.data.note.take() {
            Some((title, lines)) if title.starts_with(TITLE) => lines,
            other => {
                self.data.note = other;
                Vec::new()
            }
        };
        all.extend(problems.iter().cloned());
        let n = all.len();
        self.status = Some(if n == 1 {
            format!("config problem: {}", all[0])
        } else {
            format!(
                "{n} config problems (listed; also in the app log): {}",
                all[0]
            )
        });
        self.data.note = Some((format!("{TITLE} ({n})"), all));
        if self.dialog.is_none() || matches!(self.dialog, Some(Dialog::Note(_))) {
            self.dialog = Some(Dialog::Note(Scroll::default()));
        }
    }

    /// Append to the app's own log (shown in the Logs pane when it is the source).
    pub fn log(&mut self, line: impl Into<String>) {
        let line = line.into();
        tracing::info!(target: "dashboard", "{line}");
        self.data.log_app(line);
        self.app_log_changed();
    }

    fn app_log_changed(&mut self) {
        if self.logs.source == LogSource::App {
            self.logs.lines_changed(&self.data);
        }
    }

    /// The lines of the log the Logs pane shows.
    pub fn log_lines(&self) -> &[String] {
        self.logs.lines(&self.data)
    }

    pub fn running_tasks(&self) -> usize {
        self.data.running_tasks()
    }

    /// Something animates (a spinner), so the loop should tick.
    pub fn animating(&self) -> bool {
        self.running_tasks() > 0
            || self
                .dialog
                .as_ref()
                .is_some_and(|d| d.animating(&self.data))
    }

    /// VM rows after filter and sort, as shown.
    pub fn vm_view(&self) -> Vec<&VmRow> {
        self.vms.view(&self.data.vms)
    }

    pub fn image_view(&self) -> Vec<&ImageRow> {
        self.images.view(&self.data.images)
    }

    pub fn selected_vm(&self) -> Option<&VmRow> {
        self.vms.selected(&self.data.vms)
    }

    /// The pane as a component.
    pub fn component(&self, pane: Pane) -> &dyn Component {
        match pane {
            Pane::Vms => &self.vms,
            Pane::Images => &self.images,
            Pane::Logs => &self.logs,
            Pane::Tasks => &self.tasks,
        }
    }

    fn component_mut(&mut self, pane: Pane) -> &mut dyn Component {
        match pane {
            Pane::Vms => &mut self.vms,
            Pane::Images => &mut self.images,
            Pane::Logs => &mut self.logs,
            Pane::Tasks => &mut self.tasks,
        }
    }

    /// What the panes see of the app (for paging: `pane`'s page).
    pub(crate) fn cx(&self, pane: Pane) -> Cx<'_> {
        Cx {
            data: &self.data,
            keymap: &self.keymap,
            readonly: self.readonly,
            page: self.page(pane),
            presets: &self.presets.presets,
            selected_vm: self.selected_vm().map(|r| r.info.id.to_string()),
        }
    }

    /// Recompute the table panes' orders if data, filter or sort changed.
    fn rebuild_views(&mut self) {
        let g = self.data.generation();
        self.vms.rebuild(&self.data.vms, g);
        self.images.rebuild(&self.data.images, g);
    }

    fn list_len(&self, pane: Pane) -> usize {
        match pane {
            Pane::Vms => self.vms.len(),
            Pane::Images => self.images.len(),
            Pane::Tasks => self.data.tasks.len(),
            Pane::Logs => self.log_lines().len(),
        }
    }

    fn selection_mut(&mut self, pane: Pane) -> &mut usize {
        match pane {
            Pane::Vms => &mut self.vms.selected,
            Pane::Images => &mut self.images.selected,
            Pane::Tasks => &mut self.tasks.selected,
            Pane::Logs => &mut self.logs.scroll,
        }
    }

    fn clamp(&mut self) {
        self.vms.clamp(&self.data.vms);
        self.images.clamp(&self.data.images);
        let n = self.data.tasks.len();
        self.tasks.selected = self.tasks.selected.min(n.saturating_sub(1));
    }

    pub fn areas(&self) -> Areas {
        super::layout::areas(Rect::new(0, 0, self.size.0, self.size.1), self)
    }

    /// Rows of a pane that fit on screen (for paging).
    fn page(&self, pane: Pane) -> usize {
        let a = self.areas();
        let r = match pane {
            Pane::Vms => a.vms,
            Pane::Images => a.images,
            Pane::Logs => a.logs,
            Pane::Tasks => a.tasks,
        };
        usize::from(r.map_or(10, |r| r.height.saturating_sub(3))).max(1)
    }

    fn new_task(&mut self, kind: TaskKind, title: String) -> u64 {
        let id = self.data.add_task(kind, title.clone());
        // The new task is drawn first.
        self.tasks.selected = 0;
        self.log(format!("task {id} started: {title}"));
        id
    }

    /// A session in VM `id` (its agent when `attach`, else a login shell): first a task
    /// that waits for the guest's sshd (it may still be coming up after a start; the
    /// dashboard stays live and `x` cancels it), then the session once that is done.
    pub(super) fn open_session(&mut self, id: VmId, attach: bool) -> Vec<Effect> {
        let what = if attach { "attach to" } else { "shell in" };
        let task = self.new_task(TaskKind::SshWait, format!("{what} {id}"));
        self.session_after.insert(task, (id.clone(), attach));
        vec![Effect::RunSshWait { task, id }]
    }

    /// Changes whenever visible state may have changed (the loop redraws then).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Apply one input; returns the effects to run.
    pub fn update(&mut self, input: Input) -> Vec<Effect> {
        // A refresh that changed nothing must not cost a frame.
        if let Input::Msg(Msg::Readout(s)) = &input {
            // The answer to `Ctrl-r`: said even when nothing changed.
            let answered = self.refreshing && s.slow.is_some();
            if answered {
                self.refreshing = false;
                self.status = Some(match (&s.vms_error, &s.slow) {
                    (Some(_), _) => {
                        "refreshed: the VMs could not be listed (see the VMs pane)".into()
                    }
                    (None, Some(slow)) => format!(
                        "refreshed: {} VM{}, {} image{}",
                        s.vms.len(),
                        if s.vms.len() == 1 { "" } else { "s" },
                        slow.images.len(),
                        if slow.images.len() == 1 { "" } else { "s" }
                    ),
                    (None, None) => "refreshed".into(),
                });
            }
            if self.data.unchanged_by(s) {
                if answered {
                    self.version += 1;
                }
                return Vec::new();
            }
        }
        self.version += 1;
        let fx = match input {
            Input::Key(k) => self.on_key(k),
            Input::Mouse(m) => self.on_mouse(m),
            Input::Paste(text) => self.on_paste(&text),
            Input::Resize(w, h) => {
                self.size = (w, h);
                if let Some(d) = &mut self.dialog {
                    d.resized();
                }
                Vec::new()
            }
            Input::Msg(m) => self.on_msg(m),
            Input::Tick => {
                self.spinner = self.spinner.wrapping_add(1);
                Vec::new()
            }
            Input::Terminate(sig) => self.terminate(sig),
        };
        // Ending on a signal: once nothing runs, quit (nothing new is started meanwhile).
        if self.terminating.is_some() && self.running_tasks() == 0 {
            self.should_quit = true;
            return Vec::new();
        }
        self.rebuild_views();
        self.clamp();
        if let Some(mut d) = self.dialog.take() {
            d.fit(self);
            self.dialog = Some(d);
        }
        if let Some(mut d) = self.detail.take() {
            d.fit(self);
            self.detail = Some(d);
        }
        fx
    }

    /// A signal asks the dashboard to end: cancel every running task that can be (each
    /// stops or rolls back as `x` would: a kill leaves the host as it was), wait for the
    /// others (one step each), then quit. A second signal quits at once.
    fn terminate(&mut self, sig: String) -> Vec<Effect> {
        if self.terminating.is_some() {
            self.should_quit = true;
            return Vec::new();
        }
        let running: Vec<(u64, TaskKind)> = self
            .data
            .tasks
            .iter()
            .filter(|t| t.state == TaskState::Running)
            .map(|t| (t.id, t.kind))
            .collect();
        self.dialog = None;
        self.attach_after.clear();
        self.session_after.clear();
        let quit = self.keymap.hint(self.focus.scope(), Action::Quit);
        self.status = Some(format!(
            "{sig}: cancelling {} running task(s), then quitting ({sig} again or {quit}: quit now)",
            running.len()
        ));
        self.terminating = Some(sig);
        running
            .into_iter()
            .filter(|(_, k)| k.cancellable())
            .map(|(task, _)| Effect::Cancel { task })
            .collect()
    }

    /// A paste: typed into the focused text field of the open dialog (a line break or tab
    /// as a space, other control characters left out) in one go — all but its last
    /// character inserted at once, the last typed as a key, so the field reacts once (one
    /// dry run, one filter), however long the paste. Anywhere else it is not keys — a `d`
    /// or `y` in it does nothing — and the status says it was ignored.
    fn on_paste(&mut self, text: &str) -> Vec<Effect> {
        // A copied line's own line break ends it, it does not type a space.
        let typed: String = text
            .trim_end_matches(['\n', '\r'])
            .chars()
            .map(|c| {
                if matches!(c, '\n' | '\r' | '\t') {
                    ' '
                } else {
                    c
                }
            })
            .filter(|c| !c.is_control())
            .collect();
        let Some(input) = self.dialog.as_mut().and_then(Dialog::focused_input) else {
            self.status = Some("pasted text ignored: paste into a text field".into());
            return Vec::new();
        };
        let Some(last) = typed.chars().last() else {
            return Vec::new();
        };
        input.insert_str(&typed[..typed.len() - last.len_utf8()]);
        self.status = None;
        let k = crossterm::event::KeyEvent::from(crossterm::event::KeyCode::Char(last));
        self.on_key(k)
    }

    fn on_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        if k.kind != crossterm::event::KeyEventKind::Press {
            return Vec::new();
        }
        if self.terminating.is_some() {
            // Ending on a signal: nothing new starts; quit is the one key left, and it
            // does not wait.
            let key = Key::from_event(&k);
            if self.keymap.lookup(self.focus.scope(), &key) == Some(Action::Quit) {
                self.should_quit = true;
            }
            return Vec::new();
        }
        if self.dialog.is_some() {
            return self.on_dialog_key(k);
        }
        self.status = None;
        let key = Key::from_event(&k);
        if let Some(d) = self.detail.take() {
            return self.detail_key(d, &key);
        }
        match self.keymap.lookup(self.focus.scope(), &key) {
            Some(a) => self.act(a),
            None if k.code == KeyCode::Esc => {
                // Esc the keymap leaves free: the pane's (a table clears its marks, then
                // its filter).
                self.component_mut(self.focus).on_escape();
                Vec::new()
            }
            None => Vec::new(),
        }
    }

    /// Read-only mode: the actions are the CLI's list (`core::readonly::Action`).
    fn refuse_readonly(&mut self, what: Mutation) -> bool {
        if self.readonly {
            self.status = Some(format!("read-only mode: refusing to {}", what.describe()));
        }
        self.readonly
    }

    /// Whether the selected task runs and can be cancelled (the footer offers `x` then).
    pub fn selected_task_cancellable(&self) -> bool {
        self.tasks.cancellable(&self.data)
    }

    /// The commands `pane` offers, in priority order (the footer leaves out the last ones
    /// first when it is too narrow): the pane's declarations
    /// ([`super::components::command_infos`]).
    pub fn commands(&self, pane: Pane) -> Vec<CommandInfo> {
        super::components::command_infos(self.component(pane), &self.cx(pane))
    }

    /// `pane` does something with `action` (help lists only these).
    pub fn offers(&self, pane: Pane, action: Action) -> bool {
        super::components::offers(self.component(pane), &self.cx(pane), action)
    }

    /// The help overlay's sections for `pane`: the keymap sections it reaches, with the
    /// keys of what it offers.
    pub fn help(&self, pane: Pane) -> Vec<super::components::HelpSection> {
        super::components::help_actions(self.component(pane), &self.cx(pane))
    }

    fn focus(&mut self, p: Pane) {
        self.focus = p;
        if matches!(p, Pane::Logs | Pane::Tasks) {
            self.lower = p;
        }
    }

    /// The mouse wheel in `pane`.
    fn step(&mut self, pane: Pane, by: isize) {
        if pane == Pane::Logs {
            let len = self.log_lines().len();
            self.logs.step(len, by);
            return;
        }
        let len = self.list_len(pane);
        super::components::step(self.selection_mut(pane), len, by);
    }

    fn show_log(&mut self, source: LogSource) -> Vec<Effect> {
        self.logs.source = source.clone();
        self.logs.follow = true;
        self.focus(Pane::Logs);
        let LogSource::Vm(id) = &source else {
            self.logs.lines_changed(&self.data);
            return Vec::new();
        };
        self.data.follow_vm_log(id);
        self.logs.lines_changed(&self.data);
        vec![Effect::LoadLog(source)]
    }

    /// A key while a dialog is open: the dialog decides what it means.
    fn on_dialog_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        let Some(mut dialog) = self.dialog.take() else {
            return Vec::new();
        };
        match dialog.handle_key(k, &self.data, &self.keymap) {
            Outcome::Keep => {
                self.dialog = Some(dialog);
                Vec::new()
            }
            Outcome::Close => Vec::new(),
            Outcome::Done(r) => self.request(r),
            Outcome::Also(r) => {
                self.dialog = Some(dialog);
                self.request(r)
            }
        }
    }

    /// A worker's message: the data changes ([`Data`]'s `apply_*`), then the view
    /// follows (keeps the selected VM, re-runs the log search, selects a started VM).
    fn on_msg(&mut self, m: Msg) -> Vec<Effect> {
        match m {
            Msg::Readout(s) => {
                let selected_id = self.selected_vm().map(|r| r.info.id.to_string());
                let log_before = self.data.app_log.len();
                self.data.apply_readout(*s);
                if self.data.app_log.len() != log_before {
                    self.app_log_changed();
                }
                self.rebuild_views();
                // Keep the same VM selected across refreshes (or select a new one).
                if let Some(id) = self.pending_select.clone().or(selected_id) {
                    if self.vms.select_key(&self.data.vms, &id)
                        && self.pending_select.as_deref() == Some(id.as_str())
                    {
                        self.pending_select = None;
                    }
                }
            }
            Msg::Log { source, lines } => {
                if let LogSource::Vm(id) = &source {
                    self.data.apply_vm_log(id, lines);
                    if source == self.logs.source {
                        self.logs.lines_changed(&self.data);
                    }
                }
            }
            // Latest answer wins: one to an earlier request is dropped.
            Msg::PrunePreview { generation, result } => {
                if self.data.prune_gen.is_current(generation) {
                    self.data.prune_preview = preview(result);
                }
            }
            Msg::Inspect { generation, result } => {
                if self.data.inspect_gen.is_current(generation) {
                    self.data.inspect = preview(result);
                }
            }
            Msg::CleanupPreview { generation, result } => {
                self.data.apply_cleanup_preview(generation, preview(result));
            }
            Msg::LeftoversPlan { generation, result } => {
                if self.data.leftovers_gen.is_current(generation) {
                    self.leftovers_plan(result);
                }
            }
            Msg::Note { title, lines } => {
                self.data.note = Some((title, lines));
                if self.dialog.is_none() {
                    self.dialog = Some(Dialog::Note(Scroll::default()));
                }
            }
            Msg::Task { id, update } => {
                if self.data.apply_task(id, &update) {
                    self.app_log_changed();
                    return self.on_task(id, update);
                }
            }
            Msg::Detail {
                id,
                generation,
                result,
            } => self
                .data
                .apply_detail(generation, &id, preview(result.map(|d| *d))),
            Msg::EnvKeys {
                id,
                generation,
                result,
            } => {
                // Read over SSH: what the guest wrote, shown escaped wherever it is drawn.
                let on_screen = crate::core::escape::into_on_screen;
                let result = result
                    .map(|keys| keys.into_iter().map(on_screen).collect())
                    .map_err(on_screen);
                self.data.apply_env_keys(generation, &id, preview(result))
            }
            // The transfer form's own Tab: the newest asked for, taken by the form if it
            // still has the text.
            Msg::DirListing { generation, result } => {
                if let Some(Dialog::Transfer(f)) = &mut self.dialog {
                    if self.data.listing_gen.is_current(generation) {
                        f.completed(result);
                    }
                }
            }
            Msg::SessionEnded { id, result } => {
                let line = match result {
                    Ok(code) => format!("session in {id} ended (exit {code})"),
                    Err(e) => format!("session in {id}: {e}"),
                };
                self.log(line.clone());
                self.status = Some(line);
                // Back where we were: the same VM selected.
                if !self.vms.select_key(&self.data.vms, &id) {
                    self.pending_select = Some(id.into());
                }
                return vec![Effect::Refresh { slow: false }];
            }
        }
        Vec::new()
    }

    /// What the view does when a task moves on.
    fn on_task(&mut self, task: u64, u: TaskUpdate) -> Vec<Effect> {
        match u {
            TaskUpdate::Started { vm_id } => {
                self.vms.filter.clear();
                self.rebuild_views();
                self.focus(Pane::Vms);
                if !self.vms.select_key(&self.data.vms, &vm_id) {
                    self.pending_select = Some(vm_id.to_string());
                }
                if let Some(vm) = self.attach_after.get_mut(&task) {
                    *vm = Some(vm_id);
                }
                vec![Effect::Refresh { slow: false }]
            }
            TaskUpdate::Finished { state, summary, .. } => {
                let attach = self.attach_after.remove(&task).flatten();
                let session = self.session_after.remove(&task);
                if self
                    .dialog
                    .as_mut()
                    .is_some_and(|d| d.task_finished(task, state == TaskState::Done, &summary))
                {
                    self.dialog = None;
                }
                self.status = Some(summary);
                let mut fx = vec![Effect::Refresh { slow: true }];
                // An environment change is read again (the keys live in the guest).
                let env_changed = self
                    .data
                    .tasks
                    .iter()
                    .any(|t| t.id == task && t.kind == TaskKind::Env);
                // With no detail view to read them again, the keys last read are stale.
                if env_changed && self.detail.is_none() {
                    self.data.env_keys = None;
                }
                if let Some(d) = &self.detail {
                    let (generation, env) = self.data.want_detail(&d.id, env_changed);
                    fx.push(Effect::LoadDetail {
                        id: d.id.clone(),
                        generation,
                        env,
                    });
                }
                if let (Some(id), TaskState::Done) = (attach, state) {
                    fx.extend(self.open_session(id, true));
                }
                if let (Some((id, attach)), TaskState::Done) = (session, state) {
                    fx.push(Effect::Session { id, attach });
                }
                fx
            }
            _ => Vec::new(),
        }
    }
}

fn preview<T>(r: Result<T, String>) -> Preview<T> {
    match r {
        Ok(v) => Preview::Ready(v),
        Err(e) => Preview::Failed(e),
    }
}

/// The SSH command for a VM: core's, exactly what `smolvm sandbox ssh <id>` runs (key,
/// options, guest IP); that command itself when the VM has no IP.
pub fn ssh_command(info: &crate::core::sandbox::SandboxInfo) -> String {
    info.ssh_command
        .clone()
        .unwrap_or_else(|| format!("smolvm sandbox ssh {}", info.id))
}
